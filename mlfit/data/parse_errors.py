"""Explain a pyarrow parse error as one line naming the file and the bad line or row."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mlfit.data.sources import _csv_options, _Source
from mlfit.errors import DataError


def delimiter_hint(names: list[str]) -> str:
    """A one-column header holding another separator is a file mlfit split wrongly."""
    if len(names) == 1:
        for sep, name in ((";", "semicolons"), ("|", "bars"), (" ", "spaces")):
            if sep in names[0].strip():
                return (
                    f" The header is one column, '{names[0][:40]}': the file looks separated by "
                    f"{name}. Read it with --delimiter '{sep}'."
                )
    return ""


def _explain_arrow_error(
    src: _Source, exc: Exception, not_numeric: Callable[[str, str, str], str] | None = None
) -> DataError:
    """Turn a pyarrow parse error into one line naming the file and, for CSV, the bad line.

    not_numeric(column, row, value): the message for a word in a column read as numbers.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if src.fmt in ("csv", "tsv") and "Expected" in text and "columns" in text:
        line = _find_bad_line(src)
        if line is not None:
            number, found, expected = line  # number counts non-empty lines
            hint = delimiter_hint([_header_line(src)]) if expected == 1 else ""
            return DataError(
                f"{src.name}, line {_Lines(src)(number - 1)}: expected {expected} fields, found {found}."
                + (hint or " Fix or remove that row (quote fields that contain the delimiter).")
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
            value = converting.group(2)
            if not_numeric is not None:
                return DataError(not_numeric(name, row, value))
            return DataError(_stray_word_message(name, src.name, row, value))
    if src.fmt == "jsonl":
        changed = re.search(r"Column\(/([^/)]+)\) changed from (\w+) to (\w+)", text)
        bad = _find_bad_json_line(src, changed.groups() if changed else None)
        if bad is not None:
            number, reason = bad
            return DataError(f"{src.name}, line {number}: {reason}.")
    if "Empty CSV file" in text:
        return DataError(f"File '{src.name}' is empty: it needs a header row and data rows.")
    if "magic bytes not found" in text:
        return DataError(
            f"Cannot parse {src.name}: it is not a Parquet file (no Parquet footer). If it is text, "
            "rename it to .csv, .tsv or .jsonl; if it is Parquet, it is damaged: write it again."
        )
    if "Truncated compressed stream" in text or "unexpected end of" in text.lower():
        return DataError(
            f"Cannot parse {src.name}: it ends in the middle of its compressed data (a truncated "
            "download or "
            "copy?). Copy it again, or decompress what is there and check it."
        )
    if "straddl" in text:
        return DataError(
            f"Cannot parse {src.name}: a row is longer than the parser's block (over 64 MiB in one "
            "line?). Check the line endings (an old Mac file uses CR only) or split the row."
        )
    if "compression" in text.lower() or "inflate" in text.lower():
        return DataError(
            f"Cannot parse {src.name}: it is not valid {src.compression or 'compressed'} data "
            f"({text}). Check the "
            "file, or its extension."
        )
    return DataError(f"Cannot parse {src.name} as {src.fmt.upper()}: {text}")


def _header_line(src: _Source) -> str:
    with src.open() as stream:
        return stream.read(1 << 16).split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def _find_bad_line(src: _Source):
    import pyarrow.csv as pcsv

    found = []

    def handler(row):
        found.append((row.number, row.actual_columns, row.expected_columns))
        return "error"

    read, parse, convert = _csv_options(src)
    read.use_threads = False
    parse.invalid_row_handler = handler
    # pyarrow decodes the bad row's text before calling the handler; on bytes that are not
    # UTF-8 that fails inside its callback and Python would print "Exception ignored ..."
    unraisable, sys.unraisablehook = sys.unraisablehook, lambda _: None
    try:
        with src.open() as stream:
            pcsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
    except Exception:  # noqa: BLE001, S110 - we only want what the handler saw
        pass
    finally:
        sys.unraisablehook = unraisable
    return found[0] if found else None


def _find_csv_value(src: _Source, index: int, value: str):
    """(column name, 'row 12 (line 13)') of the first `value` in CSV column number `index`."""
    import pyarrow.csv as pcsv

    try:
        read, parse, convert = _csv_options(src)
        with src.open() as stream:
            name = pcsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            ).schema.names[index]
        read, parse, convert = _csv_options(src, column_types={name: pa.string()}, include=[name])
        base = 0
        with src.open() as stream:
            for batch in pcsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            ):
                hits = np.flatnonzero(np.array(batch.column(0).to_pylist(), dtype=object) == value)
                if len(hits):
                    return name, _RowNames(base, _lines(src))(int(hits[0]))
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


def _stray_word_message(name: str, src: str, row: str, value) -> str:
    return (
        f"Column '{name}' in {src} holds numbers but {row} has '{value}'. Fix that value, or "
        "mark it missing (empty) and use --na drop."
    )


class _Lines:
    """The line of a CSV/TSV file that holds data row r.  pyarrow skips empty lines, so a
    file with blank lines has its rows further down than r + 1; the file is scanned (up to
    that row, only when a message needs it) to count them."""

    def __init__(self, src: _Source):
        self._src = src

    def __call__(self, row: int) -> int:
        """row: 1-based data row (the header is row 0) -> 1-based line."""
        wanted = row + 1  # non-empty lines up to and including it, the header counted
        lines = nonempty = pending = 0  # lines ended so far; chars of the unfinished one
        with self._src.open() as stream:
            while block := stream.read(1 << 22):
                arr = np.frombuffer(block, dtype=np.uint8)
                ends = np.flatnonzero(arr == 10)
                if not len(ends):
                    pending += len(arr)
                    continue
                lengths = np.diff(ends, prepend=-1) - 1
                lengths[0] += pending
                lengths -= (ends > 0) & (arr[np.maximum(ends - 1, 0)] == 13)  # CRLF
                counted = nonempty + np.cumsum(lengths > 0)
                at = int(np.searchsorted(counted, wanted))
                if at < len(counted):
                    return lines + at + 1
                lines, nonempty = lines + len(ends), int(counted[-1])
                pending = len(arr) - int(ends[-1]) - 1
        return lines + 1  # the last line, without a newline


@dataclass(frozen=True)
class _RowNames:
    """Turns a 0-based index within a chunk into 'row 12 (line 13)' for messages."""

    base: int = 0  # rows before this chunk
    lines: _Lines | None = None  # CSV/TSV: the line of a row; None where lines mean nothing

    def __call__(self, i: int) -> str:
        row = self.base + i + 1
        return f"row {row}" + (f" (line {self.lines(row)})" if self.lines else "")


def _lines(src: _Source) -> _Lines | None:
    return _Lines(src) if src.fmt in ("csv", "tsv") else None
