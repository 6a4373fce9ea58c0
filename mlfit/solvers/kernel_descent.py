"""The seeds' gradient descent on beta for kernel ridge regression (for teaching).

Gradient descent on J(theta) = 1/2 ||y - Phi theta||^2 + lambda/2 ||theta||^2 from theta = 0
keeps theta = Phi' beta, and its step theta -= a (Phi'(Phi theta - y) + lambda theta) is, in
beta, the seeds' update beta += a (y - (K + lambda I) beta): no feature map is ever formed.
It converges when a < 2 / (largest eigenvalue of K + lambda I), at a rate set by the
condition number of K + lambda I, to the Cholesky solution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlfit.contract import ProgressFn, Step, no_progress
from mlfit.errors import FitError

#: Power iterations for the largest eigenvalue of K (stops earlier at 1e-6 relative change).
POWER_ITERATIONS = 200


@dataclass
class DescentOutcome:
    beta: np.ndarray
    fitted: np.ndarray  # K beta
    iterations: int
    converged: bool
    residual: float  # ||y - (K + lambda I) beta|| / ||y||
    step: float
    history: list[float] = field(default_factory=list)  # J / n per iteration
    warnings: list[str] = field(default_factory=list)

    def convergence(self) -> dict:
        return {
            "iterations": self.iterations,
            "converged": self.converged,
            "final_loss": self.history[-1],
            "residual": self.residual,
            "step": self.step,
            "history": self.history,
        }


def largest_eigenvalue(K: np.ndarray) -> float:
    """The largest eigenvalue of a PSD matrix by power iteration from the ones vector
    (deterministic). K: (n, n)."""
    v = np.full(len(K), 1.0 / math.sqrt(len(K)))
    value = 0.0
    for _ in range(POWER_ITERATIONS):
        w = K @ v
        new = float(v @ w)
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            return 0.0
        v = w / norm
        if abs(new - value) <= 1e-6 * abs(new):
            return max(new, norm)
        value = new
    return max(value, norm)


def descend(
    K: np.ndarray, y: np.ndarray, config, tol: float, on_progress: ProgressFn = no_progress
):
    """K: (n, n) Gram matrix; y: (n,) target; config: lr (times 1 / lambda_max), l2 and
    max_iter; tol: on the relative residual of (K + lambda I) beta = y."""
    n = len(y)
    step = config.lr / (largest_eigenvalue(K) + config.l2)
    beta = np.zeros(n)
    y_norm = float(np.linalg.norm(y))
    Kb = np.zeros(n)
    history, residual = [], 1.0
    for it in range(config.max_iter + 1):
        r = y - Kb - config.l2 * beta
        misfit = y - Kb
        loss = 0.5 * (float(misfit @ misfit) + config.l2 * float(beta @ Kb)) / n
        if not (math.isfinite(loss) and np.all(np.isfinite(beta))):
            raise FitError(
                f"The loss became {loss} at iteration {it}: gradient descent diverged. "
                f"Use a smaller --lr (now {config.lr:g}; it must be below 2)."
            )
        history.append(loss)
        residual = float(np.linalg.norm(r)) / y_norm if y_norm > 0 else 0.0
        if it:
            on_progress(Step(it, config.max_iter, loss))
        if residual <= tol:
            return DescentOutcome(beta, Kb, it, True, residual, step, history)
        if it == config.max_iter:
            break
        beta = beta + step * r
        Kb = K @ beta
    warning = (
        f"Gradient descent on beta did not converge in {config.max_iter} iterations "
        f"(relative residual {residual:.3g}). Raise --max-iter, raise --l2 (better "
        "conditioned) or use --method cholesky."
    )
    return DescentOutcome(beta, Kb, config.max_iter, False, residual, step, history, [warning])
