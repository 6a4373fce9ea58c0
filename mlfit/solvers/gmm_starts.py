"""Where EM starts for each (k, covariance type) of a mixture fit, and which outcomes are
spurious maxima (a component on a handful of rows, or collapsed onto repeated values)."""

from __future__ import annotations

import numpy as np

from mlfit.solvers import mixture_init
from mlfit.solvers.mixture import Mixture, em


def min_expected_rows(kind: str, d: int) -> float:
    """Expected rows below which a component is degenerate: its free covariance parameters."""
    return {"full": d + 1, "diag": 2, "spherical": 2, "tied": 1}[kind]


def best_start(blocks, n, sample, ward, k, kind, reg, informative, config, rng, min_count, tick):
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


def informative_directions(sample, reg, var) -> tuple[np.ndarray, list[int]]:
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
