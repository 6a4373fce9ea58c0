"""Exact least squares by Householder QR, refined in extended precision, with R-style statistics.

The normal equation theta = (X'X)^-1 X'y is never formed: X'X squares the condition number.
Instead R comes from a QR factorisation of the column-scaled design (powers of two, so scaling
is exact), accumulated chunk by chunk (TSQR) when the data is streamed.  In memory and for
small problems the solution and the diagonal of (X'X)^-1 are then refined with Bjorck's
augmented-system iteration, residuals computed in about twice float64 precision; this brings
the NIST StRD problems (Filip, Wampler) to full accuracy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mlfit.contract import FitResult, ModelData, ProgressFn, Step, Table, no_progress
from mlfit.errors import DataError, FitError
from mlfit.numerics import (
    accurate_residual,
    accurate_rmatvec,
    add_intercept,
    back_substitute,
    power_of_two_scale,
)
from mlfit.params import read_index_list
from mlfit.solvers.family import Gaussian
from mlfit.solvers.linear import LinearParams, check_rows
from mlfit.stats import f_sf, t_table

EPS = np.finfo(float).eps
#: Refinement runs automatically while n * p is at most this (it costs a few passes over X).
REFINE_MAX_CELLS = 1_000_000
#: Bytes of [1 X y] factorised at a time in memory: cache-sized blocks beat one big QR.
BLOCK_BYTES = 4 << 20
#: Warn when the scaled condition number leaves fewer than about this many digits.
WARN_DIGITS = 8


@dataclass(frozen=True)
class Config:
    intercept: bool = True
    l2: float = 0.0  # ridge penalty lambda * ||coef||^2 on the original scale; intercept free
    rank_tol: float = 1e-11  # a column is aliased when |R_jj| < rank_tol * its norm
    refine: bool | None = None  # None: refine when the problem is small enough to be cheap


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(LinearParams):
    aliased: tuple[int, ...] = ()  # design columns (intercept first) with no estimate: coef 0

    def to_dict(self) -> dict:
        return {**super().to_dict(), "aliased": list(self.aliased)}

    @classmethod
    def read_fields(cls, d: dict, n_columns: int) -> dict:
        width = n_columns + (0 if d.get("intercept") is None else 1)
        return {
            **super().read_fields(d, n_columns),
            "aliased": tuple(read_index_list(d, "aliased", width)),
        }


def _design(X, X_lo, intercept):
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if intercept:
        X = add_intercept(X)
        if X_lo is not None:
            X_lo = add_intercept(X_lo)
            X_lo[:, 0] = 0.0
    return X, X_lo


def _penalty_rows(p: int, config: Config) -> np.ndarray:
    """Rows sqrt(l2) * I (intercept excluded): appending them to [X | y] gives ridge."""
    first = 1 if config.intercept else 0
    rows = np.zeros((p - first, p + 1))
    rows[np.arange(p - first), np.arange(first, p)] = math.sqrt(config.l2)
    return rows


class _YMoments:
    """Count, mean and centred sum of squares of y, merged chunk by chunk (Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2, self.sumsq = 0, 0.0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf  # exact: tells a constant target

    def add(self, y: np.ndarray) -> None:
        n_b = len(y)
        if n_b == 0:
            return
        mean_b = float(np.mean(y))  # pairwise summation: error about log2(n) * eps
        d = y - mean_b
        m2_b = float(d @ d)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.sumsq += float(y @ y)
        self.n = n
        self.low, self.high = min(self.low, float(y.min())), max(self.high, float(y.max()))


def _qr_r(M: np.ndarray) -> np.ndarray:
    """R of a Householder QR (LAPACK geqrf through numpy; M Fortran-ordered avoids a copy)."""
    return np.linalg.qr(M, mode="r")


def _augmented(X, y, intercept: bool, top=None) -> np.ndarray:
    """[top; 1 X y] as one Fortran-ordered array: the layout LAPACK works on without a copy."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    first = 1 if intercept else 0
    rows = 0 if top is None else top.shape[0]
    M = np.empty((rows + n, first + p + 1), order="F")
    if top is not None:
        M[:rows] = top
    if intercept:
        M[rows:, 0] = 1.0
    M[rows:, first : first + p] = X
    M[rows:, -1] = y
    return M


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) design without the intercept column; data.y: (n,); data.X_lo, when
    given, the low parts of products kept in double-double (used by the refinement)."""
    start = time.perf_counter()
    X, X_lo = data.X, data.X_lo
    y = np.asarray(data.y, dtype=float)
    n, p = len(y), X.shape[1] + (1 if config.intercept else 0)
    # Row blocks that fit in cache: the same TSQR as a chunked fit, and no n x p copy of X.
    block = max(p + 1, BLOCK_BYTES // (8 * (p + 1)))
    blocks = (ModelData(X[i : i + block], y[i : i + block]) for i in range(0, n, block))
    shift = _extreme_shift(X, config)
    R_aug, moments, _, _ = _accumulate(blocks, config.intercept, shift=shift)
    refine = config.refine if config.refine is not None else n * p <= REFINE_MAX_CELLS
    in_memory = None
    if refine and config.l2 == 0:
        A, A_lo = _design(_shifted(X, shift), _shifted(X_lo, shift), config.intercept)
        in_memory = (A, A_lo, y)
    result = _solve(R_aug, moments, config, in_memory, data.names, shift)
    on_progress(Step(1, 1, result.metrics["rss"]))
    result.info["fit_seconds"] = time.perf_counter() - start
    return result


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """One pass over the chunks, memory bounded by the chunk: accumulate R of [X | y]."""
    R_aug, moments, names, shift = _accumulate(chunks, config.intercept, on_progress, config)
    return _solve(R_aug, moments, config, None, names, shift)


#: Columns whose largest magnitude is beyond 2^±EXTREME_EXPONENT are scaled by a power of two
#: before the QR: squared norms of values near 1e-300 underflow (the column would look
#: aliased) and near 1e300 overflow. Scaling by 2^k is exact, so the answer is the same.
EXTREME_EXPONENT = 400
#: Up to this many coefficients the refinement's triangular solves are numpy loops.
SMALL_K = 64


def _extreme_shift(X: np.ndarray, config: Config) -> np.ndarray | None:
    """Per-column exponents k (X * 2^k has magnitude about 1) for extreme columns, else None.
    Not for ridge, whose penalty is on the original scale."""
    if config.l2 > 0 or X.size == 0:
        return None
    largest = np.maximum(X.max(axis=0), -X.min(axis=0))  # no |X| temporary: 5x faster
    with np.errstate(divide="ignore"):
        top = np.log2(largest)
    k = np.where(np.isfinite(top) & (np.abs(top) > EXTREME_EXPONENT), -np.round(top), 0.0)
    return k.astype(np.int64) if np.any(k) else None


def _shifted(X, shift):
    return X if X is None or shift is None else np.ldexp(X, shift)


def _accumulate(chunks: Iterable[ModelData], intercept: bool, on_progress=no_progress, shift=None):
    """R of [1 X y] over all chunks (TSQR: stack the running R on each chunk, refactorise),
    the moments of y, the design's column names, and the exponents the columns were scaled
    by (2^shift).  shift: given, or a Config to find it from the first chunk (one pass)."""
    R_aug = None
    moments = _YMoments()
    rows = 0
    names = None
    for i, chunk in enumerate(chunks, start=1):
        y = np.asarray(chunk.y, dtype=float)
        if isinstance(shift, Config):
            shift = _extreme_shift(chunk.X, shift)
        R_aug = _qr_r(_augmented(_shifted(chunk.X, shift), y, intercept, R_aug))
        moments.add(y)
        rows += len(y)
        names = chunk.names
        on_progress(Step(i, 0, float(rows)))
    if R_aug is None:
        raise DataError("No data rows to fit.")
    return R_aug, moments, names, shift


def _aliased_columns(R: np.ndarray, tol: float) -> np.ndarray:
    """Columns nearly in the span of the columns before them (R's lm drops these as NA)."""
    diag = np.abs(np.diag(R))
    norms = np.sqrt(np.einsum("ij,ij->j", R, R))
    return (diag <= tol * norms) | (norms == 0)


def _solve(R_aug, moments: _YMoments, config: Config, in_memory, names, shift=None) -> FitResult:
    """shift: the exponents the design's columns were scaled by (2^shift) before the QR."""
    n = moments.n
    p = R_aug.shape[1] - 1
    check_rows(n, p)
    R_aug = np.triu(R_aug[: p + 1]) if R_aug.shape[0] >= p + 1 else R_aug
    aliased = _aliased_columns(R_aug[:, :p], config.rank_tol)
    if config.l2 > 0:  # ridge: the penalty rows make every column estimable
        aliased[:] = False
    keep = np.flatnonzero(~aliased)
    R_k = _qr_r(np.hstack([R_aug[:, keep], R_aug[:, [p]]]))  # re-triangularise without aliased
    if config.l2 > 0:
        pen = _penalty_rows(p, config)
        R_k = _qr_r(np.vstack([R_k, pen]))
    k = len(keep)
    R, z = R_k[:k, :k], R_k[:k, k]
    rss = float(R_k[k, k] ** 2) if R_k.shape[0] > k else 0.0
    scale = power_of_two_scale(R)
    Rs = R / scale  # R of the scaled design; exact division by powers of two
    sv = np.linalg.svd(Rs, compute_uv=False)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    if not np.all(np.isfinite(Rs)) or sv[-1] == 0:
        raise FitError("The design matrix is singular. Remove constant or duplicated columns.")
    coef_s = back_substitute(Rs, z)
    Rinv = back_substitute(Rs, np.eye(k))
    diag_s = np.einsum("ij,ij->i", Rinv, Rinv)  # diag of (X'X)^-1, scaled, from R^-1
    method = "householder-qr"
    if in_memory is not None:
        A, A_lo, y = in_memory
        As = A[:, keep] / scale
        As_lo = None if A_lo is None else A_lo[:, keep] / scale
        coef_s, resid, diag_s = _refine(As, As_lo, y, coef_s, diag_s)
        rss = math.fsum(resid * resid)
        method = "householder-qr+refinement"
    if shift is not None:  # back to the columns as given: exact powers of two again
        full_shift = np.concatenate([[0] * (1 if config.intercept else 0), shift])[keep]
        scale = np.ldexp(scale, -full_shift)
    coef = coef_s / scale
    if config.l2 > 0:
        fitted_rss = _ridge_rss(R_aug, keep, coef, p)
        rss = fitted_rss
    labels = (["intercept"] if config.intercept else []) + (
        list(names) if names is not None else [f"x{j + 1}" for j in range(p - config.intercept)]
    )
    result = _statistics(
        coef, (diag_s, scale), rss, moments, aliased, keep, labels, cond, config, method
    )
    # (X'X)^-1 of the estimable columns, for leverage in the diagnostic plots: k x k, cheap.
    unscaled = Rinv / scale[:, None]  # (X'X)^-1 = S^-1 Rs^-1 Rs^-T S^-1, S = diag(scale)
    with np.errstate(over="ignore"):  # an extreme column's variance may not fit a float64
        result.internals["unscaled_cov"] = unscaled @ unscaled.T
    result.internals["keep"] = keep
    if aliased.any():
        listed = ", ".join(f"'{labels[j]}'" for j in np.flatnonzero(aliased))
        result.warnings.insert(
            0,
            f"Aliased (constant, duplicated or collinear) column(s) {listed}: "
            "each is a linear combination of the columns before it, so it gets "
            "no estimate and counts as 0 in predictions. Drop it to silence this.",
        )
    return result


def _ridge_rss(R_aug, keep, coef, p):
    """||y - X coef||^2 from R of [X | y]: ||R_aug [coef; -1]||^2."""
    v = np.zeros(p + 1)
    v[keep] = coef
    v[p] = -1.0
    return float(np.sum((R_aug @ v) ** 2))


def _triangular_solver(k: int):
    """scipy's solve_triangular for many columns; below SMALL_K numpy loops, which cost less
    than importing scipy.linalg (0.1 s, a fifth of a small fit's run)."""
    if k > SMALL_K:
        from scipy.linalg import solve_triangular

        return solve_triangular

    def solve(R, b, trans=0):
        if trans == "T":  # R' x = b: reversing rows and columns makes R' upper triangular
            return back_substitute(R.T[::-1, ::-1], np.asarray(b)[::-1])[::-1]
        return back_substitute(R, b)

    return solve


def _refine(A, A_lo, y, coef, diag, max_iter: int = 30):
    """Bjorck's iterative refinement of the augmented system r + A x = b, A'r = c.

    Residuals are computed in about twice float64 precision, so each step gains roughly
    -log10(cond * eps) digits until x is correct to working precision.  Also refines
    diag((A'A)^-1) column by column (b = 0, c = e_j gives x = -(A'A)^-1 e_j).
    """
    Q, R = np.linalg.qr(A)
    k = A.shape[1]
    solve_triangular = _triangular_solver(k)

    def correction(f, g):
        h = solve_triangular(R, g, trans="T")
        d = Q.T @ f - h
        return f - Q @ d, solve_triangular(R, d)

    def iterate(b, c, x):
        r = (b - A @ x) if b is not None else -(A @ x)
        best = math.inf
        for _ in range(max_iter):
            f = accurate_residual(A, A_lo, x, *([b] if b is not None else []), -r)
            g = -accurate_rmatvec(A, A_lo, r) if c is None else c - accurate_rmatvec(A, A_lo, r)
            dr, dx = correction(f, g)
            x = x + dx
            r = r + dr
            size = np.max(np.abs(dx)) / max(np.max(np.abs(x)), np.finfo(float).tiny)
            if size <= EPS or size >= best:
                break
            best = size
        return x, r

    x, r = iterate(y, None, coef)
    # diag((A'A)^-1): start from the QR estimate -(A'A)^-1 e_j and refine each column.
    Rinv = solve_triangular(R, np.eye(k))
    new_diag = np.empty(k)
    for j in range(k):
        e = np.zeros(k)
        e[j] = 1.0
        z0 = -(Rinv @ Rinv[j])
        z, _ = iterate(None, e, z0)
        new_diag[j] = -z[j]
    return x, r, new_diag


def _statistics(coef, var_unit, rss, moments, aliased, keep, labels, cond, config, method):
    """var_unit: (d, scale), diag((X'X)^-1) = d / scale^2, kept apart so that a scale near
    2^-1000 (an extreme column) does not overflow on the way to the standard error."""
    n = moments.n
    p = len(labels)
    k = len(keep)
    df_resid = n - k
    has_int = config.intercept
    tss = moments.m2 if has_int else moments.sumsq
    full = np.full(p, np.nan)
    estimate = full.copy()
    estimate[keep] = coef
    warnings = []
    table = {"estimate": estimate}
    sigma2 = rss / df_resid if df_resid > 0 else math.nan
    if config.l2 == 0:
        std_error = full.copy()
        std_error[keep] = np.sqrt(sigma2 * var_unit[0]) / var_unit[1]
        table["std_error"] = std_error
        table.update(
            t_table(estimate, std_error, df_resid)
            if df_resid > 0
            else {key: full.copy() for key in ("t", "p_value", "ci_low", "ci_high")}
        )
    if df_resid == 0:
        warnings.append(
            "As many parameters as rows: the fit is exact and no standard errors or "
            "tests can be computed."
        )
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    df_model = k - (1 if has_int else 0)
    metrics = {
        "r_squared": r2,
        "adj_r_squared": (
            1.0 - (1.0 - r2) * (n - (1 if has_int else 0)) / df_resid if df_resid > 0 else math.nan
        ),
        "sigma": math.sqrt(sigma2) if df_resid > 0 else math.nan,
        "rss": rss,
        "rmse": math.sqrt(rss / n),
        "df_model": df_model,
        "df_residual": df_resid,
        "n": n,
    }
    constant = has_int and moments.low == moments.high  # uncentred R² needs no variation
    if constant:  # nothing to explain: no R² and no F test
        metrics["r_squared"] = metrics["adj_r_squared"] = math.nan
        metrics["f_statistic"] = metrics["f_p_value"] = math.nan
        warnings.append(
            "The target is constant: R², adjusted R² and the F test are undefined (null), "
            "and the fit is exact."
        )
    elif config.l2 == 0 and df_model > 0 and df_resid > 0 and sigma2 > 0:
        f = max(tss - rss, 0.0) / df_model / sigma2  # rss > tss only by rounding
        metrics["f_statistic"] = f
        metrics["f_p_value"] = f_sf(f, df_model, df_resid)
    if rss > 0:  # AIC and BIC follow from n_parameters (R counts sigma as a parameter)
        metrics["log_likelihood"] = -0.5 * n * (math.log(2 * math.pi) + math.log(rss / n) + 1.0)
    metrics["condition_number"] = cond
    if cond * EPS > 10.0**-WARN_DIGITS:
        digits = max(0.0, -math.log10(cond * EPS))
        warnings.append(
            f"The design is ill-conditioned (condition number {cond:.3g} with columns "
            f"scaled to unit length): rounding in the data alone can change the "
            f"coefficients in their {_ordinal(round(digits))} significant digit. Centre or rescale "
            "features, or lower --poly."
        )
    if aliased.any():
        table["aliased"] = aliased
    coef_full = np.where(aliased, 0.0, np.nan_to_num(estimate))
    params = Params(
        intercept=float(coef_full[0]) if has_int else None,
        coef=coef_full[1:] if has_int else coef_full,
        aliased=tuple(np.flatnonzero(aliased).tolist()),
    )
    info = {"method": method, "aliased_index": np.flatnonzero(aliased).tolist()}
    if config.l2 > 0:
        info["l2"] = config.l2
    return FitResult(
        params,
        n_parameters=k + 1,
        n_obs=n,
        tables={"coefficients": Table(labels, table)},
        metrics=metrics,
        warnings=warnings,
        info=info,
    )


def predict(params: Params, data: ModelData) -> dict[str, np.ndarray]:
    return {"prediction": params.linear_predictor(data.X)}


def plot_data(result: FitResult, data: ModelData, rows: np.ndarray | None) -> dict:
    """R's plot(lm) panels for the given rows (all when None), from the full fit."""
    from mlfit.diagnostics import glm_diagnostics

    X, y = (data.X, data.y) if rows is None else (data.X[rows], data.y[rows])
    A = add_intercept(X) if result.params.intercept is not None else X
    eta = result.params.linear_predictor(X)
    sigma = result.metrics["sigma"]
    diagnostics = glm_diagnostics(
        A[:, result.internals["keep"]],
        y,
        eta,
        Gaussian(),
        result.internals["unscaled_cov"],
        sigma * sigma,
    )
    return {"diagnostics": diagnostics, "glm": False}


def _ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 21st, ..."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"
