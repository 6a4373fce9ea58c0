"""gda against scikit-learn's LinearDiscriminantAnalysis and QuadraticDiscriminantAnalysis
(maximum-likelihood covariances, priors from the data), against closed forms, and on the
singular covariances scikit-learn's QDA gets wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis as LDA
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis as QDA

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.params import ParamsError
from mlfit.solvers import gda
from mlfit.solvers.classes import class_codes, encode_labels
from mlfit.solvers.gda_covariance import ledoit_wolf
from mlfit.solvers.moments import ClassMoments

TOL = 1e-8


def classes_data(rng, n=300, p=4, K=3, shift=1.0):
    """Correlated features on different scales, class means apart, unequal class sizes."""
    y = rng.choice(K, size=n, p=np.arange(1, K + 1) / (K * (K + 1) / 2))
    A = rng.normal(size=(p, p)) + 2 * np.eye(p)
    X = rng.normal(size=(n, p)) @ A * np.geomspace(0.1, 50, p) + shift * y[:, None]
    return X, y


def chunks_of(X, y, size, names=None):
    return [
        ModelData(X[i : i + size], y[i : i + size], names=names) for i in range(0, len(y), size)
    ]


def covariance(params):
    """The covariance(s) in the features' units (the params are of X / params.scale)."""
    return params.covariance * np.outer(params.scale, params.scale)


def assert_agrees(params, model, X):
    np.testing.assert_allclose(params.proba(X), model.predict_proba(X), rtol=0, atol=TOL)
    theirs = model.predict_log_proba(X)  # clipped at log(tiny) where the probability is 0
    kept = theirs > -700
    np.testing.assert_allclose(params.log_proba(X)[kept], theirs[kept], rtol=TOL, atol=TOL)
    assert np.array_equal(
        np.array(params.classes)[params.decide(params.proba(X))], model.predict(X)
    )


# --------------------------------------------------------------------------- scikit-learn


@pytest.mark.parametrize("K", [2, 3, 5])
@pytest.mark.parametrize("solver", ["lsqr", "svd"])
def test_shared_covariance_equals_lda(rng, K, solver):
    X, y = classes_data(rng, K=K)
    params = gda.fit(ModelData(X, y)).params
    assert_agrees(params, LDA(solver=solver).fit(X, y), X)
    X_new = X[:50] * 1.7 - 3.0  # also away from the training rows
    assert_agrees(params, LDA(solver=solver).fit(X, y), X_new)


@pytest.mark.parametrize("K", [2, 3, 5])
def test_per_class_covariance_equals_qda(rng, K):
    X, y = classes_data(rng, n=400, K=K)
    params = gda.fit(ModelData(X, y), gda.Config(per_class_covariance=True)).params
    model = QDA(store_covariance=True).fit(X, y)
    np.testing.assert_allclose(covariance(params), model.covariance_, rtol=1e-10)
    assert_agrees(params, model, X)


def test_ledoit_wolf_shrinkage_equals_scikit_learn(rng):
    X, y = classes_data(rng, n=120, p=6)
    for per_class, model in (
        (False, LDA(solver="lsqr", shrinkage="auto")),
        (True, QDA(solver="eigen", shrinkage="auto")),
    ):
        result = gda.fit(ModelData(X, y), gda.Config(per_class, shrinkage="auto"))
        alphas = [float(a) for a in str(result.info["shrinkage"]).split(", ")]
        assert all(0 < a < 1 for a in alphas), alphas  # a real test of the intensity
        assert_agrees(result.params, model.fit(X, y), X)


def test_ledoit_wolf_intensity_equals_scikit_learn_on_one_class(rng):
    from sklearn.covariance import ledoit_wolf_shrinkage

    Z = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5))
    Z = (Z - Z.mean(0)) / Z.std(0)
    R = Z.T @ Z / len(Z)
    fourth = float(np.sum(np.einsum("ij,ij->i", Z, Z) ** 2))
    assert ledoit_wolf(R, fourth, len(Z)) == pytest.approx(ledoit_wolf_shrinkage(Z), rel=1e-12)


