"""Regression diagnostics against statsmodels: OLS influence and GLM influence (Poisson, binomial),
with and without intercept and offset; a sample of rows; rows with leverage 1."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import statsmodels.api as sm
from statsmodels.stats.outliers_influence import OLSInfluence

from mlfit.diagnostics import glm_diagnostics
from mlfit.solvers.family import Bernoulli, Gaussian, Poisson

RTOL = 1e-10
N = 60


def _design(rng, intercept: bool) -> np.ndarray:
    X = rng.normal(size=(N, 3)) * [1.0, 0.5, 2.0] + [0.3, -0.2, 0.0]
    return sm.add_constant(X) if intercept else X


def _unscaled_cov(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(A'WA)^-1 by Cholesky."""
    return scipy.linalg.cho_solve(
        scipy.linalg.cho_factor(A.T @ (w[:, None] * A)), np.eye(A.shape[1])
    )


def _ols(rng, intercept: bool):
    A = _design(rng, intercept)
    y = A @ rng.normal(size=A.shape[1]) + rng.normal(size=N)
    res = sm.OLS(y, A).fit()
    eta = A @ res.params
    diag = glm_diagnostics(A, y, eta, Gaussian(), _unscaled_cov(A, np.ones(N)), res.scale)
    return res, diag, A, y, eta


@pytest.mark.parametrize("intercept", [True, False])
def test_ols_matches_statsmodels(rng, intercept):
    res, diag, *_ = _ols(rng, intercept)
    infl = OLSInfluence(res)
    np.testing.assert_allclose(diag["leverage"], infl.hat_matrix_diag, rtol=RTOL)
    np.testing.assert_allclose(
        diag["std_deviance_residuals"], infl.resid_studentized_internal, rtol=RTOL
    )
    np.testing.assert_allclose(
        diag["std_pearson_residuals"], infl.resid_studentized_internal, rtol=RTOL
    )
    np.testing.assert_allclose(diag["cooks_distance"], infl.cooks_distance[0], rtol=RTOL)
    np.testing.assert_array_equal(diag["residuals"], res.model.endog - diag["fitted"])
    np.testing.assert_allclose(diag["residuals"], res.resid, rtol=RTOL, atol=1e-12)
    assert diag["n_params"] == res.model.exog.shape[1]


def _glm_problem(rng, name: str, intercept: bool, offset: bool):
    A = _design(rng, intercept)
    beta = rng.normal(size=A.shape[1]) * 0.4
    off = 0.3 * rng.normal(size=N) if offset else np.zeros(N)
    eta_true = A @ beta + off
    if name == "poisson":
        y = rng.poisson(np.exp(eta_true)).astype(float)
        sm_family, family = sm.families.Poisson(), Poisson()
    else:
        y = (rng.uniform(size=N) < 1 / (1 + np.exp(-eta_true))).astype(float)
        sm_family, family = sm.families.Binomial(), Bernoulli()
    res = sm.GLM(y, A, family=sm_family, offset=off if offset else None).fit(tol=1e-12)
    eta = A @ res.params + off
    w = family.mu_eta(eta) ** 2 / family.variance(family.mean(eta))
    diag = glm_diagnostics(A, y, eta, family, _unscaled_cov(A, w), 1.0)
    return res, diag, A, y, eta, family, w


@pytest.mark.parametrize("name", ["poisson", "binomial"])
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("offset", [False, True])
def test_glm_matches_statsmodels(rng, name, intercept, offset):
    res, diag, _, _, eta, *_ = _glm_problem(rng, name, intercept, offset)
    infl = res.get_influence()
    np.testing.assert_allclose(diag["leverage"], infl.hat_matrix_diag, rtol=RTOL)
    np.testing.assert_allclose(diag["std_pearson_residuals"], infl.resid_studentized, rtol=RTOL)
    np.testing.assert_allclose(diag["cooks_distance"], infl.cooks_distance[0], rtol=RTOL)
    np.testing.assert_allclose(diag["residuals"], res.resid_deviance, rtol=RTOL)
    np.testing.assert_allclose(
        diag["std_deviance_residuals"],
        res.resid_deviance / np.sqrt(1 - infl.hat_matrix_diag),
        rtol=RTOL,
    )
    np.testing.assert_allclose(diag["fitted"], res.fittedvalues, rtol=RTOL)
    np.testing.assert_array_equal(diag["predicted"], eta)


def test_sample_of_rows_gives_those_rows_of_the_full_computation(rng):
    _, full, A, y, eta, family, w = _glm_problem(rng, "poisson", True, True)
    rows = np.sort(rng.choice(N, size=17, replace=False))
    cov = _unscaled_cov(A, w)
    part = glm_diagnostics(A[rows], y[rows], eta[rows], family, cov, 1.0)
    for key, value in part.items():
        if key == "n_params":
            assert value == full[key]
        else:
            np.testing.assert_allclose(value, full[key][rows], rtol=1e-14, err_msg=key)


def test_rows_with_leverage_one_are_nan_without_warnings(rng):
    # A column that is 1 on row 0 only: the fit passes through that row exactly.
    X = rng.normal(size=(N, 2))
    A = np.column_stack([np.ones(N), X, np.eye(N)[0]])
    y = X @ [1.0, -2.0] + rng.normal(size=N)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    eta = A @ coef
    sigma2 = float(np.sum((y - eta) ** 2) / (N - A.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diag = glm_diagnostics(A, y, eta, Gaussian(), _unscaled_cov(A, np.ones(N)), sigma2)
    assert diag["leverage"][0] == 1.0
    for key in ("std_deviance_residuals", "std_pearson_residuals", "cooks_distance"):
        assert np.isnan(diag[key][0]), key
        assert np.all(np.isfinite(diag[key][1:])), key


def test_probabilities_that_round_to_zero_or_one_stay_finite(rng):
    # |eta| of 40: mu(1 - mu) in float64 is 0 at mu = 1, mu_eta is not.
    A = np.column_stack([np.ones(6), [-40.0, -1.0, 0.0, 0.5, 1.0, 40.0]])
    y = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    eta = A @ [0.0, 1.0]
    family = Bernoulli()
    w = family.mu_eta(eta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diag = glm_diagnostics(A, y, eta, family, _unscaled_cov(A, w), 1.0)
    for key in ("leverage", "residuals", "std_pearson_residuals", "cooks_distance"):
        assert np.all(np.isfinite(diag[key])), key
