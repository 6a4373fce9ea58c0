"""Linear regression by gradient descent on the mean squared error (batch, minibatch, SGD).

Descent runs on standardized features and target (by default), where one learning rate suits
every column; coefficients are mapped back to the original scale before they are reported.
The loss minimised is half the mean squared error, whose gradient is X'(Xw - y) / n.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mlfit.contract import FitResult, ModelData, ProgressFn, Table, no_progress
from mlfit.numerics import column_std
from mlfit.params import ParamsError, decode_array, encode_array, read_float
from mlfit.solvers.descent import DescentConfig, descend
from mlfit.solvers.linear import LinearParams, check_rows


@dataclass(frozen=True)
class Config(DescentConfig):
    intercept: bool = True
    standardize: bool = True


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(LinearParams):
    scaling: dict | None = None  # the standardization descent ran on, for the record

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.scaling is not None:
            out["scaling"] = self.scaling
        return out

    @classmethod
    def read_fields(cls, d: dict, n_columns: int) -> dict:
        fields = super().read_fields(d, n_columns)
        scaling = d.get("scaling")
        if scaling is not None:
            if not isinstance(scaling, dict):
                raise ParamsError("'scaling' must be an object")
            for key in ("feature_mean", "feature_scale"):
                decode_array(scaling, key, (n_columns,))
            for key in ("target_mean", "target_scale"):
                read_float(scaling, key)
        return {**fields, "scaling": scaling}


def _standardizer(X: np.ndarray, y: np.ndarray, config: Config):
    """Column centres and scales (centring only with an intercept); constant columns keep scale 1."""
    if not config.standardize:
        return np.zeros(X.shape[1]), np.ones(X.shape[1]), 0.0, 1.0
    if config.intercept:
        mx, my = X.mean(axis=0), float(y.mean())
        sx, sy = column_std(X), float(column_std(y[:, None])[0])
    else:
        mx, my = np.zeros(X.shape[1]), 0.0
        sx, sy = np.sqrt(np.mean(X * X, axis=0)), float(np.sqrt(np.mean(y * y)))
    sx = np.where(sx > 0, sx, 1.0)
    return mx, sx, my, sy if sy > 0 else 1.0


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, p) without the intercept column; data.y: (n,)."""
    start = time.perf_counter()
    X = data.X
    y = np.asarray(data.y, dtype=float)
    n = X.shape[0]
    check_rows(n, X.shape[1] + config.intercept)
    mx, sx, my, sy = _standardizer(X, y, config)
    Z = (X - mx) / sx
    if config.intercept:
        Z = np.column_stack([np.ones(n), Z])
    t = (y - my) / sy

    def objective(w, rows):
        Zr, tr = (Z, t) if rows is None else (Z[rows], t[rows])
        r = Zr @ w - tr
        return 0.5 * float(r @ r) / len(tr), Zr.T @ r / len(tr)

    outcome = descend(objective, np.zeros(Z.shape[1]), n, config, on_progress)
    w = outcome.w
    slope_s = w[1:] if config.intercept else w
    coef = slope_s * sy / sx
    intercept = my + sy * w[0] - float(coef @ mx) if config.intercept else None
    estimate = np.concatenate([[intercept], coef]) if config.intercept else coef
    fitted = X @ coef + (intercept or 0.0)
    resid = y - fitted
    mse = float(resid @ resid) / n
    centred = y - y.mean() if config.intercept else y
    tss = float(centred @ centred)
    metrics = {
        "mse": mse,
        "rmse": mse**0.5,
        "r_squared": 1.0 - mse * n / tss if tss > 0 else None,
        "n": n,
    }
    convergence = outcome.convergence()
    convergence["final_loss"] = outcome.final_loss * sy**2  # half-MSE on the original scale
    convergence["history"] = [h * sy**2 for h in outcome.history]
    warnings = []
    if not outcome.converged:
        warnings.append(
            f"Gradient descent did not converge in {config.epochs} epochs (gradient "
            f"norm {outcome.gradient_norm:.3g}). Increase --epochs, raise --lr or "
            "loosen --tol."
        )
    scaling = None
    if config.standardize:  # for the record: predict uses the original-scale coef directly
        scaling = {
            "feature_mean": encode_array(mx),
            "feature_scale": encode_array(sx),
            "target_mean": my,
            "target_scale": sy,
        }
    info = {
        "method": config.method,
        "lr": config.lr,
        "seed": config.seed,
        "standardize": config.standardize,
        "fit_seconds": time.perf_counter() - start,
    }
    if config.method != "batch":
        info["batch_size"] = 1 if config.method == "sgd" else config.batch_size
    names = (["intercept"] if config.intercept else []) + list(data.names)
    return FitResult(
        Params(intercept, coef, scaling),
        n_parameters=len(estimate),
        n_obs=n,
        tables={"coefficients": Table(names, {"estimate": estimate})},
        metrics=metrics,
        convergence=convergence,
        warnings=warnings,
        info=info,
    )


def predict(params: Params, data: ModelData) -> dict[str, np.ndarray]:
    return {"prediction": params.linear_predictor(data.X)}
