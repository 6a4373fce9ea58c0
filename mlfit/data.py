"""Read a table (CSV/TSV, Parquet, JSON Lines; compressed; or stdin) and validate it for a fit.

Everything the user can get wrong about their input is checked here, so solvers only ever
see finite float64 arrays.  pyarrow does the parsing: it rounds decimals correctly and is the
fastest reader that also streams, so pandas is never imported on the command path.
"""

from __future__ import annotations

import difflib
import io
import lzma
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from mlfit.errors import DataError

_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_COMPRESSION_EXT = (".gz", ".bz2", ".xz", ".zst", ".zstd")
_FORMAT_EXT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
MAX_LEVELS = 1000
#: CSV bytes parsed at a time when streaming: pyarrow's peak memory grows with it (about 120 MB
#: at 1 MiB, 240 MB at 4 MiB, measured), while larger blocks barely parse faster.
STREAM_BLOCK_BYTES = 1 << 20
#: Above this many bytes on disk a chunked (one pass, bounded memory) fit is used automatically.
AUTO_CHUNK_BYTES = 1 << 30
DEFAULT_CHUNK_ROWS = 65_536
#: A chunk never holds more than this many bytes of float64 values, whatever --chunk-rows says:
#: each chunk is copied a few times on its way to the solver (arrow, numpy, design, solver).
MAX_CHUNK_BYTES = 8 << 20


@dataclass
class Table:
    """Columns by name: float64 arrays (NaN = missing) or object arrays of str (None = missing)."""

    source: str
    fmt: str
    columns: dict[str, np.ndarray]
    n_rows: int
    raw: pa.Table | None = None  # the columns as parsed, e.g. to copy an id column through


@dataclass
class Dataset:
    """The validated rows a model is fitted on: named feature columns and the target."""

    source: str
    target: str
    features: list[str]
    columns: dict[str, np.ndarray]
    y: np.ndarray
    rows_read: int
    rows_dropped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Selection:
    """What the user asked for: which columns, and what to do with missing values."""

    target: str | None = None
    features: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    na: str = "error"


# --------------------------------------------------------------------------- opening files


