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

import time
from dataclasses import dataclass, replace

import numpy as np

from mlfit import contract
from mlfit.contract import FitResult, ModelData, ProgressFn, Table, no_progress
from mlfit.errors import DataError, FitError, UsageError
from mlfit.metrics import classification_metrics
from mlfit.numerics import rowwise_matmul, sigmoid
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
from mlfit.solvers.descent import DescentConfig
from mlfit.solvers.linear import check_rows
from mlfit.solvers.logreg_problem import (
    Problem,
    SingularHessian,
    against_null,
    check_separation,
    optimise,
    parameter_names,
    robust_errors,
    with_aliased,
)
from mlfit.solvers.lsq import aliased_design_columns
from mlfit.solvers.optimize import cholesky, inverse_diagonal
from mlfit.solvers.separation import ColumnSummary, separating_column
from mlfit.stats import z_table

#: With --method auto, Newton up to this many parameters, L-BFGS beyond.
NEWTON_MAX_PARAMS = 500
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
    except SingularHessian as exc:
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
    return with_aliased(_fit(subset, config, on_progress), aliased, data.names, config)


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
    problem = Problem(Xt, codes, K, config, weights, standardize=method != "newton")
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
    opt, convergence = optimise(problem, method, beta0, config, labels_full, on_progress)
    B = problem.to_original(opt.beta)
    P_train = _probabilities(Xt, B, config.intercept, problem.softmax)
    check_separation(problem, opt, P_train, codes, config, target)
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
        sandwich_info = robust_errors(problem, opt, P_train, codes, method, config, labels_t, table)
    metrics = classification_metrics(codes, P_train, labels, decide(P_train))
    log_p = np.log(np.clip(P_train[np.arange(len(codes)), codes], np.finfo(float).tiny, 1.0))
    # with prior weights sum w log p: R's logLik of a binomial glm with integer weights
    prior_t = None if prior is None else prior[train]
    metrics["log_likelihood"] = float(np.sum(log_p) if prior_t is None else prior_t @ log_p)
    metrics.update(against_null(metrics["log_likelihood"], codes, K, B.size, config, prior_t))
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
            "coefficients": Table(parameter_names(labels_full, labels, problem.softmax), table)
        },
        metrics=metrics,
        convergence=convergence,
        warnings=warnings,
        info=info,
        internals={"codes": codes_all, "train": train, "test": test},
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
