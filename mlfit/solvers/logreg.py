"""Logistic regression, and softmax regression for more than two classes.

Maximum likelihood by one of: Newton-Raphson (the default while the parameter count is
moderate: few iterations, and standard errors from the information matrix), L-BFGS (the
default beyond, where a p x p Hessian costs too much), or gradient descent as in the seeds
(batch, minibatch, sgd; the loop shared with linreg).  Descent and L-BFGS run on standardized
features; coefficients are always reported on the original scale, and --l2 always penalises
(l2 / 2) * ||coef||^2 of the original-scale coefficients (scikit-learn's C = 1 / l2).
Softmax uses the first class (in sorted order) as the reference with coefficients 0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from mlfit import contract
from mlfit.contract import FitResult, ModelData, ProgressFn, Table, no_progress
from mlfit.errors import DataError, FitError, UsageError
from mlfit.metrics import classification_metrics
from mlfit.numerics import add_intercept, column_std, rowwise_matmul, sigmoid
from mlfit.params import (
    ParamsError,
    decode_array,
    encode_array,
    read_bool,
    read_float,
    read_labels,
)
from mlfit.solvers import classes
from mlfit.solvers.categorical import Categorical
from mlfit.solvers.descent import DescentConfig, descend
from mlfit.solvers.family import Bernoulli
from mlfit.solvers.linear import check_rows
from mlfit.solvers.lsq import aliased_design_columns, aliased_warning
from mlfit.solvers.optimize import (
    Optimum,
    SingularInformation,
    cholesky,
    inverse,
    inverse_diagonal,
    lbfgs,
    newton,
)
from mlfit.solvers.sandwich import glm_scores, robust, softmax_scores, update_table
from mlfit.solvers.separation import ColumnSummary, separating_column, separation_exists
from mlfit.stats import likelihood_ratio_test, z_table

#: With --method auto, Newton up to this many parameters, L-BFGS beyond.
NEWTON_MAX_PARAMS = 500
#: Newton's stopping tolerance (on the decrement relative to the deviance); --tol is for descent.
NEWTON_TOL = 1e-12
EXTREME_ETA = 30.0


@dataclass(frozen=True)
class Config(DescentConfig):
    method: str = "auto"  # auto | newton | lbfgs | batch | minibatch | sgd
    max_iter: int = 100  # Newton and L-BFGS iterations
    l2: float = 0.0
    class_weight: str = "none"  # none | balanced
    multiclass: bool = False  # softmax even for two classes
    intercept: bool = True
    holdout: float = 0.0
    threshold: float = 0.5
    covariance: str = "nonrobust"  # or a robust one of mlfit.solvers.sandwich.COVARIANCES


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(contract.Params):
    """B: (p[+1], m) original-scale coefficients, intercept row first when fitted; m = 1 for a
    binary model (the log-odds of the second class), K - 1 for softmax (class 0 the reference)."""

    classes: list
    softmax: bool
    threshold: float
    B: np.ndarray
    intercept: bool

    def to_dict(self) -> dict:
        B = self.B if self.softmax else self.B[:, 0]
        first = 1 if self.intercept else 0
        return {
            "classes": self.classes,
            "softmax": self.softmax,
            "threshold": self.threshold,
            "intercept": (B[0].tolist() if self.softmax else float(B[0])) if first else None,
            "coef": encode_array(B[first:]),
        }

    @classmethod
    def from_dict(cls, d: dict, n_columns: int) -> Params:
        classes = read_labels(d, "classes")
        softmax = read_bool(d, "softmax")
        threshold = read_float(d, "threshold")
        if not 0.0 <= threshold <= 1.0:
            raise ParamsError("'threshold' must be a probability")
        if not softmax and len(classes) != 2:
            raise ParamsError("a binary model needs exactly two 'classes'")
        m = len(classes) - 1
        coef = decode_array(d, "coef", (n_columns, m) if softmax else (n_columns,))
        B = coef if softmax else coef[:, None]
        intercept = d.get("intercept") is not None
        if intercept:
            shape = (m,) if softmax else ()
            B = np.vstack([decode_array(d, "intercept", shape).reshape(1, -1), B])
        return cls(classes, softmax, threshold, B, intercept)

    def proba(self, X) -> np.ndarray:
        """(n, K) class probabilities, columns in the order of classes."""
        return _probabilities(np.asarray(X, dtype=float), self.B, self.intercept, self.softmax)

    def labels(self, P: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """(n,) predicted classes from probabilities; threshold: binary models only."""
        classes = np.array(self.classes, dtype=object)
        if not self.softmax:
            cut = self.threshold if threshold is None else threshold
            return classes[(P[:, 1] >= cut).astype(np.int64)]
        return classes[np.argmax(P, axis=1)]


def _standardizer(X: np.ndarray, on: bool):
    if not on:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    m, s = X.mean(axis=0), column_std(X)
    return m, np.where(s > 0, s, 1.0)


class _Problem:
    """The (penalised) log-likelihood in a chosen parameterisation: flat beta over (p, K-1)."""

    def __init__(self, X, codes, K, config, weights, standardize):
        self.mean, self.scale = _standardizer(X, standardize)
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


def _choose(config: Config, n_params: int) -> str:
    if config.method != "auto":
        return config.method
    return "newton" if n_params <= NEWTON_MAX_PARAMS else "lbfgs"


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) without intercept; data.y: (n,) class labels (numbers or text);
    data.extra("weights"): (n,) prior weights >= 0 or None (R's glm(weights =)): rows of
    weight 0 are left out of the fit and of its metrics, not of predict.

    Exactly collinear columns are aliased as in R's glm: fitted without them, they get no
    estimate and count as 0 in predictions (unless --l2 makes every column estimable)."""
    prior = data.extra("weights")
    used = data.X if prior is None else data.X[np.asarray(prior) > 0]
    if len(used) == 0:
        raise DataError(
            f"Every row of {data.source} has weight 0 (--weights): none is left to fit."
        )
    # Newton factors the information matrix: when it succeeds no column is aliased, so the
    # search for aliased columns (a pass over X) is paid only when it fails, or by L-BFGS and
    # descent, which would split a coefficient between collinear columns without a word.
    result, error = None, None
    try:
        result = _fit(data, config, on_progress)
    except _SingularHessian as exc:
        error = exc
    if config.l2 > 0 or not data.X.shape[1] or (result and result.info["method"] == "newton"):
        if error is not None:
            raise error
        return result
    aliased = aliased_design_columns(used, config.intercept)
    features = aliased[1:] if config.intercept else aliased
    if not aliased.any() or features.all():
        if error is not None:
            raise error  # singular for another reason: the information matrix's own message
        return result
    kept = np.flatnonzero(~features)
    subset = replace(data, X=data.X[:, kept], names=[data.names[j] for j in kept], X_lo=None)
    return _with_aliased(_fit(subset, config, on_progress), aliased, data.names, config)


