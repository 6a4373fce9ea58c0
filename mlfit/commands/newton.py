"""`mlfit newton`: generalised linear models by Newton's method."""

from __future__ import annotations

import dataclasses

import click

from mlfit.commands import (
    FiniteFloat,
    chunk_rows_option,
    data_options,
    design_options,
    l2_option,
    max_iter_option,
    output_options,
    selection,
    strict_option,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers import family
from mlfit.solvers.newton import Config

FAMILIES = list(family.FAMILIES)  # a family added to mlfit/solvers/family.py appears here


@click.command("newton")
@data_options
@design_options(Config)
@click.option(
    "--family",
    "family_name",
    type=click.Choice(FAMILIES),
    default=Config.family,
    show_default=True,
    help="Response distribution and its canonical link: gaussian (identity), bernoulli "
    "or logistic (logit), poisson (log).",
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
    max_iter,
    tol,
    l2,
    offset,
    chunk_rows,
    strict,
    as_json,
    save,
    plot,
    quiet,
):
    """GLMs by Newton's method: Gaussian, logistic, Poisson.

    Fits a GLM (Gaussian, Bernoulli/logistic or Poisson, canonical links) by Newton-Raphson
    with step-halving. Reports coefficients with standard errors from the inverse Fisher
    information, z (t for Gaussian) values, p-values and 95% intervals, deviance, null deviance,
    log-likelihood, AIC, BIC and McFadden's pseudo-R². Separation in a logistic model and a
    singular Hessian stop with exit code 1 and name the cause.

    \b
        mlfit newton sample_data/admissions.csv -y admitted --family bernoulli
        mlfit newton sample_data/claims.csv -y claims --family poisson --offset log_exposure --drop exposure
        mlfit newton sample_data/claims.csv -y claims --family poisson --offset log_exposure --drop exposure --json | jq .coefficients
    """
    fam = family.family(family_name)
    sel = selection(target, features, drop, na)
    if fam.domain:  # checked as the rows are read, so a message names the file's row
        sel = dataclasses.replace(sel, target_domain=(fam.domain, f"the {fam.name} family"))
    config = Config(
        family=fam.name,  # aliases resolved: logistic -> bernoulli
        max_iter=max_iter,
        tol=tol,
        l2=l2,
        intercept=intercept,
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
        extras={"offset": offset} if offset else None,
    )
