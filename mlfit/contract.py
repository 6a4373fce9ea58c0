"""What passes between the CLI and a model: the data a fit sees and the result it returns.

Every solver's `fit(data, config, on_progress)` takes a ModelData and returns a FitResult, and
its `predict(params, data, **options)` returns named output columns; the runner, `predict`,
the report and the model file read nothing else, so none of them knows which model it handles.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
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
class ModelData:
    """The rows a model sees: the encoded design, the target (None for predict or a model
    without one), and the extra columns the model declared, by role (e.g. "offset").

    X: (n, p) float64 design without an intercept column; X_lo: its low parts when products
    are kept in double-double (mlfit.design), else None.
    """

    X: np.ndarray
    y: np.ndarray | None = None
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    X_lo: np.ndarray | None = None
    names: list[str] | None = None  # the p design column names
    target: str = "y"  # the target column's name, for messages
    source: str = "the data"  # the file, for messages
    # text column -> indices of its 0/1 design columns (filled at fit time, for models whose
    # spec says categorical: they treat each text column as one categorical variable)
    one_hot: Mapping[str, list[int]] = field(default_factory=dict)

    def __post_init__(self):
        X = np.asarray(self.X, dtype=float)
        self.X = X[:, None] if X.ndim == 1 else X
        if self.names is None:
            self.names = [f"x{j + 1}" for j in range(self.X.shape[1])]

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    def extra(self, role: str) -> np.ndarray | None:
        """The column given for `role`, or None when the user gave none."""
        return self.extras.get(role)


class Params(ABC):
    """A fitted model's parameters: all `predict` needs, and what the model file stores.

    from_dict checks every shape and type, so a damaged or hand-edited model file is caught
    when it is loaded (mlfit.params.ParamsError), never inside predict.
    """

    @abstractmethod
    def to_dict(self) -> dict:
        """Plain JSON values (arrays through mlfit.params.encode_array)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict, n_columns: int) -> Params:
        """Read and check; n_columns: the width of the design the model was fitted on."""


class Table(Mapping):
    """A named table of a result: one row per name, columns as arrays (or lists of lists).

    As a mapping it gives the columns, e.g. result.coefficients["estimate"].  In JSON it is
    {row: {column: value}}; a boolean column is a flag shown only on the rows where it is true.
    """

    def __init__(self, rows: list[str], columns: dict[str, object]):
        for key, values in columns.items():
            if len(values) != len(rows):
                raise ValueError(f"column {key!r} has {len(values)} values for {len(rows)} rows")
        self.rows = list(rows)
        self.columns = columns

    def __getitem__(self, key: str):
        return self.columns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def records(self) -> dict[str, dict]:
        out = {}
        for i, row in enumerate(self.rows):
            record = {}
            for key, values in self.columns.items():
                v = values[i]
                if isinstance(v, (bool, np.bool_)):
                    if v:
                        record[key] = True
                else:
                    record[key] = v.tolist() if isinstance(v, np.ndarray) else v
            out[row] = record
        return out


@dataclass
class FitResult:
    """A fitted model: its parameters, and everything the report, JSON and model file show.

    tables: named tables in the order shown ("coefficients" for linear models, components,
    layers, ...).  n_parameters: the number of estimated parameters, for AIC and BIC, which
    are added to metrics here, after log_likelihood, whenever the model reports one.
    n_obs: the rows the likelihood sums over.
    """

    params: Params
    n_parameters: int
    n_obs: int
    tables: dict[str, Table] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    convergence: dict | None = None
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # how it was computed: the JSON's "solver"
    internals: dict = field(default_factory=dict)  # what the model keeps for its plot_data

    def __post_init__(self):
        if "log_likelihood" in self.metrics:
            self.metrics = with_information_criteria(self.metrics, self.n_parameters, self.n_obs)

    @property
    def converged(self) -> bool:
        return self.convergence is None or bool(self.convergence.get("converged", True))

    @property
    def coefficients(self) -> Table:
        """The coefficient table of a linear model (empty for other models)."""
        return self.tables.get("coefficients") or Table([], {})


def with_information_criteria(metrics: dict, k: int, n: int) -> dict:
    """metrics with aic = -2 ll + 2k and bic = -2 ll + log(n) k right after log_likelihood."""
    ll = metrics["log_likelihood"]
    out = {}
    for key, value in metrics.items():
        if key in ("aic", "bic"):
            continue
        out[key] = value
        if key == "log_likelihood":
            finite = ll is not None and math.isfinite(ll)
            out["aic"] = -2.0 * ll + 2.0 * k if finite else math.nan
            out["bic"] = -2.0 * ll + math.log(n) * k if finite and n > 0 else math.nan
    return out


def json_safe(value):
    """Plain Python values for json.dumps(allow_nan=False): NaN and inf become None."""
    if isinstance(value, Table):
        return json_safe(value.records())
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