def test_numeric_shrinkage_acts_on_standardized_class_covariances(rng):
    X, y = classes_data(rng, n=200, p=3)
    alpha = 0.3
    result = gda.fit(ModelData(X, y), gda.Config(shrinkage=alpha))
    expected = np.zeros((3, 3))
    for k in range(3):
        C = np.cov(X[y == k].T, bias=True)
        s = np.sqrt(np.diag(C))
        R = C / np.outer(s, s)
        shrunk = (1 - alpha) * R + alpha * np.eye(3)  # mean of R's diagonal is 1
        expected += np.mean(y == k) * shrunk * np.outer(s, s)
    np.testing.assert_allclose(covariance(result.params), expected, rtol=1e-12)
    # unit-free: rescaling a feature rescales the fit, the posteriors stay the same
    scaled = X * [1e-3, 1.0, 1e4]
    other = gda.fit(ModelData(scaled, y), gda.Config(shrinkage=alpha)).params
    np.testing.assert_allclose(other.proba(scaled), result.params.proba(X), atol=1e-12)


def test_log_likelihood_and_parameter_count(rng):
    from scipy.stats import multivariate_normal

    X, y = classes_data(rng, n=150, p=3)
    for per_class in (False, True):
        result = gda.fit(ModelData(X, y), gda.Config(per_class_covariance=per_class))
        P = result.params
        C = covariance(P)
        cov = [C[k] if per_class else C for k in range(3)]
        means = P.means * P.scale
        ll = sum(
            np.log(P.priors[k]) + multivariate_normal(means[k], cov[k]).logpdf(x)
            for x, k in zip(X, y)
        )
        assert result.metrics["log_likelihood"] == pytest.approx(ll, rel=1e-10)
        assert result.n_parameters == 2 + 3 * 3 + 6 * (3 if per_class else 1)
        assert result.metrics["aic"] == pytest.approx(-2 * ll + 2 * result.n_parameters)


# --------------------------------------------------------------------------- sums over rows


def test_moments_merge_is_stable_far_from_zero(rng):
    X = 1e9 + rng.normal(size=(1000, 3))
    codes = rng.integers(0, 2, 1000)
    m = ClassMoments.zeros(2, 3, full=True)
    for i in range(0, 1000, 37):
        m.add(X[i : i + 37], codes[i : i + 37])
    for k in range(2):
        Xk = X[codes == k]
        np.testing.assert_allclose(m.mean[k], Xk.mean(0), rtol=1e-15)
        exact = np.cov((Xk - 1e9).T, bias=True) * len(Xk)  # the subtraction is exact
        # values near 1e9 hold their unit deviations to about 1e-7 (the ulp), so chunk means
        # are that far off; the naive sum(x x') - n m m' would be off by n 1e18 eps = 1e5
        assert np.max(np.abs(m.scatter[k] - exact)) < 1e-6 * np.max(np.diag(exact))


@pytest.mark.parametrize("config", [gda.Config(), gda.Config(True, "auto", holdout=0.3)])
def test_chunks_equal_in_memory(rng, config):
    X, y = classes_data(rng, n=250)
    labels = np.array(["a", "b", "c"], dtype=object)[y]
    whole = gda.fit(ModelData(X, labels), config)
    chunked = gda.fit_chunks(chunks_of(X, labels, 17), config)
    np.testing.assert_allclose(chunked.params.covariance, whole.params.covariance, rtol=1e-12)
    np.testing.assert_allclose(chunked.params.means, whole.params.means, rtol=1e-13)
    assert chunked.metrics["accuracy"] == whole.metrics["accuracy"]
    assert chunked.metrics["log_likelihood"] == pytest.approx(whole.metrics["log_likelihood"])
    assert whole.info["shrinkage"] == pytest.approx(chunked.info["shrinkage"]) or isinstance(
        whole.info["shrinkage"], str
    )


