"""EM for Gaussian mixtures, as sums over row blocks: one pass per iteration, any data size.

Each pass computes, for the current parameters, the log-density of every row under every
component through Cholesky factors (never an inverse), the responsibilities by log-sum-exp,
and per component the count, the first moment and the scatter about the component's current
mean (shifting by the current mean keeps the scatter free of cancellation).  The M step turns
those sums into new weights, means and covariances.  The blocks may be views of an array in
memory or chunks streamed from a file: the answer is the same.

Covariance types, as in scikit-learn and mclust: full (k, d, d), diag (k, d), spherical (k,),
tied (d, d).  Every covariance gets `reg` (a vector of d per-feature amounts) added to its
diagonal, so no component can collapse to a singular one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from mlfit import engine

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
LOG_2PI = math.log(2.0 * math.pi)
#: Re-seeds of collapsing components allowed in one EM run before it is left to converge.
MAX_RESEEDS = 3
#: A change of the log-likelihood smaller than this per row is rounding.
ROUNDING = 1e-13


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Mixture:
    """Weights (k,), means (k, d) and covariances in the shape of their type."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def k(self) -> int:
        return len(self.weights)

    @property
    def d(self) -> int:
        return self.means.shape[1]

    def full_covariances(self) -> np.ndarray:
        """(k, d, d) whatever the type."""
        k, d = self.k, self.d
        c = self.covariances
        if self.covariance_type == "full":
            return c
        if self.covariance_type == "tied":
            return np.broadcast_to(c, (k, d, d)).copy()
        diag = c if self.covariance_type == "diag" else np.repeat(c[:, None], d, axis=1)
        return np.stack([np.diag(v) for v in diag])

    def n_parameters(self) -> int:
        k, d = self.k, self.d
        cov = {
            "full": k * d * (d + 1) // 2,
            "diag": k * d,
            "spherical": k,
            "tied": d * (d + 1) // 2,
        }[self.covariance_type]
        return (k - 1) + k * d + cov


class Densities:
    """log(weight_j) + log N(x | mean_j, cov_j) for rows of x, from the Cholesky factors.

    Computed component-major, (k, n): every reduction then runs over whole contiguous rows
    (numpy reduces a short last axis, of length k or d, slowly), and no Python loop runs
    over components.
    """

    def __init__(self, mix: Mixture):
        self.mix = mix
        kind, c = mix.covariance_type, mix.covariances
        k, d = mix.k, mix.d
        with np.errstate(divide="ignore"):
            log_w = np.log(mix.weights)
        if kind in ("full", "tied"):
            chols = np.linalg.cholesky(c if kind == "full" else c[None])  # raises if singular
            inv = np.linalg.inv(chols)  # L^-1 of a triangular factor: exact enough
            # L_j^-1 (x - mu_j) for every component by one GEMM: [L_1^-1; ...; L_k^-1] x - b_j
            self._WT = np.ascontiguousarray(inv.reshape(-1, d))  # (k d, d), or (d, d) if tied
            every = np.broadcast_to(inv, (k, d, d))  # tied: the one factor for every component
            self._b = np.einsum("kab,kb->ka", every, mix.means)[:, :, None]  # L_j^-1 mu_j
            log_det = 2.0 * np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)
            log_det = np.broadcast_to(log_det, (k,))
        else:
            var = c if kind == "diag" else np.repeat(c[:, None], d, axis=1)
            self._prec = 1.0 / var  # (k, d)
            log_det = np.log(var).sum(axis=1)
        self._const = (log_w - 0.5 * (d * LOG_2PI + log_det))[:, None]

    def terms(self, XT: np.ndarray, scratch: Scratch | None = None):
        """(L, D2): L (k, n) the weighted log-densities of the columns of XT (d, n); for diag
        and spherical also D2 (k, d, n), the squared differences from the means (the
        scatter of the M step needs the same), else None."""
        mix, scratch = self.mix, scratch or Scratch()
        k, d, n = mix.k, mix.d, XT.shape[1]
        D2 = None
        if mix.covariance_type == "full":
            Z = np.matmul(self._WT, XT, out=scratch.get("Z", (k * d, n))).reshape(k, d, n)
            Z -= self._b
        elif mix.covariance_type == "tied":
            Z = np.subtract((self._WT @ XT)[None], self._b, out=scratch.get("Z", (k, d, n)))
        else:
            D2 = np.subtract(XT[None], mix.means[:, :, None], out=scratch.get("D2", (k, d, n)))
            D2 *= D2
        if D2 is None:
            Z *= Z
            L = np.sum(Z, axis=1, out=scratch.get("L", (k, n)))
        else:
            L = np.matmul(self._prec[:, None, :], D2)[:, 0, :]
        L *= -0.5
        L += self._const
        return L, D2

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """(n, k) weighted log-densities of the rows of X (n, d)."""
        return self.terms(np.ascontiguousarray(np.asarray(X, dtype=float).T))[0].T


