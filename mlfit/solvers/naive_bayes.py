"""Naive Bayes: Gaussian for numeric features, Laplace-smoothed categorical for text features.

The seeds' generative classifier: p(y) and each p(x_j | y) estimated separately, and the class
chosen by Bayes' rule in log space.  A numeric feature has a normal density per class (mean
and variance, the variance plus epsilon = var_smoothing * the largest feature variance, as
scikit-learn's GaussianNB); a text feature (or a number named with --categorical) is one
categorical variable with p(x_j = l | c) = (N_cl + alpha) / (N_c + alpha L_j), the seeds'
Laplace smoothing for alpha = 1.  One model holds both kinds: the joint log-likelihood is
log p(c) plus the sum of every feature's log p(x_j | c).

A level never seen in training has count 0 in every class, so it gets the same smoothed
probability as a seen level with count 0: alpha / (N_c + alpha L_j).  Seen levels keep exactly
the probabilities above (and scikit-learn's); the unseen value only weighs classes by their
size.  The fit is counts and per-class moments merged chunk by chunk (Chan, Golub and
LeVeque), so it runs from the chunk stream with the same answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mlfit import contract, engine
from mlfit.contract import FitResult, ModelData, ProgressFn, Step, Table, no_progress
from mlfit.errors import DataError, FitError
from mlfit.params import (
    ParamsError,
    decode_array,
    encode_array,
    read_float,
    read_index_list,
    read_labels,
)
from mlfit.solvers import classes
from mlfit.solvers.moments import ClassMoments


@dataclass(frozen=True)
class Config:
    alpha: float = 1.0  # Laplace smoothing of category counts (the seeds' 1)
    var_smoothing: float = 1e-9  # times the largest feature variance, added to every variance
    holdout: float = 0.0
    seed: int = 0
    threshold: float = 0.5


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(contract.Params):
    """class_count: (K,); gaussian: design column indices of the numeric features, with mean
    and var (K, g), var already smoothed; categorical: feature -> (design column indices of its
    L levels, counts (K, L)); alpha smooths the counts."""

    classes: list
    threshold: float
    class_count: np.ndarray
    gaussian: list[int]
    mean: np.ndarray
    var: np.ndarray
    categorical: dict[str, tuple[list[int], np.ndarray]]
    alpha: float

    def __post_init__(self):
        tables = {}
        for name, (_, counts) in self.categorical.items():
            denominator = self.class_count[:, None] + self.alpha * counts.shape[1]
            # rows: the levels, then the unseen level (count 0); columns: the classes
            log_p = np.log(np.column_stack([counts + self.alpha, np.full(len(counts), self.alpha)]))
            tables[name] = (log_p - np.log(denominator)).T
        object.__setattr__(self, "_tables", tables)
        log_prior = np.log(self.class_count) - math.log(self.class_count.sum())
        object.__setattr__(self, "log_prior", log_prior)

    def probabilities(self, name: str) -> np.ndarray:
        """(L + 1, K) smoothed p(level | class) of a categorical feature; last row: unseen."""
        return np.exp(self._tables[name])

    def to_dict(self) -> dict:
        return {
            "classes": self.classes,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "class_count": encode_array(self.class_count),
            "gaussian": {
                "columns": self.gaussian,
                "mean": encode_array(self.mean),
                "var": encode_array(self.var),
            },
            "categorical": {
                name: {"columns": cols, "counts": encode_array(counts)}
                for name, (cols, counts) in self.categorical.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict, n_columns: int) -> Params:
        labels = read_labels(d, "classes")
        K = len(labels)
        threshold, alpha = classes.read_threshold(d), read_float(d, "alpha")
        if not alpha > 0:
            raise ParamsError("'alpha' must be positive")
        count = decode_array(d, "class_count", (K,))
        gauss, cat = d.get("gaussian"), d.get("categorical")
        if not isinstance(gauss, dict) or not isinstance(cat, dict):
            raise ParamsError("'gaussian' and 'categorical' must be objects")
        g_cols = _columns(gauss, n_columns)
        mean = decode_array(gauss, "mean", (K, len(g_cols)))
        var = decode_array(gauss, "var", (K, len(g_cols)))
        categorical = {}
        for name, part in cat.items():
            if not isinstance(part, dict):
                raise ParamsError(f"categorical feature {name!r} must be an object")
            cols = _columns(part, n_columns)
            categorical[name] = (cols, decode_array(part, "counts", (K, len(cols))))
        used = g_cols + [j for cols, _ in categorical.values() for j in cols]
        if sorted(used) != list(range(n_columns)):
            raise ParamsError("the model's columns do not cover the design once each")
        if not (np.all(count > 0) and np.all(var > 0)):
            raise ParamsError("class counts and variances must be positive")
        if not all(np.all(c >= 0) for _, c in categorical.values()):
            raise ParamsError("category counts must not be negative")
        return cls(labels, threshold, count, g_cols, mean, var, categorical, alpha)

    def joint_log_likelihood(self, X: np.ndarray) -> np.ndarray:
        """(n, K) log p(x, c) for every row and class."""
        jll = np.tile(self.log_prior, (len(X), 1))
        if self.gaussian:
            Xg = _columns_of(X, self.gaussian)
            log_norm = -0.5 * np.sum(np.log(2.0 * np.pi * self.var), axis=1)
            for k in range(len(self.classes)):
                z = (Xg - self.mean[k]) / np.sqrt(self.var[k])
                jll[:, k] += log_norm[k] - 0.5 * np.einsum("ij,ij->i", z, z)
        for name, (cols, _) in self.categorical.items():
            block = X[:, cols]
            level = np.argmax(block, axis=1)
            seen = block[np.arange(len(X)), level] == 1.0
            jll += self._tables[name][np.where(seen, level, len(cols))]
        return jll

    def log_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, K) log p(c | x): the joint log-likelihood normalised by log-sum-exp."""
        return _normalised(self.joint_log_likelihood(np.asarray(X, dtype=float)))

    def proba(self, X) -> np.ndarray:
        """(n, K) class probabilities, columns in the order of classes."""
        return np.exp(self.log_proba(X))

    def decide(self, P: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """(n,) predicted class codes; two classes: the second when its p >= threshold."""
        return classes.decide(P, self.threshold if threshold is None else threshold)


def _normalised(jll: np.ndarray) -> np.ndarray:
    """log p(c | x) from the joint log-likelihood (n, K), by log-sum-exp."""
    top = jll.max(axis=1, keepdims=True)
    if not np.all(np.isfinite(top)):
        row = int(np.flatnonzero(~np.isfinite(top[:, 0]))[0]) + 1
        raise DataError(
            f"Row {row} is so far from every class (beyond about 1e154 standard deviations "
            "of a feature) that its probabilities underflow; check that row's values."
        )
    return jll - (top + np.log(np.sum(np.exp(jll - top), axis=1, keepdims=True)))


def _columns_of(X: np.ndarray, cols: list[int]) -> np.ndarray:
    """X[:, cols] in row-major order (the design is column-major; the per-class sums and
    the densities run along rows, about twice as fast on a C-ordered copy)."""
    if cols == list(range(X.shape[1])):
        return np.ascontiguousarray(X)
    return np.ascontiguousarray(X[:, cols])


def _columns(d: dict, n_columns: int) -> list[int]:
    return read_index_list(d, "columns", n_columns)


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) design, text columns one-hot with every level (data.one_hot)."""
    return _fit([data], config, on_progress)


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """The same fit from a re-iterable stream of chunks: three passes (labels, counts and
    moments, metrics), memory bounded by the chunk plus the labels and probabilities."""
    return _fit(chunks, config, on_progress)


def _fit(chunks, config: Config, on_progress: ProgressFn) -> FitResult:
    start = time.perf_counter()
    codes, labels = classes.class_codes(chunks)
    first = engine.first(chunks, _header)
    train, test = np.arange(len(codes)), None
    if config.holdout:
        train, test = classes.holdout_split(codes, config.holdout, config.seed)
    in_train = np.zeros(len(codes), dtype=bool)
    in_train[train] = True
    K = len(labels)
    one_hot = {name: list(cols) for name, cols in first.one_hot.items()}
    in_groups = {j for cols in one_hot.values() for j in cols}
    gaussian = [j for j in range(first.X.shape[1]) if j not in in_groups]

    def zeros():
        moments = ClassMoments.zeros(K, len(gaussian), full=False)
        return moments, {name: np.zeros((K, len(cols))) for name, cols in one_hot.items()}

    def step(acc, chunk, offset):  # one engine.fold: a loop here, a fold per partition there
        moments, counts = acc or zeros()
        rows = slice(offset, offset + chunk.n_rows)
        keep, c = in_train[rows], codes[rows]
        X, c = (chunk.X, c) if keep.all() else (chunk.X[keep], c[keep])
        moments.add(_columns_of(X, gaussian), c)
        if one_hot:  # 0/1 sums are exact in any order
            indicator = (c[:, None] == np.arange(K)).astype(float)
            for name, cols in one_hot.items():
                counts[name] += indicator.T @ X[:, cols]
        return moments, counts

    moments, counts = engine.fold(chunks, step, _merged, with_start=True) or zeros()
    class_count = np.bincount(codes[train], minlength=K).astype(float)
    if np.any(class_count == 0):
        raise DataError(
            "--holdout leaves a class out of the training rows; use a smaller fraction."
        )
    names = [first.names[j] for j in gaussian]
    var = _smoothed_variance(moments, config.var_smoothing, names, labels)
    categorical = {name: (one_hot[name], counts[name]) for name in one_hot}
    params = Params(
        labels,
        config.threshold,
        class_count,
        gaussian,
        moments.mean.copy(),
        var,
        categorical,
        config.alpha,
    )
    result = _result(params, chunks, codes, train, test, names, first.names, config)
    result.warnings.extend(classes.threshold_warning(K, config.threshold, Config.threshold))
    on_progress(Step(1, 1, -result.metrics["log_likelihood"] / len(train)))
    result.info["fit_seconds"] = time.perf_counter() - start
    return result


def _header(chunk: ModelData) -> ModelData:
    """The chunk without its rows: the design's names and one-hot groups."""
    data = ModelData(chunk.X[:0], None, {}, None, chunk.names, chunk.target, chunk.source)
    data.one_hot = chunk.one_hot
    return data


