"""Design matrix: one-hot text columns and polynomial terms, the same at fit and predict time.

Column order (the parameter order after the intercept):
  1. every feature in the order given; a text or boolean column expands in place into one
     0/1 column per level, named `col=level` (the first level in sorted order is left out when
     the model has an intercept, or when an earlier text column already spans the intercept;
     a categorical design, for models that treat each text column as one categorical
     variable such as naive Bayes, keeps every level of every text column);
  2. with --poly D >= 2, then every monomial of total degree 2..D in the numeric features,
     degree by degree, in lexicographic order of the features: for x1, x2 and D = 2 that is
     x1^2, x1*x2, x2^2.  Text columns are not raised to powers or crossed.

Products are returned as a double-double pair (hi, lo) with hi + lo exact to about 1e-32: the
rounding of x**k to float64 alone costs up to 7 digits on ill-conditioned polynomial fits
(NIST Filip), and normal-eq's refinement uses lo to recover them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np

from mlfit.errors import DataError
from mlfit.numerics import dd_times

#: A text column with more distinct values than this is probably an identifier.
MAX_LEVELS = 1000


@dataclass
class Design:
    """The encoding fitted on training data; serialised into the model file."""

    features: list[str]
    levels: dict[str, list[str]]  # text column -> all levels seen at fit time, sorted
    dropped_level: dict[str, bool]  # text column -> whether its first level is left out
    poly: int
    monomials: list[tuple[int, ...]]  # degree >= 2 terms, indices into numeric_features
    # every level kept, and a level never seen in training is a row of zeros in its columns
    # (the model smooths it) rather than an error
    categorical: bool = False

    @property
    def numeric_features(self) -> list[str]:
        return [f for f in self.features if f not in self.levels]

    @property
    def names(self) -> list[str]:
        names = []
        for f in self.features:
            if f in self.levels:
                levels = self.levels[f][1:] if self.dropped_level[f] else self.levels[f]
                names.extend(f"{f}={lv}" for lv in levels)
            else:
                names.append(f)
        numeric = self.numeric_features
        names.extend(_monomial_name(m, numeric) for m in self.monomials)
        return names

    @property
    def one_hot(self) -> dict[str, list[int]]:
        """Text column -> the indices of its 0/1 columns in the design."""
        out, j = {}, 0
        for f in self.features:
            if f in self.levels:
                k = len(self.levels[f]) - (1 if self.dropped_level[f] else 0)
                out[f] = list(range(j, j + k))
                j += k
            else:
                j += 1
        return out

    def transform(self, columns: dict[str, np.ndarray], source: str = "the data", first_row=0):
        """Build the matrix. Returns (hi, lo): float64 (n, p) each, Fortran-ordered (filled a
        column at a time, the layout LAPACK wants); lo is None without products.

        first_row: rows of the file before these (a chunk), so messages name the file's row.
        """
        n = len(next(iter(columns.values())))
        blocks = []
        for f in self.features:
            values = columns[f]
            if f in self.levels:
                blocks.append(self._one_hot(f, values, source, first_row))
            else:
                blocks.append(np.asarray(values, dtype=float))
        numeric = [np.asarray(columns[f], dtype=float) for f in self.numeric_features]
        cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        products = [_monomial(m, numeric, cache) for m in self.monomials]
        width = sum(1 if b.ndim == 1 else b.shape[1] for b in blocks) + len(products)
        hi = np.empty((n, width), order="F")
        j = 0
        for b in blocks:
            k = 1 if b.ndim == 1 else b.shape[1]
            hi[:, j : j + k] = b[:, None] if b.ndim == 1 else b
            j += k
        if not products:
            return hi, None
        lo = np.zeros((n, width), order="F")
        first = j
        for h, e in products:
            hi[:, j], lo[:, j] = h, e
            j += 1
        overflow = ~np.all(np.isfinite(hi[:, first:]), axis=0)
        if overflow.any():  # the data are finite: only a product can overflow
            term = self.names[first + int(np.flatnonzero(overflow)[0])]
            raise DataError(
                f"The polynomial term '{term}' overflows float64 in {source} (the values are "
                "too large to raise to that power). Rescale the features (e.g. divide by a "
                "power of ten) or lower --poly."
            )
        return hi, lo

    def _one_hot(self, f: str, values: np.ndarray, source: str, first_row: int) -> np.ndarray:
        levels = self.levels[f]
        if values.dtype != object:  # text when fitted ('1', '2', 'G'), numbers here (Parquet)
            by_value = {float(lv): lv for lv in reversed(levels) if _is_number(lv)}
            values = np.array([by_value.get(float(v), f"{v:g}") for v in values], dtype=object)
        index = {lv: i for i, lv in enumerate(levels)}
        codes = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
        if (codes < 0).any():  # '2.0' or '02' for the level '2' (a code written another way)
            by_number = {
                float(lv): i for i, lv in reversed(list(enumerate(levels))) if _is_number(lv)
            }
            for row in np.flatnonzero(codes < 0):
                if isinstance(values[row], str) and _is_number(values[row]):
                    codes[row] = by_number.get(float(values[row]), -1)
        if (codes < 0).any() and not self.categorical:
            row = int(np.flatnonzero(codes < 0)[0])
            shown = ", ".join(levels[:10]) + (", ..." if len(levels) > 10 else "")
            raise DataError(
                f"Column '{f}' in {source} has value '{values[row]}' at row "
                f"{first_row + row + 1}, "
                f"which the model never saw (levels: {shown}). Map it to a known level "
                "or refit with data that contains it."
            )
        start = 1 if self.dropped_level[f] else 0
        out = np.zeros((len(values), len(levels) - start))
        rows = np.flatnonzero(codes >= start)
        out[rows, codes[rows] - start] = 1.0
        return out

    def to_dict(self) -> dict:
        out = {
            "features": self.features,
            "levels": self.levels,
            "dropped_level": self.dropped_level,
            "poly": self.poly,
            "monomials": [list(m) for m in self.monomials],
            "names": self.names,
        }
        if self.categorical:  # only then, so other models' files are unchanged
            out["categorical"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Design:
        """Read and check a model file's design; ValueError when it is not consistent."""
        features, levels, dropped = d["features"], d["levels"], d["dropped_level"]
        poly, monomials = d["poly"], d["monomials"]
        categorical = d.get("categorical", False)
        if not (
            isinstance(features, list)
            and all(isinstance(f, str) for f in features)
            and isinstance(levels, dict)
            and all(f in features and isinstance(v, list) and v for f, v in levels.items())
            and isinstance(dropped, dict)
            and set(dropped) == set(levels)
            and all(isinstance(v, bool) for v in dropped.values())
            and type(poly) is int
            and poly >= 1
            and isinstance(monomials, list)
            and isinstance(categorical, bool)
            and not (categorical and any(dropped.values()))
        ):
            raise ValueError("inconsistent design")
        n_numeric = len([f for f in features if f not in levels])
        terms = [tuple(m) for m in monomials]
        if not all(
            all(type(i) is int and 0 <= i < n_numeric for i in m) and 2 <= len(m) <= poly
            for m in terms
        ):
            raise ValueError("bad polynomial terms")
        levels = {k: list(v) for k, v in levels.items()}
        return cls(list(features), levels, dropped, poly, terms, categorical)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _monomial(m, numeric, cache):
    if m in cache:
        return cache[m]
    if len(m) == 1:
        out = (numeric[m[0]], np.zeros_like(numeric[m[0]]))
    else:
        hi, lo = _monomial(m[:-1], numeric, cache)
        out = dd_times(hi, lo, numeric[m[-1]])
    cache[m] = out
    return out


