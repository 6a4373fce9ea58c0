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
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mlfit.contract import ProgressFn, Step, no_progress
from mlfit.errors import FitError
from mlfit.solvers.kernels import Kernel, invalid_kernel_error

#: A centre is dropped when it adds less than this (relative to the largest K(c, c)) to the
#: squared norm of the span of the others in the kernel's feature space.
RANK_TOL = 1e-12
#: The preconditioner estimates K_nM'K_nM on this many times M rows instead of Falkon's M
#: centres: at 200,000 x 10 with M = 2,000, 11 iterations instead of 60 to a 1e-4 residual,
#: for s M^2 operations once (about a pass and a half over K_nM).
SKETCH_FACTOR = 10
#: Values per block of the sketch's kernel (32 MiB).
SKETCH_BLOCK_VALUES = 2**22
#: K_nM is kept in memory (computed once) when it takes at most this many bytes.
KNM_CACHE_BYTES = 512 * 2**20
#: Values per row block of K_nM: 2^17 doubles = 1 MiB, so a block stays in cache through
#: its product, exponential and two matrix-vector products (3 x faster than 16 MiB blocks).
BLOCK_VALUES = 2**17
#: Blocks per task of the thread pool; the tasks' sums are added in row order, so the result
#: does not depend on the scheduling.
TASK_BLOCKS = 16
#: Threads computing blocks of K_nM (numpy releases the GIL in exp and BLAS, which runs on one
#: thread); 1 gives the same result.  (Up to 1.4 x on this 2-core machine; nothing while other
#: work holds the second core.)
THREADS = min(2, os.cpu_count() or 1)
#: rbf blocks are exp(2 gamma x'c) scaled by exp(-gamma ||x||^2) exp(-gamma ||c||^2): one
#: pass over the block instead of five, safe while gamma ||x||^2 stays below this.
FACTOR_MAX_EXPONENT = 300.0


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
    """K_nM v and K_nM' u over row blocks, K_nM = diag(a) E diag(b) (a = b = 1 but for a
    factored rbf kernel); the blocks of E are cached when K_nM is small."""

    def __init__(self, kernel: Kernel, X: np.ndarray, C: np.ndarray):
        n, M = X.shape[0], len(C)
        self.kernel, self.X, self.C, self.n, self.M = kernel, X, C, n, M
        self.rows = max(16, BLOCK_VALUES // max(M, 1))
        starts = list(range(0, n, self.rows))
        step = TASK_BLOCKS
        self.tasks = [starts[i : i + step] for i in range(0, len(starts), step)]
        self.a, self.b = np.ones(n), np.ones(M)
        self.factored = False
        if kernel.name == "rbf":
            x2 = kernel.gamma * np.einsum("ij,ij->i", X, X)
            c2 = kernel.gamma * np.einsum("ij,ij->i", C, C)
            if max(x2.max(initial=0.0), c2.max(initial=0.0)) <= FACTOR_MAX_EXPONENT:
                self.a, self.b, self.factored = np.exp(-x2), np.exp(-c2), True
                self.C2 = (2.0 * kernel.gamma) * C
        self.cache = None
        if n * M * 8 <= KNM_CACHE_BYTES:
            self.cache = {s: self._block(s) for s in starts}

    def _block(self, start: int) -> np.ndarray:
        Xb = self.X[start : start + self.rows]
        if self.cache is not None:
            return self.cache[start]
        if not self.factored:
            return self.kernel(Xb, self.C)
        E = Xb @ self.C2.T
        return np.exp(E, out=E)

    def _map(self, work):
        """work(starts) for every task, in row order (threads when there are several)."""
        if THREADS > 1 and len(self.tasks) > 1:
            with ThreadPoolExecutor(THREADS) as pool:
                return list(pool.map(work, self.tasks))
        return [work(task) for task in self.tasks]

    def rmatvec(self, u: np.ndarray) -> np.ndarray:
        """K_nM' u: (n,) -> (M,)."""
        au = self.a * u

        def work(starts):
            out = np.zeros(self.M)
            for s in starts:
                out += self._block(s).T @ au[s : s + self.rows]
            return out

        return self.b * _ordered_sum(self._map(work), self.M)

    def normal(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K_nM v, K_nM' K_nM v) in one pass: (M,) -> ((n,), (M,))."""
        t = np.empty(self.n)
        bv = self.b * v

        def work(starts):
            out = np.zeros(self.M)
            for s in starts:
                E = self._block(s)
                a = self.a[s : s + self.rows]
                tb = a * (E @ bv)
                t[s : s + len(tb)] = tb
                out += E.T @ (a * tb)
            return out

        return t, self.b * _ordered_sum(self._map(work), self.M)


def _ordered_sum(parts: list[np.ndarray], M: int) -> np.ndarray:
    out = np.zeros(M)
    for part in parts:
        out += part
    return out


def solve(
    kernel: Kernel,
    X: np.ndarray,
    y: np.ndarray,
    C: np.ndarray,
    l2: float,
    tol: float,
    max_iter: int,
    on_progress: ProgressFn = no_progress,
    sketch: np.ndarray | None = None,
) -> FalkonOutcome:
    """X: (n, p) rows; y: (n,) target; C: (M, p) centres; l2: KernelRidge's alpha.

    sketch: (s, p) rows on which K_nM'K_nM is estimated for the preconditioner, as
    (n / s) K_sM'K_sM; None: the centres themselves, (n / M) K_MM^2, which is Falkon's."""
    from scipy.linalg import LinAlgError, cholesky, solve_triangular

    n = X.shape[0]
    C, Kmm, T = independent_centres(kernel, C)  # K_MM = T'T
    M = len(C)
    if sketch is None:
        inner = (n / M) * (T @ T.T)
    else:  # T^-T K_sM' K_sM T^-1 (n / s), which is (n / M) T T' when the rows are the centres
        inner = np.zeros((M, M))
        rows = max(1, SKETCH_BLOCK_VALUES // M)
        for start in range(0, len(sketch), rows):  # M x rows blocks: memory O(M^2)
            Kb = kernel(sketch[start : start + rows], C)
            S = solve_triangular(T, Kb.T, trans="T", check_finite=False)
            inner += S @ S.T
        inner *= n / len(sketch)
    try:
        A = cholesky(inner + l2 * np.eye(M), lower=False, check_finite=False)
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
    if not np.all(np.isfinite(Kmm)):
        raise FitError(
            f"The kernel {kernel.describe()} overflows on these rows (values beyond 1e308). "
            "Use a lower --degree or --gamma, or keep --standardize."
        )
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


def sample_rows(n: int, M: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of M centres and of the min(n, SKETCH_FACTOR M) rows (the centres among them)
    on which the preconditioner is estimated, uniformly without replacement (seeded)."""
    order = np.random.default_rng(seed).permutation(n)
    return order[:M], order[: min(n, SKETCH_FACTOR * M)]
