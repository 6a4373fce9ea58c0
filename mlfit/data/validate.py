"""Load and validate a table for a command, so models only ever see finite float64 numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from mlfit.data.convert import _column_to_numpy, _read_arrow_table, numbers_as_text
from mlfit.data.parse_errors import _lines, _RowNames
from mlfit.data.selection import Selection, _check_header, _Columns, _resolve
from mlfit.data.sources import _Source
from mlfit.domains import column_domain_message, domain_message, outside
from mlfit.errors import DataError


@dataclass
class Dataset:
    """Validated rows: the feature columns, the target, numeric extras and copied columns."""

    source: str
    target: str | None  # None for a model without a target
    features: list[str]
    columns: dict[str, np.ndarray]  # the features only: float64, or object arrays of str
    y: np.ndarray | None
    rows_read: int
    rows_dropped: int = 0
    notes: list[str] = field(default_factory=list)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # role -> float64
    passthrough: dict[str, list] = field(default_factory=dict)  # column -> values as read
    n_rows: int = field(kw_only=True)  # rows kept


def load_dataset(path: str, sel: Selection, model: str = "this model") -> Dataset:
    """Read the whole file, then select and validate its columns as `sel` says.

    model: the command's name, for messages ("normal-eq needs a numeric target").
    """
    src = _Source(path, sel.dialect)
    table = _read_arrow_table(src, text=tuple(sel.csv_text()))
    _check_header(table.column_names, src.name)
    if table.num_rows == 0:
        raise DataError(f"{src.name} has a header but no data rows.")
    columns = _resolve(table.column_names, sel, src.name, model)
    rows = _RowNames(0, _lines(src))
    cols = {n: _column_to_numpy(n, table.column(n), src.name, rows) for n in columns.used}
    passthrough = {n: table.column(n).to_pylist() for n in columns.passthrough}
    dataset, problems = _validate(columns, cols, passthrough, rows, table.num_rows)
    problems.raise_first(columns)
    if dataset.n_rows == 0:
        raise _nothing_left(src.name, [n for n in columns.used if _missing(cols[n]).all()])
    return dataset


def _nothing_left(src: str, empty: list[str]) -> DataError:
    """Every row dropped; empty: the columns with no value at all, usually the cause."""
    if empty:
        listed = ", ".join(f"'{n}'" for n in empty)
        return DataError(
            f"Every row of {src} has a missing value: column(s) {listed} have no value at "
            f"all. Leave them out with --drop {','.join(empty)}."
        )
    return DataError(f"Every row of {src} has a missing value; nothing is left to fit.")


@dataclass
class _Problems:
    """What is wrong with a table, gathered chunk by chunk, so that a chunked read reports what
    a read of the whole file would: the first bad row of a column, the total missing count."""

    text: dict[str, str] = field(default_factory=dict)  # column -> message (first bad row)
    missing: dict[str, int] = field(default_factory=dict)  # column -> count, under --na error
    first_missing: str | None = None  # e.g. 'row 2 (line 3)': the first row with one
    infinite: dict[str, str] = field(default_factory=dict)  # column -> message (first bad row)
    domain: str | None = None  # the target outside its domain: the message (first bad row)

    def __bool__(self) -> bool:
        return bool(self.text or self.missing or self.infinite or self.domain)

    def add(self, later: _Problems) -> None:
        for name, message in later.text.items():
            self.text.setdefault(name, message)
        for name, count in later.missing.items():
            self.missing[name] = self.missing.get(name, 0) + count
        if self.first_missing is None:
            self.first_missing = later.first_missing
        for name, message in later.infinite.items():
            self.infinite.setdefault(name, message)
        self.domain = self.domain or later.domain

    def raise_first(self, columns: _Columns) -> None:
        """Text in numbers first, then missing values, then infinities; columns in order."""
        for name in columns.used:
            if name in self.text:
                raise DataError(self.text[name])
        if self.missing:
            counts = {n: self.missing[n] for n in columns.used if n in self.missing}
            listed = ", ".join(f"'{n}' ({c} row{'s' if c > 1 else ''})" for n, c in counts.items())
            hint = (
                "The model needs every value: fill them in or remove those rows."
                if columns.na == "required"
                else "Use --na drop to drop those rows, or fill them in."
            )
            raise DataError(
                f"Missing values in {columns.source}: {listed}; the first at "
                f"{self.first_missing}. {hint}"
            )
        for name in columns.used:
            if name in self.infinite:
                raise DataError(self.infinite[name])
        if self.domain:
            raise DataError(self.domain)


def _validate(
    columns: _Columns,
    cols: dict[str, np.ndarray],
    passthrough: dict[str, list],
    rows: _RowNames,
    n_rows: int,
) -> tuple[Dataset | None, _Problems]:
    """The Dataset of one table or chunk (None if it has problems) and its problems.

    cols: every used column as numpy; passthrough: the copied columns as lists.
    """
    problems = _Problems()
    for name in columns.features:  # declared categories read as numbers (Parquet, JSON)
        if columns.kinds.get(name) == "text" and cols[name].dtype != object:
            cols[name] = numbers_as_text(cols[name])
    for name in columns.used:
        if cols[name].dtype != object:
            continue
        formatted = None
        if columns.must_be_numeric(name):
            cols[name], bad = _as_numbers(cols[name])
            if bad is not None and _FORMATTED.match(str(cols[name][bad])):
                formatted = bad
        elif name in columns.features and name not in columns.kinds:
            formatted = _first_formatted_number(cols[name])  # '1,000' must not be a category
            bad = _first_stray_word(cols[name])  # nor a stray word in a column of numbers
        else:
            bad = None
        if formatted is not None:
            droppable = name in columns.features
            problems.text[name] = _formatted_message(
                columns.named(name),
                columns.source,
                rows(formatted),
                cols[name][formatted],
                name if droppable else None,
            )
        elif bad is not None:
            problems.text[name] = columns.not_numeric(name, rows(bad), cols[name][bad])
    missing = {n: _missing(cols[n]) for n in columns.used}
    counts = {n: int(m.sum()) for n, m in missing.items() if m.any()}
    keep = None
    if counts and columns.na == "drop":
        keep = ~np.logical_or.reduce([missing[n] for n in counts])
        cols = {n: v[keep] for n, v in cols.items()}
        passthrough = {n: [v for v, k in zip(vs, keep) if k] for n, vs in passthrough.items()}
    elif counts:
        problems.missing = counts
        first = int(np.argmax(np.logical_or.reduce([missing[n] for n in counts])))
        problems.first_missing = rows(first)
    for name in columns.used:
        if cols[name].dtype != object:
            bad = np.flatnonzero(np.isinf(cols[name]))
            if len(bad):
                row = int(bad[0] if keep is None else np.flatnonzero(keep)[bad[0]])
                problems.infinite[name] = (
                    f"Column '{name}' in {columns.source} has an infinite value at "
                    f"{rows(row)}; fix or remove it."
                )
    if columns.target_domain and not problems and cols[columns.target].dtype != object:
        problems.domain = _outside_domain(columns, cols[columns.target], keep, rows)
    if columns.extra_domains and not problems:  # e.g. weights: non-negative
        problems.domain = _extra_outside_domain(columns, cols, keep, rows)
    if columns.target_bounds and not problems:  # successes <= trials
        problems.domain = _above_bound(columns, cols, keep, rows)
    if problems:
        return None, problems
    dropped = 0 if keep is None else int(n_rows - keep.sum())
    dataset = Dataset(
        source=columns.source,
        target=columns.target,
        features=list(columns.features),
        columns={n: cols[n] for n in columns.features},
        y=cols[columns.target] if columns.target else None,
        rows_read=n_rows,
        rows_dropped=dropped,
        notes=[f"dropped {dropped} row(s) with missing values"] if dropped else [],
        extras={role: cols[col] for role, col in columns.extras.items()},
        passthrough=passthrough,
        n_rows=n_rows - dropped,
    )
    return dataset, problems


def _outside_domain(columns: _Columns, y: np.ndarray, keep, rows: _RowNames) -> str | None:
    """The message for the first target value outside the model's domain, if any."""
    domain, needed_by = columns.target_domain
    bad = np.flatnonzero(outside(domain, y))
    if not len(bad):
        return None
    row = int(bad[0] if keep is None else np.flatnonzero(keep)[bad[0]])
    where = f"{rows(row)} of {columns.source}"
    return domain_message(domain, columns.target, needed_by, where, y[bad[0]])


