"""mlfit kernel against scikit-learn's KernelRidge for every kernel, descent against Cholesky,
Nystrom/Falkon against the exact solution, the seeds' validity theorem, chunk-invariant
predictions, the model file and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.errors import FitError, UsageError
from mlfit.params import ParamsError
from mlfit.solvers import falkon
from mlfit.solvers import kernel as km
from mlfit.solvers.kernels import Kernel, check_valid, is_positive_semidefinite

SETTINGS = {
    "linear": {},
    "poly": {"degree": 3, "gamma": 0.3, "coef0": 1.5},
    "rbf": {"gamma": 0.4},
}


def smooth(rng, n, p=3, noise=0.3):
    X = rng.normal(size=(n, p))
    y = np.sin(1.5 * X[:, 0]) + 0.5 * X[:, 1 % p] ** 2 - 0.3 * X[:, 2 % p] + rng.normal(0, noise, n)
    return X, 3.0 + y


def fit(X, y, **settings):
    return km.fit(ModelData(X, y), km.Config(**settings))


def predict(result, X):
    return km.predict(result.params, ModelData(X))["prediction"]


# --------------------------------------------------------------------------- against sklearn


@pytest.mark.parametrize("name", list(SETTINGS))
def test_matches_kernel_ridge_without_scaling_or_centring(rng, name):
    X, y = smooth(rng, 80)
    Xt, _ = smooth(rng, 30)
    s = SETTINGS[name]
    ours = fit(X, y, kernel=name, l2=0.7, standardize=False, center_target=False, **s)
    ref = KernelRidge(alpha=0.7, kernel=name, **s).fit(X, y)
    np.testing.assert_allclose(predict(ours, Xt), ref.predict(Xt), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(predict(ours, X), ref.predict(X), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_defaults_are_kernel_ridge_on_standardized_features_and_centred_target(rng, name):
    X, y = smooth(rng, 60)
    X = X * [10.0, 0.1, 3.0] + [100.0, -5.0, 0.0]
    mean, sd = X.mean(axis=0), X.std(axis=0)
    s = {k: v for k, v in SETTINGS[name].items() if k != "gamma"}
    ours = fit(X, y, kernel=name, **s)
    gamma = None if name == "linear" else 1.0 / 3  # the default: 1 / number of features
    ref = KernelRidge(alpha=1.0, kernel=name, gamma=gamma, **s).fit((X - mean) / sd, y - y.mean())
    np.testing.assert_allclose(
        predict(ours, X), ref.predict((X - mean) / sd) + y.mean(), rtol=1e-8, atol=1e-10
    )
    resid = y - predict(ours, X)
    assert ours.metrics["rmse"] == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-9)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_effective_degrees_of_freedom_is_the_trace_of_the_hat_matrix(rng, name):
    X, y = smooth(rng, 50)
    res = fit(X, y, kernel=name, l2=0.5, standardize=False, **SETTINGS[name])
    kernel = Kernel(name, **SETTINGS[name]) if name != "linear" else Kernel("linear")
    eig = np.linalg.eigvalsh(kernel(X, X))
    eig = np.clip(eig, 0, None)
    assert res.metrics["effective_dof"] == pytest.approx(np.sum(eig / (eig + 0.5)), rel=1e-8)


# --------------------------------------------------------------------------- descent


@pytest.mark.parametrize("name", ["rbf", "poly", "linear"])
def test_descent_reaches_the_cholesky_solution(rng, name):
    X, y = smooth(rng, 60)
    s = SETTINGS[name]
    exact = fit(X, y, kernel=name, **s)
    descent = fit(X, y, kernel=name, method="descent", max_iter=20000, **s)
    assert descent.converged
    history = descent.convergence["history"]
    assert history[-1] < history[0] and all(np.diff(history) <= 1e-12 * history[0])
    a, b = predict(descent, X), predict(exact, X)
    assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(b))
    if name != "linear":
        np.testing.assert_allclose(
            descent.params.beta, exact.params.beta, atol=1e-6 * np.abs(exact.params.beta).max()
        )


def test_descent_not_converging_is_a_warning(rng):
    X, y = smooth(rng, 40)
    res = fit(X, y, method="descent", max_iter=3)
    assert not res.converged and "did not converge" in res.warnings[0]


# --------------------------------------------------------------------------- validity


def test_the_seeds_gram_matrices():
    assert is_positive_semidefinite(np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert not is_positive_semidefinite(np.array([[3.0, 5.0], [5.0, 3.0]]))
    assert is_positive_semidefinite(np.zeros((3, 3)))


@pytest.mark.parametrize("degree", [2, 4])
def test_poly_with_negative_coef0_is_not_a_valid_kernel(rng, degree):
    X, y = smooth(rng, 50)
    kernel = Kernel("poly", 1.0, degree, -1.0)
    assert not is_positive_semidefinite(kernel(X, X))
    with pytest.raises(FitError, match=r"not a valid \(Mercer\) kernel.*--coef0 >= 0"):
        fit(X, y, kernel="poly", degree=degree, coef0=-1.0, gamma=1.0)
    with pytest.raises(FitError, match="not a valid"):  # also on centres
        fit(X, y, kernel="poly", degree=degree, coef0=-1.0, gamma=1.0, centers=10)


def test_valid_kernels_pass_and_psd_but_invalid_settings_warn(rng):
    X = rng.normal(size=(600, 3))
    for kernel in (Kernel("rbf", 0.5), Kernel("poly", 0.5, 3, 1.0), Kernel("linear")):
        assert check_valid(kernel, X) is None
        assert is_positive_semidefinite(kernel(X[:300], X[:300]))
    # (x z - 0.01)^2 on two equal rows: the Gram matrix (x^2 - 0.01)^2 1 1' is PSD
    positive = np.array([[5.0], [5.0]])
    assert "not a valid (Mercer) kernel in general" in check_valid(
        Kernel("poly", 1.0, 2, -0.01), positive
    )


def test_invalid_kernel_on_the_command_line(runner, write_csv, rng, assert_error):
    X, y = smooth(rng, 40)
    rows = [["a", "b", "c", "y"], *np.column_stack([X, y]).round(4).tolist()]
    path = write_csv(rows)
    result = runner.invoke(cli, ["kernel", path, "--kernel", "poly", "--coef0", "-2"])
    assert_error(result, 1, "not a valid (Mercer) kernel", "positive semi-definite", "--coef0")


# --------------------------------------------------------------------------- Nystrom / Falkon


@pytest.mark.parametrize("name", ["rbf", "poly"])
def test_nystrom_test_rmse_within_one_percent_of_exact(rng, name):
    X, y = smooth(rng, 3000)
    Xt, yt = smooth(rng, 2000)
    s = {k: v for k, v in SETTINGS[name].items() if k != "gamma"}
    exact = fit(X, y, kernel=name, **s)
    nystrom = fit(X, y, kernel=name, centers=400, **s)
    assert nystrom.converged and nystrom.info["method"] == "falkon"

    def rmse(r):
        return np.sqrt(np.mean((predict(r, Xt) - yt) ** 2))

    assert rmse(nystrom) <= 1.01 * rmse(exact)
    assert nystrom.convergence["iterations"] < 100


def test_poly_centres_beyond_its_feature_space_are_dropped(rng):
    """A cubic kernel on 3 features spans 20 dimensions: 300 centres are mostly dependent;
    the pivoted Cholesky keeps the independent ones and the fit equals the exact one."""
    X, y = smooth(rng, 1000)
    exact = fit(X, y, kernel="poly")
    nystrom = fit(X, y, kernel="poly", centers=300)
    assert nystrom.info["centers"] <= 20 and nystrom.info["centers_dependent"] >= 280
    np.testing.assert_allclose(predict(nystrom, X), predict(exact, X), rtol=1e-6)


def test_blocks_without_the_cache_give_the_same_solution(rng, monkeypatch):
    X, y = smooth(rng, 900)
    cached = fit(X, y, centers=100)
    monkeypatch.setattr(falkon, "KNM_CACHE_BYTES", 0)
    monkeypatch.setattr(falkon, "BLOCK_VALUES", 100 * 64)  # 64-row blocks
    blocked = fit(X, y, centers=100)
    # the same iterations up to rounding: the same fit to well within the CG tolerance
    np.testing.assert_allclose(predict(blocked, X), predict(cached, X), rtol=1e-7)
    monkeypatch.setattr(falkon, "THREADS", 1)  # the threads' sums are added in row order
    assert fit(X, y, centers=100).params.beta.tobytes() == blocked.params.beta.tobytes()
    monkeypatch.setattr(falkon, "THREADS", 3)
    assert fit(X, y, centers=100).params.beta.tobytes() == blocked.params.beta.tobytes()


def test_falkon_solves_the_nystrom_normal_equations(rng):
    X, y = smooth(rng, 500)
    res = fit(X, y, centers=60, standardize=False, center_target=False, gamma=0.5, tol=1e-12)
    C, alpha = res.params.centres, res.params.beta
    kernel = Kernel("rbf", 0.5)
    KnM, Kmm = kernel(X, C), kernel(C, C)
    direct = np.linalg.solve(KnM.T @ KnM + 1.0 * Kmm, KnM.T @ (y))
    np.testing.assert_allclose(KnM @ alpha, KnM @ direct, rtol=1e-7, atol=1e-9)


def test_cg_not_converging_is_a_warning_and_strict_fails(runner, write_csv, rng):
    X, y = smooth(rng, 2000)  # the preconditioner sees 500 of the rows: not exact
    res = fit(X, y, centers=50, max_iter=1)
    assert not res.converged and "Conjugate gradients did not converge" in res.warnings[0]
    rows = [["a", "b", "c", "y"], *np.column_stack([X, y]).round(4).tolist()]
    path = write_csv(rows)
    result = runner.invoke(cli, ["kernel", path, "--centers", "50", "--max-iter", "1", "--strict"])
    assert result.exit_code == 5


def test_centres_are_seeded(rng):
    X, y = smooth(rng, 400)
    a, b = fit(X, y, centers=30, seed=1), fit(X, y, centers=30, seed=1)
    assert a.params.centres.tobytes() == b.params.centres.tobytes()
    assert a.params.beta.tobytes() == b.params.beta.tobytes()
    assert fit(X, y, centers=30, seed=2).params.centres.tobytes() != a.params.centres.tobytes()


def test_descent_refuses_centres(rng):
    X, y = smooth(rng, 100)
    with pytest.raises(UsageError, match="--method descent"):
        fit(X, y, centers=10, method="descent")


def test_linear_kernel_is_exact_at_any_size(rng):
    X, y = smooth(rng, 300)
    res = fit(X, y, kernel="linear", centers=10)
    assert res.info["method"] == "cholesky (primal)" and res.params.centres.shape == (1, 3)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    ref = KernelRidge(alpha=1.0, kernel="linear").fit(Z, y - y.mean())
    np.testing.assert_allclose(predict(res, X), ref.predict(Z) + y.mean(), rtol=1e-9)


# --------------------------------------------------------------------------- predict, model file


@pytest.mark.parametrize("centers", [None, 40])
def test_predictions_do_not_depend_on_the_block(rng, monkeypatch, centers):
    X, y = smooth(rng, 120)
    res = fit(X, y, centers=centers)
    whole = predict(res, X)
    for rows in (1, 3, 7):
        parts = np.concatenate([predict(res, X[i : i + rows]) for i in range(0, len(X), rows)])
        assert parts.tobytes() == whole.tobytes()
    monkeypatch.setattr(km, "PREDICT_VALUES", 5 * len(res.params.centres))
    assert predict(res, X).tobytes() == whole.tobytes()
    np.testing.assert_allclose(whole, res.internals["fitted"], rtol=1e-12)


def test_params_round_trip_and_damage(rng):
    X, y = smooth(rng, 100)
    res = fit(X, y, kernel="poly", degree=2)
    doc = json.loads(json.dumps(res.params.to_dict()))
    assert isinstance(doc["centers"], dict) and "base64" in doc["centers"]  # 300 values
    back = km.Params.from_dict(doc, 3)
    assert predict(res, X).tobytes() == km.predict(back, ModelData(X))["prediction"].tobytes()
    for key, value, words in [
        ("degree", 1.5, "degree"),
        ("degree", 0, "degree"),
        ("gamma", -1.0, "gamma"),
        ("kernel", "sigmoid", "kernel"),
        ("feature_scale", [1.0, 0.0, 1.0], "feature_scale"),
        ("beta", [1.0, 2.0], "beta"),
    ]:
        with pytest.raises(ParamsError, match=words):
            km.Params.from_dict({**doc, key: value}, 3)
    with pytest.raises(ParamsError, match="shape"):
        km.Params.from_dict(doc, 4)


def test_save_and_predict_on_the_command_line(runner, write_csv, rng, tmp_path):
    X, y = smooth(rng, 50)
    g = np.array(["u", "v", "w"])[np.arange(50) % 3]
    rows = [["a", "b", "c", "g", "y"]]
    rows += [[*np.round(x, 4), gi, round(yi, 4)] for x, gi, yi in zip(X, g, y)]
    path = write_csv(rows)
    model = tmp_path / "k.model"
    result = runner.invoke(cli, ["kernel", path, "-q", "-o", str(model), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    saved = json.loads(model.read_text())
    assert saved["design"]["names"][-3:] == ["g=u", "g=v", "g=w"]  # every level kept
    assert saved["config"]["kernel"] == "rbf" and doc["solver"]["gamma"] == 1 / 6
    out = runner.invoke(cli, ["predict", str(model), path])
    pred = np.array([float(v) for v in out.stdout.splitlines()[1:]])
    yy = np.round(y, 4)
    assert np.sqrt(np.mean((pred - yy) ** 2)) == pytest.approx(doc["metrics"]["rmse"], rel=1e-9)


@pytest.mark.parametrize(
    "args",
    [
        ["--l2", "0"],
        ["--l2", "nan"],
        ["--gamma", "0"],
        ["--gamma", "inf"],
        ["--degree", "0"],
        ["--lr", "2"],
        ["--kernel", "sigmoid"],
        ["--centers", "0"],
        ["--method", "descent", "--centers", "5"],
    ],
)
def test_bad_options_are_exit_2(runner, write_csv, rng, args):
    X, y = smooth(rng, 20)
    path = write_csv([["a", "b", "c", "y"], *np.column_stack([X, y]).round(4).tolist()])
    result = runner.invoke(cli, ["kernel", path, *args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("more", [[], ["--centers", "10"], ["--coef0", "-1"]])
def test_an_overflowing_kernel_is_a_clear_error(runner, write_csv, rng, assert_error, more):
    X = rng.normal(size=(40, 2)) * 1e3
    rows = [["a", "b", "y"], *np.column_stack([X, rng.normal(size=40)]).tolist()]
    path = write_csv(rows)
    args = ["kernel", path, "--kernel", "poly", "--degree", "200", "--no-standardize", *more]
    assert_error(runner.invoke(cli, args), 1, "overflows", "--degree")


def test_plot_of_one_feature_draws_the_fitted_curve(runner, write_csv, rng, tmp_path):
    X, y = smooth(rng, 60, p=1)
    path = write_csv([["x", "y"], *np.column_stack([X, y]).round(4).tolist()])
    for more in ([], ["--method", "descent"]):
        out = tmp_path / f"fit{len(more)}.png"
        result = runner.invoke(cli, ["kernel", path, "-q", "--plot", str(out), *more])
        assert result.exit_code == 0, result.stderr
        assert out.read_bytes().startswith(b"\x89PNG")


def test_one_row_fits_its_mean(runner, write_csv, strict_json):
    result = runner.invoke(cli, ["kernel", write_csv("a,y\n1,2\n"), "--json", "-q"])
    doc = strict_json(result.stdout)
    assert doc["metrics"]["rmse"] == 0.0 and doc["metrics"]["r_squared"] is None


def test_bad_data_is_exit_3(runner, write_csv, assert_error):
    path = write_csv("a,y\n1,2\n2,x\n3,4\n")
    assert_error(runner.invoke(cli, ["kernel", path, "-y", "y"]), 3, "'y'")
    path = write_csv("a,y\n1,2\n2,\n3,4\n", "missing.csv")
    assert_error(runner.invoke(cli, ["kernel", path, "-y", "y"]), 3, "missing")