def _merged(a, b):
    """Moments and level counts of two partitions' rows (new objects: a's stay as they are)."""
    moments = ClassMoments(a[0].count.copy(), a[0].mean.copy(), a[0].scatter.copy())
    moments.merge(b[0])
    return moments, {name: a[1][name] + b[1][name] for name in a[1]}


def _concat_pairs(a, b):
    return a[0] + b[0], a[1] + b[1]


def _smoothed_variance(moments: ClassMoments, var_smoothing: float, names, labels) -> np.ndarray:
    """(K, g) per-class variances plus epsilon; a zero variance is an error naming it."""
    if not names:
        return np.zeros((len(labels), 0))
    epsilon = var_smoothing * float(np.max(moments.total_variance()))
    var = moments.variance + epsilon
    if np.all(var > 0):
        return var
    k, j = (int(i[0]) for i in np.nonzero(var <= 0))
    hint = (
        "Use a positive --var-smoothing (e.g. the default 1e-09)"
        if var_smoothing == 0
        else "Every numeric feature is constant, so --var-smoothing adds nothing"
    )
    raise FitError(
        f"Feature '{names[j]}' has zero variance within class {labels[k]!r} (all its "
        f"training rows have the same value), so its Gaussian density is degenerate. {hint}, "
        f"or drop the feature."
    )


