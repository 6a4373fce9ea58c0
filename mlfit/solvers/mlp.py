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
from dataclasses import dataclass

import numpy as np

from mlfit import contract
from mlfit.contract import FitResult, ModelData, ProgressFn, Step, Table, no_progress
from mlfit.errors import DataError, FitError
from mlfit.metrics import classification_metrics
from mlfit.numerics import rowwise_matmul
from mlfit.params import (
    ParamsError,
    decode_array,
    encode_array,
    read_choice,
    read_float,
    read_labels,
)
from mlfit.solvers.logreg import encode_labels
from mlfit.solvers.network import (
    ACTIVATIONS,
    Network,
    Optimizer,
    activate,
    check_gradient,
    softmax_rows,
)

#: With --task auto, integers with at most this many distinct values are class labels.
MAX_CLASSES_AUTO = 20
#: A training loss this many times its first epoch's has diverged.
RISE = 1e3


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
    if y.dtype == object:
        return "classification"
    values = np.unique(y)
    integers = np.all(values == np.round(values))
    return "classification" if integers and len(values) <= MAX_CLASSES_AUTO else "regression"


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
    classify = task == "classification"
    labels, codes = None, None
    if classify:
        codes, labels = encode_labels(y, data.target)
    elif y.dtype == object:
        raise DataError(f"Target '{data.target}' is not numeric; a regression needs numbers.")
    x_mean, x_scale = X.mean(axis=0), X.std(axis=0)
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    Z = ((X - x_mean) / x_scale).astype(dtype)
    if classify:
        T = np.zeros((len(y), len(labels)), dtype=dtype)
        T[np.arange(len(y)), codes] = 1.0
        y_mean, y_scale = 0.0, 1.0
    else:
        yf = y.astype(float)
        y_mean, y_scale = float(yf.mean()), float(yf.std()) or 1.0
        T = ((yf - y_mean) / y_scale).astype(dtype)[:, None]
    train, valid = np.arange(len(y)), None
    if config.early_stopping:
        train, valid = _validation_split(len(y), codes, config.validation_fraction, rng)
        if len(train) < 2:
            raise DataError("--validation-fraction leaves too few training rows.")
    sizes = [X.shape[1], *config.hidden, T.shape[1]]
    net = Network.initialise(sizes, config.activation, classify, rng, dtype)
    grad_error = None
    if config.check_grad:
        grad_error = check_gradient(net, Z[train], T[train], config.l2)
    run = _train(net, Z, T, train, valid, config, rng, on_progress)
    net = run.best
    params = Params(
        [W.astype(float) for W in net.weights],
        [b.astype(float) for b in net.biases],
        config.activation,
        x_mean,
        x_scale,
        labels,
        y_mean,
        y_scale,
    )
    metrics = _metrics(params, X, y, codes, labels, train, valid, classify)
    warnings = []
    if not run.converged:
        warnings.append(
            f"Training did not converge in {config.epochs} epochs (the "
            f"{'validation ' if valid is not None else ''}loss was still improving by more "
            "than --tol). Raise --epochs or --lr, or loosen --tol."
        )
    convergence = {
        "iterations": run.epochs,
        "converged": run.converged,
        "final_loss": run.history[-1],
        "best_epoch": run.best_epoch,
        "history": run.history,
    }
    if valid is not None:
        convergence["validation_history"] = run.validation
    layers = Table(
        [str(i + 1) for i in range(len(net.weights))],
        {
            "inputs": [W.shape[0] for W in net.weights],
            "units": [W.shape[1] for W in net.weights],
            "activation": [config.activation] * (len(net.weights) - 1)
            + ["softmax" if classify else "linear"],
            "parameters": [W.size + b.size for W, b in zip(net.weights, net.biases)],
        },
    )
    info = {
        "method": "backpropagation",
        "task": task,
        "hidden": list(config.hidden),
        "activation": config.activation,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "batch_size": min(config.batch_size, len(train)),
        "l2": config.l2,
        "dtype": config.dtype,
        "seed": config.seed,
        "early_stopping": config.early_stopping,
        "fit_seconds": time.perf_counter() - start,
    }
    if grad_error is not None:
        info["gradient_check_max_relative_error"] = grad_error
    if valid is not None:
        info["validation_rows"] = len(valid)
    return FitResult(
        params,
        n_parameters=net.n_parameters,
        n_obs=len(train),
        tables={"layers": layers},
        metrics=metrics,
        convergence=convergence,
        warnings=warnings,
        info=info,
    )


@dataclass
class _Run:
    best: Network
    best_epoch: int
    epochs: int
    converged: bool
    history: list
    validation: list


def _train(net, Z, T, train, valid, config, rng, on_progress) -> _Run:
    """Epochs of shuffled minibatch steps.  --tol and --patience decide when to stop; the
    weights kept with --early-stopping are those of the lowest validation loss."""
    opt = Optimizer(config.optimizer, config.lr, net)
    n = len(train)
    batch = min(config.batch_size, n)
    history, validation = [], []
    best, best_epoch, lowest = net.copy(), 0, np.inf
    target, stale, converged, epoch = np.inf, 0, False, 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(1, config.epochs + 1):  # divergence is reported, not warned
            order = train[rng.permutation(n)]
            total = 0.0
            for i in range(0, n, batch):
                rows = order[i : i + batch]
                loss = net.backprop(Z[rows], T[rows], config.l2, n)
                if not np.isfinite(loss):
                    raise _diverged(f"The loss became {loss} in epoch {epoch}")
                total += loss * len(rows)
                opt.step(net)
            history.append(total / n)
            if history[-1] > RISE * max(history[0], np.finfo(float).tiny):
                raise _diverged(
                    f"The loss rose from {history[0]:.3g} to {history[-1]:.3g} in {epoch} epochs"
                )
            watched = history[-1]
            if valid is not None:
                watched = net.loss(net.predict(Z[valid]), T[valid])
                validation.append(watched)
            on_progress(Step(epoch, config.epochs, watched))
            if watched < lowest:
                lowest = watched
                if valid is not None:
                    best, best_epoch = net.copy(), epoch
            if watched < target - config.tol:
                target, stale = watched, 0
            else:
                stale += 1
            if stale >= config.patience:
                converged = True
                break
    if valid is None:
        best, best_epoch = net, epoch
    if not np.all(np.isfinite(best.theta)):
        raise _diverged(f"The weights overflowed in epoch {epoch}")
    return _Run(best, best_epoch, epoch, converged, history, validation)


def _diverged(what: str) -> FitError:
    return FitError(f"{what}: training diverged. Use a smaller --lr.")


def _metrics(params, X, y, codes, labels, train, valid, classify) -> dict:
    """Training (and validation) metrics on the original scale, from the kept weights."""

    def regression(rows):
        pred = params.outputs(X[rows])
        r = y[rows].astype(float) - pred
        centred = y[rows].astype(float) - y[rows].astype(float).mean()
        tss = float(centred @ centred)
        return {
            "rmse": float(np.sqrt(np.mean(r * r))),
            "mae": float(np.mean(np.abs(r))),
            "r_squared": 1.0 - float(r @ r) / tss if tss > 0 else None,
            "n": len(rows),
        }

    def classification(rows):
        P = params.outputs(X[rows])
        out = classification_metrics(codes[rows], P, labels, np.argmax(P, axis=1))
        out["n"] = len(rows)
        return out

    measure = classification if classify else regression
    metrics = measure(train)
    if valid is not None:
        metrics["validation"] = measure(valid)
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
