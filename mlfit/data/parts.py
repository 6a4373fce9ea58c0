"""DATA as many parts (a glob or a directory of same-format files), read as one chunk stream.

Each part is read by its own ChunkStream, so a problem is reported exactly as it would be for
that file alone (its name, its line).  Text levels are collected over every part before the
first chunk is encoded, so the one-hot design is the one the concatenated table would give.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator

from mlfit.data.selection import Selection
from mlfit.data.sources import _Source
from mlfit.data.stream import DEFAULT_CHUNK_ROWS, ChunkStream
from mlfit.data.validate import Dataset
from mlfit.errors import DataError

#: Files a directory of parts may hold besides the parts (Spark's and Hadoop's markers).
_NOT_PARTS = ("_", ".")


def part_paths(data: str) -> list[str] | None:
    """The part files of DATA in sorted order when it is a glob or a directory, else None
    (one file, or stdin)."""
    if data == "-" or os.path.isfile(data):
        return None
    if os.path.isdir(data):
        names = sorted(n for n in os.listdir(data) if not n.startswith(_NOT_PARTS))
        paths = [os.path.join(data, n) for n in names if os.path.isfile(os.path.join(data, n))]
        if not paths:
            raise DataError(f"Directory '{data}' holds no data files; give a file or a glob.")
    elif glob.has_magic(data):
        paths = sorted(p for p in glob.glob(data) if os.path.isfile(p))
        if not paths:
            raise DataError(f"No files match '{data}'. Check the pattern (quote it in the shell).")
    else:
        return None
    return paths


def check_same_format(paths: list[str], sel: Selection) -> str:
    """The parts' common format (csv, tsv, parquet, jsonl); mixed formats are a DataError."""
    first = _Source(paths[0], sel.dialect).fmt
    for path in paths[1:]:
        fmt = _Source(path, sel.dialect).fmt
        if fmt != first:
            raise DataError(
                f"The parts of one table must share a format: {paths[0]} is {first}, "
                f"{path} is {fmt}."
            )
    return first


class PartStream:
    """Re-iterable stream of validated Dataset chunks over every part, in sorted order.

    The same interface as ChunkStream (source, target, features, levels, text_columns, rows
    counted over every part); each chunk's `source` is its part file, for messages.
    """

    def __init__(
        self,
        data: str,
        paths: list[str],
        sel: Selection,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        model: str = "this model",
    ):
        self.source = data
        self.paths = paths
        self.fmt = check_same_format(paths, sel)
        self._sel, self._chunk_rows, self._model = sel, chunk_rows, model
        first = self.part(0)
        self.target, self.features = first.target, first.features
        self.extras, self.passthrough = first.extras, first.passthrough
        self.chunk_rows = first.chunk_rows
        self.rows_read = 0
        self.rows_dropped = 0

    def part(self, i: int) -> ChunkStream:
        """The stream of part i, checked to have the first part's columns."""
        stream = ChunkStream(self.paths[i], self._sel, self._chunk_rows, model=self._model)
        if i and (stream.features, stream.target) != (self.features, self.target):
            raise DataError(
                f"{self.paths[i]} has other columns than {self.paths[0]} (features "
                f"{', '.join(stream.features)}; expected {', '.join(self.features)}): every "
                "part of a table needs the same columns."
            )
        return stream

    def parts(self) -> Iterator[ChunkStream]:
        return (self.part(i) for i in range(len(self.paths)))

    def text_columns(self) -> list[str]:
        """Feature columns that are not numbers in any part."""
        found: set[str] = set()
        for stream in self.parts():
            found.update(stream.text_columns())
        return [n for n in self.features if n in found]

    def levels(self, names: list[str]) -> dict[str, list[str]]:
        """Sorted distinct values of the text columns over every part."""
        return merge_levels(stream.levels(names) for stream in self.parts())

    def __iter__(self) -> Iterator[Dataset]:
        self.rows_read = 0
        self.rows_dropped = 0
        for stream in self.parts():
            yield from stream
            self.rows_read += stream.rows_read
            self.rows_dropped += stream.rows_dropped


def merge_levels(per_part) -> dict[str, list[str]]:
    """The union of each part's levels (column -> sorted list), sorted."""
    seen: dict[str, set] = {}
    for levels in per_part:
        for name, values in levels.items():
            seen.setdefault(name, set()).update(values)
    return {name: sorted(values) for name, values in seen.items()}


def open_chunks(data: str, sel: Selection, chunk_rows: int, model: str = "this model"):
    """A ChunkStream over DATA, or a PartStream when DATA is a glob or a directory."""
    paths = part_paths(data)
    if paths is None:
        return ChunkStream(data, sel, chunk_rows, model=model)
    return PartStream(data, paths, sel, chunk_rows, model=model)
