"""--weights: prior weights as R's lm and glm weights=, against statsmodels to 10 digits.

statsmodels' WLS and GLM(var_weights=) are R's prior weights (df_residual = rows - rank,
dispersion = weighted Pearson chi-squared / df, Gaussian log-likelihood + 0.5 sum log w);
GLM(freq_weights=) would count a row of weight w as w rows (df = sum w - rank), which R
does not.  Neither drops rows of weight 0 (log 0 in the Gaussian log-likelihood), so the
references are fitted on the rows of positive weight, as R's lm.wfit and glm.fit do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_json import coefficient_column, fit_json

from mlfit.cli import cli

sm = pytest.importorskip("statsmodels.api")

RTOL = 1e-10
N = 80


def table(rng, n=N, zeros=(3, 17, 40)):
    """Columns x1, x2, g (text), weights w (a few 0), and targets y, count, b (0/1), k (3
    classes)."""
    x1, x2 = rng.normal(size=n).round(4), rng.normal(size=n).round(4)
    g = np.array(["a", "b", "c"])[np.arange(n) % 3]
    w = rng.uniform(0.2, 3.0, n).round(3)
    w[list(zeros)] = 0.0
    eta = 0.5 + 0.8 * x1 - 0.4 * x2 + 0.3 * (g == "b")
    y = (eta + rng.normal(size=n) / np.sqrt(np.maximum(w, 0.2))).round(4)
    count = rng.poisson(np.exp(0.2 + 0.5 * x1 - 0.3 * x2))
    b = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    k = np.digitize(eta + rng.logistic(size=n), [0.0, 1.2])
    return {"x1": x1, "x2": x2, "g": g, "w": w, "y": y, "count": count, "b": b, "k": k}


def write(tmp_path, cols, name="w.csv") -> str:
    path = tmp_path / name
    rows = zip(*cols.values())
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)


def model_se(ref):
    """Standard errors from the information at the estimate (statsmodels' bse comes from
    the last IRLS step's weights, one iteration behind, about 1e-8 off)."""
    info = -ref.model.hessian(ref.params, scale=1.0)
    return np.sqrt(np.diag(np.linalg.inv(info)) * ref.scale)


def design(cols, used):
    X = np.column_stack(
        [
            np.ones(used.sum()),
            cols["x1"][used],
            cols["x2"][used],
            (cols["g"][used] == "b"),
            (cols["g"][used] == "c"),
        ]
    ).astype(float)
    return X


@pytest.fixture
def data(tmp_path, rng):
    cols = table(rng)
    return cols, write(tmp_path, cols)


FEATURES = ["-x", "x1,x2,g"]


def test_normal_eq_matches_wls(runner, data):
    cols, path = data
    used = cols["w"] > 0
    ref = sm.WLS(cols["y"][used], design(cols, used), weights=cols["w"][used]).fit()
    doc = fit_json(runner, "normal-eq", path, "-y", "y", *FEATURES, "--weights", "w")
    np.testing.assert_allclose(coefficient_column(doc, "estimate"), ref.params, rtol=RTOL)
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), ref.bse, rtol=RTOL)
    np.testing.assert_allclose(coefficient_column(doc, "p_value"), ref.pvalues, rtol=1e-8)
    m = doc["metrics"]
    assert m["n"] == used.sum() and m["df_residual"] == ref.df_resid
    for ours, theirs in [
        ("r_squared", ref.rsquared),
        ("adj_r_squared", ref.rsquared_adj),
        ("rss", ref.ssr),
        ("f_statistic", ref.fvalue),
        ("log_likelihood", ref.llf),  # includes 0.5 sum(log w), as R's logLik.lm
        ("aic", ref.aic + 2),  # statsmodels does not count sigma; R does
        ("bic", ref.bic + np.log(used.sum())),  # statsmodels does not count sigma; R does
    ]:
        assert m[ours] == pytest.approx(theirs, rel=RTOL), ours
    assert doc["data"]["rows_used"] == N  # rows of weight 0 are read, not fitted


