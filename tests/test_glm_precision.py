"""GLM estimates and standard errors against 65-digit refits (mpmath), on ill-conditioned
designs (condition number about 1e5, as Longley's): at least 10 correct digits each."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from mlfit.contract import ModelData
from mlfit.solvers import newton


def ill_conditioned(rng, n: int = 60) -> np.ndarray:
    t = rng.uniform(0.0, 3.0, n)
    near = t + 1e-4 * rng.normal(size=n)  # nearly collinear with t
    return np.column_stack([t, near, rng.normal(size=n)])


def reference_fit(X: np.ndarray, y: np.ndarray, family: str) -> tuple[list, list]:
    """Newton's method in 65-digit arithmetic from the exact binary values of X and y:
    the maximum-likelihood estimate and sqrt(diag((X'WX)^-1)) at it."""
    with mpmath.workdps(65):
        n, p = X.shape
        A = mpmath.matrix([[mpmath.mpf(1)] + [mpmath.mpf(float(v)) for v in row] for row in X])
        Y = [mpmath.mpf(float(v)) for v in y]
        beta = mpmath.matrix(p + 1, 1)
        for _ in range(200):
            eta = A * beta
            if family == "poisson":
                mu = [mpmath.exp(e) for e in eta]
                w = mu
            else:
                mu = [1 / (1 + mpmath.exp(-e)) for e in eta]
                w = [m * (1 - m) for m in mu]
            grad = mpmath.matrix(p + 1, 1)
            info = mpmath.matrix(p + 1, p + 1)
            for i in range(n):
                for j in range(p + 1):
                    grad[j] += A[i, j] * (Y[i] - mu[i])
                    for k in range(p + 1):
                        info[j, k] += w[i] * A[i, j] * A[i, k]
            step = mpmath.lu_solve(info, grad)
            beta += step
            if mpmath.norm(step) < mpmath.mpf(10) ** -60:
                break
        cov = mpmath.inverse(info)
        return [beta[j] for j in range(p + 1)], [mpmath.sqrt(cov[j, j]) for j in range(p + 1)]


def digits(estimate: float, exact) -> float:
    with mpmath.workdps(65):
        err = abs(mpmath.mpf(estimate) - exact) / abs(exact)
        return 16.0 if err == 0 else float(-mpmath.log10(err))


@pytest.mark.parametrize("family", ["poisson", "bernoulli"])
@pytest.mark.parametrize("chunked", [False, True])
def test_ten_digits_on_an_ill_conditioned_glm(family, chunked):
    rng = np.random.default_rng(11)
    X = ill_conditioned(rng)
    eta = 0.3 + 0.4 * X[:, 0] - 0.2 * X[:, 1] + 0.5 * X[:, 2]
    if family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    else:
        y = (rng.uniform(size=len(eta)) < 1 / (1 + np.exp(-(eta - 0.6)))).astype(float)
    config = newton.Config(family=family)
    if chunked:
        chunks = [ModelData(X[i : i + 17], y[i : i + 17]) for i in range(0, len(y), 17)]
        result = newton.fit_chunks(chunks, config)
    else:
        result = newton.fit(ModelData(X, y), config)
    cond = np.linalg.cond(np.column_stack([np.ones(len(X)), X]) / np.linalg.norm(X, axis=0).max())
    assert cond > 1e4  # the design really is ill-conditioned
    beta, se = reference_fit(X, y, family)
    table = result.tables["coefficients"]
    worst_beta = min(digits(v, b) for v, b in zip(table["estimate"], beta))
    worst_se = min(digits(v, s) for v, s in zip(table["std_error"], se))
    assert worst_beta >= 10.0 and worst_se >= 10.0, (worst_beta, worst_se)
    assert math.isfinite(result.metrics["deviance"])
