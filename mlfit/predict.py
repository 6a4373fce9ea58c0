"""Apply a saved model file to new data, chunk by chunk, writing predictions in input order.

The input goes through the same loader and validator as fitting (with the kinds of the
model's features), so the messages are the same; memory is bounded by the chunk, so a model
applies to a file larger than memory, with output identical to one read at once.
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np

from mlfit import engine
from mlfit.contract import ModelData, json_safe
from mlfit.data import DEFAULT_CHUNK_ROWS, Dialect, Selection
from mlfit.data.parts import open_chunks
from mlfit.errors import UsageError
from mlfit.files import atomic_write, check_writable
from mlfit.model_io import SavedModel, read_model
from mlfit.solvers import solver


def predict_file(
    model_path: str,
    data: str,
    output: str | None,
    as_json: bool,
    id_column: str | None,
    options: dict | None = None,
    chunk_rows: int | None = None,
    dialect: Dialect | None = None,
) -> int:
    """Write predictions as CSV (or JSON Lines) to `output` or stdout; returns the row count.

    options: the model-specific predict options given (e.g. proba, threshold); one the model
    does not declare is a usage error.
    """
    if output:
        check_writable(output, inputs=(model_path, data))
    saved = read_model(model_path)
    options = options or {}
    _check_options(saved, options, model_path)
    sel = _selection(saved, id_column, dialect or Dialect())
    rows_at_once = chunk_rows or DEFAULT_CHUNK_ROWS
    # one file, or a glob or directory of parts (one stream)
    stream = open_chunks(data, sel, rows_at_once, model=saved.spec.name)
    if engine.current().name == "dask":  # each part predicted on a worker, written in order
        cluster = engine.cluster()
        predicted = cluster.predict(data, sel, rows_at_once, saved, options, id_column)
    else:
        predicted = predicted_chunks(saved, stream, options, id_column, stream.source)

    def write(f) -> int:
        out = _Writer(f, as_json)
        ids = _IdColumn(stream.fmt)
        rows = 0
        for n, id_values, predictions in predicted:
            columns = {id_column: ids(id_values)} if id_column else {}
            columns.update(predictions)
            out.write(columns)
            rows += n
        return rows

    if output:
        with atomic_write(output) as f:
            return write(f)
    return write(sys.stdout)


def predicted_chunks(saved: SavedModel, stream, options: dict, id_column, source: str):
    """(rows, the --id column as read, the model's output columns) of each chunk of the
    stream, in order (here, or for one part on a worker); source: DATA, for messages."""
    module = solver(saved.spec.name)
    part, first_row = None, 0
    for chunk in stream:
        if chunk.source != part:  # a new part: its rows count from its start
            part, first_row = chunk.source, 0
        X, _ = saved.design.transform(chunk.columns, chunk.source, first_row)
        first_row += chunk.n_rows
        data = ModelData(X, None, chunk.extras, None, saved.design.names, None, source)
        id_values = chunk.passthrough[id_column] if id_column else None
        yield chunk.n_rows, id_values, module.predict(saved.params, data, **options)


def _check_options(saved: SavedModel, options: dict, path: str) -> None:
    accepted = {o.name for o in saved.spec.predict_options}
    for name in options:
        if name not in accepted:
            takes = ", ".join(f"--{o}" for o in sorted(accepted)) or "none"
            raise UsageError(
                f"--{name.replace('_', '-')} does not apply to {saved.spec.name} models "
                f"(model file '{path}'); their predict options: {takes}."
            )


def _selection(saved: SavedModel, id_column: str | None, dialect: Dialect) -> Selection:
    """The model's features (with the kinds they had when fitted) and extra columns."""
    design = saved.design
    roles = {name: "the model's feature" for name in design.features}
    roles.update({col: f"the model's {role}" for role, col in saved.columns.items()})
    if id_column:
        roles.setdefault(id_column, "the --id column")
    return Selection(
        features=tuple(design.features),
        target_kind="none",
        na="required",
        extras=saved.columns,
        kinds={f: "text" if f in design.levels else "numeric" for f in design.features},
        roles=roles,
        passthrough=(id_column,) if id_column else (),
        dialect=dialect,
    )


class _IdColumn:
    """The --id column as read.  In CSV/TSV, where it is read as text, a column of plain
    integers becomes integers (so JSON Lines output has numbers), while '007' or 'a12' stay
    the text written; which of the two is decided on the first chunk."""

    def __init__(self, fmt: str):
        self._as_int = False if fmt not in ("csv", "tsv") else None

    def __call__(self, values: list) -> list:
        if self._as_int is None:
            self._as_int = all(v is None or _plain_int(v) for v in values)
        if not self._as_int:
            return values
        return [int(v) if v is not None and _plain_int(v) else v for v in values]


def _plain_int(v) -> bool:
    try:
        return str(int(v)) == v
    except (TypeError, ValueError):
        return False


class _Writer:
    """CSV (header once) or JSON Lines, appended chunk by chunk."""

    def __init__(self, f, as_json: bool):
        self._f, self._as_json = f, as_json
        self._csv = None if as_json else csv.writer(f, lineterminator="\n")
        self._header_written = False

    def write(self, columns: dict) -> None:
        names = list(columns)
        rows = zip(*(json_safe(np.asarray(v).tolist()) for v in columns.values()))
        if self._csv is None:
            for row in rows:  # default=str: an --id column may hold dates or times
                self._f.write(json.dumps(dict(zip(names, row)), allow_nan=False, default=str))
                self._f.write("\n")
            return
        if not self._header_written:
            self._csv.writerow(names)
            self._header_written = True
        self._csv.writerows(rows)