def test_diagonal_moments_are_the_diagonal_of_the_full_ones(rng):
    X, codes = 1e3 + rng.normal(size=(500, 3)), rng.integers(0, 3, 500)
    full, diagonal = ClassMoments.zeros(3, 3, full=True), ClassMoments.zeros(3, 3, full=False)
    for i in range(0, 500, 41):
        full.add(X[i : i + 41], codes[i : i + 41])
        diagonal.add(X[i : i + 41], codes[i : i + 41])
    np.testing.assert_array_equal(diagonal.count, full.count)
    np.testing.assert_array_equal(diagonal.mean, full.mean)
    np.testing.assert_allclose(diagonal.variance, full.variance, rtol=1e-13)
    np.testing.assert_allclose(diagonal.total_variance(), full.total_variance(), rtol=1e-13)
    np.testing.assert_allclose(full.total_variance(), X.var(axis=0), rtol=1e-12)


def test_class_codes_over_chunks_match_one_column():
    y = np.array([3.0, 1.0, 2.0, 1.0, 3.0, 2.0, 2.5, 2.5])
    codes, labels = class_codes(chunks_of(np.zeros((8, 1)), y, 3))
    assert labels == [1, 2, 2.5, 3] and codes.tolist() == [3, 0, 1, 0, 3, 1, 2, 2]
    for column in (y, y.astype(object), np.array(list("cabacbdd"), dtype=object)):
        chunked = class_codes(chunks_of(np.zeros((8, 1)), column, 3))
        whole = encode_labels(column)
        assert chunked[1] == whole[1] and chunked[0].tolist() == whole[0].tolist()


@pytest.mark.parametrize("per_class", [False, True])
def test_features_near_the_ends_of_float64(rng, per_class):
    """Squares of 1e-200 underflow and of 1e200 overflow: the fit works on features divided
    by a power of two, so the posteriors are those of the unscaled data."""
    X, y = classes_data(rng, n=200, p=3)
    config = gda.Config(per_class_covariance=per_class)
    plain = gda.fit(ModelData(X, y), config)
    for factor in ([1e-300, 1, 1e200], [1e300, 1e-160, 1]):
        scaled = gda.fit(ModelData(X * factor, y), config)
        assert not scaled.warnings
        np.testing.assert_allclose(
            scaled.params.proba(X * factor), plain.params.proba(X), atol=1e-13
        )
        shift = -len(y) * np.sum(np.log(factor))  # the density of the scaled features
        assert scaled.metrics["log_likelihood"] == pytest.approx(
            plain.metrics["log_likelihood"] + shift, rel=1e-12
        )


def test_predictions_do_not_depend_on_the_block(rng):
    X, y = classes_data(rng, n=300)
    params = gda.fit(ModelData(X, y), gda.Config(per_class_covariance=True)).params
    whole = params.log_proba(X)
    pieces = np.vstack([params.log_proba(X[i : i + 7]) for i in range(0, 300, 7)])
    assert np.array_equal(whole, pieces)
    # the fit's metrics use matrix products: the same to rounding
    np.testing.assert_allclose(params.log_proba(X, reproducible=False), whole, rtol=1e-10)


# --------------------------------------------------------------------------- singular covariances


def test_constant_feature_within_a_class(rng):
    X, y = classes_data(rng, n=300)
    X[y == 1, 2] = 4.25  # scikit-learn's QDA: "not full rank", then a division by zero
    result = gda.fit(ModelData(X, y, names=["a", "b", "c", "d"]), gda.Config(True))
    (warning,) = result.warnings
    assert "'c' is constant within class 1" in warning and "Ledoit-Wolf" in warning
    P = result.params.proba(X)
    assert np.all(np.isfinite(P)) and result.metrics["accuracy"] > 0.6
    assert np.mean(result.params.decide(P)[y == 1] == 1) > 0.9  # the class is still found


def test_more_features_than_rows_in_a_class(rng):
    X = rng.normal(size=(60, 30))
    y = np.r_[np.zeros(48, int), np.ones(12, int)]
    X[y == 1] += 0.8
    result = gda.fit(ModelData(X, y), gda.Config(per_class_covariance=True))
    (warning,) = result.warnings  # class 0 has 48 rows: not singular
    assert "class 1 has 12 rows for 30 varying features" in warning
    assert np.all(np.isfinite(result.params.proba(X)))
    assert np.isfinite(result.metrics["log_likelihood"])
    assert not gda.fit(ModelData(X, y)).warnings  # shared: 58 degrees of freedom
    wide = gda.fit(ModelData(X[:25], y[:25] * 0 + (np.arange(25) % 2)))
    assert "25 rows in 2 classes leave 23 degrees of freedom for 30" in wide.warnings[0]
    assert np.all(np.isfinite(wide.params.proba(X)))


