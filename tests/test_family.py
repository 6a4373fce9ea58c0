"""The exponential families of mlfit/solvers/family.py.

Gradient and information against finite differences of the log-likelihood, the l2 penalty,
stability for huge |eta|, the unit deviance, and the checks on the target's support.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import gammaln

from mlfit.errors import DataError
from mlfit.solvers.categorical import Categorical
from mlfit.solvers.family import FAMILIES, Bernoulli, Gaussian, Poisson, family

#: Central differences with h = 1e-5 on O(1) data: truncation ~h^2, rounding ~eps/h; measured
#: at most 1.2e-9 relative (gradient) and 5e-10 (information).
RTOL_FD = 1e-7
H = 1e-5

N, P = 40, 3


def _problem(rng, name):
    """(family, X, y, beta, offset, weights) on random data, beta of the family's shape."""
    X = rng.normal(size=(N, P)) * [1.0, 0.5, 2.0] + [0.2, -0.3, 0.0]
    offset = 0.3 * rng.normal(size=N)
    weights = rng.uniform(0.5, 2.0, size=N)
    if name == "gaussian":
        return Gaussian(), X, rng.normal(size=N), rng.normal(size=P), offset, weights
    if name == "bernoulli":
        y = rng.integers(0, 2, N).astype(float)
        return Bernoulli(), X, y, rng.normal(size=P), offset, weights
    if name == "poisson":
        y = rng.poisson(2.0, N).astype(float)
        return Poisson(), X, y, 0.3 * rng.normal(size=P), offset, weights
    K = 4
    return Categorical(K), X, rng.integers(0, K, N), rng.normal(size=P * (K - 1)), offset, weights


FAMILY_NAMES = ["gaussian", "bernoulli", "poisson", "categorical"]


def _central(f, beta):
    """Central differences of f (scalar or vector valued) at beta, one row per coordinate."""
    rows = []
    for e in np.eye(len(beta)):
        rows.append((np.asarray(f(beta + H * e)) - np.asarray(f(beta - H * e))) / (2 * H))
    return np.array(rows)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_gradient_matches_finite_differences(rng, name):
    fam, X, y, beta, offset, weights = _problem(rng, name)
    ll, grad, _ = fam.objective(X, y, beta, offset, weights, None)

    def loglik(b):
        return fam.objective(X, y, b, offset, weights, None, info=False)[0]

    numeric = _central(loglik, beta)
    np.testing.assert_allclose(grad, numeric, rtol=RTOL_FD, atol=RTOL_FD * np.max(np.abs(grad)))
    assert math.isfinite(ll)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_information_is_minus_hessian(rng, name):
    fam, X, y, beta, offset, weights = _problem(rng, name)
    _, _, info = fam.objective(X, y, beta, offset, weights, None)

    def gradient(b):
        return fam.objective(X, y, b, offset, weights, None, info=False)[1]

    numeric = -_central(gradient, beta)
    scale = np.max(np.abs(info))
    np.testing.assert_allclose(info, numeric, rtol=RTOL_FD, atol=RTOL_FD * scale)
    np.testing.assert_allclose(info, info.T, rtol=0, atol=1e-13 * scale)
    # concave log-likelihood: the information is positive (semi)definite
    assert np.linalg.eigvalsh(info).min() > -1e-12 * scale


@pytest.mark.parametrize("name", ["gaussian", "bernoulli", "poisson"])
def test_loglik_is_the_documented_density(rng, name):
    """The weighted log-likelihood is sum w_i log f(y_i; eta_i) of the textbook density."""
    fam, X, y, beta, offset, weights = _problem(rng, name)
    eta = X @ beta + offset
    if name == "gaussian":
        per_row = -0.5 * (y - eta) ** 2 - 0.5 * math.log(2 * math.pi)
    elif name == "bernoulli":
        mu = 1 / (1 + np.exp(-eta))
        per_row = y * np.log(mu) + (1 - y) * np.log(1 - mu)
    else:
        mu = np.exp(eta)
        per_row = y * np.log(mu) - mu - gammaln(y + 1)
    ll, _, _ = fam.objective(X, y, beta, offset, weights, None)
    np.testing.assert_allclose(ll, weights @ per_row, rtol=1e-13)


