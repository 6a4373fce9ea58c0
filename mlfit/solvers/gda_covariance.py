"""The covariances of Gaussian discriminant analysis from class moments: shrinkage, ridge,
and the detection and repair of singular estimates, with warnings that name the cause.

Every scale is unit-free: shrinkage and Ledoit-Wolf act on a class's covariance standardized
by its own variances (scikit-learn's LDA(shrinkage='auto') does the same), and --reg-covar adds
that many times each feature's variance to the diagonal.  A feature constant within a class
takes its variance over all training rows as its scale; one constant over every training row
gets unit variance and no covariance in every covariance, so it cancels out of the posteriors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mlfit.errors import FitError
from mlfit.solvers.moments import ClassMoments

#: A covariance is singular when the smallest eigenvalue of its standardized form is at most
#: this times the largest (a solve through it would lose about 10 of 16 digits).
RCOND = 1e-10
#: The ridge (relative to each feature's variance) added when shrinkage leaves it singular.
FALLBACK_REG = 1e-6
#: A variance below (CONSTANT_RTOL * |mean|)^2 is rounding noise of a constant column.
CONSTANT_RTOL = 1e-12
#: Features named at most in a warning.
MAX_NAMED = 5

FourthMoments = Callable[[np.ndarray], np.ndarray]  # scales (K, p) -> (K,) sums of ||z||^4


@dataclass
class Estimate:
    """covariances: (p, p) shared or (K, p, p) per class, as used for prediction;
    shrinkage: (K,) the shrinkage of each class's covariance; reg: the ridge added."""

    covariances: np.ndarray
    shrinkage: np.ndarray
    reg: float
    warnings: list[str] = field(default_factory=list)


def ledoit_wolf(R: np.ndarray, fourth: float, n: int) -> float:
    """Ledoit and Wolf's (2004) shrinkage intensity towards mu I for a standardized covariance
    R (p, p) of n centred rows z whose sum of ||z||^4 is `fourth`."""
    p = len(R)
    if p == 1 or n == 0:
        return 0.0
    mu = np.trace(R) / p
    delta_sum = float(np.sum(R * R))
    beta = (fourth / n - delta_sum) / (p * n)
    delta = (delta_sum - p * mu * mu) / p
    beta = min(beta, delta)
    return float(beta / delta) if beta > 0 else 0.0


def shrink(R: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) R + alpha mu I, mu the mean of R's diagonal."""
    out = (1.0 - alpha) * R
    out[np.diag_indices_from(out)] += alpha * np.trace(R) / len(R)
    return out


