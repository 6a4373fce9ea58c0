"""Kernel ridge regression, the seeds' formulation: h(z) = sum_i beta_i K(x_i, z).

beta solves (K + lambda I) beta = y - mean(y), scikit-learn's KernelRidge(alpha=lambda) on the
centred target (--no-center-target: on y itself, exactly KernelRidge), by Cholesky; or by the
seeds' gradient descent on beta (--method descent); or, above EXACT_MAX_ROWS rows or with
--centers, on Nystrom centres by Falkon's preconditioned conjugate gradients (solvers/falkon).
The linear kernel is solved in the primal, (Z'Z + lambda I) w = Z'y, the same predictions
for any number of rows; its model stores w as a single centre with coefficient 1.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from mlfit.contract import FitResult, ModelData, ProgressFn, no_progress
from mlfit.errors import FitError, UsageError
from mlfit.numerics import column_std
from mlfit.solvers import falkon
from mlfit.solvers.kernel_descent import descend
from mlfit.solvers.kernel_params import Params
from mlfit.solvers.kernels import Kernel, check_valid, gram, invalid_kernel_error

#: Above this many rows the exact n x n Gram matrix (3.2 GB at 20,000) gives way to centres.
EXACT_MAX_ROWS = 20_000
#: Nystrom centres used when there are too many rows for the exact kernel and no --centers.
DEFAULT_CENTERS = 2_000
#: The effective degrees of freedom (a triangular inverse, n^3 / 3) up to this many rows.
DOF_MAX_ROWS = 2_000
#: Default --tol of descent: the relative residual of (K + lambda I) beta = y.
DESCENT_TOL = 1e-8
#: Default --tol of conjugate gradients: the relative residual of the preconditioned system
#: (1e-4 already gives the converged test RMSE to 5 digits at 200,000 rows).
CG_TOL = 1e-5
#: Kernel values per block of predict (rows x centres): 2 MiB, in cache (1.7 x faster than 8).
PREDICT_VALUES = 2**18

__all__ = ["Config", "Params", "fit", "plot_data", "predict"]


@dataclass(frozen=True)
class Config:
    kernel: str = "rbf"
    degree: int = 3
    gamma: float | None = None  # None: 1 / (number of design columns)
    coef0: float = 1.0
    l2: float = 1.0
    method: str = "cholesky"  # cholesky | descent
    centers: int | None = None  # None: exact up to EXACT_MAX_ROWS rows, else DEFAULT_CENTERS
    lr: float = 1.0  # descent step, as a multiple of 1 / (largest eigenvalue of K + lambda I)
    max_iter: int = 5000
    tol: float | None = None  # None: DESCENT_TOL for descent, CG_TOL for conjugate gradients
    seed: int = 0
    standardize: bool = True
    center_target: bool = True


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) design (text columns one-hot, every level kept); data.y: (n,)."""
    start = time.perf_counter()
    X, y = data.X, np.asarray(data.y, dtype=float)
    n, p = X.shape
    if config.l2 <= 0 or not math.isfinite(config.l2):
        raise UsageError("--l2 must be a positive number: K + lambda I needs lambda > 0.")
    mean, scale = _scaling(X, config.standardize)
    Z = (X - mean) / scale
    y_mean = float(np.mean(y)) if config.center_target else 0.0
    t = y - y_mean
    gamma = config.gamma if config.gamma is not None else 1.0 / max(p, 1)
    kernel = Kernel(config.kernel, gamma, config.degree, config.coef0)
    warnings = []
    note = check_valid(kernel, Z, config.seed)
    if note:
        warnings.append(note)
    M = _centres(n, config)
    info = {"kernel": kernel.name, **_kernel_info(kernel), "l2": config.l2}
    if M is not None:
        centres, beta, fitted, convergence = _nystrom(
            kernel, Z, t, M, config, on_progress, info, warnings
        )
        dof = None
    elif kernel.name == "linear" and config.method == "cholesky":
        centres, beta, fitted, dof = _primal(Z, t, config.l2)
        info["method"], convergence = "cholesky (primal)", None
    else:
        centres, beta, fitted, dof, convergence = _exact(
            kernel, Z, t, config, on_progress, info, warnings
        )
    info.update(standardize=config.standardize, center_target=config.center_target)
    info["fit_seconds"] = time.perf_counter() - start
    params = Params(kernel, mean, scale, y_mean, centres, beta)
    resid = t - fitted
    mse = float(resid @ resid) / n
    centred = y - y.mean()
    tss = float(centred @ centred)
    metrics = {
        "mse": mse,
        "rmse": mse**0.5,
        "r_squared": 1.0 - mse * n / tss if tss > 0 else None,
        "n": n,
    }
    if dof is not None:
        metrics["effective_dof"] = dof
    return FitResult(
        params,
        n_parameters=len(beta),
        n_obs=n,
        metrics=metrics,
        convergence=convergence,
        warnings=warnings,
        info=info,
        internals={"fitted": fitted + y_mean},
    )


