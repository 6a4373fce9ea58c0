"""Multilayer perceptrons trained by backpropagation (mlfit.solvers.network), in numpy.

The task comes from the target: text, or a few distinct integers, is classification (softmax
and cross-entropy); other numbers are regression (a linear output and squared error); --task
overrides.  Inputs are standardized, and the regression target too; predictions and metrics
are on the original scale.  Training is minibatch descent with a seeded shuffle each epoch;
it stops when the loss (the validation loss with --early-stopping, restoring the best
epoch's weights) has not improved by --tol for --patience epochs, or at --epochs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mlfit import contract
from mlfit.contract import FitResult, ModelData, ProgressFn, Table, no_progress
from mlfit.errors import DataError
from mlfit.metrics import classification_metrics
from mlfit.numerics import column_std, rowwise_matmul
from mlfit.params import (
    ParamsError,
    decode_array,
    encode_array,
    read_choice,
    read_float,
    read_labels,
)
from mlfit.solvers.classes import encode_labels
from mlfit.solvers.network import ACTIVATIONS, Network, activate, check_gradient, softmax_rows
from mlfit.solvers.training import InMemoryBatches, train

#: With --task auto, integers with at most this many distinct values are class labels.
MAX_CLASSES_AUTO = 20


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    task: str = "auto"  # auto | regression | classification
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 200
    epochs: int = 200
    l2: float = 1e-4  # (l2 / 2) * sum of squared weights, on the summed loss
    tol: float = 1e-4
    patience: int = 10
    early_stopping: bool = False
    validation_fraction: float = 0.1
    dtype: str = "float32"
    seed: int = 0
    check_grad: bool = False


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(contract.Params):
    """Weights on standardized inputs, with the scaling and the classes or target scale."""

    weights: list
    biases: list
    activation: str
    x_mean: np.ndarray
    x_scale: np.ndarray
    classes: list | None  # classification: the labels of the softmax outputs
    y_mean: float  # regression: the target's standardization
    y_scale: float

    def to_dict(self) -> dict:
        out = {
            "activation": self.activation,
            "weights": [encode_array(W) for W in self.weights],
            "biases": [encode_array(b) for b in self.biases],
            "x_mean": encode_array(self.x_mean),
            "x_scale": encode_array(self.x_scale),
        }
        if self.classes is not None:
            out["classes"] = self.classes
        else:
            out["y_mean"], out["y_scale"] = self.y_mean, self.y_scale
        return out

    @classmethod
    def from_dict(cls, d: dict, n_columns: int) -> Params:
        activation = read_choice(d, "activation", ACTIVATIONS)
        if not isinstance(d.get("weights"), list) or not isinstance(d.get("biases"), list):
            raise ParamsError("'weights' and 'biases' must be lists of layers")
        if not d["weights"] or len(d["weights"]) != len(d["biases"]):
            raise ParamsError("'weights' and 'biases' must have one entry per layer")
        weights, biases, width = [], [], n_columns
        for i, (W, b) in enumerate(zip(d["weights"], d["biases"])):
            layer = {f"weights[{i}]": W, f"biases[{i}]": b}
            W = decode_array(layer, f"weights[{i}]", (width, None))
            biases.append(decode_array(layer, f"biases[{i}]", (W.shape[1],)))
            weights.append(W)
            width = W.shape[1]
        classes = read_labels(d, "classes") if "classes" in d else None
        if (classes is None and width != 1) or (classes is not None and width != len(classes)):
            raise ParamsError("the output layer does not match the task")
        x_scale = decode_array(d, "x_scale", (n_columns,))
        if np.any(x_scale <= 0):
            raise ParamsError("'x_scale' must be positive")
        y_mean = y_scale = 0.0
        if classes is None:
            y_mean, y_scale = read_float(d, "y_mean"), read_float(d, "y_scale")
        return cls(
            weights,
            biases,
            activation,
            decode_array(d, "x_mean", (n_columns,)),
            x_scale,
            classes,
            y_mean,
            y_scale,
        )

    def outputs(self, X) -> np.ndarray:
        """Probabilities (classification) or predictions (regression) on the original scale,
        summed row by row so that chunking the input cannot change a bit."""
        A = (np.asarray(X, dtype=float) - self.x_mean) / self.x_scale
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            A = rowwise_matmul(A, W) + b
            if i < last:
                activate(self.activation, A)
        if self.classes is not None:
            return softmax_rows(A)
        return A[:, 0] * self.y_scale + self.y_mean


def _task(y: np.ndarray, config: Config) -> str:
    if config.task != "auto":
        return config.task
    return _task_of_values(y.dtype == object, np.unique(y) if y.dtype != object else None)


def _task_of_values(text: bool, values: np.ndarray | None) -> str:
    """auto: text, or at most MAX_CLASSES_AUTO distinct integers, is classification.
    values: the distinct numbers (None when there are more than MAX_CLASSES_AUTO)."""
    if text:
        return "classification"
    if values is None or len(values) > MAX_CLASSES_AUTO:
        return "regression"
    return "classification" if np.all(values == np.round(values)) else "regression"


def _validation_split(n: int, codes: np.ndarray | None, fraction: float, rng):
    """(train, validation) row indices; stratified by class for classification."""
    if codes is None:
        order = rng.permutation(n)
        cut = max(1, round(fraction * n))
        return np.sort(order[cut:]), np.sort(order[:cut])
    held = []
    for k in np.unique(codes):  # every class keeps a training row
        rows = rng.permutation(np.flatnonzero(codes == k))
        held.extend(rows[: min(max(1, round(fraction * len(rows))), len(rows) - 1)])
    held = np.sort(np.array(held))
    return np.setdiff1d(np.arange(n), held), held


@dataclass
class Prepared:
    """What training needs, however the rows arrive: scaling, task, the batches, the
    validation rows (scaled), and rows on the original scale for the metrics."""

    task: str
    labels: list | None
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float
    n_inputs: int
    # filled once the rows are split:
    batches: object = None  # .n training rows, .epoch(rng, batch) -> (Z, T) minibatches
    valid: tuple | None = None  # (Zv, Tv)
    train_rows: tuple = ()  # (X, y or class codes) of the training rows (or a sample)
    valid_rows: tuple | None = None
    note: str | None = None  # e.g. that the metrics are on a sample

    @property
    def classify(self) -> bool:
        return self.task == "classification"

    def scaled(self, X: np.ndarray, dtype) -> np.ndarray:
        return ((X - self.x_mean) / self.x_scale).astype(dtype)

    def targets(self, y: np.ndarray, dtype) -> np.ndarray:
        """One-hot rows of class codes, or the standardized target as a column."""
        if self.classify:
            T = np.zeros((len(y), len(self.labels)), dtype=dtype)
            T[np.arange(len(y)), y] = 1.0
            return T
        return ((y.astype(float) - self.y_mean) / self.y_scale).astype(dtype)[:, None]


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p); data.y: (n,) numbers or labels."""
    start = time.perf_counter()
    dtype = np.dtype(config.dtype)
    rng = np.random.default_rng(config.seed)
    X = data.X
    y = np.asarray(data.y)
    y = y if y.dtype.kind in "fiu" else y.astype(object)
    task = _task(y, config)
    labels, codes = None, None
    if task == "classification":
        codes, labels = encode_labels(y, data.target)
    elif y.dtype == object:
        raise DataError(f"Target '{data.target}' is not numeric; a regression needs numbers.")
    x_scale = column_std(X)
    yf = None if labels else y.astype(float)
    prep = Prepared(
        task,
        labels,
        X.mean(axis=0),
        np.where(x_scale > 0, x_scale, 1.0),
        0.0 if labels else float(yf.mean()),
        1.0 if labels else float(column_std(yf[:, None])[0]) or 1.0,
        X.shape[1],
    )
    Z = prep.scaled(X, dtype)
    target = codes if labels else y
    T = prep.targets(target, dtype)
    train, valid = np.arange(len(y)), None
    if config.early_stopping:
        train, valid = _validation_split(len(y), codes, config.validation_fraction, rng)
        if len(train) < 2:
            raise DataError("--validation-fraction leaves too few training rows.")
    prep.batches = InMemoryBatches(Z, T, train)
    prep.train_rows = (X[train], target[train])
    if valid is not None:
        prep.valid = (Z[valid], T[valid])
        prep.valid_rows = (X[valid], target[valid])
    return fit_prepared(prep, config, rng, on_progress, start)


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """Training from a re-iterable stream of chunks, one pass per epoch, memory bounded by
    the chunk (mlfit.solvers.mlp_stream).  Rows are shuffled within each chunk; the chunks
    come in file order."""
    from mlfit.solvers import mlp_stream

    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    prep = mlp_stream.prepare(chunks, config, rng, _task_of_values)
    return fit_prepared(prep, config, rng, on_progress, start)


