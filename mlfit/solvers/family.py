"""Exponential families for GLMs: mean, log-likelihood, deviance, gradient and Hessian.

Every quantity is written in a form that cannot overflow for large |eta| (logaddexp, log1p,
xlogy).  A scalar family is its variance function and log-likelihood in mu; its link comes
from mlfit/solvers/links.py (the first of `links` is its default).  The gradient and the
expected (Fisher) information follow from the general GLM formulas, so any allowed link is
`family(name, link)`: Gaussian, Bernoulli and Poisson keep fused formulas for their canonical
link, any other link is `Linked` (Fisher scoring).  The general formulas are in
scalar_family.py; the categorical family (softmax) is categorical.py.

objective(X, y, beta, offset, weights, l2) returns the penalised log-likelihood, its gradient
and the (expected) information matrix, with beta of shape (p,).
"""

from __future__ import annotations

import math

import numpy as np

from mlfit.numerics import sigmoid
from mlfit.solvers.links import Inverse, InverseSquared, Log, Logit, get_link
from mlfit.solvers.scalar_family import Linked, ScalarFamily

#: eta beyond which exp(eta) would overflow float64; Poisson means are clipped there.
_MAX_ETA = 700.0


class Gaussian(ScalarFamily):
    name, link, links, variance_formula = (
        "gaussian",
        "identity",
        ("identity", "log", "inverse"),
        "1",
    )
    estimates_dispersion = deviance_is_pearson = True
    extra_parameters = 1
    canonical_link = "identity"

    def working(self, y, eta, offset):
        """W = 1 and z = y - offset, exactly: the least-squares problem normal-eq solves."""
        return np.ones_like(y), y - offset

    def mean(self, eta):
        return eta

    def mu_eta(self, eta):
        return np.ones_like(eta)

    def variance(self, mu):
        return np.ones_like(mu)

    def link_fn(self, mu):
        return mu

    def loglik(self, y, eta, scale: float = 1.0):
        return -0.5 * ((y - eta) ** 2 / scale + math.log(2 * math.pi * scale))

    def unit_deviance(self, y, eta):
        return (y - eta) ** 2

    def loglik_mu(self, y, mu, scale: float = 1.0):
        return self.loglik(y, mu, scale)

    def deviance_mu(self, y, mu):
        return (y - mu) ** 2


class Bernoulli(ScalarFamily):
    name, link, domain = "bernoulli", "logit", "binary"
    links, variance_formula = ("logit", "probit", "cloglog", "log"), "mu (1 - mu)"
    _link, canonical_link = Logit(), "logit"

    def mean(self, eta):
        return sigmoid(eta)

    def mu_eta(self, eta):
        return sigmoid(eta) * sigmoid(-eta)  # exact in both tails, unlike mu * (1 - mu)

    def variance(self, mu):
        return mu * (1.0 - mu)

    def link_fn(self, mu):
        return np.log(mu) - np.log1p(-mu)

    def loglik(self, y, eta, scale: float = 1.0):
        return y * eta - np.logaddexp(0.0, eta)

    def unit_deviance(self, y, eta):
        """2 (loglik(saturated) - loglik): the saturated term is 0 for y in {0, 1} and
        y log y + (1 - y) log(1 - y) for proportions (grouped data, newton --trials)."""
        return 2.0 * (np.logaddexp(0.0, eta) - y * eta + self.saturated_loglik(y))

    def parts(self, y, eta):
        log1p_exp = np.logaddexp(0.0, eta)  # -log(1 - mu)
        mu = np.exp(-np.logaddexp(0.0, -eta))
        return mu, mu * np.exp(-log1p_exp), y * eta - log1p_exp

    def start_mu(self, y):
        return (y + 0.5) / 2.0

    def valid_mu(self, mu):
        return (mu > 0) & (mu < 1)

    def loglik_mu(self, y, mu, scale: float = 1.0):
        return _xlogy(y, mu) + _xlogy(1.0 - y, 1.0 - mu)

    def deviance_mu(self, y, mu):
        return 2.0 * (self.saturated_loglik(y) - self.loglik_mu(y, mu))


