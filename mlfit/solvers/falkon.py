"""Kernel ridge regression on Nystrom centres by preconditioned conjugate gradients: Falkon
(Rudi, Carratino and Rosasco, 2017), in memory O(n + M^2) beyond the data.

With M centres C (rows sampled uniformly), f(z) = sum_j alpha_j K(z, c_j) and alpha solves

    H alpha = K_nM' y,    H = K_nM' K_nM + lambda K_MM,

the normal equations of ||y - K_nM alpha||^2 + lambda alpha' K_MM alpha, which is exactly
KernelRidge's objective restricted to functions spanned by the centres.  Since the centres
are a uniform sample of the rows, K_nM' K_nM ~ (n / M) K_MM^2, so with K_MM = T'T (Cholesky)
and A'A = (n / M) T T' + lambda I, H ~ T'A'A T and B = T^-1 A^-1 makes B'HB ~ I: conjugate
gradients on B'HB beta = B'K_nM'y converge in a few tens of iterations, each one pass of
K_nM products over row blocks, so K_nM is never held unless it is small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlfit.contract import ProgressFn, Step, no_progress
from mlfit.errors import FitError
from mlfit.solvers.kernels import Kernel, invalid_kernel_error

#: A centre is dropped when it adds less than this (relative to the largest K(c, c)) to the
#: squared norm of the span of the others in the kernel's feature space.
RANK_TOL = 1e-12
#: K_nM is kept in memory (computed once) when it takes at most this many bytes.
KNM_CACHE_BYTES = 512 * 2**20
#: Values per row block of K_nM: 2^21 doubles = 16 MiB.
BLOCK_VALUES = 2**21


@dataclass
class FalkonOutcome:
    centres: np.ndarray  # (M, p) the centres kept (independent ones, in pivot order)
    alpha: np.ndarray  # (M,) coefficients of the centres
    fitted: np.ndarray  # (n,) K_nM alpha
    iterations: int
    converged: bool
    residual: float  # ||B'(K_nM'y - H alpha)|| / ||B'K_nM'y||: the preconditioned residual
    history: list[float] = field(default_factory=list)  # half the penalised MSE per iteration


class _Products:
    """K_nM v and K_nM' u over row blocks (cached when K_nM is small)."""

    def __init__(self, kernel: Kernel, X: np.ndarray, C: np.ndarray):
        self.kernel, self.X, self.C = kernel, X, C
        self.rows = max(64, BLOCK_VALUES // max(len(C), 1))
        small = X.shape[0] * len(C) * 8 <= KNM_CACHE_BYTES
        self.cache = [self._block(s) for s in self._starts()] if small else None

    def _starts(self):
        return range(0, self.X.shape[0], self.rows)

    def _block(self, start: int) -> np.ndarray:
        return self.kernel(self.X[start : start + self.rows], self.C)

    def _blocks(self):
        if self.cache is not None:
            yield from zip(self._starts(), self.cache)
        else:
            for start in self._starts():
                yield start, self._block(start)

    def rmatvec(self, u: np.ndarray) -> np.ndarray:
        """K_nM' u: (n,) -> (M,)."""
        out = np.zeros(len(self.C))
        for start, Kb in self._blocks():
            out += Kb.T @ u[start : start + self.rows]
        return out

    def normal(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K_nM v, K_nM' K_nM v) in one pass: (M,) -> ((n,), (M,))."""
        t = np.empty(self.X.shape[0])
        out = np.zeros(len(self.C))
        for start, Kb in self._blocks():
            tb = Kb @ v
            t[start : start + len(tb)] = tb
            out += Kb.T @ tb
        return t, out


def solve(
    kernel: Kernel,
    X: np.ndarray,
    y: np.ndarray,
    C: np.ndarray,
    l2: float,
    tol: float,
    max_iter: int,
    on_progress: ProgressFn = no_progress,
) -> FalkonOutcome:
    """X: (n, p) rows; y: (n,) target; C: (M, p) centres; l2: KernelRidge's alpha."""
    from scipy.linalg import LinAlgError, cholesky, solve_triangular

    n = X.shape[0]
    C, Kmm, T = independent_centres(kernel, C)  # K_MM = T'T
    M = len(C)
    try:
        A = cholesky((n / M) * (T @ T.T) + l2 * np.eye(M), lower=False, check_finite=False)
    except LinAlgError:
        raise invalid_kernel_error(kernel) from None

    def B(u):  # alpha = T^-1 A^-1 u
        return solve_triangular(T, solve_triangular(A, u, check_finite=False), check_finite=False)

    def Bt(u):  # B' u = A^-T T^-T u
        inner = solve_triangular(T, u, trans="T", check_finite=False)
        return solve_triangular(A, inner, trans="T", check_finite=False)

    products = _Products(kernel, X, C)
    yy = float(y @ y)
    b = Bt(products.rmatvec(y))
    beta, r = np.zeros(M), b.copy()
    fitted = np.zeros(n)
    rs = float(r @ r)
    b_norm = math.sqrt(rs)
    history = [0.5 * yy / n]
    if b_norm == 0.0:
        return FalkonOutcome(C, np.zeros(M), fitted, 0, True, 0.0, history)
    p = r.copy()
    residual, converged, k = 1.0, False, 0
    for k in range(1, max_iter + 1):
        alpha_p = B(p)
        t, KtK = products.normal(alpha_p)
        Wp = Bt(KtK + l2 * (Kmm @ alpha_p))
        curvature = float(p @ Wp)
        if not (curvature > 0 and math.isfinite(curvature)):
            raise FitError(
                "The conjugate-gradient solve broke down (the system is not positive "
                "definite in floating point). Raise --l2 or use fewer --centers."
            )
        step = rs / curvature
        beta += step * p
        fitted += step * t
        r -= step * Wp
        rs_new = float(r @ r)
        residual = math.sqrt(rs_new) / b_norm
        alpha = B(beta)
        resid = y - fitted
        loss = 0.5 * (float(resid @ resid) + l2 * float(alpha @ (Kmm @ alpha))) / n
        history.append(loss)
        on_progress(Step(k, max_iter, loss))
        if residual <= tol:
            converged = True
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return FalkonOutcome(C, B(beta), fitted, k, converged, residual, history)


def independent_centres(kernel: Kernel, C: np.ndarray):
    """The centres whose kernel columns are numerically independent (in pivot order), their
    K_MM and its upper Cholesky factor T (K_MM = T'T).

    K_MM is often numerically singular (close centres; a poly kernel's Gram matrix has rank
    at most the dimension of its feature space), which makes its Cholesky factor, and so the
    preconditioner, meaningless.  A pivoted Cholesky keeps the centres that each add more
    than RANK_TOL (relative) to the span of those before: the others' K(., c) lie within
    that tolerance of the span, so dropping them changes the solution by no more.
    """
    Kmm = kernel(C, C)
    Kmm = 0.5 * (Kmm + Kmm.T)
    T, piv, rank = _pivoted_factor(Kmm)
    if rank == 0:
        raise FitError(
            f"The kernel {kernel.describe()} is zero on every centre: nothing to fit. "
            "Check --gamma and --coef0."
        )
    keep = piv[:rank]
    return C[keep], Kmm[np.ix_(keep, keep)], T


def _pivoted_factor(K: np.ndarray):
    """(upper factor, 0-based pivots, rank) of LAPACK's pivoted Cholesky of K."""
    from scipy.linalg.lapack import dpstrf

    tol = RANK_TOL * max(float(np.max(np.diag(K))), np.finfo(float).tiny)
    factor, piv, rank, info = dpstrf(K, tol=tol, lower=0)
    if info < 0:
        raise FitError(f"LAPACK dpstrf failed (argument {-info}): this is a bug in mlfit.")
    return np.triu(factor[:rank, :rank]), piv - 1, int(rank)


def sample_centres(n: int, M: int, seed: int) -> np.ndarray:
    """Sorted indices of M of n rows, uniformly without replacement (seeded)."""
    return np.sort(np.random.default_rng(seed).choice(n, size=M, replace=False))