def _extra_outside_domain(columns: _Columns, cols: dict, keep, rows: _RowNames) -> str | None:
    """The message for the first value of an extra column outside its role's domain."""
    for role, (domain, needed_by) in columns.extra_domains.items():
        name = columns.extras[role]
        bad = np.flatnonzero(outside(domain, cols[name]))
        if len(bad):
            row = int(bad[0] if keep is None else np.flatnonzero(keep)[bad[0]])
            where = f"{rows(row)} of {columns.source}"
            value = cols[name][bad[0]]
            return column_domain_message(columns.named(name), domain, needed_by, where, value)
    return None


def _above_bound(columns: _Columns, cols: dict, keep, rows: _RowNames) -> str | None:
    """The message for the first row whose target exceeds a bounding column (the trials)."""
    y = cols[columns.target]
    for role in columns.target_bounds:
        name = columns.extras[role]
        bad = np.flatnonzero(y > cols[name])
        if len(bad):
            i = int(bad[0])
            row = i if keep is None else int(np.flatnonzero(keep)[i])
            return (
                f"Target '{columns.target}' is {y[i]:g} at {rows(row)} of {columns.source}, "
                f"more than the {cols[name][i]:g} trials in column '{name}': it counts the "
                "successes out of those trials."
            )
    return None


