"""Model files: versioned JSON (never pickle), so loading one cannot run code."""

from __future__ import annotations

import json

from mlfit import __version__
from mlfit.errors import ModelFileError
from mlfit.files import atomic_write
from mlfit.result import json_safe

FORMAT = "mlfit-model"
FORMAT_VERSION = 1


def save_model(path: str, model: dict) -> None:
    """model: method, target, design, params, config, fit. Written atomically."""
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
    """Read and check a model file; every way it can be wrong is a ModelFileError."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ModelFileError(f"Model file '{path}' not found.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"Cannot read model file '{path}': {exc}.") from None
    except json.JSONDecodeError:
        raise ModelFileError(
            f"'{path}' is not an mlfit model file (it is not JSON). Save one with --save."
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not an mlfit model file. Save one with --save.")
    version = doc.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # true == 1 in Python
        raise ModelFileError(
            f"Model file '{path}' has format version {version!r}; this mlfit "
            f"{__version__} reads version {FORMAT_VERSION}. Refit the model."
        )
    for key in ("method", "design", "params"):
        if key not in doc:
            raise ModelFileError(f"Model file '{path}' is damaged: it has no '{key}'. Refit it.")
    return doc
