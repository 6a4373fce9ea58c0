"""Logistic regression's optimisation problem: the (penalised) log-likelihood on standardized
or original features, the optimisers run on it, and the checks and widenings of their answer
(separation, aliased columns, the null model and LR test, sandwich standard errors)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mlfit.contract import FitResult, Table
from mlfit.errors import FitError, UsageError
from mlfit.numerics import add_intercept, column_std
from mlfit.solvers.categorical import Categorical
from mlfit.solvers.descent import DescentConfig, descend
from mlfit.solvers.family import Bernoulli
from mlfit.solvers.lsq import aliased_warning
from mlfit.solvers.optimize import (
    Optimum,
    SingularInformation,
    cholesky,
    inverse,
    lbfgs,
    newton,
)
from mlfit.solvers.sandwich import glm_scores, robust, softmax_scores, update_table
from mlfit.solvers.separation import separation_exists
from mlfit.stats import likelihood_ratio_test

if TYPE_CHECKING:
    from mlfit.solvers.logreg import Config

#: Newton's stopping tolerance (on the decrement relative to the deviance); --tol is for descent.
NEWTON_TOL = 1e-12


def standardizer(X: np.ndarray, on: bool):
    if not on:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    m, s = X.mean(axis=0), column_std(X)
    return m, np.where(s > 0, s, 1.0)


class Problem:
    """The (penalised) log-likelihood in a chosen parameterisation: flat beta over (p, K-1)."""

    def __init__(self, X, codes, K, config, weights, standardize):
        self.mean, self.scale = standardizer(X, standardize)
        Z = (X - self.mean) / self.scale if standardize else X
        self.A = add_intercept(Z) if config.intercept else Z
        self.p = self.A.shape[1]
        self.K = K
        self.softmax = K > 2 or config.multiclass
        self.family = Categorical(K) if self.softmax else Bernoulli()
        self.y = codes if self.softmax else codes.astype(float)
        self.weights = weights
        self.n_out = K - 1 if self.softmax else 1
        pen = np.zeros((self.p, self.n_out))
        if config.l2 > 0:
            first = 1 if config.intercept else 0
            pen[first:] = (
                config.l2 / (self.scale**2)[:, None]
            )  # b_j = w_j / s_j on the original scale
        self.pen = pen.ravel(order="F") if config.l2 > 0 else None
        self.total_weight = float(weights.sum())

    def objective(self, beta, rows=None, info=True):
        A, y, w = (
            (self.A, self.y, self.weights)
            if rows is None
            else (self.A[rows], self.y[rows], self.weights[rows])
        )
        pen = self.pen
        if rows is not None and pen is not None:  # spread the penalty over the batches
            pen = pen * (w.sum() / self.total_weight)
        return self.family.objective(
            A, y, beta, 0.0 if self.softmax else np.zeros(len(y)), w, pen, info=info
        )

    def mean_loss(self, beta, rows=None):
        """Mean penalised negative log-likelihood and its gradient (for descent and L-BFGS)."""
        ll, g, _ = self.objective(beta, rows, info=False)
        total = self.total_weight if rows is None else float(self.weights[rows].sum())
        return -ll / total, -g / total

    def to_original(self, beta: np.ndarray) -> np.ndarray:
        """(p, K-1) coefficients on the original feature scale, intercept first."""
        B = beta.reshape(self.p, self.n_out, order="F").copy()
        first = 1 if self.A.shape[1] > len(self.scale) else 0
        B[first:] /= self.scale[:, None]
        if first:
            B[0] -= self.mean @ B[1:]
        return B


class SingularHessian(FitError):
    """Newton's information matrix could not be factored."""


def with_aliased(result: FitResult, aliased: np.ndarray, names: list[str], config) -> FitResult:
    """Widen a fit of the estimable columns back to every column (aliased: null, coef 0)."""
    params = result.params
    m = params.B.shape[1]
    keep = np.flatnonzero(~aliased)
    B = np.zeros((len(aliased), m))
    B[keep] = params.B
    result.params = replace(params, B=B)
    labels_full = (["intercept"] if config.intercept else []) + list(names)
    table = result.tables["coefficients"]
    widened = {}
    for key in table:
        full = np.full((len(aliased), m), np.nan)
        full[keep] = np.asarray(table[key], dtype=float).reshape(len(keep), m, order="F")
        widened[key] = full.ravel(order="F")
    widened["aliased"] = np.tile(aliased, m)
    rows = parameter_names(labels_full, params.classes, params.softmax)
    result.tables["coefficients"] = Table(rows, widened)
    result.warnings.insert(0, aliased_warning(labels_full, aliased))
    result.info["aliased_index"] = np.flatnonzero(aliased).tolist()
    return result