def _missing(values: np.ndarray) -> np.ndarray:
    return values == None if values.dtype == object else np.isnan(values)


def _as_numbers(values: np.ndarray) -> tuple[np.ndarray, int | None]:
    """float64 of text that spells numbers (None: NaN), or the values and the first bad index."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except ValueError:
            return values, i
    return out, None


#: A number written with formatting: thousands separators, a decimal comma, %, a currency.
_FORMATTED = re.compile(
    r"^\s*[-+(]?\s*[$€£¥]?\s*[-+]?(\d{1,3}(,\d{3})+|\d+)([.,]\d+)?\s*%?\s*\)?\s*$"
)


def _first_formatted_number(values: np.ndarray) -> int | None:
    """Index of the first value of a text column whose every value is a formatted number."""
    present = [v for v in dict.fromkeys(values) if v is not None]
    if all(is_number(v) or _FORMATTED.match(v) for v in present):
        first = next((v for v in present if not is_number(v)), None)
        if first is not None:
            return int(np.flatnonzero(values == first)[0])
    return None


def _formatted_message(named: str, src: str, row: str, value, drop: str | None) -> str:
    """drop: the feature's name, for the advice to leave it out (not for a target)."""
    advice = f", or leave it out with --drop {drop}" if drop else ""
    if re.match(r"^\s*[-+]?\d+,\d+\s*$", str(value)):  # 3,25 or 1,000: a decimal comma?
        advice = f"; for decimal commas use --decimal , (with the file's --delimiter){advice}"
    return (
        f"{named} in {src} holds numbers written with formatting ({row} has '{value}': "
        "thousands separators, a decimal comma, % or a currency sign); mlfit reads plain "
        f"numbers only (1000.5). Remove the formatting{advice}."
    )


def _first_stray_word(values: np.ndarray) -> int | None:
    """Index of the first word in a column of numbers written as text, if it has one."""
    bad = _stray_words([v for v in dict.fromkeys(values) if v is not None])
    return int(np.flatnonzero(values == bad[0])[0]) if bad else None


def _stray_words(present: list) -> list:
    """The non-numbers among distinct values that are otherwise numbers (at most 1 in 10)."""
    if len(present) < 3:
        return []
    bad = [v for v in present if not is_number(v)]
    return bad if bad and len(bad) <= max(1, len(present) // 10) else []


def is_number(v) -> bool:
    """Whether float(v) works: a number, or text that spells one."""
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
