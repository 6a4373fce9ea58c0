"""naive-bayes against scikit-learn's GaussianNB and CategoricalNB, and its failure modes."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sklearn.naive_bayes import CategoricalNB, GaussianNB

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.design import Design, build_design
from mlfit.errors import FitError
from mlfit.solvers import naive_bayes
from mlfit.solvers.moments import ClassMoments
from mlfit.solvers.naive_bayes import Config, Params


def mixed_table(rng, n=300):
    """Two numeric features, two text features (3 and 4 levels) and three classes."""
    y = rng.integers(0, 3, n)
    numeric = rng.normal(size=(n, 2)) + y[:, None] * [0.8, -0.5] + [5.0, 100.0]
    g = rng.integers(0, 3, n)
    g = np.where(rng.random(n) < 0.5, y, g)  # g depends on the class
    h = rng.integers(0, 4, n)
    text = {
        "g": np.array(["a", "b", "c"], dtype=object)[g],
        "h": np.array(["p", "q", "r", "s"], dtype=object)[h],
    }
    return numeric, np.column_stack([g, h]), text, y


def model_data(columns, features, y=None, design=None):
    design = design or build_design(features, columns, False, categorical=True)[0]
    X, _ = design.transform(columns)
    data = ModelData(X, y, names=design.names, target="y")
    data.one_hot = design.one_hot
    return data, design


def fit(numeric, text, y, config=None, names=("x1", "x2")):
    columns = {name: numeric[:, j] for j, name in enumerate(names)}
    columns.update(text)
    data, design = model_data(columns, [*columns], y)
    return naive_bayes.fit(data, config or Config()), data, design


@pytest.mark.parametrize("var_smoothing", [1e-9, 1e-3, 0.0])
def test_gaussian_matches_sklearn(rng, var_smoothing):
    numeric, _, _, y = mixed_table(rng)
    result, data, _ = fit(numeric, {}, y, Config(var_smoothing=var_smoothing))
    sk = GaussianNB(var_smoothing=var_smoothing).fit(numeric, y)
    ours = result.params.log_proba(data.X)
    np.testing.assert_allclose(ours, sk.predict_log_proba(numeric), rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.params.var, sk.var_, rtol=1e-12)
    np.testing.assert_allclose(result.params.mean, sk.theta_, rtol=1e-13)
    joint = result.params.joint_log_likelihood(data.X)
    np.testing.assert_allclose(joint, sk.predict_joint_log_proba(numeric), rtol=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 3.0])
def test_categorical_matches_sklearn(rng, alpha):
    _, codes, text, y = mixed_table(rng)
    result, data, design = fit(np.empty((len(y), 0)), text, y, Config(alpha=alpha), names=())
    assert design.names == ["g=a", "g=b", "g=c", "h=p", "h=q", "h=r", "h=s"]
    sk = CategoricalNB(alpha=alpha).fit(codes, y)
    ours = result.params.log_proba(data.X)
    np.testing.assert_allclose(ours, sk.predict_log_proba(codes), rtol=0, atol=1e-10)
    for j, name in enumerate("gh"):
        p = result.params.probabilities(name)[:-1].T  # (K, L)
        np.testing.assert_allclose(np.log(p), sk.feature_log_prob_[j], rtol=0, atol=1e-12)


def test_mixed_model_is_the_sum_of_the_two(rng):
    numeric, codes, text, y = mixed_table(rng)
    result, data, _ = fit(numeric, text, y)
    gauss, cat = GaussianNB().fit(numeric, y), CategoricalNB().fit(codes, y)
    joint = (
        gauss.predict_joint_log_proba(numeric)
        + cat.predict_joint_log_proba(codes)
        - np.log(np.bincount(y) / len(y))
    )
    log_p = joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)
    np.testing.assert_allclose(result.params.log_proba(data.X), log_p, rtol=0, atol=1e-10)
    assert result.tables["categorical"].rows[:3] == ["g=a", "g=b", "g=c"]
    assert list(result.tables["gaussian"].rows) == ["x1", "x2"]


def test_unseen_level_gets_the_smoothed_probability_of_count_zero(rng):
    numeric, _, text, y = mixed_table(rng)
    result, _, design = fit(numeric, text, y, Config(alpha=0.5))
    new = {"x1": numeric[:2, 0], "x2": numeric[:2, 1]}
    new["g"] = np.array(["zzz", "a"], dtype=object)  # 'zzz' never seen
    new["h"] = text["h"][:2]
    X, _ = design.transform(new)
    assert np.all(X[0, 2:5] == 0)
    joint = result.params.joint_log_likelihood(X)
    # the same row with the g term replaced by log(alpha / (N_c + alpha * 3))
    seen = result.params.joint_log_likelihood(X[1:2])[0]
    counts = result.params.class_count
    table = result.params.probabilities("g")
    np.testing.assert_allclose(table[-1], 0.5 / (counts + 0.5 * 3), rtol=1e-14)
    X_same = X.copy()
    X_same[0, 2:5] = X[1, 2:5]
    expected = result.params.joint_log_likelihood(X_same[:1])[0] - np.log(table[0])  # 'a'
    np.testing.assert_allclose(joint[0], expected + np.log(table[-1]), rtol=1e-13)
    assert np.all(np.isfinite(result.params.proba(X))) and np.all(np.isfinite(seen))


def test_chunked_merge_equals_one_chunk(rng):
    numeric, _, text, y = mixed_table(rng, n=301)
    whole, data, _ = fit(numeric, text, y)
    cuts = [0, 1, 50, 51, 200, 301]
    chunks = [
        ModelData(data.X[a:b], y[a:b], names=data.names, target="y")
        for a, b in itertools.pairwise(cuts)
    ]
    for c in chunks:
        c.one_hot = data.one_hot
    chunked = naive_bayes.fit_chunks(chunks, Config())
    np.testing.assert_allclose(chunked.params.mean, whole.params.mean, rtol=1e-14)
    np.testing.assert_allclose(chunked.params.var, whole.params.var, rtol=1e-12)
    assert chunked.metrics["log_likelihood"] == pytest.approx(whole.metrics["log_likelihood"])


def test_moments_are_stable_far_from_zero(rng):
    X = 1e9 + rng.normal(size=(1000, 2))  # sum of squares minus n mean^2 would lose it all
    exact = X - 1e9  # exact: the values are within a few units of 1e9
    codes = np.arange(1000) % 2
    moments = ClassMoments.zeros(2, 2, full=False)
    for start in range(0, 1000, 37):
        moments.add(X[start : start + 37], codes[start : start + 37])
    for k in range(2):
        np.testing.assert_allclose(moments.variance[k], exact[codes == k].var(axis=0), rtol=1e-6)
        np.testing.assert_allclose(moments.mean[k] - 1e9, exact[codes == k].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(moments.total_variance(), exact.var(axis=0), rtol=1e-6)


def test_zero_variance_without_smoothing_is_a_clear_error(rng):
    numeric, _, _, y = mixed_table(rng)
    numeric[y == 1, 1] = 7.0  # x2 constant within class 1
    with pytest.raises(FitError, match=r"Feature 'x2' has zero variance within class 1"):
        fit(numeric, {}, y, Config(var_smoothing=0.0))
    result, data, _ = fit(numeric, {}, y)  # the default smoothing handles it
    assert np.all(np.isfinite(result.params.log_proba(data.X)))
    constant = np.ones_like(numeric)
    with pytest.raises(FitError, match="Every numeric feature is constant"):
        fit(constant, {}, y)


def test_far_rows_never_give_nan(rng):
    numeric, _, _, y = mixed_table(rng)
    result, _, _ = fit(numeric, {}, y, Config(var_smoothing=0.0))
    far = np.array([[1e200, 0.0]])
    with pytest.raises(Exception, match="so far from every class"):
        result.params.proba(far)
    P = result.params.proba(np.array([[1e6, 100.0]]))  # far but representable
    assert np.all(np.isfinite(P)) and P.sum() == pytest.approx(1.0)


def test_params_round_trip_and_damage(rng):
    numeric, _, text, y = mixed_table(rng)
    result, data, _ = fit(numeric, text, y)
    d = json.loads(json.dumps(result.params.to_dict()))
    again = Params.from_dict(d, data.X.shape[1])
    np.testing.assert_array_equal(again.log_proba(data.X), result.params.log_proba(data.X))
    from mlfit.params import ParamsError

    for damage in (
        lambda d: d["gaussian"].update(columns=[0, 0]),
        lambda d: d["categorical"]["g"].update(columns=[1, 3, 4]),
        lambda d: d.update(alpha=0),
        lambda d: d["gaussian"]["var"][0].__setitem__(0, -1.0),
    ):
        bad = json.loads(json.dumps(d))
        damage(bad)
        with pytest.raises(ParamsError):
            Params.from_dict(bad, data.X.shape[1])


def test_design_round_trip_keeps_categorical():
    cols = {"c": np.array(["a", "b"], dtype=object), "d": np.array(["x", "y"], dtype=object)}
    design, _ = build_design(["c", "d"], cols, False, categorical=True)
    assert design.names == ["c=a", "c=b", "d=x", "d=y"]  # no level left out of d
    again = Design.from_dict(design.to_dict())
    assert again.categorical and again.one_hot == {"c": [0, 1], "d": [2, 3]}
    plain, _ = build_design(["c", "d"], cols, False)
    assert "categorical" not in plain.to_dict()


# --------------------------------------------------------------------------- command line


def nb_csv(write_csv, rng, n=60):
    x = rng.normal(size=n).round(3)
    colour = np.array(["red", "green", "blue"])[np.arange(n) % 3]
    label = np.where(x + (colour == "red") + rng.normal(0, 0.5, n) > 0.5, "yes", "no")
    rows = [("x", "colour", "label"), *zip(x, colour, label)]
    return write_csv(rows)


def test_cli_fit_predict_with_unseen_level(runner, write_csv, rng, tmp_path):
    path = nb_csv(write_csv, rng)
    model = str(tmp_path / "nb.model")
    result = runner.invoke(cli, ["naive-bayes", path, "-y", "label", "-o", model, "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc["categorical"]) == {"colour=blue", "colour=green", "colour=red"}
    assert doc["classes"]["no"]["count"] + doc["classes"]["yes"]["count"] == 60
    new = write_csv("x,colour\n0.1,purple\n0.1,red\n", "new.csv")
    out = runner.invoke(cli, ["predict", model, new, "--proba"])
    assert out.exit_code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "prediction,p_no,p_yes" and len(lines) == 3
    low = runner.invoke(cli, ["predict", model, new, "--threshold", "0"])
    assert low.stdout.splitlines()[1:] == ["yes", "yes"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--alpha", "0"], "--alpha"),
        (["--alpha", "nan"], "--alpha"),
        (["--var-smoothing", "-1"], "--var-smoothing"),
        (["--holdout", "1"], "--holdout"),
        (["--threshold", "1.5"], "--threshold"),
    ],
)
def test_bad_options_are_usage_errors(runner, write_csv, rng, args, message):
    path = nb_csv(write_csv, rng)
    result = runner.invoke(cli, ["naive-bayes", path, "-y", "label", *args])
    assert result.exit_code == 2 and message in result.stderr


def test_bad_data_is_exit_3(runner, write_csv):
    one_class = write_csv("x,label\n1,a\n2,a\n3,a\n")
    result = runner.invoke(cli, ["naive-bayes", one_class, "-y", "label"])
    assert result.exit_code == 3 and "single class" in result.stderr
    missing = write_csv("x,label\n1,a\n,b\n3,a\n4,b\n", "missing.csv")
    result = runner.invoke(cli, ["naive-bayes", missing, "-y", "label"])
    assert result.exit_code == 3 and "Missing values" in result.stderr


def test_zero_variance_cli_exit_1(runner, write_csv):
    path = write_csv("x,z,label\n1,5,a\n2,5,a\n3,6,b\n4,7,b\n")
    result = runner.invoke(cli, ["naive-bayes", path, "-y", "label", "--var-smoothing", "0"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Feature 'z'" in result.stderr


def test_holdout_chunked_equals_in_memory(runner, write_csv, rng):
    path = nb_csv(write_csv, rng, n=90)
    args = ["naive-bayes", path, "-y", "label", "--holdout", "0.3", "--seed", "4", "--json", "-q"]
    whole = json.loads(runner.invoke(cli, args).stdout)
    chunked = json.loads(runner.invoke(cli, [*args, "--chunk-rows", "8"]).stdout)
    assert whole["metrics"]["holdout"]["n"] == 27
    for key in ("log_likelihood", "accuracy", "log_loss"):
        assert chunked["metrics"][key] == pytest.approx(whole["metrics"][key], rel=1e-12)
    for key in ("accuracy", "log_loss", "roc_auc"):
        held = chunked["metrics"]["holdout"][key]
        assert held == pytest.approx(whole["metrics"]["holdout"][key], rel=1e-12)
    assert chunked["categorical"] == whole["categorical"]


def test_threshold_is_for_two_classes(runner, write_csv, tmp_path):
    rows = [("x", "label")] + [(i % 7 + 0.1 * i, "abc"[i % 3]) for i in range(30)]
    path, model = write_csv(rows), str(tmp_path / "m.model")
    args = ["naive-bayes", path, "-y", "label", "--threshold", "0.3", "-o", model]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0 and "--threshold is for two classes" in result.stderr
    out = runner.invoke(cli, ["predict", model, path, "--threshold", "0.2"])
    assert out.exit_code == 2 and "this model has 3" in out.stderr
