"""Model files: versioned JSON (never pickle), so loading one cannot run code.

Version 2 stores large parameter arrays as base64 float64 (mlfit.params); version 1 files
(lists only) are read by the same code.  Everything in a file is checked when it is loaded,
so a damaged file is exit 4 naming the file, before any data is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlfit import __version__
from mlfit.contract import Params, json_safe
from mlfit.design import Design
from mlfit.errors import ModelFileError
from mlfit.files import atomic_write
from mlfit.params import ParamsError
from mlfit.solvers import SOLVERS, ModelSpec, solver

FORMAT = "mlfit-model"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def save_model(path: str, model: dict) -> None:
    """model: method, target, design, columns, params, config, fit. Written atomically."""
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlfit_version": __version__,
        **model,
    }
    text = json.dumps(json_safe(doc), indent=2, allow_nan=False)
    with atomic_write(path) as f:
        f.write(text + "\n")


def load_model(path: str) -> dict:
    """Read a model file's JSON and check its format and version (ModelFileError if wrong)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ModelFileError(f"Model file '{path}' not found.") from None
    except IsADirectoryError:
        raise ModelFileError(
            f"Cannot read model file '{path}': it is a directory; give the file --save wrote."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"Cannot read model file '{path}': {exc}.") from None
    except json.JSONDecodeError:
        raise ModelFileError(
            f"'{path}' is not an mlfit model file (it is not JSON). Save one with --save."
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not an mlfit model file. Save one with --save.")
    version = doc.get("format_version")
    readable = f"versions {READABLE_VERSIONS[0]} to {READABLE_VERSIONS[-1]}"
    if type(version) is int and version > FORMAT_VERSION:  # type(): true == 1 in Python
        raise ModelFileError(
            f"Model file '{path}' has format version {version}, from a newer mlfit "
            f"({doc.get('mlfit_version', 'unknown')}); this mlfit {__version__} reads "
            f"{readable}. Upgrade mlfit (pip install --upgrade mlfit)."
        )
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"Model file '{path}' has format version {version!r}; this mlfit "
            f"{__version__} reads {readable}. Refit the model."
        )
    for key in ("method", "design", "params"):
        if key not in doc:
            raise ModelFileError(f"Model file '{path}' is damaged: it has no '{key}'. Refit it.")
    return doc


@dataclass(frozen=True)
class SavedModel:
    """A model file, read and checked: what `predict` applies."""

    spec: ModelSpec
    design: Design
    params: Params
    columns: dict[str, str]  # extra-column role -> column name, e.g. {"offset": "log_exposure"}


def read_model(path: str) -> SavedModel:
    """load_model, then the model's own checks of its design, extra columns and parameters."""
    doc = load_model(path)
    method = doc["method"]
    if not isinstance(method, str) or method not in SOLVERS:
        raise ModelFileError(
            f"Model file '{path}' is for '{method}', which this mlfit "
            f"cannot apply. Known models: {', '.join(SOLVERS)}."
        )
    spec = SOLVERS[method]
    try:
        design = Design.from_dict(doc["design"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ModelFileError(f"Model file '{path}' is damaged (bad 'design'). Refit it.") from None
    columns = doc.get("columns") or {}
    if not isinstance(columns, dict) or not all(
        role in spec.extra_columns and isinstance(col, str) for role, col in columns.items()
    ):
        raise ModelFileError(f"Model file '{path}' is damaged (bad 'columns'). Refit it.")
    try:
        if not isinstance(doc["params"], dict):
            raise ParamsError("it is not an object")
        params = solver(method).Params.from_dict(doc["params"], len(design.names))
    except ParamsError as exc:
        raise ModelFileError(
            f"Model file '{path}' is damaged (bad 'params': {exc}). Refit it."
        ) from None
    return SavedModel(spec, design, params, dict(columns))
