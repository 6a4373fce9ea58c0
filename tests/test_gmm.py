"""mlfit gmm against independent references: scikit-learn's EM from the same start, its n_init
restarts and BIC, scipy's normal densities, sklearn's adjusted Rand index; monotone EM,
chunked equals in memory, predict, degenerate inputs, --standardize, --target, determinism."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.solvers import gmm, gmm_summary
from mlfit.solvers.mixture import COVARIANCE_TYPES, Mixture, em

SAMPLE = Path(__file__).parent.parent / "sample_data"
CLUSTERS = str(SAMPLE / "clusters.csv")
FLOWERS = str(SAMPLE / "flowers.csv")


# --------------------------------------------------------------------------- helpers


def clustered(rng, sizes, centres, spread=1.0, shear=0.6) -> np.ndarray:
    """Rows of Gaussian clusters: sizes[j] rows about centres[j], each cluster with its own
    random linear map (so the clusters are elliptical and differ in shape)."""
    centres = np.asarray(centres, dtype=float)
    d = centres.shape[1]
    parts = []
    for size, centre in zip(sizes, centres):
        A = spread * (np.eye(d) + shear * rng.normal(size=(d, d)))
        parts.append(rng.normal(size=(size, d)) @ A + centre)
    X = np.vstack(parts)
    return X[rng.permutation(len(X))]


def to_full(kind: str, cov: np.ndarray, k: int, d: int) -> np.ndarray:
    """(k, d, d) covariances from a covariance of any type (independent of mlfit)."""
    cov = np.asarray(cov, dtype=float)
    if kind == "full":
        return cov.reshape(k, d, d)
    if kind == "tied":
        return np.repeat(cov.reshape(1, d, d), k, axis=0)
    if kind == "diag":
        return np.stack([np.diag(v) for v in cov.reshape(k, d)])
    return np.stack([v * np.eye(d) for v in cov.reshape(k)])


def n_free(kind: str, k: int, d: int) -> int:
    """Free parameters of a k-component mixture in d dimensions (mclust, scikit-learn)."""
    cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k, "tied": d * (d + 1) // 2}
    return (k - 1) + k * d + cov[kind]


def mixture_log_density(X, weights, means, full_covs) -> np.ndarray:
    """(n,) log sum_j w_j N(x | mu_j, Sigma_j) by scipy."""
    terms = np.column_stack(
        [
            math.log(w) + multivariate_normal(mu, S).logpdf(X)
            for w, mu, S in zip(weights, means, full_covs)
        ]
    )
    return logsumexp(terms, axis=1)


def cholesky_log_density(X, weights, means, full_covs) -> np.ndarray:
    """The same mixture log-density through Cholesky factors (scipy's multivariate_normal
    rejects covariances whose eigenvalues span more than ~1e9, as columns in units 1e5 apart
    do)."""
    n, d = X.shape
    terms = np.empty((n, len(weights)))
    for j, (w, mu, S) in enumerate(zip(weights, means, full_covs)):
        L = np.linalg.cholesky(S)
        Z = solve_triangular(L, (X - mu).T, lower=True)
        log_det = 2.0 * np.log(np.diag(L)).sum()
        terms[:, j] = math.log(w) - 0.5 * (d * math.log(2 * math.pi) + log_det + (Z * Z).sum(0))
    return logsumexp(terms, axis=1)


def assert_rel(actual, desired, rtol, what=""):
    """Agreement relative to the size of the array: max |a - b| <= rtol * max |b|."""
    actual, desired = np.asarray(actual, dtype=float), np.asarray(desired, dtype=float)
    assert actual.shape == desired.shape, (what, actual.shape, desired.shape)
    scale = max(float(np.abs(desired).max()), np.finfo(float).tiny)
    err = float(np.abs(actual - desired).max())
    assert err <= rtol * scale, f"{what}: max error {err:.3g}, {err / scale:.3g} relative"


def write_table(write_csv, X, names=None, labels=None, name="data.csv") -> str:
    names = names or [f"x{j + 1}" for j in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    if labels is not None:
        frame["label"] = labels
    return write_csv(frame.to_csv(index=False, float_format="%.17g"), name)


@pytest.fixture
def fit_json(runner, strict_json):
    """fit_json(*args) -> (JSON document, stderr) of a successful `mlfit gmm ... --json`."""

    def run(*args):
        result = runner.invoke(cli, ["gmm", *map(str, args), "--json"])
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return strict_json(result.stdout), result.stderr

    return run


def components(doc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """weights (k,), means (k, d), full covariances (k, d, d) from the JSON's components."""
    rows = doc["components"].values()
    weights = np.array([r["weight"] for r in rows])
    means = np.array([r["mean"] for r in rows])
    d = means.shape[1]
    covs = []
    for r in rows:
        c = np.asarray(r["covariance"], dtype=float)
        covs.append(c if c.shape == (d, d) else np.diag(c))
    return weights, means, np.array(covs)