class Scratch:
    """Buffers reused from block to block of a pass (fresh multi-megabyte temporaries for
    every block cost page faults)."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size)
        return buffer[:size].reshape(shape)


def log_sum_exp(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row log-sum-exp (n,), responsibilities (n, k)) of a matrix of log terms (n, k)."""
    log_p, R = _log_sum_exp_columns(np.array(L.T))
    return log_p, R.T


def _log_sum_exp_columns(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column log-sum-exp (n,), responsibilities (k, n)) of L (k, n), overwriting L."""
    top = L.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    L -= top
    np.exp(L, out=L)
    total = L.sum(axis=0)
    L /= total
    return np.log(total) + top, L


@dataclass
class Sums:
    """Per-component sums of one pass: counts, first moments and scatter about `centre`."""

    n: int
    loglik: float
    counts: np.ndarray  # (k,)
    first: np.ndarray  # (k, d): sum r (x - centre_j)
    scatter: np.ndarray  # (k, d, d) or (k, d): sum r (x - centre_j)(x - centre_j)'


def m_step(mix: Mixture, s: Sums, reg: np.ndarray) -> Mixture:
    """New parameters from the sums (about mix.means); `reg` (d,) added to every diagonal."""
    kind = mix.covariance_type
    counts = np.maximum(s.counts, 10 * np.finfo(float).tiny)
    delta = s.first / counts[:, None]
    means = mix.means + delta
    if kind in ("full", "tied"):
        cov = s.scatter / counts[:, None, None] - delta[:, :, None] * delta[:, None, :]
        if kind == "tied":
            cov = np.tensordot(counts / counts.sum(), cov, axes=1)
            cov = 0.5 * (cov + cov.T) + np.diag(reg)
        else:
            cov = 0.5 * (cov + cov.transpose(0, 2, 1)) + np.diag(reg)[None]
    else:
        var = s.scatter / counts[:, None] - delta * delta
        var = np.maximum(var, 0.0) + reg[None]
        cov = var if kind == "diag" else var.mean(axis=1)
    return Mixture(kind, s.counts / s.counts.sum(), means, cov)


def one_pass(blocks: Iterable[np.ndarray], mix: Mixture) -> Sums:
    """Sums over every block at the current parameters (its loglik is that of `mix`): one
    engine.fold, a loop here or a fold per partition on a cluster, sums added."""
    k, d = mix.k, mix.d
    full = mix.covariance_type in ("full", "tied")
    s = engine.fold(blocks, _EStep(mix), _add_sums)
    if s is None:
        return Sums(0, 0.0, np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d) if full else (k, d)))
    return s


class _EStep:
    """Adds one block's E-step sums; its scratch buffers stay where it runs (not pickled)."""

    def __init__(self, mix: Mixture):
        self.mix = mix
        self._dens = self._scratch = None

    def __getstate__(self):
        return {"mix": self.mix}

    def __setstate__(self, state):
        self.__init__(state["mix"])

    def __call__(self, s: Sums | None, X: np.ndarray) -> Sums:
        mix = self.mix
        k, d = mix.k, mix.d
        full = mix.covariance_type in ("full", "tied")
        centre = mix.means
        if self._dens is None:
            self._dens, self._scratch = Densities(mix), Scratch()
        scratch = self._scratch
        if s is None:
            scatter = np.zeros((k, d, d) if full else (k, d))
            s = Sums(0, 0.0, np.zeros(k), np.zeros((k, d)), scatter)
        XT = np.ascontiguousarray(X.T)  # (d, n): contiguous rows for the broadcasts below
        L, D2 = self._dens.terms(XT, scratch)
        log_p, R = _log_sum_exp_columns(L)
        if full:  # scatter about the current means: no cancellation
            D = np.subtract(XT[None], centre[:, :, None], out=scratch.get("D", (k, d, XT.shape[1])))
            weighted = np.multiply(D, R[:, None, :], out=scratch.get("Z", D.shape))
            s.scatter += np.matmul(weighted, D.transpose(0, 2, 1))
        else:
            s.scatter += np.matmul(D2, R[:, :, None])[:, :, 0]
        c = R.sum(axis=1)
        s.counts += c
        s.first += R @ X - c[:, None] * centre
        s.n += X.shape[0]
        s.loglik += float(log_p.sum())
        return s


def _add_sums(a: Sums, b: Sums) -> Sums:
    """The sums of two partitions (new arrays: a partition's result stays as it is)."""
    return Sums(
        a.n + b.n,
        a.loglik + b.loglik,
        a.counts + b.counts,
        a.first + b.first,
        a.scatter + b.scatter,
    )


@dataclass
class EMOutcome:
    mix: Mixture
    loglik: float  # total log-likelihood at mix
    iterations: int
    converged: bool
    history: list[float]  # mean log-likelihood per row before each M step, then at the end
    reseeded: int  # components that emptied and were re-seeded
    counts: np.ndarray  # expected rows per component at mix


