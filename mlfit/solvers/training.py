"""The training loop of a network, over any source of minibatches (rows in memory, or chunks
streamed from a file), with early stopping and divergence checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mlfit.contract import Step
from mlfit.errors import FitError
from mlfit.solvers.network import Network, Optimizer

#: A training loss this many times its first epoch's has diverged.
RISE = 1e3


class InMemoryBatches:
    """Minibatches of rows of (Z, T), in a fresh seeded order every epoch."""

    def __init__(self, Z: np.ndarray, T: np.ndarray, rows: np.ndarray):
        self.Z, self.T, self.rows = Z, T, rows
        self.n = len(rows)

    def epoch(self, rng: np.random.Generator, batch: int) -> Iterator[tuple]:
        order = self.rows[rng.permutation(self.n)]
        for i in range(0, self.n, batch):
            rows = order[i : i + batch]
            yield self.Z[rows], self.T[rows]


@dataclass
class Run:
    best: Network
    best_epoch: int
    epochs: int
    converged: bool
    history: list
    validation: list  # validation loss per epoch
    accuracy: list  # validation accuracy per epoch (classifiers)


def train(net, batches, valid, config, rng, on_progress) -> Run:
    """Epochs of minibatch steps.  --tol and --patience decide when to stop; the weights kept
    with a validation set (Zv, Tv) are those of its lowest loss."""
    opt = Optimizer(config.optimizer, config.lr, net)
    batch = min(config.batch_size, batches.n)
    history, validation, accuracy = [], [], []
    best, best_epoch, lowest = net.copy(), 0, np.inf
    target, stale, converged, epoch = np.inf, 0, False, 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(1, config.epochs + 1):  # divergence is reported, not warned
            total, rows = 0.0, 0
            for Zb, Tb in batches.epoch(rng, batch):
                loss = net.backprop(Zb, Tb, config.l2, batches.n)
                if not np.isfinite(loss):
                    raise diverged(f"The loss became {loss} in epoch {epoch}")
                total += loss * len(Zb)
                rows += len(Zb)
                opt.step(net)
            history.append(total / rows)
            if history[-1] > RISE * max(history[0], np.finfo(float).tiny):
                raise diverged(
                    f"The loss rose from {history[0]:.3g} to {history[-1]:.3g} in {epoch} epochs"
                )
            watched = history[-1]
            if valid is not None:
                out = net.predict(valid[0])
                watched = net.loss(out, valid[1])
                validation.append(watched)
                if net.classify:
                    hits = np.argmax(out, axis=1) == np.argmax(valid[1], axis=1)
                    accuracy.append(float(np.mean(hits)))
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
        raise diverged(f"The weights overflowed in epoch {epoch}")
    return Run(best, best_epoch, epoch, converged, history, validation, accuracy)


def diverged(what: str) -> FitError:
    return FitError(f"{what}: training diverged. Use a smaller --lr.")
