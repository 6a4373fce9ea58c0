"""mlfit: fit statistical and machine-learning models to tables from the command line."""

import os as _os
import signal as _signal
import sys as _sys

__version__ = "0.1.0"


def _interrupted_while_starting(signum, frame):  # pragma: no cover - a race by nature
    """Ctrl-C while the command's modules are still being imported: Python would print a
    traceback of the import machinery.  Say what happened and exit as an interrupt does."""
    _os.write(2, b"Interrupted.\n")
    _os._exit(130)


# Only when running as the `mlfit` command: a library user keeps Python's KeyboardInterrupt.
# mlfit.cli.main puts Python's handler back once its own handling is in place.
if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "mlfit":
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
