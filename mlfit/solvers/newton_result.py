"""The result of a GLM fit as R's summary(glm): dispersion, log-likelihood, standard errors
and tests, against the intercept-only (null) model."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from mlfit import engine
from mlfit.contract import FitResult, Table
from mlfit.solvers.newton_passes import Constant, each, final_pass, summed
from mlfit.solvers.optimize import cholesky, inverse, inverse_diagonal, newton
from mlfit.stats import likelihood_ratio_test, t_table, z_table


def null_model(fam, blocks, stats, config) -> tuple[float, float]:
    """Log-likelihood and deviance of the intercept-only model (eta = offset without one)."""
    ones = engine.expand(blocks, partial(each, Constant, 1.0 if config.intercept else 0.0))
    beta = np.zeros(1)
    if config.intercept and fam.canonical and not stats["has_offset"]:
        # canonical link, no offset: the score equation sum w (y - mu) = 0 gives mu = mean(y)
        beta = np.array([float(fam.link_fn(np.array([stats["y_mean"]]))[0])])
    elif config.intercept:
        beta0 = np.array(
            [
                float(fam.link_fn(fam.start_mu(np.array([stats["y_mean"]])))[0])
                - stats["offset_mean"]
            ]
        )
        beta = newton(
            summed(fam, ones, None), beta0, 100, 1e-14, saturated_loglik=stats["saturated_loglik"]
        ).beta
    final = final_pass(fam, ones, beta)
    return final["loglik"], final["deviance"]


def _gaussian_loglik(dev: float, n: int, log_weights: float = 0.0) -> float:
    """Maximised Gaussian log-likelihood with sigma^2 = dev / n (R's logLik for glm), plus
    half the sum of log prior weights (row variances sigma^2 / w, as R's logLik.lm);
    undefined (NaN, null in the JSON) for an exact fit, where sigma is 0."""
    if dev <= 0:
        return math.nan
    return -0.5 * n * (math.log(2.0 * math.pi * dev / n) + 1.0) + 0.5 * log_weights


def glm_result(fam, opt, ls, final, n, labels, null_ll, null_dev, config, params) -> FitResult:
    """ls: the final weighted least squares (None for a penalised fit: no standard errors);
    params: the model's Params at opt.beta."""
    p = len(labels)
    dev = final["deviance"]
    df_resid = n - p
    exact = ls is not None and not ls.aliased.any()
    if exact and fam.deviance_is_pearson:  # the QR's residual sum of squares: more digits
        dev = ls.rss
    if fam.estimates_dispersion:  # sigma^2 estimated (counted as a parameter), as R's
        # summary.glm: Pearson's chi-squared (the weighted QR's RSS) over the residual df
        pearson = ls.rss if exact else dev if fam.deviance_is_pearson else final["pearson"]
        dispersion = pearson / df_resid if df_resid > 0 else math.nan
        log_w = final["log_weights"]
        if fam.deviance_is_pearson:
            loglik = _gaussian_loglik(dev, n, log_w)
            null_ll = _gaussian_loglik(null_dev, n, log_w)
        else:  # gamma, inverse Gaussian: at R's dispersion dev / sum(w) (its logLik and AIC)
            sums = final["sum_w"], final["loglik_constant"]
            loglik, null_ll = fam.profile_loglik(dev, *sums), fam.profile_loglik(null_dev, *sums)
        k = p + fam.extra_parameters
    else:
        dispersion, loglik, k = 1.0, final["loglik"], p + fam.extra_parameters
    table = {"estimate": opt.beta.copy()}
    if config.l2 == 0 and (ls is None or exact):
        if exact:
            se = np.sqrt(dispersion * ls.diag_s) / ls.scale
        else:  # well conditioned: the Cholesky factor is as accurate
            se = np.sqrt(dispersion * inverse_diagonal(*cholesky(opt.info)))
        table["std_error"] = se
        table.update(
            t_table(opt.beta, se, df_resid) if fam.estimates_dispersion else z_table(opt.beta, se)
        )
    metrics = {
        "deviance": dev,
        "null_deviance": null_dev,
        "df_residual": df_resid,
        "df_null": n - (1 if config.intercept else 0),
        "log_likelihood": loglik,
        "null_log_likelihood": null_ll,
        "pseudo_r_squared": 1.0 - loglik / null_ll if null_ll != 0 else math.nan,
        "dispersion": dispersion,
        "n": n,
    }
    if config.l2 == 0:  # against the intercept-only model (eta = offset without one)
        metrics.update(likelihood_ratio_test(loglik, null_ll, p - (1 if config.intercept else 0)))
    warnings = []
    if not opt.converged:
        warnings.append(
            f"Newton's method did not converge in {config.max_iter} iterations "
            f"(relative deviance change {opt.last_change:.3g}). Increase --max-iter."
        )
    info = {"method": "newton+qr" if ls is not None else "newton", "family": fam.name}
    info["link"] = fam.link
    if fam.name == "negative-binomial":  # fixed by --nb-alpha, or estimated (nb_alpha.py)
        metrics["nb_alpha"] = fam.alpha
    if config.l2 > 0:
        info["l2"] = config.l2
    # (A'WA)^-1 for leverage in the diagnostic plots (p x p; the information is X'WX).
    if exact:
        unscaled_cov = ls.unscaled_cov()
    else:
        unscaled_cov = inverse(*cholesky(opt.info))
    return FitResult(
        params,
        n_parameters=k,
        n_obs=n,
        tables={"coefficients": Table(labels, table)},
        metrics=metrics,
        convergence=opt.convergence("newton"),
        warnings=warnings,
        info=info,
        internals={"unscaled_cov": unscaled_cov},
    )