def against_null(
    loglik: float, codes: np.ndarray, K: int, n_params: int, config, prior=None
) -> dict:
    """The null model's log-likelihood (the class frequencies with an intercept; every class
    equally likely without), McFadden's pseudo-R² and the likelihood-ratio test, as newton
    reports them.  Not for penalised or class-weighted fits, which maximise another function."""
    counts = np.bincount(codes, weights=prior, minlength=K).astype(float)  # prior: weighted
    n = float(counts.sum())
    if config.intercept:
        null = float(np.sum(counts * np.log(counts / n)))
    else:
        null = n * math.log(1.0 / K) if (K > 2 or config.multiclass) else n * math.log(0.5)
    out = {"null_log_likelihood": null, "pseudo_r_squared": 1.0 - loglik / null}
    if config.l2 == 0 and config.class_weight == "none":
        null_params = (K - 1) if config.intercept else 0
        out.update(likelihood_ratio_test(loglik, null, n_params - null_params))
    return out


def robust_errors(problem, opt, P, codes, method, config, labels, table: dict) -> dict:
    """--se robust / --cluster: sandwich standard errors (mlfit.solvers.sandwich) with the
    inverse information as the bread and the rows' weights (prior times class weights) in the
    scores; z tests.  HC2 and HC3 need leverages, which softmax regression has not."""
    if problem.softmax and config.covariance in ("HC2", "HC3"):
        raise UsageError(
            f"{config.covariance} needs leverages, which softmax regression does not have; use "
            "--hc 0 or --hc 1, or --cluster."
        )
    bread = inverse(*cholesky(opt.info))
    if problem.softmax:
        S, At = softmax_scores(problem.A, codes, P, problem.weights), None
    else:
        S, At = glm_scores(Bernoulli(), problem.A, problem.y, problem.A @ opt.beta, problem.weights)
    rob = robust(config.covariance, bread, [S], lambda scores: (scores, At, labels))
    coefficients = Table([""] * len(table["estimate"]), table)
    update_table(coefficients, np.arange(len(table["estimate"])), rob, None)
    table.clear()
    table.update(coefficients.columns)
    return rob.info()


def parameter_names(names: list[str], labels: list, softmax: bool) -> list[str]:
    if not softmax:
        return names
    return [f"{name}[{label}]" for label in labels[1:] for name in names]


def optimise(problem: Problem, method: str, beta0, config: Config, labels, on_progress):
    if method == "newton":
        try:
            opt = newton(
                problem.objective, beta0, config.max_iter, min(config.tol, NEWTON_TOL), on_progress
            )
        except SingularInformation as exc:
            name = labels[exc.index % problem.p]
            raise SingularHessian(
                f"The Hessian is singular: '{name}' is constant, a linear combination "
                "of earlier columns, or separates the classes. Drop it, or use --l2."
            ) from None
        conv = opt.convergence("newton")
        conv["final_loss"] = -opt.loglik / problem.total_weight
        conv["gradient_norm"] /= problem.total_weight  # of the mean loss, as for other methods
        conv["history"] = [h / (2 * problem.total_weight) for h in opt.history]
        return opt, conv
    if method == "lbfgs":
        opt = lbfgs(problem.mean_loss, beta0, config.max_iter * 10, 1e-15, on_progress)
        conv = opt.convergence("lbfgs")
        conv["final_loss"] = -opt.loglik
        conv["history"] = [h / 2 for h in opt.history]
        return opt, conv
    outcome = descend(
        problem.mean_loss,
        beta0,
        len(problem.y),
        DescentConfig(method, config.lr, config.batch_size, config.epochs, config.tol, config.seed),
        on_progress,
    )
    opt = Optimum(
        outcome.w, -outcome.final_loss, np.zeros(0), None, outcome.iterations, outcome.converged
    )
    return opt, outcome.convergence()


def check_separation(problem, opt, P, codes, config, target):
    if config.l2 > 0:
        return
    n = len(codes)
    p_true = P[np.arange(n), codes]
    extreme = int(np.sum(p_true > 1 - 1e-12))
    if extreme and (not opt.converged or extreme > 0.5 * n):
        positive_sets = [codes == k for k in range(problem.K)] if problem.softmax else [codes == 1]
        for positive in positive_sets:
            if separation_exists(problem.A, positive):
                raise FitError(
                    f"Quasi-complete separation: the fitted probabilities of {extreme} "
                    f"rows are 1 to machine precision and a combination of columns "
                    f"separates the classes of '{target}', so the maximum-likelihood "
                    "estimates are infinite. Drop the separating columns or use --l2."
                )
