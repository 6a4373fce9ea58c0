"""Regression diagnostics as R's plot(lm) and plot(glm) draw them: residuals, leverage, Cook's."""

from __future__ import annotations

import numpy as np

#: R's lm.influence treats h > 1 - 10 eps as exactly 1 (a row the fit passes through).
_LEVERAGE_ONE = 1.0 - 10.0 * np.finfo(float).eps


def glm_diagnostics(
    A: np.ndarray,
    y: np.ndarray,
    eta: np.ndarray,
    family,
    unscaled_cov: np.ndarray,
    dispersion: float,
    prior: np.ndarray | None = None,
) -> dict[str, np.ndarray | int]:
    """A: (n, k) design of the estimable columns (intercept column included when fitted);
    y: (n,); eta: (n,) linear predictor (offset included); family: an mlfit.solvers.family
    ScalarFamily (Gaussian for least squares); unscaled_cov: (k, k) (A'WA)^-1 from the full fit
    (for least squares (X'X)^-1); dispersion: sigma^2 (Gaussian) or 1.
    The rows may be a sample of the fitted rows: leverage uses the full fit's covariance.

    Every value is per row, so a sample of rows gives those rows of the full computation.
    Rows with leverage 1 get NaN standardized residuals and Cook's distance (as R's rstandard
    and cooks.distance), without a floating-point warning.  prior: the prior weights (None:
    ones): they scale the working weights and the residuals (R's weighted residuals); rows of
    weight 0 are not in the fit and get NaN standardized residuals and Cook's distance (R's
    plot.lm leaves them out).
    """
    A = np.asarray(A, dtype=float)
    y = np.asarray(y, dtype=float)
    eta = np.asarray(eta, dtype=float)
    k = A.shape[1]
    mu = family.mean(eta)
    d = family.mu_eta(eta)
    # With a canonical link V(mu) == d mu / d eta; d stays exact where mu rounds to 0 or 1.
    v = d if family.canonical else family.variance(mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = d if family.canonical else d * d / v
        pearson = (y - mu) / np.sqrt(v)
    if family.name == "gaussian":
        residuals = y - mu
    else:
        unit = np.maximum(family.unit_deviance(y, eta), 0.0)
        residuals = np.sign(y - mu) * np.sqrt(unit)
    if prior is not None:
        root = np.sqrt(np.asarray(prior, dtype=float))
        w, pearson, residuals = w * root * root, pearson * root, residuals * root
    h = w * _quadratic_form_rows(A, np.asarray(unscaled_cov, dtype=float))
    h = np.where(h > _LEVERAGE_ONE, 1.0, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(dispersion * (1.0 - h))
        std_deviance = _finite_or_nan(residuals / scale)
        std_pearson = _finite_or_nan(pearson / scale)
        if k:
            cooks = _finite_or_nan((pearson / (1.0 - h)) ** 2 * h / (dispersion * k))
        else:
            cooks = np.zeros_like(h)
    # A row with h == 1 is fitted exactly; 0/0 there is NaN whatever its rounding residue.
    exact = h == 1.0
    if prior is not None:
        exact |= np.asarray(prior) == 0
    std_deviance[exact] = std_pearson[exact] = cooks[exact] = np.nan
    return {
        "predicted": eta,
        "fitted": mu,
        "residuals": residuals,
        "pearson_residuals": pearson,
        "std_deviance_residuals": std_deviance,
        "std_pearson_residuals": std_pearson,
        "leverage": h,
        "cooks_distance": cooks,
        "weights": w,
        "n_params": k,
    }


def _quadratic_form_rows(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """a_i' C a_i for every row a_i of A: with C = L L' the squared row norms of A L."""
    if C.shape[0] == 0:
        return np.zeros(A.shape[0])
    try:
        L = np.linalg.cholesky(C)
    except np.linalg.LinAlgError:  # C positive semi-definite only: fall back to the product
        return np.einsum("ij,ij->i", A @ C, A)
    AL = A @ L
    return np.einsum("ij,ij->i", AL, AL)


def _finite_or_nan(x: np.ndarray) -> np.ndarray:
    """x with +-inf replaced by NaN (R's dropInf): a value the plot cannot place."""
    return np.where(np.isinf(x), np.nan, x)
