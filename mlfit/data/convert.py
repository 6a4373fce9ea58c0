"""Read a whole arrow table, and turn arrow columns into numpy without importing pandas."""

from __future__ import annotations

import lzma
import math

import numpy as np
import pyarrow as pa

from mlfit.data.parse_errors import _explain_arrow_error, _RowNames
from mlfit.data.sources import _csv_options, _read_all, _Source
from mlfit.errors import DataError


def _read_arrow_table(
    src: _Source, include: list[str] | None = None, text: tuple[str, ...] = ()
) -> pa.Table:
    table = _read_arrow(src, include, text)
    header_names(table.schema, src.name)
    return table


def header_names(schema: pa.Schema, source: str) -> list[str]:
    """The column names, or one clear error when the header is not UTF-8 text."""
    try:
        return schema.names
    except UnicodeDecodeError as exc:
        raise DataError(
            f"The header of {source} is not UTF-8 text (byte {exc.object[exc.start]:#x}, e.g. "
            "Latin-1). Save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > NEW.csv."
        ) from None


def _read_arrow(src: _Source, include, text, block_size=None) -> pa.Table:
    try:
        with src.open() as stream:
            if src.fmt in ("csv", "tsv"):
                import pyarrow.csv as pcsv

                read, parse, convert = _csv_options(
                    src,
                    include=include,
                    column_types={n: pa.string() for n in text},
                    block_size=block_size,
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
        if "straddl" in str(exc) and block_size is None:  # a row longer than a block
            return _read_arrow(src, include, text, block_size=64 << 20)
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


def number_as_text(v: float) -> str:
    """A number as the level name of a category: '2' for 2.0 (as a CSV writes the code),
    else the shortest repr, '2.5'; so Parquet and CSV give the same levels."""
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def numbers_as_text(values: np.ndarray) -> np.ndarray:
    """A float64 column declared categorical as an object array of level names (None: NaN)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        out[i] = None if math.isnan(v) else number_as_text(v)
    return out


def _column_to_numpy(name: str, col, src_name: str, rows: _RowNames | None = None) -> np.ndarray:
    """float64 (NaN for missing) for numbers; object array of str (None for missing) otherwise.

    rows: names the rows of this table or chunk in messages.
    """
    import pyarrow.compute as pc

    rows = rows or _RowNames()
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        # unsafe: an integer beyond 2^53 rounds to the nearest float64, as any decimal does
        return _float64_values(pc.cast(col, pa.float64(), safe=False))
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
                    f"Column '{name}' in {src_name} is not UTF-8 text ({rows(i)} has "
                    f"{v[:40]!r}). Save the file as UTF-8."
                ) from None
    raise DataError(
        f"Column '{name}' in {src_name} has type {t}; mlfit reads numbers, text and "
        f"booleans. Convert it, or leave it out with --drop {name}."
    )