def fit_prepared(prep: Prepared, config: Config, rng, on_progress, start: float) -> FitResult:
    """Initialise, (check the gradient,) train, and report."""
    dtype = np.dtype(config.dtype)
    sizes = [prep.n_inputs, *config.hidden, len(prep.labels) if prep.labels else 1]
    net = Network.initialise(sizes, config.activation, prep.classify, rng, dtype)
    grad_error = None
    if config.check_grad:
        Zc = prep.scaled(prep.train_rows[0][:5], dtype)
        grad_error = check_gradient(net, Zc, prep.targets(prep.train_rows[1][:5], dtype), config.l2)
    run = train(net, prep.batches, prep.valid, config, rng, on_progress)
    net = run.best
    params = Params(
        [W.astype(float) for W in net.weights],
        [b.astype(float) for b in net.biases],
        config.activation,
        prep.x_mean,
        prep.x_scale,
        prep.labels,
        prep.y_mean,
        prep.y_scale,
    )
    metrics = _metrics(params, prep)
    warnings = [prep.note] if prep.note else []
    if not run.converged:
        warnings.append(
            f"Training did not converge in {config.epochs} epochs (the "
            f"{'validation ' if prep.valid is not None else ''}loss was still improving by more "
            "than --tol). Raise --epochs or --lr, or loosen --tol."
        )
    convergence = {
        "iterations": run.epochs,
        "converged": run.converged,
        "final_loss": run.history[-1],
        "best_epoch": run.best_epoch,
        "history": run.history,
    }
    if prep.valid is not None:
        convergence["validation_history"] = run.validation
    if run.accuracy:
        convergence["validation_accuracy"] = run.accuracy
    layers = Table(
        [str(i + 1) for i in range(len(net.weights))],
        {
            "inputs": [W.shape[0] for W in net.weights],
            "units": [W.shape[1] for W in net.weights],
            "activation": [config.activation] * (len(net.weights) - 1)
            + ["softmax" if prep.classify else "linear"],
            "parameters": [W.size + b.size for W, b in zip(net.weights, net.biases)],
        },
    )
    info = {
        "method": "backpropagation",
        "task": prep.task,
        "hidden": list(config.hidden),
        "activation": config.activation,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "batch_size": min(config.batch_size, prep.batches.n),
        "l2": config.l2,
        "dtype": config.dtype,
        "seed": config.seed,
        "early_stopping": config.early_stopping,
        "fit_seconds": time.perf_counter() - start,
    }
    if grad_error is not None:
        info["gradient_check_max_relative_error"] = grad_error
    if prep.valid is not None:
        info["validation_rows"] = len(prep.valid[0])
    return FitResult(
        params,
        n_parameters=net.n_parameters,
        n_obs=prep.batches.n,
        tables={"layers": layers},
        metrics=metrics,
        convergence=convergence,
        warnings=warnings,
        info=info,
    )


