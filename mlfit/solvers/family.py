"""Exponential families for GLMs: mean, log-likelihood, deviance, gradient and Hessian.

Every quantity is written in a form that cannot overflow for large |eta| (logaddexp, log1p,
xlogy).  A scalar family is defined by its link and variance function; the gradient and the
Fisher information follow from the general GLM formulas, so a family with a non-canonical link
(Gamma with log link, say) is one more class here.  The categorical family (softmax) has one
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

#: eta beyond which exp(eta) would overflow float64; Poisson means are clipped there.
_MAX_ETA = 700.0


class ScalarFamily(ABC):
    """A one-parameter exponential family with a link; subclasses fill in the formulas."""

    name = ""
    link = ""
    canonical = True  # canonical link: mu_eta == variance, gradient X'(y - mu)
    estimates_dispersion = False
    deviance_is_pearson = False  # unit deviance == squared Pearson residual (Gaussian)
    domain: str | None = None  # the target's values, a key of mlfit.domains (None: any)

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
    def mean(self, eta):
        """The inverse link: mu from the linear predictor eta."""

    @abstractmethod
    def mu_eta(self, eta):
        """d mu / d eta."""

    @abstractmethod
    def variance(self, mu):
        """The variance function V(mu)."""

    @abstractmethod
    def link_fn(self, mu):
        """The link: eta from mu."""

    @abstractmethod
    def loglik(self, y, eta, scale: float = 1.0):
        """Per-row log-likelihood."""

    @abstractmethod
    def unit_deviance(self, y, eta):
        """Per-row deviance 2 * (loglik(saturated) - loglik)."""

    def start_mu(self, y):
        return y

    def saturated_loglik(self, y):
        """Per-row log-likelihood of the saturated model, from deviance = 2 (ll_sat - ll)."""
        eta = np.zeros_like(y)
        return self.loglik(y, eta) + 0.5 * self.unit_deviance(y, eta)

    def objective(self, X, y, beta, offset, weights, l2, info: bool = True):
        """(log-likelihood, gradient, information or None when info=False)."""
        eta = X @ beta + offset
        mu, d, ll_rows = self.parts(y, eta)
        ll = float(np.dot(weights, ll_rows))
        if self.canonical:  # d / V(mu) == 1: skip the division, exact in the tails
            grad, info_w = X.T @ (weights * (y - mu)), weights * d
        else:
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
    name, link = "gaussian", "identity"
    estimates_dispersion = deviance_is_pearson = True

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


class Bernoulli(ScalarFamily):
    name, link, domain = "bernoulli", "logit", "binary"

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
        return 2.0 * (np.logaddexp(0.0, eta) - y * eta)

    def parts(self, y, eta):
        log1p_exp = np.logaddexp(0.0, eta)  # -log(1 - mu)
        mu = np.exp(-np.logaddexp(0.0, -eta))
        return mu, mu * np.exp(-log1p_exp), y * eta - log1p_exp

    def start_mu(self, y):
        return (y + 0.5) / 2.0


class Poisson(ScalarFamily):
    name, link, domain = "poisson", "log", "counts"

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


FAMILIES = {"gaussian": Gaussian, "bernoulli": Bernoulli, "logistic": Bernoulli, "poisson": Poisson}


def family(name: str) -> ScalarFamily:
    """A scalar family by name ('logistic' is an alias of 'bernoulli')."""
    return FAMILIES[name]()
