"""Least squares from the R factor of [A | b]: aliasing, solution, diag((A'A)^-1), refinement.

Shared by normal-eq (A = [1 X], b = y) and newton's final step (A = sqrt(W) [1 X], b =
sqrt(W) z, the weighted least-squares problem whose solution is the GLM estimate), so a
Gaussian GLM and normal-eq agree to the last digits.  R comes from a Householder QR,
accumulated block by block (TSQR) when the rows are streamed; columns are scaled by powers of
two (exact) before solving; in memory the solution and diag((A'A)^-1) are refined with
Bjorck's augmented-system iteration, residuals in about twice float64 precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlfit.errors import FitError
from mlfit.numerics import accurate_residual, accurate_rmatvec, back_substitute, power_of_two_scale

EPS = np.finfo(float).eps
#: Up to this many coefficients the refinement's triangular solves are numpy loops.
SMALL_K = 64


def qr_r(M: np.ndarray) -> np.ndarray:
    """R of a Householder QR (LAPACK geqrf through numpy; M Fortran-ordered avoids a copy)."""
    return np.linalg.qr(M, mode="r")


#: Bytes of rows factorised at a time: blocks that stay in L2 cache factor 2-3x faster than
#: one big QR (at 200,000 x 51: 130 against 249 ms with 4 MiB blocks, measured).
BLOCK_BYTES = 512 << 10


def append_rows(R: np.ndarray | None, n: int, width: int, fill) -> np.ndarray | None:
    """R of [R; M] for n new rows M of `width` columns (TSQR), factorised in cache-sized
    blocks; fill(start, stop, out) writes rows start..stop of M into out, so that M itself
    (a weighted or augmented copy of the data) is never built whole."""
    step = max(width, BLOCK_BYTES // (8 * width))
    for start in range(0, n, step):
        stop = min(n, start + step)
        top = 0 if R is None else R.shape[0]
        M = np.empty((top + stop - start, width), order="F")  # LAPACK's layout: no copy
        if top:
            M[:top] = R
        fill(start, stop, M[top:])
        R = qr_r(M)
    return R


def aliased_columns(R: np.ndarray, tol: float) -> np.ndarray:
    """Columns nearly in the span of the columns before them (R's lm drops these as NA)."""
    diag = np.abs(np.diag(R))
    norms = np.sqrt(np.einsum("ij,ij->j", R, R))
    return (diag <= tol * norms) | (norms == 0)


def aliased_design_columns(X: np.ndarray, intercept: bool, rank_tol: float = 1e-11) -> np.ndarray:
    """Columns of [1 X] in the span of the columns before them (mask over [1 X]), as
    normal-eq and R find them, for models that do not factor the design themselves.

    A cheap screen first: the Cholesky pivots of the scaled Gram matrix (one pass); only when
    one is small (relative 1e-9: a near-dependence) is the design factorised by QR to decide
    with R's tolerance on |R_jj|.
    """
    n, p = X.shape
    k = p + (1 if intercept else 0)
    G = np.empty((k, k))
    G[-p:, -p:] = X.T @ X
    if intercept:
        sums = X.sum(axis=0)
        G[0, 0], G[0, 1:], G[1:, 0] = n, sums, sums
    d = np.sqrt(np.diag(G))
    if np.all(d > 0):
        try:
            pivots = np.diag(np.linalg.cholesky(G / np.outer(d, d)))
            if np.min(pivots) ** 2 > 1e-9:
                return np.zeros(k, dtype=bool)
        except np.linalg.LinAlgError:
            pass

    def fill(start, stop, out):
        out[:, : k - p] = 1.0  # the intercept column, when there is one
        out[:, k - p :] = X[start:stop]

    return aliased_columns(np.triu(append_rows(None, n, k, fill)[:k]), rank_tol)


def aliased_warning(labels: list[str], aliased: np.ndarray) -> str:
    listed = ", ".join(f"'{labels[j]}'" for j in np.flatnonzero(aliased))
    return (
        f"Aliased (constant, duplicated or collinear) column(s) {listed}: each is a linear "
        "combination of the columns before it, so it gets no estimate and counts as 0 in "
        "predictions. Drop it to silence this."
    )


@dataclass
class LeastSquares:
    """The solution on the estimable columns `keep` of A (the others are `aliased`)."""

    coef_s: np.ndarray  # (k,) for the columns keep, scaled: coef = coef_s / scale
    diag_s: np.ndarray  # (k,) diag((A'A)^-1) = diag_s / scale^2, kept apart (no overflow)
    Rinv: np.ndarray  # (k, k) inverse of the scaled R: (A'A)^-1 = S^-1 Rinv Rinv' S^-1
    scale: np.ndarray  # (k,) powers of two the columns were divided by (S); callers may
    # fold in exact powers of two of their own (normal-eq's extreme columns)
    rss: float
    keep: np.ndarray
    aliased: np.ndarray  # (p,) bool
    cond: float  # condition number of the column-scaled A
    refined: bool

    @property
    def coef(self) -> np.ndarray:
        return self.coef_s / self.scale

    def unscaled_cov(self) -> np.ndarray:
        """(A'A)^-1 of the estimable columns (k x k), for leverages."""
        unscaled = self.Rinv / self.scale[:, None]
        with np.errstate(over="ignore"):  # an extreme column's variance may not fit a float64
            return unscaled @ unscaled.T


def solve_r(
    R_aug: np.ndarray,
    rank_tol: float,
    penalty: np.ndarray | None = None,
    in_memory: tuple | None = None,
) -> LeastSquares:
    """Solve from R of [A | b] (any number of rows >= 1; upper triangle used).

    penalty: rows appended to [A | b] after aliasing (ridge: none is aliased then).
    in_memory: (A, A_lo, b) to refine with, A_lo the low parts of A's products or None.
    """
    p = R_aug.shape[1] - 1
    R_aug = np.triu(R_aug[: p + 1]) if R_aug.shape[0] >= p + 1 else R_aug
    aliased = aliased_columns(R_aug[:, :p], rank_tol)
    if penalty is not None:  # ridge: the penalty rows make every column estimable
        aliased[:] = False
    keep = np.flatnonzero(~aliased)
    R_k = qr_r(np.hstack([R_aug[:, keep], R_aug[:, [p]]]))  # re-triangularise without aliased
    if penalty is not None:
        R_k = qr_r(np.vstack([R_k, penalty]))
    k = len(keep)
    R, z = R_k[:k, :k], R_k[:k, k]
    rss = float(R_k[k, k] ** 2) if R_k.shape[0] > k else 0.0
    scale = power_of_two_scale(R)
    Rs = R / scale  # R of the scaled design; exact division by powers of two
    sv = np.linalg.svd(Rs, compute_uv=False)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    if not np.all(np.isfinite(Rs)) or sv[-1] == 0:
        raise FitError("The design matrix is singular. Remove constant or duplicated columns.")
    coef_s = back_substitute(Rs, z)
    Rinv = back_substitute(Rs, np.eye(k))
    diag_s = np.einsum("ij,ij->i", Rinv, Rinv)  # diag of (A'A)^-1, scaled, from R^-1
    refined = False
    if in_memory is not None:
        A, A_lo, b = in_memory
        As = A[:, keep] / scale
        As_lo = None if A_lo is None else A_lo[:, keep] / scale
        coef_s, resid, diag_s = _refine(As, As_lo, b, coef_s, diag_s)
        rss = math.fsum(resid * resid)
        refined = True
    return LeastSquares(coef_s, diag_s, Rinv, scale, rss, keep, aliased, cond, refined)


def _triangular_solver(k: int):
    """scipy's solve_triangular for many columns; below SMALL_K numpy loops, which cost less
    than importing scipy.linalg (0.1 s, a fifth of a small fit's run)."""
    if k > SMALL_K:
        from scipy.linalg import solve_triangular

        return solve_triangular

    def solve(R, b, trans=0):
        if trans == "T":  # R' x = b: reversing rows and columns makes R' upper triangular
            return back_substitute(R.T[::-1, ::-1], np.asarray(b)[::-1])[::-1]
        return back_substitute(R, b)

    return solve


def _refine(A, A_lo, y, coef, diag, max_iter: int = 30):
    """Bjorck's iterative refinement of the augmented system r + A x = b, A'r = c.

    Residuals are computed in about twice float64 precision, so each step gains roughly
    -log10(cond * eps) digits until x is correct to working precision.  Also refines
    diag((A'A)^-1) column by column (b = 0, c = e_j gives x = -(A'A)^-1 e_j).
    """
    Q, R = np.linalg.qr(A)
    k = A.shape[1]
    solve_triangular = _triangular_solver(k)

    def correction(f, g):
        h = solve_triangular(R, g, trans="T")
        d = Q.T @ f - h
        return f - Q @ d, solve_triangular(R, d)

    def iterate(b, c, x):
        r = (b - A @ x) if b is not None else -(A @ x)
        best = math.inf
        for _ in range(max_iter):
            f = accurate_residual(A, A_lo, x, *([b] if b is not None else []), -r)
            g = -accurate_rmatvec(A, A_lo, r) if c is None else c - accurate_rmatvec(A, A_lo, r)
            dr, dx = correction(f, g)
            x = x + dx
            r = r + dr
            size = np.max(np.abs(dx)) / max(np.max(np.abs(x)), np.finfo(float).tiny)
            if size <= EPS or size >= best:
                break
            best = size
        return x, r

    x, r = iterate(y, None, coef)
    # diag((A'A)^-1): start from the QR estimate -(A'A)^-1 e_j and refine each column.
    Rinv = solve_triangular(R, np.eye(k))
    new_diag = np.empty(k)
    for j in range(k):
        e = np.zeros(k)
        e[j] = 1.0
        z0 = -(Rinv @ Rinv[j])
        z, _ = iterate(None, e, z0)
        new_diag[j] = -z[j]
    return x, r, new_diag
