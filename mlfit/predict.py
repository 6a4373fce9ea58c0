"""Apply a saved model file to new data, writing predictions in input row order."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np

from mlfit.data import read_table, unknown_column_message
from mlfit.design import Design
from mlfit.errors import DataError, ModelFileError
from mlfit.files import atomic_write
from mlfit.model_io import load_model
from mlfit.result import json_safe
from mlfit.solvers import SOLVERS, solver


def _feature_columns(table, design: Design) -> dict[str, np.ndarray]:
    """The model's feature columns from the table, checked: present, complete, right type."""
    out = {}
    for name in design.features:
        values = table.columns[name]
        text_expected = name in design.levels
        if not text_expected and values.dtype == object:
            try:
                values = np.array([np.nan if v is None else float(v) for v in values])
            except ValueError:
                raise DataError(f"Column '{name}' in {table.source} must be numeric for this model "
                                "but holds text.") from None
        missing = (values == None) if values.dtype == object else np.isnan(values)  # noqa: E711
        if missing.any():
            raise DataError(f"Column '{name}' in {table.source} has {int(missing.sum())} missing "
                            f"value(s) (first at row {int(np.flatnonzero(missing)[0]) + 1}); the "
                            "model needs every feature. Fill or remove those rows.")
        if values.dtype != object and not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0]) + 1
            raise DataError(f"Column '{name}' in {table.source} has an infinite value at row {row}.")
        out[name] = values
    return out


def predict_file(model_path: str, data: str, output: str | None, as_json: bool,
                 id_column: str | None) -> int:
    """Write predictions as CSV (or JSON Lines) to `output` or stdout; returns the row count."""
    model = load_model(model_path)
    method = model["method"]
    if method not in SOLVERS:
        raise ModelFileError(f"Model file '{model_path}' is for '{method}', which this mlfit "
                             f"cannot apply. Known models: {', '.join(SOLVERS)}.")
    try:
        design = Design.from_dict(model["design"])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"Model file '{model_path}' is damaged (bad 'design'). Refit it.") from None
    table = read_table(data, columns=None)
    names = list(table.columns)
    for name in [*design.features, *([id_column] if id_column else [])]:
        if name not in table.columns:
            what = "the model's feature" if name in design.features else "the --id column"
            raise DataError(unknown_column_message(name, names, table.source).replace(
                "not found", f"({what}) not found", 1))
    X, _ = design.transform(_feature_columns(table, design), table.source)
    columns = {}
    if id_column:
        columns[id_column] = table.raw.column(id_column).to_pylist()
    columns.update(solver(method).predict_columns(model["params"], X)
                   if hasattr(solver(method), "predict_columns")
                   else {"prediction": solver(method).predict(model["params"], X)})
    if output:
        with atomic_write(output) as f:
            _write(f, columns, as_json)
    else:
        _write(sys.stdout, columns, as_json)
    return table.n_rows


def _write(f, columns: dict[str, np.ndarray], as_json: bool) -> None:
    names = list(columns)
    rows = zip(*(json_safe(np.asarray(v).tolist()) for v in columns.values()))
    if as_json:
        for row in rows:
            f.write(json.dumps(dict(zip(names, row)), allow_nan=False) + "\n")
    else:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
