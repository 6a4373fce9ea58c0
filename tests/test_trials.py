"""newton --trials: grouped binomial data (R's glm(cbind(s, n - s) ~ ., binomial)) against
statsmodels' GLM(Binomial) with a two-column endog [successes, failures] to 10 digits.

statsmodels' llf for grouped data includes sum log C(n, s), as R's logLik does; it cannot
fit rows with 0 trials (0/0), which R keeps out of the fit and its df, so the references are
fitted on the rows with trials.  With prior weights w, R's logLik is sum w log dbinom(s, n, mu)
(binomial()$aic): checked against scipy's binom.logpmf.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from cli_json import coefficient_column, fit_json

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.errors import DataError
from mlfit.solvers import newton

sm = pytest.importorskip("statsmodels.api")
stats = pytest.importorskip("scipy.stats")

RTOL = 1e-10
N = 60
ZERO_TRIALS = (4, 31)


def table(rng, n=N):
    """x1, x2, text g, trials t (two rows with none), successes s, prior weights w."""
    x1, x2 = rng.normal(size=n).round(4), rng.normal(size=n).round(4)
    g = np.array(["a", "b", "c"])[np.arange(n) % 3]
    t = rng.integers(1, 20, n)
    t[list(ZERO_TRIALS)] = 0
    eta = 0.3 + 0.8 * x1 - 0.5 * x2 + 0.4 * (g == "b")
    s = rng.binomial(t, 1 / (1 + np.exp(-eta)))
    w = rng.uniform(0.5, 2.0, n).round(3)
    return {"x1": x1, "x2": x2, "g": g, "t": t, "s": s, "w": w}


def write(tmp_path, cols, name="g.csv") -> str:
    path = tmp_path / name
    rows = zip(*cols.values())
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)


def reference(cols, link=None, weights=False):
    """statsmodels on the rows with trials (R drops the others from the fit and df)."""
    used = cols["t"] > 0
    X = np.column_stack(
        [np.ones(used.sum()), cols["x1"][used], cols["x2"][used]]
        + [(cols["g"][used] == level).astype(float) for level in ("b", "c")]
    )
    endog = np.column_stack([cols["s"], cols["t"] - cols["s"]])[used]
    family = sm.families.Binomial() if link is None else sm.families.Binomial(link)
    extra = {"var_weights": cols["w"][used]} if weights else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.GLM(endog, X, family=family, **extra).fit(tol=1e-15, maxiter=200)
    return ref, used


def expected_se(ref):
    """Standard errors from the expected information at the estimate (statsmodels' bse is
    the last IRLS step's, one iteration behind)."""
    info = -ref.model.hessian(ref.params, scale=1.0, observed=False)
    return np.sqrt(np.diag(np.linalg.inv(info)))


@pytest.fixture
def data(tmp_path, rng):
    cols = table(rng)
    return cols, write(tmp_path, cols)


ARGS = ["-y", "s", "-x", "x1,x2,g", "--trials", "t", "--family", "binomial"]


def check_against(doc, ref, used, loglik):
    np.testing.assert_allclose(coefficient_column(doc, "estimate"), ref.params, rtol=RTOL)
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), expected_se(ref), rtol=RTOL)
    m = doc["metrics"]
    k = len(ref.params)
    assert m["n"] == used.sum() == ref.nobs
    assert m["df_residual"] == ref.df_resid and m["df_null"] == used.sum() - 1
    assert m["deviance"] == pytest.approx(ref.deviance, rel=RTOL)
    assert m["null_deviance"] == pytest.approx(ref.null_deviance, rel=RTOL)
    assert m["log_likelihood"] == pytest.approx(loglik, rel=RTOL)
    assert m["aic"] == pytest.approx(-2 * loglik + 2 * k, rel=RTOL)
    assert m["bic"] == pytest.approx(-2 * loglik + np.log(used.sum()) * k, rel=RTOL)
    lr = 2 * (m["log_likelihood"] - m["null_log_likelihood"])
    assert m["lr_statistic"] == pytest.approx(lr, rel=1e-12)
    assert m["lr_statistic"] == pytest.approx(ref.null_deviance - ref.deviance, rel=1e-9)


@pytest.mark.parametrize("chunk", [[], ["--chunk-rows", "7"]])
def test_matches_statsmodels_grouped_binomial(runner, data, chunk):
    cols, path = data
    ref, used = reference(cols)
    doc = fit_json(runner, "newton", path, *ARGS, *chunk)
    check_against(doc, ref, used, ref.llf)  # llf includes the log C(n, s) terms, as R's
    assert doc["metrics"]["null_log_likelihood"] == pytest.approx(ref.llnull, rel=RTOL)
    assert doc["metrics"]["aic"] == pytest.approx(ref.aic, rel=RTOL)
    assert doc["solver"]["trials"] is True


