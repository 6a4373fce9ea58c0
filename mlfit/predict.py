"""Apply a saved model file to new data, writing predictions in input row order."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np

from mlfit.data import is_number, read_table, unknown_column_message
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
                row, bad = next((i, v) for i, v in enumerate(values) if not is_number(v))
                raise DataError(
                    f"Column '{name}' in {table.source} must be numeric for this model "
                    f"but row {row + 1} has '{bad}'."
                ) from None
        if text_expected and values.dtype != object:
            # Text at fit time ('1', '2', 'G'), but only numbers here: match the levels by value.
            by_value = {float(lv): lv for lv in reversed(design.levels[name]) if is_number(lv)}
            values = np.array(
                [None if np.isnan(v) else by_value.get(float(v), f"{v:g}") for v in values],
                dtype=object,
            )
        missing = (values == None) if values.dtype == object else np.isnan(values)
        if missing.any():
            raise DataError(
                f"Column '{name}' in {table.source} has {int(missing.sum())} missing "
                f"value(s) (first at row {int(np.flatnonzero(missing)[0]) + 1}); the "
                "model needs every feature. Fill or remove those rows."
            )
        if values.dtype != object and not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0]) + 1
            raise DataError(
                f"Column '{name}' in {table.source} has an infinite value at row {row}."
            )
        out[name] = values
    return out


def _numeric_column(table, name: str) -> np.ndarray:
    """A complete, finite numeric column (an offset) from the table."""
    values = table.columns[name]
    if values.dtype == object or not np.all(np.isfinite(values)):
        raise DataError(
            f"Column '{name}' in {table.source} must be numeric with no missing or infinite values."
        )
    return values


def _id_values(values: list, fmt: str) -> list:
    """The --id column unchanged. CSV text is kept as written ('007' stays '007'), except that
    a column of plain integers stays integers, so JSON Lines output has numbers."""
    if fmt not in ("csv", "tsv"):
        return values

    def plain_int(v) -> bool:
        try:
            return str(int(v)) == v
        except ValueError:
            return False

    if all(v is None or plain_int(v) for v in values):
        return [None if v is None else int(v) for v in values]
    return values


def predict_file(
    model_path: str,
    data: str,
    output: str | None,
    as_json: bool,
    id_column: str | None,
    options: dict | None = None,
) -> int:
    """Write predictions as CSV (or JSON Lines) to `output` or stdout; returns the row count.

    options: model-specific choices (e.g. proba, threshold) for solvers whose
    predict_columns(params, X, **options) takes them.
    """
    model = load_model(model_path)
    method = model["method"]
    if not isinstance(method, str) or method not in SOLVERS:
        raise ModelFileError(
            f"Model file '{model_path}' is for '{method}', which this mlfit "
            f"cannot apply. Known models: {', '.join(SOLVERS)}."
        )
    try:
        design = Design.from_dict(model["design"])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(
            f"Model file '{model_path}' is damaged (bad 'design'). Refit it."
        ) from None
    # Only the model's features are converted: extra columns of any type are ignored.
    extras = dict(model.get("columns") or {})  # e.g. {"offset": "log_exposure"}
    roles = {name: "the model's feature" for name in design.features}
    roles.update({col: f"the model's {key}" for key, col in extras.items()})
    table = read_table(
        data,
        columns=[*design.features, *extras.values()],
        roles=roles,
        text=(id_column,) if id_column else (),
    )
    names = table.raw.column_names
    if id_column and id_column not in names:
        raise DataError(
            unknown_column_message(id_column, names, table.source).replace(
                "not found", "(the --id column) not found", 1
            )
        )
    X, _ = design.transform(_feature_columns(table, design), table.source)
    columns = {}
    if id_column:
        columns[id_column] = _id_values(table.raw.column(id_column).to_pylist(), table.fmt)
    module = solver(method)
    kwargs = {key: _numeric_column(table, col) for key, col in extras.items()}
    try:
        if hasattr(module, "predict_columns"):
            columns.update(module.predict_columns(model["params"], X, **kwargs, **(options or {})))
        else:
            columns["prediction"] = module.predict(model["params"], X, **kwargs)
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(
            f"Model file '{model_path}' is damaged (bad 'params'). Refit it."
        ) from None
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
            # default=str: an --id column may hold dates or times
            f.write(json.dumps(dict(zip(names, row)), allow_nan=False, default=str) + "\n")
    else:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
