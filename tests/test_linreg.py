"""linreg (gradient descent) against the exact least-squares answer, and its descent behaviour:
convergence, determinism, divergence, the loss history and the gradient itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.errors import FitError
from mlfit.solvers import linreg, normal_eq
from mlfit.solvers import linreg as linreg_module


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def runner():
    return CliRunner()


def regression(rng, n=200):
    """Well-conditioned: independent features with different scales and offsets."""
    X = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [1.0, -2.0, 3.0]
    y = 0.7 + X @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.normal(size=n)
    return X, y


def write_table(path, X, y) -> str:
    header = [f"x{j + 1}" for j in range(X.shape[1])] + ["y"]
    rows = [",".join(repr(float(v)) for v in (*X[i], y[i])) for i in range(len(y))]
    path.write_text("\n".join([",".join(header), *rows]) + "\n")
    return str(path)


def exact(X, y, intercept=True):
    return normal_eq.fit(ModelData(X, y), normal_eq.Config(intercept=intercept))


def rel_error(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --------------------------------------------------------------------------- reaches the optimum


@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("standardize", [True, False], ids=["standardize", "raw"])
def test_batch_descent_reaches_least_squares(rng, intercept, standardize):
    X, y = regression(rng)
    config = linreg.Config(
        method="batch",
        lr=0.1,
        tol=1e-12,
        epochs=50_000,
        intercept=intercept,
        standardize=standardize,
    )
    res = linreg.fit(ModelData(X, y), config)
    assert res.converged and res.convergence["criterion"] == "gradient norm"
    ref = exact(X, y, intercept)
    assert rel_error(res.coefficients["estimate"], ref.coefficients["estimate"]) < 1e-6
    assert rel_error(res.metrics["r_squared"], ref.metrics["r_squared"]) < 1e-9
    assert (res.params.intercept is None) == (not intercept)
    assert ("scaling" in res.params.to_dict()) == standardize
    # predict uses the original-scale coefficients
    np.testing.assert_allclose(
        linreg.predict(res.params, ModelData(X))["prediction"],
        normal_eq.predict(ref.params, ModelData(X))["prediction"],
        rtol=1e-6,
    )
    # the reported loss is half the mean squared error on the original scale
    np.testing.assert_allclose(res.convergence["final_loss"], 0.5 * res.metrics["mse"], rtol=1e-9)


@pytest.mark.parametrize("method, lr, epochs", [("minibatch", 0.01, 150), ("sgd", 0.001, 60)])
def test_stochastic_descent_gets_close(rng, method, lr, epochs):
    """Constant-step stochastic descent hovers around the optimum: within a fraction of a
    standard error, not to machine precision."""
    X, y = regression(rng)
    res = linreg.fit(
        ModelData(X, y),
        linreg.Config(method=method, lr=lr, epochs=epochs, batch_size=16, tol=1e-12, seed=3),
    )
    ref = exact(X, y)
    gap = np.abs(res.coefficients["estimate"] - ref.coefficients["estimate"])
    assert np.all(gap < 0.1 * ref.coefficients["std_error"])
    assert rel_error(res.coefficients["estimate"], ref.coefficients["estimate"]) < 0.05
    assert res.info["batch_size"] == (1 if method == "sgd" else 16)


def test_stochastic_convergence_by_loss_change(rng):
    X, y = regression(rng)
    res = linreg.fit(
        ModelData(X, y), linreg.Config(method="minibatch", lr=0.01, tol=1e-3, epochs=500)
    )
    assert res.converged
    assert res.convergence["criterion"] == "relative loss change"
    assert res.convergence["iterations"] < 500


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("method", ["batch", "minibatch", "sgd"])
def test_same_seed_same_result(rng, method):
    X, y = regression(rng, n=100)
    config = linreg.Config(method=method, lr=0.01, epochs=20, seed=11)
    a, b = linreg.fit(ModelData(X, y), config), linreg.fit(ModelData(X, y), config)
    assert np.array_equal(a.coefficients["estimate"], b.coefficients["estimate"])
    assert a.convergence["history"] == b.convergence["history"]


@pytest.mark.parametrize("method", ["minibatch", "sgd"])
def test_different_seeds_differ(rng, method):
    X, y = regression(rng, n=100)
    a = linreg.fit(ModelData(X, y), linreg.Config(method=method, lr=0.01, epochs=5, seed=1))
    b = linreg.fit(ModelData(X, y), linreg.Config(method=method, lr=0.01, epochs=5, seed=2))
    assert not np.array_equal(a.coefficients["estimate"], b.coefficients["estimate"])
    assert a.convergence["history"] != b.convergence["history"]


def test_cli_json_reproducible_except_timing(rng, runner, tmp_path):
    X, y = regression(rng, n=100)
    path = write_table(tmp_path / "d.csv", X, y)
    args = [
        "linreg",
        path,
        "--method",
        "sgd",
        "--lr",
        "0.01",
        "--epochs",
        "5",
        "--seed",
        "7",
        "--json",
    ]
    outs = []
    for _ in range(2):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.stderr
        outs.append(json.loads(result.stdout))
    for out in outs:
        assert set(out.pop("timing")) == {"load_seconds", "fit_seconds", "total_seconds"}
    assert outs[0] == outs[1]
    assert outs[0]["solver"]["seed"] == 7
    other = runner.invoke(cli, [*args[:-2], "8", "--json"])
    assert json.loads(other.stdout)["coefficients"] != outs[0]["coefficients"]


# --------------------------------------------------------------------------- failure modes


def test_huge_learning_rate_diverges(rng):
    X, y = regression(rng, n=100)
    with pytest.raises(FitError, match="--lr"):
        linreg.fit(ModelData(X, y), linreg.Config(lr=1e3, epochs=1000))


def test_huge_learning_rate_cli_exit_1(rng, runner, tmp_path):
    X, y = regression(rng, n=100)
    path = write_table(tmp_path / "d.csv", X, y)
    result = runner.invoke(cli, ["linreg", path, "--lr", "1000", "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert "--lr" in result.stderr and "Traceback" not in result.stderr


def test_not_converged_is_a_warning(rng, runner, tmp_path):
    X, y = regression(rng, n=100)
    res = linreg.fit(ModelData(X, y), linreg.Config(epochs=2))
    assert not res.converged
    assert res.convergence["iterations"] == 2
    assert res.convergence["criterion"] == "epoch limit"
    assert any("--epochs" in w for w in res.warnings)

    path = write_table(tmp_path / "d.csv", X, y)
    result = runner.invoke(cli, ["linreg", path, "--epochs", "2", "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["convergence"]["converged"] is False
    assert "did not converge" in result.stderr

    strict = runner.invoke(cli, ["linreg", path, "--epochs", "2", "--strict", "--json"])
    assert strict.exit_code == 5
    assert "--strict" in strict.stderr


def test_batch_loss_history_non_increasing(rng):
    X, y = regression(rng)
    for standardize, lr in ((True, 0.05), (False, 0.01)):
        res = linreg.fit(
            ModelData(X, y), linreg.Config(lr=lr, epochs=300, tol=1e-14, standardize=standardize)
        )
        history = np.array(res.convergence["history"])
        assert len(history) == res.convergence["iterations"] + 1  # the start, then each epoch
        assert np.all(np.diff(history) <= 0)
        assert history[-1] < history[0]


# --------------------------------------------------------------------------- the gradient


def _capture_objective(monkeypatch, X, y, config):
    captured = {}
    real = linreg_module.descend

    def spy(objective, w0, n, cfg, on_progress):
        captured["objective"], captured["p"] = objective, len(w0)
        return real(objective, w0, n, cfg, on_progress)

    monkeypatch.setattr(linreg_module, "descend", spy)
    linreg.fit(ModelData(X, y), config)
    return captured["objective"], captured["p"]


@pytest.mark.parametrize("standardize", [True, False], ids=["standardize", "raw"])
def test_gradient_matches_finite_differences(rng, monkeypatch, standardize):
    X, y = regression(rng, n=50)
    objective, p = _capture_objective(
        monkeypatch, X, y, linreg.Config(epochs=1, standardize=standardize)
    )
    h = 1e-6
    for rows in (None, np.array([3, 7, 11, 19, 40])):
        for w in rng.normal(size=(3, p)):
            _, grad = objective(w, rows)
            numeric = np.empty(p)
            for j in range(p):
                e = np.zeros(p)
                e[j] = h
                numeric[j] = (objective(w + e, rows)[0] - objective(w - e, rows)[0]) / (2 * h)
            np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_objective_is_half_mean_squared_error(rng, monkeypatch):
    X, y = regression(rng, n=50)
    objective, p = _capture_objective(
        monkeypatch, X, y, linreg.Config(epochs=1, standardize=False, intercept=False)
    )
    w = rng.normal(size=p)
    loss, _ = objective(w, None)
    np.testing.assert_allclose(loss, 0.5 * np.mean((X @ w - y) ** 2), rtol=1e-12)


@pytest.mark.parametrize("k", [-1000, -500, 500, 1000])
def test_extreme_magnitudes_are_standardized(rng, k):
    """x near 2^k: its standard deviation must not underflow (or overflow) to no scaling."""
    from mlfit.numerics import column_std

    X = np.ldexp(rng.uniform(1, 5, size=(50, 1)), k)
    y = 2.0 + np.ldexp(X[:, 0], -k) * 1.5 + rng.normal(0, 0.1, 50)
    np.testing.assert_allclose(column_std(X), np.ldexp(np.std(np.ldexp(X, -k), axis=0), k))
    res = linreg.fit(ModelData(X, y), linreg.Config(tol=1e-10, epochs=5000))
    ref = normal_eq.fit(ModelData(X, y))
    assert res.converged
    assert rel_error(res.coefficients["estimate"], ref.coefficients["estimate"]) < 1e-6
