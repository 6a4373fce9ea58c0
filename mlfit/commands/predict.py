"""`mlfit predict`: apply a saved model to new data."""

from __future__ import annotations

import click

from mlfit.predict import predict_file


@click.command("predict")
@click.argument("model", metavar="MODEL")
@click.argument("data", metavar="DATA")
@click.option(
    "--output", metavar="FILE", help="Write predictions to FILE (atomically) instead of stdout."
)
@click.option("--json", "as_json", is_flag=True, help="Write JSON Lines instead of CSV.")
@click.option(
    "--id",
    "id_column",
    metavar="COL",
    help="Copy column COL through to the output, to match predictions to rows.",
)
@click.option(
    "--proba",
    is_flag=True,
    help="Classifiers: add a column p_<class> with each class's probability.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    help="Binary classifiers: predict the "
    "second class when its probability is at least this (default: the model's).",
)
def command(model, data, output, as_json, id_column, proba, threshold):
    """Apply a saved model file to new data.

    Predictions come in input row order, as CSV (or JSON Lines with --json), to stdout or to
    --output FILE. Columns are matched by name: every feature the model was fitted on must be
    present; extra columns are ignored. Text columns are encoded with the levels stored in the
    model file; a level the model never saw is an error.

    \b
        mlfit normal-eq sample_data/houses.csv -y price -o houses.model
        mlfit predict houses.model sample_data/houses.csv --id id
        mlfit predict houses.model new.parquet --output predictions.csv
    """
    options = {"proba": True} if proba else {}
    if threshold is not None:
        options["threshold"] = threshold
    predict_file(model, data, output, as_json, id_column, options)
