"""Error types; each carries the exit code the CLI returns for it."""


class MlfitError(Exception):
    """Base error: the message is shown to the user as one line on stderr."""

    exit_code = 1


class FitError(MlfitError):
    """The fit cannot be trusted: divergence, singular matrix, separation."""

    exit_code = 1


class NotConvergedError(FitError):
    """Raised only under --strict when an iterative fit did not converge."""

    exit_code = 5


class DataError(MlfitError):
    """The input table is unusable: missing file or column, bad values."""

    exit_code = 3


class ModelFileError(MlfitError):
    """A model file is not mlfit's, or of an unknown format version."""

    exit_code = 4
