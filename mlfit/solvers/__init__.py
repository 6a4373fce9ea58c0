"""The model registry: subcommand name -> solver module (each exports Config, fit, predict)."""

from __future__ import annotations

import importlib
from types import ModuleType

#: subcommand -> (solver module, one-line summary shown by `mlfit --help`)
SOLVERS: dict[str, tuple[str, str]] = {
    "normal-eq": ("mlfit.solvers.normal_eq", "Exact least squares (QR) with R-style statistics."),
    "linreg": ("mlfit.solvers.linreg", "Linear regression by gradient descent (batch, minibatch, SGD)."),
}


def solver(name: str) -> ModuleType:
    """Import a solver module by its subcommand name."""
    return importlib.import_module(SOLVERS[name][0])
