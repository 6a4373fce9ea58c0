"""normal-eq against reference implementations: statsmodels OLS, scikit-learn Ridge, R's formulas.

Also the edge cases of least squares (aliased columns, ill-conditioning, n == p, n < p) and
the chunked (out-of-core) fit, which must give the in-memory answer.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import statsmodels.api as sm
from click.testing import CliRunner
from sklearn.linear_model import Ridge

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.data import ChunkStream, Selection, load_dataset
from mlfit.design import build_design
from mlfit.errors import DataError
from mlfit.numerics import add_intercept
from mlfit.solvers import normal_eq

#: Agreement with statsmodels (pinv/QR in float64) on well-conditioned data: measured ~5e-15.
RTOL = 1e-10
#: p-values are tail probabilities computed by different special-function code: measured 1e-13.
RTOL_P = 1e-9


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


@pytest.fixture
def runner():
    return CliRunner()


def regression(rng, n=200, p=4, noise=1.0):
    """A well-conditioned problem: independent features of different scales and offsets."""
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 5, size=p) + rng.uniform(-3, 3, size=p)
    y = 0.7 + X @ rng.normal(size=p) + noise * rng.normal(size=n)
    return X, y


def assert_rel(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=0
    )


def invoke_json(runner, args) -> dict:
    result = runner.invoke(cli, [*args, "--json", "--quiet"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def write_table(path, header: list[str], columns: list) -> str:
    """Columns of floats (repr: exact round trip) or str; None is written as an empty field."""

    def cell(v):
        if v is None:
            return ""
        return v if isinstance(v, str) else repr(float(v))

    lines = [",".join(header)]
    lines += [",".join(cell(c[i]) for c in columns) for i in range(len(columns[0]))]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# --------------------------------------------------------------------------- vs statsmodels


@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
def test_matches_statsmodels_ols(rng, intercept):
    """Without a constant statsmodels also uses the uncentred R² and F (k_constant = 0)."""
    X, y = regression(rng)
    res = normal_eq.fit(ModelData(X, y), normal_eq.Config(intercept=intercept))
    ols = sm.OLS(y, add_intercept(X) if intercept else X).fit()
    table, m = res.coefficients, res.metrics

    assert_rel(table["estimate"], ols.params)
    assert_rel(table["std_error"], ols.bse)
    assert_rel(table["t"], ols.tvalues)
    assert_rel(table["p_value"], ols.pvalues, RTOL_P)
    ci = ols.conf_int(alpha=0.05)
    assert_rel(table["ci_low"], ci[:, 0])
    assert_rel(table["ci_high"], ci[:, 1])
    assert_rel(m["r_squared"], ols.rsquared)
    assert_rel(m["adj_r_squared"], ols.rsquared_adj)
    assert_rel(m["f_statistic"], ols.fvalue)
    assert_rel(m["f_p_value"], ols.f_pvalue, RTOL_P)
    assert_rel(m["sigma"], math.sqrt(ols.scale))
    assert_rel(m["rss"], ols.ssr)
    assert_rel(m["log_likelihood"], ols.llf)
    assert m["df_model"] == ols.df_model
    assert m["df_residual"] == ols.df_resid
    assert m["n"] == len(y)
    assert res.warnings == []
    assert res.params.aliased == ()


@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
def test_aic_bic_follow_r(rng, intercept):
    """R's AIC(lm) counts sigma as a parameter: k = p + 1, so statsmodels' AIC is 2 lower."""
    X, y = regression(rng, n=80, p=3)
    res = normal_eq.fit(ModelData(X, y), normal_eq.Config(intercept=intercept))
    A = add_intercept(X) if intercept else X
    resid = y - A @ res.coefficients["estimate"]
    n, k = len(y), A.shape[1]
    # R's stats:::logLik.lm with unit weights
    loglik = 0.5 * (-n * (math.log(2 * math.pi) + 1 - math.log(n) + math.log(resid @ resid)))
    assert_rel(res.metrics["log_likelihood"], loglik)
    assert_rel(res.metrics["aic"], -2 * loglik + 2 * (k + 1))
    assert_rel(res.metrics["bic"], -2 * loglik + math.log(n) * (k + 1))
    ols = sm.OLS(y, A).fit()
    assert_rel(res.metrics["aic"], ols.aic + 2)
    assert_rel(res.metrics["bic"], ols.bic + math.log(n))


def test_uncentred_r_squared_without_intercept(rng):
    X, y = regression(rng, n=60, p=2)
    res = normal_eq.fit(ModelData(X, y), normal_eq.Config(intercept=False))
    resid = y - X @ res.coefficients["estimate"]
    assert_rel(res.metrics["r_squared"], 1 - (resid @ resid) / (y @ y))
    assert res.metrics["df_model"] == 2
    assert res.params.intercept is None


def test_predict_uses_fitted_coefficients(rng):
    X, y = regression(rng, n=50, p=3)
    res = normal_eq.fit(ModelData(X, y))
    w, *_ = np.linalg.lstsq(add_intercept(X), y, rcond=None)
    assert_rel(normal_eq.predict(res.params, ModelData(X))["prediction"], add_intercept(X) @ w)


# --------------------------------------------------------------------------- ridge


@pytest.mark.parametrize("lam", [0.01, 1.0, 100.0])
def test_ridge_matches_sklearn(rng, lam):
    """sklearn's Ridge minimises ||y - X b - b0||² + alpha ||b||², the intercept unpenalised."""
    X, y = regression(rng, n=100, p=5)
    res = normal_eq.fit(ModelData(X, y), normal_eq.Config(l2=lam))
    sk = Ridge(alpha=lam, fit_intercept=True, solver="svd").fit(X, y)
    assert_rel(res.params.coef, sk.coef_)
    assert_rel(res.params.intercept, sk.intercept_)
    assert_rel(res.metrics["r_squared"], sk.score(X, y))
    assert "std_error" not in res.coefficients  # no standard errors for a penalised fit
    assert res.info["l2"] == lam


