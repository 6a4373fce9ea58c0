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
from mlfit.numerics import add_intercept
from mlfit.params import read_index_list
from mlfit.solvers.family import Gaussian
from mlfit.solvers.linear import LinearParams, check_rows
from mlfit.solvers.lsq import BLOCK_BYTES, EPS, aliased_warning, solve_r
from mlfit.solvers.normal_eq_tsqr import (
    FIND_SHIFT,
    YMoments,
    accumulate,
    extreme_shift,
    positive_rows,
    shifted,
)
from mlfit.solvers.sandwich import robust, update_table, wald_f
from mlfit.stats import f_sf, t_table

#: Refinement runs automatically while n * p is at most this (it costs a few passes over X).
REFINE_MAX_CELLS = 1_000_000
#: Warn when the scaled condition number leaves fewer than about this many digits.
WARN_DIGITS = 8


@dataclass(frozen=True)
class Config:
    intercept: bool = True
    l2: float = 0.0  # ridge penalty lambda * ||coef||^2 on the original scale; intercept free
    rank_tol: float = 1e-11  # a column is aliased when |R_jj| < rank_tol * its norm
    refine: bool | None = None  # None: refine when the problem is small enough to be cheap
    covariance: str = "nonrobust"  # or a robust one of mlfit.solvers.sandwich.COVARIANCES


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


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) design without the intercept column; data.y: (n,); data.X_lo, when
    given, the low parts of products kept in double-double (used by the refinement);
    data.extra("weights"): (n,) prior weights >= 0 or None (R's lm(weights =))."""
    start = time.perf_counter()
    X, X_lo = data.X, data.X_lo
    y = np.asarray(data.y, dtype=float)
    w = data.extra("weights")
    if w is not None:
        X, y, w, X_lo = positive_rows(X, y, w, X_lo)
    n, p = len(y), X.shape[1] + (1 if config.intercept else 0)
    # Row blocks that fit in cache: the same TSQR as a chunked fit, and no n x p copy of X.
    block = max(p + 1, BLOCK_BYTES // (8 * (p + 1)))
    blocks = (
        ModelData(
            X[i : i + block], y[i : i + block], {} if w is None else {"weights": w[i : i + block]}
        )
        for i in range(0, n, block)
    )
    shift = None if config.l2 > 0 else extreme_shift(X)  # ridge: penalty on the given scale
    R_aug, moments, _, _ = accumulate(blocks, config.intercept, shift=shift)
    refine = config.refine if config.refine is not None else n * p <= REFINE_MAX_CELLS
    in_memory = None
    if refine and config.l2 == 0:
        A, A_lo = _design(shifted(X, shift), shifted(X_lo, shift), config.intercept)
        if w is not None:  # the weighted problem: rows times sqrt(w)
            root = np.sqrt(w)
            A, y = A * root[:, None], y * root
            A_lo = None if A_lo is None else A_lo * root[:, None]
        in_memory = (A, A_lo, y)
    result = _solve(R_aug, moments, config, in_memory, data.names, shift)
    if config.covariance != "nonrobust":
        _robust(result, [data], config)
    on_progress(Step(1, 1, result.metrics["rss"]))
    result.info["fit_seconds"] = time.perf_counter() - start
    return result


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """One pass over the chunks, memory bounded by the chunk: accumulate R of [X | y]."""
    find = None if config.l2 > 0 else FIND_SHIFT  # ridge: its penalty is on the given scale
    R_aug, moments, names, shift = accumulate(chunks, config.intercept, on_progress, find)
    result = _solve(R_aug, moments, config, None, names, shift)
    if config.covariance != "nonrobust":  # one more pass over the chunks: the meat
        _robust(result, chunks, config)
    return result


def _robust(result: FitResult, chunks, config: Config) -> None:
    """Sandwich standard errors (mlfit.solvers.sandwich) in place of sigma^2 (X'WX)^-1's,
    with z tests (statsmodels' default for robust covariances: use_t=False), and the F test
    as the Wald test of the slopes with that covariance on (q, n - k) df, (q, G - 1) with
    clusters (statsmodels' fvalue and f_pvalue)."""
    keep = result.internals["keep"]
    params = result.params
    beta = np.concatenate([[params.intercept], params.coef]) if config.intercept else params.coef
    rows = _LeastSquaresRows(beta, config.intercept, keep)
    rob = robust(config.covariance, result.internals["unscaled_cov"], chunks, rows)
    metrics = result.metrics
    df = metrics["df_residual"] if rob.df is None else rob.df
    update_table(result.tables["coefficients"], keep, rob, None)
    result.info.update(rob.info())
    if "f_statistic" in metrics and math.isfinite(metrics["f_statistic"]):
        slopes = np.flatnonzero(keep > 0) if config.intercept else np.arange(len(keep))
        f = math.nan
        if len(slopes) <= df:  # else (few clusters) the covariance of the slopes is singular
            f = wald_f(beta[keep][slopes], rob.cov[np.ix_(slopes, slopes)])
        metrics["f_statistic"] = f
        metrics["f_p_value"] = f_sf(f, len(slopes), df) if math.isfinite(f) else math.nan


@dataclass(frozen=True)
class _LeastSquaresRows:
    """Score rows w_i e_i x_i, whitened rows sqrt(w_i) x_i and cluster labels of a chunk's
    rows of positive weight, for the sandwich (x_i over the estimable columns keep)."""

    beta: np.ndarray
    intercept: bool
    keep: np.ndarray

    def __call__(self, chunk: ModelData):
        A = add_intercept(chunk.X) if self.intercept else np.asarray(chunk.X, dtype=float)
        e = np.asarray(chunk.y, dtype=float) - A @ self.beta
        A, w, labels = A[:, self.keep], chunk.extra("weights"), chunk.extra("cluster")
        if w is None:
            return A * e[:, None], A, labels
        w = np.asarray(w, dtype=float)
        used = w > 0
        A, e, w = A[used], e[used], w[used]
        labels = None if labels is None else np.asarray(labels)[used]
        return A * (w * e)[:, None], A * np.sqrt(w)[:, None], labels


def _solve(R_aug, moments: YMoments, config: Config, in_memory, names, shift=None) -> FitResult:
    """shift: the exponents the design's columns were scaled by (2^shift) before the QR."""
    n = moments.n
    p = R_aug.shape[1] - 1
    check_rows(n, p)
    penalty = _penalty_rows(p, config) if config.l2 > 0 else None
    ls = solve_r(R_aug, config.rank_tol, penalty, in_memory)
    keep, aliased = ls.keep, ls.aliased
    if shift is not None:  # back to the columns as given: exact powers of two again
        full_shift = np.concatenate([[0] * (1 if config.intercept else 0), shift])[keep]
        ls.scale = np.ldexp(ls.scale, -full_shift)
    coef, rss = ls.coef, ls.rss
    if config.l2 > 0:
        rss = _ridge_rss(R_aug, keep, coef, p)
    labels = (["intercept"] if config.intercept else []) + (
        list(names) if names is not None else [f"x{j + 1}" for j in range(p - config.intercept)]
    )
    method = "householder-qr+refinement" if ls.refined else "householder-qr"
    result = _statistics(
        coef, (ls.diag_s, ls.scale), rss, moments, aliased, keep, labels, ls.cond, config, method
    )
    # (X'X)^-1 of the estimable columns, for leverage in the diagnostic plots: k x k, cheap.
    result.internals["unscaled_cov"] = ls.unscaled_cov()
    result.internals["keep"] = keep
    if aliased.any():
        result.warnings.insert(0, aliased_warning(labels, aliased))
    return result


def _ridge_rss(R_aug, keep, coef, p):
    """||y - X coef||^2 from R of [X | y]: ||R_aug [coef; -1]||^2."""
    v = np.zeros(p + 1)
    v[keep] = coef
    v[p] = -1.0
    return float(np.sum((R_aug @ v) ** 2))


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
    if rss > 0:  # AIC and BIC follow from n_parameters (R counts sigma as a parameter);
        # with prior weights R's logLik.lm adds 0.5 sum(log w) (the rows' variances sigma^2/w)
        metrics["log_likelihood"] = (
            -0.5 * n * (math.log(2 * math.pi) + math.log(rss / n) + 1.0) + 0.5 * moments.log_w
        )
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
    prior = data.extra("weights")
    prior = prior if prior is None or rows is None else prior[rows]
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
        prior,
    )
    return {"diagnostics": diagnostics, "glm": False}


def _ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 21st, ..."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"
