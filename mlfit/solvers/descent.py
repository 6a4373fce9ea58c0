"""The gradient-descent loop shared by every model fitted by descent: batch, minibatch, SGD."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mlfit.contract import ProgressFn, Step, no_progress
from mlfit.errors import FitError

#: objective(w, rows) -> (mean loss, gradient) over `rows` (an index array, or None for all)
Objective = Callable[[np.ndarray, "np.ndarray | None"], tuple[float, np.ndarray]]

#: Epochs in a row with a rising loss before we call it divergence.
RISING_EPOCHS = 10


@dataclass(frozen=True)
class DescentConfig:
    method: str = "batch"  # batch | minibatch | sgd
    lr: float = 0.1
    batch_size: int = 32
    epochs: int = 1000
    tol: float = 1e-6
    seed: int = 0


@dataclass
class DescentOutcome:
    w: np.ndarray
    iterations: int
    converged: bool
    final_loss: float
    gradient_norm: float
    history: list[float] = field(default_factory=list)
    criterion: str = ""

    def convergence(self) -> dict:
        return {
            "iterations": self.iterations,
            "converged": self.converged,
            "final_loss": self.final_loss,
            "gradient_norm": self.gradient_norm,
            "criterion": self.criterion,
            "history": self.history,
        }


def descend(
    objective: Objective,
    w0: np.ndarray,
    n: int,
    config: DescentConfig,
    on_progress: ProgressFn = no_progress,
) -> DescentOutcome:
    """Minimise a mean loss over n rows.

    One iteration is one epoch (a pass over the data): one step for batch, n / batch_size
    steps for minibatch, n steps for sgd, rows shuffled every epoch.  Converged when the full
    gradient norm falls below tol times its value at the start, or (minibatch and sgd, whose
    gradient never vanishes at a constant rate) when the loss changes by less than tol relative
    over an epoch.
    """
    if config.lr <= 0:
        raise FitError("--lr must be positive.")
    if config.method not in ("batch", "minibatch", "sgd"):
        raise FitError(f"Unknown --method '{config.method}': use batch, minibatch or sgd.")
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
        return _descend(objective, w0, n, config, on_progress)


def _descend(objective, w0, n, config, on_progress) -> DescentOutcome:
    rng = np.random.default_rng(config.seed)
    batch = {"batch": n, "minibatch": max(1, config.batch_size), "sgd": 1}[config.method]
    w = np.array(w0, dtype=float)
    loss, grad = objective(w, None)
    g0 = max(float(np.linalg.norm(grad)), np.finfo(float).tiny)
    history = [loss]
    rising = 0
    for epoch in range(1, config.epochs + 1):
        if batch >= n:
            w -= config.lr * grad
        else:
            order = rng.permutation(n)
            for start in range(0, n, batch):
                _, g = objective(w, order[start : start + batch])
                w -= config.lr * g
        prev = loss
        loss, grad = objective(w, None)
        gnorm = float(np.linalg.norm(grad))
        if not (math.isfinite(loss) and np.all(np.isfinite(w))):
            raise FitError(
                f"The loss became {loss} at epoch {epoch}: gradient descent diverged. "
                f"Try a smaller --lr (now {config.lr:g})."
            )
        history.append(loss)
        on_progress(Step(epoch, config.epochs, loss))
        rising = rising + 1 if loss > prev else 0
        if rising >= RISING_EPOCHS and loss > history[0]:
            raise FitError(
                f"The loss grew for {RISING_EPOCHS} epochs in a row (now {loss:.6g}, "
                f"from {history[0]:.6g}): gradient descent is diverging. Try a smaller "
                f"--lr (now {config.lr:g})."
            )
        if gnorm <= config.tol * g0:
            return DescentOutcome(w, epoch, True, loss, gnorm, history, "gradient norm")
        if batch < n and abs(prev - loss) <= config.tol * max(abs(loss), np.finfo(float).tiny):
            return DescentOutcome(w, epoch, True, loss, gnorm, history, "relative loss change")
    return DescentOutcome(
        w, config.epochs, False, loss, float(np.linalg.norm(grad)), history, "epoch limit"
    )