class _SingularHessian(FitError):
    """Newton's information matrix could not be factored."""


def _with_aliased(result: FitResult, aliased: np.ndarray, names: list[str], config) -> FitResult:
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
    rows = _parameter_names(labels_full, params.classes, params.softmax)
    result.tables["coefficients"] = Table(rows, widened)
    result.warnings.insert(0, aliased_warning(labels_full, aliased))
    result.info["aliased_index"] = np.flatnonzero(aliased).tolist()
    return result


def _fit(data: ModelData, config: Config, on_progress: ProgressFn) -> FitResult:
    start = time.perf_counter()
    X, names, target = data.X, data.names, data.target
    codes_all, labels, train, test = classes.split(data, config.holdout, config.seed)
    prior = data.extra("weights")
    if prior is not None:  # rows of weight 0 leave the fit (train) and the holdout metrics
        prior = np.asarray(prior, dtype=float)
        train = train[prior[train] > 0]
        test = None if test is None else test[prior[test] > 0]
    K = len(labels)
    check_rows(len(train), X.shape[1] + config.intercept)
    codes = codes_all[train]
    Xt = X[train] if test is not None or len(train) < len(X) else X
    if len(np.unique(codes)) < K:
        raise DataError(
            "A class has no training rows: --holdout leaves it out (use a smaller "
            "fraction) or every row of it has weight 0 (--weights)."
        )
    weights = np.ones(len(codes)) if prior is None else prior[train]
    if config.class_weight == "balanced":  # row counts, as scikit-learn's; times the priors
        counts = np.bincount(codes, minlength=K)
        weights = weights * (len(codes) / (K * counts[codes]))
    n_params = (Xt.shape[1] + config.intercept) * (K - 1 if (K > 2 or config.multiclass) else 1)
    method = _choose(config, n_params)
    if config.covariance != "nonrobust" and method != "newton":
        raise UsageError(
            f"Robust standard errors need Newton's method (--method {method} gives no "
            "standard errors): use --method newton."
        )
    feature_names = list(names)
    problem = _Problem(Xt, codes, K, config, weights, standardize=method != "newton")
    labels_full = (["intercept"] if config.intercept else []) + feature_names
    if not problem.softmax and config.l2 == 0:
        columns = ColumnSummary()
        columns.add(Xt, codes == 1)
        cause = separating_column(columns, feature_names, config.intercept)
        if cause:
            raise FitError(
                f"Perfect or quasi-complete separation: {cause} ({target} = "
                f"{labels[1]!r}). The maximum-likelihood estimates are infinite. Drop or "
                "merge that column, or use --l2."
            )
    beta0 = np.zeros(problem.p * problem.n_out)
    if config.intercept:  # start at the class frequencies
        freq = np.bincount(codes, weights=weights, minlength=K) / weights.sum()
        start_logits = (
            np.log(freq[1:] / freq[0]) if problem.softmax else [np.log(freq[1] / freq[0])]
        )
        beta0[:: problem.p] = start_logits
    opt, convergence = _optimise(problem, method, beta0, config, labels_full, on_progress)
    B = problem.to_original(opt.beta)
    P_train = _probabilities(Xt, B, config.intercept, problem.softmax)
    _check_separation(problem, opt, P_train, codes, config, target)
    table = {"estimate": B.ravel(order="F")}
    if method == "newton" and config.l2 == 0:
        L, d = cholesky(opt.info)
        se = np.sqrt(inverse_diagonal(L, d)).reshape(problem.p, problem.n_out, order="F")
        table["std_error"] = se.ravel(order="F")
        table.update(z_table(table["estimate"], table["std_error"]))
    decide = _decider(config, problem.softmax)
    sandwich_info = {}
    if config.covariance != "nonrobust":
        labels_t = data.extra("cluster")
        labels_t = None if labels_t is None else np.asarray(labels_t)[train]
        sandwich_info = _robust(problem, opt, P_train, codes, method, config, labels_t, table)
    metrics = classification_metrics(codes, P_train, labels, decide(P_train))
    log_p = np.log(np.clip(P_train[np.arange(len(codes)), codes], np.finfo(float).tiny, 1.0))
    # with prior weights sum w log p: R's logLik of a binomial glm with integer weights
    prior_t = None if prior is None else prior[train]
    metrics["log_likelihood"] = float(np.sum(log_p) if prior_t is None else prior_t @ log_p)
    metrics.update(_against_null(metrics["log_likelihood"], codes, K, B.size, config, prior_t))
    if test is not None:
        P_test = _probabilities(X[test], B, config.intercept, problem.softmax)
        metrics["holdout"] = classification_metrics(codes_all[test], P_test, labels, decide(P_test))
    warnings = []
    if not convergence["converged"]:
        warnings.append(
            f"{method} did not converge (after {convergence['iterations']} "
            "iterations). Raise --max-iter (Newton, L-BFGS) or --epochs (descent), or "
            "loosen --tol."
        )
    params = Params(labels, problem.softmax, config.threshold, B, config.intercept)
    info = {
        "method": method,
        "classes": [str(c) for c in labels],
        "model": "softmax" if problem.softmax else "logistic",
        "reference_class": str(labels[0]) if problem.softmax else None,
        "class_weight": config.class_weight,
        "fit_seconds": time.perf_counter() - start,
    }
    info.update(sandwich_info)
    if config.l2 > 0:
        info["l2"] = config.l2
    info.update(classes.holdout_info(config))
    return FitResult(
        params,
        n_parameters=B.size,
        n_obs=len(codes),
        tables={
            "coefficients": Table(_parameter_names(labels_full, labels, problem.softmax), table)
        },
        metrics=metrics,
        convergence=convergence,
        warnings=warnings,
        info=info,
        internals={"codes": codes_all, "train": train, "test": test},
    )


