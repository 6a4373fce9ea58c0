"""Exponential families for GLMs: mean, log-likelihood, deviance, gradient and Hessian.

Every quantity is written in a form that cannot overflow for large |eta| (logaddexp, log1p,
xlogy).  A scalar family is its variance function and log-likelihood in mu; its link comes
from mlfit/solvers/links.py (the first of `links` is its default).  The gradient and the
expected (Fisher) information follow from the general GLM formulas, so any allowed link is
`family(name, link)`: Gaussian, Bernoulli and Poisson keep fused formulas for their canonical
link, any other link is `Linked` (Fisher scoring).  The categorical family (softmax) has one
linear predictor per class after the first (the reference class).

objective(X, y, beta, offset, weights, l2) returns the penalised log-likelihood, its gradient
and the (expected) information matrix, with beta of shape (p,) or, for categorical, (p, K-1)
flattened column by column.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from mlfit.domains import domain_message, outside
from mlfit.errors import DataError
from mlfit.numerics import logsumexp, sigmoid, weighted_gram
from mlfit.solvers.links import Identity, Inverse, InverseSquared, Link, Log, Logit, get_link

#: eta beyond which exp(eta) would overflow float64; Poisson means are clipped there.
_MAX_ETA = 700.0


class ScalarFamily(ABC):
    """A one-parameter exponential family with a link; subclasses fill in the formulas."""

    name = ""
    link = ""
    links: tuple[str, ...] = ()  # the links --link allows; the first is the default
    canonical = True  # canonical link: mu_eta == variance, gradient X'(y - mu)
    canonical_link: str | None = None  # (None: not among `links`)
    estimates_dispersion = False
    deviance_is_pearson = False  # unit deviance == squared Pearson residual (Gaussian)
    extra_parameters = 0  # counted in AIC besides the coefficients (R: the dispersion)
    domain: str | None = None  # the target's values, a key of mlfit.domains (None: any)
    variance_formula = ""  # V(mu), for --help and the README

    def check_y(self, y: np.ndarray, target: str) -> None:
        """Raise DataError when y is outside the family's support.  (The command line's
        validator checks the same first, naming the file's row and line.)"""
        if self.domain is None:
            return
        bad = np.flatnonzero(outside(self.domain, y))
        if len(bad):
            where = f"row {int(bad[0]) + 1}"
            needed_by = f"the {self.name} family"
            raise DataError(domain_message(self.domain, target, needed_by, where, y[bad[0]]))

    @abstractmethod
    def variance(self, mu):
        """The variance function V(mu)."""

    @abstractmethod
    def loglik_mu(self, y, mu, scale: float = 1.0):
        """Per-row log-likelihood at the mean mu (valid_mu) and dispersion scale."""

    @abstractmethod
    def deviance_mu(self, y, mu):
        """Per-row deviance 2 * (loglik(saturated) - loglik) at the mean mu."""

    @property
    def fisher_is_newton(self) -> bool:
        """Whether the expected information equals the observed (a canonical link, up to a
        linear map): Fisher scoring then converges as fast as Newton's method."""
        return self.link == self.canonical_link

    def valid_mu(self, mu):
        """The means the family allows (R's validmu)."""
        return np.isfinite(mu)

    # The link's part, in general form (the canonical classes below fuse it for speed).
    _link: Link = Identity()

    def mean(self, eta):
        """The inverse link: mu from the linear predictor eta."""
        return self._link.inverse(eta)

    def mu_eta(self, eta):
        """d mu / d eta."""
        return self._link.mu_eta(eta)

    def link_fn(self, mu):
        """The link: eta from mu."""
        return self._link.link(mu)

    def _valid(self, eta, mu):
        return self._link.valid_eta(eta) & self.valid_mu(mu)

    def loglik(self, y, eta, scale: float = 1.0):
        """Per-row log-likelihood; -inf where eta or mu is outside the valid region, so a
        step there is halved back."""
        mu = self.mean(eta)
        ok = self._valid(eta, mu)
        with np.errstate(all="ignore"):
            return np.where(ok, self.loglik_mu(y, np.where(ok, mu, 1.0), scale), -np.inf)

    def unit_deviance(self, y, eta):
        """Per-row deviance 2 * (loglik(saturated) - loglik); inf outside the valid region."""
        mu = self.mean(eta)
        ok = self._valid(eta, mu)
        with np.errstate(all="ignore"):
            return np.where(ok, self.deviance_mu(y, np.where(ok, mu, 1.0)), np.inf)

    def pearson(self, y, eta):
        """Per-row squared Pearson residual (y - mu)^2 / V(mu)."""
        mu = self.mean(eta)
        with np.errstate(all="ignore"):
            return np.square(y - mu) / self.variance(mu)

    def loglik_constant(self, y):
        """The part of the log-likelihood that depends on y alone (profile_loglik needs it)."""
        return np.zeros_like(y)

    def profile_loglik(self, dev: float, n: float, constant: float) -> float:
        """Families that estimate a dispersion: the log-likelihood at R's maximum-likelihood
        dispersion dev / n (logLik and AIC of R's glm), from the deviance and the sum of
        loglik_constant; NaN for an exact fit."""
        raise NotImplementedError

    def start_mu(self, y):
        return y

    def saturated_loglik(self, y):
        """Per-row log-likelihood of the saturated model, mu = y."""
        with np.errstate(all="ignore"):
            return self.loglik_mu(y, y)

    def objective(self, X, y, beta, offset, weights, l2, info: bool = True):
        """(log-likelihood, gradient, information or None when info=False)."""
        eta = X @ beta + offset
        mu, d, ll_rows = self.parts(y, eta)
        ll = float(np.dot(weights, ll_rows))
        if self.canonical:  # d / V(mu) == 1: skip the division, exact in the tails
            grad, info_w = X.T @ (weights * (y - mu)), weights * d
        else:  # Fisher scoring: the expected information X' diag(d^2 / V) X
            with np.errstate(all="ignore"):  # a point outside the valid region has ll -inf
                v = self.variance(mu)
                grad, info_w = X.T @ (weights * (y - mu) * d / v), weights * d * d / v
        matrix = weighted_gram(X, info_w) if info else None
        return _penalise(ll, grad, matrix, beta, l2)

    def parts(self, y, eta):
        """Mean, d mu / d eta and per-row log-likelihood at eta (subclasses fuse them)."""
        return self.mean(eta), self.mu_eta(eta), self.loglik(y, eta)

    def working(self, y, eta, offset):
        """(sqrt(W), sqrt(W) z) of the IRLS step at eta: weights W = d^2 / V(mu) and the
        working response z = eta - offset + (y - mu) / d, whose weighted least-squares fit is
        the next estimate.  sqrt(W) (y - mu) / d is the Pearson residual (y - mu) / sqrt(V)
        (signed as d), finite where d underflows; rows with V = 0 carry no information."""
        mu, d = self.mean(eta), self.mu_eta(eta)
        v = d if self.canonical else self.variance(mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            root_v = np.sqrt(v)
            sqrt_w = np.where(v > 0, np.abs(d) / root_v, 0.0)
            pearson = np.where(v > 0, np.sign(d) * (y - mu) / root_v, 0.0)
        return sqrt_w, sqrt_w * (eta - offset) + pearson


def _penalise(ll, grad, info, beta, l2):
    """Subtract (l2 / 2) * ||beta||^2 over the penalised entries (l2: per-entry array)."""
    if l2 is None:
        return ll, grad, info
    ll -= 0.5 * float(np.sum(l2 * beta * beta))
    grad = grad - l2 * beta
    if info is not None:
        info = info + np.diag(l2)
    return ll, grad, info


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
        return y * eta - self.mean(eta) - _log_factorial(y)

    def parts(self, y, eta):
        mu = self.mean(eta)
        return mu, mu, y * eta - mu - self._log_factorial(y)

    def _log_factorial(self, y):
        """gammaln(y + 1), kept for the last y (the same array in every iteration)."""
        if getattr(self, "_lf_y", None) is not y:
            self._lf_y, self._lf = y, _log_factorial(y)
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


class Categorical:
    """Softmax over K classes; class 0 is the reference with linear predictor 0.

    y: (n,) integer class codes 0..K-1; beta: (p, K-1).
    """

    name, link = "categorical", "softmax"
    estimates_dispersion = False

    def __init__(self, n_classes: int):
        self.K = n_classes

    def eta(self, X, beta, offset):
        B = beta.reshape(X.shape[1], self.K - 1, order="F")
        eta = np.column_stack([np.zeros(X.shape[0]), X @ B])
        return eta + offset[:, None] if np.ndim(offset) else eta

    def probabilities(self, eta):
        return np.exp(eta - logsumexp(eta, axis=1)[:, None])

    def loglik(self, y, eta):
        return eta[np.arange(len(y)), y] - logsumexp(eta, axis=1)

    def unit_deviance(self, y, eta):
        return -2.0 * self.loglik(y, eta)

    def objective(self, X, y, beta, offset, weights, l2, info: bool = True):
        n = X.shape[0]
        eta = self.eta(X, beta, offset)
        P = self.probabilities(eta)
        ll = float(np.dot(weights, self.loglik(y, eta)))
        Y = np.zeros_like(P)
        Y[np.arange(n), y] = 1.0
        R = (Y - P)[:, 1:] * weights[:, None]
        grad = (X.T @ R).ravel(order="F")
        if not info:
            return _penalise(ll, grad, None, beta, l2)
        return _penalise(ll, grad, _softmax_information(X, P[:, 1:], weights), beta, l2)


def _softmax_information(X, P, weights, block: int = 4096):
    """sum_i w_i kron(diag(p_i) - p_i p_i', x_i x_i') with p_i the non-reference probabilities:
    per row block, the diag(p_a) terms as sqrt-scaled symmetric products and all p_a p_b terms
    as one symmetric product of M = [sqrt(w_i) p_ia x_i]_a."""
    n, p = X.shape
    k1 = P.shape[1]
    info = np.zeros((p * k1, p * k1))
    for i in range(0, n, block):
        Xc, Pc, wc = X[i : i + block], P[i : i + block], weights[i : i + block]
        M = (Xc[:, None, :] * (Pc * np.sqrt(wc)[:, None])[:, :, None]).reshape(len(Xc), k1 * p)
        info -= M.T @ M
        for a in range(k1):
            B = Xc * np.sqrt(wc * Pc[:, a])[:, None]
            info[a * p : (a + 1) * p, a * p : (a + 1) * p] += B.T @ B
    return info


def _log_factorial(y):
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
            self._c_y, self._c = y, log_rising(y, self.alpha) - _log_factorial(y)
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


class Linked(ScalarFamily):
    """A family with a link other than its default: the general formulas (Fisher scoring)
    with the base family's variance and log-likelihood."""

    canonical = False

    def __init__(self, base: ScalarFamily, link: Link):
        self.base, self._link, self.link = base, link, link.name
        keys = ("name", "domain", "links", "variance_formula", "canonical_link")
        for key in (*keys, "estimates_dispersion"):
            setattr(self, key, getattr(base, key))
        self.deviance_is_pearson = base.deviance_is_pearson
        self.extra_parameters = base.extra_parameters

    def variance(self, mu):
        return self.base.variance(mu)

    def valid_mu(self, mu):
        return self.base.valid_mu(mu)

    def loglik_mu(self, y, mu, scale: float = 1.0):
        return self.base.loglik_mu(y, mu, scale)

    def deviance_mu(self, y, mu):
        return self.base.deviance_mu(y, mu)

    def loglik_constant(self, y):
        return self.base.loglik_constant(y)

    def profile_loglik(self, dev: float, n: float, constant: float) -> float:
        return self.base.profile_loglik(dev, n, constant)

    def start_mu(self, y):
        return self.base.start_mu(y)

    def saturated_loglik(self, y):
        return self.base.saturated_loglik(y)

    def __getattr__(self, key):  # family-specific values such as NegativeBinomial.alpha
        if key == "base":
            raise AttributeError(key)
        return getattr(self.base, key)


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
