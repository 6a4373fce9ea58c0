"""Generalised linear models by Newton-Raphson (IRLS), with R's summary(glm) statistics.

For a canonical link Newton's method and Fisher scoring coincide; each step solves
info * step = gradient with a Cholesky factor of the information matrix, halving the step
whenever the log-likelihood does not improve.  The Gaussian family reaches the least-squares
answer in one step (the seeds' link between Newton and the normal equation).
Log-likelihood, gradient and information are sums over rows, so the data is a list of blocks:
one block in memory, or a re-iterable stream of chunks (fit_chunks: one pass per iteration,
memory bounded by the chunk).  This module drives the fit; newton_passes has the passes
over the blocks, newton_qr the QR steps and aliasing, newton_checks the existence checks and
newton_result the summary statistics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np

from mlfit import engine
from mlfit.contract import FitResult, ModelData, ProgressFn, no_progress
from mlfit.errors import FitError
from mlfit.numerics import add_intercept
from mlfit.params import ParamsError, read_choice, read_float
from mlfit.solvers import nb_alpha, trials
from mlfit.solvers.family import FAMILIES
from mlfit.solvers.family import family as get_family
from mlfit.solvers.linear import LinearParams
from mlfit.solvers.newton_checks import (
    check_boundary,
    check_link_region,
    check_separation,
    check_single_columns,
)
from mlfit.solvers.newton_passes import Blocks, Columns, each, final_pass, scan, summed
from mlfit.solvers.newton_qr import (
    REFINE_MAX_CELLS,
    find_aliased,
    irls_by_qr,
    needs_qr,
    weighted_least_squares,
    with_aliased,
)
from mlfit.solvers.newton_result import glm_result, null_model
from mlfit.solvers.optimize import SingularInformation, newton
from mlfit.solvers.sandwich import GLMRows, robust, update_table


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


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) without intercept; data.y: (n,); data.extra("offset"): (n,) or None;
    data.extra("trials"): grouped binomial data, y the successes (mlfit.solvers.trials)."""
    grouped = trials.has_trials(data)
    fitted = trials.proportions(data) if grouped else data
    blocks = list(Blocks([fitted], config.intercept))
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
    blocks = engine.expand(fitted, partial(each, Blocks, config.intercept))
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
    stats = scan(fam, blocks, target)
    p = stats["p"]
    labels = (["intercept"] if config.intercept else []) + (
        list(names) if names is not None else [f"x{j + 1}" for j in range(p - config.intercept)]
    )
    if config.l2 == 0:
        check_single_columns(fam, stats["columns"], labels, config.intercept, target)
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
    if not fam.canonical and not math.isfinite(final_pass(fam, blocks, beta0)["loglik"]):
        raise FitError(
            f"The {fam.link} link puts fitted means outside the {fam.name} family's range "
            f"at the starting values (mean of '{target}' plus the offset, where given). "
            "Choose another --link."
        )
    try:
        opt = newton(
            summed(fam, blocks, pen),
            beta0,
            config.max_iter,
            config.tol if fam.fisher_is_newton else config.tol**2,  # linear convergence
            on_progress,
            stats["saturated_loglik"],
        )
    except SingularInformation as exc:
        aliased = find_aliased(blocks, p)
        if aliased.any() and not aliased.all():
            keep = np.flatnonzero(~aliased)
            subset = engine.expand(blocks, partial(each, Columns, keep))
            result = _fit(
                list(subset) if in_memory else subset,
                config,
                on_progress,
                [labels[j] for j in keep][config.intercept :],
                target,
                in_memory,
                fam,
            )
            return with_aliased(result, aliased, labels, config)
        check_separation(fam, blocks, config, in_memory, target)
        opt = None
        if config.l2 == 0:  # full rank but too ill-conditioned for X'WX: IRLS by QR
            opt = irls_by_qr(fam, blocks, beta0, config, on_progress, in_memory)
        if opt is None:
            raise FitError(
                f"The Hessian is singular: '{labels[exc.index]}' is constant or a linear "
                "combination of the columns before it (or its fitted weights vanish, as "
                "under separation). Drop it, or use --l2."
            ) from None
    if not fam.canonical and not opt.converged:
        check_link_region(fam, blocks, opt, target)
    ls = None
    if config.l2 == 0 and needs_qr(opt):  # estimate and standard errors from a QR
        refine = in_memory and stats["n"] * p <= REFINE_MAX_CELLS
        ls = weighted_least_squares(fam, blocks, opt.beta, refine)
        if not ls.aliased.any():
            opt.beta = ls.coef
    final = final_pass(fam, blocks, opt.beta)
    if config.l2 == 0:
        check_boundary(fam, blocks, final, opt, target, in_memory)
    null_ll, null_dev = null_model(fam, blocks, stats, config)
    params = Params(
        intercept=float(opt.beta[0]) if config.intercept else None,
        coef=opt.beta[1:] if config.intercept else opt.beta,
        family=fam.name,
        link=fam.link,
        nb_alpha=fam.alpha if fam.name == "negative-binomial" else None,
    )
    result = glm_result(fam, opt, ls, final, stats["n"], labels, null_ll, null_dev, config, params)
    result.info["fit_seconds"] = time.perf_counter() - start
    return result


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
