"""Generalised linear models by Newton-Raphson (IRLS), with R's summary(glm) statistics.

For a canonical link Newton's method and Fisher scoring coincide; each step solves
info * step = gradient with a Cholesky factor of the information matrix, halving the step
whenever the log-likelihood does not improve.  The Gaussian family reaches the least-squares
answer in one step (the seeds' link between Newton and the normal equation).
Log-likelihood, gradient and information are sums over rows, so the data is a list of blocks:
one block in memory, or a re-iterable stream of chunks (fit_chunks: one pass per iteration,
memory bounded by the chunk).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from mlfit import engine
from mlfit.contract import FitResult, ModelData, ProgressFn, Step, Table, no_progress
from mlfit.errors import DataError, FitError
from mlfit.numerics import add_intercept
from mlfit.params import ParamsError, read_choice, read_float
from mlfit.solvers import nb_alpha, trials
from mlfit.solvers.family import FAMILIES
from mlfit.solvers.family import family as get_family
from mlfit.solvers.linear import LinearParams, check_rows
from mlfit.solvers.lsq import LeastSquares, aliased_columns, aliased_warning, qr_r, solve_r
from mlfit.solvers.optimize import (
    MAX_HALVINGS,
    Optimum,
    SingularInformation,
    cholesky,
    inverse,
    inverse_diagonal,
    newton,
    solve_cholesky,
)
from mlfit.solvers.sandwich import GLMRows, robust, update_table
from mlfit.solvers.separation import (
    ColumnSummary,
    separating_column,
    separation_exists,
    zero_count_column,
    zero_counts_unbounded,
)
from mlfit.stats import likelihood_ratio_test, t_table, z_table

#: Below this scaled condition number of the information, its Cholesky factor gives the
#: standard errors to about 1e-14 and the QR step is skipped (the benchmark data: about 3.5).
CHOLESKY_COND = 50.0
#: As normal-eq: a column is aliased when |R_jj| < RANK_TOL * its norm.
RANK_TOL = 1e-11
#: The final least-squares step is refined in extended precision while n * p is at most this.
REFINE_MAX_CELLS = 1_000_000
#: Bytes of sqrt(W) [A | z] factorised at a time: blocks that stay in L2 cache (about 1,000
#: rows at p = 20) factor 2-3x faster than one big QR (measured).
BLOCK_BYTES = 512 << 10
#: |eta| beyond which a fitted probability is 0 or 1 to about 1e-13: a sign of separation.
EXTREME_ETA = 30.0
#: A Poisson mean below exp(-20) ~ 2e-9 on a zero-count row: worth checking the estimate exists.
VANISHING_ETA = -20.0


@dataclass(frozen=True)
class Config:
    family: str = "gaussian"  # a key of mlfit.solvers.family.FAMILIES
    link: str | None = None  # one of the family's links; None: its default
    nb_alpha: float | None = None  # negative-binomial: fixed alpha; None: estimated
    max_iter: int = 100
    tol: float = 1e-12
    l2: float = 0.0  # penalty (l2 / 2) * ||coef||^2 on the log-likelihood; intercept free
    intercept: bool = True
    covariance: str = "nonrobust"  # or a robust one of mlfit.solvers.sandwich.COVARIANCES


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(LinearParams):
    family: str = "gaussian"
    link: str = "identity"
    nb_alpha: float | None = None  # the negative binomial's alpha (diagnostics need V(mu))

    def to_dict(self) -> dict:
        extra = {} if self.nb_alpha is None else {"nb_alpha": self.nb_alpha}
        return {"family": self.family, "link": self.link, **extra, **super().to_dict()}

    @classmethod
    def read_fields(cls, d: dict, n_columns: int) -> dict:
        name = read_choice(d, "family", sorted(FAMILIES))
        link = read_choice(d, "link", list(FAMILIES[name].links))
        fields = {**super().read_fields(d, n_columns), "family": name, "link": link}
        if name == "negative-binomial":
            alpha = read_float(d, "nb_alpha")
            if not alpha > 0:
                raise ParamsError(f"'nb_alpha' is {alpha}; it must be positive")
            fields["nb_alpha"] = alpha
        return fields

    def family_object(self):
        return get_family(self.family, self.link, self.nb_alpha)

    def mean(self, X, offset=None) -> np.ndarray:
        """The fitted mean response: the inverse link of the linear predictor (+ offset)."""
        eta = self.linear_predictor(X)
        return self.family_object().mean(eta if offset is None else eta + offset)


class _Blocks:
    """Re-iterable (A, y, offset, weights) blocks: A has the intercept column when asked;
    weights are the prior weights (R's glm(weights =)), ones without, and rows of weight 0
    are left out here, so every sum, count and check of the fit is over the rows it uses."""

    def __init__(self, chunks: Iterable[ModelData], intercept: bool):
        self._chunks = chunks
        self._intercept = intercept

    def __iter__(self):
        for chunk in self._chunks:
            A = add_intercept(chunk.X) if self._intercept else chunk.X
            y = np.asarray(chunk.y, dtype=float)
            offset = chunk.extra("offset")
            offset = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float)
            weights = chunk.extra("weights")
            if weights is None:
                yield A, y, offset, np.ones(len(y))
                continue
            weights = np.asarray(weights, dtype=float)
            used = weights > 0
            if not used.all():
                A, y, offset, weights = A[used], y[used], offset[used], weights[used]
            if len(y):
                yield A, y, offset, weights


def _summed(fam, blocks, pen):
    """objective(beta): log-likelihood, gradient and information summed over the blocks."""

    def objective(beta):  # one pass per call: a loop here, per partition on a cluster
        total = engine.over_partitions(blocks, partial(_objective_sums, fam, beta), _add_parts)
        if pen is not None:
            total[0] -= 0.5 * float(np.sum(pen * beta * beta))
            total[1] = total[1] - pen * beta
            total[2] = total[2] + np.diag(pen)
        return tuple(total)

    return objective


def _objective_sums(fam, beta, blocks) -> list:
    """Log-likelihood, gradient and information at beta, summed over the blocks."""
    total = None
    for A, y, offset, weights in blocks:
        part = fam.objective(A, y, beta, offset, weights, None)
        total = list(part) if total is None else [t + q for t, q in zip(total, part)]
    return total


def _add_parts(a: list, b: list) -> list:
    return [t + q for t, q in zip(a, b)]


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) without intercept; data.y: (n,); data.extra("offset"): (n,) or None;
    data.extra("trials"): grouped binomial data, y the successes (mlfit.solvers.trials)."""
    grouped = trials.has_trials(data)
    fitted = trials.proportions(data) if grouped else data
    blocks = list(_Blocks([fitted], config.intercept))
    fam = _grouped_family(config) if grouped else None
    result = _fit(blocks, config, on_progress, data.names, data.target, in_memory=True, fam=fam)
    if grouped:
        result = trials.with_log_choose(result, trials.log_choose([data]))
    return _robust(result, [fitted], config)


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """chunks: re-iterable; one pass over them per iteration."""
    first = engine.first(chunks, _names_and_target)  # computed where the chunks live
    names, target, grouped = first if first is not None else (None, "y", False)
    fitted = engine.expand(chunks, trials.each) if grouped else chunks
    blocks = engine.expand(fitted, partial(_each, _Blocks, config.intercept))
    fam = _grouped_family(config) if grouped else None
    result = _fit(blocks, config, on_progress, names, target, in_memory=False, fam=fam)
    if grouped:  # R's log C(n, s) terms of the log-likelihood: one more pass
        result = trials.with_log_choose(result, trials.log_choose(chunks))
    return _robust(result, fitted, config)  # the meat: one more pass over the chunks


def _grouped_family(config: Config):
    """The family of a fit with trials (bernoulli only: the command line says so first)."""
    return trials.grouped_family(get_family(config.family, config.link, config.nb_alpha))


def _robust(result: FitResult, chunks, config: Config) -> FitResult:
    """With --se robust or --cluster: sandwich standard errors (mlfit.solvers.sandwich, the
    bread (A'WA)^-1 of the fit) and z tests, as statsmodels' and R's coeftest for a glm."""
    if config.covariance == "nonrobust":
        return result
    params = result.params
    beta = np.concatenate([[params.intercept], params.coef]) if config.intercept else params.coef
    aliased = np.zeros(len(beta), dtype=bool)
    aliased[result.info.get("aliased_index", [])] = True
    keep = np.flatnonzero(~aliased)
    bread = result.internals["unscaled_cov"][np.ix_(keep, keep)]
    rows = GLMRows(params.family_object(), beta[keep], config.intercept, keep)
    rob = robust(config.covariance, bread, chunks, rows)
    update_table(result.tables["coefficients"], keep, rob, None)
    result.info.update(rob.info())
    return result


def _names_and_target(chunk: ModelData):
    return chunk.names, chunk.target, trials.has_trials(chunk)


def _each(wrapper, arg, item):
    """wrapper([item], arg): a blocks wrapper (_Blocks, _Columns, _Constant) applied to one
    chunk or block where it lives (engine.expand); in order, the same blocks as over all."""
    return wrapper([item], arg)


def _fit(blocks, config, on_progress, names, target, in_memory, fam=None) -> FitResult:
    """fam: the family to fit (None: the config's; for the negative binomial without
    --nb-alpha, alpha is estimated around fits at fixed alphas)."""
    start = time.perf_counter()
    if fam is None and config.family == "negative-binomial" and config.nb_alpha is None:
        fit_at = lambda f: _fit(blocks, config, on_progress, names, target, in_memory, f)
        result = nb_alpha.estimate(fit_at, blocks, config.link, config.intercept)
        result.info["fit_seconds"] = time.perf_counter() - start
        return result
    if fam is None:
        fam = get_family(config.family, config.link, config.nb_alpha)
    stats = _scan(fam, blocks, target)
    p = stats["p"]
    labels = (["intercept"] if config.intercept else []) + (
        list(names) if names is not None else [f"x{j + 1}" for j in range(p - config.intercept)]
    )
    if config.l2 == 0:
        _check_single_columns(fam, stats["columns"], labels, config.intercept, target)
    pen = None
    if config.l2 > 0:
        pen = np.full(p, float(config.l2))
        if config.intercept:
            pen[0] = 0.0
    beta0 = np.zeros(p)
    if config.intercept:
        mu = fam.start_mu(np.array([stats["y_mean"]]))
        beta0[0] = float(fam.link_fn(mu)[0]) - stats["offset_mean"]
        if not math.isfinite(beta0[0]):
            raise FitError(
                f"The {fam.link} link is not defined at the mean of '{target}' "
                f"({stats['y_mean']:g}), where the fit starts. Choose another --link."
            )
    if not fam.canonical and not math.isfinite(_final_pass(fam, blocks, beta0)["loglik"]):
        raise FitError(
            f"The {fam.link} link puts fitted means outside the {fam.name} family's range "
            f"at the starting values (mean of '{target}' plus the offset, where given). "
            "Choose another --link."
        )
    try:
        opt = newton(
            _summed(fam, blocks, pen),
            beta0,
            config.max_iter,
            config.tol if fam.fisher_is_newton else config.tol**2,  # linear convergence
            on_progress,
            stats["saturated_loglik"],
        )
    except SingularInformation as exc:
        aliased = _aliased(blocks, p)
        if aliased.any() and not aliased.all():
            keep = np.flatnonzero(~aliased)
            subset = engine.expand(blocks, partial(_each, _Columns, keep))
            result = _fit(
                list(subset) if in_memory else subset,
                config,
                on_progress,
                [labels[j] for j in keep][config.intercept :],
                target,
                in_memory,
                fam,
            )
            return _with_aliased(result, aliased, labels, config)
        if (
            fam.name == "bernoulli"
            and config.l2 == 0
            and in_memory
            and separation_exists(*_classes(blocks[0][0], blocks[0][1]))
        ):
            raise FitError(
                f"Quasi-complete separation: a combination of columns predicts "
                f"{target} exactly for some rows, so the maximum-likelihood estimates "
                "are infinite (the Hessian became singular). Drop the separating "
                "columns, merge levels, or use --l2."
            ) from None
        opt = None
        if config.l2 == 0:  # full rank but too ill-conditioned for X'WX: IRLS by QR
            opt = _irls_by_qr(fam, blocks, beta0, config, on_progress, in_memory)
        if opt is None:
            raise FitError(
                f"The Hessian is singular: '{labels[exc.index]}' is constant or a linear "
                "combination of the columns before it (or its fitted weights vanish, as "
                "under separation). Drop it, or use --l2."
            ) from None
    if not fam.canonical and not opt.converged:
        _check_link_region(fam, blocks, opt, target)
    ls = None
    if config.l2 == 0 and _needs_qr(opt):  # estimate and standard errors from a QR
        refine = in_memory and stats["n"] * p <= REFINE_MAX_CELLS
        ls = _weighted_least_squares(fam, blocks, opt.beta, refine)
        if not ls.aliased.any():
            opt.beta = ls.coef
    final = _final_pass(fam, blocks, opt.beta)
    if config.l2 == 0:
        _check_boundary(fam, blocks, final, opt, target, in_memory)
    null_ll, null_dev = _null_model(fam, blocks, stats, config)
    result = _glm_result(fam, opt, ls, final, stats["n"], labels, null_ll, null_dev, config)
    result.info["fit_seconds"] = time.perf_counter() - start
    return result


def _check_link_region(fam, blocks, opt: Optimum, target: str) -> None:
    """Fisher scoring stopped short, and its next full step would leave the region where the
    link and family are defined: the maximum is on that region's edge (a fitted mean at 0,
    say, for an identity link), not an estimate with standard errors."""
    try:
        if opt.info is None:  # IRLS by QR: its next step
            after = _weighted_least_squares(fam, blocks, opt.beta, False).coef
        else:
            after = opt.beta + solve_cholesky(*cholesky(opt.info), opt.gradient)
    except FitError:  # SingularInformation included
        return
    if not math.isfinite(_final_pass(fam, blocks, after)["loglik"]):
        raise FitError(
            f"The likelihood of the {fam.name} family with the {fam.link} link is largest on "
            f"the edge of the region where the link gives valid means of '{target}' (a "
            "fitted mean at its bound), so there is no interior estimate. Choose another "
            f"--link (the default is {fam.links[0]})."
        )


def _needs_qr(opt: Optimum) -> bool:
    """Whether the Cholesky factor of the information (condition number squared) would cost
    digits: unless its scaled condition number is below CHOLESKY_COND (errors about
    cond * eps, 1e-14 relative), the final step and standard errors come from a QR."""
    if opt.info is None:  # IRLS by QR: the information was never factored
        return True
    L, _ = cholesky(opt.info)
    return np.linalg.cond(L) ** 2 > CHOLESKY_COND


def _weighted_least_squares(fam, blocks, beta, refine: bool) -> LeastSquares:
    """The IRLS step from beta solved by QR: R of sqrt(W) [A | z] over cache-sized row blocks
    (TSQR), refined in extended precision in memory.  At the Newton estimate this returns it
    again, to the last digits, with (A'WA)^-1 from R rather than from a Cholesky factor of
    A'WA, whose condition number is the square of the design's."""
    weighted = partial(_weighted_r, fam, beta, refine)
    R_aug, rows = engine.over_partitions(blocks, weighted, _stack_weighted)
    in_memory = (rows[0][0], None, rows[0][1]) if refine and len(rows) == 1 else None
    return solve_r(R_aug, RANK_TOL, None, in_memory)


def _stack_weighted(a: tuple, b: tuple) -> tuple:
    return qr_r(np.vstack([a[0], b[0]])), a[1] + b[1]


def _weighted_r(fam, beta, refine: bool, blocks) -> tuple:
    """R of sqrt(W) [A | z] over the blocks (TSQR), and the weighted rows when refine."""
    R_aug, rows = None, []
    for A, y, offset, weights in blocks:
        sqrt_w, b = fam.working(y, A @ beta + offset, offset)
        root = np.sqrt(weights)
        sqrt_w, b = sqrt_w * root, b * root
        p = A.shape[1]
        step = max(p + 1, BLOCK_BYTES // (8 * (p + 1)))
        for i in range(0, len(b), step):
            top = 0 if R_aug is None else R_aug.shape[0]
            rows_i = min(step, len(b) - i)
            M = np.empty((top + rows_i, p + 1), order="F")  # LAPACK's layout: no copy
            if top:
                M[:top] = R_aug
            np.multiply(A[i : i + rows_i], sqrt_w[i : i + rows_i, None], out=M[top:, :p])
            M[top:, p] = b[i : i + rows_i]
            R_aug = qr_r(M)
        if refine:
            rows.append((A * sqrt_w[:, None], b))
    return R_aug, rows


def _irls_by_qr(fam, blocks, beta, config, on_progress, in_memory) -> Optimum | None:
    """R's glm.fit: each step the weighted least squares solved by QR, halved until the
    deviance does not rise.  For designs whose X'WX is too ill-conditioned to factor
    (condition number squared: a degree-10 polynomial), at a QR per iteration.  None when
    a step cannot be taken (the information is singular after all)."""
    refine = in_memory and sum(len(b[1]) for b in blocks) * len(beta) <= REFINE_MAX_CELLS
    at = _final_pass(fam, blocks, beta)
    history, change = [-2.0 * at["loglik"]], math.nan
    for it in range(1, config.max_iter + 1):
        try:
            ls = _weighted_least_squares(fam, blocks, beta, refine)
        except FitError:
            return None
        if ls.aliased.any():
            return None
        t = 1.0
        for _ in range(MAX_HALVINGS):
            trial = beta + t * (ls.coef - beta)
            new = _final_pass(fam, blocks, trial)
            if (
                math.isfinite(new["deviance"])
                and new["deviance"]
                <= at["deviance"] * (1 + 8 * np.finfo(float).eps) + np.finfo(float).tiny
            ):
                break
            t *= 0.5
        else:
            return None
        change = abs(at["deviance"] - new["deviance"]) / (abs(new["deviance"]) + 0.1)
        beta, at = trial, new
        history.append(-2.0 * at["loglik"])
        on_progress(Step(it, config.max_iter, -at["loglik"]))
        if change <= config.tol:
            return Optimum(beta, at["loglik"], np.zeros_like(beta), None, it, True, history, change)
    return Optimum(
        beta, at["loglik"], np.zeros_like(beta), None, config.max_iter, False, history, change
    )


def _aliased(blocks, p: int) -> np.ndarray:
    """Columns of A in the span of the columns before them, as normal-eq and R's glm find
    them: from a QR of the unweighted design (positive weights do not change its rank)."""
    R = engine.over_partitions(blocks, partial(_design_r, p), _stack_r)
    R = np.triu(R[:p])
    return aliased_columns(R, RANK_TOL)


def _design_r(p: int, blocks) -> np.ndarray | None:
    """R of the blocks' unweighted design (TSQR over cache-sized row blocks)."""
    R = None
    for A, *_ in blocks:
        step = max(p, BLOCK_BYTES // (8 * p))
        for i in range(0, len(A), step):
            R = qr_r(A[i : i + step] if R is None else np.vstack([R, A[i : i + step]]))
    return R


def _stack_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """R of two partitions' rows from theirs (TSQR)."""
    return qr_r(np.vstack([a, b]))


class _Columns:
    """The blocks with the design restricted to the columns keep."""

    def __init__(self, blocks, keep: np.ndarray):
        self._blocks, self._keep = blocks, keep

    def __iter__(self):
        for A, y, offset, weights in self._blocks:
            yield A[:, self._keep], y, offset, weights


def _with_aliased(result: FitResult, aliased: np.ndarray, labels: list[str], config) -> FitResult:
    """A fit of the estimable columns, widened back to every column: the aliased ones have
    no estimate (null) and a coefficient of 0 in predictions, as in normal-eq."""
    keep = np.flatnonzero(~aliased)
    table = result.tables["coefficients"]
    widened = {}
    for key in table:
        full = np.full(len(labels), np.nan)
        full[keep] = np.asarray(table[key], dtype=float)
        widened[key] = full
    widened["aliased"] = aliased
    result.tables["coefficients"] = Table(labels, widened)
    coef = np.where(aliased, 0.0, np.nan_to_num(widened["estimate"]))
    result.params = replace(
        result.params,
        intercept=float(coef[0]) if config.intercept else None,
        coef=coef[1:] if config.intercept else coef,
    )
    result.warnings.insert(0, aliased_warning(labels, aliased))
    result.info["aliased_index"] = np.flatnonzero(aliased).tolist()
    cov = np.full((len(labels), len(labels)), np.nan)
    cov[np.ix_(keep, keep)] = result.internals["unscaled_cov"]
    result.internals["unscaled_cov"] = cov
    return result


def _log_counts(fam) -> bool:
    """Counts with a log link: a zero-count pattern can drive a coefficient to -infinity."""
    return fam.domain == "counts" and fam.link == "log"


def _check_single_columns(fam, columns: ColumnSummary, labels, intercept, target) -> None:
    """Before fitting: one column that alone makes an estimate infinite is named up front."""
    if fam.name == "bernoulli":
        cause = separating_column(columns, labels, intercept)
        if cause:
            raise FitError(
                f"Perfect or quasi-complete separation: {cause} ({target} = 1). The "
                "maximum-likelihood estimates are infinite. Drop or merge that column, "
                "or use --l2."
            )
    if _log_counts(fam):
        name = zero_count_column(columns, labels)
        if name:
            raise FitError(
                f"Every row where '{name}' is non-zero has {target} = 0, so its "
                "coefficient goes to minus infinity (the maximum-likelihood estimate "
                "does not exist). Drop or merge that column, or use --l2."
            )


def _scan(fam, blocks, target) -> dict:
    """One pass: row count, parameter count, weighted mean of y and offset, the per-column
    ranges of each class (for the single-column checks); checks y."""
    sums = engine.over_partitions(blocks, partial(_scan_sums, fam, target), _merge_scans)
    n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset = sums or _scan_sums(
        fam, target, []
    )
    if n == 0:
        raise DataError("No data rows to fit.")
    return _scanned(fam, target, n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset)


def _scan_sums(fam, target, blocks) -> tuple:
    """_scan's sums over the blocks (merged over partitions by _merge_scans)."""
    n, p, sw, swy, soff, y_min, y_max = 0, 0, 0.0, 0.0, 0.0, math.inf, -math.inf
    columns = ColumnSummary()
    saturated = 0.0
    has_offset = False
    for A, y, offset, weights in blocks:
        columns.add(A, y > 0)
        if fam.name == "bernoulli":  # proportions (--trials) strictly inside: both classes
            columns.add(*_classes(A, y, both_only=True))
        saturated += float(weights @ fam.saturated_loglik(y))
        fam.check_y(y, target)
        n += len(y)
        p = A.shape[1]
        sw += float(weights.sum())
        swy += float(weights @ y)
        soff += float(offset.sum())
        has_offset = has_offset or bool(np.any(offset))
        y_min, y_max = min(y_min, float(y.min())), max(y_max, float(y.max()))
    return n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset


def _merge_scans(a: tuple, b: tuple) -> tuple:
    n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset = a
    return (
        n + b[0],
        max(p, b[1]),
        sw + b[2],
        swy + b[3],
        soff + b[4],
        min(y_min, b[5]),
        max(y_max, b[6]),
        columns.merged(b[7]),
        saturated + b[8],
        has_offset or b[9],
    )


def _scanned(fam, target, n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset):
    """_scan's checks and summary from its sums."""
    check_rows(n, p)
    if fam.name == "bernoulli" and y_min == y_max and y_min in (0.0, 1.0):
        raise DataError(
            f"Target '{target}' has a single class ({y_min:g}); a logistic model "
            "needs both 0 and 1."
        )
    if fam.domain == "counts" and y_max == 0:
        raise DataError(
            f"Target '{target}' is 0 in every row; a {fam.name} model needs some counts."
        )
    return {
        "n": n,
        "p": p,
        "y_mean": swy / sw,
        "offset_mean": soff / n,
        "sum_w": sw,
        "columns": columns,
        "saturated_loglik": saturated,
        "has_offset": has_offset,
    }


def _final_pass(fam, blocks, beta) -> dict:
    """_final_sums over the blocks: a loop here, per partition on a cluster (all sums)."""
    return engine.over_partitions(blocks, partial(_final_sums, fam, beta), _add_values)


def _add_values(a: dict, b: dict) -> dict:
    return {key: a[key] + b[key] for key in a}


def _final_sums(fam, beta, blocks) -> dict:
    """Deviance, unscaled log-likelihood and boundary counts at the estimate; log_weights:
    sum(log w) of the prior weights (R's Gaussian logLik adds half of it)."""
    dev, ll, extreme, vanishing, log_w = 0.0, 0.0, 0, 0, 0.0
    dispersion_sums = np.zeros(3)  # Pearson's chi-squared, sum(w), sum(w loglik_constant)
    profiled = fam.estimates_dispersion and not fam.deviance_is_pearson  # gamma, inv. Gaussian
    for A, y, offset, weights in blocks:
        eta = A @ beta + offset
        log_w += float(np.sum(np.log(weights)))
        dev += float(weights @ fam.unit_deviance(y, eta))
        ll += float(weights @ fam.parts(y, eta)[2])
        extreme += int(np.sum(np.abs(eta) > EXTREME_ETA))
        vanishing += int(np.sum((eta < VANISHING_ETA) & (y == 0)))
        if profiled:
            sums = [fam.pearson(y, eta), np.ones_like(y), fam.loglik_constant(y)]
            dispersion_sums += [float(weights @ v) for v in sums]
    return {
        "pearson": dispersion_sums[0],
        "sum_w": dispersion_sums[1],
        "loglik_constant": dispersion_sums[2],
        "deviance": dev,
        "loglik": ll,
        "extreme": extreme,
        "vanishing": vanishing,
        "log_weights": log_w,
    }


def _classes(A: np.ndarray, y: np.ndarray, both_only: bool = False):
    """Rows and classes for the separation checks: y = 1 in, y = 0 out, and a proportion
    strictly between (grouped data) on both sides, as its linear predictor must stay finite.
    both_only: those rows alone, on the outside (the summary has them inside already)."""
    mid = (y > 0) & (y < 1)
    if both_only:
        return A[mid], np.zeros(int(mid.sum()), dtype=bool)
    if not mid.any():
        return A, y == 1
    return np.vstack([A, A[mid]]), np.concatenate([y > 0, np.zeros(int(mid.sum()), bool)])


def _check_boundary(fam, blocks, final, opt, target, in_memory):
    """Estimates on the boundary (infinite) must not be printed as if they were estimates."""
    if fam.name == "bernoulli" and (final["extreme"] or not opt.converged):
        confirmed = True
        if in_memory:
            confirmed = separation_exists(*_classes(blocks[0][0], blocks[0][1]))
        if confirmed:
            raise FitError(
                f"Quasi-complete separation: a combination of columns predicts {target} "
                f"exactly for {final['extreme']} rows, so the maximum-likelihood "
                "estimates are infinite. Drop the separating columns, merge levels, or "
                "use --l2."
            )
    if _log_counts(fam) and final["vanishing"]:
        confirmed = True
        if in_memory:
            A, y = blocks[0][0], blocks[0][1]
            confirmed = zero_counts_unbounded(A, y)
        if confirmed:
            raise FitError(
                f"The fitted mean is 0 for {final['vanishing']} rows with {target} = 0: "
                "a combination of columns (often a level with only zero counts) drives "
                "the coefficients to infinity, so the maximum-likelihood estimate does "
                "not exist. Drop or merge those columns, or use --l2."
            )


def _null_model(fam, blocks, stats, config) -> tuple[float, float]:
    """Log-likelihood and deviance of the intercept-only model (eta = offset without one)."""
    ones = engine.expand(blocks, partial(_each, _Constant, 1.0 if config.intercept else 0.0))
    beta = np.zeros(1)
    if config.intercept and fam.canonical and not stats["has_offset"]:
        # canonical link, no offset: the score equation sum w (y - mu) = 0 gives mu = mean(y)
        beta = np.array([float(fam.link_fn(np.array([stats["y_mean"]]))[0])])
    elif config.intercept:
        beta0 = np.array(
            [
                float(fam.link_fn(fam.start_mu(np.array([stats["y_mean"]])))[0])
                - stats["offset_mean"]
            ]
        )
        beta = newton(
            _summed(fam, ones, None), beta0, 100, 1e-14, saturated_loglik=stats["saturated_loglik"]
        ).beta
    final = _final_pass(fam, ones, beta)
    return final["loglik"], final["deviance"]


class _Constant:
    """The blocks with the design replaced by one constant column (1: intercept only; 0: none)."""

    def __init__(self, blocks, value: float):
        self._blocks = blocks
        self._value = value

    def __iter__(self):
        for _, y, offset, weights in self._blocks:
            yield np.full((len(y), 1), self._value), y, offset, weights


def _gaussian_loglik(dev: float, n: int, log_weights: float = 0.0) -> float:
    """Maximised Gaussian log-likelihood with sigma^2 = dev / n (R's logLik for glm), plus
    half the sum of log prior weights (row variances sigma^2 / w, as R's logLik.lm);
    undefined (NaN, null in the JSON) for an exact fit, where sigma is 0."""
    if dev <= 0:
        return math.nan
    return -0.5 * n * (math.log(2.0 * math.pi * dev / n) + 1.0) + 0.5 * log_weights


def _glm_result(fam, opt, ls, final, n, labels, null_ll, null_dev, config) -> FitResult:
    """ls: the final weighted least squares (None for a penalised fit: no standard errors)."""
    p = len(labels)
    dev = final["deviance"]
    df_resid = n - p
    exact = ls is not None and not ls.aliased.any()
    if exact and fam.deviance_is_pearson:  # the QR's residual sum of squares: more digits
        dev = ls.rss
    if fam.estimates_dispersion:  # sigma^2 estimated (counted as a parameter), as R's
        # summary.glm: Pearson's chi-squared (the weighted QR's RSS) over the residual df
        pearson = ls.rss if exact else dev if fam.deviance_is_pearson else final["pearson"]
        dispersion = pearson / df_resid if df_resid > 0 else math.nan
        log_w = final["log_weights"]
        if fam.deviance_is_pearson:
            loglik = _gaussian_loglik(dev, n, log_w)
            null_ll = _gaussian_loglik(null_dev, n, log_w)
        else:  # gamma, inverse Gaussian: at R's dispersion dev / sum(w) (its logLik and AIC)
            sums = final["sum_w"], final["loglik_constant"]
            loglik, null_ll = fam.profile_loglik(dev, *sums), fam.profile_loglik(null_dev, *sums)
        k = p + fam.extra_parameters
    else:
        dispersion, loglik, k = 1.0, final["loglik"], p + fam.extra_parameters
    table = {"estimate": opt.beta.copy()}
    if config.l2 == 0 and (ls is None or exact):
        if exact:
            se = np.sqrt(dispersion * ls.diag_s) / ls.scale
        else:  # well conditioned: the Cholesky factor is as accurate
            se = np.sqrt(dispersion * inverse_diagonal(*cholesky(opt.info)))
        table["std_error"] = se
        table.update(
            t_table(opt.beta, se, df_resid) if fam.estimates_dispersion else z_table(opt.beta, se)
        )
    metrics = {
        "deviance": dev,
        "null_deviance": null_dev,
        "df_residual": df_resid,
        "df_null": n - (1 if config.intercept else 0),
        "log_likelihood": loglik,
        "null_log_likelihood": null_ll,
        "pseudo_r_squared": 1.0 - loglik / null_ll if null_ll != 0 else math.nan,
        "dispersion": dispersion,
        "n": n,
    }
    if config.l2 == 0:  # against the intercept-only model (eta = offset without one)
        metrics.update(likelihood_ratio_test(loglik, null_ll, p - (1 if config.intercept else 0)))
    warnings = []
    if not opt.converged:
        warnings.append(
            f"Newton's method did not converge in {config.max_iter} iterations "
            f"(relative deviance change {opt.last_change:.3g}). Increase --max-iter."
        )
    coef = opt.beta
    params = Params(
        intercept=float(coef[0]) if config.intercept else None,
        coef=coef[1:] if config.intercept else coef,
        family=fam.name,
        link=fam.link,
        nb_alpha=fam.alpha if fam.name == "negative-binomial" else None,
    )
    info = {"method": "newton+qr" if ls is not None else "newton", "family": fam.name}
    info["link"] = fam.link
    if fam.name == "negative-binomial":  # fixed by --nb-alpha, or estimated (nb_alpha.py)
        metrics["nb_alpha"] = fam.alpha
    if config.l2 > 0:
        info["l2"] = config.l2
    # (A'WA)^-1 for leverage in the diagnostic plots (p x p; the information is X'WX).
    if exact:
        unscaled_cov = ls.unscaled_cov()
    else:
        unscaled_cov = inverse(*cholesky(opt.info))
    return FitResult(
        params,
        n_parameters=k,
        n_obs=n,
        tables={"coefficients": Table(labels, table)},
        metrics=metrics,
        convergence=opt.convergence("newton"),
        warnings=warnings,
        info=info,
        internals={"unscaled_cov": unscaled_cov},
    )


def predict(params: Params, data: ModelData) -> dict[str, np.ndarray]:
    return {"prediction": params.mean(data.X, data.extra("offset"))}


def plot_data(result: FitResult, data: ModelData, rows: np.ndarray | None) -> dict:
    """R's plot(glm) panels for the given rows (all when None), from the full fit."""
    from mlfit.diagnostics import glm_diagnostics

    params = result.params
    if trials.has_trials(data):  # proportions with weights trials x prior, as the fit
        data = trials.proportions(data)
    X, y, offset, prior = data.X, data.y, data.extra("offset"), data.extra("weights")
    if rows is not None:
        X, y = X[rows], y[rows]
        offset = None if offset is None else offset[rows]
        prior = None if prior is None else prior[rows]
    A = add_intercept(X) if params.intercept is not None else X
    eta = params.linear_predictor(X) + (0.0 if offset is None else offset)
    diagnostics = glm_diagnostics(
        A,
        y,
        eta,
        params.family_object(),
        result.internals["unscaled_cov"],
        result.metrics["dispersion"],
        prior,
    )
    return {"diagnostics": diagnostics, "glm": True}
