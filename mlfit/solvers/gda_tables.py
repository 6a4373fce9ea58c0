"""The report's tables of a gda fit: class sizes and priors, means, and the covariance (in
full up to COVARIANCE_TABLE_MAX features, as standard deviations and the strongest
correlation beyond; the model file always has every entry)."""

from __future__ import annotations

import numpy as np

from mlfit.contract import Table
from mlfit.solvers.moments import ClassMoments

#: Covariance matrices with at most this many features are shown in full.
COVARIANCE_TABLE_MAX = 10


def tables(params, moments: ClassMoments, names: list[str]) -> dict[str, Table]:
    """In the features' units (the params are of the features divided by params.scale); a
    covariance beyond float64's range (features near 1e200) shows as null."""
    labels = [str(c) for c in params.classes]
    s = params.scale
    with np.errstate(over="ignore"):
        means = params.means * s
        cov = params.covariance * np.outer(s, s)
    out = {
        "classes": Table(labels, {"rows": moments.count.tolist(), "prior": params.priors}),
        "means": Table(names, {label: means[k] for k, label in enumerate(labels)}),
    }
    if len(names) <= COVARIANCE_TABLE_MAX:
        if params.per_class:
            for k, label in enumerate(labels):
                out[f"covariance[{label}]"] = _matrix(cov[k], names)
        else:
            out["covariance"] = _matrix(cov, names)
        return out
    if params.per_class:
        sd = {label: np.sqrt(np.diagonal(cov[k])) for k, label in enumerate(labels)}
        out["standard_deviations"] = Table(names, sd)
        return out
    sd = np.sqrt(np.diagonal(cov))
    scaled_sd = np.sqrt(np.diagonal(params.covariance))
    corr = params.covariance / np.outer(scaled_sd, scaled_sd)
    np.fill_diagonal(corr, 0.0)
    strongest = np.argmax(np.abs(corr), axis=1)
    out["standard_deviations"] = Table(
        names,
        {
            "std": sd,
            "strongest_correlation": corr[np.arange(len(names)), strongest],
            "with": [names[j] for j in strongest],
        },
    )
    return out


def _matrix(C: np.ndarray, names: list[str]) -> Table:
    return Table(names, {name: C[:, j] for j, name in enumerate(names)})