def test_exact_collinearity_names_the_features(rng):
    X, y = classes_data(rng, n=200)
    X = np.column_stack([X, 2 * X[:, 0] - X[:, 1]])
    names = ["a", "b", "c", "d", "e"]
    for per_class in (False, True):
        result = gda.fit(ModelData(X, y, names=names), gda.Config(per_class))
        assert result.warnings and all("'a', 'b' and 'e'" in w for w in result.warnings)
        assert np.all(np.isfinite(result.params.proba(X)))
    X[y == 1, 2] = 0.5  # and a constant: both causes are named
    result = gda.fit(ModelData(X, y, names=names), gda.Config(True))
    warning = next(w for w in result.warnings if "class 1" in w)
    assert "'c' is constant within class 1; 'a', 'b' and 'e' are (nearly) collinear" in warning
    # an explicit regularisation is used as given, without a warning
    assert not gda.fit(ModelData(X, y, names=names), gda.Config(reg_covar=1e-4)).warnings


def test_constant_feature_cancels_out(rng):
    X, y = classes_data(rng, n=200)
    with_constant = np.column_stack([X, np.full(200, 7.5)])
    result = gda.fit(ModelData(with_constant, y), gda.Config(True))
    assert len(result.warnings) == 1 and "constant in the training rows" in result.warnings[0]
    plain = gda.fit(ModelData(X, y), gda.Config(True)).params
    np.testing.assert_allclose(result.params.proba(with_constant), plain.proba(X), atol=1e-13)


def test_a_class_of_identical_rows_gets_a_ridge(rng):
    X, y = classes_data(rng, n=200)
    X[y == 2] = X[np.flatnonzero(y == 2)[0]]
    result = gda.fit(ModelData(X, y), gda.Config(True))
    assert "variance added to the diagonal" in result.warnings[0]
    assert result.params.decide(result.params.proba(X[y == 2])).tolist() == [2] * np.sum(y == 2)


def test_damaged_covariance_is_refused(rng):
    X, y = classes_data(rng, n=100, p=2)
    d = gda.fit(ModelData(X, y)).params.to_dict()
    for cov, words in (
        ([[1.0, 2.0], [2.0, 1.0]], "positive definite"),
        ([[1.0, 0.5], [0.4, 1.0]], "symmetric"),
    ):
        with pytest.raises(ParamsError, match=words):
            gda.Params.from_dict({**d, "covariance": cov}, 2)


# --------------------------------------------------------------------------- command line


