"""Student t and F tail probabilities and t quantiles, in numpy alone.

Importing scipy.special costs 0.25-0.3 s, a fifth of a whole `normal-eq` run on a 200 MB
file, for three functions.  The regularized incomplete beta by its continued fraction
(modified Lentz), with log x, log(1 - x) and the log-beta prefactor (Stirling corrections)
computed without cancellation.  Relative error about 1e-15 for df up to 100 and about
df * 5e-16 at most beyond (1e-13 at 300 df, 4e-11 at a million), measured against
mpmath at 80 digits; tails down to 1e-300 keep their relative accuracy.  (R's pt switches to
a normal approximation above 400,000 df.)
"""

from __future__ import annotations

import math

import numpy as np

_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_MAX_TERMS = 2000
_TINY = 1e-300


def _stirling_correction(x: float) -> float:
    """lgamma(x) - ((x - 0.5) log x - x + log sqrt(2 pi)), for x >= 10."""
    x2 = 1.0 / (x * x)
    series = 1.0 / 1188 - x2 * (691.0 / 360360 - x2 / 156.0)  # next term < 4e-17 at x = 10
    return (1.0 / 12 - x2 * (1.0 / 360 - x2 * (1.0 / 1260 - x2 * (1.0 / 1680 - x2 * series)))) / x


def log_beta(a: float, b: float) -> float:
    """log B(a, b) for a, b > 0, accurate when either is large (no lgamma cancellation)."""
    p, q = min(a, b), max(a, b)
    if p >= 10.0:
        corr = _stirling_correction(p) + _stirling_correction(q) - _stirling_correction(p + q)
        return (
            -0.5 * math.log(q)
            + _LN_SQRT_2PI
            + corr
            + (p - 0.5) * math.log(p / (p + q))
            + q * math.log1p(-p / (p + q))
        )
    if q >= 10.0:
        corr = _stirling_correction(q) - _stirling_correction(p + q)
        return (
            math.lgamma(p) + corr + p - p * math.log(p + q) + (q - 0.5) * math.log1p(-p / (p + q))
        )
    return math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)


def _continued_fraction(a: float, b: float, x: float, one_minus_x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    # 1 - qab x / qap; near x = 1 (a t test with df in the millions) from 1 - x, which the
    # caller computed exactly, instead of a difference of two numbers near 1.
    c, d = 1.0, (1.0 - qab * x / qap) if x < 0.5 else (1.0 - b + qab * one_minus_x) / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < 1e-16:
            return h
    return h  # not reached for the arguments used here (t and F tails)


def beta_tail(a: float, b: float, x: float, one_minus_x: float, log_x=None, log_1mx=None) -> float:
    """I_x(a, b), the regularized incomplete beta.  1 - x, and optionally log x and
    log(1 - x), are given by the caller, computed without cancellation: with a = df / 2 in
    the millions, a * log(x) from a rounded x would lose six digits."""
    if x <= 0.0:
        return 0.0
    if one_minus_x <= 0.0:
        return 1.0
    log_x = math.log(x) if log_x is None else log_x
    log_1mx = math.log(one_minus_x) if log_1mx is None else log_1mx
    log_front = a * log_x + b * log_1mx - log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _continued_fraction(a, b, x, one_minus_x) / a
    return 1.0 - math.exp(log_front) * _continued_fraction(b, a, one_minus_x, x) / b


def _t_two_sided(df: float, t: float) -> float:
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(t):
        return 0.0
    t2 = t * t
    if t2 == 0.0:
        return 1.0
    r = t2 / df  # x = 1 / (1 + r), 1 - x = r / (1 + r)
    return beta_tail(
        0.5 * df, 0.5, 1.0 / (1.0 + r), r / (1.0 + r), -math.log1p(r), -math.log1p(1.0 / r)
    )


def t_two_sided(df: float, t) -> np.ndarray:
    """P(|T| > |t|) for Student's t with df degrees of freedom (df may be fractional)."""
    values = [_t_two_sided(float(df), v) for v in np.ravel(t).tolist()]
    return np.array(values, dtype=float).reshape(np.shape(t))


def t_quantile(df: float, p: float) -> float:
    """The p-quantile of Student's t, 0.5 < p < 1 (for confidence intervals)."""
    if not df > 0:
        return math.nan
    from statistics import NormalDist

    tail = 2.0 * (1.0 - p)  # the two-sided tail probability at the quantile
    if df == 1.0:
        return 1.0 / math.tan(math.pi * (1.0 - p))
    if df == 2.0:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    z = NormalDist().inv_cdf(p)
    t = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df * df)
    log_norm = math.lgamma(0.5 * (df + 1)) - math.lgamma(0.5 * df) - 0.5 * math.log(df * math.pi)
    lo, hi = 0.0, math.inf
    for _ in range(100):
        f = _t_two_sided(df, t) - tail  # decreasing in t
        if f > 0:
            lo = t
        else:
            hi = t
        density = math.exp(log_norm - 0.5 * (df + 1) * math.log1p(t * t / df))
        step = f / (2.0 * density)  # d(two-sided tail)/dt = -2 density
        new = t + step
        if not lo < new < hi:  # Newton left the bracket: bisect (or double, unbounded)
            new = 0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * max(t, 1.0)
        if abs(new - t) <= 4e-16 * abs(new):
            return new
        t = new
    return t


def f_upper(f: float, df1: float, df2: float) -> float:
    """P(F > f) for the F distribution with (df1, df2) degrees of freedom."""
    if math.isnan(f) or not (df1 > 0 and df2 > 0):
        return math.nan
    if f <= 0:
        return 1.0
    if math.isinf(f):
        return 0.0
    r = df1 * f / df2  # x = df2 / (df2 + df1 f) = 1 / (1 + r)
    return beta_tail(
        0.5 * df2,
        0.5 * df1,
        1.0 / (1.0 + r),
        r / (1.0 + r),
        -math.log1p(r),
        -math.log1p(1.0 / r),
    )


def _gamma_log_front(a: float, x: float) -> float:
    """log(x^a e^-x / Gamma(a)) without the cancellation of a log x - x - lgamma(a) for a
    large and x near a: a (log(x / a) - (x - a) / a) - log sqrt(2 pi / a) - Stirling's term."""
    if a < 10.0:
        return a * math.log(x) - x - math.lgamma(a)
    u = (x - a) / a
    return a * (math.log1p(u) - u) + 0.5 * math.log(a) - _LN_SQRT_2PI - _stirling_correction(a)


def gamma_upper(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a), the regularized upper incomplete gamma: a series
    for x < a + 1 (then 1 - P), else a continued fraction (modified Lentz), so that small
    upper tails keep their relative accuracy."""
    if math.isnan(x) or not a > 0:
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    front = math.exp(_gamma_log_front(a, x))
    if x < a + 1.0:  # P(a, x) by its series; Q = 1 - P is not small here
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_TERMS):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return max(0.0, 1.0 - total * front)
    b = x + 1.0 - a
    c, d = 1.0 / _TINY, 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return front * h


def chi2_upper(x: float, df: float) -> float:
    """P(X > x) for the chi-squared distribution with df degrees of freedom."""
    if not df > 0:
        return math.nan
    return gamma_upper(0.5 * df, 0.5 * x)
