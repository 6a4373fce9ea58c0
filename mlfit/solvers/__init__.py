"""The model registry: adding a model means a solver module, a command module and a line here.

Each name maps to its one-line summary (shown by `mlfit --help` without importing anything
heavy); the solver lives in mlfit/solvers/<name>.py and exports Config, fit and predict, and
the Click command in mlfit/commands/<name>.py, with dashes in the name turned to underscores.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SOLVERS: dict[str, str] = {
    "normal-eq": "Exact least squares by QR, with standard errors, t tests and R².",
    "linreg": "Linear regression by gradient descent: batch, minibatch or SGD.",
    "newton": "GLMs by Newton's method: Gaussian, logistic, Poisson.",
    "logreg": "Logistic regression; softmax for more than two classes.",
}


def module_name(name: str) -> str:
    return name.replace("-", "_")


def solver(name: str) -> ModuleType:
    """The solver module for a model name (as used on the command line and in model files)."""
    return importlib.import_module(f"mlfit.solvers.{module_name(name)}")
