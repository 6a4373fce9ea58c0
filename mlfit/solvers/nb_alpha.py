"""The negative binomial's alpha by maximum likelihood, alternating with the GLM fit (MASS's
glm.nb): the coefficients by Fisher scoring at a fixed alpha, then alpha at the fitted means,
until alpha no longer changes.  Alpha and the coefficients are orthogonal (their expected
cross information is 0), so a few rounds suffice.

alpha's standard error is MASS's: the observed information of alpha at the fitted means,
1 / sqrt(-d^2 l / d alpha^2) (statsmodels' discrete NegativeBinomial gives the same for alpha
from its joint Hessian's alpha entry; its coefficient SEs use the joint observed Hessian,
mlfit's, as glm.nb's, the expected information at the final alpha).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlfit.contract import FitResult
from mlfit.errors import FitError
from mlfit.solvers.family import family as get_family

#: Relative change of alpha between rounds at which the alternation stops.
ALPHA_TOL = 1e-13
#: A change this small that stopped shrinking is rounding (alpha poorly determined).
ALPHA_FLOOR_CHANGE = 1e-8
MAX_ROUNDS = 100
#: Below this alpha with the likelihood still rising towards 0, the counts are not overdispersed.
ALPHA_FLOOR = 1e-8


def estimate(fit_at: Callable, blocks, link: str | None, intercept: bool) -> FitResult:
    """fit_at(family) -> FitResult of the GLM at that family; returns the fit at the
    maximum-likelihood alpha with nb_alpha and its standard error in the metrics."""
    result = fit_at(get_family("poisson", link))  # glm.nb's start
    means = get_family("negative-binomial", link)  # only its inverse link is used
    alpha, change, previous = None, math.inf, math.inf
    for _ in range(MAX_ROUNDS):
        mu = _means(blocks, means, _beta(result, intercept))
        new = _alpha_ml(mu, alpha)
        result = fit_at(get_family("negative-binomial", link, new, estimated=True))
        if alpha is not None:
            previous, change = change, abs(new - alpha) / new
        alpha = new
        # settled, or at the rounding floor of a flat profile (changes no longer shrink)
        if change <= ALPHA_TOL or (change <= ALPHA_FLOOR_CHANGE and change > 0.5 * previous):
            break
    else:
        result.warnings.append(
            f"The estimate of alpha did not settle in {MAX_ROUNDS} rounds (relative change "
            f"{change:.3g}). Fix it with --nb-alpha."
        )
    _, _, d2 = _profile(_means(blocks, means, _beta(result, intercept)), alpha)
    result.metrics["nb_alpha_std_error"] = 1.0 / math.sqrt(-d2) if d2 < 0 else math.nan
    result.info["nb_alpha"] = "maximum likelihood"
    return result


def _beta(result: FitResult, intercept: bool) -> np.ndarray:
    params = result.params
    coef = np.asarray(params.coef, dtype=float)
    return np.concatenate([[params.intercept], coef]) if intercept else coef


def _means(blocks, fam, beta):
    """Re-iterable (y, mu, weights) per block: a list in memory; for chunks, recomputed on
    each pass (memory bounded by a chunk)."""
    means = _Means(blocks, fam, beta)
    return list(means) if isinstance(blocks, list) else means


class _Means:
    def __init__(self, blocks, fam, beta):
        self._blocks, self._fam, self._beta = blocks, fam, beta

    def __iter__(self):
        for A, y, offset, w in self._blocks:
            yield y, self._fam.mean(A @ self._beta + offset), w


def _profile(means, a: float) -> tuple[float, float, float]:
    """(l, dl/dalpha, d^2 l/dalpha^2) of the alpha-dependent part of the log-likelihood,
    sum w [sum_{j<y} log(1 + j alpha) - (y + 1/alpha) log(1 + alpha mu)], at fixed means."""
    ll, d1, d2 = 0.0, 0.0, 0.0
    for y, mu, w in means:
        k = y.astype(np.intp)
        j = np.arange(int(k.max()) if len(k) else 0, dtype=float)
        q = j / (1.0 + j * a)
        rising, r1, r2 = (
            np.concatenate([[0.0], np.cumsum(t)])[k] for t in (np.log1p(j * a), q, q * q)
        )
        L = np.log1p(a * mu)
        dL = mu / (1.0 + a * mu)
        ll += float(w @ (rising - (y + 1.0 / a) * L))
        d1 += float(w @ (r1 + L / a**2 - (y + 1.0 / a) * dL))
        d2 += float(w @ (-r2 - 2.0 * L / a**3 + 2.0 * dL / a**2 + (y + 1.0 / a) * dL * dL))
    return ll, d1, d2


def _alpha_ml(means, alpha0: float | None) -> float:
    """Newton's method on u = log(alpha) with step-halving (the profile need not be concave
    in u far from the optimum: then a step of one doubling or halving towards the gradient)."""
    if alpha0 is None:  # MASS's theta.ml start: 1 / theta0 = mean((y / mu - 1)^2)
        sw = sum(float(w.sum()) for _, _, w in means)
        alpha0 = sum(float(w @ np.square(y / mu - 1.0)) for y, mu, w in means) / sw
        alpha0 = alpha0 if math.isfinite(alpha0) and alpha0 > ALPHA_FLOOR else 1.0
    u = math.log(alpha0)
    ll, d1, d2 = _profile(means, alpha0)
    for _ in range(200):
        a = math.exp(u)
        g, h = a * d1, a * a * d2 + a * d1
        step = -g / h if h < 0 else math.copysign(math.log(2.0), g)
        for _ in range(60):
            new_ll, new_d1, new_d2 = _profile(means, math.exp(u + step))
            if math.isfinite(new_ll) and new_ll >= ll - 4e-16 * abs(ll):
                break
            step *= 0.5
        else:
            break
        u += step
        ll, d1, d2 = new_ll, new_d1, new_d2
        if math.exp(u) < ALPHA_FLOOR and d1 <= 0:
            raise FitError(
                "The maximum-likelihood alpha of the negative binomial is 0: the counts are "
                "not overdispersed relative to a Poisson model. Use --family poisson, or fix "
                "--nb-alpha."
            )
        if abs(step) <= 1e-15 * max(1.0, abs(u)) or g == 0:
            break
    return math.exp(u)
