"""The parts of DATA on a Dask cluster: each read, validated and encoded on a worker by
mlfit's own loader (a ChunkStream per part, as a local fit reads it), text columns and levels
in a first distributed pass, and the encoded chunks kept on the workers (DaskChunks)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlfit.dask_passes import DaskChunks, _results_in_order
from mlfit.data import ChunkStream, Selection
from mlfit.data.parts import PartStream, check_same_format, merge_levels, part_paths
from mlfit.design import Design
from mlfit.errors import DataError

if TYPE_CHECKING:
    from mlfit.dask_engine import Session


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
    row_groups: tuple[int, ...] | None = None  # some row groups of one Parquet file
    first_row: int = 0  # the file's rows before them

    def open(self) -> ChunkStream:
        sel = Selection(**self.selection)
        if self.row_groups is None:
            stream = ChunkStream(self.path, sel, self.chunk_rows, self.model)
        else:
            stream = _RowGroups(self.path, sel, self.chunk_rows, self.model, self)
        features, target = self.columns
        if (stream.features, stream.target) != (features, target):
            raise DataError(
                f"{self.path} has other columns than the first part (features "
                f"{', '.join(stream.features)}; expected {', '.join(features)}): every part of "
                "a table needs the same columns."
            )
        return stream


class _RowGroups(ChunkStream):
    """A ChunkStream over some row groups of one Parquet file, its rows numbered as in the
    file (it reads through ChunkStream's own Parquet input and validation)."""

    def __init__(self, path: str, sel: Selection, chunk_rows: int, model: str, spec: _PartSpec):
        super().__init__(path, sel, chunk_rows, model=model)
        self._groups, self._first_row = list(spec.row_groups), spec.first_row

    def _batches(self, columns: list[str]):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self._parquet_input())
        yield from pf.iter_batches(
            batch_size=self.chunk_rows, columns=columns, row_groups=self._groups
        )

    def _validate(self, batch, base: int):
        return super()._validate(batch, base + self._first_row)


def _row_group_partitions(path: str, sel: Selection) -> list[tuple[tuple[int, ...], int]] | None:
    """(row groups, rows before them) per partition of one uncompressed Parquet file on disk
    with several row groups (one partition each), else None (the file is one partition)."""
    from mlfit.data.sources import _Source

    src = _Source(path, sel.dialect)
    if src.fmt != "parquet" or src.compression is not None or src.in_memory:
        return None
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    if meta.num_row_groups < 2:
        return None
    out, first = [], 0
    for i in range(meta.num_row_groups):
        out.append(((i,), first))
        first += meta.row_group(i).num_rows
    return out


class DaskStream:
    """DATA's parts as the runner sees a chunk stream (source, columns, levels, rows), read
    on the workers: text columns and levels in a first distributed pass, then `encoded`."""

    def __init__(self, session: Session, data: str, sel: Selection, chunk_rows: int, model: str):
        self._session = session
        self.source = data
        parts = part_paths(data)
        paths = parts or [data]
        self.fmt = check_same_format(paths, sel)
        # one Parquet file: its row groups are the partitions
        self._split = None if parts else _row_group_partitions(data, sel)
        self._sel, self._chunk_rows, self._model = sel, chunk_rows, model
        first = PartStream(data, paths[:1], sel, chunk_rows, model)  # the header, on the client
        self.target, self.features = first.target, first.features
        self.extras, self.passthrough = first.extras, first.passthrough
        columns = (first.features, first.target)
        state = _selection_state(sel)
        self.parts = [_PartSpec(p, state, chunk_rows, model, columns) for p in paths]
        if self._split:
            self.parts = [
                _PartSpec(data, state, chunk_rows, model, columns, groups, first)
                for groups, first in self._split
            ]
        self.rows_read = 0
        self.rows_dropped = 0
        self.chunks: DaskChunks | None = None

    def _each(self, fn, *args) -> list:
        client = self._session.client
        futures = client.map(fn, self.parts, *[[a] * len(self.parts) for a in args], pure=False)
        return self._exact(lambda: _results_in_order(client, futures))

    def _exact(self, run):
        """run(); a problem in one row group of a split file is reported as for the whole
        file (counts of missing values over every row): the file is read here once more."""
        try:
            return run()
        except DataError:
            if self._split:
                for _ in ChunkStream(self.source, self._sel, self._chunk_rows, self._model):
                    pass
            raise

    def text_columns(self) -> list[str]:
        found = set().union(*self._each(_text_columns))
        return [n for n in self.features if n in found]

    def levels(self, names: list[str]) -> dict[str, list[str]]:
        if not names:
            return {n: [] for n in names}
        return merge_levels(self._each(_levels, names))

    def encoded(self, design: Design) -> DaskChunks:
        """The parts read, validated and encoded on the workers, kept there for the fit."""
        self.chunks = self._exact(lambda: DaskChunks(self._session, self.parts, design))
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


def _predict_part(spec: _PartSpec, saved, options: dict, id_column, source: str) -> list:
    from mlfit.predict import predicted_chunks

    return list(predicted_chunks(saved, spec.open(), options, id_column, source))
