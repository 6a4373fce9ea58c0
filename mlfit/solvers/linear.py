"""Parameters of the models that predict through intercept + X @ coef (normal-eq, linreg, newton)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlfit.contract import Params
from mlfit.errors import DataError
from mlfit.numerics import rowwise_matmul
from mlfit.params import decode_array, encode_array, read_float


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class LinearParams(Params):
    intercept: float | None  # None: fitted without an intercept
    coef: np.ndarray  # (p,) on the original scale of the design columns

    def linear_predictor(self, X) -> np.ndarray:
        """X: (n, p) design without intercept -> (n,) intercept + X @ coef."""
        out = rowwise_matmul(X, self.coef)
        return out + self.intercept if self.intercept is not None else out

    def to_dict(self) -> dict:
        return {"intercept": self.intercept, "coef": encode_array(self.coef)}

    @classmethod
    def from_dict(cls, d: dict, n_columns: int) -> LinearParams:
        return cls(**cls.read_fields(d, n_columns))

    @classmethod
    def read_fields(cls, d: dict, n_columns: int) -> dict:
        """The checked constructor arguments; subclasses add their own fields."""
        return {
            "intercept": read_float(d, "intercept", optional=True),
            "coef": decode_array(d, "coef", (n_columns,)),
        }


def check_rows(n: int, n_params: int) -> None:
    """A linear predictor with more parameters than rows has no unique estimate."""
    if n < n_params:
        raise DataError(
            f"Only {n} usable row{'s' if n != 1 else ''} for {n_params} parameters: the "
            "model needs at least as "
            "many rows as parameters. Use fewer features or a lower --poly."
        )