def _against_null(
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


def _robust(problem, opt, P, codes, method, config, labels, table: dict) -> dict:
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


def _parameter_names(names: list[str], labels: list, softmax: bool) -> list[str]:
    if not softmax:
        return names
    return [f"{name}[{label}]" for label in labels[1:] for name in names]


def _optimise(problem: _Problem, method: str, beta0, config: Config, labels, on_progress):
    if method == "newton":
        try:
            opt = newton(
                problem.objective, beta0, config.max_iter, min(config.tol, NEWTON_TOL), on_progress
            )
        except SingularInformation as exc:
            name = labels[exc.index % problem.p]
            raise _SingularHessian(
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


def _check_separation(problem, opt, P, codes, config, target):
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


def _probabilities(X, B, intercept, softmax) -> np.ndarray:
    """(n, K) class probabilities from original-scale coefficients B: (p[+1], K-1)."""
    eta = rowwise_matmul(X, B[1:]) + B[0] if intercept else rowwise_matmul(X, B)
    if softmax:
        return Categorical(B.shape[1] + 1).probabilities(np.column_stack([np.zeros(len(X)), eta]))
    p1 = sigmoid(eta[:, 0])
    return np.column_stack([sigmoid(-eta[:, 0]), p1])


def _decider(config: Config, softmax: bool):
    def decide(P):
        if softmax or P.shape[1] > 2:
            return np.argmax(P, axis=1)
        return (P[:, 1] >= config.threshold).astype(np.int64)

    return decide


def predict(
    params: Params, data: ModelData, proba: bool = False, threshold: float | None = None
) -> dict[str, np.ndarray]:
    """The predicted label, and with proba a column p_<class> per class."""
    P = params.proba(data.X)
    out = {"prediction": params.labels(P, threshold)}
    if proba:
        for k, label in enumerate(params.classes):
            out[f"p_{label}"] = P[:, k]
    return out


plot_data = classes.plot_data  # the roc and calibration figures
