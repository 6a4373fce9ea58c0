"""The parameters of a kernel model: what predict needs, stored compactly in the model file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlfit.contract import Params as BaseParams
from mlfit.params import ParamsError, decode_array, encode_array, read_choice, read_float
from mlfit.solvers.kernels import KERNELS, Kernel


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(BaseParams):
    kernel: Kernel
    feature_mean: np.ndarray  # (p,) subtracted from each design column before the kernel
    feature_scale: np.ndarray  # (p,) then divided by this
    target_mean: float  # added to every prediction (0 with --no-center-target)
    centres: np.ndarray  # (m, p) scaled training rows (or Nystrom centres, or w for linear)
    beta: np.ndarray  # (m,) h(z) = target_mean + sum_i beta_i K(centre_i, z)

    def to_dict(self) -> dict:
        return {
            "kernel": self.kernel.name,
            "gamma": self.kernel.gamma,
            "degree": self.kernel.degree,
            "coef0": self.kernel.coef0,
            "feature_mean": encode_array(self.feature_mean),
            "feature_scale": encode_array(self.feature_scale),
            "target_mean": self.target_mean,
            "centers": encode_array(self.centres),
            "beta": encode_array(self.beta),
        }

    @classmethod
    def from_dict(cls, d: dict, n_columns: int) -> Params:
        name = read_choice(d, "kernel", KERNELS)
        gamma = read_float(d, "gamma")
        if gamma <= 0:
            raise ParamsError("'gamma' must be positive")
        degree = d.get("degree")
        if type(degree) is not int or degree < 1:
            raise ParamsError("'degree' must be a whole number of at least 1")
        scale = decode_array(d, "feature_scale", (n_columns,))
        if np.any(scale <= 0):
            raise ParamsError("'feature_scale' must be positive")
        centres = decode_array(d, "centers", (None, n_columns))
        beta = decode_array(d, "beta", (len(centres),))
        if len(centres) == 0:
            raise ParamsError("'centers' is empty")
        return cls(
            Kernel(name, gamma, degree, read_float(d, "coef0")),
            decode_array(d, "feature_mean", (n_columns,)),
            scale,
            read_float(d, "target_mean"),
            centres,
            beta,
        )
