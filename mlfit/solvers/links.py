"""GLM link functions eta = g(mu): the inverse link, d mu / d eta and where each is defined.

A link is a few numpy formulas written so that they cannot overflow or leak warnings; the
families of mlfit/solvers/family.py say which links they allow.  `valid_eta` marks the
linear predictors the inverse link is defined at (R's valideta); the family adds its own
range of mu, and a point outside either has log-likelihood -inf, so Newton's step-halving
walks back into the valid region instead of producing NaN.
"""

from __future__ import annotations

import math

import numpy as np

from mlfit.numerics import sigmoid

#: eta beyond which exp(eta) would overflow float64.
_MAX_ETA = 700.0


class Link:
    name = ""
    formula = ""  # for --help and the README

    def link(self, mu):
        raise NotImplementedError

    def inverse(self, eta):
        raise NotImplementedError

    def mu_eta(self, eta):
        """d mu / d eta."""
        raise NotImplementedError

    def valid_eta(self, eta):
        return np.isfinite(eta)


class Identity(Link):
    name, formula = "identity", "mu"

    def link(self, mu):
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(eta)


class Log(Link):
    name, formula = "log", "log(mu)"

    def link(self, mu):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(mu)

    def inverse(self, eta):
        return np.exp(np.minimum(eta, _MAX_ETA))

    def mu_eta(self, eta):
        return self.inverse(eta)


class Logit(Link):
    name, formula = "logit", "log(mu / (1 - mu))"

    def link(self, mu):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(mu) - np.log1p(-mu)

    def inverse(self, eta):
        return sigmoid(eta)

    def mu_eta(self, eta):
        return sigmoid(eta) * sigmoid(-eta)


class Probit(Link):
    """Phi^-1(mu); scipy's normal distribution, imported only when this link is used."""

    name, formula = "probit", "Phi^-1(mu)"

    def link(self, mu):
        from scipy.special import ndtri

        with np.errstate(divide="ignore", invalid="ignore"):
            return ndtri(mu)

    def inverse(self, eta):
        from scipy.special import ndtr

        return ndtr(eta)

    def mu_eta(self, eta):
        return np.exp(-0.5 * np.square(eta)) / math.sqrt(2.0 * math.pi)


class Cloglog(Link):
    name, formula = "cloglog", "log(-log(1 - mu))"

    def link(self, mu):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        return -np.expm1(-np.exp(np.minimum(eta, _MAX_ETA)))  # 1 - exp(-e^eta), exact near 0

    def mu_eta(self, eta):
        eta = np.minimum(eta, _MAX_ETA)
        return np.exp(eta - np.exp(eta))


class Inverse(Link):
    name, formula = "inverse", "1 / mu"

    def link(self, mu):
        with np.errstate(divide="ignore"):
            return 1.0 / np.asarray(mu, dtype=float)

    def inverse(self, eta):
        with np.errstate(divide="ignore"):
            return 1.0 / np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        with np.errstate(divide="ignore", over="ignore"):
            return -1.0 / np.square(eta)

    def valid_eta(self, eta):
        return np.isfinite(eta) & (eta != 0)


class InverseSquared(Link):
    name, formula = "inverse-squared", "1 / mu^2"

    def link(self, mu):
        with np.errstate(divide="ignore"):
            return 1.0 / np.square(mu)

    def inverse(self, eta):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / np.sqrt(eta)

    def mu_eta(self, eta):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -0.5 / (eta * np.sqrt(eta))

    def valid_eta(self, eta):
        return np.isfinite(eta) & (eta > 0)


class Sqrt(Link):
    name, formula = "sqrt", "sqrt(mu)"

    def link(self, mu):
        with np.errstate(invalid="ignore"):
            return np.sqrt(mu)

    def inverse(self, eta):
        return np.square(eta)

    def mu_eta(self, eta):
        return 2.0 * np.asarray(eta, dtype=float)

    def valid_eta(self, eta):
        return np.isfinite(eta) & (eta > 0)  # as R: mu = eta^2 is one-to-one only for eta > 0


LINKS: dict[str, type[Link]] = {
    cls.name: cls for cls in (Identity, Log, Logit, Probit, Cloglog, Inverse, InverseSquared, Sqrt)
}


def get_link(name: str) -> Link:
    return LINKS[name]()