class Poisson(ScalarFamily):
    name, link, domain = "poisson", "log", "counts"
    links, variance_formula = ("log", "identity", "sqrt"), "mu"
    _link, canonical_link = Log(), "log"

    def mean(self, eta):
        return np.exp(np.minimum(eta, _MAX_ETA))

    def mu_eta(self, eta):
        return self.mean(eta)

    def variance(self, mu):
        return mu

    def link_fn(self, mu):
        return np.log(mu)

    def loglik(self, y, eta, scale: float = 1.0):
        return y * eta - self.mean(eta) - log_factorial(y)

    def parts(self, y, eta):
        mu = self.mean(eta)
        return mu, mu, y * eta - mu - self._log_factorial(y)

    def _log_factorial(self, y):
        """gammaln(y + 1), kept for the last y (the same array in every iteration)."""
        if getattr(self, "_lf_y", None) is not y:
            self._lf_y, self._lf = y, log_factorial(y)
        return self._lf

    def unit_deviance(self, y, eta):
        mu = self.mean(eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            ylogy = np.where(y > 0, y * np.log(y), 0.0)
        return 2.0 * (ylogy - y * eta - y + mu)

    def start_mu(self, y):
        return y + 0.1

    def valid_mu(self, mu):
        return mu > 0

    def loglik_mu(self, y, mu, scale: float = 1.0):
        return _xlogy(y, mu) - mu - self._log_factorial(y)

    def deviance_mu(self, y, mu):
        return 2.0 * (_xlogy(y, y / mu) - (y - mu))


def log_factorial(y):
    """log(y!) = log Gamma(y + 1): for counts a table of math.lgamma(k + 1), k <= max(y),
    indexed by y; otherwise math.lgamma on the distinct values."""
    y = np.asarray(y, dtype=float)
    top = float(y.max()) if y.size else 0.0
    if y.size and y.min() >= 0 and top <= 1e6 and np.array_equal(y, np.floor(y)):
        table = np.array([math.lgamma(k + 1.0) for k in range(int(top) + 1)])
        return table[y.astype(np.intp)]
    values, index = np.unique(y, return_inverse=True)
    return np.array([_lgamma1(v) for v in values.tolist()])[index.reshape(np.shape(y))]


def _lgamma1(v: float) -> float:
    """log Gamma(v + 1), inf at the poles (as scipy.special.gammaln)."""
    try:
        return math.lgamma(v + 1.0)
    except ValueError:
        return math.inf


def _xlogy(x, y):
    """x log y, 0 where x == 0 (the limit), without warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x != 0, x * np.log(np.where(x != 0, y, 1.0)), 0.0)


class Gamma(ScalarFamily):
    """R's Gamma: V = mu^2, shape 1 / dispersion."""

    name, domain, links, variance_formula = (
        "gamma",
        "positive",
        ("inverse", "log", "identity"),
        "mu^2",
    )
    link, _link, canonical_link = "inverse", Inverse(), "inverse"
    canonical = False  # d mu / d eta = -V for the canonical 1 / mu: the general formulas
    estimates_dispersion = True
    extra_parameters = 1

    def variance(self, mu):
        return np.square(mu)

    def valid_mu(self, mu):
        return np.isfinite(mu) & (mu > 0)

    def loglik_mu(self, y, mu, scale: float = 1.0):
        k = 1.0 / scale
        return k * np.log(k * y / mu) - k * y / mu - np.log(y) - math.lgamma(k)

    def deviance_mu(self, y, mu):
        return 2.0 * ((y - mu) / mu - np.log(y / mu))

    def loglik_constant(self, y):
        return -np.log(y)

    def profile_loglik(self, dev: float, n: float, constant: float) -> float:
        """With k = n / dev: sum k log(k y / mu) - k y / mu = n k log k - k (dev / 2 + n)."""
        if dev <= 0:
            return math.nan
        k = n / dev
        return n * (k * math.log(k) - math.lgamma(k)) - k * (0.5 * dev + n) + constant


class InverseGaussian(ScalarFamily):
    """R's inverse.gaussian: V = mu^3."""

    name, domain, variance_formula = "inverse-gaussian", "positive", "mu^3"
    links = ("inverse-squared", "inverse", "log", "identity")
    link, _link, canonical_link = "inverse-squared", InverseSquared(), "inverse-squared"
    canonical = False
    estimates_dispersion = True
    extra_parameters = 1

    def variance(self, mu):
        return mu * mu * mu

    def valid_mu(self, mu):
        return np.isfinite(mu) & (mu > 0)

    def loglik_mu(self, y, mu, scale: float = 1.0):
        return -0.5 * (
            np.log(2.0 * math.pi * scale * y**3) + np.square(y - mu) / (scale * mu * mu * y)
        )

    def deviance_mu(self, y, mu):
        return np.square(y - mu) / (mu * mu * y)

    def loglik_constant(self, y):
        return -1.5 * np.log(y)

    def profile_loglik(self, dev: float, n: float, constant: float) -> float:
        if dev <= 0:
            return math.nan
        return -0.5 * n * (math.log(2.0 * math.pi * dev / n) + 1.0) + constant


class NegativeBinomial(ScalarFamily):
    """NB2 (MASS's negative.binomial, statsmodels' NegativeBinomial): V = mu + alpha mu^2,
    alpha = 1 / theta.  `estimated`: alpha is a maximum-likelihood estimate (one more
    parameter in AIC, as glm.nb)."""

    name, domain, links = "negative-binomial", "counts", ("log", "sqrt", "identity")
    variance_formula = "mu + alpha mu^2"
    link, _link = "log", Log()  # not NB's canonical link log(mu / (mu + 1/alpha))
    canonical = False

    def __init__(self, alpha: float = 1.0, estimated: bool = False):
        self.alpha, self.estimated = float(alpha), estimated
        self.extra_parameters = int(estimated)

    def variance(self, mu):
        return mu + self.alpha * mu * mu

    def valid_mu(self, mu):
        return np.isfinite(mu) & (mu > 0)

    def loglik_mu(self, y, mu, scale: float = 1.0):
        a = self.alpha
        return self._constant(y) + _xlogy(y, mu) - (y + 1.0 / a) * np.log1p(a * mu)

    def deviance_mu(self, y, mu):
        a = self.alpha
        return 2.0 * (_xlogy(y, y / mu) - (y + 1.0 / a) * (np.log1p(a * y) - np.log1p(a * mu)))

    def start_mu(self, y):
        return y + (y == 0) / 6.0  # as MASS's glm.nb

    def _constant(self, y):
        """log Gamma(y + theta) - log Gamma(theta) - log y! + y log alpha, kept for the last y."""
        if getattr(self, "_c_y", None) is not y:
            self._c_y, self._c = y, log_rising(y, self.alpha) - log_factorial(y)
        return self._c


def log_rising(y, alpha: float):
    """log Gamma(y + 1/alpha) - log Gamma(1/alpha) + y log alpha = sum_{j<y} log(1 + j alpha)
    per count y, by a cumulative table (no cancellation for small alpha)."""
    y = np.asarray(y, dtype=float)
    top = int(y.max()) if y.size else 0
    if top > 10_000_000:
        from scipy.special import gammaln

        theta = 1.0 / alpha
        return gammaln(y + theta) - gammaln(theta) + y * math.log(alpha)
    table = np.concatenate([[0.0], np.cumsum(np.log1p(alpha * np.arange(top)))])
    return table[y.astype(np.intp)]


FAMILIES = {
    "gaussian": Gaussian,
    "bernoulli": Bernoulli,
    "logistic": Bernoulli,
    "binomial": Bernoulli,  # R's name; with newton --trials, grouped data
    "poisson": Poisson,
    "gamma": Gamma,
    "inverse-gaussian": InverseGaussian,
    "negative-binomial": NegativeBinomial,
}


def family(
    name: str, link: str | None = None, nb_alpha: float | None = None, estimated: bool = False
) -> ScalarFamily:
    """A scalar family by name ('logistic' and 'binomial': aliases of 'bernoulli') with one of
    its links (None: its default); nb_alpha for the negative binomial."""
    cls = FAMILIES[name]
    if link is not None and link not in cls.links:
        raise ValueError(f"the {cls.name} family has no {link!r} link")
    base = (
        cls(nb_alpha if nb_alpha is not None else 1.0, estimated)
        if cls is NegativeBinomial
        else cls()
    )
    if link is None or link == cls.links[0]:
        return base
    return Linked(base, get_link(link))
