"""Gaussian discriminant analysis: class priors, means and a shared covariance (linear, the
seeds' GDA) or one covariance per class (quadratic), by maximum likelihood; classes by Bayes'
rule in log space.

The fit is a sum over rows: per-class counts, means and scatter matrices merged chunk by chunk
(mlfit.solvers.moments), so a file streamed in chunks gives the in-memory answer.  Singular
covariances are found and repaired in mlfit.solvers.gda_covariance.  Posteriors go through
Cholesky factors (triangular solves, log-determinants from the diagonal) and log-sum-exp;
each row's arithmetic does not depend on the rows around it, so predictions are the same to
the last bit however the input is chunked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mlfit import contract, engine
from mlfit.contract import FitResult, ModelData, ProgressFn, Step, no_progress
from mlfit.errors import DataError
from mlfit.numerics import logsumexp, rowwise_matmul
from mlfit.params import (
    ParamsError,
    decode_array,
    encode_array,
    read_bool,
    read_labels,
)
from mlfit.solvers import classes
from mlfit.solvers.gda_covariance import Estimator
from mlfit.solvers.gda_tables import tables
from mlfit.solvers.moments import ClassMoments

LOG_2PI = math.log(2.0 * math.pi)
#: Rows per block of the row-wise triangular solves (a block of every column stays in cache).
BLOCK_ROWS = 2048


@dataclass(frozen=True)
class Config:
    per_class_covariance: bool = False  # quadratic discriminant analysis
    shrinkage: float | str | None = None  # None, "auto" (Ledoit-Wolf) or a number in [0, 1]
    reg_covar: float = 0.0  # added to covariance diagonals, times each feature's variance
    holdout: float = 0.0
    seed: int = 0
    threshold: float = 0.5


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(contract.Params):
    """priors: (K,); means: (K, p); covariance: (p, p) shared or (K, p, p) per class; all of
    the features divided by scale (p,), powers of two near each one's largest magnitude, so
    that features near 1e-200 or 1e200 neither underflow nor overflow when squared."""

    classes: list
    priors: np.ndarray
    means: np.ndarray
    covariance: np.ndarray
    threshold: float
    scale: np.ndarray

    def __post_init__(self):
        cov = self.covariance
        chol = np.linalg.cholesky(cov)  # LinAlgError when not positive definite
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        set_ = object.__setattr__
        set_(self, "_chol", chol)
        set_(self, "_log_det", log_det)
        if cov.ndim == 2:  # linear: x' A_k + b_k about the grand mean, A = Sigma^-1 (mu - c)
            centre = self.priors @ self.means
            D = (self.means - centre).T
            A = _back(chol, _forward(chol, D))
            b = np.log(self.priors) - 0.5 * np.sum(D * A, axis=0)
            set_(self, "_linear", (centre, A, b))

    @property
    def per_class(self) -> bool:
        return self.covariance.ndim == 3

    def to_dict(self) -> dict:
        return {
            "classes": self.classes,
            "per_class_covariance": self.per_class,
            "priors": encode_array(self.priors),
            "means": encode_array(self.means),
            "covariance": encode_array(self.covariance),
            "threshold": self.threshold,
            "scale": encode_array(self.scale),
        }

    @classmethod
    def from_dict(cls, d: dict, n_columns: int) -> Params:
        labels = read_labels(d, "classes")
        K, p = len(labels), n_columns
        threshold = classes.read_threshold(d)
        priors = decode_array(d, "priors", (K,))
        if np.any(priors <= 0) or abs(priors.sum() - 1.0) > 1e-9:
            raise ParamsError("'priors' must be positive and sum to 1")
        means = decode_array(d, "means", (K, p))
        per_class = read_bool(d, "per_class_covariance")
        cov = decode_array(d, "covariance", (K, p, p) if per_class else (p, p))
        if not np.array_equal(cov, np.swapaxes(cov, -1, -2)):
            raise ParamsError("'covariance' must be symmetric")
        scale = decode_array(d, "scale", (p,))
        if np.any(scale <= 0):
            raise ParamsError("'scale' must be positive")
        try:
            return cls(labels, priors, means, cov, threshold, scale)
        except np.linalg.LinAlgError:
            raise ParamsError("'covariance' is not positive definite") from None

    def log_joint(self, X, reproducible: bool = True) -> np.ndarray:
        """(n, K) log p(x, class) up to a constant per row (it cancels in the posteriors).

        reproducible: each row's value independent of the rows around it (for predict);
        otherwise matrix products (for the fit's metrics: 10 x faster, equal to rounding)."""
        X = np.asarray(X, dtype=float) / self.scale  # exact: powers of two
        if not self.per_class:
            centre, A, b = self._linear
            return (rowwise_matmul(X - centre, A) if reproducible else (X - centre) @ A) + b
        out = np.empty((X.shape[0], len(self.classes)))
        eye = np.eye(X.shape[1])
        for k in range(len(self.classes)):
            D = X - self.means[k]
            if reproducible:
                q = _squared_norms(self._chol[k], D)
            else:  # the triangular L^-1 (substitution on I) and one matrix product: error
                # within cond(L) eps, as substituting each row
                Z = D @ _forward(self._chol[k], eye).T
                q = np.einsum("ij,ij->i", Z, Z)
            out[:, k] = np.log(self.priors[k]) - 0.5 * (self._log_det[k] + q)
        return out

    def log_proba(self, X, reproducible: bool = True) -> np.ndarray:
        """(n, K) log posterior probabilities, normalised by log-sum-exp."""
        S = self.log_joint(X, reproducible)
        with np.errstate(over="ignore", invalid="ignore"):
            out = S - logsumexp(S, axis=1)[:, None]
        if not np.all(np.isfinite(out)):
            raise DataError(
                "A row lies so far from every class mean that its squared distances overflow "
                "float64: check the features' units, or rescale them."
            )
        return out

    def proba(self, X, reproducible: bool = True) -> np.ndarray:
        """(n, K) class probabilities, columns in the order of classes."""
        return np.exp(self.log_proba(X, reproducible))

    def decide(self, P: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """(n,) class codes: the most probable class; for two, the second when its probability
        is at least the threshold."""
        return classes.decide(P, self.threshold if threshold is None else threshold)


def _forward(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """L^-1 B for lower-triangular L (p, p) and B (p, m), row by row of the system."""
    Z = np.array(B, dtype=float)
    for j in range(len(L)):
        Z[j] = (Z[j] - L[j, :j] @ Z[:j]) / L[j, j]
    return Z


def _back(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """L'^-1 B for lower-triangular L (p, p) and B (p, m)."""
    Z = np.array(B, dtype=float)
    for j in range(len(L) - 1, -1, -1):
        Z[j] = (Z[j] - L[j + 1 :, j] @ Z[j + 1 :]) / L[j, j]
    return Z


def _squared_norms(L: np.ndarray, D: np.ndarray) -> np.ndarray:
    """(n,) ||L^-1 d||^2 for the rows d of D (n, p): forward substitution on blocks of rows
    with elementwise operations only, so each row's result is independent of the block."""
    n, p = D.shape
    out = np.empty(n)
    for start in range(0, n, BLOCK_ROWS):
        Z = np.array(D[start : start + BLOCK_ROWS].T)  # (p, rows)
        for j in range(p):
            z = Z[j]
            for i in range(j):
                z -= L[j, i] * Z[i]
            z /= L[j, j]
        out[start : start + BLOCK_ROWS] = np.einsum("ij,ij->j", Z, Z)
    return out


# --------------------------------------------------------------------------- fitting


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) numeric features; data.y: (n,) class labels (numbers or text)."""
    return _fit([data], config, on_progress)


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """The same fit from a re-iterable stream of chunks, memory bounded by the chunk (and the
    class codes and probabilities of the rows, for the metrics)."""
    return _fit(chunks, config, on_progress)


def _fit(chunks, config: Config, on_progress: ProgressFn) -> FitResult:
    started = time.perf_counter()
    found, peak = engine.map_reduce(chunks, _labels_and_peak, _merge_labels_and_peak) or ([], None)
    if not found:
        raise DataError("No data rows to fit.")
    codes, labels = classes.codes_from_parts(found)
    with np.errstate(divide="ignore"):
        scale = np.exp2(np.round(np.log2(peak)))
    scale[~(scale > 0) | ~np.isfinite(scale)] = 1.0  # a column of zeros
    K = len(labels)
    train, test, keep = _split(codes, labels, config)

    def add(acc, chunk, start):  # one engine.fold: a loop here, a fold per partition there
        for X, c, names in _rows_of(chunk, start, codes, keep, scale):
            if acc is None:
                acc = ClassMoments.zeros(K, X.shape[1], full=True), names
            acc[0].add(X, c)
        return acc

    def done(i, total):
        on_progress(Step(i, total, float(i)))

    moments, names = engine.fold(chunks, add, _merge_moments, done, with_start=True) or (None, None)

    def fourth(variances: np.ndarray) -> np.ndarray:
        """Sums of ||(x - mean_k) / sqrt(variances_k)||^4 over each class's rows (for
        Ledoit-Wolf); variances: (K, p)."""
        root = np.sqrt(variances)

        def add(sums, chunk, start):
            sums = np.zeros(K) if sums is None else sums
            for X, c, _ in _rows_of(chunk, start, codes, keep, scale):
                Z = (X - moments.mean[c]) / root[c]
                sums += np.bincount(c, weights=np.einsum("ij,ij->i", Z, Z) ** 2, minlength=K)
            return sums

        sums = engine.fold(chunks, add, np.add, with_start=True)
        return np.zeros(K) if sums is None else sums

    estimator = Estimator(moments, config, names, labels)
    estimate = estimator.estimate(fourth)
    warnings = [
        *estimate.warnings,
        *classes.threshold_warning(K, config.threshold, Config.threshold),
    ]
    params = Params(  # in the units of X / scale
        labels, estimator.priors, moments.mean, estimate.covariances, config.threshold, scale
    )
    # each row's probabilities come back (n x K floats: the metrics and AUC need them)
    P = np.vstack(engine.map_reduce(chunks, _Probabilities(params), classes.concat))
    # the density of x, not of x / scale: log|det| of the scaling once per row
    log_likelihood = _log_likelihood(params, moments) - len(train) * float(np.sum(np.log(scale)))
    metrics = classes.metrics(
        codes, P, labels, params.decide, train, test, log_likelihood=log_likelihood
    )
    p = len(names)
    per_cov = p * (p + 1) // 2
    n_parameters = (K - 1) + K * p + per_cov * (K if config.per_class_covariance else 1)
    info = {
        "method": "qda" if config.per_class_covariance else "lda",
        "covariance": "per class" if config.per_class_covariance else "shared",
        "classes": [str(c) for c in labels],
        "shrinkage": _shrinkage_info(config, estimate.shrinkage),
        "reg_covar": estimate.reg,
        "fit_seconds": time.perf_counter() - started,
        **classes.holdout_info(config),
    }
    return FitResult(
        params,
        n_parameters=n_parameters,
        n_obs=len(train),
        tables=tables(params, moments, names),
        metrics=metrics,
        warnings=warnings,
        info=info,
        internals={"codes": codes, "train": train, "test": test, "seed": config.seed},
    )


def _split(codes: np.ndarray, labels: list, config: Config):
    """(train, test, keep): training and held-out row indices (test None without --holdout)
    and the training rows as a mask (None: every row)."""
    n, K = len(codes), len(labels)
    if not config.holdout:
        return np.arange(n), None, None
    train, test = classes.holdout_split(codes, config.holdout, config.seed)
    keep = np.zeros(n, dtype=bool)
    keep[train] = True
    short = np.flatnonzero(np.bincount(codes[train], minlength=K) < 2)
    if len(short):
        raise DataError(
            f"--holdout leaves class {labels[short[0]]!r} with fewer than two training "
            "rows; use a smaller fraction."
        )
    return train, test, keep


def _labels_and_peak(chunk: ModelData):
    """The chunk's labels (classes.label_part) and each feature's largest magnitude."""
    top = np.max(np.abs(chunk.X), axis=0) if chunk.n_rows else None
    return classes.label_part(chunk), top


def _merge_labels_and_peak(a, b):
    peak = b[1] if a[1] is None else a[1] if b[1] is None else np.maximum(a[1], b[1])
    return a[0] + b[0], peak


def _merge_moments(a, b):
    """Class moments of two partitions' rows (a new object: a's stay as they are)."""
    m = ClassMoments(a[0].count.copy(), a[0].mean.copy(), a[0].scatter.copy())
    m.merge(b[0])
    return m, b[1]


@dataclass(frozen=True)
class _Probabilities:
    params: object

    def __call__(self, chunk: ModelData) -> list:
        return [self.params.proba(chunk.X, reproducible=False)]


def _rows_of(chunk: ModelData, start: int, codes, keep, scale):
    """_rows for one chunk whose first row is row `start` of the stream."""
    stop = start + chunk.n_rows
    X, c = chunk.X / scale, codes[start:stop]
    if keep is not None:
        X, c = X[keep[start:stop]], c[keep[start:stop]]
    if len(c):
        yield X, c, chunk.names


def _shrinkage_info(config: Config, alphas: np.ndarray):
    if not np.any(alphas):
        return 0.0
    if config.per_class_covariance or len(set(alphas.tolist())) > 1:
        return ", ".join(f"{a:.4g}" for a in alphas)  # one per class
    return float(alphas[0])


def _log_likelihood(params: Params, m: ClassMoments) -> float:
    """sum over training rows of log prior + log N(x | class mean, class covariance), from
    the class moments: trace(Sigma^-1 S_k) through the Cholesky factor."""
    p = m.mean.shape[1]
    ll = 0.0
    for k in range(len(m.count)):
        L = params._chol[k] if params.per_class else params._chol
        log_det = params._log_det[k] if params.per_class else params._log_det
        W = _forward(L, _forward(L, m.scatter[k]).T)  # L^-1 S L^-T
        n_k = float(m.count[k])
        ll += n_k * (math.log(params.priors[k]) - 0.5 * (p * LOG_2PI + log_det))
        ll -= 0.5 * float(np.trace(W))
    return ll


predict = classes.predict  # the label, and with proba a column p_<class> per class


def plot_data(result: FitResult, data: ModelData, rows: np.ndarray | None) -> dict:
    """The roc and calibration figures' data, in memory or from a streamed fit's sample."""
    codes = result.internals["codes"]
    if data.n_rows == len(codes):
        return classes.plot_data(result, data, rows)
    from mlfit.plots import sample_rows  # the rows the runner collected from the stream

    sample = sample_rows(len(codes), result.internals["seed"])
    test = result.internals["test"]
    held = np.isin(sample, test) if test is not None else np.zeros(len(sample), dtype=bool)
    P = result.params.proba(data.X)
    out = {"classes": [str(c) for c in result.params.classes]}
    out["train"] = (codes[sample[~held]], P[~held])
    if test is not None:
        out["holdout"] = (codes[sample[held]], P[held])
    return out
