"""Where a pass over the chunks runs: a loop in this process, or partitions on a Dask cluster.

A solver whose fit is a sum over rows writes each pass over the data as fold() or map_reduce()
instead of a for-loop, so it never knows where its chunks live.  Locally both are the loop
they replace, in the same order (the results are bit for bit those of the loop); on a cluster
(mlfit.dask_engine) each partition folds its own chunks on a worker and the partitions'
small results are merged by a tree of `combine` calls.  Nothing here imports Dask.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mlfit.errors import MlfitError

ENGINES = ("local", "dask")


class EngineError(MlfitError):
    """The cluster cannot be used: unreachable scheduler, lost workers (exit 1)."""


@dataclass(frozen=True)
class EngineChoice:
    """--engine and --scheduler of the running command."""

    name: str = "local"
    scheduler: str | None = None  # None with dask: start a local cluster


@dataclass
class _Running:
    choice: EngineChoice
    sessions: list = field(default_factory=list)  # the cluster session, once started


_RUNNING: contextvars.ContextVar[_Running | None] = contextvars.ContextVar(
    "mlfit_engine", default=None
)


@contextmanager
def chosen(choice: EngineChoice) -> Iterator[None]:
    """Run the enclosed command with this engine (--engine wraps the commands in this); a
    cluster session it starts is closed when it ends, however it ends."""
    running = _Running(choice)
    token = _RUNNING.set(running)
    try:
        yield
    finally:
        _RUNNING.reset(token)
        for session in running.sessions:
            session.close()


def current() -> EngineChoice:
    running = _RUNNING.get()
    return running.choice if running else EngineChoice()


def cluster():
    """The running command's Dask session (mlfit.dask_engine.Session), started on first use."""
    running = _RUNNING.get()
    if running is None or running.choice.name != "dask":
        raise RuntimeError("no --engine dask command is running")
    if not running.sessions:
        from mlfit import dask_engine  # only here: a local fit never imports Dask

        running.sessions.append(dask_engine.Session(running.choice))
    return running.sessions[0]


class Partitioned:
    """Chunks that live elsewhere, in partitions: fold, first and expand run where they are."""

    def fold(self, step, combine, on_done=None, with_start=False):
        raise NotImplementedError

    def first(self, fn):
        raise NotImplementedError

    def expand(self, fn) -> Partitioned:
        raise NotImplementedError

    def over_partitions(self, fn, combine):
        raise NotImplementedError


#: on_done(done, total): partitions (or local chunks, total 0) finished, for progress.
DoneFn = Callable[[int, int], None]


def fold(
    chunks,
    step: Callable,
    combine: Callable,
    on_done: DoneFn | None = None,
    with_start: bool = False,
):
    """step(acc, chunk) -> acc folded over the chunks in order, acc None at the start;
    combine(a, b) merges the accumulators of two consecutive partitions.  None if no chunk.
    with_start: step(acc, chunk, start), start the number of rows before the chunk."""
    if isinstance(chunks, Partitioned):
        return chunks.fold(step, combine, on_done, with_start)
    acc, start = None, 0
    for i, chunk in enumerate(chunks, start=1):
        acc = step(acc, chunk, start) if with_start else step(acc, chunk)
        start += n_rows(chunk)
        if on_done is not None:
            on_done(i, 0)
    return acc


def n_rows(item) -> int:
    """Rows of a chunk (ModelData) or of a block (an array)."""
    return item.n_rows if hasattr(item, "n_rows") else len(item)


def over_partitions(chunks, fn: Callable, combine: Callable):
    """fn(chunks) for a pass written as a loop over the whole stream; on a cluster fn of
    each partition's chunks (a list, on its worker), the results merged by combine(a, b) in
    order.  fn must then be a sum over its chunks that combine can add; a partition without
    chunks gives nothing to combine.  Locally this is fn(chunks) itself, bit for bit."""
    if isinstance(chunks, Partitioned):
        return chunks.over_partitions(fn, combine)
    return fn(chunks)


def expand(chunks, fn: Callable):
    """The items of fn(chunk) (an iterable: blocks, transformed rows) for every chunk, in
    order, computed where the chunks live; re-iterable as the chunks are."""
    if isinstance(chunks, Partitioned):
        return chunks.expand(fn)
    return _Expanded(chunks, fn)


@dataclass(frozen=True)
class _Expanded:
    chunks: object
    fn: Callable

    def __iter__(self):
        for chunk in self.chunks:
            yield from self.fn(chunk)


def map_reduce(chunks, fn: Callable, combine: Callable, on_done: DoneFn | None = None):
    """combine(... combine(fn(c1), fn(c2)) ..., fn(cn)) over the chunks; None if none."""
    return fold(chunks, MapStep(fn, combine), combine, on_done)


def first(chunks, fn: Callable):
    """fn(first chunk), or None when there is none (computed where the chunk lives)."""
    if isinstance(chunks, Partitioned):
        return chunks.first(fn)
    for chunk in chunks:
        return fn(chunk)
    return None


@dataclass(frozen=True)
class MapStep:
    """The fold step of map_reduce (a class, not a closure: it travels to workers)."""

    fn: Callable
    combine: Callable

    def __call__(self, acc, chunk):
        value = self.fn(chunk)
        return value if acc is None else self.combine(acc, value)
