"""`mlfit predict`: apply a saved model to new data.

Model-specific options (--proba, --threshold, ...) come from the registry: each model lists
the ones its predict takes, and predict refuses the others for that model (exit 2).
"""

from __future__ import annotations

import click

from mlfit.commands import FiniteFloat, chunk_rows_option, dialect, dialect_options
from mlfit.solvers import predict_options


def model_options(f):
    """One option per PredictOption that some registered model declares."""
    for option in reversed(list(predict_options().values())):
        flag = "--" + option.name.replace("_", "-")
        if option.is_flag:
            f = click.option(flag, option.name, is_flag=True, default=None, help=option.help)(f)
        else:
            f = click.option(flag, option.name, type=FiniteFloat(0, 1), help=option.help)(f)
    return f


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
@model_options
@dialect_options
@chunk_rows_option("writing predictions as it goes", "default 65,536")
def command(model, data, output, as_json, id_column, chunk_rows, **options):
    """Apply a saved model file to new data.

    Predictions come in input row order, as CSV (or JSON Lines with --json), to stdout or to
    --output FILE, written chunk by chunk so a file larger than memory works. Columns are
    matched by name: every feature the model was fitted on must be present; extra columns are
    ignored. Text columns are encoded with the levels stored in the model file; a level the
    model never saw is an error.

    \b
        mlfit normal-eq sample_data/houses.csv -y price -o houses.model
        mlfit predict houses.model sample_data/houses.csv --id id
        mlfit predict houses.model new.parquet --output predictions.csv
    """
    from mlfit.predict import predict_file

    given = {name: value for name, value in options.items() if value is not None}
    predict_file(model, data, output, as_json, id_column, given, chunk_rows, dialect())
