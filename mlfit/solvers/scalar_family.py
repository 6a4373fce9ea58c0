"""What every one-parameter GLM family shares: ScalarFamily (mean, log-likelihood, deviance,
gradient and information from its variance function and link, by the general GLM formulas)
and Linked (a family under a link other than its default: Fisher scoring)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from mlfit.domains import domain_message, outside
from mlfit.errors import DataError
from mlfit.numerics import weighted_gram
from mlfit.solvers.links import Identity, Link


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
        return penalise(ll, grad, matrix, beta, l2)

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


def penalise(ll, grad, info, beta, l2):
    """Subtract (l2 / 2) * ||beta||^2 over the penalised entries (l2: per-entry array)."""
    if l2 is None:
        return ll, grad, info
    ll -= 0.5 * float(np.sum(l2 * beta * beta))
    grad = grad - l2 * beta
    if info is not None:
        info = info + np.diag(l2)
    return ll, grad, info


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
