"""--se robust --hc 0..3 and --cluster COL: sandwich standard errors against statsmodels to 10
digits, for least squares (normal-eq), GLMs (newton: Gaussian, Poisson, logistic) and logreg
(binary and softmax), with and without prior weights, in memory and chunked.

statsmodels' GLM gives HC0 for every cov_type="HC0".."HC3" (its sandwich for non-linear models
has no HC1-HC3); R's sandwich::vcovHC for a glm applies HC1-HC3 to the final IRLS weighted
least squares, which is what statsmodels' WLS of the working response computes: that WLS is
the reference for HC1-HC3 of GLMs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from cli_json import coefficient_column, fit_json

from mlfit.cli import cli

sm = pytest.importorskip("statsmodels.api")

RTOL = 1e-10
N = 90
FEATURES = ["-x", "x1,x2,g"]


def table(rng, n=N):
    x1, x2 = rng.normal(size=n).round(4), rng.normal(size=n).round(4)
    g = np.array(["a", "b", "c"])[np.arange(n) % 3]
    w = rng.uniform(0.2, 3.0, n).round(3)
    w[[4, 30]] = 0.0
    cl = np.array([f"s{i}" for i in rng.integers(0, 9, n)])
    eta = 0.4 + 0.7 * x1 - 0.5 * x2 + 0.3 * (g == "b")
    y = (eta + rng.normal(size=n) * (0.5 + np.abs(x1))).round(4)  # heteroscedastic
    count = rng.poisson(np.exp(0.2 + 0.5 * x1 - 0.3 * x2))
    b = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    k = np.digitize(eta + rng.logistic(size=n), [0.0, 1.2])
    return {"x1": x1, "x2": x2, "g": g, "w": w, "cl": cl, "y": y, "count": count, "b": b, "k": k}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cols = table(np.random.default_rng(11))
    path = tmp_path_factory.mktemp("robust") / "r.csv"
    rows = zip(*cols.values())
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return cols, str(path)


def design(cols, used):
    g = cols["g"][used]
    return np.column_stack(
        [np.ones(used.sum()), cols["x1"][used], cols["x2"][used], g == "b", g == "c"]
    ).astype(float)


def robust_args(kind):
    return ["--cluster", "cl"] if kind == "cluster" else ["--se", "robust", "--hc", kind[-1]]


def sm_fit(model, kind, groups):
    with warnings.catch_warnings():  # "cov_type not fully supported with var_weights"
        warnings.simplefilter("ignore")
        if kind == "cluster":
            return model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        return model.fit(cov_type=kind)


KINDS = ["HC0", "HC1", "HC2", "HC3", "cluster"]


def check_table(doc, ref):
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), ref.bse, rtol=RTOL)
    np.testing.assert_allclose(coefficient_column(doc, "z"), ref.tvalues, rtol=RTOL)
    np.testing.assert_allclose(coefficient_column(doc, "p_value"), ref.pvalues, rtol=1e-8)
    ci = np.asarray(ref.conf_int())
    np.testing.assert_allclose(coefficient_column(doc, "ci_low"), ci[:, 0], rtol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_normal_eq_matches_ols_and_wls(runner, data, kind, weighted):
    cols, path = data
    used = cols["w"] > 0 if weighted else np.ones(N, dtype=bool)
    weights = ["--weights", "w"] if weighted else []
    doc = fit_json(runner, "normal-eq", path, "-y", "y", *FEATURES, *weights, *robust_args(kind))
    model = sm.WLS(cols["y"][used], design(cols, used), weights=cols["w"][used] if weighted else 1)
    ref = sm_fit(model, kind, cols["cl"][used])
    check_table(doc, ref)
    assert doc["metrics"]["f_statistic"] == pytest.approx(ref.fvalue, rel=RTOL)
    assert doc["metrics"]["f_p_value"] == pytest.approx(ref.f_pvalue, rel=1e-8)
    assert doc["solver"]["covariance"] == kind
    if kind == "cluster":
        assert doc["solver"]["clusters"] == len(set(cols["cl"][used]))


FAMILIES = [
    ("gaussian", "y", sm.families.Gaussian()),
    ("poisson", "count", sm.families.Poisson()),
    ("bernoulli", "b", sm.families.Binomial()),
]


def glm_reference(cols, used, target, family, kind, weighted):
    """statsmodels' GLM for HC0 and cluster; for HC1-HC3, WLS of the converged fit's working
    response with its working weights (R's sandwich::vcovHC of a glm)."""
    X, y = design(cols, used), cols[target][used].astype(float)
    w = cols["w"][used] if weighted else np.ones(used.sum())
    glm = sm.GLM(y, X, family=family, var_weights=w).fit(tol=1e-15)
    if kind in ("HC0", "cluster"):
        model = sm.GLM(y, X, family=family, var_weights=w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwds = {"cov_kwds": {"groups": cols["cl"][used]}} if kind == "cluster" else {}
            return model.fit(tol=1e-15, start_params=glm.params, cov_type=kind, **kwds)
    eta = X @ glm.params
    mu = family.link.inverse(eta)
    d = family.link.inverse_deriv(eta)
    z = eta + (y - mu) / d
    W = w * d * d / family.variance(mu)
    return sm.WLS(z, X, weights=W).fit(cov_type=kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family, target, sm_family", FAMILIES)
def test_newton_matches_statsmodels(runner, data, kind, family, target, sm_family):
    cols, path = data
    used = cols["w"] > 0
    args = ["newton", path, "-y", target, *FEATURES, "--family", family, "--weights", "w"]
    doc = fit_json(runner, *args, *robust_args(kind))
    ref = glm_reference(cols, used, target, sm_family, kind, True)
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), ref.bse, rtol=RTOL)
    np.testing.assert_allclose(
        coefficient_column(doc, "z"), coefficient_column(doc, "estimate") / ref.bse, rtol=RTOL
    )
    assert doc["solver"]["covariance"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_logreg_binary_matches_statsmodels(runner, data, kind):
    cols, path = data
    used = np.ones(N, dtype=bool)
    doc = fit_json(runner, "logreg", path, "-y", "b", *FEATURES, *robust_args(kind))
    ref = glm_reference(cols, used, "b", sm.families.Binomial(), kind, False)
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), ref.bse, rtol=RTOL)
    newton = fit_json(runner, "newton", path, "-y", "b", *FEATURES, "--family", "bernoulli",
                 *robust_args(kind))  # fmt: skip
    np.testing.assert_allclose(
        coefficient_column(doc, "std_error"), coefficient_column(newton, "std_error"), rtol=1e-11
    )


