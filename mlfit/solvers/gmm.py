"""Gaussian mixture models by EM, with the number of components and the covariance type chosen
by BIC, as R's mclust does.

The data is a re-iterable of row blocks (an array in memory, or chunks streamed from a file):
one pass for column moments, one for a bounded seeded sample that the starts are found on, then
one pass per EM iteration (mlfit.solvers.mixture).  Every (k, covariance type) pair is fitted
from several starts (k-means++ and Ward's clustering) and the best non-degenerate solution
kept: a component with fewer expected rows than it has free covariance parameters is a
spurious maximum, not a cluster.  EM runs on centred (and, with --standardize, scaled)
columns; the model reported and saved is on the original scale.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from mlfit import contract, engine
from mlfit.contract import FitResult, ModelData, ProgressFn, Step, no_progress
from mlfit.errors import DataError, FitError
from mlfit.params import ParamsError, decode_array, encode_array, read_choice
from mlfit.solvers import mixture_init
from mlfit.solvers.gmm_starts import best_start, informative_directions, min_expected_rows
from mlfit.solvers.gmm_summary import add_crosstab, summary, to_original
from mlfit.solvers.mixture import COVARIANCE_TYPES, Densities, Mixture, log_sum_exp

#: Rows EM works on at a time (bounds the (rows, k, d) temporaries, keeps blocks in cache).
BLOCK_ROWS = 8192
#: Rows of the seeded sample the starts are computed from.
INIT_ROWS = 10_000
#: Levels 0, 0.001, ..., 1 of the training rows' log-densities kept for predict --outliers.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 1001)


@dataclass(frozen=True)
class Config:
    k: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    covariance: tuple[str, ...] = ("full",)
    n_init: int = 1  # k-means++ starts; one start from Ward's clustering is always added
    reg_covar: float = 1e-6  # added to covariance diagonals, times each feature's variance
    max_iter: int = 1000
    tol: float = 1e-8  # on the change of the mean log-likelihood per row
    seed: int = 0
    standardize: bool = False
    plot_axes: tuple[str, ...] | None = None


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Params(contract.Params):
    """The mixture on the original scale, and the training rows' log-density quantiles."""

    mixture: Mixture
    quantiles: np.ndarray  # log-density at QUANTILE_LEVELS

    def to_dict(self) -> dict:
        m = self.mixture
        return {
            "covariance_type": m.covariance_type,
            "weights": encode_array(m.weights),
            "means": encode_array(m.means),
            "covariances": encode_array(m.covariances),
            "log_density_quantiles": encode_array(self.quantiles),
        }

    @classmethod
    def from_dict(cls, d: dict, n_columns: int) -> Params:
        kind = read_choice(d, "covariance_type", COVARIANCE_TYPES)
        weights = decode_array(d, "weights", (None,))
        k = len(weights)
        if k == 0 or np.any(weights <= 0) or abs(weights.sum() - 1.0) > 1e-9:
            raise ParamsError("'weights' must be positive and sum to 1")
        shape = {
            "full": (k, n_columns, n_columns),
            "diag": (k, n_columns),
            "spherical": (k,),
            "tied": (n_columns, n_columns),
        }[kind]
        mix = Mixture(
            kind,
            weights,
            decode_array(d, "means", (k, n_columns)),
            decode_array(d, "covariances", shape),
        )
        try:
            Densities(mix)
        except np.linalg.LinAlgError:
            raise ParamsError("'covariances' are not positive definite") from None
        if kind in ("diag", "spherical") and np.any(mix.covariances <= 0):
            raise ParamsError("'covariances' must be positive")
        quantiles = decode_array(d, "log_density_quantiles", (len(QUANTILE_LEVELS),))
        return cls(mix, quantiles)

    def log_densities(self, X) -> np.ndarray:
        """(n, k) log(weight_j N(x | component j)), computed about the mixture's centre."""
        m = self.mixture
        centre = m.weights @ m.means
        shifted = Mixture(m.covariance_type, m.weights, m.means - centre, m.covariances)
        return Densities(shifted)(np.asarray(X, dtype=float) - centre)


# --------------------------------------------------------------------------- fitting