def test_prior_weights_times_trials(runner, data):
    """R's weights= with cbind: prior weights w times the trials; logLik sum w log dbinom."""
    cols, path = data
    ref, used = reference(cols, weights=True)
    doc = fit_json(runner, "newton", path, *ARGS, "--weights", "w")
    mu = ref.fittedvalues
    logpmf = stats.binom.logpmf(cols["s"][used], cols["t"][used], mu)
    check_against(doc, ref, used, float(cols["w"][used] @ logpmf))
    chunked = fit_json(runner, "newton", path, *ARGS, "--weights", "w", "--chunk-rows", "9")
    np.testing.assert_allclose(
        coefficient_column(chunked, "estimate"), coefficient_column(doc, "estimate"), rtol=1e-12
    )
    for key, value in doc["metrics"].items():
        assert chunked["metrics"][key] == pytest.approx(value, rel=1e-12), key


def test_probit_link(runner, data):
    cols, path = data
    ref, used = reference(cols, link=sm.families.links.Probit())
    doc = fit_json(runner, "newton", path, *ARGS, "--link", "probit")
    check_against(doc, ref, used, ref.llf)


def test_robust_sandwich(runner, data):
    """HC0 as statsmodels' GLM (one score row per grouped row); HC1 as R's sandwich::vcovHC,
    HC0 times n / (n - k) with n the rows with trials (statsmodels' GLM has no HC1)."""
    cols, path = data
    ref, used = reference(cols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        endog = np.column_stack([cols["s"], cols["t"] - cols["s"]])[used]
        rob = sm.GLM(endog, ref.model.exog, family=sm.families.Binomial())
        rob = rob.fit(tol=1e-15, cov_type="HC0")
    hc0 = fit_json(runner, "newton", path, *ARGS, "--se", "robust", "--hc", "0")
    np.testing.assert_allclose(coefficient_column(hc0, "std_error"), rob.bse, rtol=1e-8)
    hc1 = fit_json(runner, "newton", path, *ARGS, "--se", "robust", "--hc", "1")
    n, k = used.sum(), len(ref.params)
    np.testing.assert_allclose(
        coefficient_column(hc1, "std_error"),
        coefficient_column(hc0, "std_error") * np.sqrt(n / (n - k)),
        rtol=1e-12,
    )


def test_single_trials_are_bernoulli(runner, tmp_path, rng):
    """One trial per row is the ungrouped fit: same estimates, deviance and logLik."""
    cols = table(rng)
    cols["t"] = np.ones(N, dtype=int)
    cols["s"] = (rng.uniform(size=N) < 0.4 + 0.2 * (cols["x1"] > 0)).astype(int)
    path = write(tmp_path, cols)
    grouped = fit_json(runner, "newton", path, *ARGS)
    plain = fit_json(runner, "newton", path, "-y", "s", "-x", "x1,x2,g", "--family", "bernoulli")
    np.testing.assert_allclose(
        coefficient_column(grouped, "estimate"), coefficient_column(plain, "estimate"), rtol=1e-12
    )
    np.testing.assert_allclose(
        coefficient_column(grouped, "std_error"), coefficient_column(plain, "std_error"), rtol=1e-12
    )
    for key in ("deviance", "null_deviance", "log_likelihood", "aic", "df_residual"):
        assert grouped["metrics"][key] == pytest.approx(plain["metrics"][key], rel=1e-12), key


def test_model_file_and_predict(runner, data, tmp_path):
    """predict gives the fitted probability (R's type = "response") and needs no trials."""
    cols, path = data
    model = str(tmp_path / "m.json")
    doc = fit_json(runner, "newton", path, *ARGS, "--save", model)
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["params"]["family"] == "bernoulli" and "trials" not in saved["columns"]
    new = {k: cols[k] for k in ("x1", "x2", "g")}
    result = runner.invoke(cli, ["predict", model, write(tmp_path, new, "new.csv")])
    assert result.exit_code == 0, result.stderr
    predicted = np.array([float(v) for v in result.stdout.split()[1:]])
    b = coefficient_column(doc, "estimate")
    eta = b[0] + b[1] * cols["x1"] + b[2] * cols["x2"] + b[3] * (cols["g"] == "b")
    eta += b[4] * (cols["g"] == "c")
    np.testing.assert_allclose(predicted, 1 / (1 + np.exp(-eta)), rtol=1e-12)


def test_proportions_do_not_separate(runner, tmp_path):
    """A column non-zero only where 0 < s < n is no separation; one where every s = 0 is."""
    x = [1, 1, 1, 0, 0, 0, 0, 0]
    z = [0.1, -0.3, 0.2, 0.5, -0.7, 0.4, 0.9, -0.2]
    t = [5, 6, 4, 7, 8, 3, 6, 5]
    s = [2, 3, 1, 0, 6, 3, 2, 0]
    path = write(tmp_path, {"x": x, "z": z, "t": t, "s": s})
    fit_json(runner, "newton", path, "-y", "s", "--trials", "t", "--family", "binomial")
    s_zero = [0, 0, 0, 3, 6, 1, 2, 4]
    path = write(tmp_path, {"x": x, "z": z, "t": t, "s": s_zero}, "sep.csv")
    result = runner.invoke(
        cli, ["newton", path, "-y", "s", "--trials", "t", "--family", "binomial"]
    )
    assert result.exit_code == 1 and "separation" in result.stderr


BAD = [
    ({"s": [1, 2, 9, 0]}, "'s' is 9 at row 3 (line 4)", 3),
    ({"t": [5, 5, -5, 6]}, "row 3 (line 4)", 3),
    ({"t": [5, 5, 9.5, 6]}, "row 3 (line 4)", 3),
    ({"s": [1, 2, 1.5, 0]}, "row 3 (line 4)", 3),
]


@pytest.mark.parametrize("chunk", [[], ["--chunk-rows", "2"]])
@pytest.mark.parametrize(("change", "message", "code"), BAD)
def test_bad_counts_name_the_row(runner, tmp_path, change, message, code, chunk):
    cols = {"x": [0.1, 0.5, -0.2, 0.9], "t": [5, 5, 8, 6], "s": [1, 2, 3, 0], **change}
    path = write(tmp_path, cols)
    args = ["newton", path, "-y", "s", "--trials", "t", "--family", "binomial", *chunk]
    result = runner.invoke(cli, args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("family", ["poisson", "gaussian", "gamma"])
def test_trials_need_the_binomial_family(runner, tmp_path, family):
    path = write(tmp_path, {"x": [0.1, 0.5, -0.2], "t": [5, 5, 8], "s": [1, 2, 3]})
    result = runner.invoke(cli, ["newton", path, "-y", "s", "--trials", "t", "--family", family])
    assert result.exit_code == 2 and "--trials" in result.stderr and family in result.stderr


def test_solver_checks_the_counts():
    """The solver checks the same as the validator on the arrays it gets (row numbers)."""
    X = np.array([[0.1], [0.5], [-0.2]])
    config = newton.Config(family="bernoulli")
    for s, t, message in [
        ([1, 7, 0], [5, 5, 5], "Row 2 has 7 successes out of 5"),
        ([1, 2, 0], [5, -1, 5], "row 2 has -1"),
        ([1, 2.5, 0], [5, 5, 5], "row 2 has 2.5"),
    ]:
        data = ModelData(X=X, y=np.array(s, float), extras={"trials": np.array(t, float)})
        with pytest.raises(DataError, match=message):
            newton.fit(data, config)
    with pytest.raises(ValueError, match="bernoulli"):
        data = ModelData(X=X, y=np.ones(3), extras={"trials": np.full(3, 2.0)})
        newton.fit(data, newton.Config(family="poisson"))


def test_diagnostics_of_grouped_rows(rng):
    """--plot's residuals and leverages of grouped rows are statsmodels' (R's rstandard,
    hatvalues, cooks.distance of the cbind fit); rows with 0 trials are left out (NaN)."""
    cols = table(rng)
    ref, used = reference(cols)
    X = np.column_stack([cols["x1"], cols["x2"]] + [(cols["g"] == v) * 1.0 for v in "bc"])
    data = ModelData(X=X, y=cols["s"].astype(float), extras={"trials": cols["t"].astype(float)})
    result = newton.fit(data, newton.Config(family="bernoulli"))
    d = newton.plot_data(result, data, None)["diagnostics"]
    infl = ref.get_influence()
    # residuals of order 1: 10 digits absolute (a residual near 0 keeps fewer relatively)
    for ours, theirs in [
        ("residuals", ref.resid_deviance),
        ("pearson_residuals", ref.resid_pearson),
    ]:
        np.testing.assert_allclose(d[ours][used], theirs, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(d["leverage"][used], infl.hat_matrix_diag, rtol=1e-9)
    np.testing.assert_allclose(d["cooks_distance"][used], infl.cooks_distance[0], rtol=1e-8)
    assert np.isnan(d["cooks_distance"][~used]).all()


def test_all_failures_or_all_successes_say_so(runner, assert_error, write_csv):
    for s in ("0,0,0,0", "3,2,4,1"):
        rows = ["s,n,x"] + [f"{v},{t},{i}" for i, (v, t) in enumerate(zip(s.split(","), "3241"))]
        path = write_csv("\n".join(rows) + "\n")
        result = runner.invoke(
            cli, ["newton", path, "-y", "s", "--trials", "n", "--family", "binomial"]
        )
        word = "failure" if s.startswith("0") else "success"
        assert_error(result, 3, "single class", word, "successes and failures")