def _result(params: Params, chunks, codes, train, test, gaussian_names, names, config):
    """Metrics from one more pass (training and held-out rows), and the report's tables."""
    K = len(params.classes)
    in_train = np.zeros(len(codes), dtype=bool)
    in_train[train] = True

    def step(acc, chunk, offset):  # per chunk: its probabilities, its exact joint sum
        probabilities, joint = acc or ([], [])
        rows = slice(offset, offset + chunk.n_rows)
        jll = params.joint_log_likelihood(chunk.X)
        probabilities.append(np.exp(_normalised(jll)))
        c = codes[rows]
        joint.append(math.fsum(jll[np.arange(chunk.n_rows), c][in_train[rows]]))
        return probabilities, joint

    # each row's probabilities come back (n x K floats: the metrics and AUC need them)
    parts, joint = engine.fold(chunks, step, _concat_pairs, with_start=True) or ([], [])
    P = np.vstack(parts) if parts else np.empty((0, K))
    metrics = classes.metrics(
        codes, P, params.classes, params.decide, train, test, log_likelihood=math.fsum(joint)
    )
    labels = [str(c) for c in params.classes]
    tables = {
        "classes": Table(
            labels,
            {
                "count": params.class_count.astype(int).tolist(),
                "prior": np.exp(params.log_prior).tolist(),
            },
        )
    }
    if params.gaussian:
        tables["gaussian"] = Table(
            gaussian_names, {"mean": list(params.mean.T), "variance": list(params.var.T)}
        )
    if params.categorical:
        rows, probability = [], []
        for name, (cols, _) in params.categorical.items():
            rows += [names[j] for j in cols]
            probability += list(params.probabilities(name)[:-1])
        tables["categorical"] = Table(rows, {"probability": probability})
    n_parameters = (K - 1) + 2 * K * len(params.gaussian)
    n_parameters += sum(K * (len(cols) - 1) for cols, _ in params.categorical.values())
    info = {
        "classes": labels,
        "gaussian_features": len(params.gaussian),
        "categorical_features": len(params.categorical),
        "alpha": config.alpha,
        "var_smoothing": config.var_smoothing,
        **classes.holdout_info(config),
    }
    return FitResult(
        params,
        n_parameters=n_parameters,
        n_obs=len(train),
        tables=tables,
        metrics=metrics,
        info=info,
        internals={"codes": codes, "train": train, "test": test},
    )


predict = classes.predict  # the label, and with proba a column p_<class> per class
plot_data = classes.plot_data  # the roc and calibration figures
