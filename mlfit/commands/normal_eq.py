"""`mlfit normal-eq`: exact least squares."""

from __future__ import annotations

import click

from mlfit.commands import (
    chunk_rows_option,
    covariance,
    data_options,
    design_options,
    l2_option,
    output_options,
    robust_options,
    selection,
    weights_option,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers.normal_eq import Config


@click.command("normal-eq")
@data_options
@design_options(Config)
@l2_option(
    Config, "LAMBDA * sum(coef^2) (ridge)", " Standard errors are not reported for ridge fits."
)
@weights_option
@robust_options
@chunk_rows_option("in one pass")
@output_options
def command(
    data,
    target,
    features,
    drop,
    na,
    intercept,
    poly,
    l2,
    weights,
    se,
    hc,
    cluster,
    chunk_rows,
    as_json,
    save,
    plot,
    quiet,
):
    """Exact least squares by QR, with standard errors, t tests and R².

    Solves min ||y - X b||^2 (+ LAMBDA ||b||^2 with --l2) without ever forming X'X: a
    Householder QR of the column-scaled design, refined in extended precision for small
    problems. Reports coefficients with standard errors, t values, p-values and 95%
    intervals, R², adjusted R², residual standard error, the F test and the condition number.
    Columns that are linear combinations of earlier ones are reported as aliased and left out.

    \b
        mlfit normal-eq sample_data/houses.csv -y price
        mlfit normal-eq sample_data/houses.csv -y price --json | jq .metrics.r_squared
        mlfit normal-eq big.csv.gz --chunk-rows 100000
        mlfit normal-eq survey.csv -y income --weights w
        mlfit normal-eq sample_data/houses.csv -y price --drop id --se robust --hc 3
        mlfit normal-eq sample_data/houses.csv -y price --drop id --cluster district
    """
    run_fit(
        "normal-eq",
        Config(intercept=intercept, l2=l2, covariance=covariance(se, hc, cluster, l2)),
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        poly=poly,
        chunk_rows=chunk_rows,
        extras={"weights": weights, "cluster": cluster},
    )
