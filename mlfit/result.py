"""What a fit returns: one object that the report, the JSON output and the model file all read."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Step:
    """One progress tick of an iterative solver."""

    iteration: int
    total: int
    loss: float


ProgressFn = Callable[[Step], None]


def no_progress(step: Step) -> None:
    """The progress callback used when nobody is watching (--quiet, or a library caller)."""


@dataclass
class FitResult:
    """A fitted model: parameters for predict, and everything the report shows.

    coefficients: columns of the coefficient table in parameter order (intercept first),
    e.g. {"estimate": array, "std_error": array, "t": array, "p_value": array, ...}.
    """

    model: str
    params: dict
    coefficients: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    convergence: dict | None = None
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    parameter_names: list[str] | None = None  # when not 'intercept' + design columns (softmax)

    @property
    def converged(self) -> bool:
        return self.convergence is None or bool(self.convergence.get("converged", True))


def json_safe(value):
    """Plain Python values for json.dumps(allow_nan=False): NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value