def test_categorical_loglik_is_softmax(rng):
    fam, X, y, beta, offset, weights = _problem(rng, "categorical")
    B = beta.reshape(P, fam.K - 1, order="F")  # flattened column by column
    eta = np.column_stack([np.zeros(N), X @ B])
    prob = np.exp(eta) / np.exp(eta).sum(axis=1, keepdims=True)
    ll, _, _ = fam.objective(X, y, beta, offset, weights, None)
    np.testing.assert_allclose(ll, weights @ np.log(prob[np.arange(N), y]), rtol=1e-13)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_l2_penalty_as_documented(rng, name):
    """ll - 1/2 sum(l2 * beta^2), gradient - l2 * beta, information + diag(l2); l2 is per entry
    (a zero entry leaves that parameter free, as the intercept is)."""
    fam, X, y, beta, offset, weights = _problem(rng, name)
    l2 = rng.uniform(0.5, 3.0, size=len(beta))
    l2[0] = 0.0
    ll, grad, info = fam.objective(X, y, beta, offset, weights, None)
    pll, pgrad, pinfo = fam.objective(X, y, beta, offset, weights, l2)
    np.testing.assert_allclose(pll, ll - 0.5 * np.sum(l2 * beta**2), rtol=1e-14)
    np.testing.assert_allclose(pgrad, grad - l2 * beta, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(pinfo, info + np.diag(l2), rtol=1e-14, atol=1e-14)
    # and it is the derivative of the penalised log-likelihood
    numeric = _central(lambda b: fam.objective(X, y, b, offset, weights, l2, info=False)[0], beta)
    np.testing.assert_allclose(pgrad, numeric, rtol=RTOL_FD, atol=RTOL_FD * np.max(np.abs(pgrad)))
    # info=False still penalises the log-likelihood and gradient
    qll, qgrad, qinfo = fam.objective(X, y, beta, offset, weights, l2, info=False)
    assert qinfo is None
    assert qll == pll
    np.testing.assert_array_equal(qgrad, pgrad)


# --------------------------------------------------------------------------- huge |eta|

ETA = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])