class _Source:
    """A path or '-' that can be opened (decompressed) any number of times."""

    def __init__(self, path: str):
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        self._stdin_bytes: bytes | None = None
        if path == "-":
            self._stdin_bytes = sys.stdin.buffer.read()
            if not self._stdin_bytes:
                raise DataError(
                    "Standard input is empty: pipe a table into mlfit or give a file path."
                )
            self.size = len(self._stdin_bytes)
        else:
            if not os.path.exists(path):
                raise DataError(f"File '{path}' not found.")
            if os.path.isdir(path):
                raise DataError(f"'{path}' is a directory; give a data file.")
            try:
                self.size = os.path.getsize(path)
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise DataError(f"Cannot read '{path}': {exc.strerror}.") from None
            if self.size == 0:
                raise DataError(f"File '{path}' is empty: it needs a header row and data rows.")
        self.compression = self._detect_compression()
        self.fmt = self._detect_format()

    def _head(self, n: int = 8) -> bytes:
        if self._stdin_bytes is not None:
            return self._stdin_bytes[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def _detect_compression(self) -> str | None:
        head = self._head()
        for magic, kind in _MAGIC.items():
            if head.startswith(magic):
                return kind
        return None

    def _detect_format(self) -> str:
        base = self.path.lower()
        for ext in _COMPRESSION_EXT:
            base = base.removesuffix(ext)
        for ext, fmt in _FORMAT_EXT.items():
            if base.endswith(ext):
                return fmt
        with self.open() as stream:
            head = stream.read(65536)
        if head.startswith(b"PAR1"):
            return "parquet"
        if head.lstrip()[:1] == b"{":
            return "jsonl"
        first = head.split(b"\n", 1)[0]
        return "tsv" if first.count(b"\t") > first.count(b",") else "csv"

    def open(self) -> pa.NativeFile:
        """A readable, decompressed stream of the file's bytes."""
        raw = (
            pa.BufferReader(self._stdin_bytes)
            if self._stdin_bytes is not None
            else pa.OSFile(self.path, "rb")
        )
        if self.compression is None:
            return raw
        if self.compression == "xz":
            return pa.PythonFile(lzma.open(_NativeAsPython(raw)), mode="r")
        return pa.CompressedInputStream(raw, self.compression)


def _read_all(stream: pa.NativeFile) -> bytes:
    """All remaining bytes; read() without a size needs seeking, which the xz stream lacks."""
    return b"".join(iter(lambda: stream.read(1 << 20), b""))


class _NativeAsPython(io.RawIOBase):
    """Let Python's lzma read from a pyarrow stream (pyarrow has no xz codec)."""

    def __init__(self, native: pa.NativeFile):
        self._native = native

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self._native.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._native.close()
        super().close()


# --------------------------------------------------------------------------- parsing


def _csv_options(fmt: str, column_types=None, include=None, block_size=None):
    import pyarrow.csv as pcsv

    read = pcsv.ReadOptions(block_size=block_size) if block_size else pcsv.ReadOptions()
    parse = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
    convert = pcsv.ConvertOptions(
        column_types=column_types or {}, include_columns=include or [], strings_can_be_null=True
    )
    return read, parse, convert


def _explain_arrow_error(src: _Source, exc: Exception) -> DataError:
    """Turn a pyarrow parse error into one line naming the file and, for CSV, the bad line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if src.fmt in ("csv", "tsv") and "Expected" in text and "columns" in text:
        line = _find_bad_line(src)
        if line is not None:
            number, found, expected = line
            return DataError(
                f"{src.name}, line {number}: expected {expected} fields, found {found}. "
                "Fix or remove that row (quote fields that contain the delimiter)."
            )
    converting = re.search(
        r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: "
        r"invalid value '(.*)'",
        text,
    )
    if src.fmt in ("csv", "tsv") and converting:  # a chunked read fixed the column as numbers
        found = _find_csv_value(src, int(converting.group(1)), converting.group(2))
        if found is not None:
            name, row = found
            return DataError(_stray_word_message(name, src.name, row, converting.group(2)))
    if src.fmt == "jsonl":
        changed = re.search(r"Column\(/([^/)]+)\) changed from (\w+) to (\w+)", text)
        bad = _find_bad_json_line(src, changed.groups() if changed else None)
        if bad is not None:
            number, reason = bad
            return DataError(f"{src.name}, line {number}: {reason}.")
    if "Empty CSV file" in text:
        return DataError(f"File '{src.name}' is empty: it needs a header row and data rows.")
    return DataError(f"Cannot parse {src.name} as {src.fmt.upper()}: {text}")


def _find_bad_line(src: _Source):
    import pyarrow.csv as pcsv

    found = []

    def handler(row):
        found.append((row.number, row.actual_columns, row.expected_columns))
        return "error"

    read, parse, convert = _csv_options(src.fmt)
    read.use_threads = False
    parse.invalid_row_handler = handler
    try:
        with src.open() as stream:
            pcsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
    except Exception:  # noqa: BLE001, S110 - we only want what the handler saw
        pass
    return found[0] if found else None


def _find_csv_value(src: _Source, index: int, value: str):
    """(column name, 'row 12 (line 13)') of the first `value` in CSV column number `index`."""
    import pyarrow.csv as pcsv

    try:
        read, parse, convert = _csv_options(src.fmt)
        with src.open() as stream:
            name = pcsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            ).schema.names[index]
        read, parse, convert = _csv_options(
            src.fmt, column_types={name: pa.string()}, include=[name]
        )
        base = 0
        with src.open() as stream:
            for batch in pcsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            ):
                hits = np.flatnonzero(np.array(batch.column(0).to_pylist(), dtype=object) == value)
                if len(hits):
                    return name, _RowNames(base, _line_offset(src.fmt))(int(hits[0]))
                base += batch.num_rows
    except (pa.ArrowInvalid, OSError, IndexError):
        return None
    return None


def _find_bad_json_line(src: _Source, changed: tuple[str, str, str] | None = None):
    """(line number, reason) of the first line that is not a JSON object, or, with changed =
    (column, old kind, new kind) from pyarrow, whose column holds the new kind.  pyarrow's own
    row numbers count from 0 within a block, so they cannot be shown."""
    number, rest = 0, b""
    with src.open() as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            *lines, rest = (rest + block).split(b"\n")
            for line in lines:
                number += 1
                reason = _json_line_problem(line, changed)
                if reason:
                    return number, reason
    reason = _json_line_problem(rest, changed)
    return (number + 1, reason) if reason else None


_JSON_KINDS = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _json_line_problem(line: bytes, changed: tuple[str, str, str] | None) -> str | None:
    import json

    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except ValueError as exc:
        return (
            f"invalid JSON ({getattr(exc, 'msg', exc)}). Fix or remove that line (JSON Lines "
            "needs one object per line)"
        )
    if not isinstance(value, dict):
        return "not a JSON object. Fix or remove that line (JSON Lines needs one object per line)"
    if changed:
        name, old, new = changed
        v = value.get(name)
        kinds = _JSON_KINDS.get(new, ())
        if isinstance(v, kinds) and not (new == "number" and isinstance(v, bool)):
            return (
                f"column '{name}' has the {new} {json.dumps(v)[:40]} but earlier lines have "
                f"{old}s. Give each column one type"
            )
    return None


def _read_arrow_table(
    src: _Source, include: list[str] | None = None, text: tuple[str, ...] = ()
) -> pa.Table:
    try:
        with src.open() as stream:
            if src.fmt in ("csv", "tsv"):
                import pyarrow.csv as pcsv

                read, parse, convert = _csv_options(
                    src.fmt, include=include, column_types={n: pa.string() for n in text}
                )
                return pcsv.read_csv(
                    stream, read_options=read, parse_options=parse, convert_options=convert
                )
            if src.fmt == "parquet":
                import pyarrow.parquet as pq

                data = stream if src.compression is None else pa.BufferReader(_read_all(stream))
                return pq.read_table(data, columns=include)
            import pyarrow.json as pjson

            table = pjson.read_json(stream)
            return table.select(include) if include else table
    except (
        pa.ArrowInvalid,
        pa.ArrowNotImplementedError,
        pa.ArrowTypeError,
        OSError,
        EOFError,
        lzma.LZMAError,
    ) as exc:
        raise _explain_arrow_error(src, exc) from None


def _float64_values(col: pa.Array) -> np.ndarray:
    """A float64 arrow array as numpy, NaN where null, read from its buffers.

    (Array.to_numpy and pa.array import pandas, 0.15-0.6 s and 50 MB, apache/arrow#34994.)
    Without nulls the result is a read-only view of the arrow memory.
    """
    validity, data = col.buffers()[:2]
    values = np.frombuffer(data, dtype=np.float64, count=len(col), offset=col.offset * 8)
    if col.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        values = values.copy()
        values[bits[col.offset : col.offset + len(col)] == 0] = np.nan
    return values


def _valid_rows(table) -> pa.ChunkedArray | pa.Array:
    """Arrow mask of rows with no null (and no NaN) in any column, built without pandas."""
    import pyarrow.compute as pc

    mask = None
    for col in table.columns:
        valid = pc.is_valid(col)
        if pa.types.is_floating(col.type):
            valid = pc.and_(valid, pc.invert(pc.is_nan(col)))
        mask = valid if mask is None else pc.and_(mask, valid)
    return mask


def _column_to_numpy(name: str, col, src_name: str) -> np.ndarray:
    """float64 (NaN for missing) for numbers; object array of str (None for missing) otherwise."""
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _float64_values(pc.cast(col, pa.float64()))
    if pa.types.is_boolean(t):
        out = np.array(col.to_pylist(), dtype=object)
        mask = out != None
        out[mask] = np.where(out[mask].astype(bool), "true", "false")
        return out
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return np.array(pc.cast(col, pa.string()).to_pylist(), dtype=object)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):  # how pyarrow reads bad UTF-8
        for i, v in enumerate(col.to_pylist()):
            try:
                v is None or v.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(
                    f"Column '{name}' in {src_name} is not UTF-8 text (row {i + 1} has "
                    f"{v[:40]!r}). Save the file as UTF-8."
                ) from None
    raise DataError(
        f"Column '{name}' in {src_name} has type {t}; mlfit reads numbers, text and "
        f"booleans. Convert it, or leave it out with --drop {name}."
    )


def _reject_numeric_looking_text(name: str, values: np.ndarray, src: str, rows: _RowNames) -> None:
    """A number column with a stray word in it must not silently become a categorical column."""
    bad = _stray_words([v for v in dict.fromkeys(values) if v is not None])
    if bad:
        row = int(np.flatnonzero(values == bad[0])[0])
        raise DataError(_stray_word_message(name, src, rows(row), bad[0]))


def _stray_words(present: list) -> list:
    """The non-numbers among distinct values that are otherwise numbers (at most 1 in 10)."""
    if len(present) < 3:
        return []
    bad = [v for v in present if not is_number(v)]
    return bad if bad and len(bad) <= max(1, len(present) // 10) else []


def _stray_word_message(name: str, src: str, row: str, value) -> str:
    return (
        f"Column '{name}' in {src} holds numbers but {row} has '{value}'. Fix that value, or "
        "mark it missing (empty) and use --na drop."
    )


@dataclass(frozen=True)
class _RowNames:
    """Turns a 0-based index within a chunk into 'row 12 (line 13)' for messages."""

    base: int = 0  # rows before this chunk
    line_offset: int = 0  # 2 for CSV/TSV: data row 1 is line 2; 0 where lines mean nothing

    def __call__(self, i: int) -> str:
        row = self.base + i + 1
        return f"row {row}" + (f" (line {row + self.line_offset - 1})" if self.line_offset else "")


def read_table(
    path: str,
    columns: list[str] | None = None,
    roles: dict[str, str] | None = None,
    text: tuple[str, ...] = (),
) -> Table:
    """Read a whole table into memory. columns: only these (all checked to exist).

    roles: what a column is for, named in the message when it is missing.  text: CSV/TSV
    columns to keep as the text written (an identifier '007' must not become 7).
    """
    src = _Source(path)
    table = _read_arrow_table(src, text=text)
    names = table.column_names
    _check_header(names, src.name)
    if table.num_rows == 0:
        raise DataError(f"{src.name} has a header but no data rows.")
    wanted = names if columns is None else columns
    for name in wanted:
        if name not in names:
            message = unknown_column_message(name, names, src.name)
            if roles and name in roles:
                message = message.replace("not found", f"({roles[name]}) not found", 1)
            raise DataError(message)
    cols = {name: _column_to_numpy(name, table.column(name), src.name) for name in wanted}
    return Table(src.name, src.fmt, cols, table.num_rows, table)


def _check_header(names: list[str], src: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise DataError(f"{src} has two columns named '{name}'; column names must be unique.")
        seen.add(name)


def unknown_column_message(name: str, names: list[str], src: str) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"Column '{name}' not found in {src}.{hint} Columns: {shown}."


# --------------------------------------------------------------------------- selection


def resolve_columns(names: list[str], sel: Selection, src: str) -> tuple[str, list[str]]:
    """Target and feature names from the user's options; every name checked to exist."""
    for name in [*(sel.features or ()), *sel.drop, *([sel.target] if sel.target else [])]:
        if name not in names:
            raise DataError(unknown_column_message(name, names, src))
    target = sel.target or names[-1]
    if target in sel.drop:
        raise DataError(
            f"Column '{target}' is the target and cannot be dropped; choose another "
            "target with --target."
        )
    if sel.features is not None:
        if target in sel.features:
            raise DataError(f"Column '{target}' is the target; remove it from --features.")
        features = [f for f in sel.features if f not in sel.drop]
    else:
        features = [n for n in names if n != target and n not in sel.drop]
    if not features:
        raise DataError(
            f"No feature columns left in {src}: give --features, or drop fewer columns."
        )
    return target, features


def _line_offset(fmt: str) -> int:
    return 2 if fmt in ("csv", "tsv") else 0  # data row 1 is line 2, after the header


def load_dataset(
    path: str, sel: Selection, target_kind: str = "numeric", model: str = "this model"
) -> Dataset:
    """Load, select and validate. target_kind: 'numeric' (regression) or 'label' (classes)."""
    src = _Source(path)
    table = _read_arrow_table(src)
    _check_header(table.column_names, src.name)
    if table.num_rows == 0:
        raise DataError(f"{src.name} has a header but no data rows.")
    target, features = resolve_columns(table.column_names, sel, src.name)
    cols = {n: _column_to_numpy(n, table.column(n), src.name) for n in [*features, target]}
    rows = _RowNames(0, _line_offset(src.fmt))
    return _validate(
        src.name, cols, target, features, sel.na, target_kind, model, rows, table.num_rows
    )


def _missing(values: np.ndarray) -> np.ndarray:
    return values == None if values.dtype == object else np.isnan(values)


def _validate(
    src, cols, target, features, na, target_kind, model, rows: _RowNames, n_rows
) -> Dataset:
    for name in features:
        if cols[name].dtype == object:
            _reject_numeric_looking_text(name, cols[name], src, rows)
    y = cols.pop(target)
    if target_kind == "numeric" and y.dtype == object:
        present = y[y != None]
        try:
            y = np.array([np.nan if v is None else float(v) for v in y])
        except ValueError:
            example = next(v for v in present if not is_number(v))
            row = int(np.flatnonzero(y == example)[0])
            raise DataError(
                f"Target column '{target}' in {src} is not numeric ({rows(row)} has "
                f"'{example}'); {model} needs a numeric target."
            ) from None
    missing = {name: _missing(v) for name, v in [*cols.items(), (target, y)]}
    counts = {name: int(m.sum()) for name, m in missing.items() if m.any()}
    rows_dropped = 0
    keep = None
    if counts:
        if na != "drop":
            raise _MissingValues(src, counts)
        keep = ~np.logical_or.reduce([missing[n] for n in counts])
        rows_dropped = int(n_rows - keep.sum())
        cols = {n: v[keep] for n, v in cols.items()}
        y = y[keep]
        if len(y) == 0:
            raise DataError(f"Every row of {src} has a missing value; nothing is left to fit.")
    original_rows = np.flatnonzero(keep) if keep is not None else None
    for name, values in [*cols.items(), (target, y)]:
        if values.dtype != object:
            bad = ~np.isfinite(values)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                row = int(original_rows[i]) if original_rows is not None else i
                raise DataError(
                    f"Column '{name}' in {src} has an infinite value at {rows(row)}; "
                    "fix or remove it."
                )
    notes = [f"dropped {rows_dropped} row(s) with missing values"] if rows_dropped else []
    return Dataset(src, target, features, cols, y, n_rows, rows_dropped, notes)


class _MissingValues(DataError):
    """Missing values under --na error; keeps the counts so a chunked read can total them."""

    def __init__(self, src: str, counts: dict[str, int]):
        self.counts = counts
        listed = ", ".join(f"'{n}' ({c} row{'s' if c > 1 else ''})" for n, c in counts.items())
        super().__init__(
            f"Missing values in {src}: {listed}. Use --na drop to drop those rows, or fill them in."
        )


def is_number(v) -> bool:
    """Whether float(v) works: a number, or text that spells one."""
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- streaming


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
