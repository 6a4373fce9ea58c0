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

from mlfit import engine
from mlfit.contract import FitResult, ModelData, ProgressFn, Step, Table, no_progress
from mlfit.errors import DataError
from mlfit.numerics import add_intercept
from mlfit.params import read_index_list
from mlfit.solvers.family import Gaussian
from mlfit.solvers.linear import LinearParams, check_rows
from mlfit.solvers.lsq import EPS, aliased_warning, qr_r, solve_r
from mlfit.solvers.sandwich import robust, update_table, wald_f
from mlfit.stats import f_sf, t_table

#: Refinement runs automatically while n * p is at most this (it costs a few passes over X).
REFINE_MAX_CELLS = 1_000_000
#: Bytes of [1 X y] factorised at a time in memory: blocks that stay in L2 cache beat one big
#: QR, and 512 KiB beat 4 MiB by 1.9x at 200,000 x 51 (130 against 249 ms, measured).
BLOCK_BYTES = 512 << 10
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


class _YMoments:
    """Count, (weighted) mean and centred sum of squares of y, merged chunk by chunk (Chan
    et al.).  With prior weights w > 0: sw = sum w, mean and m2 weighted, log_w = sum log w
    (R's logLik of a weighted lm); n counts the rows."""

    def __init__(self):
        self.n, self.mean, self.m2, self.sumsq = 0, 0.0, 0.0, 0.0
        self.sw, self.log_w = 0.0, 0.0
        self.low, self.high = math.inf, -math.inf  # exact: tells a constant target

    def add(self, y: np.ndarray, w: np.ndarray | None = None) -> None:
        n_b = len(y)
        if n_b == 0:
            return
        if w is None:
            sw_b = float(n_b)
            mean_b = float(np.mean(y))  # pairwise summation: error about log2(n) * eps
            d = y - mean_b
            m2_b = float(d @ d)
            self.sumsq += float(y @ y)
        else:
            sw_b = math.fsum(w)
            mean_b = float(w @ y) / sw_b
            d = y - mean_b
            m2_b = float(w @ (d * d))
            self.sumsq += float(w @ (y * y))
            self.log_w += float(np.sum(np.log(w)))
        sw = self.sw + sw_b
        delta = mean_b - self.mean
        self.mean += delta * sw_b / sw
        self.m2 += m2_b + delta * delta * self.sw * sw_b / sw
        self.sw = sw
        self.n += n_b
        self.low, self.high = min(self.low, float(y.min())), max(self.high, float(y.max()))

    def merged(self, other: _YMoments) -> _YMoments:
        """The moments of both sets of rows, as a new object (a partition's result must stay
        as it is, should the task merging it be retried)."""
        out = _YMoments()
        out.n, out.mean, out.m2, out.sumsq = self.n, self.mean, self.m2, self.sumsq
        out.sw, out.log_w = self.sw, self.log_w
        out.low, out.high = min(self.low, other.low), max(self.high, other.high)
        if other.n:
            sw = self.sw + other.sw
            delta = other.mean - self.mean
            out.mean = self.mean + delta * other.sw / sw
            out.m2 = self.m2 + other.m2 + delta * delta * self.sw * other.sw / sw
            out.sumsq = self.sumsq + other.sumsq
            out.sw, out.log_w = sw, self.log_w + other.log_w
            out.n = self.n + other.n
        return out


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
    given, the low parts of products kept in double-double (used by the refinement);
    data.extra("weights"): (n,) prior weights >= 0 or None (R's lm(weights =))."""
    start = time.perf_counter()
    X, X_lo = data.X, data.X_lo
    y = np.asarray(data.y, dtype=float)
    w = data.extra("weights")
    if w is not None:
        X, y, w, X_lo = _positive(X, y, w, X_lo)
    n, p = len(y), X.shape[1] + (1 if config.intercept else 0)
    # Row blocks that fit in cache: the same TSQR as a chunked fit, and no n x p copy of X.
    block = max(p + 1, BLOCK_BYTES // (8 * (p + 1)))
    blocks = (
        ModelData(
            X[i : i + block], y[i : i + block], {} if w is None else {"weights": w[i : i + block]}
        )
        for i in range(0, n, block)
    )
    shift = _extreme_shift(X, config)
    R_aug, moments, _, _ = _accumulate(blocks, config.intercept, shift=shift)
    refine = config.refine if config.refine is not None else n * p <= REFINE_MAX_CELLS
    in_memory = None
    if refine and config.l2 == 0:
        A, A_lo = _design(_shifted(X, shift), _shifted(X_lo, shift), config.intercept)
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


def _positive(X, y, w, X_lo=None):
    """The rows with a positive prior weight: a zero weight leaves the fit (R's lm.wfit),
    not predict.  Negative or missing weights never get here (the validator's domain)."""
    w = np.asarray(w, dtype=float)
    used = w > 0
    if used.all():
        return X, y, w, X_lo
    return X[used], y[used], w[used], None if X_lo is None else X_lo[used]


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """One pass over the chunks, memory bounded by the chunk: accumulate R of [X | y]."""
    R_aug, moments, names, shift = _accumulate(chunks, config.intercept, on_progress, config)
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


#: Columns whose largest magnitude is beyond 2^±EXTREME_EXPONENT are scaled by a power of two
#: before the QR: squared norms of values near 1e-300 underflow (the column would look
#: aliased) and near 1e300 overflow. Scaling by 2^k is exact, so the answer is the same.
EXTREME_EXPONENT = 400


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

    # One engine.fold: locally this loop over the chunks; on a cluster each partition's R,
    # merged by stacking two R's and refactorising (the same TSQR, as a tree).
    def done(i: int, total: int) -> None:
        on_progress(Step(i, total, float(i)))

    acc = engine.fold(chunks, _TSQRStep(intercept, shift), _merge_tsqr, done)
    if acc is None:
        raise DataError("No data rows to fit.")
    return acc.R, acc.moments, acc.names, acc.shift


@dataclass
class _TSQR:
    """What a pass over some chunks leaves: R of their [1 X y], y's moments, the scaling."""

    R: np.ndarray | None
    moments: _YMoments
    names: list[str] | None
    shift: np.ndarray | None


@dataclass(frozen=True)
class _TSQRStep:
    intercept: bool
    shift: object  # exponents, None, or a Config to find them from the first chunk

    def __call__(self, acc: _TSQR | None, chunk: ModelData) -> _TSQR:
        if acc is None:
            shift = self.shift
            if isinstance(shift, Config):
                shift = _extreme_shift(chunk.X, shift)
            acc = _TSQR(None, _YMoments(), None, shift)
        y = np.asarray(chunk.y, dtype=float)
        X, w = chunk.X, chunk.extra("weights")
        if w is not None:
            X, y, w, _ = _positive(X, y, w)
        X = _shifted(X, acc.shift)
        root = None if w is None else np.sqrt(w)
        step = max(X.shape[1] + 2, BLOCK_BYTES // (8 * (X.shape[1] + 2)))
        for i in range(0, len(y), step):  # a big chunk in cache-sized blocks: 2x faster
            M = _augmented(X[i : i + step], y[i : i + step], self.intercept, acc.R)
            if root is not None:  # the weighted problem: the new rows times sqrt(w)
                M[M.shape[0] - len(root[i : i + step]) :] *= root[i : i + step, None]
            acc.R = qr_r(M)
        acc.moments.add(y, w)
        acc.names = chunk.names
        return acc


def _merge_tsqr(a: _TSQR, b: _TSQR) -> _TSQR:
    """a then b: R of [R_a; R_b], b's columns first brought to a's scaling (exact: 2^k)."""
    R_b = b.R
    k_a, k_b = _exponents(a.shift, R_b), _exponents(b.shift, R_b)
    if not np.array_equal(k_a, k_b):
        R_b = np.ldexp(R_b, k_a - k_b)
    return _TSQR(qr_r(np.vstack([a.R, R_b])), a.moments.merged(b.moments), b.names, a.shift)


def _exponents(shift: np.ndarray | None, R: np.ndarray) -> np.ndarray:
    """The power of two each column of R was scaled by (the intercept's and y's: 0)."""
    k = np.zeros(R.shape[1], dtype=np.int64)
    if shift is not None:
        k[R.shape[1] - 1 - len(shift) : R.shape[1] - 1] = shift
    return k


def _solve(R_aug, moments: _YMoments, config: Config, in_memory, names, shift=None) -> FitResult:
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
