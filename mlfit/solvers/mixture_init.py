"""Starting points for EM: k-means++ with Lloyd's iterations, and Ward's hierarchical clustering.

Both work on a bounded sample of rows, so a start costs the same for any data size; EM then
runs on all rows.  Two kinds of start find different maxima (k-means favours round clusters
of similar size, Ward's merges follow the data's shape), and keeping the best of both beats
either alone.
"""

from __future__ import annotations

import numpy as np

from mlfit.solvers.mixture import Mixture

#: Rows used to find a start (Ward's clustering is quadratic in this).
WARD_ROWS = 2000
LLOYD_ITERATIONS = 50


def kmeans_labels(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (D^2 sampling, with a few candidates per step), then Lloyd."""
    n = X.shape[0]
    centres = [X[rng.integers(n)]]
    d2 = ((X - centres[0]) ** 2).sum(axis=1)
    trials = 2 + int(np.log(k))
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct rows than k: repeat a row; EM will re-seed it
            centres.append(X[rng.integers(n)])
            continue
        candidates = rng.choice(n, size=trials, p=d2 / total)
        best, best_d2 = None, None
        for c in candidates:
            new_d2 = np.minimum(d2, ((X - X[c]) ** 2).sum(axis=1))
            if best_d2 is None or new_d2.sum() < best_d2.sum():
                best, best_d2 = c, new_d2
        centres.append(X[best])
        d2 = best_d2
    C = np.array(centres)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(LLOYD_ITERATIONS):
        dist = (X * X).sum(axis=1)[:, None] - 2.0 * X @ C.T + (C * C).sum(axis=1)[None]
        new = np.argmin(dist, axis=1)
        if np.array_equal(new, labels) and _ > 0:
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                C[j] = X[members].mean(axis=0)
    return labels


def ward_labels(X: np.ndarray, k: int) -> np.ndarray:
    """Ward's minimum-variance agglomerative clustering cut at k clusters."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if k == 1:
        return np.zeros(X.shape[0], dtype=np.int64)
    tree = linkage(X, method="ward")
    return fcluster(tree, t=k, criterion="maxclust").astype(np.int64) - 1


def from_labels(
    X: np.ndarray, labels: np.ndarray, k: int, covariance_type: str, reg: np.ndarray
) -> Mixture:
    """The mixture of hard assignments: each cluster's share, mean and covariance."""
    n, d = X.shape
    weights = np.empty(k)
    means = np.empty((k, d))
    full = np.empty((k, d, d))
    overall = np.cov(X, rowvar=False, bias=True).reshape(d, d)
    for j in range(k):
        members = X[labels == j]
        if len(members) == 0:  # an empty cluster starts as a copy of the whole data
            members = X
        weights[j] = max(len(X[labels == j]), 1)
        means[j] = members.mean(axis=0)
        diff = members - means[j]
        full[j] = diff.T @ diff / len(members) if len(members) > 1 else overall
    weights /= weights.sum()
    shares = np.bincount(labels, minlength=k) / n
    if covariance_type == "full":
        cov = full + np.diag(reg)[None]
    elif covariance_type == "tied":
        cov = np.tensordot(shares, full, axes=1) + np.diag(reg)
    else:
        var = np.diagonal(full, axis1=1, axis2=2) + reg[None]
        cov = var if covariance_type == "diag" else var.mean(axis=1)
    return Mixture(covariance_type, weights, means, cov)