def _metrics(params: Params, prep: Prepared) -> dict:
    """Training (and validation) metrics on the original scale, from the kept weights."""

    def measure(X, target):
        out = params.outputs(X)
        if prep.classify:
            metrics = classification_metrics(target, out, prep.labels, np.argmax(out, axis=1))
            metrics["n"] = len(target)
            return metrics
        y = target.astype(float)
        r = y - out
        tss = float(((y - y.mean()) ** 2).sum())
        return {
            "rmse": float(np.sqrt(np.mean(r * r))),
            "mae": float(np.mean(np.abs(r))),
            "r_squared": 1.0 - float(r @ r) / tss if tss > 0 else None,
            "n": len(y),
        }

    metrics = measure(*prep.train_rows)
    if prep.valid_rows is not None:
        metrics["validation"] = measure(*prep.valid_rows)
    return metrics


def predict(params: Params, data: ModelData, proba: bool = False) -> dict[str, np.ndarray]:
    """Regression: the predicted value.  Classification: the label, and with proba a column
    p_<class> per class."""
    out = params.outputs(data.X)
    if params.classes is None:
        return {"prediction": out}
    result = {"prediction": np.array(params.classes, dtype=object)[np.argmax(out, axis=1)]}
    if proba:
        for k, label in enumerate(params.classes):
            result[f"p_{label}"] = out[:, k]
    return result