@pytest.fixture
def strict_floats():
    """Any overflow, invalid operation or division by zero fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield


@pytest.mark.parametrize("y", [0.0, 1.0])
def test_bernoulli_huge_eta(strict_floats, y):
    fam = Bernoulli()
    yy = np.full(len(ETA), y)
    ll, dev = fam.loglik(yy, ETA), fam.unit_deviance(yy, ETA)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(dev))
    np.testing.assert_array_equal(fam.mean(ETA)[[0, -1]], [0.0, 1.0])
    np.testing.assert_array_equal(fam.mu_eta(ETA)[[0, -1]], [0.0, 0.0])
    # log-likelihood: -log(1 + e^-eta) for y = 1, -log(1 + e^eta) for y = 0
    # (y * eta - log(1 + e^eta) cancels to an absolute error ~1e-16: fine for sums of rows)
    expected = -np.logaddexp(0.0, -ETA) if y == 1 else -np.logaddexp(0.0, ETA)
    np.testing.assert_allclose(ll, expected, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(dev, -2 * expected, rtol=1e-15, atol=1e-15)
    right, wrong = (-1, 0) if y == 1 else (0, -1)
    assert ll[right] == 0.0 and dev[right] == 0.0  # the right class with certainty
    assert ll[wrong] == -800.0 and dev[wrong] == 1600.0  # linear, not overflowing
    X = np.ones((len(ETA), 1))
    oll, grad, info = fam.objective(X, yy, np.zeros(1), ETA, np.ones(len(ETA)), None)
    assert math.isfinite(oll)
    np.testing.assert_allclose(grad, [np.sum(yy - fam.mean(ETA))], rtol=1e-15)
    np.testing.assert_allclose(info, [[0.25 + 2 * math.exp(-40) / (1 + math.exp(-40)) ** 2]])


@pytest.mark.parametrize("y", [0.0, 3.0])
def test_poisson_huge_eta(strict_floats, y):
    fam = Poisson()
    yy = np.full(len(ETA), y)
    ll, dev, mu = fam.loglik(yy, ETA), fam.unit_deviance(yy, ETA), fam.mean(ETA)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(dev)) and np.all(np.isfinite(mu))
    assert mu[0] == 0.0  # e^-800 underflows to exactly 0
    assert mu[-1] > 1e300  # clipped below overflow, still enormous
    assert ll[-1] < -1e300 and dev[-1] > 1e300  # a mean of e^800 is hopeless for any count
    # at eta = -800 the mean vanishes: a zero count is certain, a positive one linear in eta
    np.testing.assert_allclose(ll[0], -800.0 * y - gammaln(y + 1), rtol=1e-15)
    expected_dev = 0.0 if y == 0 else 2 * (y * math.log(y) + 800.0 * y - y)
    np.testing.assert_allclose(dev[0], expected_dev, rtol=1e-15)
    X = np.ones((len(ETA), 1))
    oll, grad, info = fam.objective(X, yy, np.zeros(1), ETA, np.ones(len(ETA)), None)
    assert math.isfinite(oll) and np.all(np.isfinite(grad)) and np.all(np.isfinite(info))


def test_categorical_huge_eta(strict_floats):
    fam = Categorical(3)
    eta = np.array([[0.0, 800.0, -800.0], [0.0, -800.0, 800.0], [0.0, 800.0, 800.0]])
    prob = fam.probabilities(eta)
    np.testing.assert_allclose(prob, [[0, 1, 0], [0, 0, 1], [0, 0.5, 0.5]], rtol=1e-12, atol=1e-300)
    # eta - logsumexp(eta) at |eta| ~ 800 loses ~800 ulps of 1: measured 5.5e-14
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-12)
    ll = fam.loglik(np.array([0, 1, 2]), eta)
    np.testing.assert_allclose(ll, [-800.0, -1600.0, -math.log(2)], rtol=1e-15, atol=1e-12)
    dev = fam.unit_deviance(np.array([1, 2, 1]), eta)
    np.testing.assert_allclose(dev, [0.0, 0.0, 2 * math.log(2)], rtol=1e-15, atol=1e-12)
    beta = np.array([800.0, -800.0, 800.0, -800.0, 800.0, 800.0])
    oll, grad, info = fam.objective(np.eye(3), np.array([1, 2, 0]), beta, 0.0, np.ones(3), None)
    assert math.isfinite(oll) and np.all(np.isfinite(grad)) and np.all(np.isfinite(info))


def test_gaussian_huge_eta(strict_floats):
    fam = Gaussian()
    y = np.zeros(len(ETA))
    np.testing.assert_allclose(fam.unit_deviance(y, ETA), ETA**2)
    np.testing.assert_allclose(fam.loglik(y, ETA), -0.5 * ETA**2 - 0.5 * math.log(2 * math.pi))


# --------------------------------------------------------------------------- unit deviance


def test_unit_deviance_nonnegative_on_a_grid():
    """Up to rounding (a few ulps of the terms that cancel), never negative."""
    eta = np.linspace(-60, 60, 4001)
    cases = [
        (Gaussian(), [-3.0, 0.0, 2.5]),
        (Bernoulli(), [0.0, 1.0]),
        (Poisson(), [0.0, 1.0, 2.0, 7.0, 50.0, 1000.0]),
    ]
    for fam, ys in cases:
        for y in ys:
            dev = fam.unit_deviance(np.full_like(eta, y), eta)
            assert np.all(np.isfinite(dev))
            assert dev.min() >= -1e-14 * max(1.0, y), (fam.name, y, dev.min())
            assert dev.max() > 0
    fam = Categorical(3)
    E = np.column_stack([np.zeros(len(eta)), eta, -0.5 * eta])
    for k in range(3):
        assert fam.unit_deviance(np.full(len(eta), k), E).min() >= 0.0


def test_unit_deviance_zero_at_saturated_fit():
    """Saturated: mu = y (for y = 0 in the Bernoulli/Poisson limit eta -> -inf; eta = -800)."""
    y = np.array([-2.0, 0.0, 3.5])
    assert np.all(Gaussian().unit_deviance(y, Gaussian().link_fn(y)) == 0.0)
    np.testing.assert_array_equal(
        Bernoulli().unit_deviance(np.array([0.0, 1.0]), np.array([-800.0, 800.0])), [0, 0]
    )
    counts = np.array([1.0, 2.0, 3.0, 7.0, 50.0, 1000.0])
    dev = Poisson().unit_deviance(counts, Poisson().link_fn(counts))
    np.testing.assert_allclose(dev, 0.0, atol=1e-14 * counts.max())
    assert Poisson().unit_deviance(np.zeros(1), np.array([-800.0]))[0] == 0.0
    eta = np.array([[0.0, 800.0, -800.0]])
    assert Categorical(3).unit_deviance(np.array([1]), eta)[0] == 0.0


@pytest.mark.parametrize("name", ["gaussian", "bernoulli", "poisson"])
def test_unit_deviance_is_twice_loglik_gap(rng, name):
    """deviance = 2 (loglik(saturated) - loglik), the saturated log-likelihood at mu = y."""
    fam, X, y, beta, offset, _ = _problem(rng, name)
    eta = X @ beta + offset
    if name == "gaussian":
        saturated = np.full(N, -0.5 * math.log(2 * math.pi))
    elif name == "bernoulli":
        saturated = np.zeros(N)
    else:
        from scipy.special import xlogy

        saturated = xlogy(y, y) - y - gammaln(y + 1)
    np.testing.assert_allclose(
        fam.unit_deviance(y, eta), 2 * (saturated - fam.loglik(y, eta)), rtol=1e-12, atol=1e-12
    )


# --------------------------------------------------------------------------- support of y


@pytest.mark.parametrize("bad", [2.0, -1.0, 0.5, np.nan])
def test_bernoulli_rejects_non_binary(bad):
    y = np.array([0.0, 1.0, 1.0, bad, 0.0])
    with pytest.raises(DataError, match=r"'admitted' must be 0 or 1.*row 4"):
        Bernoulli().check_y(y, "admitted")


@pytest.mark.parametrize("bad", [-1.0, 2.5, 0.001, np.nan])
def test_poisson_rejects_non_counts(bad):
    y = np.array([0.0, 3.0, bad, 1.0])
    with pytest.raises(DataError, match=r"'claims' must hold counts.*row 3"):
        Poisson().check_y(y, "claims")


def test_valid_targets_pass():
    Bernoulli().check_y(np.array([0.0, 1.0, 1.0]), "y")
    Poisson().check_y(np.array([0.0, 1.0, 17.0, 1e6]), "y")
    Gaussian().check_y(np.array([-1.5, 0.0, 1e300]), "y")


def test_family_registry():
    assert type(family("logistic")) is Bernoulli
    assert {name: type(family(name)).__name__ for name in FAMILIES} == {
        "gaussian": "Gaussian",
        "bernoulli": "Bernoulli",
        "logistic": "Bernoulli",
        "binomial": "Bernoulli",
        "poisson": "Poisson",
        "gamma": "Gamma",
        "inverse-gaussian": "InverseGaussian",
        "negative-binomial": "NegativeBinomial",
    }
    for fam, link in [(Gaussian(), "identity"), (Bernoulli(), "logit"), (Poisson(), "log")]:
        assert fam.link == link
        mu = np.array([0.2, 0.5, 0.7])
        np.testing.assert_allclose(fam.mean(fam.link_fn(mu)), mu, rtol=1e-15)