def _monomial_name(m: tuple[int, ...], numeric: list[str]) -> str:
    parts = []
    for i in sorted(set(m)):
        k = m.count(i)
        parts.append(numeric[i] if k == 1 else f"{numeric[i]}^{k}")
    return "*".join(parts)


def build_design(
    features: list[str],
    columns: dict[str, np.ndarray],
    intercept: bool,
    poly: int = 1,
    levels: dict[str, list[str]] | None = None,
    source: str = "the data",
    categorical: bool = False,
) -> tuple[Design, list[str]]:
    """Fit the encoding to training columns. Returns (design, warnings).

    levels: text-column levels when already known (a chunked fit collects them in a first pass).
    categorical: keep every level of every text column and allow unseen levels (Design).
    """
    if poly < 1:
        raise DataError("--poly must be at least 1.")
    warnings = []
    found = {}
    for f in features:
        if levels is not None and f in levels:
            found[f] = levels[f]
        elif levels is None and columns[f].dtype == object:
            found[f] = sorted({v for v in columns[f] if v is not None})
    for f, lv in found.items():
        if len(lv) > MAX_LEVELS:
            raise DataError(
                f"Column '{f}' in {source} is text with {len(lv)} distinct values; it "
                f"looks like an identifier. Leave it out with --drop {f}."
            )
        if len(lv) == 1:
            warnings.append(f"Column '{f}' has the single value '{lv[0]}'; it adds no information.")
    dropped = {}
    spans_intercept = intercept
    for f in features:
        if f in found:
            dropped[f] = spans_intercept and not categorical
            spans_intercept = True
    numeric = [f for f in features if f not in found]
    monomials = [
        m for d in range(2, poly + 1) for m in combinations_with_replacement(range(len(numeric)), d)
    ]
    if poly > 1 and not numeric:
        raise DataError(
            "--poly needs at least one numeric feature; text columns are not raised to powers."
        )
    return Design(list(features), found, dropped, poly, monomials, categorical), warnings
