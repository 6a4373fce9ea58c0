"""Per-class counts, means and sums of squared deviations, merged chunk by chunk.

Each chunk's moments are taken about the chunk's own class means (two passes over the
chunk, so no cancellation) and merged with the running ones by Chan, Golub and LeVeque's
update: M2 = M2_a + M2_b + delta^2 n_a n_b / n.  One chunk gives the in-memory answer.
"""

from __future__ import annotations

import numpy as np


class ClassMoments:
    """n: (K,) rows per class; mean, M2: (K, p)."""

    def __init__(self, K: int, p: int):
        self.n = np.zeros(K)
        self.mean = np.zeros((K, p))
        self.M2 = np.zeros((K, p))

    def add(self, X: np.ndarray, codes: np.ndarray) -> None:
        """Merge the rows X: (m, p) whose classes are codes: (m,) in 0..K-1."""
        for k in np.unique(codes):
            Xk = X[codes == k]
            n_b = float(len(Xk))
            mean_b = Xk.mean(axis=0)
            d = Xk - mean_b
            self._merge(k, n_b, mean_b, np.einsum("ij,ij->j", d, d))

    def _merge(self, k: int, n_b: float, mean_b: np.ndarray, M2_b: np.ndarray) -> None:
        n_a = self.n[k]
        n = n_a + n_b
        delta = mean_b - self.mean[k]
        self.mean[k] = self.mean[k] + delta * (n_b / n)
        self.M2[k] = self.M2[k] + M2_b + delta**2 * (n_a * n_b / n)
        self.n[k] = n

    @property
    def variance(self) -> np.ndarray:
        """(K, p) maximum-likelihood (divide by n) variances; 0 for a class with no rows."""
        return self.M2 / np.maximum(self.n, 1.0)[:, None]

    def pooled(self) -> ClassMoments:
        """Every class merged into one: the moments of all the rows."""
        out = ClassMoments(1, self.mean.shape[1])
        for k in np.flatnonzero(self.n):
            out._merge(0, self.n[k], self.mean[k], self.M2[k])
        return out
