"""Detect when a maximum-likelihood estimate does not exist (separation in classification).

With (quasi-)complete separation some linear combination of the columns orders the classes
perfectly, the likelihood keeps rising as the coefficients grow, and Newton's method returns
huge numbers that look like estimates.  We look for the common cause, a single column, before
fitting, and confirm any suspicion after fitting with Konis's linear program.
"""

from __future__ import annotations

import numpy as np


class ColumnSummary:
    """Per-column ranges on each side of a row split, accumulated block by block.

    positive: which rows are "in" (y = 1 for a logistic model, y > 0 for a Poisson model).
    Enough to find a single column that alone makes the maximum-likelihood estimate infinite.
    """

    def __init__(self):
        self.blocks = 0

    def add(self, A: np.ndarray, positive: np.ndarray) -> None:
        p = A.shape[1]
        parts = [
            [np.full(p, np.inf), np.full(p, -np.inf), np.zeros(p, dtype=np.int64)] for _ in range(2)
        ]
        for start in range(0, A.shape[0], 8192):  # blocks of rows: the copies stay in cache
            Ab, pb = A[start : start + 8192], positive[start : start + 8192]
            for part, rows in zip(parts, (pb, ~pb)):
                X = Ab[rows]
                if len(X):
                    part[0] = np.minimum(part[0], X.min(axis=0))
                    part[1] = np.maximum(part[1], X.max(axis=0))
                    part[2] += np.count_nonzero(X, axis=0)
        if self.blocks == 0:
            (self.pos_min, self.pos_max, self.pos_nz), (self.neg_min, self.neg_max, self.neg_nz) = (
                parts
            )
        else:
            (a, b, c), (d, e, f) = parts
            self.pos_min, self.pos_max = np.minimum(self.pos_min, a), np.maximum(self.pos_max, b)
            self.neg_min, self.neg_max = np.minimum(self.neg_min, d), np.maximum(self.neg_max, e)
            self.pos_nz, self.neg_nz = self.pos_nz + c, self.neg_nz + f
        self.blocks += 1

    def merged(self, other: ColumnSummary) -> ColumnSummary:
        """The summary of both sets of rows (a new object; for partitions merged in a tree)."""
        if not other.blocks or not self.blocks:
            return self if other.blocks == 0 else other
        out = ColumnSummary()
        out.blocks = self.blocks + other.blocks
        out.pos_min, out.pos_max = (
            np.minimum(self.pos_min, other.pos_min),
            np.maximum(self.pos_max, other.pos_max),
        )
        out.neg_min, out.neg_max = (
            np.minimum(self.neg_min, other.neg_min),
            np.maximum(self.neg_max, other.neg_max),
        )
        out.pos_nz, out.neg_nz = self.pos_nz + other.pos_nz, self.neg_nz + other.neg_nz
        return out


def separating_column(s: ColumnSummary, names: list[str], intercept: bool) -> str | None:
    """Logistic model: a sentence naming a column that alone separates the positive rows from
    the others, or None.  intercept: whether the model has one (then a threshold on a column
    separates too, not only its non-zero rows)."""
    for j in range(len(names)):
        if min(s.pos_min[j], s.neg_min[j]) == max(s.pos_max[j], s.neg_max[j]):
            continue  # constant (the intercept itself, or aliased with it): not separating
        if intercept and s.pos_min[j] >= s.neg_max[j]:
            return (
                f"every row with {names[j]} >= {s.pos_min[j]:g} is in the class and none below it"
            )
        if intercept and s.pos_max[j] <= s.neg_min[j]:
            return (
                f"every row with {names[j]} <= {s.pos_max[j]:g} is in the class and none above it"
            )
        # One-sided: where the column is non-zero (a dummy column's level), one class only.
        one_signed_pos = s.pos_min[j] >= 0 or s.pos_max[j] <= 0
        one_signed_neg = s.neg_min[j] >= 0 or s.neg_max[j] <= 0
        if s.neg_nz[j] == 0 and s.pos_nz[j] > 0 and one_signed_pos:
            return f"every row where {names[j]} is non-zero is in the class"
        if s.pos_nz[j] == 0 and s.neg_nz[j] > 0 and one_signed_neg:
            return f"every row where {names[j]} is non-zero is outside the class"
    return None


def zero_count_column(s: ColumnSummary, names: list[str]) -> str | None:
    """Poisson model (positive = rows with a count > 0): a column that is zero on every row
    with a count and single-signed elsewhere drives its coefficient to minus infinity."""
    for j in range(len(names)):  # the intercept column is non-zero on counted rows: skipped
        if s.pos_nz[j] == 0 and s.neg_nz[j] > 0 and (s.neg_min[j] >= 0 or s.neg_max[j] <= 0):
            return names[j]
    return None


def separation_exists(A: np.ndarray, positive: np.ndarray) -> bool:
    """True when some b != 0 has s_i * a_i'b >= 0 for every row (s = +1 in the class, -1 out).

    Konis (2007): maximise sum_i s_i a_i'b subject to s_i a_i'b >= 0 and -1 <= b <= 1; the
    optimum is positive exactly when the classes are (quasi-)completely separated.
    """
    from scipy.optimize import linprog

    S = A * np.where(positive, 1.0, -1.0)[:, None]
    scale = np.max(np.abs(S), axis=0)
    scale[scale == 0] = 1.0
    S = S / scale
    res = linprog(-S.sum(axis=0), A_ub=-S, b_ub=np.zeros(len(S)), bounds=(-1, 1), method="highs")
    return bool(res.status == 0 and -res.fun > 1e-6 * len(S))


def zero_counts_unbounded(A: np.ndarray, y: np.ndarray) -> bool:
    """Poisson: True when some b != 0 has a_i'b <= 0 on every row with y = 0 and a_i'b = 0 on
    every row with a count, strictly somewhere: then moving along b only raises the likelihood
    and the maximum-likelihood estimate does not exist (the analogue of separation)."""
    from scipy.optimize import linprog

    scale = np.max(np.abs(A), axis=0)
    scale[scale == 0] = 1.0
    A = A / scale
    zero, counted = A[y == 0], A[y > 0]
    if len(zero) == 0:
        return False
    res = linprog(
        zero.sum(axis=0),
        A_ub=zero,
        b_ub=np.zeros(len(zero)),
        A_eq=counted if len(counted) else None,
        b_eq=np.zeros(len(counted)) if len(counted) else None,
        bounds=(-1, 1),
        method="highs",
    )
    return bool(res.status == 0 and -res.fun > 1e-6 * len(zero))
