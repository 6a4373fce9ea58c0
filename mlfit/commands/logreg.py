"""`mlfit logreg`: logistic and softmax regression."""

from __future__ import annotations

import click

from mlfit.commands import (
    classifier_options,
    covariance,
    data_options,
    descent_options,
    design_options,
    l2_option,
    max_iter_option,
    output_options,
    robust_options,
    selection,
    weights_option,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers.logreg import Config

METHODS = ("auto", "newton", "lbfgs", "batch", "minibatch", "sgd")


@click.command("logreg")
@data_options
@design_options(Config)
@descent_options(Config, METHODS)
@max_iter_option(Config, "Maximum iterations for --method newton and lbfgs.")
@l2_option(
    Config,
    "LAMBDA/2 * sum(coef^2) on the log-likelihood (for binary models, scikit-learn's C = 1/LAMBDA)",
)
@click.option(
    "--class-weight",
    type=click.Choice(["none", "balanced"]),
    default=Config.class_weight,
    show_default=True,
    help="balanced: weight each row by n / (classes * rows of its class).",
)
@weights_option
@robust_options
@click.option("--multiclass", is_flag=True, help="Softmax regression even for two classes.")
@classifier_options(Config, seed=False, threshold_for="Binary models")
@output_options
def command(
    data,
    target,
    features,
    drop,
    na,
    intercept,
    poly,
    method,
    lr,
    batch_size,
    epochs,
    tol,
    seed,
    strict,
    max_iter,
    l2,
    class_weight,
    weights,
    se,
    hc,
    cluster,
    multiclass,
    holdout,
    threshold,
    as_json,
    save,
    plot,
    quiet,
):
    """Logistic regression; softmax for more than two classes.

    Class labels may be numbers or text; the first class in sorted order is the reference
    (binary: the model gives the probability of the second class). --method auto uses
    Newton's method up to 500 parameters (standard errors, z tests) and L-BFGS beyond; batch,
    minibatch and sgd are the seeds' gradient descent. Reports accuracy, log-loss, the
    confusion matrix, per-class precision, recall and F1, and ROC AUC for two classes, also on
    held-out rows with --holdout.

    \b
        mlfit logreg sample_data/admissions.csv -y admitted
        mlfit logreg sample_data/flowers.csv -y species --holdout 0.25 --seed 1
        mlfit logreg sample_data/admissions.csv -y admitted --method sgd --lr 0.05 --epochs 30
        mlfit logreg sample_data/admissions.csv -y admitted --se robust --hc 1
        mlfit logreg sample_data/admissions.csv -y admitted --cluster rank
    """
    config = Config(
        method=method,
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        tol=tol,
        seed=seed,
        max_iter=max_iter,
        l2=l2,
        class_weight=class_weight,
        multiclass=multiclass,
        intercept=intercept,
        holdout=holdout,
        threshold=threshold,
        covariance=covariance(se, hc, cluster, l2),
    )
    run_fit(
        "logreg",
        config,
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        poly=poly,
        strict=strict,
        extras={"weights": weights, "cluster": cluster},
    )
