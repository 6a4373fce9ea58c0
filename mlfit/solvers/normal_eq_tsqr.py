"""R of [1 X y] accumulated chunk by chunk (TSQR) for normal-eq, with the moments of y and
exact power-of-two scaling of extreme columns: one engine.fold, a tree of merges on a cluster."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mlfit import engine
from mlfit.contract import ModelData, Step, no_progress
from mlfit.errors import DataError
from mlfit.solvers.lsq import append_rows, qr_r

#: accumulate's shift: find the exponents from the first chunk.
FIND_SHIFT = "first chunk"


class YMoments:
    """Count, (weighted) mean and centred sum of squares of y, merged chunk by chunk (Chan
    et al.).  With prior weights w > 0: sw = sum w, mean and m2 weighted, log_w = sum log w
    (R's logLik of a weighted lm); n counts the rows."""

    def __init__(self):
        self.n, self.mean, self.m2, self.sumsq = 0, 0.0, 0.0, 0.0
        self.sw, self.log_w = 0.0, 0.0
        self.low, self.high = math.inf, -math.inf  # exact: tells a constant target

    def add(self, y: np.ndarray, w: np.ndarray | None = None) -> None:
        n_b = len(y)
        if n_b == 0:
            return
        if w is None:
            sw_b = float(n_b)
            mean_b = float(np.mean(y))  # pairwise summation: error about log2(n) * eps
            d = y - mean_b
            m2_b = float(d @ d)
            self.sumsq += float(y @ y)
        else:
            sw_b = math.fsum(w)
            mean_b = float(w @ y) / sw_b
            d = y - mean_b
            m2_b = float(w @ (d * d))
            self.sumsq += float(w @ (y * y))
            self.log_w += float(np.sum(np.log(w)))
        sw = self.sw + sw_b
        delta = mean_b - self.mean
        self.mean += delta * sw_b / sw
        self.m2 += m2_b + delta * delta * self.sw * sw_b / sw
        self.sw = sw
        self.n += n_b
        self.low, self.high = min(self.low, float(y.min())), max(self.high, float(y.max()))

    def merged(self, other: YMoments) -> YMoments:
        """The moments of both sets of rows, as a new object (a partition's result must stay
        as it is, should the task merging it be retried)."""
        out = YMoments()
        out.n, out.mean, out.m2, out.sumsq = self.n, self.mean, self.m2, self.sumsq
        out.sw, out.log_w = self.sw, self.log_w
        out.low, out.high = min(self.low, other.low), max(self.high, other.high)
        if other.n:
            sw = self.sw + other.sw
            delta = other.mean - self.mean
            out.mean = self.mean + delta * other.sw / sw
            out.m2 = self.m2 + other.m2 + delta * delta * self.sw * other.sw / sw
            out.sumsq = self.sumsq + other.sumsq
            out.sw, out.log_w = sw, self.log_w + other.log_w
            out.n = self.n + other.n
        return out


def positive_rows(X, y, w, X_lo=None):
    """The rows with a positive prior weight: a zero weight leaves the fit (R's lm.wfit),
    not predict.  Negative or missing weights never get here (the validator's domain)."""
    w = np.asarray(w, dtype=float)
    used = w > 0
    if used.all():
        return X, y, w, X_lo
    return X[used], y[used], w[used], None if X_lo is None else X_lo[used]


#: Columns whose largest magnitude is beyond 2^±EXTREME_EXPONENT are scaled by a power of two
#: before the QR: squared norms of values near 1e-300 underflow (the column would look
#: aliased) and near 1e300 overflow. Scaling by 2^k is exact, so the answer is the same.
EXTREME_EXPONENT = 400


def extreme_shift(X: np.ndarray) -> np.ndarray | None:
    """Per-column exponents k (X * 2^k has magnitude about 1) for extreme columns, else None."""
    if X.size == 0:
        return None
    largest = np.maximum(X.max(axis=0), -X.min(axis=0))  # no |X| temporary: 5x faster
    with np.errstate(divide="ignore"):
        top = np.log2(largest)
    k = np.where(np.isfinite(top) & (np.abs(top) > EXTREME_EXPONENT), -np.round(top), 0.0)
    return k.astype(np.int64) if np.any(k) else None


def shifted(X, shift):
    return X if X is None or shift is None else np.ldexp(X, shift)


def accumulate(chunks: Iterable[ModelData], intercept: bool, on_progress=no_progress, shift=None):
    """R of [1 X y] over all chunks (TSQR: stack the running R on each chunk, refactorise),
    the moments of y, the design's column names, and the exponents the columns were scaled
    by (2^shift).  shift: given, None, or FIND_SHIFT to find it from the first chunk."""

    # One engine.fold: locally this loop over the chunks; on a cluster each partition's R,
    # merged by stacking two R's and refactorising (the same TSQR, as a tree).
    def done(i: int, total: int) -> None:
        on_progress(Step(i, total, float(i)))

    acc = engine.fold(chunks, _TSQRStep(intercept, shift), _merge_tsqr, done)
    if acc is None:
        raise DataError("No data rows to fit.")
    return acc.R, acc.moments, acc.names, acc.shift


@dataclass
class _TSQR:
    """What a pass over some chunks leaves: R of their [1 X y], y's moments, the scaling."""

    R: np.ndarray | None
    moments: YMoments
    names: list[str] | None
    shift: np.ndarray | None


@dataclass(frozen=True)
class _TSQRStep:
    intercept: bool
    shift: object  # exponents, None, or FIND_SHIFT: find them from the first chunk

    def __call__(self, acc: _TSQR | None, chunk: ModelData) -> _TSQR:
        if acc is None:
            shift = self.shift
            if isinstance(shift, str) and shift == FIND_SHIFT:
                shift = extreme_shift(chunk.X)
            acc = _TSQR(None, YMoments(), None, shift)
        y = np.asarray(chunk.y, dtype=float)
        X, w = chunk.X, chunk.extra("weights")
        if w is not None:
            X, y, w, _ = positive_rows(X, y, w)
        X = shifted(X, acc.shift)
        root = None if w is None else np.sqrt(w)
        first = 1 if self.intercept else 0

        def fill(start, stop, out):  # rows of [1 X y], times sqrt(w) for the weighted problem
            if first:
                out[:, 0] = 1.0
            out[:, first:-1] = X[start:stop]
            out[:, -1] = y[start:stop]
            if root is not None:
                out *= root[start:stop, None]

        acc.R = append_rows(acc.R, len(y), first + X.shape[1] + 1, fill)
        acc.moments.add(y, w)
        acc.names = chunk.names
        return acc


def _merge_tsqr(a: _TSQR, b: _TSQR) -> _TSQR:
    """a then b: R of [R_a; R_b], b's columns first brought to a's scaling (exact: 2^k)."""
    R_b = b.R
    k_a, k_b = _exponents(a.shift, R_b), _exponents(b.shift, R_b)
    if not np.array_equal(k_a, k_b):
        R_b = np.ldexp(R_b, k_a - k_b)
    return _TSQR(qr_r(np.vstack([a.R, R_b])), a.moments.merged(b.moments), b.names, a.shift)


def _exponents(shift: np.ndarray | None, R: np.ndarray) -> np.ndarray:
    """The power of two each column of R was scaled by (the intercept's and y's: 0)."""
    k = np.zeros(R.shape[1], dtype=np.int64)
    if shift is not None:
        k[R.shape[1] - 1 - len(shift) : R.shape[1] - 1] = shift
    return k