def test_ridge_without_intercept_matches_sklearn(rng):
    X, y = regression(rng, n=100, p=3)
    res = normal_eq.fit(ModelData(X, y), normal_eq.Config(l2=5.0, intercept=False))
    sk = Ridge(alpha=5.0, fit_intercept=False, solver="svd").fit(X, y)
    assert_rel(res.params.coef, sk.coef_)
    assert res.params.intercept is None


def test_ridge_solves_its_objective(rng):
    """The gradient of ||y - X b - b0||² + lambda ||b||² vanishes at the reported solution."""
    X, y = regression(rng, n=100, p=4)
    lam = 3.0
    res = normal_eq.fit(ModelData(X, y), normal_eq.Config(l2=lam))
    b, b0 = np.asarray(res.params.coef), res.params.intercept
    r = y - X @ b - b0
    grad_b = -2 * X.T @ r + 2 * lam * b
    grad_b0 = -2 * r.sum()
    scale = 2 * np.abs(X).T @ np.abs(y)  # size of the terms that cancel
    assert np.all(np.abs(grad_b) <= 1e-12 * scale)
    assert abs(grad_b0) <= 1e-12 * 2 * np.abs(y).sum()
    # and the penalty does something: the ridge norm is below the OLS norm
    ols = normal_eq.fit(ModelData(X, y))
    assert np.linalg.norm(b) < np.linalg.norm(ols.coefficients["estimate"][1:])
    assert_rel(res.metrics["rss"], r @ r)


def test_ridge_cli_matches_sklearn(rng, runner, tmp_path):
    X, y = regression(rng, n=60, p=2)
    path = write_table(tmp_path / "r.csv", ["a", "b", "y"], [X[:, 0], X[:, 1], y])
    out = invoke_json(runner, ["normal-eq", path, "--l2", "2.5"])
    sk = Ridge(alpha=2.5, solver="svd").fit(X, y)
    coef = out["coefficients"]
    assert_rel([coef["a"]["estimate"], coef["b"]["estimate"]], sk.coef_)
    assert_rel(coef["intercept"]["estimate"], sk.intercept_)
    assert "std_error" not in coef["a"]


