"""Tail probabilities and intervals for coefficient tables (mlfit.distributions: no scipy)."""

from __future__ import annotations

import math

import numpy as np

from mlfit.distributions import chi2_upper, f_upper, t_quantile, t_two_sided


def t_table(estimate: np.ndarray, std_error: np.ndarray, df: float, level: float = 0.95) -> dict:
    """t statistics, two-sided p-values and confidence intervals, as R's summary(lm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = estimate / std_error
    p = t_two_sided(df, t)
    q = t_quantile(df, 0.5 + level / 2.0)
    return {
        "t": t,
        "p_value": p,
        "ci_low": estimate - q * std_error,
        "ci_high": estimate + q * std_error,
    }


def z_table(estimate: np.ndarray, std_error: np.ndarray, level: float = 0.95) -> dict:
    """Wald z statistics, two-sided normal p-values and intervals, as R's summary(glm)."""
    from statistics import NormalDist

    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / std_error
    p = np.array([math.erfc(abs(v) / math.sqrt(2.0)) for v in np.ravel(z).tolist()]).reshape(
        np.shape(z)
    )
    q = NormalDist().inv_cdf(0.5 + level / 2.0)
    return {
        "z": z,
        "p_value": p,
        "ci_low": estimate - q * std_error,
        "ci_high": estimate + q * std_error,
    }


def f_sf(f: float, df1: float, df2: float) -> float:
    """P(F > f) for the F distribution with (df1, df2) degrees of freedom."""
    return f_upper(float(f), float(df1), float(df2))


def likelihood_ratio_test(loglik: float, null_loglik: float, df: int) -> dict:
    """The likelihood-ratio test of a model against its null (intercept-only) model: R's
    anova(null, model, test = "Chisq").  Undefined (NaN: null in the JSON) without a
    log-likelihood or without parameters beyond the null model's."""
    if not (math.isfinite(loglik) and math.isfinite(null_loglik)) or df <= 0:
        return {"lr_statistic": math.nan, "lr_df": df, "lr_p_value": math.nan}
    statistic = max(2.0 * (loglik - null_loglik), 0.0)  # below 0 only by rounding
    return {"lr_statistic": statistic, "lr_df": df, "lr_p_value": chi2_upper(statistic, df)}
