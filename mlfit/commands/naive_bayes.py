"""`mlfit naive-bayes`: Gaussian and categorical naive Bayes in one model."""

from __future__ import annotations

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
from mlfit.solvers.naive_bayes import Config


@click.command("naive-bayes")
@data_options
@config_option(
    Config,
    "alpha",
    "Laplace smoothing of category counts: p = (count + ALPHA) / (class rows + ALPHA * levels).",
    type=FiniteFloat(min=0, min_open=True),
    metavar="ALPHA",
)
@config_option(
    Config,
    "var_smoothing",
    "Added to every variance, times the largest feature variance (scikit-learn's).",
    type=FiniteFloat(min=0),
)
@classifier_options(Config)
@chunk_rows_option("in three passes")
@output_options
def command(data, target, features, drop, na, chunk_rows, as_json, save, plot, quiet, **settings):
    """Naive Bayes: Gaussian for numbers, smoothed categorical for text.

    Each class has a prior (its share of the rows) and each feature, given the class, its own
    distribution: numeric features a normal density (per-class mean and variance, plus
    --var-smoothing times the largest feature variance, as scikit-learn's GaussianNB), text
    features and numbers named with --categorical a categorical one with Laplace smoothing
    (--alpha 1 is the seeds' add-one rule, as scikit-learn's CategoricalNB). A table with both
    kinds gives one model. A level never seen in training gets the probability of a level
    with count 0, ALPHA / (class rows + ALPHA * levels), not an error. Reports the priors, the
    per-class means and variances, the smoothed probabilities and accuracy, log-loss, the
    confusion matrix, per-class precision, recall and F1 (and ROC AUC for two classes), also on
    held-out rows with --holdout.

    \b
        mlfit naive-bayes sample_data/flowers.csv -y species
        mlfit naive-bayes sample_data/flowers.csv -y species --holdout 0.25 --seed 1
        mlfit naive-bayes sample_data/admissions.csv -y admitted --categorical rank -o nb.model
    """
    run_fit(
        "naive-bayes",
        config_from(Config, settings),
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        chunk_rows=chunk_rows,
    )