# --------------------------------------------------------------------------- aliased columns


def _collinear(rng, kind):
    n = 60
    x1, x2, x4 = rng.normal(size=(3, n))
    y = 1 + x1 - 2 * x2 + 0.5 * x4 + 0.3 * rng.normal(size=n)
    extra = {"sum": x1 + x2, "constant": np.full(n, 3.0), "duplicate": x1.copy()}[kind]
    return np.column_stack([x1, x2, extra, x4]), y


@pytest.mark.parametrize("kind", ["sum", "constant", "duplicate"])
def test_aliased_column_is_dropped_like_r(rng, kind):
    """A column in the span of earlier ones (x1 + x2, a constant next to the intercept, a copy of
    x1) is marked aliased with a NaN estimate; the rest equal the fit without it."""
    X, y = _collinear(rng, kind)
    res = normal_eq.fit(ModelData(X, y))
    reduced = normal_eq.fit(ModelData(X[:, [0, 1, 3]], y))
    assert res.params.aliased == (3,)  # parameter index: intercept, x1, x2, extra, x4
    assert res.info["aliased_index"] == [3]
    for key in ("estimate", "std_error", "t", "p_value"):
        column = res.coefficients[key]
        assert np.isnan(column[3])
        assert_rel(np.delete(column, 3), reduced.coefficients[key], 1e-9)
    for key in ("r_squared", "adj_r_squared", "sigma", "rss", "df_model", "df_residual"):
        assert_rel(res.metrics[key], reduced.metrics[key], 1e-9)
    assert res.params.coef[2] == 0.0  # so predict simply ignores it
    assert_rel(
        normal_eq.predict(res.params, ModelData(X))["prediction"],
        normal_eq.predict(reduced.params, ModelData(X[:, [0, 1, 3]]))["prediction"],
    )


def test_aliased_column_in_cli_json(rng, runner, tmp_path):
    X, y = _collinear(rng, "sum")
    path = write_table(tmp_path / "c.csv", ["x1", "x2", "x3", "x4", "y"], [*X.T, y])
    out = invoke_json(runner, ["normal-eq", path])
    row = out["coefficients"]["x3"]
    assert row["aliased"] is True
    assert row["estimate"] is None and row["std_error"] is None  # NaN -> null in JSON
    assert "aliased" not in out["coefficients"]["x1"]
    assert out["solver"]["aliased_index"] == [3]
    assert out["metrics"]["df_model"] == 3


def test_all_aliased_ridge_is_estimable(rng):
    """With a ridge penalty a duplicated column is estimable: the penalty splits it evenly."""
    X, y = _collinear(rng, "duplicate")
    res = normal_eq.fit(ModelData(X, y), normal_eq.Config(l2=1.0))
    assert res.params.aliased == ()
    assert_rel(res.params.coef[0], res.params.coef[2])
    sk = Ridge(alpha=1.0, solver="svd").fit(X, y)
    assert_rel(res.params.coef, sk.coef_, 1e-8)


# --------------------------------------------------------------------------- conditioning


def test_condition_number_warning(rng):
    """Raw cubic in x on [100, 101]: about 4e8, so only ~8 digits survive; warn and say why."""
    x = np.linspace(100, 101, 50)
    X = np.column_stack([x, x**2, x**3])
    y = np.sin(x) + 0.01 * rng.normal(size=50)
    res = normal_eq.fit(ModelData(X, y))
    assert res.metrics["condition_number"] > 1e8
    assert res.params.aliased == ()
    assert np.all(np.isfinite(res.coefficients["estimate"]))
    (warning,) = res.warnings
    assert "ill-conditioned" in warning and "--poly" in warning


def test_degree_ten_on_narrow_range_warns(rng):
    x = np.linspace(100, 101, 50)
    X = np.column_stack([x**k for k in range(1, 11)])
    res = normal_eq.fit(ModelData(X, np.cos(x) + 0.01 * rng.normal(size=50)))
    assert any("ill-conditioned" in w for w in res.warnings)


