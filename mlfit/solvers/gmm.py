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
from mlfit.contract import FitResult, ModelData, ProgressFn, Step, Table, no_progress
from mlfit.errors import DataError, FitError
from mlfit.params import ParamsError, decode_array, encode_array, read_choice
from mlfit.solvers import mixture_init
from mlfit.solvers.mixture import COVARIANCE_TYPES, Densities, Mixture, em, log_sum_exp

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


def _min_count(kind: str, d: int) -> float:
    """Expected rows below which a component is degenerate: its free covariance parameters."""
    return {"full": d + 1, "diag": 2, "spherical": 2, "tied": 1}[kind]


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
    informative, dependent = _informative_directions(sample, reg, var)
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

        best, rejected = _best_start(
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
            _min_count(kind, d),
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
    result = _result(outcome, chosen, table, bic, n, centre, scale, names, config, warnings)
    _final_pass(result, chunks, centre, scale, outcome.mix, sample)
    result.info["fit_seconds"] = time.perf_counter() - start_time
    return result


def _best_start(blocks, n, sample, ward, k, kind, reg, informative, config, rng, min_count, tick):
    """EM from every start: the non-degenerate outcome with the highest log-likelihood, and
    how many starts ended degenerate.

    When the data has more rows than the sample, the starts are run on the sample (cheap)
    and only the best is continued on every row: one full EM per model, not one per start.
    """
    starts = [(ward, mixture_init.ward_labels(ward, k))]
    starts += [(sample, mixture_init.kmeans_labels(sample, k, rng)) for _ in range(config.n_init)]
    on_sample = n > len(sample)
    best, rejected = None, 0
    for X0, labels in starts:
        mix = mixture_init.from_labels(X0, labels, k, kind, reg)
        try:
            rows = [sample] if on_sample else blocks
            out = em(rows, mix, reg, config.max_iter, config.tol, min_count, tick, True)
        except np.linalg.LinAlgError:  # a covariance lost definiteness: no usable maximum
            rejected += 1
            continue
        if np.min(out.counts) < min_count or _collapsed(out.mix, reg, informative):
            rejected += 1  # a spurious maximum: a handful of rows, or a spike on ties
            continue
        if best is None or out.loglik > best.loglik:
            best = out
    if best is not None and on_sample:
        try:
            best = em(blocks, best.mix, reg, config.max_iter, config.tol, min_count, tick, True)
        except np.linalg.LinAlgError:
            return None, rejected + 1
        if np.min(best.counts) < min_count or _collapsed(best.mix, reg, informative):
            return None, rejected + 1
    return best, rejected


def _informative_directions(sample, reg, var) -> tuple[np.ndarray, list[int]]:
    """An orthonormal basis (d, r) of the directions in which the data varies (in units of
    the regularisation), and the columns that are linear combinations of others.  Constant
    and duplicated columns are flat for every component, whatever the fit: only directions
    the data spans can show a component collapsing."""
    root = np.sqrt(reg)
    centred = (sample - sample.mean(axis=0)) / root
    _, sv, Vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(sv > 1e-7 * sv[0])) if len(sv) and sv[0] > 0 else 0
    basis = Vt[:rank].T
    dependent = []
    if rank < len(var):
        null = Vt[rank:]  # directions with no variance: their columns depend on each other
        loads = np.abs(null).max(axis=0)
        dependent = [j for j in range(len(var)) if loads[j] > 1e-6 and var[j] > 0]
        dependent = dependent[1:] if len(dependent) > 1 else dependent  # keep the first
    return basis, dependent


def _collapsed(mix: Mixture, reg: np.ndarray, basis: np.ndarray) -> bool:
    """Whether some component's variance, in some direction the data spans, is mostly the
    regularisation: it has collapsed onto a point or a line (repeated values), where the
    likelihood is unbounded and only --reg-covar holds it; mclust calls such a model
    singular."""
    if basis.shape[1] == 0:
        return False
    root = np.sqrt(reg)
    whitened = mix.full_covariances() / root[None, :, None] / root[None, None, :]
    projected = np.einsum("di,kde,ej->kij", basis, whitened, basis)
    return bool(np.min(np.linalg.eigvalsh(projected)) < 2.0)


def _to_original(mix: Mixture, centre: np.ndarray, scale: np.ndarray) -> Mixture:
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


def _result(outcome, chosen, table, bic, n, centre, scale, names, config, warnings):
    k, kind = chosen
    mix = _to_original(outcome.mix, centre, scale)
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
    params = Params(mix, np.zeros(len(QUANTILE_LEVELS)))
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


def _final_pass(result, chunks, centre, scale, mix_scaled, sample) -> None:
    """Log-density quantiles of the training rows (of the seeded sample, when there are more
    rows than that) and, when labels are given, their cross-tabulation against the most
    likely component (one more pass)."""
    dens = Densities(mix_scaled)
    log_p, _ = log_sum_exp(dens(sample))
    quantiles = np.quantile(log_p - float(np.log(scale).sum()), QUANTILE_LEVELS)
    result.params = Params(result.params.mixture, quantiles)
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
