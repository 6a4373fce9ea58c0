"""Per-class counts, means and scatter (full matrices or only their diagonals), merged chunk
by chunk: the sums over rows of the generative classifiers (gda full, naive-bayes diagonal).

Each chunk's moments are taken about the chunk's own class means and merged by the pairwise
update of Chan, Golub and LeVeque (1979), so no sum of squares about zero ever loses the
variance to cancellation, and a fit from chunks equals the in-memory fit to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClassMoments:
    """count: (K,) rows per class; mean: (K, p); scatter: the sums of
    (x - mean_k)(x - mean_k)' over each class's rows, (K, p, p) when full, else only their
    diagonals (K, p)."""

    count: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def zeros(cls, K: int, p: int, *, full: bool) -> ClassMoments:
        shape = (K, p, p) if full else (K, p)
        return cls(np.zeros(K, dtype=np.int64), np.zeros((K, p)), np.zeros(shape))

    @property
    def full(self) -> bool:
        """Whether scatter holds the full matrices (else only the diagonals)."""
        return self.scatter.ndim == 3

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
                if self.full:
                    sb = centred.T @ centred
                else:
                    sb = np.einsum("ij,ij->j", centred, centred)
                self._merge(k, nb, mb, sb)
            start += nb

    def _merge(self, k: int, nb: int, mb: np.ndarray, sb: np.ndarray) -> None:
        na = int(self.count[k])
        n = na + nb
        delta = mb - self.mean[k]
        self.mean[k] = self.mean[k] + delta * (nb / n)
        outer = np.outer(delta, delta) if self.full else delta * delta
        self.scatter[k] += sb + outer * (na * nb / n)
        self.count[k] = n

    def merge(self, other: ClassMoments) -> None:
        """Add another accumulator's rows (the same classes and features, and as full)."""
        for k in np.flatnonzero(other.count):
            self._merge(int(k), int(other.count[k]), other.mean[k], other.scatter[k])

    @property
    def variance(self) -> np.ndarray:
        """(K, p) each class's maximum-likelihood (divisor n) variances; 0 for a class with
        no rows."""
        diagonal = np.einsum("kjj->kj", self.scatter) if self.full else self.scatter
        return diagonal / np.maximum(self.count, 1)[:, None]

    def total_variance(self) -> np.ndarray:
        """(p,) each feature's variance over all rows (divisor n), from the class moments."""
        n = self.count.sum()
        grand = self.count @ self.mean / n
        between = self.count @ (self.mean - grand) ** 2
        within = np.einsum("kjj->j", self.scatter) if self.full else self.scatter.sum(axis=0)
        return (within + between) / n
