"""Entry point for `python -m mlfit`."""

from mlfit.cli import main

main()
