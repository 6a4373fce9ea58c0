"""mlfit: fit statistical and machine-learning models to tables from the command line."""

__version__ = "0.1.0"
