"""`mlfit mlp`: multilayer perceptrons trained by backpropagation."""

from __future__ import annotations

import click

from mlfit.commands import (
    FiniteFloat,
    chunk_rows_option,
    config_from,
    config_option,
    data_options,
    output_options,
    selection,
    strict_option,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers.mlp import Config
from mlfit.solvers.network import ACTIVATIONS, OPTIMIZERS


class LayerSizes(click.ParamType):
    """--hidden 64,32 (units per hidden layer), or --hidden none for no hidden layer."""

    name = "UNITS"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        if str(value).strip().lower() in ("", "none", "0"):
            return ()
        try:
            sizes = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r}: give units per hidden layer, e.g. 64,32 (or none).")
        if any(s < 1 for s in sizes):
            self.fail(f"{value!r}: every hidden layer needs at least one unit.")
        return sizes


@click.command("mlp")
@data_options
@click.option(
    "--hidden",
    type=LayerSizes(),
    default=",".join(map(str, Config.hidden)),
    show_default=True,
    help="Units per hidden layer, e.g. 64,32; none: a linear or softmax model.",
)
@config_option(
    Config,
    "activation",
    "Hidden-layer activation (Glorot-uniform initialisation).",
    type=click.Choice(ACTIVATIONS),
)
@config_option(
    Config,
    "task",
    "auto: text or at most 20 distinct integers is classification, other numbers regression.",
    type=click.Choice(["auto", "regression", "classification"]),
)
@config_option(
    Config,
    "optimizer",
    "sgd, momentum (0.9) or adam.",
    type=click.Choice(OPTIMIZERS),
)
@config_option(
    Config,
    "lr",
    "Learning rate.",
    type=FiniteFloat(min=0, min_open=True),
)
@config_option(
    Config,
    "batch_size",
    "Rows per step.",
    type=click.IntRange(min=1),
)
@config_option(
    Config,
    "epochs",
    "Maximum passes over the training rows.",
    type=click.IntRange(min=1),
)
@click.option(
    "--l2",
    type=FiniteFloat(min=0),
    default=Config.l2,
    show_default=True,
    metavar="LAMBDA",
    help="Penalty LAMBDA/2 * sum of squared weights on the summed loss (biases free).",
)
@config_option(
    Config,
    "tol",
    "An epoch improves the loss (the validation loss with --early-stopping) when it "
    "lowers it by more than this.",
    type=FiniteFloat(min=0),
)
@config_option(
    Config,
    "patience",
    "Stop after this many epochs without improvement.",
    type=click.IntRange(min=1),
)
@click.option(
    "--early-stopping",
    is_flag=True,
    help="Hold out --validation-fraction of the rows (stratified for classes), stop on their "
    "loss and keep the best epoch's weights.",
)
@config_option(
    Config,
    "validation_fraction",
    "Rows held out for --early-stopping.",
    type=FiniteFloat(0, 1, min_open=True, max_open=True),
)
@config_option(
    Config,
    "dtype",
    "Precision of training (predictions are computed in float64 from the weights).",
    type=click.Choice(["float32", "float64"]),
)
@click.option(
    "--seed", type=int, default=Config.seed, show_default=True, help="Seed of weights and shuffles."
)
@click.option(
    "--check-grad",
    is_flag=True,
    help="Compare backpropagation with central finite differences (float64) on a few rows; "
    "the largest relative error is in the JSON's solver section.",
)
@chunk_rows_option("one pass per epoch, rows shuffled within each chunk")
@strict_option
@output_options
def command(
    data, target, features, drop, na, chunk_rows, strict, as_json, save, plot, quiet, **settings
):
    """Multilayer perceptrons by backpropagation: regression or classification.

    A feed-forward network trained by minibatch descent (adam by default) on standardized
    inputs: softmax and cross-entropy for class labels, a linear output and squared error for
    numbers. Reports the architecture, the loss per epoch (and the validation loss with
    --early-stopping), and training and validation metrics: RMSE, MAE and R² for
    regression; accuracy, log-loss, the confusion matrix and per-class precision, recall and
    F1 for classification.

    \b
        mlfit mlp sample_data/flowers.csv -y species
        mlfit mlp sample_data/houses.csv -y price --drop id --hidden 32,16 --epochs 500
        mlfit mlp sample_data/admissions.csv -y admitted --early-stopping --patience 20 --json
    """
    config = config_from(Config, settings)
    run_fit(
        "mlp",
        config,
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        chunk_rows=chunk_rows,
        strict=strict,
    )
