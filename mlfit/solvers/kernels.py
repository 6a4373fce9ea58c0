"""Kernel functions (linear, polynomial, Gaussian) and the seeds' validity test of a Gram matrix.

linear: K(x, z) = x'z.  poly: K(x, z) = (gamma x'z + coef0)^degree, scikit-learn's form; the
seeds' (x'z + c)^d is gamma = 1, coef0 = c (and in general the seeds' kernel with c = coef0 /
gamma, times gamma^degree).  rbf: K(x, z) = exp(-gamma ||x - z||^2), the seeds' Gaussian kernel
exp(-||x - z||^2 / (2 sigma^2)) with gamma = 1 / (2 sigma^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlfit.errors import FitError

KERNELS = ("linear", "poly", "rbf")

#: Rows of the Gram matrix checked for positive semi-definiteness (a principal submatrix of a
#: PSD matrix is PSD, so a negative eigenvalue there proves the kernel invalid).
VALIDITY_SAMPLE = 400
#: An eigenvalue below -VALIDITY_TOL * m * (largest |eigenvalue|) is not rounding error.
VALIDITY_TOL = 1e-10


@dataclass(frozen=True)
class Kernel:
    name: str  # one of KERNELS
    gamma: float = 1.0
    degree: int = 3
    coef0: float = 1.0

    def __call__(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """K(A, B): (a, p), (b, p) -> (a, b), through BLAS products (fast; for fitting)."""
        G = A @ B.T
        if self.name == "linear":
            return G
        if self.name == "poly":
            G *= self.gamma
            G += self.coef0
            return integer_power(G, self.degree)
        G *= -2.0
        G += np.einsum("ij,ij->i", A, A)[:, None]
        G += np.einsum("ij,ij->i", B, B)[None, :]
        np.maximum(G, 0.0, out=G)  # rounding can make a squared distance slightly negative
        G *= -self.gamma
        return np.exp(G, out=G)

    def rowwise(self, Z: np.ndarray, C: np.ndarray) -> np.ndarray:
        """K(Z, C) with each row's values independent of how many rows Z has (summed over
        features elementwise, not by BLAS, whose rounding depends on the block's shape): so
        predictions are identical to the last bit however the input is chunked."""
        out = np.zeros((Z.shape[0], C.shape[0]))
        term = np.empty_like(out)
        for j in range(Z.shape[1]):  # in place: no temporaries of the block's size
            if self.name == "rbf":
                np.subtract(Z[:, j, None], C[None, :, j], out=term)
                np.multiply(term, term, out=term)
            else:
                np.multiply(Z[:, j, None], C[None, :, j], out=term)
            out += term
        if self.name == "linear":
            return out
        if self.name == "poly":
            out *= self.gamma
            out += self.coef0
            return integer_power(out, self.degree)
        out *= -self.gamma
        return np.exp(out, out=out)

    def describe(self) -> str:
        if self.name == "linear":
            return "linear x'z"
        if self.name == "poly":
            sign = "-" if self.coef0 < 0 else "+"
            return f"poly ({self.gamma:g} x'z {sign} {abs(self.coef0):g})^{self.degree}"
        return f"rbf exp(-{self.gamma:g} ||x - z||^2), sigma = {(0.5 / self.gamma) ** 0.5:g}"


#: Values per row block of gram(): 1 MiB, so each block stays in cache through its passes
#: (6 x faster than one pass of each step over a whole 5,000 x 5,000 matrix).
GRAM_BLOCK_VALUES = 2**17


def gram(kernel: Kernel, Z: np.ndarray, upper: bool = False) -> np.ndarray:
    """K(Z, Z), (n, n), in row blocks; upper: only the upper triangle (and the blocks on the
    diagonal) is filled, the rest is zero: all a Cholesky factorisation reads."""
    n = Z.shape[0]
    K = np.zeros((n, n))
    rows = max(16, GRAM_BLOCK_VALUES // max(n, 1))
    for start in range(0, n, rows):
        first = start if upper else 0
        K[start : start + rows, first:] = kernel(Z[start : start + rows], Z[first:])
    return K


def integer_power(G: np.ndarray, d: int) -> np.ndarray:
    """G ** d for a whole d >= 1 by repeated squaring (numpy's power calls pow() per value,
    5 x slower); G may be overwritten."""
    result = None
    while True:
        if d & 1:
            result = G.copy() if result is None else np.multiply(result, G, out=result)
        d >>= 1
        if not d:
            return result
        G = np.multiply(G, G, out=G)


def smallest_eigenvalue_ratio(G: np.ndarray) -> float:
    """The smallest eigenvalue of a symmetric Gram matrix over its largest |eigenvalue|
    (0 for an all-zero matrix). G: (m, m)."""
    w = np.linalg.eigvalsh(0.5 * (G + G.T))
    top = float(np.max(np.abs(w))) if len(w) else 0.0
    return float(w[0]) / top if top > 0 else 0.0


def is_positive_semidefinite(G: np.ndarray) -> bool:
    """The seeds' theorem: K is a valid kernel iff every Gram matrix is PSD. True when G's
    smallest eigenvalue is negative by no more than rounding (relative to its largest)."""
    return smallest_eigenvalue_ratio(G) >= -VALIDITY_TOL * max(len(G), 1)


def check_valid(kernel: Kernel, X: np.ndarray, seed: int = 0) -> str | None:
    """FitError when the Gram matrix of (a seeded sample of) the rows X is not PSD: the
    kernel settings do not define a valid (Mercer) kernel, so kernel ridge has no meaning.
    A warning (else None) when the settings are invalid in general but PSD on these rows."""
    if kernel.name != "poly" or kernel.coef0 >= 0:
        return None  # linear, rbf and poly with coef0 >= 0 are valid for every input
    rows = X
    if len(X) > VALIDITY_SAMPLE:
        rng = np.random.default_rng(seed)
        rows = X[np.sort(rng.choice(len(X), VALIDITY_SAMPLE, replace=False))]
    with np.errstate(over="ignore", invalid="ignore"):
        G = kernel(rows, rows)
    if not np.all(np.isfinite(G)):
        return None  # overflow: the fit reports it
    ratio = smallest_eigenvalue_ratio(G)
    if ratio < -VALIDITY_TOL * max(len(rows), 1):
        raise invalid_kernel_error(kernel, ratio)
    return (
        f"The kernel {kernel.describe()} is not a valid (Mercer) kernel in general "
        "(negative --coef0), though its Gram matrix on these rows is positive semi-definite; "
        "use --coef0 >= 0."
    )


def invalid_kernel_error(kernel: Kernel, ratio: float | None = None) -> FitError:
    found = (
        f" (its Gram matrix on these rows has an eigenvalue {ratio:.3g} times its largest)"
        if ratio is not None
        else " (its Gram matrix plus --l2 is not positive definite)"
    )
    return FitError(
        f"The kernel {kernel.describe()} is not a valid (Mercer) kernel: a Gram matrix must "
        f"be positive semi-definite{found}. Use --coef0 >= 0 for the poly kernel."
    )