@pytest.mark.parametrize(
    "family, target, sm_family",
    [
        ("gaussian", "y", sm.families.Gaussian()),
        ("poisson", "count", sm.families.Poisson()),
        ("bernoulli", "b", sm.families.Binomial()),
    ],
)
def test_newton_matches_glm_var_weights(runner, data, family, target, sm_family):
    cols, path = data
    used = cols["w"] > 0
    X = design(cols, used)
    ref = sm.GLM(cols[target][used], X, family=sm_family, var_weights=cols["w"][used]).fit(
        tol=1e-14
    )
    args = ["newton", path, "-y", target, *FEATURES, "--family", family, "--weights", "w"]
    doc = fit_json(runner, *args)
    np.testing.assert_allclose(coefficient_column(doc, "estimate"), ref.params, rtol=RTOL)
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), model_se(ref), rtol=RTOL)
    m = doc["metrics"]
    k = X.shape[1] + (family == "gaussian")
    assert m["n"] == used.sum() and m["df_residual"] == ref.df_resid
    assert m["deviance"] == pytest.approx(ref.deviance, rel=RTOL)
    assert m["null_deviance"] == pytest.approx(ref.null_deviance, rel=RTOL)
    assert m["log_likelihood"] == pytest.approx(ref.llf, rel=RTOL)
    assert m["aic"] == pytest.approx(-2 * ref.llf + 2 * k, rel=RTOL)
    assert m["bic"] == pytest.approx(-2 * ref.llf + np.log(used.sum()) * k, rel=RTOL)
    assert m["dispersion"] == pytest.approx(ref.scale, rel=RTOL)


def test_gaussian_newton_equals_normal_eq(runner, data):
    _, path = data
    a = fit_json(runner, "normal-eq", path, "-y", "y", *FEATURES, "--weights", "w")
    b = fit_json(runner, "newton", path, "-y", "y", *FEATURES, "--weights", "w")
    np.testing.assert_allclose(
        coefficient_column(a, "std_error"), coefficient_column(b, "std_error"), rtol=1e-13
    )
    for key in ("log_likelihood", "aic", "bic"):
        assert a["metrics"][key] == pytest.approx(b["metrics"][key], rel=1e-13)


def test_logreg_matches_glm_var_weights(runner, data):
    cols, path = data
    used = cols["w"] > 0
    X = design(cols, used)
    ref = sm.GLM(cols["b"][used], X, family=sm.families.Binomial(), var_weights=cols["w"][used])
    ref = ref.fit(tol=1e-14)
    doc = fit_json(runner, "logreg", path, "-y", "b", *FEATURES, "--weights", "w")
    np.testing.assert_allclose(coefficient_column(doc, "estimate"), ref.params, rtol=RTOL)
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), model_se(ref), rtol=RTOL)
    m = doc["metrics"]
    assert m["log_likelihood"] == pytest.approx(ref.llf, rel=RTOL)
    assert m["null_log_likelihood"] == pytest.approx(ref.llnull, rel=RTOL)
    assert m["lr_statistic"] == pytest.approx(2 * (ref.llf - ref.llnull), rel=1e-9)
    assert m["bic"] == pytest.approx(-2 * ref.llf + np.log(used.sum()) * 5, rel=RTOL)


def test_integer_weights_are_repeated_rows(runner, tmp_path, rng):
    """With dispersion 1 (logistic, softmax), weight 2 is the row twice: same estimates and
    standard errors (a check independent of statsmodels, which has no weighted MNLogit)."""
    cols = table(rng, zeros=())
    cols["w"] = rng.integers(0, 4, N)
    weighted = write(tmp_path, cols, "weighted.csv")
    rep = np.repeat(np.arange(N), cols["w"])
    repeated = write(tmp_path, {k: v[rep] for k, v in cols.items() if k != "w"}, "rep.csv")
    for target in ("b", "k"):
        a = fit_json(runner, "logreg", weighted, "-y", target, *FEATURES, "--weights", "w")
        b = fit_json(runner, "logreg", repeated, "-y", target, *FEATURES)
        np.testing.assert_allclose(
            coefficient_column(a, "estimate"), coefficient_column(b, "estimate"), rtol=1e-9
        )
        np.testing.assert_allclose(
            coefficient_column(a, "std_error"), coefficient_column(b, "std_error"), rtol=1e-9
        )
        assert a["metrics"]["log_likelihood"] == pytest.approx(b["metrics"]["log_likelihood"])