def test_no_condition_warning_when_well_conditioned(rng):
    X, y = regression(rng)
    res = normal_eq.fit(ModelData(X, y))
    assert res.metrics["condition_number"] < 100
    assert res.warnings == []


def test_condition_warning_on_stderr(runner):
    from pathlib import Path

    filip = Path(__file__).parent / "data" / "nist" / "Filip.csv"
    result = runner.invoke(cli, ["normal-eq", str(filip), "--poly", "10", "--json"])
    assert result.exit_code == 0
    assert "ill-conditioned" in result.stderr
    assert "ill-conditioned" in json.loads(result.stdout)["warnings"][0]


# --------------------------------------------------------------------------- n versus p


def test_exact_fit_n_equals_p(rng):
    X, y = rng.normal(size=(4, 3)), rng.normal(size=4)
    res = normal_eq.fit(ModelData(X, y))
    assert_rel(res.coefficients["estimate"], np.linalg.solve(add_intercept(X), y), 1e-12)
    assert np.all(np.isnan(res.coefficients["std_error"]))
    assert res.metrics["df_residual"] == 0
    assert math.isnan(res.metrics["sigma"])
    assert any("As many parameters as rows" in w for w in res.warnings)


def test_exact_fit_cli(rng, runner, tmp_path):
    X, y = rng.normal(size=(3, 2)), rng.normal(size=3)
    path = write_table(tmp_path / "e.csv", ["a", "b", "y"], [X[:, 0], X[:, 1], y])
    result = runner.invoke(cli, ["normal-eq", path, "--json"])
    assert result.exit_code == 0, result.stderr
    assert "As many parameters as rows" in result.stderr
    out = json.loads(result.stdout)
    assert out["coefficients"]["a"]["std_error"] is None
    assert_rel(
        [out["coefficients"][k]["estimate"] for k in ("intercept", "a", "b")],
        np.linalg.solve(add_intercept(X), y),
        1e-12,
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["fit", "fit_chunks"])
def test_fewer_rows_than_parameters(rng, chunked):
    X, y = rng.normal(size=(3, 3)), rng.normal(size=3)
    with pytest.raises(DataError, match="3 usable rows for 4 parameters"):
        if chunked:
            normal_eq.fit_chunks([ModelData(X[:2], y[:2]), ModelData(X[2:], y[2:])])
        else:
            normal_eq.fit(ModelData(X, y))


def test_fewer_rows_than_parameters_cli(rng, runner, tmp_path):
    X, y = rng.normal(size=(3, 3)), rng.normal(size=3)
    path = write_table(tmp_path / "f.csv", ["a", "b", "c", "y"], [*X.T, y])
    result = runner.invoke(cli, ["normal-eq", path])
    assert result.exit_code == 3
    assert "parameters" in result.stderr and "Traceback" not in result.stderr


def test_no_chunks_is_a_data_error():
    with pytest.raises(DataError):
        normal_eq.fit_chunks([])


# --------------------------------------------------------------------------- chunked fits


def _compare_results(a, b, rtol=RTOL):
    for key in ("estimate", "std_error", "t", "ci_low", "ci_high"):
        assert_rel(a.coefficients[key], b.coefficients[key], rtol)
    assert_rel(a.coefficients["p_value"], b.coefficients["p_value"], RTOL_P)
    for key, value in b.metrics.items():
        assert_rel(a.metrics[key], value, RTOL_P if key == "f_p_value" else rtol)


@pytest.mark.parametrize("size", [1, 7, 37, 199, 1000])
@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
def test_fit_chunks_equals_in_memory(rng, size, intercept):
    X, y = regression(rng, n=500, p=4)
    config = normal_eq.Config(intercept=intercept)
    full = normal_eq.fit(ModelData(X, y), config)
    chunked = normal_eq.fit_chunks(
        (ModelData(X[i : i + size], y[i : i + size]) for i in range(0, 500, size)), config
    )
    _compare_results(chunked, full)
    assert chunked.info["method"] == "householder-qr"  # no in-memory refinement pass