def _nystrom(kernel, Z, t, M, config, on_progress, info, warnings):
    """Falkon on M centres: (centres, alpha, fitted, convergence); fills info and warnings."""
    n = len(t)
    if config.method == "descent":
        why = "--centers" if config.centers else f"more than {EXACT_MAX_ROWS:,} rows"
        raise UsageError(
            f"--method descent needs the exact kernel, and this fit uses Nystrom centres "
            f"({why}: {n:,}): use --method cholesky, or fewer rows without --centers."
        )
    centres, sketch = falkon.sample_rows(n, M, config.seed)
    tol = CG_TOL if config.tol is None else config.tol
    with np.errstate(over="ignore", invalid="ignore"):
        out = falkon.solve(
            kernel, Z, t, Z[centres], config.l2, tol, config.max_iter, on_progress, Z[sketch]
        )
    if not (np.all(np.isfinite(out.alpha)) and np.all(np.isfinite(out.fitted))):
        raise overflow_error(kernel)
    info.update(method="falkon", centers=len(out.centres), seed=config.seed, tol=tol)
    info["preconditioner_rows"] = len(sketch)
    if len(out.centres) < M:
        info["centers_dependent"] = M - len(out.centres)
    convergence = {
        "iterations": out.iterations,
        "converged": out.converged,
        "final_loss": out.history[-1],
        "residual": out.residual,
        "history": out.history,
    }
    if not out.converged:
        warnings.append(
            f"Conjugate gradients did not converge in {config.max_iter} iterations "
            f"(relative residual {out.residual:.3g}). Raise --max-iter, loosen --tol or "
            "raise --l2."
        )
    return out.centres, out.alpha, out.fitted, convergence


def _exact(kernel, Z, t, config, on_progress, info, warnings):
    """The n x n kernel by Cholesky or descent: (centres, beta, fitted, dof, convergence)."""
    with np.errstate(over="ignore", invalid="ignore"):
        K = gram(kernel, Z, upper=config.method == "cholesky")
    if not np.all(np.isfinite(K)):
        raise overflow_error(kernel)
    dof, convergence = None, None
    if config.method == "descent":
        tol = DESCENT_TOL if config.tol is None else config.tol
        outcome = descend(K, t, config, tol, on_progress)
        info["tol"] = tol
        beta, fitted = outcome.beta, outcome.fitted
        convergence = outcome.convergence()
        warnings.extend(outcome.warnings)
    else:
        beta, dof = _cholesky(K, t, config.l2, kernel)
        fitted = t - config.l2 * beta  # K beta = t - lambda beta, no second n^2 product
    info["method"] = config.method
    if kernel.name == "linear":  # h(z) = z' Z' beta: one centre, w = Z' beta
        return (Z.T @ beta)[None, :], np.ones(1), fitted, dof, convergence
    return Z, beta, fitted, dof, convergence


def overflow_error(kernel: Kernel) -> FitError:
    return FitError(
        f"The kernel {kernel.describe()} overflows on these rows (values beyond 1e308). "
        "Use a lower --degree or --gamma, or keep --standardize."
    )


