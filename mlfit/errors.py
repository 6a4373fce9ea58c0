"""Exit codes (one enum for the errors and the CLI) and the error types that carry them."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `mlfit` returns; the README's table of exit codes lists the same."""

    OK = 0
    FIT_FAILED = 1  # the fit failed or cannot be trusted; also an internal error
    USAGE = 2  # unknown option, bad option value, an option the model does not take
    BAD_DATA = 3  # missing file or column, missing or infinite values, malformed rows
    BAD_MODEL_FILE = 4  # not mlfit's, damaged, or from a newer mlfit
    NOT_CONVERGED = 5  # --strict and the fit did not converge
    INTERRUPTED = 130  # Ctrl-C
    TERMINATED = 143  # SIGTERM
    BROKEN_PIPE = 141  # the reader of stdout went away


#: What each code means, for --help and the man pages.
EXIT_MEANINGS = {
    ExitCode.OK: "success (also when a fit did not converge, unless --strict)",
    ExitCode.FIT_FAILED: "the fit failed or cannot be trusted",
    ExitCode.USAGE: "usage error (a bad option, or one the model does not take)",
    ExitCode.BAD_DATA: "bad input data",
    ExitCode.BAD_MODEL_FILE: "bad model file",
    ExitCode.NOT_CONVERGED: "not converged under --strict",
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.TERMINATED: "terminated (SIGTERM); no partial output file is left",
    ExitCode.BROKEN_PIPE: "the reader of stdout went away (a closed pipe)",
}


class MlfitError(Exception):
    """Base error: the message is shown to the user as one line on stderr."""

    exit_code = ExitCode.FIT_FAILED


class FitError(MlfitError):
    """The fit cannot be trusted: divergence, singular matrix, separation."""

    exit_code = ExitCode.FIT_FAILED


class NotConvergedError(FitError):
    """Raised only under --strict when an iterative fit did not converge."""

    exit_code = ExitCode.NOT_CONVERGED


class UsageError(MlfitError):
    """An option that cannot be used here: one the model does not take, a missing extra."""

    exit_code = ExitCode.USAGE


class DataError(MlfitError):
    """The input table is unusable: missing file or column, bad values."""

    exit_code = ExitCode.BAD_DATA


class ModelFileError(MlfitError):
    """A model file is not mlfit's, is damaged, or is of an unknown format version."""

    exit_code = ExitCode.BAD_MODEL_FILE


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that open output files are cleaned up."""
