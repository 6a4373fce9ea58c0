"""The passes of a GLM fit over its row blocks: the blocks themselves, the scan before the
fit, the objective at each Newton step and the sums at the estimate.  Each pass goes through
mlfit.engine, so the functions it ships stay top-level (picklable for Dask)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import numpy as np

from mlfit import engine
from mlfit.contract import ModelData
from mlfit.errors import DataError
from mlfit.numerics import add_intercept
from mlfit.solvers.linear import check_rows
from mlfit.solvers.separation import ColumnSummary

#: |eta| beyond which a fitted probability is 0 or 1 to about 1e-13: a sign of separation.
EXTREME_ETA = 30.0
#: A Poisson mean below exp(-20) ~ 2e-9 on a zero-count row: worth checking the estimate exists.
VANISHING_ETA = -20.0


class Blocks:
    """Re-iterable (A, y, offset, weights) blocks: A has the intercept column when asked;
    weights are the prior weights (R's glm(weights =)), ones without, and rows of weight 0
    are left out here, so every sum, count and check of the fit is over the rows it uses."""

    def __init__(self, chunks: Iterable[ModelData], intercept: bool):
        self._chunks = chunks
        self._intercept = intercept

    def __iter__(self):
        for chunk in self._chunks:
            A = add_intercept(chunk.X) if self._intercept else chunk.X
            y = np.asarray(chunk.y, dtype=float)
            offset = chunk.extra("offset")
            offset = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float)
            weights = chunk.extra("weights")
            if weights is None:
                yield A, y, offset, np.ones(len(y))
                continue
            weights = np.asarray(weights, dtype=float)
            used = weights > 0
            if not used.all():
                A, y, offset, weights = A[used], y[used], offset[used], weights[used]
            if len(y):
                yield A, y, offset, weights


class Columns:
    """The blocks with the design restricted to the columns keep."""

    def __init__(self, blocks, keep: np.ndarray):
        self._blocks, self._keep = blocks, keep

    def __iter__(self):
        for A, y, offset, weights in self._blocks:
            yield A[:, self._keep], y, offset, weights


class Constant:
    """The blocks with the design replaced by one constant column (1: intercept only; 0: none)."""

    def __init__(self, blocks, value: float):
        self._blocks = blocks
        self._value = value

    def __iter__(self):
        for _, y, offset, weights in self._blocks:
            yield np.full((len(y), 1), self._value), y, offset, weights


def each(wrapper, arg, item):
    """wrapper([item], arg): a blocks wrapper (Blocks, Columns, Constant) applied to one
    chunk or block where it lives (engine.expand); in order, the same blocks as over all."""
    return wrapper([item], arg)


def summed(fam, blocks, pen):
    """objective(beta): log-likelihood, gradient and information summed over the blocks."""

    def objective(beta):  # one pass per call: a loop here, per partition on a cluster
        total = engine.over_partitions(blocks, partial(_objective_sums, fam, beta), _add_parts)
        if pen is not None:
            total[0] -= 0.5 * float(np.sum(pen * beta * beta))
            total[1] = total[1] - pen * beta
            total[2] = total[2] + np.diag(pen)
        return tuple(total)

    return objective


def _objective_sums(fam, beta, blocks) -> list:
    """Log-likelihood, gradient and information at beta, summed over the blocks."""
    total = None
    for A, y, offset, weights in blocks:
        part = fam.objective(A, y, beta, offset, weights, None)
        total = list(part) if total is None else [t + q for t, q in zip(total, part)]
    return total


def _add_parts(a: list, b: list) -> list:
    return [t + q for t, q in zip(a, b)]


def scan(fam, blocks, target) -> dict:
    """One pass: row count, parameter count, weighted mean of y and offset, the per-column
    ranges of each class (for the single-column checks); checks y."""
    sums = engine.over_partitions(blocks, partial(_scan_sums, fam, target), _merge_scans)
    n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset = sums or _scan_sums(
        fam, target, []
    )
    if n == 0:
        raise DataError("No data rows to fit.")
    return _scanned(fam, target, n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset)


def _scan_sums(fam, target, blocks) -> tuple:
    """scan's sums over the blocks (merged over partitions by _merge_scans)."""
    n, p, sw, swy, soff, y_min, y_max = 0, 0, 0.0, 0.0, 0.0, math.inf, -math.inf
    columns = ColumnSummary()
    saturated = 0.0
    has_offset = False
    for A, y, offset, weights in blocks:
        columns.add(A, y > 0)
        if fam.name == "bernoulli":  # proportions (--trials) strictly inside: both classes
            columns.add(*classes(A, y, both_only=True))
        saturated += float(weights @ fam.saturated_loglik(y))
        fam.check_y(y, target)
        n += len(y)
        p = A.shape[1]
        sw += float(weights.sum())
        swy += float(weights @ y)
        soff += float(offset.sum())
        has_offset = has_offset or bool(np.any(offset))
        y_min, y_max = min(y_min, float(y.min())), max(y_max, float(y.max()))
    return n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset


def _merge_scans(a: tuple, b: tuple) -> tuple:
    n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset = a
    return (
        n + b[0],
        max(p, b[1]),
        sw + b[2],
        swy + b[3],
        soff + b[4],
        min(y_min, b[5]),
        max(y_max, b[6]),
        columns.merged(b[7]),
        saturated + b[8],
        has_offset or b[9],
    )


def _scanned(fam, target, n, p, sw, swy, soff, y_min, y_max, columns, saturated, has_offset):
    """scan's checks and summary from its sums."""
    check_rows(n, p)
    if fam.name == "bernoulli" and y_min == y_max and y_min in (0.0, 1.0):
        outcome = "failure (0)" if y_min == 0.0 else "success (1)"
        raise DataError(
            f"Target '{target}' has a single class: every row is a {outcome} (with --trials: "
            "every trial); a logistic model needs both successes and failures."
        )
    if fam.domain == "counts" and y_max == 0:
        raise DataError(
            f"Target '{target}' is 0 in every row; a {fam.name} model needs some counts."
        )
    return {
        "n": n,
        "p": p,
        "y_mean": swy / sw,
        "offset_mean": soff / n,
        "sum_w": sw,
        "columns": columns,
        "saturated_loglik": saturated,
        "has_offset": has_offset,
    }


def final_pass(fam, blocks, beta) -> dict:
    """_final_sums over the blocks: a loop here, per partition on a cluster (all sums)."""
    return engine.over_partitions(blocks, partial(_final_sums, fam, beta), _add_values)


def _add_values(a: dict, b: dict) -> dict:
    return {key: a[key] + b[key] for key in a}


def _final_sums(fam, beta, blocks) -> dict:
    """Deviance, unscaled log-likelihood and boundary counts at the estimate; log_weights:
    sum(log w) of the prior weights (R's Gaussian logLik adds half of it)."""
    dev, ll, extreme, vanishing, log_w = 0.0, 0.0, 0, 0, 0.0
    dispersion_sums = np.zeros(3)  # Pearson's chi-squared, sum(w), sum(w loglik_constant)
    profiled = fam.estimates_dispersion and not fam.deviance_is_pearson  # gamma, inv. Gaussian
    for A, y, offset, weights in blocks:
        eta = A @ beta + offset
        log_w += float(np.sum(np.log(weights)))
        dev += float(weights @ fam.unit_deviance(y, eta))
        ll += float(weights @ fam.parts(y, eta)[2])
        extreme += int(np.sum(np.abs(eta) > EXTREME_ETA))
        vanishing += int(np.sum((eta < VANISHING_ETA) & (y == 0)))
        if profiled:
            sums = [fam.pearson(y, eta), np.ones_like(y), fam.loglik_constant(y)]
            dispersion_sums += [float(weights @ v) for v in sums]
    return {
        "pearson": dispersion_sums[0],
        "sum_w": dispersion_sums[1],
        "loglik_constant": dispersion_sums[2],
        "deviance": dev,
        "loglik": ll,
        "extreme": extreme,
        "vanishing": vanishing,
        "log_weights": log_w,
    }


def classes(A: np.ndarray, y: np.ndarray, both_only: bool = False):
    """Rows and classes for the separation checks: y = 1 in, y = 0 out, and a proportion
    strictly between (grouped data) on both sides, as its linear predictor must stay finite.
    both_only: those rows alone, on the outside (the summary has them inside already)."""
    mid = (y > 0) & (y < 1)
    if both_only:
        return A[mid], np.zeros(int(mid.sum()), dtype=bool)
    if not mid.any():
        return A, y == 1
    return np.vstack([A, A[mid]]), np.concatenate([y > 0, np.zeros(int(mid.sum()), bool)])