def overlapping_three(rng, d: int, n: int = 300) -> np.ndarray:
    """Three overlapping clusters of unequal size in d >= 2 dimensions."""
    centres = np.zeros((3, d))
    centres[1, 0] = 2.5
    centres[2, :2] = [0.5, 2.0]
    return clustered(rng, [n // 2, n // 3, n - n // 2 - n // 3], centres)


# --------------------------------------------------------------------------- 1. EM vs sklearn


def _start(X, k, kind, rng):
    """An arbitrary start: uneven weights, k random rows as means, scaled data covariances."""
    n, d = X.shape
    weights = np.linspace(1.0, 2.0, k)
    weights /= weights.sum()
    means = X[rng.choice(n, size=k, replace=False)]
    S = np.cov(X, rowvar=False, bias=True)
    factors = np.linspace(0.5, 1.5, k)
    cov = {
        "full": np.stack([f * S for f in factors]),
        "tied": S,
        "diag": np.outer(factors, np.diag(S)),
        "spherical": factors * np.trace(S) / d,
    }[kind]
    precisions = (
        np.linalg.inv(cov) if kind in ("full", "tied") else 1.0 / cov
    )  # sklearn takes precisions: a test may invert
    return weights, means, cov, precisions


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize(("d", "k", "steps"), [(2, 2, 1), (3, 3, 20), (4, 3, 60)])
def test_em_matches_sklearn_from_the_same_start(rng, kind, d, k, steps):
    X = overlapping_three(rng, d)
    n = len(X)
    weights, means, cov, precisions = _start(X, k, kind, rng)
    r = 1e-3
    # tol=0: |change| < 0 never holds, so sklearn takes exactly max_iter E+M steps; with every
    # *_init given, init_params only draws responsibilities that are then overridden
    sk = GaussianMixture(
        n_components=k,
        covariance_type=kind,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        reg_covar=r,
        max_iter=steps,
        tol=0.0,
        init_params="random",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X)
    assert sk.n_iter_ == steps
    mix = Mixture(kind, weights, means, cov)
    # monotone=False: every one of the steps, as scikit-learn takes them
    out = em([X], mix, reg=np.full(d, r), max_iter=steps, tol=-1.0, monotone=False)
    assert out.iterations == steps and not out.converged
    assert len(out.history) == steps + 1
    assert_rel(out.mix.weights, sk.weights_, 1e-8, "weights")
    assert_rel(out.mix.means, sk.means_, 1e-8, "means")
    assert_rel(out.mix.covariances, sk.covariances_, 1e-8, "covariances")
    np.testing.assert_allclose(out.history[-1], sk.score(X), rtol=1e-8)
    np.testing.assert_allclose(out.loglik, n * sk.score(X), rtol=1e-8)


# --------------------------------------------------------------------------- 2. monotone EM


def _generated_sets():
    """(name, X, k): a few data sets of different dimension, overlap and balance."""
    rng = np.random.default_rng(101)
    return [
        ("1d-two", clustered(rng, [150, 80], [[0.0], [2.0]]), 2),
        ("2d-three", clustered(rng, [120, 100, 60], [[0, 0], [3, 0], [1, 2.5]]), 3),
        ("3d-overlap", clustered(rng, [100, 100, 100], np.eye(3) * 1.5), 3),
        ("4d-unequal", clustered(rng, [200, 60, 30, 20], np.eye(4) * 4.0, shear=0.3), 4),
    ]


GENERATED = _generated_sets()


def _assert_nondecreasing(h, what):
    h = np.asarray(h, dtype=float)
    assert np.all(np.isfinite(h)), what
    drops = h[:-1] - h[1:]  # > 0 where the likelihood fell
    worst = float(np.max(drops / np.abs(h[:-1]))) if len(h) > 1 else 0.0
    assert worst <= 1e-12, f"{what}: log-likelihood fell by {worst:.3g} relative"


def _em_history(X, k, kind, reg_covar=1e-6, seed=7, steps=200):
    """Plain EM (tol -1: exactly `steps` M steps) from k random rows with the data's variance."""
    n = len(X)
    rng = np.random.default_rng(seed)
    means = X[rng.choice(n, size=k, replace=False)]
    var = X.var(axis=0)
    cov = {
        "full": np.repeat(np.diag(var)[None], k, axis=0),
        "tied": np.diag(var),
        "diag": np.repeat(var[None], k, axis=0),
        "spherical": np.full(k, var.mean()),
    }[kind]
    # 200 steps: well past convergence, where only rounding should move it
    out = em([X], Mixture(kind, np.full(k, 1.0 / k), means, cov), reg_covar * var, steps, -1.0)
    return out


EM_CASES = [
    pytest.param(
        X,
        k,
        kind,
        id=f"{name}-{kind}",
    )
    for name, X, k in GENERATED
    for kind in COVARIANCE_TYPES
]


@pytest.mark.parametrize(("X", "k", "kind"), EM_CASES)
def test_em_history_never_decreases(X, k, kind):
    _assert_nondecreasing(_em_history(X, k, kind).history, f"em {kind} k={k}")


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_em_history_never_decreases_one_more_component(kind):
    for name, X, k in GENERATED:
        _assert_nondecreasing(_em_history(X, k + 1, kind).history, f"em {name} {kind} k={k + 1}")


def test_gmm_fit_history_never_decreases():
    for reg_covar in (1e-6, 1e-3):
        for name, X, k in GENERATED:
            for kind in COVARIANCE_TYPES:
                config = gmm.Config(k=(k,), covariance=(kind,), n_init=2, reg_covar=reg_covar)
                res = gmm.fit(ModelData(X), config)
                loss = np.asarray(res.convergence["history"])  # -(mean log-likelihood)
                assert loss[-1] == pytest.approx(-res.metrics["mean_log_likelihood"])
                _assert_nondecreasing(-loss, f"gmm.fit {name} {kind} reg_covar={reg_covar}")


# --------------------------------------------------------------------------- 3. n_init vs sklearn


def _unequal_four():
    rng = np.random.default_rng(7)
    sizes, scales = [400, 150, 60, 25], [1.5, 0.8, 0.5, 0.3]
    centres = np.array([[0, 0], [4, 0], [0, 4], [4, 4.5]])
    shear = np.array([[1.0, 0.4], [0.0, 1.0]])
    return np.vstack(
        [rng.normal(size=(s, 2)) * sc @ shear + c for s, sc, c in zip(sizes, scales, centres)]
    )


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", ["clusters", "unequal4"])
def test_n_init_5_at_least_as_good_as_sklearn(fit_json, write_csv, kind, data):
    if data == "clusters":
        path, k = CLUSTERS, 3
        X = pd.read_csv(path).to_numpy(dtype=float)
    else:
        X, k = _unequal_four(), 4
        path = write_table(write_csv, X)
    doc, _ = fit_json(path, "--k", k, "--covariance", kind, "--n-init", 5)
    sk = GaussianMixture(n_components=k, covariance_type=kind, n_init=5, random_state=0)
    reference = sk.fit(X).score(X)
    assert doc["metrics"]["mean_log_likelihood"] >= reference - 1e-9


# --------------------------------------------------------------------------- 4. BIC


def _separated_four(rng):
    return clustered(rng, [100, 100, 100, 100], [[0, 0], [9, 0], [0, 9], [9, 9]], shear=0.3)


def test_bic_picks_the_true_k(fit_json, write_csv, rng):
    X = _separated_four(rng)
    doc, _ = fit_json(write_table(write_csv, X), "--k", "1-7")
    assert doc["metrics"]["k"] == 4
    assert list(doc["bic"]) == [f"k={k}" for k in range(1, 8)]
    values = [row["full"] for row in doc["bic"].values()]
    assert all(math.isfinite(v) for v in values)
    assert doc["metrics"]["bic"] == pytest.approx(min(values), rel=1e-12)
    assert int(np.argmin(values)) + 1 == 4


def _sklearn_mixture(kind, weights, means, cov) -> GaussianMixture:
    """A fitted-looking sklearn GaussianMixture holding the given parameters."""
    g = GaussianMixture(n_components=len(weights), covariance_type=kind)
    g.weights_, g.means_, g.covariances_ = weights, means, cov
    g.precisions_cholesky_ = _compute_precision_cholesky(cov, kind)
    g.n_features_in_ = means.shape[1]
    return g


@pytest.mark.parametrize(
    ("kind", "standardize"),
    [
        *[(t, False) for t in COVARIANCE_TYPES],
        ("full", True),
        ("diag", True),
        ("spherical", True),
        ("tied", True),
    ],
)
def test_bic_of_the_chosen_model(fit_json, tmp_path, kind, standardize):
    X = pd.read_csv(CLUSTERS).to_numpy(dtype=float)
    n, d = X.shape
    model = tmp_path / "bic.model"
    args = [CLUSTERS, "--k", "2-4", "--covariance", kind, "-o", model]
    doc, _ = fit_json(*args, *(["--standardize"] if standardize else []))
    m = doc["metrics"]
    k = m["k"]
    assert m["covariance_type"] == kind
    assert json.loads(model.read_text())["n_parameters"] == n_free(kind, k, d)
    # the components table gives every covariance as a full matrix (diag as its diagonal)
    weights, means, full_covs = components(doc)
    g = _sklearn_mixture("full", weights, means, full_covs)
    ll = n * g.score(X)
    np.testing.assert_allclose(m["log_likelihood"], ll, rtol=1e-10)
    np.testing.assert_allclose(mixture_log_density(X, weights, means, full_covs).sum(), ll)
    expected = -2.0 * ll + math.log(n) * n_free(kind, k, d)
    np.testing.assert_allclose(m["bic"], expected, rtol=1e-10)
    np.testing.assert_allclose(doc["bic"][f"k={k}"][kind], expected, rtol=1e-10)
    np.testing.assert_allclose(m["aic"], -2.0 * ll + 2.0 * n_free(kind, k, d), rtol=1e-10)
    if not standardize:  # sklearn's own count of parameters, on its own type
        cov = {
            "full": full_covs,
            "tied": full_covs[0],
            "diag": np.array([np.diag(c) for c in full_covs]),
            "spherical": full_covs[:, 0, 0],
        }[kind]
        np.testing.assert_allclose(
            m["bic"], _sklearn_mixture(kind, weights, means, cov).bic(X), rtol=1e-10
        )


# --------------------------------------------------------------------------- 5. chunked


def _chunks(X, rng, low=7, high=50):
    cuts = [0]
    while cuts[-1] < len(X):
        cuts.append(min(len(X), cuts[-1] + int(rng.integers(low, high + 1))))
    return [ModelData(X[a:b]) for a, b in itertools.pairwise(cuts)]


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_chunks_equal_in_memory(rng, kind):
    X = clustered(rng, [120, 120, 120], [[0, 0, 0], [3, 1, 0], [0, 3, 3]])
    config = gmm.Config(k=(1, 2, 3, 4), covariance=(kind,), n_init=2, seed=3)
    a = gmm.fit(ModelData(X), config)
    b = gmm.fit_chunks(_chunks(X, rng), config)
    ma, mb = a.params.mixture, b.params.mixture
    assert (a.metrics["k"], ma.covariance_type) == (b.metrics["k"], mb.covariance_type)
    assert_rel(mb.weights, ma.weights, 1e-10, "weights")
    assert_rel(mb.means, ma.means, 1e-10, "means")
    assert_rel(mb.covariances, ma.covariances, 1e-10, "covariances")
    np.testing.assert_allclose(b.metrics["log_likelihood"], a.metrics["log_likelihood"], 1e-10)


def test_chunk_rows_cli_equals_in_memory(fit_json, write_csv, rng):
    X = clustered(rng, [90, 90, 90], [[0, 0, 0], [3, 1, 0], [0, 3, 3]])
    path = write_table(write_csv, X)
    memory, _ = fit_json(path, "--k", "2-3", "--covariance", "all")
    chunked, _ = fit_json(path, "--k", "2-3", "--covariance", "all", "--chunk-rows", 40)
    assert chunked["metrics"]["k"] == memory["metrics"]["k"]
    assert chunked["metrics"]["covariance_type"] == memory["metrics"]["covariance_type"]
    for a, b, what in zip(components(chunked), components(memory), ("w", "mu", "cov")):
        assert_rel(a, b, 1e-10, what)
    for key in ("log_likelihood", "bic"):
        np.testing.assert_allclose(chunked["metrics"][key], memory["metrics"][key], rtol=1e-10)
    for row in memory["bic"]:
        for t, v in memory["bic"][row].items():
            np.testing.assert_allclose(chunked["bic"][row][t], v, rtol=1e-10)


# --------------------------------------------------------------------------- 6. predict


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_predict_against_scipy(rng, kind):
    X = clustered(rng, [150, 150, 100], [[0, 0], [4, 0], [1, 3.5]])
    n, d = X.shape
    res = gmm.fit(ModelData(X), gmm.Config(k=(3,), covariance=(kind,)))
    mix = res.params.mixture
    out = gmm.predict(res.params, ModelData(X), proba=True, score=True, outliers=0.05)
    full_covs = to_full(mix.covariance_type, mix.covariances, mix.k, d)
    log_p = mixture_log_density(X, mix.weights, mix.means, full_covs)
    np.testing.assert_allclose(out["log_density"], log_p, rtol=1e-10)
    np.testing.assert_allclose(log_p.sum(), res.metrics["log_likelihood"], rtol=1e-10)
    R = np.column_stack([out[f"p_{j + 1}"] for j in range(3)])
    assert np.all(R >= 0)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # responsibilities by hand: w_j N_j(x) / sum
    terms = np.column_stack(
        [
            math.log(w) + multivariate_normal(mu, S).logpdf(X)
            for w, mu, S in zip(mix.weights, mix.means, full_covs)
        ]
    )
    np.testing.assert_allclose(R, np.exp(terms - log_p[:, None]), rtol=1e-9, atol=1e-12)
    assert set(np.unique(out["prediction"])) <= {1, 2, 3}
    np.testing.assert_array_equal(out["prediction"], np.argmax(terms, axis=1) + 1)
    # the threshold is the training rows' 0.05-quantile (numpy's linear interpolation at
    # position 0.05 (n - 1)), so with n distinct log-densities floor(0.05 (n - 1)) or one more
    # rows lie strictly below it: within one row of 5 %
    flagged = int(np.sum(out["outlier"]))
    assert abs(flagged - 0.05 * n) <= 1, flagged
    np.testing.assert_array_equal(out["outlier"], log_p < np.quantile(log_p, 0.05))


def test_predict_cli_score_proba_outliers(runner, write_csv, rng, tmp_path):
    X = clustered(rng, [200, 150, 150], [[0, 0], [4, 0], [1, 3.5]])
    path = write_table(write_csv, X)
    model = tmp_path / "g.model"
    fit = runner.invoke(cli, ["gmm", path, "--k", "3", "-o", str(model), "--quiet"])
    assert fit.exit_code == 0, fit.stderr
    result = runner.invoke(
        cli, ["predict", str(model), path, "--proba", "--score", "--outliers", "0.05", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(X)
    saved = json.loads(model.read_text())["params"]
    k, d = len(saved["weights"]), X.shape[1]
    full_covs = to_full(saved["covariance_type"], saved["covariances"], k, d)
    log_p = mixture_log_density(X, saved["weights"], np.array(saved["means"]), full_covs)
    np.testing.assert_allclose([r["log_density"] for r in rows], log_p, rtol=1e-10)
    for r in rows:
        assert 1 <= r["prediction"] <= k
        p = [r[f"p_{j + 1}"] for j in range(k)]
        assert abs(sum(p) - 1.0) <= 1e-12
        assert r["prediction"] == int(np.argmax(p)) + 1
    flagged = sum(r["outlier"] for r in rows)
    assert abs(flagged - 0.05 * len(X)) <= 1, flagged


# --------------------------------------------------------------------------- 7. degenerate


def _all_finite(doc) -> None:
    for row in doc["components"].values():
        for v in row.values():
            assert np.all(np.isfinite(np.asarray(v, dtype=float)))
    for key in ("log_likelihood", "bic", "aic", "mean_log_likelihood"):
        assert math.isfinite(doc["metrics"][key])


def test_k_above_distinct_rows_is_an_error(runner, write_csv, rng, assert_error):
    X = np.repeat(rng.normal(size=(5, 2)), 10, axis=0)  # 50 rows, 5 distinct
    path = write_table(write_csv, X)
    result = runner.invoke(cli, ["gmm", path, "--k", "6"])
    assert_error(result, 3, "distinct", "--k")


def test_k_equal_to_distinct_rows_is_reported_not_nan(runner, write_csv, rng, assert_error):
    """Every component would collapse onto one repeated row: likelihood bounded only by
    --reg-covar.  Handled and reported: a clean one-line error, never a NaN result."""
    X = np.repeat(rng.normal(size=(5, 2)), 10, axis=0)
    result = runner.invoke(cli, ["gmm", write_table(write_csv, X), "--k", "5", "--json"])
    assert result.exit_code in (1, 3), (result.exit_code, result.stdout, result.stderr)
    assert_error(result, result.exit_code, "degenerate")


def test_more_parameters_than_rows_is_an_error(runner, write_csv, rng, assert_error):
    X = rng.normal(size=(12, 4))  # k=3 full in 4-D: 2 + 12 + 30 = 44 parameters
    result = runner.invoke(cli, ["gmm", write_table(write_csv, X), "--k", "3"])
    assert_error(result, 3, "44 parameters", "12 rows")


def _with_constant(rng):
    X = clustered(rng, [100, 100], [[0, 0], [5, 5]])
    return np.column_stack([X, np.full(len(X), 3.0)])


def _constant_case(fit_json, write_csv, rng, covariance):
    path = write_table(write_csv, _with_constant(rng), names=["a", "b", "c"])
    doc, stderr = fit_json(path, "--k", "2", "--covariance", covariance)
    assert any("'c'" in w and "onstant" in w for w in doc["warnings"]), doc["warnings"]
    assert "'c'" in stderr
    _all_finite(doc)
    _, means, covs = components(doc)
    np.testing.assert_allclose(means[:, 2], 3.0, rtol=1e-12)
    assert np.all(np.diagonal(covs, axis1=1, axis2=2) > 0)


@pytest.mark.parametrize("covariance", ["spherical", "all"])
def test_constant_column_warned_by_name(fit_json, write_csv, rng, covariance):
    _constant_case(fit_json, write_csv, rng, covariance)


def test_constant_column_full_covariance_fits(fit_json, write_csv, rng):
    _constant_case(fit_json, write_csv, rng, "full")


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_duplicated_rows_give_finite_results(fit_json, write_csv, rng, covariance):
    X = clustered(rng, [60, 60], [[0, 0], [5, 5]])
    path = write_table(write_csv, np.vstack([X, X, X]))
    doc, _ = fit_json(path, "--k", "1-3", "--covariance", covariance)
    _all_finite(doc)
    weights, _, _ = components(doc)
    assert np.all(weights > 0.05)  # no spike on a repeated row


def test_duplicated_column_full_covariance_fits_and_names_it(runner, write_csv, rng):
    X = clustered(rng, [100, 100], [[0, 0], [5, 5]])
    path = write_table(write_csv, np.column_stack([X, X[:, 0]]), names=["a", "b", "a_copy"])
    result = runner.invoke(cli, ["gmm", path, "--k", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "a_copy" in result.stderr
    _all_finite(json.loads(result.stdout))


def test_duplicated_column_warned_by_name(fit_json, write_csv, rng):
    X = clustered(rng, [100, 100], [[0, 0], [5, 5]])
    path = write_table(write_csv, np.column_stack([X, X[:, 0]]), names=["a", "b", "a_copy"])
    doc, _ = fit_json(path, "--k", "2", "--covariance", "diag")
    _all_finite(doc)
    assert any("a_copy" in w for w in doc["warnings"]), doc["warnings"]


def test_infeasible_k_in_a_range_are_skipped(fit_json, write_csv, rng):
    X = rng.normal(size=(30, 3))  # full: k=3 has 29 parameters, k=4 39, k=5 49
    doc, stderr = fit_json(write_table(write_csv, X), "--k", "1-5")
    assert "Not fitted" in stderr
    note = next(w for w in doc["warnings"] if w.startswith("Not fitted"))
    assert "k=4" in note and "k=5" in note and "k=3" not in note
    assert list(doc["bic"]) == ["k=1", "k=2", "k=3"]
    _all_finite(doc)


def test_component_collapsing_onto_a_point_is_reported(fit_json, write_csv, rng):
    X = np.vstack([clustered(rng, [100, 100], [[0, 0], [6, 6]]), np.tile([3.0, -4.0], (30, 1))])
    doc, _ = fit_json(write_table(write_csv, X), "--k", "1-4")
    _all_finite(doc)
    assert "degenerate" in " ".join(doc["warnings"]), doc["warnings"]
    # the reported model holds no spike whose variance is just the regularisation
    var = X.var(axis=0)
    _, _, covs = components(doc)
    assert np.all(np.diagonal(covs, axis1=1, axis2=2) > 100 * 1e-6 * var)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_emptied_component_is_reseeded(rng, kind):
    X = clustered(rng, [100, 100], [[0, 0], [5, 5]])
    cov = {
        "full": np.repeat(np.eye(2)[None], 3, axis=0),
        "diag": np.ones((3, 2)),
        "spherical": np.ones(3),
        "tied": np.eye(2),
    }[kind]
    far = np.array([[0.0, 0.0], [5.0, 5.0], [1e3, 1e3]])  # no row anywhere near component 3
    out = em([X], Mixture(kind, np.full(3, 1 / 3), far, cov), np.full(2, 1e-6), 50, -1.0)
    assert out.reseeded >= 1
    assert np.all(out.counts > 1) and np.isfinite(out.loglik)
    assert np.all(np.isfinite(out.mix.means)) and np.all(np.isfinite(out.mix.covariances))


# --------------------------------------------------------------------------- 8. --standardize


SCALED_CENTRES = np.array([[0, 0, 0], [4, 0, 1], [0, 4, -1]])
UNITS, OFFSET = np.array([1.0, 1000.0, 0.01]), np.array([10.0, -5000.0, 0.5])


def _scaled_table(rng):
    """Three clusters in columns whose units differ by 1e5."""
    Z = clustered(rng, [150, 120, 90], SCALED_CENTRES, shear=0.4)
    return Z * UNITS + OFFSET


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_standardize_reports_original_units(rng, kind):
    X = _scaled_table(rng)
    n, d = X.shape
    mean, sd = X.mean(axis=0), X.std(axis=0)
    Z = (X - mean) / sd
    config = gmm.Config(k=(3,), covariance=(kind,))
    on_z = gmm.fit(ModelData(Z), config)
    on_x = gmm.fit(ModelData(X), gmm.Config(k=(3,), covariance=(kind,), standardize=True))
    mz, mx = on_z.params.mixture, on_x.params.mixture
    assert_rel(mx.weights, mz.weights, 1e-8, "weights")
    assert_rel(mx.means, mean + mz.means * sd, 1e-8, "means")
    full_z = to_full(kind, mz.covariances, 3, d)
    full_x = to_full(mx.covariance_type, mx.covariances, 3, d)
    assert_rel(full_x, full_z * sd[None, :, None] * sd[None, None, :], 1e-8, "covariances")
    ll = cholesky_log_density(X, mx.weights, mx.means, full_x).sum()
    np.testing.assert_allclose(on_x.metrics["log_likelihood"], ll, rtol=1e-10)
    np.testing.assert_allclose(ll, on_z.metrics["log_likelihood"] - n * np.log(sd).sum(), 1e-8)
    # the means are in the data's units: each near one of the generating cluster centres
    centres = SCALED_CENTRES * UNITS + OFFSET
    gaps = np.abs(mx.means[:, None, :] - centres[None]) / UNITS  # (component, centre, column)
    assert np.all(gaps.max(axis=2).min(axis=0) < 0.5)  # each centre found, in its units
    if kind == "spherical":  # round in standardized units is axis-aligned in the original
        assert mx.covariance_type == "diag"
        ratios = mx.covariances / sd**2
        np.testing.assert_allclose(ratios, ratios[:, :1] * np.ones(d), rtol=1e-12)
    else:
        assert mx.covariance_type == kind


def test_full_covariance_is_scale_equivariant(rng):
    X = clustered(rng, [120, 100, 80], [[0, 0, 0], [4, 1, 0], [0, 4, 3]], shear=0.3)
    c = np.array([1.0, 1000.0, 1.0])
    # tol 0: run until a step would lower the log-likelihood. The starts differ (k-means is
    # not scale invariant), and EM with the (scale-equivariant) regularisation stops where a
    # step would no longer climb, which depends on the path by about 1e-6 relative in the
    # parameters while the log-likelihood agrees to rounding.
    config = gmm.Config(k=(3,), covariance=("full",), tol=0.0, max_iter=150)
    a = gmm.fit(ModelData(X), config)
    b = gmm.fit(ModelData(X * c), config)
    ma, mb = a.params.mixture, b.params.mixture
    oa, ob = np.argsort(ma.weights), np.argsort(mb.weights)
    assert_rel(mb.weights[ob], ma.weights[oa], 1e-5, "weights")
    assert_rel(mb.means[ob], ma.means[oa] * c, 1e-5, "means")
    assert_rel(mb.covariances[ob], ma.covariances[oa] * c[:, None] * c[None, :], 1e-5, "cov")
    shifted = a.metrics["log_likelihood"] - len(X) * math.log(1000.0)  # the Jacobian
    np.testing.assert_allclose(b.metrics["log_likelihood"], shifted, rtol=1e-10)


# --------------------------------------------------------------------------- 9. --target


def _fit_and_predict(runner, tmp_path, path, *args):
    model = tmp_path / "t.model"
    fit = runner.invoke(cli, ["gmm", path, *args, "-o", str(model), "--json"])
    assert fit.exit_code == 0, fit.stderr
    pred = runner.invoke(cli, ["predict", str(model), path, "--json"])
    assert pred.exit_code == 0, pred.stderr
    return json.loads(fit.stdout), [json.loads(r)["prediction"] for r in pred.stdout.splitlines()]


def test_target_crosstab_and_adjusted_rand_index(runner, write_csv, rng, tmp_path):
    X = clustered(rng, [80, 80, 80], [[0, 0], [3, 0], [1.5, 2.5]])
    labels = np.where(X[:, 0] < 1.5, "left", np.where(X[:, 1] > 1.2, "top", "right"))
    path = write_table(write_csv, X, labels=labels)
    doc, predicted = _fit_and_predict(runner, tmp_path, path, "-y", "label", "--k", "3")
    assert doc["target"] == "label" and doc["features"] == ["x1", "x2"]
    expected = pd.crosstab(labels, np.array(predicted))
    table = doc["crosstab"]
    assert sorted(table) == sorted(set(labels))
    for lab in table:
        for j in range(1, 4):
            count = expected.loc[lab, j] if j in expected.columns else 0
            assert table[lab][f"component {j}"] == count
    ari = adjusted_rand_score(labels, predicted)
    assert doc["metrics"]["adjusted_rand_index"] == pytest.approx(ari, rel=1e-12, abs=1e-12)


def test_flowers_reports_the_adjusted_rand_index(runner, tmp_path):
    doc, predicted = _fit_and_predict(runner, tmp_path, FLOWERS, "-y", "species", "--k", "3")
    species = pd.read_csv(FLOWERS)["species"].to_numpy()
    assert set(doc["crosstab"]) == set(species)
    ari = adjusted_rand_score(species, predicted)
    assert doc["metrics"]["adjusted_rand_index"] == pytest.approx(ari, rel=1e-12, abs=1e-12)
    assert -1.0 <= ari <= 1.0


def test_adjusted_rand_index_function_matches_sklearn(rng):
    for trial in range(30):
        n = int(rng.integers(2, 60))
        a = rng.integers(0, int(rng.integers(1, 5)), size=n)
        b = rng.integers(0, int(rng.integers(1, 5)), size=n)
        if trial == 0:
            a, b = np.arange(n), np.arange(n)  # all singletons
        table = pd.crosstab(a, b).to_numpy()
        assert gmm_summary.adjusted_rand_index(table) == pytest.approx(
            adjusted_rand_score(a, b), rel=1e-12, abs=1e-12
        ), (a, b)


# --------------------------------------------------------------------------- 10. determinism


def _without_timing(doc):
    doc = dict(doc)
    doc.pop("timing", None)
    return doc


def _valid(doc):
    _all_finite(doc)
    weights, _, covs = components(doc)
    assert np.all(weights > 0) and abs(weights.sum() - 1.0) < 1e-12
    assert np.all(np.linalg.eigvalsh(covs) > 0)
    loss = np.asarray(doc["convergence"]["history"])
    assert np.all(np.diff(loss) <= 1e-12 * np.abs(loss[:-1]))


def test_same_command_twice_same_json(mlfit_proc, strict_json):
    args = ["gmm", CLUSTERS, "--k", "2-4", "--covariance", "full,tied", "--n-init", 2, "--json"]
    first, second = mlfit_proc(*args), mlfit_proc(*args)
    assert first.returncode == second.returncode == 0, first.stderr
    one, two = strict_json(first.stdout), strict_json(second.stdout)
    assert _without_timing(one) == _without_timing(two)
    assert first.stderr == second.stderr
    other = mlfit_proc(*args, "--seed", 12345)
    assert other.returncode == 0, other.stderr
    three = strict_json(other.stdout)
    for doc in (one, three):
        _valid(doc)
    # a different seed may find a different maximum, but not one far worse on this data
    gap = three["metrics"]["mean_log_likelihood"] - one["metrics"]["mean_log_likelihood"]
    assert abs(gap) < 0.05
