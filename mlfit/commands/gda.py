"""`mlfit gda`: Gaussian discriminant analysis, linear (shared covariance) or quadratic."""

from __future__ import annotations

import math

import click

from mlfit.commands import (
    FiniteFloat,
    chunk_rows_option,
    classifier_options,
    config_from,
    config_option,
    data_options,
    output_options,
    selection,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers.gda import Config


class Shrinkage(click.ParamType):
    """--shrinkage auto (Ledoit-Wolf) or a number in [0, 1]."""

    name = "auto|ALPHA"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float) or value == "auto":
            return value
        try:
            alpha = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a number.", param, ctx)
        if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
            self.fail(f"{value!r}: the shrinkage must be between 0 and 1, or 'auto'.", param, ctx)
        return alpha


@click.command("gda")
@data_options
@click.option(
    "--per-class-covariance",
    is_flag=True,
    help="One covariance per class (quadratic discriminant analysis) instead of a shared one.",
)
@click.option(
    "--shrinkage",
    type=Shrinkage(),
    help="Shrink each class's standardized covariance towards a multiple of the identity: auto "
    "(Ledoit-Wolf, as scikit-learn's LDA shrinkage='auto') or a weight in [0, 1] (default: "
    "none, unless a covariance is singular).",
)
@config_option(
    Config,
    "reg_covar",
    "Added to each covariance diagonal, times that feature's variance (unit-free).",
    type=FiniteFloat(min=0),
)
@classifier_options(Config)
@chunk_rows_option("one pass per statistic (labels, moments, metrics)")
@output_options
def command(data, target, features, drop, na, chunk_rows, as_json, save, plot, quiet, **settings):
    """Gaussian discriminant analysis: linear, or quadratic with --per-class-covariance.

    Class priors, means and a covariance shared by the classes (the seeds' GDA, i.e. linear
    discriminant analysis) or one per class (quadratic) by maximum likelihood; each row goes
    to its most probable class by Bayes' rule, computed in log space through Cholesky
    factors. A singular or nearly singular covariance (a feature constant within a class,
    more features than rows, collinear features) gets a warning naming the features and
    class, and is regularised by Ledoit-Wolf shrinkage unless --shrinkage or --reg-covar say
    otherwise. Features must be numeric. Reports priors, means, the covariance, accuracy,
    log-loss, the confusion matrix, per-class precision, recall and F1 (ROC AUC for two
    classes), also on held-out rows with --holdout, and the generative model's
    log-likelihood, AIC and BIC.

    \b
        mlfit gda sample_data/flowers.csv -y species
        mlfit gda sample_data/flowers.csv -y species --per-class-covariance --holdout 0.25
        mlfit gda sample_data/admissions.csv -y admitted --shrinkage auto -o admit.model
    """
    run_fit(
        "gda",
        config_from(Config, settings),
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        chunk_rows=chunk_rows,
    )