def fit(
    data: ModelData, config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """data.X: (n, d) features; data.y: optional labels, cross-tabulated, not fitted."""
    return _fit(_RowBlocks(data), config, on_progress)


def fit_chunks(
    chunks: Iterable[ModelData], config: Config = Config(), on_progress: ProgressFn = no_progress
) -> FitResult:
    """The same fit from a re-iterable stream of chunks, memory bounded by the chunk."""
    return _fit(chunks, config, on_progress)


class _RowBlocks:
    """An in-memory table as a re-iterable of row blocks (views, no copies)."""

    def __init__(self, data: ModelData):
        self._data = data

    def __iter__(self) -> Iterator[ModelData]:
        d = self._data
        for i in range(0, d.n_rows, BLOCK_ROWS):
            y = None if d.y is None else d.y[i : i + BLOCK_ROWS]
            yield ModelData(d.X[i : i + BLOCK_ROWS], y, {}, None, d.names, d.target, d.source)


@dataclass(frozen=True)
class _ScaleBlocks:
    """A chunk as row blocks of (X - centre) / scale, at most BLOCK_ROWS rows each (applied
    where the chunks live: engine.expand)."""

    centre: np.ndarray
    scale: np.ndarray

    def __call__(self, chunk: ModelData) -> Iterator[np.ndarray]:
        for i in range(0, chunk.n_rows, BLOCK_ROWS):
            yield (chunk.X[i : i + BLOCK_ROWS] - self.centre) / self.scale


def _moments(chunks) -> tuple[int, np.ndarray, np.ndarray, list[str]]:
    """Rows, column means and variances (merged chunk by chunk, Chan et al.), column names."""
    acc = engine.fold(chunks, _moments_step, _merge_moments)
    if acc is None or acc[0] == 0:
        raise DataError("No data rows to fit.")
    n, mean, m2, names = acc
    return n, mean, m2 / n, names


def _moments_step(acc, chunk: ModelData):
    X = chunk.X
    nb = X.shape[0]
    if nb == 0:
        return acc
    mb = X.mean(axis=0)
    m2b = ((X - mb) ** 2).sum(axis=0)
    return _merge_moments(acc, (nb, mb, m2b, chunk.names))


def _merge_moments(a, b):
    """(rows, means, sums of squares about them, names) of a's rows then b's (Chan et al.)."""
    if a is None or a[0] == 0:
        return b
    n, mean, m2, _ = a
    nb, mb, m2b, names = b
    delta = mb - mean
    mean = mean + delta * nb / (n + nb)
    m2 = m2 + m2b + delta * delta * n * nb / (n + nb)
    return n + nb, mean, m2, names


def _sample(blocks, rows: np.ndarray) -> np.ndarray:
    """The (scaled) rows at sorted indices `rows`, in one pass."""
    return np.vstack(engine.fold(blocks, _SampleStep(rows), _concat, with_start=True))


@dataclass(frozen=True)
class _SampleStep:
    rows: np.ndarray  # sorted; at most INIT_ROWS of them, so small enough to travel

    def __call__(self, parts, X: np.ndarray, start: int) -> list:
        parts = [] if parts is None else parts
        rows = self.rows
        take = rows[(rows >= start) & (rows < start + X.shape[0])] - start
        if len(take):
            parts.append(X[take])
        return parts


def _concat(a: list, b: list) -> list:
    return a + b


def _fit(chunks, config: Config, on_progress: ProgressFn) -> FitResult:
    start_time = time.perf_counter()
    n, centre, var, names = _moments(chunks)
    d = len(centre)
    missing = [a for a in config.plot_axes or () if a not in names]
    if missing:  # checked before fitting, not when the plot is drawn
        raise DataError(
            f"--plot-axes: no feature named {', '.join(repr(m) for m in missing)}; "
            f"features: {', '.join(names)}."
        )
    warnings = []
    constant = [names[j] for j in range(d) if var[j] == 0]
    if constant:
        listed = ", ".join(f"'{c}'" for c in constant)
        warnings.append(
            f"Constant column(s) {listed}: they carry no information about the clusters "
            "and only --reg-covar keeps their variance above 0. Drop them."
        )
    scale = np.where(var > 0, np.sqrt(var), 1.0) if config.standardize else np.ones(d)
    scaled_var = var / scale**2
    floor = scaled_var[scaled_var > 0].mean() if np.any(scaled_var > 0) else 1.0
    reg = config.reg_covar * np.where(scaled_var > 0, scaled_var, floor)
    blocks = engine.expand(chunks, _ScaleBlocks(centre, scale))
    rng = np.random.default_rng(config.seed)
    init_rows = np.sort(rng.choice(n, size=min(n, INIT_ROWS), replace=False))
    sample = _sample(blocks, init_rows)
    distinct = len(np.unique(sample, axis=0)) if len(init_rows) == n else None
    # Ward's clustering is quadratic: a random part of the sample (which is in file order)
    ward = sample[np.sort(rng.permutation(len(sample))[: mixture_init.WARD_ROWS])]
    informative, dependent = informative_directions(sample, reg, var)
    if dependent:
        listed = ", ".join(f"'{names[j]}'" for j in dependent)
        warnings.append(
            f"Column(s) {listed} are linear combinations of other columns (duplicated or "
            "collinear): every component is flat in that direction, held only by "
            "--reg-covar. Drop the redundant columns."
        )
    fits, table, skipped, discarded = {}, {}, [], []
    combos = [(k, kind) for kind in config.covariance for k in config.k]
    for i, (k, kind) in enumerate(combos, start=1):
        n_params = Mixture(kind, np.ones(k), np.zeros((k, d)), np.zeros(1)).n_parameters()
        if n_params >= n or (distinct is not None and k > distinct):
            why = (
                f"{n_params} parameters for {n} rows"
                if n_params >= n
                else f"only {distinct} distinct rows"
            )
            skipped.append(f"k={k} {kind} ({why})")
            continue

        def tick(iteration, mean_ll, _i=i):
            on_progress(Step(_i, len(combos), -mean_ll))

        best, rejected = best_start(
            blocks,
            n,
            sample,
            ward,
            k,
            kind,
            reg,
            informative,
            config,
            rng,
            min_expected_rows(kind, d),
            tick,
        )
        if rejected:
            discarded.append(f"k={k} {kind} ({rejected} of {config.n_init + 1})")
        if best is None:
            skipped.append(f"k={k} {kind} (every start degenerate)")
            continue
        fits[(k, kind)] = best
        ll = best.loglik - n * float(np.log(scale).sum())  # on the original scale
        table[(k, kind)] = (ll, best.mix.n_parameters())
    if not fits:
        error = FitError if any("degenerate" in s for s in skipped) else DataError
        raise error(
            f"No mixture could be fitted: {'; '.join(skipped)}. Use fewer components (--k), "
            "a simpler --covariance, or more rows."
        )
    if skipped:
        warnings.append("Not fitted: " + "; ".join(skipped) + ".")
    if discarded:
        warnings.append(
            "Starts discarded as degenerate (a component on too few rows, or collapsed onto "
            "repeated values so that only --reg-covar bounds its likelihood): "
            + "; ".join(discarded)
            + "."
        )
    bic = {key: -2.0 * ll + math.log(n) * p for key, (ll, p) in table.items()}
    chosen = min(bic, key=bic.get)
    outcome = fits[chosen]
    quantiles = _training_quantiles(outcome.mix, sample, scale)
    params = Params(to_original(outcome.mix, centre, scale), quantiles)
    result = summary(params, outcome, chosen, table, bic, n, scale, names, config, warnings)
    add_crosstab(result, chunks, centre, scale, outcome.mix)
    result.info["fit_seconds"] = time.perf_counter() - start_time
    return result


def _training_quantiles(mix_scaled: Mixture, sample: np.ndarray, scale: np.ndarray):
    """Log-density quantiles of the training rows (of the seeded sample, when there are more
    rows than that), on the original scale: predict --outliers compares against them."""
    dens = Densities(mix_scaled)
    log_p, _ = log_sum_exp(dens(sample))
    return np.quantile(log_p - float(np.log(scale).sum()), QUANTILE_LEVELS)


# --------------------------------------------------------------------------- predicting


def predict(
    params: Params,
    data: ModelData,
    proba: bool = False,
    score: bool = False,
    outliers: float | None = None,
) -> dict[str, np.ndarray]:
    """The most likely component (1..k); with proba each one's responsibility p_<j>, with
    score the log-density, with outliers Q whether it is below the training rows' Q-quantile."""
    log_p, R = log_sum_exp(params.log_densities(data.X))
    out = {"prediction": np.argmax(R, axis=1) + 1}
    if proba:
        for j in range(R.shape[1]):
            out[f"p_{j + 1}"] = R[:, j]
    if score:
        out["log_density"] = log_p
    if outliers is not None:
        threshold = float(np.interp(outliers, QUANTILE_LEVELS, params.quantiles))
        out["outlier"] = log_p < threshold
    return out


def plot_data(result: FitResult, data: ModelData, rows: np.ndarray | None) -> dict:
    """The BIC curves, and the rows on two axes (principal components or --plot-axes) with
    every component's mean and covariance projected."""
    X = data.X if rows is None else data.X[rows]
    params: Params = result.params
    mix = params.mixture
    names = result.internals["names"]
    axes = result.internals["plot_axes"]
    if axes:
        P = np.zeros((X.shape[1], 2))
        P[names.index(axes[0]), 0] = P[names.index(axes[1]), 1] = 1.0
        labels = list(axes)
    elif X.shape[1] == 1:
        P, labels = np.array([[1.0, 0.0]]), [names[0], ""]
    else:
        centred = X - X.mean(axis=0)
        _, sv, Vt = np.linalg.svd(centred, full_matrices=False)
        P = Vt[:2].T
        share = sv**2 / max(float((sv**2).sum()), np.finfo(float).tiny)
        labels = [f"PC{i + 1} ({100 * share[i]:.0f}% of variance)" for i in range(2)]
    full = mix.full_covariances()
    clusters = {
        "points": X @ P,
        "labels": np.argmax(params.log_densities(X), axis=1),
        "means": mix.means @ P,
        "covariances": np.einsum("di,kde,ej->kij", P, full, P),
        "weights": mix.weights,
        "axis_labels": labels,
    }
    return {"bic": result.internals["bic"], "clusters": clusters}
