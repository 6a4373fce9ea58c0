"""Per-class counts, means and scatter matrices, merged chunk by chunk, and the class codes of
a chunk stream: the sums over rows of the generative classifiers (gda; naive-bayes can use the
diagonals).

Each chunk's moments are taken about the chunk's own class means and merged by the pairwise
update of Chan, Golub and LeVeque (1979), so no sum of squares about zero ever loses the
variance to cancellation, and a fit from chunks equals the in-memory fit to rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mlfit.contract import ModelData
from mlfit.errors import DataError


@dataclass
class ClassMoments:
    """count: (K,) rows per class; mean: (K, p); scatter: (K, p, p), the sums of
    (x - mean_k)(x - mean_k)' over each class's rows."""

    count: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def zeros(cls, K: int, p: int) -> ClassMoments:
        return cls(np.zeros(K, dtype=np.int64), np.zeros((K, p)), np.zeros((K, p, p)))

    def add(self, X: np.ndarray, codes: np.ndarray) -> None:
        """Merge the rows of X (n, p) with class codes (n,) in 0..K-1."""
        K = len(self.count)
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=K)
        Xs = X[order]
        start = 0
        for k in range(K):
            nb = int(counts[k])
            if nb:
                rows = Xs[start : start + nb]
                mb = rows.mean(axis=0)
                centred = rows - mb
                self._merge(k, nb, mb, centred.T @ centred)
            start += nb

    def _merge(self, k: int, nb: int, mb: np.ndarray, sb: np.ndarray) -> None:
        na = int(self.count[k])
        n = na + nb
        delta = mb - self.mean[k]
        self.mean[k] = self.mean[k] + delta * (nb / n)
        self.scatter[k] += sb + np.outer(delta, delta) * (na * nb / n)
        self.count[k] = n

    def merge(self, other: ClassMoments) -> None:
        """Add another accumulator's rows (the same classes and features)."""
        for k in np.flatnonzero(other.count):
            self._merge(int(k), int(other.count[k]), other.mean[k], other.scatter[k])

    def total_variance(self) -> np.ndarray:
        """(p,) each feature's variance over all rows (divisor n), from the class moments."""
        n = self.count.sum()
        grand = self.count @ self.mean / n
        between = self.count @ (self.mean - grand) ** 2
        within = np.einsum("kjj->j", self.scatter)
        return (within + between) / n


def _factorized(y) -> tuple[np.ndarray, np.ndarray, bool]:
    """A chunk's distinct labels (floats for numbers, strings for text, as
    classes.encode_labels reads them), each row's index into them, and whether they are
    numbers.  Text is factorized through a dict (O(n); sorting objects is ten times slower),
    and only the distinct values are converted; two that convert alike are merged later."""
    y = np.asarray(y)
    if y.dtype.kind in "fiub":
        u, local = np.unique(y.astype(float), return_inverse=True)
        return u, local.ravel(), True
    index: dict = {}
    local = np.fromiter((index.setdefault(v, len(index)) for v in y), np.int64, len(y))
    u = list(index)
    if all(isinstance(v, (int, float, np.floating, np.integer)) for v in u):
        return np.array(u, dtype=float), local, True
    return np.array([str(v) for v in u], dtype=object), local, False


def class_codes(chunks: Iterable[ModelData]) -> tuple[np.ndarray, list]:
    """Class codes 0..K-1 of every row of a chunk stream (one pass) and the sorted labels, as
    classes.encode_labels gives for the whole column; the same checks (one class, a class of
    one row)."""
    parts, uniques, numeric, target = [], [], True, "y"
    for chunk in chunks:
        target = chunk.target
        u, local, is_number = _factorized(chunk.y)
        numeric &= is_number
        uniques.append(u)
        parts.append(local)
    if not parts:
        raise DataError("No data rows to fit.")
    if not numeric:  # text somewhere: every label is text, as in memory
        uniques = [np.array([str(v) for v in u], dtype=object) for u in uniques]
    values, inverse = np.unique(np.concatenate(uniques), return_inverse=True)
    codes, start = [], 0
    for u, local in zip(uniques, parts):
        codes.append(inverse[start : start + len(u)][local])
        start += len(u)
    codes = np.concatenate(codes).astype(np.int64)
    if numeric:
        labels = [int(v) if float(v).is_integer() else float(v) for v in values]
    else:
        labels = list(values)
    if len(labels) < 2:
        raise DataError(
            f"Target '{target}' has a single class ({labels[0]!r}); classification "
            "needs at least two."
        )
    counts = np.bincount(codes, minlength=len(labels))
    for k in np.flatnonzero(counts == 1):
        row = int(np.flatnonzero(codes == k)[0]) + 1
        raise DataError(
            f"Class {labels[k]!r} of target '{target}' has a single row (row {row}): "
            "a typo or a stray value? Fix or remove that row, or merge the class."
        )
    return codes, labels
