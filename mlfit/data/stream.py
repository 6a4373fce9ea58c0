"""Validated chunks of a table, for fits whose memory is bounded by the chunk."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from mlfit.data.convert import _column_to_numpy, _valid_rows
from mlfit.data.parse_errors import (
    _explain_arrow_error,
    _line_offset,
    _RowNames,
    _stray_word_message,
)
from mlfit.data.selection import Selection, _check_header, resolve_columns
from mlfit.data.sources import _csv_options, _read_all, _Source
from mlfit.data.validate import Dataset, _missing, _MissingValues, _stray_words, _validate
from mlfit.errors import DataError

#: CSV bytes parsed at a time when streaming: pyarrow's peak memory grows with it (about 120 MB
#: at 1 MiB, 240 MB at 4 MiB, measured), while larger blocks barely parse faster.
STREAM_BLOCK_BYTES = 1 << 20
#: Above this many bytes on disk a chunked (one pass, bounded memory) fit is used automatically.
AUTO_CHUNK_BYTES = 1 << 30
DEFAULT_CHUNK_ROWS = 65_536
#: A chunk never holds more than this many bytes of float64 values, whatever --chunk-rows says:
#: each chunk is copied a few times on its way to the solver (arrow, numpy, design, solver).
MAX_CHUNK_BYTES = 8 << 20


class ChunkStream:
    """Re-iterable stream of validated (columns, y) chunks with memory bounded by the chunk.

    Yields Dataset objects of at most `chunk_rows` rows.  Text columns need their levels before
    the first chunk is encoded, so they are collected by `levels()` in a separate pass.
    """

    def __init__(
        self,
        path: str,
        sel: Selection,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        model: str = "this model",
    ):
        self._src = _Source(path)
        self.source = self._src.name
        self._na = sel.na
        self._model = model
        names, self._arrow_types = self._schema()
        _check_header(names, self.source)
        self.target, self.features = resolve_columns(names, sel, self.source)
        width = len(self.features) + 1
        self.chunk_rows = max(1, min(chunk_rows, MAX_CHUNK_BYTES // (8 * width)))
        self._offset = _line_offset(self._src.fmt)
        self.rows_read = 0
        self.rows_dropped = 0

    def _column_types(self, schema: pa.Schema) -> dict:
        # Numbers are read as float64 from the first block on: a later block with "1.5" in a
        # column that began with integers must not fail.
        out = {}
        for f in schema:
            if (
                pa.types.is_integer(f.type)
                or pa.types.is_floating(f.type)
                or pa.types.is_null(f.type)
            ):
                out[f.name] = pa.float64()
            else:
                out[f.name] = f.type
        return out

    def _schema(self):
        src = self._src
        try:
            if src.fmt in ("csv", "tsv"):
                import pyarrow.csv as pcsv

                read, parse, convert = _csv_options(src.fmt)
                with src.open() as stream:
                    reader = pcsv.open_csv(
                        stream, read_options=read, parse_options=parse, convert_options=convert
                    )
                    schema = reader.schema
                return schema.names, self._column_types(schema)
            if src.fmt == "parquet":
                import pyarrow.parquet as pq

                schema = pq.ParquetFile(self._parquet_input()).schema_arrow
                return schema.names, {}
            import pyarrow.json as pjson

            with src.open() as stream:
                schema = pjson.open_json(stream).schema
            return schema.names, {}
        except (pa.ArrowInvalid, OSError) as exc:
            raise _explain_arrow_error(src, exc) from None

    def _parquet_input(self):
        if self._src.compression is None and self._src.path != "-":
            return self._src.path
        with self._src.open() as stream:
            return pa.BufferReader(_read_all(stream))

    def _batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        src = self._src
        try:
            if src.fmt in ("csv", "tsv"):
                import pyarrow.csv as pcsv

                read, parse, convert = _csv_options(
                    src.fmt,
                    column_types=self._arrow_types,
                    include=columns,
                    block_size=STREAM_BLOCK_BYTES,
                )
                with src.open() as stream:
                    yield from pcsv.open_csv(
                        stream, read_options=read, parse_options=parse, convert_options=convert
                    )
            elif src.fmt == "parquet":
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(self._parquet_input())
                yield from pf.iter_batches(batch_size=self.chunk_rows, columns=columns)
            else:
                import pyarrow.json as pjson

                with src.open() as stream:
                    for batch in pjson.open_json(stream):
                        yield batch.select(columns)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise _explain_arrow_error(src, exc) from None

    def _slices(self, columns: list[str]) -> Iterator[pa.Table]:
        """Tables of exactly chunk_rows rows (the last may be shorter), from the reader's blocks."""
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in self._batches(columns):
            start = 0
            while start < batch.num_rows:
                take = min(batch.num_rows - start, self.chunk_rows - rows)
                pending.append(batch.slice(start, take))
                rows += take
                start += take
                if rows == self.chunk_rows:
                    yield pa.Table.from_batches(pending)
                    pending, rows = [], 0
        if pending:
            yield pa.Table.from_batches(pending)

    def levels(self, names: list[str]) -> dict[str, list[str]]:
        """Sorted distinct values of the given text columns, in one pass over the file."""
        import pyarrow.compute as pc

        seen: dict[str, set] = {n: set() for n in names}
        used = [*self.features, self.target]
        if names:
            for batch in self._slices(used if self._na == "drop" else names):
                if self._na == "drop":  # levels seen only in dropped rows must not count
                    batch = batch.filter(_valid_rows(batch))
                for n in names:
                    seen[n].update(
                        v for v in pc.unique(batch.column(n)).to_pylist() if v is not None
                    )
        for n, values in seen.items():
            # Chunks can be too small to tell a number column with a stray word: check the whole.
            bad = _stray_words([v for v in values if isinstance(v, str)])
            if bad:
                self._raise_stray_word(n, bad[0])
        return {
            n: sorted(str(v).lower() if isinstance(v, bool) else v for v in s)
            for n, s in seen.items()
        }

    def _raise_stray_word(self, name: str, value: str) -> None:
        base = 0
        for batch in self._slices([name]):
            hits = np.flatnonzero(np.array(batch.column(name).to_pylist(), dtype=object) == value)
            if len(hits):
                row = _RowNames(base, self._offset)(int(hits[0]))
                raise DataError(_stray_word_message(name, self.source, row, value))
            base += batch.num_rows

    def text_columns(self) -> list[str]:
        """Feature columns that are not numbers (they need one-hot levels)."""
        types = self._arrow_types
        if not types:  # parquet and JSON: look at the first chunk
            first = next(self._slices(self.features), None)
            if first is None:
                return []
            return [
                n
                for n in self.features
                if not (
                    pa.types.is_integer(first.column(n).type)
                    or pa.types.is_floating(first.column(n).type)
                )
            ]
        return [n for n in self.features if types[n] != pa.float64()]

    def __iter__(self) -> Iterator[Dataset]:
        self.rows_read = 0
        self.rows_dropped = 0
        columns = [*self.features, self.target]
        batches = self._slices(columns)
        for batch in batches:
            cols = {n: _column_to_numpy(n, batch.column(n), self.source) for n in columns}
            rows = _RowNames(self.rows_read, self._offset)
            try:
                chunk = _validate(
                    self.source,
                    cols,
                    self.target,
                    self.features,
                    self._na,
                    "numeric",
                    self._model,
                    rows,
                    batch.num_rows,
                )
            except _MissingValues as exc:
                # Report the whole file's counts, not this chunk's.
                totals = dict(exc.counts)
                for rest in batches:
                    for n in columns:
                        values = _column_to_numpy(n, rest.column(n), self.source)
                        totals[n] = totals.get(n, 0) + int(_missing(values).sum())
                raise _MissingValues(
                    self.source, {n: totals[n] for n in columns if totals.get(n)}
                ) from None
            self.rows_read += batch.num_rows
            self.rows_dropped += chunk.rows_dropped
            if chunk.n_rows:
                yield chunk
        if self.rows_read == 0:
            raise DataError(f"{self.source} has a header but no data rows.")


def should_stream(path: str, chunk_rows: int | None) -> bool:
    """Chunked fitting when asked for, or when the file is too big to read comfortably at once."""
    if chunk_rows:
        return True
    return path != "-" and os.path.exists(path) and os.path.getsize(path) > AUTO_CHUNK_BYTES
