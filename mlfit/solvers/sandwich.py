"""Robust (sandwich) covariances, shared by normal-eq, newton and logreg: V = B M B.

B, the bread, is the model's unscaled (A'WA)^-1 (least squares: (X'WX)^-1 with the prior
weights; a GLM: the inverse expected information, as R's sandwich::bread for glm).  M, the meat,
is a sum over rows of outer products of the rows' score contributions s_i (least squares:
w_i e_i x_i; a GLM: w_i (y_i - mu_i) mu'(eta_i) / V(mu_i) x_i).  A dispersion cancels.  HC0 is
M as it stands; HC1 scales V by n / (n - k); HC2 and HC3 divide s_i s_i' by (1 - h_ii) and
(1 - h_ii)^2, h_ii the leverage of the whitened row sqrt(W_i) x_i; cluster sums the scores
within each cluster before the outer product and scales V by G / (G - 1) * (n - 1) / (n - k)
(statsmodels' cov_type="cluster" default, which equals sandwich::vcovCL(type = "HC1")).

The meat is a sum over rows, so it is one more pass over the chunks (engine.fold): the same
answer in memory, chunked or on a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlfit import engine
from mlfit.contract import Table
from mlfit.errors import FitError
from mlfit.stats import t_table, z_table

#: What --se robust / --cluster compute (solver.covariance in the JSON); "nonrobust": none.
COVARIANCES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")
#: A leverage this close to 1 (R's lm.influence: 1 - 10 eps) makes HC2 and HC3 undefined.
_LEVERAGE_ONE = 1.0 - 10.0 * np.finfo(float).eps


@dataclass
class Meat:
    """The meat accumulated over chunks: sum of s_i s_i' (HC), or the score sums of each
    cluster (label -> (q,) array), and the rows seen."""

    kind: str
    M: np.ndarray | None = None
    n: int = 0
    clusters: dict = field(default_factory=dict)

    def add(self, S: np.ndarray, At: np.ndarray | None, bread, labels=None) -> Meat:
        """S: (n, q) score rows; At: (n, q) whitened design rows sqrt(W_i) x_i (HC2, HC3);
        labels: (n,) cluster labels (cluster)."""
        self.n += len(S)
        if self.kind in ("HC2", "HC3"):
            h = np.einsum("ij,ij->i", At @ bread, At)
            if np.any(h > _LEVERAGE_ONE):
                row = int(np.flatnonzero(h > _LEVERAGE_ONE)[0])
                raise FitError(
                    f"{self.kind} is undefined: a row (the {_ordinal(self.n - len(S) + row + 1)} "
                    "fitted) has leverage 1 (the fit passes through it), so its residual "
                    "says nothing about its variance. Use --hc 0 or --hc 1."
                )
            S = S / (np.sqrt(1.0 - h) if self.kind == "HC2" else (1.0 - h))[:, None]
        if self.kind == "cluster":
            self._add_clusters(S, labels)
            return self
        part = S.T @ S
        self.M = part if self.M is None else self.M + part
        return self

    def _add_clusters(self, S: np.ndarray, labels) -> None:
        codes, keys = _codes(labels)
        sums = np.zeros((len(keys), S.shape[1]))
        for j in range(S.shape[1]):  # bincount per column: no n x q temporaries
            sums[:, j] = np.bincount(codes, weights=S[:, j], minlength=len(keys))
        for key, row in zip(keys, sums):
            total = self.clusters.get(key)
            self.clusters[key] = row if total is None else total + row

    def merged(self, other: Meat) -> Meat:
        """Both parts' meat, as a new object (a partition's result stays as it is)."""
        out = Meat(self.kind, None, self.n + other.n, dict(self.clusters))
        if self.M is not None or other.M is not None:
            out.M = (0.0 if self.M is None else self.M) + (0.0 if other.M is None else other.M)
        for key, row in other.clusters.items():
            total = out.clusters.get(key)
            out.clusters[key] = row if total is None else total + row
        return out


def _codes(labels) -> tuple[np.ndarray, list]:
    """Integer codes of cluster labels and the labels (numbers, or text as read)."""
    values = np.asarray(labels)
    if values.dtype != object:
        keys, codes = np.unique(values, return_inverse=True)
        return codes.ravel(), keys.tolist()
    index: dict = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values.tolist()), np.intp)
    return codes, list(index)


@dataclass(frozen=True)
class MeatStep:
    """engine.fold step: rows(chunk) -> (S, At, labels) of the rows it fits (a model's own
    picklable callable), added to the running meat."""

    kind: str
    bread: np.ndarray
    rows: object

    def __call__(self, acc: Meat | None, chunk) -> Meat:
        acc = Meat(self.kind) if acc is None else acc
        S, At, labels = self.rows(chunk)
        if self.kind == "cluster" and labels is None:
            raise FitError("Cluster-robust standard errors need --cluster COL.")
        return acc.add(S, At, self.bread, labels)


def _merge(a: Meat, b: Meat) -> Meat:
    return a.merged(b)


@dataclass
class Robust:
    """A robust covariance and what the report says about it."""

    cov: np.ndarray  # (k, k)
    std_error: np.ndarray  # (k,)
    kind: str
    n_clusters: int | None

    @property
    def df(self) -> int | None:
        """The denominator df of statsmodels' robust F test (and of t with use_t=True): G - 1
        for clusters, else None (the model's residual df)."""
        return None if self.n_clusters is None else self.n_clusters - 1

    def info(self) -> dict:
        out = {"covariance": self.kind}
        if self.n_clusters is not None:
            out["clusters"] = self.n_clusters
        return out


def robust(kind: str, bread: np.ndarray, chunks, rows) -> Robust:
    """The sandwich covariance over every chunk (one pass): kind from COVARIANCES (not
    "nonrobust"); bread: (k, k); rows: as MeatStep.rows."""
    bread = np.asarray(bread, dtype=float)
    meat = engine.fold(chunks, MeatStep(kind, bread, rows), _merge)
    k = bread.shape[0]
    n = 0 if meat is None else meat.n
    if n <= k:
        raise FitError(
            f"Robust standard errors need more rows ({n}) than coefficients ({k}). Leave out "
            "--se robust / --cluster."
        )
    n_clusters = None
    if kind == "cluster":
        n_clusters = len(meat.clusters)
        if n_clusters < 2:
            raise FitError(
                f"Cluster-robust standard errors need at least 2 clusters; --cluster has "
                f"{n_clusters}. Choose a column with more clusters, or use --se robust."
            )
        G = np.array(list(meat.clusters.values()))
        M = G.T @ G
        scale = n_clusters / (n_clusters - 1) * (n - 1) / (n - k)
    else:
        M = meat.M
        scale = n / (n - k) if kind == "HC1" else 1.0
    cov = scale * (bread @ M @ bread)
    cov = 0.5 * (cov + cov.T)
    variances = np.diag(cov)
    if not np.all(np.isfinite(variances)):
        raise FitError(
            "The robust covariance is not finite (extreme values in the data overflow its "
            "sums). Rescale the features or leave out --se robust."
        )
    return Robust(cov, np.sqrt(np.maximum(variances, 0.0)), kind, n_clusters)


def glm_scores(family, A: np.ndarray, y: np.ndarray, eta: np.ndarray, w: np.ndarray | None):
    """(S, At) of a GLM's rows: scores w (y - mu) mu'(eta) / V(mu) x and whitened rows
    sqrt(w mu'(eta)^2 / V(mu)) x (canonical link: mu' = V, so w (y - mu) x and sqrt(w V) x)."""
    mu, d = family.mean(eta), family.mu_eta(eta)
    w = np.ones(len(y)) if w is None else w
    if family.canonical:
        u, W = w * (y - mu), w * d
    else:
        v = family.variance(mu)
        u, W = w * (y - mu) * d / v, w * d * d / v
    return A * u[:, None], A * np.sqrt(W)[:, None]


def softmax_scores(A: np.ndarray, codes: np.ndarray, P: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(n, p (K-1)) scores of softmax regression: w (1[y = a] - p_a) x for every class a after
    the reference, in the order of its flattened coefficients (class by class)."""
    R = -P[:, 1:] * w[:, None]
    R[np.arange(len(codes)), codes - 1] += np.where(codes > 0, w, 0.0)
    return (R[:, :, None] * A[:, None, :]).reshape(len(A), -1)


@dataclass(frozen=True)
class GLMRows:
    """A chunk's GLM score rows, whitened rows and cluster labels (rows of positive prior
    weight; x over the estimable columns keep, beta their coefficients)."""

    family: object
    beta: np.ndarray
    intercept: bool
    keep: np.ndarray

    def __call__(self, chunk):
        X = np.asarray(chunk.X, dtype=float)
        A = (np.column_stack([np.ones(len(X)), X]) if self.intercept else X)[:, self.keep]
        y = np.asarray(chunk.y, dtype=float)
        offset = chunk.extra("offset")
        eta = A @ self.beta + (0.0 if offset is None else np.asarray(offset, dtype=float))
        w, labels = chunk.extra("weights"), chunk.extra("cluster")
        if w is not None:
            w = np.asarray(w, dtype=float)
            used = w > 0
            A, y, eta, w = A[used], y[used], eta[used], w[used]
            labels = None if labels is None else np.asarray(labels)[used]
        S, At = glm_scores(self.family, A, y, eta, w)
        return S, At, labels


def update_table(table: Table, rows: np.ndarray, rob: Robust, df: float | None) -> None:
    """The table's standard errors, tests and 95% intervals from the robust covariance, in
    place.  rows: the table rows of the covariance's coefficients (the others, aliased, stay
    null); df: a t reference with df, or None for z (statsmodels' default for robust
    covariances of every model, use_t=False)."""
    estimate = np.asarray(table["estimate"], dtype=float)
    se = np.full(len(estimate), np.nan)
    se[rows] = rob.std_error
    tests = t_table(estimate, se, df) if df is not None else z_table(estimate, se)
    columns = {"estimate": table["estimate"], "std_error": se, **tests}
    for key, values in table.columns.items():
        if key not in columns and key not in ("t", "z"):
            columns[key] = values
    table.columns = columns


def wald_f(estimate: np.ndarray, cov: np.ndarray) -> float:
    """The Wald statistic estimate' cov^-1 estimate / q (a robust F test of the slopes), or
    NaN when cov is singular (fewer clusters than slopes)."""
    q = len(estimate)
    if q == 0:
        return math.nan
    try:
        L = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return math.nan
    z = np.linalg.solve(L, estimate)
    return float(z @ z) / q


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"