def em(
    blocks: Iterable[np.ndarray],
    mix: Mixture,
    reg: np.ndarray,
    max_iter: int,
    tol: float,
    min_count: float = 0.0,
    on_iteration: Callable[[int, float], None] | None = None,
    accelerate: bool = False,
    monotone: bool = True,
) -> EMOutcome:
    """Iterate until the mean log-likelihood per row changes by less than tol.

    accelerate: each iteration takes two EM steps and extrapolates along them (SQUAREM,
    Varadhan and Roland 2008), keeping the extrapolation only when its likelihood beats one
    plain step, so the likelihood still never decreases; EM's linear convergence on
    overlapping components (hundreds of plain steps) becomes a few dozen iterations.

    monotone: stop where a step would lower the log-likelihood (beyond rounding): with the
    regularisation added to the covariances, EM is not an exact ascent method near a
    component that the regularisation holds.  False runs every step (to compare with other
    implementations step by step).

    A component whose expected count falls below min_count (or empties) is re-seeded by
    splitting the largest component, at most MAX_RESEEDS times a run, and counted in
    `reseeded`; the likelihood may drop at a re-seed, so convergence is judged only on
    iterations without one.  The caller rejects an outcome still below min_count.
    """
    history: list[float] = []
    reseeded = 0
    converged = False
    iterations = 0
    s = one_pass(blocks, mix)
    for iterations in range(1, max_iter + 1):
        history.append(s.loglik / s.n)
        new = m_step(mix, s, reg)
        small = np.flatnonzero(s.counts < max(min_count, 1e-8 * s.n))
        if reseeded + len(small) > MAX_RESEEDS:
            small = small[:0]
        if len(small):
            new = _reseed(new, small)
            reseeded += len(small)
        new_s = one_pass(blocks, new)
        if accelerate and not len(small):
            new, new_s = _squarem(blocks, mix, new, new_s, reg)
        if monotone and not len(small) and new_s.loglik < s.loglik - ROUNDING * s.n:
            # The regularised step no longer climbs: its fixed point is here (EM with reg
            # added to the covariances is not an exact ascent method). Keep the better point.
            converged = True
            break
        mix, s = new, new_s
        if on_iteration is not None:
            on_iteration(iterations, s.loglik / s.n)
        if not len(small) and abs(s.loglik / s.n - history[-1]) < tol:
            converged = True
            break
    if accelerate:  # end on a plain EM step (an M step's output), unless it loses likelihood
        last = m_step(mix, s, reg)
        last_s = one_pass(blocks, last)
        if last_s.loglik >= s.loglik - ROUNDING * s.n:
            mix, s = last, last_s
    history.append(s.loglik / s.n)
    return EMOutcome(mix, s.loglik, iterations, converged, history, reseeded, s.counts)


def _squarem(blocks, mix0: Mixture, mix1: Mixture, s1: Sums, reg: np.ndarray):
    """The SQUAREM step from mix0 through mix1 = EM(mix0); falls back to EM(mix1)."""
    mix2 = m_step(mix1, s1, reg)
    fields = ("weights", "means", "covariances")
    r = [getattr(mix1, f) - getattr(mix0, f) for f in fields]
    v = [getattr(mix2, f) - 2.0 * getattr(mix1, f) + getattr(mix0, f) for f in fields]
    r_norm = math.sqrt(sum(float((a * a).sum()) for a in r))
    v_norm = math.sqrt(sum(float((a * a).sum()) for a in v))
    if v_norm > 0.0 and r_norm > 0.0:
        alpha = min(-r_norm / v_norm, -1.0)  # -1 would give mix2 itself
        weights, means, cov = (
            getattr(mix0, f) - 2.0 * alpha * a + alpha * alpha * b for f, a, b in zip(fields, r, v)
        )
        valid = np.all(weights > 0) and (
            mix0.covariance_type in ("full", "tied") or np.all(cov > 0)
        )
        if valid:
            candidate = Mixture(mix0.covariance_type, weights / weights.sum(), means, cov)
            try:
                sc = one_pass(blocks, candidate)
            except np.linalg.LinAlgError:  # an extrapolated covariance is not definite
                sc = None
            # better than one plain step, which is better than mix0: still monotone
            if sc is not None and math.isfinite(sc.loglik) and sc.loglik >= s1.loglik:
                return candidate, sc
    return mix2, one_pass(blocks, mix2)


def _reseed(mix: Mixture, small: np.ndarray) -> Mixture:
    """Restart emptied components by splitting the largest one along its main axis."""
    weights, means = mix.weights.copy(), mix.means.copy()
    cov = mix.covariances.copy()
    full = mix.full_covariances()
    for j in small:
        big = int(np.argmax(weights))
        vals, vecs = np.linalg.eigh(full[big])
        step = vecs[:, -1] * math.sqrt(max(vals[-1], 0.0))
        means[j], means[big] = means[big] + step, means[big] - step
        weights[j] = weights[big] = weights[big] / 2.0
        if mix.covariance_type != "tied":
            cov[j] = cov[big]
    return replace(mix, weights=weights / weights.sum(), means=means, covariances=cov)
