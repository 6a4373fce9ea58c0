"""Running a command for its JSON document, shared by the test modules that compare figures."""

from __future__ import annotations

import json

import numpy as np

from mlfit.cli import cli


def fit_json(runner, *args) -> dict:
    """The parsed `--json -q` document of a successful run (the run failing fails the test)."""
    result = runner.invoke(cli, [*args, "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def coefficient_column(doc: dict, key: str) -> np.ndarray:
    """One column of the coefficient table ("estimate", "std_error", ...), in table order."""
    return np.array([doc["coefficients"][r][key] for r in doc["coefficients"]])