def test_balanced_class_weight_times_prior_weights(runner, data, tmp_path):
    """class_weight=balanced multiplies the prior weights (classes counted by rows of positive
    weight, as scikit-learn counts rows)."""
    cols, path = data
    used = cols["w"] > 0
    b = cols["b"]
    counts = np.bincount(b[used])
    product = dict(cols)
    product["w"] = np.where(used, cols["w"] * used.sum() / (2 * counts[b]), 0.0)
    other = write(tmp_path, product, "product.csv")
    a = fit_json(
        runner, "logreg", path, "-y", "b", *FEATURES, "--weights", "w", "--class-weight", "balanced"
    )
    c = fit_json(runner, "logreg", other, "-y", "b", *FEATURES, "--weights", "w")
    np.testing.assert_allclose(
        coefficient_column(a, "estimate"), coefficient_column(c, "estimate"), rtol=1e-10
    )


@pytest.mark.parametrize("model", ["normal-eq", "newton", "logreg"])
def test_zero_weight_rows_leave_the_fit_not_predict(runner, data, tmp_path, model):
    cols, path = data
    used = cols["w"] > 0
    kept = write(tmp_path, {k: v[used] for k, v in cols.items()}, "kept.csv")
    target = "b" if model == "logreg" else "y"
    args = ["-y", target, *FEATURES, "--weights", "w"]
    a = fit_json(runner, model, path, *args, "--save", str(tmp_path / "m.json"))
    b = fit_json(runner, model, kept, *args)
    np.testing.assert_allclose(
        coefficient_column(a, "estimate"), coefficient_column(b, "estimate"), rtol=1e-12
    )
    np.testing.assert_allclose(
        coefficient_column(a, "std_error"), coefficient_column(b, "std_error"), rtol=1e-12
    )
    for key, value in b["metrics"].items():
        if isinstance(value, float):
            assert a["metrics"][key] == pytest.approx(value, rel=1e-12), key
        elif not isinstance(value, dict):
            assert a["metrics"][key] == value, key
    without_w = write(tmp_path, {k: v for k, v in cols.items() if k != "w"}, "now.csv")
    out = runner.invoke(cli, ["predict", str(tmp_path / "m.json"), without_w])
    assert out.exit_code == 0, out.stderr  # predict needs no weights
    assert len(out.stdout.splitlines()) == N + 1


@pytest.mark.parametrize("family", ["gaussian", "poisson"])
def test_chunked_equals_in_memory(runner, data, family):
    _, path = data
    for model, extra in [("normal-eq", []), ("newton", ["--family", family])]:
        target = "count" if family == "poisson" and model == "newton" else "y"
        args = [model, path, "-y", target, *FEATURES, "--weights", "w", *extra]
        whole = fit_json(runner, *args)
        chunked = fit_json(runner, *args, "--chunk-rows", "3")  # rows 3..5: one of weight 0
        np.testing.assert_allclose(
            coefficient_column(chunked, "std_error"),
            coefficient_column(whole, "std_error"),
            rtol=1e-12,
        )
        for key, value in whole["metrics"].items():
            if isinstance(value, float):
                assert chunked["metrics"][key] == pytest.approx(value, rel=1e-11), key


def test_a_chunk_of_zero_weights(runner, tmp_path, rng):
    cols = table(rng, zeros=range(10))
    path = write(tmp_path, cols)
    whole = fit_json(runner, "normal-eq", path, "-y", "y", *FEATURES, "--weights", "w")
    chunked = fit_json(
        runner, "normal-eq", path, "-y", "y", *FEATURES, "--weights", "w", "--chunk-rows", "5"
    )
    assert chunked["metrics"]["n"] == N - 10
    np.testing.assert_allclose(
        coefficient_column(chunked, "estimate"), coefficient_column(whole, "estimate"), rtol=1e-12
    )