@pytest.mark.parametrize("kind", ["HC0", "HC1", "cluster"])
def test_logreg_softmax_matches_mnlogit(runner, data, kind):
    cols, path = data
    used = np.ones(N, dtype=bool)
    doc = fit_json(runner, "logreg", path, "-y", "k", *FEATURES, *robust_args(kind))
    model = sm.MNLogit(cols["k"], design(cols, used))
    ref = sm_fit(model, "HC0" if kind == "HC1" else kind, cols["cl"])
    se = np.asarray(ref.bse).ravel(order="F")  # class by class, as mlfit's table
    if kind == "HC1":  # statsmodels' MNLogit has HC0 only; HC1 is HC0 times n / (n - k)
        se = se * np.sqrt(N / (N - se.size))
    np.testing.assert_allclose(coefficient_column(doc, "std_error"), se, rtol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_equals_in_memory(runner, data, kind):
    _, path = data
    for model, target, family in [
        ("normal-eq", "y", []),
        ("newton", "count", ["--family", "poisson"]),
    ]:
        args = [model, path, "-y", target, *FEATURES, "--weights", "w", *family,
                *robust_args(kind)]  # fmt: skip
        whole = fit_json(runner, *args)
        chunked = fit_json(runner, *args, "--chunk-rows", "7")
        np.testing.assert_allclose(
            coefficient_column(chunked, "std_error"),
            coefficient_column(whole, "std_error"),
            rtol=1e-11,
        )
        assert chunked["solver"]["covariance"] == whole["solver"]["covariance"] == kind


def test_report_names_the_covariance(runner, data):
    _, path = data
    result = runner.invoke(cli, ["normal-eq", path, "-y", "y", "--se", "robust", "-q"])
    assert result.exit_code == 0, result.stderr
    assert "covariance=HC3" in result.stdout  # HC3 by default, as sandwich::vcovHC
    plain = fit_json(runner, "normal-eq", path, "-y", "y")
    assert "covariance" not in plain["solver"]


def test_cluster_column_is_a_feature_only_when_named(runner, data):
    _, path = data
    doc = fit_json(runner, "normal-eq", path, "-y", "y", "-x", "x1,cl", "--cluster", "cl")
    assert any(name.startswith("cl=") for name in doc["coefficients"])
    default = fit_json(runner, "normal-eq", path, "-y", "y", "--cluster", "cl")
    assert not any(name.startswith("cl=") for name in default["coefficients"])


def test_aliased_columns_keep_robust_errors_of_the_rest(runner, data, tmp_path):
    cols, _ = data
    cols = {**cols, "x1_copy": cols["x1"]}
    path = tmp_path / "dup.csv"
    rows = zip(*cols.values())
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    for model in ("normal-eq", "newton", "logreg"):
        target = "b" if model == "logreg" else "y"
        a = fit_json(
            runner, model, str(path), "-y", target, "-x", "x1,x1_copy,x2", "--se", "robust"
        )
        b = fit_json(runner, model, str(path), "-y", target, "-x", "x1,x2", "--se", "robust")
        assert a["coefficients"]["x1_copy"].get("std_error") is None
        assert a["coefficients"]["x2"]["std_error"] == pytest.approx(
            b["coefficients"]["x2"]["std_error"], rel=1e-12
        )


@pytest.mark.parametrize(
    "args, words",
    [
        (["normal-eq", "-y", "y", "--hc", "1"], ["--hc", "--se robust"]),
        (["normal-eq", "-y", "y", "--cluster", "cl", "--hc", "3"], ["--cluster", "HC1"]),
        (["normal-eq", "-y", "y", "--cluster", "cl", "--se", "model"], ["--se model"]),
        (["newton", "-y", "y", "--se", "robust", "--l2", "1"], ["--l2"]),
        (["logreg", "-y", "b", "--se", "robust", "--method", "lbfgs"], ["Newton", "lbfgs"]),
        (["logreg", "-y", "k", "--se", "robust", "--hc", "2"], ["HC2", "softmax"]),
    ],
)
def test_option_errors(runner, data, assert_error, args, words):
    _, path = data
    result = runner.invoke(cli, [args[0], path, *args[1:]])
    assert result.exit_code == 2, result.stderr
    assert all(w.lower() in result.stderr.lower() for w in words), result.stderr


def test_one_cluster_and_leverage_one(runner, tmp_path, assert_error):
    path = tmp_path / "one.csv"
    path.write_text("x,y,c\n1,1.5,a\n2,2.5,a\n3,2.9,a\n4,4.4,a\n")
    assert_error(runner.invoke(cli, ["normal-eq", str(path), "-y", "y", "-x", "x",
                                     "--cluster", "c"]), 1, "at least 2 clusters")  # fmt: skip
    lever = tmp_path / "lever.csv"  # the dummy d picks out one row: leverage 1
    lever.write_text("x,d,y\n1,0,1.5\n2,0,2.5\n3,0,2.9\n4,1,4.4\n5,0,5.2\n")
    result = runner.invoke(cli, ["normal-eq", str(lever), "-y", "y", "--se", "robust"])
    assert_error(result, 1, "HC3 is undefined", "leverage 1", "--hc 0")


def test_missing_cluster_label_names_the_row(runner, data, tmp_path, assert_error):
    _, path = data
    lines = open(path).read().splitlines()  # noqa: SIM115
    cells = lines[5].split(",")
    cells[4] = ""
    lines[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    for chunk in ([], ["--chunk-rows", "3"]):
        result = runner.invoke(cli, ["normal-eq", str(bad), "-y", "y", *FEATURES,
                                     "--cluster", "cl", *chunk])  # fmt: skip
        assert_error(result, 3, "Missing values", "'cl'", "row 5 (line 6)")