def test_fit_chunks_ridge_equals_in_memory(rng):
    X, y = regression(rng, n=300, p=3)
    config = normal_eq.Config(l2=4.0)
    full = normal_eq.fit(ModelData(X, y), config)
    chunked = normal_eq.fit_chunks(
        [ModelData(X[i : i + 37], y[i : i + 37]) for i in range(0, 300, 37)], config
    )
    assert_rel(chunked.params.coef, full.params.coef)
    assert_rel(chunked.params.intercept, full.params.intercept)
    assert_rel(chunked.metrics["r_squared"], full.metrics["r_squared"])


def test_fit_chunks_aliased_column(rng):
    X, y = _collinear(rng, "sum")
    full = normal_eq.fit(ModelData(X, y))
    chunked = normal_eq.fit_chunks(
        [ModelData(X[i : i + 7], y[i : i + 7]) for i in range(0, len(y), 7)]
    )
    assert chunked.params.aliased == full.params.aliased == (3,)
    assert_rel(
        np.delete(chunked.coefficients["estimate"], 3),
        np.delete(full.coefficients["estimate"], 3),
        1e-9,
    )


def mixed_table(rng, tmp_path, missing: bool) -> str:
    """Numeric, text and target columns; with `missing`, empty fields in each kind of column."""
    n = 300
    x1, x2 = rng.normal(size=n), rng.uniform(0, 10, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = (
        1
        + 2 * x1
        - 0.5 * x2
        + np.select([colour == "red", colour == "green"], [1.0, -1.0])
        + rng.normal(size=n)
    )
    cols = [list(x1), [str(c) for c in colour], list(x2), list(y)]
    if missing:
        for i in range(n):
            if i % 17 == 3:
                cols[0][i] = None
            if i % 23 == 5:
                cols[1][i] = None
            if i % 29 == 7:
                cols[3][i] = None
    return write_table(tmp_path / "mixed.csv", ["x1", "colour", "x2", "y"], cols)


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "na-drop"])
def test_chunk_stream_fit_equals_in_memory(rng, tmp_path, missing):
    """The streaming pieces (ChunkStream, the design, fit_chunks) give the in-memory fit, with a
    text column and rows dropped for missing values, without the CLI."""
    path = mixed_table(rng, tmp_path, missing)
    sel = Selection(target="y", na="drop")
    data = load_dataset(path, sel)
    design, _ = build_design(data.features, data.columns, True)
    X, X_lo = design.transform(data.columns)
    full = normal_eq.fit(ModelData(X, data.y, X_lo=X_lo), normal_eq.Config())

    stream = ChunkStream(path, sel, chunk_rows=37)
    assert stream.levels(stream.text_columns()) == design.levels
    chunks = (ModelData(design.transform(c.columns)[0], c.y) for c in stream)
    chunked = normal_eq.fit_chunks(chunks, normal_eq.Config())
    assert stream.rows_read == 300
    assert stream.rows_read - stream.rows_dropped == data.n_rows
    assert chunked.metrics["n"] == data.n_rows
    _compare_results(chunked, full)


def _compare_json(chunked: dict, memory: dict):
    assert list(chunked["coefficients"]) == list(memory["coefficients"])
    for name, row in memory["coefficients"].items():
        assert row.keys() == chunked["coefficients"][name].keys()
        for key, value in row.items():
            assert_rel(
                chunked["coefficients"][name][key], value, RTOL_P if key == "p_value" else RTOL
            )
    for key, value in memory["metrics"].items():
        assert_rel(chunked["metrics"][key], value, RTOL_P if key == "f_p_value" else RTOL)
    assert chunked["data"] == memory["data"]


def test_cli_chunk_rows_equals_in_memory(rng, runner, tmp_path):
    X, y = regression(rng, n=300, p=3)
    path = write_table(tmp_path / "num.csv", ["a", "b", "c", "y"], [*X.T, y])
    memory = invoke_json(runner, ["normal-eq", path])
    chunked = invoke_json(runner, ["normal-eq", path, "--chunk-rows", "37"])
    _compare_json(chunked, memory)
    assert chunked["solver"]["method"] == "householder-qr"


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "na-drop"])
def test_cli_chunk_rows_text_column_and_na_drop(rng, runner, tmp_path, missing):
    path = mixed_table(rng, tmp_path, missing)
    memory = invoke_json(runner, ["normal-eq", path, "--na", "drop"])
    chunked = invoke_json(runner, ["normal-eq", path, "--na", "drop", "--chunk-rows", "37"])
    assert "colour=red" in memory["coefficients"]
    _compare_json(chunked, memory)


