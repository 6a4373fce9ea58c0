"""Fits on a Dask cluster: the parts of DATA read and persisted by the workers, each pass over
them a fold per partition plus a tree of merges, and only the small statistics travelling.

Imported only for --engine dask (mlfit.engine.cluster), so a local fit never imports Dask.
Workers read their parts with mlfit's own loader, so a bad part gets the message a local fit
would give; the model file is the one a local fit writes, so predict needs no cluster.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field

from distributed import Client, LocalCluster, as_completed

from mlfit.contract import ModelData
from mlfit.data import ChunkStream, Selection
from mlfit.data.parts import PartStream, check_same_format, merge_levels, part_paths
from mlfit.design import Design
from mlfit.engine import EngineChoice, EngineError, Partitioned, n_rows
from mlfit.errors import DataError, MlfitError

#: Seconds to reach a scheduler (and for it to have a worker) before giving up.
CONNECT_SECONDS = 5
#: Partial results merged per task: the reduction tree's depth is log_FAN_IN(partitions).
FAN_IN = 8


class Session:
    """A client on a scheduler given by address, or on a local cluster started for the run
    (one worker process per core, one thread each) and closed at the end."""

    def __init__(self, choice: EngineChoice):
        for name in ("distributed", "tornado"):  # a lost worker is handled, not chatter
            logging.getLogger(name).setLevel(logging.ERROR)
        self._cluster = None
        address = choice.scheduler
        try:
            if address:
                _probe(address)  # a Client that fails to connect hangs in its __del__
                self.client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
            else:
                # dashboard on any free port (8787, when taken, is a warning); the workers'
                # logs silenced (they log errors mlfit handles, such as a singular start)
                self._cluster = LocalCluster(
                    n_workers=os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.CRITICAL,
                )
                self.client = Client(self._cluster, set_as_default=False)
            self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except Exception as exc:  # noqa: BLE001 (anything on the way: one line, exit 1)
            self.close()
            where = f"the Dask scheduler at {address}" if address else "a local Dask cluster"
            reason = getattr(exc, "strerror", None) or str(exc).split("\n")[0].rstrip(".")
            reason = reason or type(exc).__name__
            raise EngineError(
                f"Cannot use {where} ({reason}; waited at most {CONNECT_SECONDS} s). Check "
                "--scheduler (or DASK_SCHEDULER_ADDRESS), or leave it out to start a local "
                "cluster."
            ) from None
        self.address = self.client.scheduler.address

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()

    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def stream(self, data: str, sel: Selection, chunk_rows: int, model: str) -> DaskStream:
        return DaskStream(self, data, sel, chunk_rows, model)

    def predict(self, data: str, sel: Selection, chunk_rows: int, saved, options, id_column):
        """mlfit.predict.predicted_chunks of every part, each computed on a worker, yielded
        in input order (a part's predictions come to the client when it is written)."""
        parts = DaskStream(self, data, sel, chunk_rows, saved.spec.name).parts
        client = self.client
        model = _share(client, saved, _nbytes(saved))
        futures = client.map(
            _predict_part,
            parts,
            [model] * len(parts),
            [options] * len(parts),
            [id_column] * len(parts),
            [data] * len(parts),
            pure=False,
        )
        try:
            for future in futures:
                try:
                    predicted = future.result()
                except Exception as exc:  # noqa: BLE001 (mlfit's own errors stay as they are)
                    raise _cluster_error(exc).with_traceback(None) from None
                future.release()
                yield from predicted
        except BaseException:
            client.cancel(futures)
            raise


def _probe(address: str) -> None:
    """Ask the address who it is, within CONNECT_SECONDS: a closed port, a host that does not
    answer or a server that is not a Dask scheduler fails here, fast."""
    import asyncio
    import socket

    from distributed.comm import connect
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)  # ValueError: not an address
    if scheme == "tcp":  # a refused connection fails now (Dask would retry until its timeout)
        host, port = parse_host_port(location, default_port=8786)
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()

    async def identity():
        comm = await connect(address, timeout=CONNECT_SECONDS)
        try:
            await comm.write({"op": "identity"})
            return await asyncio.wait_for(comm.read(), CONNECT_SECONDS)
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), CONNECT_SECONDS + 1))
    except (OSError, asyncio.TimeoutError, ValueError) as exc:  # ValueError: a bad address
        raise OSError(str(exc).split("\n")[0] or "no answer") from None
    except Exception:  # noqa: BLE001 (garbage on the wire)
        reply = None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise OSError("it does not answer as a Dask scheduler")


