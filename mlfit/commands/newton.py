"""`mlfit newton`: generalised linear models by Newton's method."""

from __future__ import annotations

import dataclasses

import click

from mlfit.commands import (
    FiniteFloat,
    chunk_rows_option,
    covariance,
    data_options,
    design_options,
    l2_option,
    max_iter_option,
    output_options,
    robust_options,
    selection,
    strict_option,
    weights_option,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers import family
from mlfit.solvers.links import LINKS as LINKS_REGISTRY
from mlfit.solvers.newton import Config

FAMILIES = list(family.FAMILIES)  # a family added to mlfit/solvers/family.py appears here
LINKS = list(LINKS_REGISTRY)  # and a link added to mlfit/solvers/links.py
#: "gaussian (identity, log, inverse); ...": each family's links, its default first.
FAMILY_LINKS = "; ".join(
    f"{name} ({', '.join(cls.links)})" for name, cls in family.FAMILIES.items() if name == cls.name
)


@click.command("newton")
@data_options
@design_options(Config)
@click.option(
    "--family",
    "family_name",
    type=click.Choice(FAMILIES),
    default=Config.family,
    show_default=True,
    help="Response distribution (logistic and binomial are aliases of bernoulli).",
)
@click.option(
    "--link",
    type=click.Choice(LINKS),
    default=None,
    help=f"Link function g(mu) = eta; the family's default when omitted. Per family, "
    f"default first: {FAMILY_LINKS}. A non-canonical link is fitted by Fisher scoring.",
)
@click.option(
    "--nb-alpha",
    type=FiniteFloat(min=0, min_open=True),
    default=None,
    metavar="A",
    help="negative-binomial: fix alpha in V(mu) = mu + alpha mu^2 (default: estimated by "
    "maximum likelihood, reported with its standard error, as MASS's glm.nb).",
)
@max_iter_option(Config)
@click.option(
    "--tol",
    type=FiniteFloat(min=0),
    default=Config.tol,
    show_default=True,
    help="Stop when the next step would change the deviance by less than tol, relative.",
)
@l2_option(
    Config,
    "LAMBDA/2 * sum(coef^2) on the log-likelihood",
    " Standard errors are not reported for penalised fits.",
)
@click.option(
    "--offset",
    metavar="COL",
    help="Column added to the linear predictor with "
    "coefficient 1 (e.g. log exposure for Poisson rates).",
)
@click.option(
    "--trials",
    metavar="COL",
    help="Grouped binomial data (bernoulli family): the target counts successes out of this "
    "column's trials, as R's glm(cbind(successes, trials - successes) ~ ...). Fits s/n with "
    "prior weights n (times --weights); deviance, logLik and AIC as R's; rows of 0 trials "
    "leave the fit and its df. predict gives the probability.",
)
@weights_option
@robust_options
@chunk_rows_option("one pass per iteration")
@strict_option
@output_options
def command(
    data,
    target,
    features,
    drop,
    na,
    intercept,
    poly,
    family_name,
    link,
    nb_alpha,
    max_iter,
    tol,
    l2,
    offset,
    trials,
    weights,
    se,
    hc,
    cluster,
    chunk_rows,
    strict,
    as_json,
    save,
    plot,
    quiet,
):
    """GLMs by Newton's method: Gaussian, logistic, Poisson, gamma, inverse Gaussian, NB.

    Fits a GLM by Newton-Raphson with step-halving (Fisher scoring for a non-canonical
    --link). Reports coefficients with standard errors from the inverse expected (Fisher)
    information, as R's summary.glm, scaled by the dispersion (Pearson's chi-squared over the
    residual df for gaussian, gamma and inverse-gaussian, with t values; 1 otherwise, with z
    values), p-values and 95% intervals, deviance, null deviance, log-likelihood and AIC as R
    computes them, BIC, McFadden's pseudo-R² and the likelihood-ratio test against the null
    model. Collinear columns are aliased as R's glm does (a warning; no estimate). Separation
    in a logistic model stops with exit code 1 and names the cause.

    \b
        mlfit newton sample_data/admissions.csv -y admitted --family bernoulli
        mlfit newton sample_data/admissions.csv -y admitted --family bernoulli --link probit
        mlfit newton doses.csv -y deaths --trials exposed --family binomial -x dose,sex
        mlfit newton sample_data/houses.csv -y price --drop id --family gamma --link log
        mlfit newton sample_data/claims.csv -y claims --family negative-binomial --offset log_exposure --drop exposure
        mlfit newton sample_data/claims.csv -y claims --family poisson --offset log_exposure --drop exposure
        mlfit newton sample_data/claims.csv -y claims --family poisson --offset log_exposure --drop exposure --json | jq .coefficients
        mlfit newton sample_data/claims.csv -y claims --family poisson --offset log_exposure --drop exposure --se robust --hc 0
        mlfit newton sample_data/claims.csv -y claims --family poisson --offset log_exposure --drop exposure --cluster vehicle
    """
    fam = family.family(family_name)
    if link is not None and link not in fam.links:
        raise click.BadParameter(
            f"the {fam.name} family takes {', '.join(fam.links)}, not {link!r}.",
            param_hint="'--link'",
        )
    if nb_alpha is not None and fam.name != "negative-binomial":
        raise click.BadParameter(
            "only the negative-binomial family has an alpha.", param_hint="'--nb-alpha'"
        )
    if trials and fam.name != "bernoulli":
        raise click.BadParameter(
            f"grouped binomial data need --family bernoulli (or binomial), not {family_name}.",
            param_hint="'--trials'",
        )
    sel = selection(target, features, drop, na)
    if fam.domain:  # checked as the rows are read, so a message names the file's row
        domain = ("counts", "--trials (successes)") if trials else (fam.domain, None)
        needed_by = domain[1] or f"the {fam.name} family"
        sel = dataclasses.replace(sel, target_domain=(domain[0], needed_by))
    config = Config(
        family=fam.name,  # aliases resolved: logistic -> bernoulli
        link=link,
        nb_alpha=nb_alpha,
        max_iter=max_iter,
        tol=tol,
        l2=l2,
        intercept=intercept,
        covariance=covariance(se, hc, cluster, l2),
    )
    run_fit(
        "newton",
        config,
        data,
        sel,
        Output(as_json, save, quiet, plot),
        poly=poly,
        chunk_rows=chunk_rows,
        strict=strict,
        extras={"offset": offset, "weights": weights, "cluster": cluster, "trials": trials},
    )