def test_cli_chunk_rows_level_only_in_dropped_row(runner, tmp_path):
    rng = np.random.default_rng(7)
    x = rng.uniform(size=40)
    g = rng.choice(["b", "c"], size=40)
    y = 2 * x + (g == "b") + 0.1 * rng.normal(size=40)
    # level 'aa' (first in sorted order) occurs only in a row dropped for its missing target
    path = write_table(tmp_path / "lv.csv", ["x", "g", "y"], [[1.0, *x], ["aa", *g], [None, *y]])
    memory = invoke_json(runner, ["normal-eq", path, "--na", "drop"])
    chunked = invoke_json(runner, ["normal-eq", path, "--na", "drop", "--chunk-rows", "7"])
    assert list(memory["coefficients"]) == ["intercept", "x", "g=c"]
    _compare_json(chunked, memory)


def test_cli_chunk_rows_warns_about_dropped_rows(rng, runner, tmp_path):
    path = mixed_table(rng, tmp_path, missing=True)
    memory = invoke_json(runner, ["normal-eq", path, "--na", "drop"])
    chunked = invoke_json(runner, ["normal-eq", path, "--na", "drop", "--chunk-rows", "37"])
    assert any("dropped" in w for w in memory["warnings"])
    assert chunked["warnings"] == memory["warnings"]


@pytest.mark.parametrize("value", [5.0, 5.1, -1e-3, 7e12])
def test_a_constant_target_has_no_f_test_or_r_squared(rng, value):
    """Undefined statistics are null with a note, never a wrong number (a negative F)."""
    X = rng.normal(size=(20, 2))
    res = normal_eq.fit(ModelData(X, np.full(20, value)))
    m = res.metrics
    assert math.isnan(m["r_squared"]) and math.isnan(m["f_statistic"])
    assert math.isnan(m["f_p_value"])
    assert any("constant" in w for w in res.warnings)


@pytest.mark.parametrize("k", [-1000, -900, -520, -100, 0, 100, 520, 900, 1000])
@pytest.mark.parametrize("chunked", [False, True])
def test_scaling_a_column_by_a_power_of_two_changes_nothing_but_its_coefficient(rng, k, chunked):
    """x * 2^k is exact; the fit must see the same problem: no column aliased, every other
    estimate the same, x's estimate and error scaled by 2^-k (to rounding)."""
    X = rng.normal(size=(60, 3)) * [1.0, 3.0, 0.5]
    y = 2.0 + X @ [1.5, -0.7, 2.0] + rng.normal(0, 0.3, 60)
    Xk = X.copy()
    Xk[:, 1] = np.ldexp(X[:, 1], k)
    fit = (
        (
            lambda Z: normal_eq.fit_chunks(
                [ModelData(Z[i : i + 7], y[i : i + 7]) for i in range(0, 60, 7)]
            )
        )
        if chunked
        else (lambda Z: normal_eq.fit(ModelData(Z, y)))
    )
    base, scaled = fit(X), fit(Xk)
    assert not scaled.params.aliased
    b, s = base.coefficients, scaled.coefficients
    factor = np.array([1.0, 1.0, np.ldexp(1.0, -k), 1.0])  # intercept first
    tol = 1e-9 if chunked else 1e-12
    for key in ("estimate", "std_error"):
        np.testing.assert_allclose(s[key] / factor, b[key], rtol=tol)
    np.testing.assert_allclose(s["p_value"], b["p_value"], rtol=1e-8, atol=1e-300)
    assert scaled.metrics["r_squared"] == pytest.approx(base.metrics["r_squared"], rel=1e-12)
