"""Detect when a maximum-likelihood estimate does not exist (separation in classification).

With (quasi-)complete separation some linear combination of the columns orders the classes
perfectly, the likelihood keeps rising as the coefficients grow, and Newton's method returns
huge numbers that look like estimates.  We look for the common cause, a single column, before
fitting, and confirm any suspicion after fitting with Konis's linear program.
"""

from __future__ import annotations

import numpy as np


def separating_column(A: np.ndarray, positive: np.ndarray, names: list[str],
                      intercept: bool) -> str | None:
    """A sentence naming a column that alone (with the intercept) separates `positive` rows
    from the others, or None.  A: (n, p) design with the intercept column first if any."""
    start = 1 if intercept else 0
    for j in range(start, A.shape[1]):
        x = A[:, j]
        pos, neg = x[positive], x[~positive]
        if len(pos) == 0 or len(neg) == 0:
            return None
        if intercept and pos.min() >= neg.max():
            return f"every row with {names[j]} >= {pos.min():g} is in the class and none below it"
        if intercept and pos.max() <= neg.min():
            return f"every row with {names[j]} <= {pos.max():g} is in the class and none above it"
        nonzero = x != 0
        # One-sided: where the column is non-zero (a dummy column's level), one class only.
        if nonzero.any() and (~nonzero).any():
            if np.all(positive[nonzero]) or not np.any(positive[nonzero]):
                which = "in" if np.all(positive[nonzero]) else "outside"
                return f"every row where {names[j]} is non-zero is {which} the class"
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
