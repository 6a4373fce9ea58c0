"""Load and validate a table for a fit, so solvers only ever see finite float64 arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlfit.data.convert import _column_to_numpy, _read_arrow_table
from mlfit.data.parse_errors import _line_offset, _RowNames, _stray_word_message
from mlfit.data.selection import Selection, _check_header, resolve_columns
from mlfit.data.sources import _Source
from mlfit.errors import DataError

#: Not used by the loader; kept because it was public.
MAX_LEVELS = 1000


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
