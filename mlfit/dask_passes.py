"""Passes over partitions persisted on Dask workers: engine.fold, over_partitions, first and
expand run where the chunks are, partitions' results merged by a tree of bounded fan-in;
what each pass moves is counted (bytes_moved)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from distributed import Client, as_completed

from mlfit.contract import ModelData
from mlfit.design import Design
from mlfit.engine import EngineError, Partitioned, n_rows
from mlfit.errors import MlfitError

if TYPE_CHECKING:
    from mlfit.dask_engine import Session
    from mlfit.dask_parts import _PartSpec

#: Partial results merged per task: the reduction tree's depth is log_FAN_IN(partitions).
FAN_IN = 8


@dataclass
class _Part:
    """One part read on a worker: its encoded chunks and its row counts."""

    chunks: list[ModelData]
    rows_read: int
    rows_dropped: int


def _load(spec: _PartSpec, design: Design) -> _Part:
    from mlfit.runner import _DesignChunks  # the local path's encoding, so the rows are equal

    stream = spec.open()
    chunks = list(_DesignChunks(stream, design))
    return _Part(chunks, stream.rows_read, stream.rows_dropped)


def _rows(part: _Part) -> tuple[int, int]:
    return part.rows_read, part.rows_dropped


@dataclass(frozen=True)
class _Pass:
    """One pass, scattered once to the workers (not in the graph): the step and merge, the
    expansions applied to each chunk first (engine.expand), and whether step takes the row
    the item starts at (None: step is a whole pass over a partition's items, over_partitions)."""

    step: object
    combine: object
    expansions: tuple = ()
    with_start: bool | None = False

    def items(self, part: _Part):
        items = part.chunks
        for fn in self.expansions:
            items = [item for chunk in items for item in fn(chunk)]
        return items


def _fold_part(part: _Part, work: _Pass, start: int):
    if work.with_start is None:  # over_partitions: the pass's own loop, on this partition
        items = work.items(part)
        return work.step(items) if items else None
    acc = None
    for item in work.items(part):
        acc = work.step(acc, item, start) if work.with_start else work.step(acc, item)
        start += n_rows(item)
    return acc


def _merge(work: _Pass, *partials):
    """Partials of consecutive partitions, in order (None: a partition without rows)."""
    acc = None
    for value in partials:
        if value is not None:
            acc = value if acc is None else work.combine(acc, value)
    return acc


def _first(part: _Part, fn, work: _Pass):
    items = work.items(part)
    return (True, fn(items[0])) if items else (False, None)


def _nbytes(value) -> int:
    """Bytes of the value as Dask sends it (pickle, or cloudpickle for closures)."""
    from distributed.protocol.pickle import dumps

    return len(dumps(value))


@dataclass
class DaskChunks(Partitioned):
    """The encoded parts, persisted on the workers as one future each."""

    session: Session
    specs: list
    design: Design
    passes: int = 0
    bytes_moved: int = 0  # statistics sent between workers and to the client, over all passes
    seconds: float = 0.0
    rows_fetched: int = 0  # rows brought to the client (only iterating, e.g. for a plot)
    _futures: list = field(default_factory=list)
    _starts: list = field(default_factory=list)  # the rows before each partition
    expansions: tuple = ()

    def __post_init__(self):
        if self._futures:  # a view of the same partitions (expand)
            return
        start = time.perf_counter()
        client = self.session.client
        self._futures = client.map(_load, self.specs, [self.design] * len(self.specs), pure=False)
        rows = _results_in_order(client, [client.submit(_rows, f) for f in self._futures])
        self.rows_read = sum(r for r, _ in rows)
        self.rows_dropped = sum(d for _, d in rows)
        used = [r - d for r, d in rows]
        self._starts = [sum(used[:i]) for i in range(len(used))]
        self.seconds += time.perf_counter() - start

    def expand(self, fn) -> DaskChunks:
        view = dataclasses.replace(self, expansions=(*self.expansions, fn))
        view._base = getattr(self, "_base", self)  # statistics counted on the loaded one
        return view

    def fold(self, step, combine, on_done=None, with_start=False):
        base = getattr(self, "_base", self)
        start = time.perf_counter()
        client = self.session.client
        work = _Pass(step, combine, self.expansions, with_start)
        work_bytes = _nbytes(work)
        shared = _share(client, work, work_bytes)
        n = len(self._futures)
        partials = client.map(_fold_part, self._futures, [shared] * n, self._starts, pure=False)
        pending = list(partials)
        try:
            for i, _ in enumerate(as_completed(partials, loop=client.loop), start=1):
                if on_done is not None:
                    on_done(i, n)
            sizes = client.gather(client.map(_nbytes, partials, pure=False))
            level = partials
            while len(level) > 1:
                level = [
                    client.submit(_merge, shared, *level[i : i + FAN_IN], pure=False)
                    for i in range(0, len(level), FAN_IN)
                ]
                pending += level
                if len(level) > 1:  # the last level is the result, counted below
                    sizes += client.gather(client.map(_nbytes, level, pure=False))
            result = _merge(work, level[0].result())
        except BaseException as exc:  # noqa: BLE001 (re-raised) Ctrl-C, SIGTERM, a failed task
            client.cancel(pending)
            raise _cluster_error(exc) from None
        base.passes += 1
        # the pass's function to each worker, each partial up the tree, the result to us
        traffic = work_bytes * self.session.workers() + sum(sizes) + _nbytes(result)
        base.bytes_moved += traffic
        base.seconds += time.perf_counter() - start
        return result

    def over_partitions(self, fn, combine):
        return self.fold(fn, combine, with_start=None)

    def first(self, fn):
        client = self.session.client
        work = _Pass(None, None, self.expansions)
        for future in self._futures:
            found, value = client.submit(_first, future, fn, work, pure=False).result()
            if found:
                return value
        return None

    def __iter__(self):
        """The items brought to the client, one part at a time (for a plot's sample; a fit's
        passes go through fold)."""
        base = getattr(self, "_base", self)
        work = _Pass(None, None, self.expansions)
        for future in self._futures:
            for item in work.items(future.result()):
                base.rows_fetched += n_rows(item)
                yield item


#: A pass's function up to this size travels in one task (recomputed if its worker dies);
#: larger ones (row-aligned class codes) are scattered, so no large object is in the graph.
SHARE_IN_GRAPH_BYTES = 1 << 20


def _share(client: Client, value, size: int):
    """The value on the cluster once, as a future every task of the pass depends on."""
    if size <= SHARE_IN_GRAPH_BYTES:
        return client.submit(_identity, value, pure=False)
    return _scatter(client, value)


def _identity(value):
    return value


def _scatter(client: Client, value, attempts: int = 5):
    """The value sent to a worker once (a future), retried when that worker has just died
    and the scheduler does not know yet."""
    for attempt in range(attempts):
        try:
            return client.scatter(value, hash=False)
        except OSError:  # CommClosedError: a worker lost on the way
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _cluster_error(exc: BaseException) -> BaseException:
    """mlfit's own errors and interruptions as they are; the cluster's failures (workers lost
    more often than Dask retries, cancelled tasks) as one EngineError line."""
    if isinstance(exc, (MlfitError, KeyboardInterrupt)) or not isinstance(exc, Exception):
        return exc
    from distributed import KilledWorker

    if isinstance(exc, (KilledWorker, OSError, TimeoutError)) or "Cancelled" in type(exc).__name__:
        return EngineError(f"The Dask cluster failed during the fit ({type(exc).__name__}: {exc}).")
    return exc


def _results_in_order(client: Client, futures: list) -> list:
    """Every future's result; on failures, the error of the first part in order (as a local
    read of the parts one after another would report)."""
    try:
        for future in futures:  # in order: an earlier part's error comes first
            exc = future.exception()
            if exc is not None:
                raise _cluster_error(exc).with_traceback(None) from None
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
