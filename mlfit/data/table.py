"""Read a whole table unvalidated: predict's reader until it moves to ChunkStream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mlfit.data.convert import _column_to_numpy, _read_arrow_table
from mlfit.data.selection import _check_header, unknown_column_message
from mlfit.data.sources import _Source
from mlfit.errors import DataError


@dataclass
class Table:
    """Columns by name: float64 arrays (NaN = missing) or object arrays of str (None = missing)."""

    source: str
    fmt: str
    columns: dict[str, np.ndarray]
    n_rows: int
    raw: pa.Table | None = None  # the columns as parsed, e.g. to copy an id column through


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
            raise DataError(unknown_column_message(name, names, src.name, (roles or {}).get(name)))
    cols = {name: _column_to_numpy(name, table.column(name), src.name) for name in wanted}
    return Table(src.name, src.fmt, cols, table.num_rows, table)
