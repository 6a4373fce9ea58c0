"""`mlfit linreg`: linear regression by gradient descent."""

from __future__ import annotations

import click

from mlfit.commands import data_options, descent_options, design_options, output_options, selection
from mlfit.runner import Output, run_fit
from mlfit.solvers.linreg import Config


@click.command("linreg")
@data_options
@design_options(Config)
@descent_options(Config)
@click.option(
    "--standardize/--no-standardize",
    default=Config.standardize,
    show_default=True,
    help="Descend on standardized features and target; coefficients are always "
    "reported on the original scale.",
)
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
    standardize,
    as_json,
    save,
    plot,
    quiet,
):
    """Linear regression by gradient descent: batch, minibatch or SGD.

    Minimises half the mean squared error. One epoch is one pass over the rows (shuffled
    each epoch for minibatch and sgd). Stops when the gradient norm has fallen by --tol, or at
    --epochs; not converging is a warning (exit 5 with --strict); a diverging loss stops with
    exit 1 and a hint to lower --lr.

    \b
        mlfit linreg sample_data/houses.csv -y price
        mlfit linreg sample_data/houses.csv -y price --method sgd --lr 0.01 --epochs 50
        mlfit linreg sample_data/houses.csv -y price --json --seed 7 | jq .convergence.iterations
    """
    config = Config(
        method=method,
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        tol=tol,
        seed=seed,
        intercept=intercept,
        standardize=standardize,
    )
    run_fit(
        "linreg",
        config,
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        poly=poly,
        strict=strict,
    )