@pytest.mark.parametrize("model", ["normal-eq", "newton", "logreg"])
@pytest.mark.parametrize(
    "bad, words",
    [
        (
            "-1.5",
            ["'w' (the weights) must be non-negative", "row 7 (line 8)", "-1.5", "prior weights"],
        ),
        ("", ["Missing values", "'w' (1 row)", "row 7 (line 8)"]),
        ("inf", ["'w'", "infinite", "row 7 (line 8)"]),
        ("heavy", ["'w' (the weights)", "must be numeric", "row 7 (line 8)"]),
    ],
)
@pytest.mark.parametrize("chunk", [[], ["--chunk-rows", "2"]])
def test_bad_weights_name_the_row(runner, data, tmp_path, assert_error, model, bad, words, chunk):
    _, path = data
    if chunk and model == "logreg":
        pytest.skip("logreg fits in memory")
    lines = Path(path).read_text().splitlines()
    cells = lines[7].split(",")
    cells[3] = bad
    lines[7] = ",".join(cells)
    other = tmp_path / "bad.csv"
    other.write_text("\n".join(lines) + "\n")
    target = "b" if model == "logreg" else "y"
    result = runner.invoke(
        cli, [model, str(other), "-y", target, *FEATURES, "--weights", "w", *chunk]
    )
    assert_error(result, 3, *words)


def test_missing_weight_dropped_with_na_drop(runner, data, tmp_path):
    cols, path = data
    lines = Path(path).read_text().splitlines()
    cells = lines[7].split(",")
    cells[3] = ""
    lines[7] = ",".join(cells)
    other = tmp_path / "na.csv"
    other.write_text("\n".join(lines) + "\n")
    doc = fit_json(
        runner, "normal-eq", str(other), "-y", "y", *FEATURES, "--weights", "w", "--na", "drop"
    )
    assert doc["data"]["rows_dropped"] == 1
    assert doc["metrics"]["n"] == (cols["w"] > 0).sum() - (cols["w"][6] > 0)


def test_weights_column_cannot_be_a_feature_or_the_target(runner, data, assert_error):
    _, path = data
    as_feature = runner.invoke(cli, ["normal-eq", path, "-y", "y", "-x", "x1,w", "--weights", "w"])
    assert_error(as_feature, 3, "'w' is the weights", "--features")
    as_target = runner.invoke(cli, ["normal-eq", path, "-y", "w", "--weights", "w"])
    assert_error(as_target, 3, "'w' is the target")
    unknown = runner.invoke(cli, ["normal-eq", path, "-y", "y", "--weights", "ww"])
    assert_error(unknown, 3, "'ww' (the weights) not found")


def test_every_weight_zero(runner, data, tmp_path, assert_error):
    cols, _ = data
    path = write(tmp_path, {**cols, "w": np.zeros(N)}, "zero.csv")
    for model in ("normal-eq", "newton", "logreg"):
        target = "b" if model == "logreg" else "y"
        result = runner.invoke(cli, [model, path, "-y", target, *FEATURES, "--weights", "w"])
        assert result.exit_code == 3, (model, result.stderr)
        assert "Traceback" not in result.stderr


def test_no_warnings_leak(runner, data):
    _, path = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model, target in [("normal-eq", "y"), ("newton", "y"), ("logreg", "k")]:
            fit_json(runner, model, path, "-y", target, *FEATURES, "--weights", "w")


def test_diagnostics_use_the_weights(data):
    """R's plot(lm) of a weighted fit: leverages h = w x'(X'WX)^-1 x, standardized residuals
    sqrt(w) e / (sigma sqrt(1 - h)) (R's rstandard) and Cook's distances from them, in closed
    form (statsmodels' OLSInfluence ignores WLS weights); rows of weight 0 left out (NaN)."""
    from mlfit.contract import ModelData
    from mlfit.solvers import normal_eq

    cols, _ = data
    X = design(cols, np.ones(N, dtype=bool))[:, 1:]
    model = ModelData(X, cols["y"], {"weights": cols["w"]})
    result = normal_eq.fit(model, normal_eq.Config())
    d = normal_eq.plot_data(result, model, None)["diagnostics"]
    used = cols["w"] > 0
    ref = sm.WLS(cols["y"][used], design(cols, used), weights=cols["w"][used]).fit()
    root = np.sqrt(cols["w"][used])
    H = design(cols, used) * root[:, None]
    h = np.einsum("ij,ij->i", H @ np.linalg.inv(H.T @ H), H)
    r = root * ref.resid / (np.sqrt(ref.scale) * np.sqrt(1 - h))
    np.testing.assert_allclose(d["leverage"][used], h, rtol=1e-10)
    np.testing.assert_allclose(d["std_pearson_residuals"][used], r, rtol=1e-9)
    np.testing.assert_allclose(d["cooks_distance"][used], r * r * h / (5 * (1 - h)), rtol=1e-9)
    assert np.isnan(d["cooks_distance"][~used]).all()