def write_table(tmp_path, X, y, name="train.csv"):
    path = tmp_path / name
    header = ",".join([f"x{j + 1}" for j in range(X.shape[1])] + ["label"])
    rows = [",".join([*(repr(float(v)) for v in x), str(c)]) for x, c in zip(X, y)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return str(path)


def test_cli_fit_save_predict_proba(runner, rng, tmp_path):
    X, y = classes_data(rng, n=200, p=3)
    labels = np.array(["low", "mid", "top"])[y]
    path = write_table(tmp_path, X, labels)
    model = tmp_path / "m.json"
    fit = runner.invoke(cli, ["gda", path, "-y", "label", "--per-class-covariance", "-o", model])
    assert fit.exit_code == 0, fit.stderr
    assert "covariance[mid]" in fit.stdout and "log-likelihood" in fit.stdout
    out = runner.invoke(cli, ["predict", str(model), path, "--proba", "--json"])
    assert out.exit_code == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    P = np.array([[r[f"p_{c}"] for c in ("low", "mid", "top")] for r in records])
    qda = QDA().fit(X, labels)
    np.testing.assert_allclose(P, qda.predict_proba(X), atol=TOL)
    assert [r["prediction"] for r in records] == qda.predict(X).tolist()


def test_cli_threshold_for_two_classes(runner, rng, tmp_path):
    X, y = classes_data(rng, n=150, p=2, K=2)
    path = write_table(tmp_path, X, y)
    model = tmp_path / "m.json"
    assert runner.invoke(cli, ["gda", path, "-y", "label", "-q", "-o", model]).exit_code == 0
    p1 = LDA().fit(X, y).predict_proba(X)[:, 1]
    for threshold in ("0.2", "0.9"):
        out = runner.invoke(cli, ["predict", str(model), path, "--threshold", threshold])
        predicted = np.array([int(line) for line in out.stdout.splitlines()[1:]])
        assert np.array_equal(predicted, (p1 >= float(threshold)).astype(int))


def test_cli_threshold_needs_two_classes(runner, rng, tmp_path, assert_error):
    X, y = classes_data(rng, n=90, p=2)
    path = write_table(tmp_path, X, y)
    model = tmp_path / "m.json"
    fit = runner.invoke(cli, ["gda", path, "-y", "label", "--threshold", "0.3", "-o", model])
    assert fit.exit_code == 0 and "--threshold is for two classes" in fit.stderr
    out = runner.invoke(cli, ["predict", str(model), path, "--threshold", "0.3"])
    assert_error(out, 2, "--threshold", "two classes")


def test_cli_streamed_plot_with_holdout(runner, rng, tmp_path):
    """More rows than the plot sample, in chunks: the held-out rows are told apart."""
    X, y = classes_data(rng, n=10_500, p=2, K=2)
    path = write_table(tmp_path, X.round(4), y)
    figure = tmp_path / "f.png"
    args = ["gda", path, "-y", "label", "--holdout", "0.2", "--json", "-q"]
    whole = json.loads(runner.invoke(cli, args).stdout)
    result = runner.invoke(cli, [*args, "--chunk-rows", "1000", "--plot", str(figure)])
    assert result.exit_code == 0, result.stderr
    chunked = json.loads(result.stdout)
    assert chunked["metrics"]["holdout"]["accuracy"] == whole["metrics"]["holdout"]["accuracy"]
    assert figure.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--shrinkage", "1.5"], 2, ["--shrinkage", "between 0 and 1"]),
        (["--shrinkage", "lw"], 2, ["--shrinkage", "auto"]),
        (["--reg-covar", "-1"], 2, ["--reg-covar"]),
        (["--reg-covar", "nan"], 2, ["--reg-covar"]),
        (["--holdout", "0.5"], 3, ["--holdout", "fewer than two training rows"]),
    ],
)
def test_cli_bad_input(runner, tmp_path, assert_error, args, code, words):
    X = np.arange(12.0).reshape(6, 2) ** 1.5
    path = write_table(tmp_path, X, ["a", "a", "b", "b", "b", "b"])
    result = runner.invoke(cli, ["gda", path, "-y", "label", *args])
    if code == 2:  # click's usage message
        assert result.exit_code == 2 and all(w in result.stderr for w in words), result.stderr
    else:
        assert_error(result, code, *words)


@pytest.mark.parametrize(
    ("labels", "words"),
    [(["a", "a", "b", "b", "c"], ["'c'", "single row"]), (["a"] * 5, ["single class"])],
)
def test_cli_bad_labels_are_a_data_error(runner, tmp_path, assert_error, labels, words):
    X = np.arange(10.0).reshape(5, 2) ** 1.5
    path = write_table(tmp_path, X, labels)
    for chunked in ([], ["--chunk-rows", "2"]):
        result = runner.invoke(cli, ["gda", path, "-y", "label", *chunked])
        assert_error(result, 3, *words)


def test_a_row_beyond_float64_from_every_class_is_a_data_error(rng):
    from mlfit.errors import DataError

    X, y = classes_data(rng, n=100, p=2)
    params = gda.fit(ModelData(X, y), gda.Config(per_class_covariance=True)).params
    with pytest.raises(DataError, match="overflow"):
        params.proba(np.array([[1e300, -1e300]]))
    shared = gda.fit(ModelData(X, y)).params  # linear scores stay finite
    assert np.all(np.isfinite(shared.proba(np.array([[1e300, -1e300]]))))