def _scaling(X: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (constant columns keep scale 1)."""
    p = X.shape[1]
    if not standardize:
        return np.zeros(p), np.ones(p)
    scale = column_std(X)
    return X.mean(axis=0), np.where(scale > 0, scale, 1.0)


def _centres(n: int, config: Config) -> int | None:
    """The number of Nystrom centres, or None for the exact kernel."""
    if config.kernel == "linear" and config.method == "cholesky":
        return None  # the primal solve is exact at any size
    if config.centers is not None:
        return config.centers if config.centers < n else None
    return DEFAULT_CENTERS if n > EXACT_MAX_ROWS else None


def _kernel_info(kernel: Kernel) -> dict:
    if kernel.name == "poly":
        return {"degree": kernel.degree, "gamma": kernel.gamma, "coef0": kernel.coef0}
    if kernel.name == "rbf":
        return {"gamma": kernel.gamma, "sigma": math.sqrt(0.5 / kernel.gamma)}
    return {}


def _cholesky(K: np.ndarray, t: np.ndarray, l2: float, kernel: Kernel):
    """beta = (K + l2 I)^-1 t by Cholesky (K is overwritten), and the effective degrees of
    freedom trace(K (K + l2 I)^-1) = n - l2 trace((K + l2 I)^-1) when n is small enough."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve, solve_triangular

    n = len(t)
    K.flat[:: n + 1] += l2
    try:
        # K.T is Fortran-ordered with K's upper triangle as its lower one: LAPACK factors
        # it in place (a C-ordered K would be copied first, 200 MB at 5,000 rows)
        factor = cho_factor(K.T, lower=True, overwrite_a=True, check_finite=False)
    except LinAlgError:
        if kernel.name == "poly" and kernel.coef0 < 0:
            raise invalid_kernel_error(kernel) from None
        raise FitError(
            f"K + lambda I is not numerically positive definite (lambda = {l2:g} is tiny "
            "next to the kernel's scale). Raise --l2."
        ) from None
    beta = cho_solve(factor, t, check_finite=False)
    dof = None
    if n <= DOF_MAX_ROWS:
        R_inv = solve_triangular(factor[0], np.eye(n), lower=True, check_finite=False)
        dof = n - l2 * float(np.sum(R_inv * R_inv))
    return beta, dof


def _primal(Z: np.ndarray, t: np.ndarray, l2: float):
    """The linear kernel as ridge regression: w = (Z'Z + l2 I)^-1 Z't, the same h(z) = z'w
    as the dual (Z Z' + l2 I)^-1 t; degrees of freedom p - l2 trace((Z'Z + l2 I)^-1)."""
    from scipy.linalg import cho_factor, cho_solve

    p = Z.shape[1]
    G = Z.T @ Z
    G.flat[:: p + 1] += l2
    factor = cho_factor(G, lower=False, check_finite=False)
    w = cho_solve(factor, Z.T @ t, check_finite=False)
    dof = p - l2 * float(np.trace(cho_solve(factor, np.eye(p), check_finite=False)))
    return w[None, :], np.ones(1), Z @ w, dof


def predict(params: Params, data: ModelData) -> dict[str, np.ndarray]:
    """Row blocks of K(z, centres) @ beta, each row's value independent of the block."""
    Z = (data.X - params.feature_mean) / params.feature_scale
    rows = max(1, PREDICT_VALUES // len(params.centres))
    out = np.empty(Z.shape[0])
    for start in range(0, Z.shape[0], rows):
        K = params.kernel.rowwise(Z[start : start + rows], params.centres)
        out[start : start + rows] = (K * params.beta).sum(axis=1)  # per-row pairwise sums
    return {"prediction": out + params.target_mean}


def plot_data(result: FitResult, data: ModelData, rows: np.ndarray | None) -> dict:
    """Observed and fitted values for the rows; with one feature, the fitted curve too."""
    fitted = result.internals["fitted"]
    y = np.asarray(data.y, dtype=float)
    figure = {"observed": y, "fitted": fitted}
    if rows is not None:
        figure = {"observed": y[rows], "fitted": fitted[rows]}
    if data.X.shape[1] == 1:
        x = data.X[:, 0] if rows is None else data.X[rows, 0]
        grid = np.linspace(float(np.min(x)), float(np.max(x)), 200)
        curve = predict(result.params, ModelData(grid[:, None]))["prediction"]
        figure["curve"] = {"x": x, "grid": grid, "values": curve, "xlabel": data.names[0]}
    return {"fit": figure}
