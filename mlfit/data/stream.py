"""Validated chunks of a table, for fits whose memory is bounded by the chunk."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from mlfit.data.convert import _column_to_numpy, _valid_rows, header_names, number_as_text
from mlfit.data.parse_errors import _explain_arrow_error, _lines, _RowNames
from mlfit.data.selection import Selection, _check_header, _resolve
from mlfit.data.sources import _csv_options, _read_all, _Source
from mlfit.data.validate import Dataset, _nothing_left, _Problems, _stray_words, _validate
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
    """Re-iterable stream of validated Dataset chunks, memory bounded by the chunk.

    Chunks have at most `chunk_rows` rows and the fields load_dataset gives, and the messages
    are load_dataset's: rows count from the start of the file, and a problem in one chunk is
    reported as a read of the whole file would (missing values counted over the file).  Text
    columns need their levels before the first chunk is encoded: `levels()` reads them first.
    """

    def __init__(
        self,
        path: str,
        sel: Selection,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        model: str = "this model",
    ):
        self._src = _Source(path, sel.dialect)
        self.source = self._src.name
        self.fmt = self._src.fmt  # csv, tsv, parquet or jsonl
        self._text = sel.csv_text()
        names, self._arrow_types = self._schema()
        _check_header(names, self.source)
        self._columns = _resolve(names, sel, self.source, model)
        self.target = self._columns.target
        self.features = self._columns.features
        self.extras = self._columns.extras  # role -> column
        self.passthrough = self._columns.passthrough
        self._read = list(dict.fromkeys([*self._columns.used, *self.passthrough]))
        self.chunk_rows = max(1, min(chunk_rows, MAX_CHUNK_BYTES // (8 * len(self._read))))
        self._lines = _lines(self._src)
        self.rows_read = 0
        self.rows_dropped = 0

    def _column_types(self, schema: pa.Schema) -> dict:
        # Numbers are read as float64 from the first block on: a later block with "1.5" in a
        # column that began with integers must not fail.  Text columns stay text: '1' is '1'.
        out = {}
        for f in schema:
            if f.name in self._text:
                out[f.name] = pa.string()
            elif (
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

                read, parse, convert = _csv_options(src)
                with src.open() as stream:
                    reader = pcsv.open_csv(
                        stream, read_options=read, parse_options=parse, convert_options=convert
                    )
                    schema = reader.schema
                return header_names(schema, src.name), self._column_types(schema)
            if src.fmt == "parquet":
                import pyarrow.parquet as pq

                schema = pq.ParquetFile(self._parquet_input()).schema_arrow
                return header_names(schema, src.name), {}
            import pyarrow.json as pjson

            with src.open() as stream:
                schema = pjson.open_json(stream).schema
            return header_names(schema, src.name), {}
        except (pa.ArrowInvalid, OSError) as exc:
            raise _explain_arrow_error(src, exc) from None

    def _parquet_input(self):
        if self._src.compression is None and not self._src.in_memory:
            return self._src.path
        with self._src.open() as stream:
            return pa.BufferReader(_read_all(stream))

    def _batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        src = self._src
        try:
            if src.fmt in ("csv", "tsv"):
                import pyarrow.csv as pcsv

                read, parse, convert = _csv_options(
                    src,
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
            raise _explain_arrow_error(src, exc, self._columns.not_numeric) from None

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
        drop = self._columns.na == "drop"
        if names:
            for batch in self._slices(self._columns.used if drop else names):
                if drop:  # levels seen only in dropped rows must not count
                    batch = batch.filter(_valid_rows(batch))
                for n in names:
                    seen[n].update(
                        v for v in pc.unique(batch.column(n)).to_pylist() if v is not None
                    )
        for n, values in seen.items():
            if n in self._columns.kinds:  # declared text may look like numbers
                continue
            # Chunks can be too small to tell a number column with a stray word: check the whole.
            bad = _stray_words([v for v in values if isinstance(v, str)])
            if bad:
                self._raise_stray_word(n, bad[0])
        return {n: sorted({_level_name(v) for v in s}) for n, s in seen.items()}

    def _raise_stray_word(self, name: str, value: str) -> None:
        base = 0
        for batch in self._slices([name]):
            hits = np.flatnonzero(np.array(batch.column(name).to_pylist(), dtype=object) == value)
            if len(hits):
                row = _RowNames(base, self._lines)(int(hits[0]))
                raise DataError(self._columns.not_numeric(name, row, value))
            base += batch.num_rows

    def text_columns(self) -> list[str]:
        """Feature columns that are not numbers (they need one-hot levels)."""
        features = [n for n in self.features if self._columns.kinds.get(n) != "numeric"]
        types = self._arrow_types
        if not types:  # parquet and JSON: look at the first chunk
            first = next(self._slices(features), None)
            if first is None:
                return []
            types = {n: first.column(n).type for n in features}
        return [
            n
            for n in features
            if self._columns.kinds.get(n) == "text"  # declared categories, even if numbers
            or not (pa.types.is_integer(types[n]) or pa.types.is_floating(types[n]))
        ]

    def __iter__(self) -> Iterator[Dataset]:
        self.rows_read = 0
        self.rows_dropped = 0
        batches = self._slices(self._read)
        present = set()  # columns with a value somewhere: the others explain an empty result
        for batch in batches:
            present.update(n for n in self._columns.used if batch.column(n).null_count < len(batch))
            chunk, problems = self._validate(batch, self.rows_read)
            if problems:
                base = self.rows_read + batch.num_rows
                for rest in batches:  # report the whole file's problems, as load_dataset does
                    problems.add(self._validate(rest, base)[1])
                    base += rest.num_rows
                problems.raise_first(self._columns)
            self.rows_read += batch.num_rows
            self.rows_dropped += chunk.rows_dropped
            if chunk.n_rows:
                yield chunk
        if self.rows_read == 0:
            raise DataError(f"{self.source} has a header but no data rows.")
        if self.rows_read == self.rows_dropped:
            raise _nothing_left(self.source, [n for n in self._columns.used if n not in present])

    def _validate(self, batch: pa.Table, base: int) -> tuple[Dataset | None, _Problems]:
        """One chunk validated; base: the rows before it in the file."""
        rows = _RowNames(base, self._lines)
        cols = {
            n: _column_to_numpy(n, batch.column(n), self.source, rows) for n in self._columns.used
        }
        passthrough = {n: batch.column(n).to_pylist() for n in self.passthrough}
        return _validate(self._columns, cols, passthrough, rows, batch.num_rows)


def should_stream(path: str, chunk_rows: int | None) -> bool:
    """Chunked fitting when asked for, or when the file is too big to read comfortably at once."""
    if chunk_rows:
        return True
    return path != "-" and os.path.exists(path) and os.path.getsize(path) > AUTO_CHUNK_BYTES


def _level_name(v) -> str:
    """A distinct value as the one-hot level load_dataset would give it."""
    if isinstance(v, bool):
        return str(v).lower()
    return number_as_text(v) if isinstance(v, (int, float)) else v
