"""Grouped binomial data (newton --trials): s successes out of n trials per row.

R's glm(cbind(s, n - s) ~ ..., binomial) fits the proportions y = s / n with prior weights n
(times any --weights): the Bernoulli log-likelihood kernel summed with those weights is the
binomial one, so the fit, its standard errors and the deviance (with the saturated terms of
proportions, family.Bernoulli) need nothing else.  Rows with 0 trials get weight 0 and leave
the fit and its degrees of freedom, as in R.  Only the log-likelihood (and AIC, BIC) gains the
constant sum w log C(n, s) of R's binomial()$aic, computed here in one pass of its own.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import reduce

import numpy as np

from mlfit import engine
from mlfit.contract import FitResult, ModelData, with_information_criteria
from mlfit.domains import column_domain_message, domain_message, outside
from mlfit.errors import DataError
from mlfit.solvers.family import log_factorial

#: What the trials column is, in messages.
TRIALS = "the numbers of trials"


def has_trials(chunk: ModelData) -> bool:
    return chunk.extra("trials") is not None


def grouped_family(fam):
    """The Bernoulli family (any link) fitted to proportions s / n in [0, 1]: the same
    object with the target's domain widened (the successes were checked as counts)."""
    if fam.name != "bernoulli":
        raise ValueError(f"trials need the bernoulli (binomial) family, not {fam.name}")
    fam.domain = "proportions"
    return fam


def proportions(chunk: ModelData) -> ModelData:
    """The chunk as the fit sees it: y = s / n (0 where n = 0, as R), prior weights n times
    the given ones, no trials column.  Checks s and n are counts with s <= n (the command
    line's validator checks the same first, naming the file's row and line)."""
    s = np.asarray(chunk.y, dtype=float)
    n = np.asarray(chunk.extra("trials"), dtype=float)
    _check(s, n, chunk.target)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(n > 0, s / n, 0.0)
    prior = chunk.extra("weights")
    weights = n if prior is None else n * np.asarray(prior, dtype=float)
    extras = {k: v for k, v in chunk.extras.items() if k != "trials"}
    return replace(chunk, y=y, extras={**extras, "weights": weights})


def each(chunk: ModelData) -> list[ModelData]:
    """proportions(chunk) for engine.expand (where the chunk lives)."""
    return [proportions(chunk)]


def _check(s: np.ndarray, n: np.ndarray, target: str) -> None:
    bad = np.flatnonzero(outside("counts", s))
    if len(bad):
        where = f"row {int(bad[0]) + 1}"
        raise DataError(domain_message("counts", target, "--trials", where, s[bad[0]]))
    bad = np.flatnonzero(outside("counts", n))
    if len(bad):
        where = f"row {int(bad[0]) + 1}"
        raise DataError(column_domain_message("The trials", "counts", TRIALS, where, n[bad[0]]))
    bad = np.flatnonzero(s > n)
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"Row {i + 1} has {s[i]:g} successes out of {n[i]:g} trials; the target counts "
            "successes, at most the trials (--trials)."
        )


def log_choose(chunks) -> float:
    """sum w log C(n, s) over the rows (w: the --weights, 1 without): one pass."""
    return engine.over_partitions(chunks, _log_choose_sums, _add) or 0.0


def _log_choose_sums(chunks) -> float:
    return reduce(_add, (_chunk_log_choose(c) for c in chunks), 0.0)


def _add(a: float, b: float) -> float:
    return a + b


def _chunk_log_choose(chunk: ModelData) -> float:
    s = np.asarray(chunk.y, dtype=float)
    n = np.asarray(chunk.extra("trials"), dtype=float)
    prior = chunk.extra("weights")
    terms = log_factorial(n) - log_factorial(s) - log_factorial(n - s)
    if prior is None:
        return float(terms.sum())
    prior = np.asarray(prior, dtype=float)
    return float(prior[prior > 0] @ terms[prior > 0])


def with_log_choose(result: FitResult, constant: float) -> FitResult:
    """The fit's log-likelihoods as R's logLik for grouped data: plus the constant (the
    likelihood-ratio test, a difference, is unchanged; McFadden's R², AIC and BIC follow)."""
    m = result.metrics
    for key in ("log_likelihood", "null_log_likelihood"):
        m[key] = m[key] + constant
    m["pseudo_r_squared"] = (
        1.0 - m["log_likelihood"] / m["null_log_likelihood"]
        if m["null_log_likelihood"] != 0
        else math.nan
    )
    result.metrics = with_information_criteria(m, result.n_parameters, result.n_obs)
    result.info["trials"] = True
    return result
