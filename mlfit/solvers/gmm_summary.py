"""What a mixture fit reports: the chosen model on the original scale, its components, the
BIC table, and with labels their cross-tabulation and adjusted Rand index."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlfit import engine
from mlfit.contract import FitResult, ModelData, Table
from mlfit.solvers.mixture import Densities, Mixture


def to_original(mix: Mixture, centre: np.ndarray, scale: np.ndarray) -> Mixture:
    """The mixture fitted on (x - centre) / scale, in the units of x."""
    kind, c = mix.covariance_type, mix.covariances
    means = mix.means * scale + centre
    if kind == "full":
        cov = c * scale[None, :, None] * scale[None, None, :]
    elif kind == "tied":
        cov = c * scale[:, None] * scale[None, :]
    elif kind == "diag":
        cov = c * scale**2
    elif np.all(scale == 1.0):
        cov = c
    else:  # spherical on standardized columns is diagonal in the original units
        kind, cov = "diag", c[:, None] * scale[None] ** 2
    return Mixture(kind, mix.weights, means, cov)


def summary(params, outcome, chosen, table, bic, n, scale, names, config, warnings) -> FitResult:
    """The fit's FitResult: params (the chosen mixture on the original scale), its
    components, the BIC of every model fitted, convergence and warnings."""
    k, kind = chosen
    mix = params.mixture
    ll = table[chosen][0]
    if not outcome.converged:
        warnings.append(
            f"EM did not converge in {config.max_iter} iterations for k={k} {kind}. Raise "
            "--max-iter or loosen --tol."
        )
    if outcome.reseeded:
        warnings.append(
            f"{outcome.reseeded} component(s) emptied during EM and were re-seeded by "
            "splitting the largest one."
        )
    full = mix.full_covariances()
    components = Table(
        [str(j + 1) for j in range(k)],
        {
            "weight": mix.weights,
            "mean": [m.tolist() for m in mix.means],
            "sd": [np.sqrt(np.diag(c)).tolist() for c in full],
            "covariance": [
                c.tolist() if mix.covariance_type in ("full", "tied") else np.diag(c).tolist()
                for c in full
            ],
            "expected_rows": outcome.counts,
        },
    )
    ks = sorted({key[0] for key in table})
    types = [t for t in config.covariance if any(key[1] == t for key in table)]
    bic_table = Table(
        [f"k={kk}" for kk in ks],
        {t: [bic.get((kk, t), math.nan) for kk in ks] for t in types},
    )
    metrics = {
        "log_likelihood": ll,
        "mean_log_likelihood": ll / n,
        "n": n,
        "k": k,
        "covariance_type": kind,
        "selected": f"k={k}, {kind}: the lowest BIC of {len(bic)} model(s)",
        "bic_convention": "BIC = -2 log-likelihood + log(n) parameters: lower is better "
        "(mclust reports -BIC: higher is better)",
    }
    convergence = {
        "iterations": outcome.iterations,
        "converged": outcome.converged,
        "final_loss": -ll / n,
        "history": [-h - float(np.log(scale).sum()) for h in outcome.history],
    }
    info = {
        "method": "em",
        "covariance": list(config.covariance),
        "k": list(config.k),
        "n_init": config.n_init,
        "starts": "ward + k-means++",
        "reg_covar": config.reg_covar,
        "tol": config.tol,
        "seed": config.seed,
        "standardize": config.standardize,
    }
    tables = {"components": components}
    if len(bic) > 1:
        tables["bic"] = bic_table
    internals = {
        "bic": {
            "ks": ks,
            "types": types,
            "values": [[bic.get((kk, t)) for kk in ks] for t in types],
            "chosen": [k, kind],
        },
        "plot_axes": config.plot_axes,
        "names": names,
    }
    return FitResult(
        params,
        n_parameters=table[chosen][1],  # of the model fitted (spherical stays k variances)
        n_obs=n,
        tables=tables,
        metrics=metrics,
        convergence=convergence,
        warnings=warnings,
        info=info,
        internals=internals,
    )


def add_crosstab(result: FitResult, chunks, centre, scale, mix_scaled: Mixture) -> None:
    """When labels are given: their cross-tabulation against the most likely component and
    the adjusted Rand index (one more pass)."""
    counts = engine.map_reduce(chunks, _Crosstab(mix_scaled, centre, scale), _add_counts)
    if counts:
        labels = sorted(counts, key=str)
        result.tables["crosstab"] = Table(
            [str(lb) for lb in labels],
            {
                f"component {j + 1}": [int(counts[lb][j]) for lb in labels]
                for j in range(mix_scaled.k)
            },
        )
        result.metrics["adjusted_rand_index"] = adjusted_rand_index(
            np.array([counts[lb] for lb in labels])
        )


@dataclass(frozen=True)
class _Crosstab:
    """label -> rows of each most likely component, for one chunk (None without labels)."""

    mix_scaled: Mixture
    centre: np.ndarray
    scale: np.ndarray

    def __call__(self, chunk: ModelData) -> dict | None:
        if chunk.y is None:
            return None
        dens = Densities(self.mix_scaled)
        component = np.argmax(dens((chunk.X - self.centre) / self.scale), axis=1)
        counts: dict = {}
        for label, c in zip(chunk.y.tolist(), component.tolist()):
            counts.setdefault(label, np.zeros(self.mix_scaled.k, dtype=np.int64))[c] += 1
        return counts


def _add_counts(a: dict | None, b: dict | None) -> dict | None:
    if a is None or b is None:
        return a if b is None else b
    out = {label: c.copy() for label, c in a.items()}
    for label, c in b.items():
        out[label] = out[label] + c if label in out else c
    return out


def adjusted_rand_index(table: np.ndarray) -> float:
    """Hubert and Arabie's ARI from a contingency table (rows: labels, columns: clusters)."""

    def pairs(v):
        v = np.asarray(v, dtype=float)
        return float((v * (v - 1) / 2).sum())

    n = table.sum()
    index = pairs(table.ravel())
    a, b = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = a * b / (n * (n - 1) / 2) if n > 1 else 0.0
    top = 0.5 * (a + b)
    return (index - expected) / (top - expected) if top != expected else 1.0
