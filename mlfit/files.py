"""Atomic file output: a failed or interrupted run never leaves a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from mlfit.errors import MlfitError, UsageError


def check_writable(path: str, inputs: tuple[str, ...] = ()) -> str:
    """The directory `path` would be written in; an error now, before any work, when the
    directory is missing, `path` is a directory, or `path` is one of this run's inputs."""
    for source in inputs:
        if source != "-" and os.path.exists(path) and os.path.samefile(path, source):
            raise UsageError(
                f"Refusing to write '{path}': it is an input of this run ('{source}'). "
                "Write the output to another file."
            )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise MlfitError(f"Cannot write '{path}': directory '{directory}' does not exist.")
    if os.path.isdir(path):
        raise MlfitError(f"Cannot write '{path}': it is a directory. Give a file name.")
    return directory


@contextlib.contextmanager
def atomic_write(path: str, binary: bool = False) -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, then rename it over `path` on success.

    Text (UTF-8, newlines as written) unless `binary`, for images and other bytes.
    """
    directory = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
    except OSError as exc:
        raise MlfitError(f"Cannot write '{path}': {exc.strerror}.") from None
    try:
        opened = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with opened as f:
            # mkstemp creates the file private (0600); give it the mode a plain open() would.
            os.chmod(tmp, _mode_for(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise MlfitError(f"Cannot write '{path}': {exc.strerror}.") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _mode_for(path: str) -> int:
    """An existing file keeps its permissions; a new one gets 0666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
