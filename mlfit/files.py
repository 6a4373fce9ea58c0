"""Atomic file output: a failed or interrupted run never leaves a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator, TextIO

from mlfit.errors import MlfitError


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[TextIO]:
    """Write text to a temporary file beside `path`, then rename it over `path` on success."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise MlfitError(f"Cannot write '{path}': directory '{directory}' does not exist.")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise MlfitError(f"Cannot write '{path}': {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