class Estimator:
    """Covariances from training-row class moments, for a Config of gda."""

    def __init__(self, m: ClassMoments, config, names: list[str], labels: list):
        self.m, self.config, self.names, self.labels = m, config, names, labels
        K, p = m.mean.shape
        self.K, self.p = K, p
        n_k = m.count.astype(float)
        self.n = float(n_k.sum())
        self.priors = n_k / self.n
        total = m.total_variance()
        grand = self.priors @ m.mean
        self.constant = total <= (CONSTANT_RTOL * np.abs(grand)) ** 2
        cov = m.scatter / n_k[:, None, None]  # maximum likelihood, per class
        var = np.einsum("kjj->kj", cov)
        self.within_constant = (var <= (CONSTANT_RTOL * np.abs(m.mean)) ** 2) & ~self.constant
        # each class's scale: its variance, else the variance over all rows, else 1
        scale = np.where(self.within_constant, total, var)
        scale[:, self.constant] = 1.0
        self.scale = scale
        root = np.sqrt(scale)
        R = cov / (root[:, :, None] * root[:, None, :])
        zero = self.within_constant | self.constant  # rounding noise only: exactly zero
        R[np.broadcast_to(zero[:, :, None], R.shape)] = 0.0
        R[np.broadcast_to(zero[:, None, :], R.shape)] = 0.0
        self.R = R

    def constant_warning(self) -> str | None:
        names = [n for n, c in zip(self.names, self.constant) if c]
        if not names:
            return None
        return (
            f"{_listed(names)} {'is' if len(names) == 1 else 'are'} constant in the training "
            "rows: no use for telling the classes apart, so given the same unit variance in "
            "every class (it cancels out of the posteriors). Leave it out with --drop."
        )

    def build(self, alphas: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray]:
        """(covariances, scales): (K, p, p) and (K, p), or (1, p, p) and (1, p) when shared."""
        root = np.sqrt(self.scale)
        C = np.stack([shrink(self.R[k], alphas[k]) for k in range(self.K)])
        C *= root[:, :, None] * root[:, None, :]
        if self.config.per_class_covariance:
            scales = self.scale
        else:
            C = np.tensordot(self.priors, C, axes=1)[None]
            pooled = np.einsum("jj->j", C[0]).copy()
            total = self.m.total_variance()
            scales = np.where(np.all(self.within_constant, axis=0), total, pooled)[None]
            scales[:, self.constant] = 1.0
        C[:, self.constant, :] = 0.0
        C[:, :, self.constant] = 0.0
        C[:, self.constant, self.constant] = 1.0
        if reg > 0:
            idx = np.arange(self.p)
            C[:, idx, idx] += reg * np.where(self.constant, 0.0, scales)
        return C, scales

    def estimate(self, fourth: FourthMoments) -> Estimate:
        config, K = self.config, self.K
        warnings = [w for w in [self.constant_warning()] if w]
        lw = None
        if config.shrinkage == "auto":
            lw = self._ledoit_wolf(fourth)
            alphas = lw
        else:
            alphas = np.full(K, float(config.shrinkage or 0.0))
        reg = config.reg_covar
        C, scales = self.build(alphas, reg)
        bad = self._singular(C, scales)
        if not bad:
            return Estimate(self._finish(C), alphas, reg, warnings)
        causes = {i: self._cause(i, C[i], scales[i]) for i in bad}
        shrunk, ridge = [], False
        if config.shrinkage is None:
            lw = self._ledoit_wolf(fourth) if lw is None else lw
            shrunk = bad if config.per_class_covariance else list(range(K))
            alphas = alphas.copy()
            alphas[shrunk] = lw[shrunk]
            C, scales = self.build(alphas, reg)
            bad = self._singular(C, scales)
        if bad:
            reg, ridge = max(reg, FALLBACK_REG), True
            C, scales = self.build(alphas, reg)
            if self._singular(C, scales):
                raise FitError(
                    "The covariance stays singular after regularisation. Use a larger "
                    "--reg-covar or --shrinkage, or drop the features named in the warnings."
                )
        for i, cause in causes.items():
            what = f"of class {self.labels[i]!r}" if config.per_class_covariance else "(shared)"
            own = [i] if config.per_class_covariance else shrunk
            fixes = []
            if shrunk and np.any(alphas[own] > 0):
                per = " (per class)" if len(own) > 1 else ""
                values = ", ".join(f"{alphas[k]:.3g}" for k in own)
                fixes.append(f"regularised by Ledoit-Wolf shrinkage {values}{per}")
            if ridge:
                fixes.append(f"{reg:g} times each feature's variance added to the diagonal")
            warnings.append(
                f"The covariance {what} is singular or nearly so: {cause}; "
                + " and ".join(fixes)
                + ". Choose with --shrinkage (auto or 0..1) or --reg-covar."
            )
        return Estimate(self._finish(C), alphas, reg, warnings)

    def _finish(self, C: np.ndarray) -> np.ndarray:
        C = (C + np.swapaxes(C, 1, 2)) / 2  # exactly symmetric
        return C if self.config.per_class_covariance else C[0]

    def _ledoit_wolf(self, fourth: FourthMoments) -> np.ndarray:
        sums = fourth(self.scale)
        return np.array(
            [ledoit_wolf(self.R[k], sums[k], int(self.m.count[k])) for k in range(self.K)]
        )

    def _singular(self, C: np.ndarray, scales: np.ndarray) -> list[int]:
        return [i for i in range(len(C)) if _min_ratio(C[i], scales[i])[0] <= RCOND]

    def _cause(self, i: int, C: np.ndarray, scale: np.ndarray) -> str:
        """Why covariance i is singular, naming features (and the class): features constant
        within it, too few rows, and the collinear features among the others."""
        per_class = self.config.per_class_covariance
        label = repr(self.labels[i])
        flat = self.within_constant[i] if per_class else np.all(self.within_constant, axis=0)
        causes = []
        if flat.any():
            names = [n for n, c in zip(self.names, flat) if c]
            verb = "is" if len(names) == 1 else "are"
            where = f"class {label}" if per_class else "every class"
            causes.append(f"{_listed(names)} {verb} constant within {where}")
        varying = int(np.sum(~self.constant))
        rows = int(self.m.count[i]) if per_class else int(self.n) - self.K
        # rank at most n_k - 1 (one class) or n - K (shared)
        too_few = (rows <= varying) if per_class else (rows < varying)
        if too_few:
            causes.append(
                f"class {label} has {rows} rows for {varying} varying features"
                if per_class
                else f"{int(self.n)} rows in {self.K} classes leave {rows} degrees of "
                f"freedom for {varying} varying features"
            )
            return "; ".join(causes)
        rest = ~flat & ~self.constant  # collinearity among the features that vary
        if rest.sum() > 1:
            sub = np.ix_(rest, rest)
            ratio, V, small = _min_ratio(C[sub], scale[rest], vectors=True)
            if ratio <= RCOND:
                loads = np.max(np.abs(V[:, small]), axis=1)
                names = [n for n, v in zip(np.array(self.names)[rest], loads) if v >= 0.1]
                where = f"within class {label}" if per_class else "within the classes"
                causes.append(f"{_listed(names)} are (nearly) collinear {where}")
        return "; ".join(causes) or "it is nearly singular"


def _min_ratio(C: np.ndarray, scale: np.ndarray, vectors: bool = False):
    """Smallest over largest eigenvalue of C standardized by `scale` (p,); with vectors also
    the eigenvectors and which eigenvalues are below RCOND times the largest."""
    s = 1.0 / np.sqrt(scale)
    S = C * s[:, None] * s[None, :]
    if not vectors:
        w = np.linalg.eigvalsh(S)
        return (w[0] / w[-1] if w[-1] > 0 else 0.0), None, None
    w, V = np.linalg.eigh(S)
    return (w[0] / w[-1] if w[-1] > 0 else 0.0), V, w <= RCOND * max(w[-1], 0.0)


def _listed(names: list[str]) -> str:
    shown = [f"'{n}'" for n in names[:MAX_NAMED]]
    more = len(names) - len(shown)
    if more:
        return ", ".join(shown) + f" and {more} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
