"""Maximising a concave log-likelihood: Newton-Raphson with step-halving, and L-BFGS.

Shared by newton (GLMs) and logreg.  Newton solves with a Cholesky factor of the
Jacobi-scaled information matrix (never an inverse); the same factor gives the standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mlfit.contract import ProgressFn, Step, no_progress
from mlfit.errors import FitError

#: objective(beta) -> (log-likelihood, gradient, information matrix)
Objective = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]]

MAX_HALVINGS = 40


@dataclass
class Optimum:
    beta: np.ndarray
    loglik: float
    gradient: np.ndarray
    info: np.ndarray | None
    iterations: int
    converged: bool
    history: list[float] = field(default_factory=list)  # -2 * loglik per iteration
    last_change: float = math.nan  # relative change of -2 loglik in the last iteration

    def convergence(self, method: str) -> dict:
        return {
            "iterations": self.iterations,
            "converged": self.converged,
            "final_loss": -self.loglik,
            "gradient_norm": float(np.linalg.norm(self.gradient)),
            "relative_deviance_change": self.last_change,
            "method": method,
            "history": [h / 2.0 for h in self.history],  # -loglik: ends at final_loss
        }


class SingularInformation(FitError):
    """The information (negative Hessian) matrix is not positive definite at column `index`."""

    def __init__(self, index: int):
        super().__init__(f"singular information matrix at parameter {index}")
        self.index = index


def cholesky(info: np.ndarray, rank_tol: float = 1e-10):
    """Cholesky factor of the Jacobi-scaled information: returns (L, d) with info = D L L' D.

    D = diag(d), d = sqrt(diag(info)).  Raises SingularInformation naming the first parameter
    whose pivot vanishes (it is, to rank_tol, a combination of the ones before it).
    """
    d = np.sqrt(np.diag(info))
    if not np.all(d > 0) or not np.all(np.isfinite(d)):
        bad = np.flatnonzero(~(d > 0) | ~np.isfinite(d))
        raise SingularInformation(int(bad[0]))
    S = info / np.outer(d, d)
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        from scipy.linalg.lapack import dpotrf  # only to name the failing column

        L, err = dpotrf(S, lower=1, clean=1)
        raise SingularInformation(err - 1 if err > 0 else int(np.argmin(np.diag(L)))) from None
    pivots = np.diag(L)
    if (
        np.min(pivots) < rank_tol**0.5
    ):  # pivot^2 is the part of a column unexplained by earlier ones
        raise SingularInformation(int(np.argmin(pivots)))
    return L, d


def solve_cholesky(L: np.ndarray, d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """info^-1 g from the factor of cholesky()."""
    u = np.linalg.solve(L, g / d)
    return np.linalg.solve(L.T, u) / d


def inverse_diagonal(L: np.ndarray, d: np.ndarray) -> np.ndarray:
    """diag(info^-1) as squared column norms of L^-1, scaled back."""
    Linv = np.linalg.inv(L)
    return np.einsum("ij,ij->j", Linv, Linv) / d**2


def inverse(L: np.ndarray, d: np.ndarray) -> np.ndarray:
    """info^-1 = D^-1 L^-T L^-1 D^-1 from the factor of cholesky() (for leverage, not solves)."""
    Linv = np.linalg.inv(L)
    return (Linv.T @ Linv) / np.outer(d, d)


def _not_worse(new_ll: float, ll: float) -> bool:
    """new_ll is finite and not below ll by more than the rounding of a sum like ll."""
    return math.isfinite(new_ll) and new_ll >= ll - 4 * np.finfo(float).eps * abs(ll)


def newton(
    objective: Objective,
    beta0: np.ndarray,
    max_iter: int,
    tol: float,
    on_progress: ProgressFn = no_progress,
    saturated_loglik: float = 0.0,
) -> Optimum:
    """Newton-Raphson on a concave log-likelihood, halving any step that does not improve it.

    Converged when the Newton decrement g' info^-1 g (the gain the next step predicts, on the
    deviance scale) is at most tol * (|deviance| + 0.1), with deviance = 2 * (saturated_loglik -
    loglik) (not |2 loglik|, which carries constants such as log y! that dwarf it), or when it is
    tiny and stopped
    shrinking (rounding in the gradient sets a floor).  That last small step is still taken
    (not counted as an iteration), which leaves the estimates within about tol of the optimum,
    relatively.  A Gaussian model thus reports 1 iteration.
    """
    beta = np.array(beta0, dtype=float)
    ll, g, info = objective(beta)
    if not math.isfinite(ll):
        raise FitError("The log-likelihood is not finite at the starting values.")
    history = [-2.0 * ll]
    change = math.nan
    previous = math.inf
    for it in range(max_iter + 1):
        L, d = cholesky(info)
        step = solve_cholesky(L, d, g)
        decrement = float(g @ step)
        scale = abs(2.0 * (saturated_loglik - ll)) + 0.1
        # Converged at the tolerance, or at the rounding floor: tiny and no longer shrinking
        # (Newton squares it each step until rounding in the gradient stops it).
        if decrement <= tol * scale or (
            decrement <= 1e3 * tol * scale and decrement > 0.25 * previous
        ):
            polished = objective(beta + step)
            # The gain is below the rounding of the log-likelihood here (a sum of terms far
            # larger than it), so judge the step by the gradient it leaves, as Newton squares it.
            if _not_worse(polished[0], ll) or (
                math.isfinite(polished[0]) and np.linalg.norm(polished[1]) <= np.linalg.norm(g)
            ):
                beta, (ll, g, info) = beta + step, polished
            return Optimum(beta, ll, g, info, it, True, history, change)
        if it == max_iter:
            break
        t = 1.0
        for _ in range(MAX_HALVINGS):
            new = beta + t * step
            new_ll, new_g, new_info = objective(new)
            if _not_worse(new_ll, ll):
                break
            t *= 0.5
        else:
            raise FitError(
                "Newton's method could not improve the log-likelihood even with a step "
                f"halved {MAX_HALVINGS} times (iteration {it + 1}); the problem is badly "
                "scaled or nearly singular. Standardize or drop features."
            )
        change = abs(new_ll - ll) / (abs(new_ll) + 0.05)
        previous = decrement
        beta, ll, g, info = new, new_ll, new_g, new_info
        history.append(-2.0 * ll)
        on_progress(Step(it + 1, max_iter, -ll))
    return Optimum(beta, ll, g, info, max_iter, False, history, change)


def lbfgs(
    loss_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    beta0: np.ndarray,
    max_iter: int,
    tol: float,
    on_progress: ProgressFn = no_progress,
) -> Optimum:
    """Minimise a convex loss with scipy's L-BFGS-B (for many parameters, where Newton's
    p x p information matrix is too costly). Returns an Optimum without information matrix.
    """
    from scipy.optimize import minimize

    history: list[float] = []

    def fun(b):
        f, g = loss_grad(b)
        return f, g

    def callback(intermediate_result):  # scipy passes an OptimizeResult to this name
        history.append(2.0 * float(intermediate_result.fun))
        on_progress(Step(len(history), max_iter, float(intermediate_result.fun)))

    res = minimize(
        fun,
        beta0,
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-10, "maxcor": 20},
    )
    f, g = loss_grad(res.x)
    return Optimum(res.x, -f, -g, None, int(res.nit), bool(res.success), history)