def _selection_state(sel: Selection) -> dict:
    """The Selection as plain values (its read-only mappings do not pickle)."""
    state = {f.name: getattr(sel, f.name) for f in dataclasses.fields(sel)}
    return {k: dict(v) if k in ("extras", "kinds", "roles") else v for k, v in state.items()}


@dataclass(frozen=True)
class _PartSpec:
    """What a worker needs to read one part: the same ChunkStream a local fit would open."""

    path: str
    selection: dict
    chunk_rows: int
    model: str
    columns: tuple  # (features, target) of the first part: every part must have them

    def open(self) -> ChunkStream:
        stream = ChunkStream(self.path, Selection(**self.selection), self.chunk_rows, self.model)
        features, target = self.columns
        if (stream.features, stream.target) != (features, target):
            raise DataError(
                f"{self.path} has other columns than the first part (features "
                f"{', '.join(stream.features)}; expected {', '.join(features)}): every part of "
                "a table needs the same columns."
            )
        return stream


class DaskStream:
    """DATA's parts as the runner sees a chunk stream (source, columns, levels, rows), read
    on the workers: text columns and levels in a first distributed pass, then `encoded`."""

    def __init__(self, session: Session, data: str, sel: Selection, chunk_rows: int, model: str):
        self._session = session
        self.source = data
        paths = part_paths(data) or [data]
        self.fmt = check_same_format(paths, sel)
        first = PartStream(data, paths[:1], sel, chunk_rows, model)  # the header, on the client
        self.target, self.features = first.target, first.features
        self.extras, self.passthrough = first.extras, first.passthrough
        columns = (first.features, first.target)
        state = _selection_state(sel)
        self.parts = [_PartSpec(p, state, chunk_rows, model, columns) for p in paths]
        self.rows_read = 0
        self.rows_dropped = 0
        self.chunks: DaskChunks | None = None

    def _each(self, fn, *args) -> list:
        client = self._session.client
        futures = client.map(fn, self.parts, *[[a] * len(self.parts) for a in args], pure=False)
        return _results_in_order(client, futures)

    def text_columns(self) -> list[str]:
        found = set().union(*self._each(_text_columns))
        return [n for n in self.features if n in found]

    def levels(self, names: list[str]) -> dict[str, list[str]]:
        if not names:
            return {n: [] for n in names}
        return merge_levels(self._each(_levels, names))

    def encoded(self, design: Design) -> DaskChunks:
        """The parts read, validated and encoded on the workers, kept there for the fit."""
        self.chunks = DaskChunks(self._session, self.parts, design)
        self.rows_read, self.rows_dropped = self.chunks.rows_read, self.chunks.rows_dropped
        return self.chunks

    def info(self) -> dict:
        """The report's and JSON's `engine` section."""
        chunks = self.chunks
        return {
            "engine": "dask",
            "scheduler": self._session.address,
            "workers": self._session.workers(),
            "partitions": len(self.parts),
            "passes": chunks.passes if chunks else 0,
            "bytes_moved": chunks.bytes_moved if chunks else 0,
            "cluster_seconds": chunks.seconds if chunks else 0.0,
            # rows brought to the client: 0 for a fit, whose passes are folds on the workers
            "rows_to_client": chunks.rows_fetched if chunks else 0,
        }


def _text_columns(spec: _PartSpec) -> set[str]:
    return set(spec.open().text_columns())


def _levels(spec: _PartSpec, names: list[str]) -> dict[str, list[str]]:
    return spec.open().levels(names)


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


def _predict_part(spec: _PartSpec, saved, options: dict, id_column, source: str) -> list:
    from mlfit.predict import predicted_chunks

    return list(predicted_chunks(saved, spec.open(), options, id_column, source))


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
