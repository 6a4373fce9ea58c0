"""logreg against scikit-learn's LogisticRegression and sklearn.metrics.

Binary and softmax fits by Newton, L-BFGS and gradient descent; --l2, --class-weight,
--multiclass, --threshold, --holdout; labels as text and numbers through the model file and
predict; and the inputs that must stop with a clear message.

scikit-learn reference: C=np.inf (this version deprecates penalty=None), solver
'newton-cholesky' with tol=1e-12: as accurate as 'lbfgs' at tol=1e-12 and 100 times faster
on five classes.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.errors import DataError, FitError
from mlfit.solvers import classes, logreg

#: Mean log-loss vs scikit-learn: measured at most 5.4e-16 relative (Newton, L-BFGS).
RTOL_LOSS = 1e-8
#: Coefficients (the log-loss is flat at the optimum, so they are less sharp): measured 1.3e-13
#: (Newton) and 1.5e-7 (L-BFGS, 5 classes); probabilities 4e-8 absolute.
RTOL_COEF = 1e-6
ATOL_PROBA = 1e-6


def assert_rel(actual, expected, rtol):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=0
    )


def labelled(rng, n=150, K=2):
    """Features of different scales and offsets; K classes (codes 0..K-1) that overlap."""
    X = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]
    if K == 2:
        y = (X @ [1.0, -0.3, 0.8] + rng.logistic(size=n) > 0.2).astype(int)
    else:
        y = rng.integers(0, K, n)
        X[:, 0] += 0.7 * y
        X[:, 2] -= 0.3 * (y == 1)
    return X, y


def sklearn_fit(X, y, C=np.inf, class_weight=None):
    return LogisticRegression(
        C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000, class_weight=class_weight
    ).fit(X, y)


def mlfit_B(params) -> np.ndarray:
    """(p + 1, K - 1) original-scale coefficients, intercept first."""
    return np.asarray(params.B, dtype=float)


def sklearn_B(sk) -> np.ndarray:
    """scikit-learn's coefficients in mlfit's parameterisation (class 0 as the reference)."""
    W = np.vstack([sk.intercept_, sk.coef_.T])  # (p + 1, K) or (p + 1, 1) for binary
    return W if W.shape[1] == 1 else W[:, 1:] - W[:, [0]]


def write_table(path, header: list[str], columns: list) -> str:
    def cell(v):
        return v if isinstance(v, str) else repr(float(v))

    lines = [",".join(header)]
    lines += [",".join(cell(c[i]) for c in columns) for i in range(len(columns[0]))]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def invoke_json(runner, args) -> dict:
    result = runner.invoke(cli, [*args, "--json", "--quiet"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def read_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------- vs scikit-learn


@pytest.mark.parametrize("method", ["newton", "lbfgs", "auto"])
@pytest.mark.parametrize("K", [2, 3, 5])
def test_matches_sklearn_unpenalised(rng, K, method):
    X, y = labelled(rng, K=K)
    res = logreg.fit(ModelData(X, y), logreg.Config(method=method))
    sk = sklearn_fit(X, y)
    assert res.convergence["converged"] and res.warnings == []
    assert res.info["method"] == ("newton" if method == "auto" else method)
    assert res.params.softmax is (K > 2)
    assert_rel(res.metrics["log_loss"], log_loss(y, sk.predict_proba(X)), RTOL_LOSS)
    np.testing.assert_allclose(res.params.proba(X), sk.predict_proba(X), atol=ATOL_PROBA, rtol=0)
    assert_rel(mlfit_B(res.params), sklearn_B(sk), RTOL_COEF)
    assert_rel(res.metrics["log_likelihood"], -len(y) * res.metrics["log_loss"], 1e-12)
    k = 4 * (K - 1)
    assert_rel(res.metrics["aic"], -2 * res.metrics["log_likelihood"] + 2 * k, 1e-12)
    assert_rel(res.metrics["bic"], -2 * res.metrics["log_likelihood"] + np.log(len(y)) * k, 1e-12)


def test_newton_standard_errors_are_inverse_information(rng):
    """Binary Newton: SEs from the inverse information on the original scale, z = b / se."""
    X, y = labelled(rng)
    res = logreg.fit(ModelData(X, y), logreg.Config(method="newton"))
    A = np.column_stack([np.ones(len(y)), X])
    p = res.params.proba(X)[:, 1]
    cov = np.linalg.inv(A.T @ (A * (p * (1 - p))[:, None]))
    table = res.coefficients
    assert_rel(table["std_error"], np.sqrt(np.diag(cov)), 1e-8)
    assert_rel(table["z"], table["estimate"] / table["std_error"], 1e-14)
    assert (
        "std_error" not in logreg.fit(ModelData(X, y), logreg.Config(method="lbfgs")).coefficients
    )


@pytest.mark.parametrize(
    "method, loss_rtol, coef_rtol, options",
    [
        ("batch", 1e-8, RTOL_COEF, {"lr": 0.5, "epochs": 2000, "tol": 1e-10}),
        ("minibatch", 1e-3, 0.1, {"lr": 0.05, "epochs": 100, "batch_size": 16, "tol": 1e-10}),
        ("sgd", 1e-3, 0.1, {"lr": 0.01, "epochs": 30, "tol": 1e-10}),
    ],
)
def test_descent_gets_close_to_sklearn(rng, method, loss_rtol, coef_rtol, options):
    """Measured: batch 2e-16 (log-loss) and 2e-10 (coefficients); minibatch 1e-4 and 0.03;
    sgd 1e-5 and 0.015."""
    X, y = labelled(rng, n=200)
    res = logreg.fit(ModelData(X, y), logreg.Config(method=method, **options))
    sk = sklearn_fit(X, y)
    expected = log_loss(y, sk.predict_proba(X))
    assert res.metrics["log_loss"] >= expected * (1 - 1e-12)  # sklearn's is the minimum
    assert_rel(res.metrics["log_loss"], expected, loss_rtol)
    assert_rel(mlfit_B(res.params), sklearn_B(sk), coef_rtol)
    assert res.convergence["criterion"]


# --------------------------------------------------------------------------- --l2


@pytest.mark.parametrize("method", ["newton", "auto", "lbfgs", "batch"])
def test_l2_binary_matches_sklearn(rng, method):
    """--l2 LAMBDA: scikit-learn with C = 1/LAMBDA, intercept unpenalised. lbfgs and batch
    descend on standardized features, where the original-scale penalty is l2 / scale^2 (a
    penalty of l2 * scale^2 there was off by 31% in the coefficients)."""
    X, y = labelled(rng, n=200)
    lam = 2.0
    res = logreg.fit(
        ModelData(X, y), logreg.Config(method=method, l2=lam, lr=0.5, epochs=5000, tol=1e-12)
    )
    sk = sklearn_fit(X, y, C=1 / lam)
    assert_rel(res.metrics["log_loss"], log_loss(y, sk.predict_proba(X)), RTOL_LOSS)
    assert_rel(mlfit_B(res.params), sklearn_B(sk), RTOL_COEF)
    assert res.info["l2"] == lam
    assert "std_error" not in res.coefficients


def reference_coded_penalised(X, y, K, lam):
    """argmin of -loglik + lam/2 ||B[1:]||^2 with class 0's coefficients fixed at 0 (the
    objective the README documents), by scipy's BFGS; (p + 1, K - 1)."""
    n, p = X.shape

    def objective(b):
        B = b.reshape(p + 1, K - 1)
        eta = np.column_stack([np.zeros(n), B[0] + X @ B[1:]])
        P = np.exp(eta - logsumexp(eta, axis=1)[:, None])
        Y = np.eye(K)[y]
        value = -np.sum(eta[np.arange(n), y] - logsumexp(eta, axis=1)) + 0.5 * lam * np.sum(
            B[1:] ** 2
        )
        G = np.vstack([np.ones(n), X.T]) @ (P - Y)[:, 1:]
        G[1:] += lam * B[1:]
        return value, G.ravel()

    fit = minimize(
        objective,
        np.zeros((p + 1) * (K - 1)),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-10, "maxiter": 10000},
    )
    return fit.x.reshape(p + 1, K - 1)


@pytest.mark.parametrize(
    "method",
    [
        "newton",
        "lbfgs",
    ],
)
def test_l2_softmax_solves_documented_objective(rng, method):
    X, y = labelled(rng, K=3)
    lam = 2.0
    res = logreg.fit(ModelData(X, y), logreg.Config(method=method, l2=lam))
    assert_rel(mlfit_B(res.params), reference_coded_penalised(X, y, 3, lam), 1e-6)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("method", ["newton", "lbfgs"])
@pytest.mark.parametrize("K", [2, 3])
def test_class_weight_balanced_matches_sklearn(rng, K, method):
    X, y = labelled(rng, n=160, K=K)
    if K == 2:
        assert abs(np.mean(y) - 0.5) > 0.1  # unbalanced, so the weights matter
    else:
        keep = (y != 2) | (np.arange(len(y)) % 3 == 0)  # thin out class 2
        X, y = X[keep], y[keep]
    res = logreg.fit(ModelData(X, y), logreg.Config(method=method, class_weight="balanced"))
    sk = sklearn_fit(X, y, class_weight="balanced")
    w = len(y) / (K * np.bincount(y))[y]
    weighted = log_loss(y, res.params.proba(X), sample_weight=w)
    assert_rel(weighted, log_loss(y, sk.predict_proba(X), sample_weight=w), RTOL_LOSS)
    assert_rel(mlfit_B(res.params), sklearn_B(sk), RTOL_COEF)
    unweighted = logreg.fit(ModelData(X, y), logreg.Config(method=method))
    assert np.max(np.abs(mlfit_B(unweighted.params) - mlfit_B(res.params))) > 0.01
    assert res.info["class_weight"] == "balanced"


@pytest.mark.parametrize("method", ["newton", "lbfgs"])
def test_multiclass_flag_forces_softmax_for_two_classes(rng, method):
    X, y = labelled(rng)
    binary = logreg.fit(ModelData(X, y), logreg.Config(method=method))
    softmax = logreg.fit(ModelData(X, y), logreg.Config(method=method, multiclass=True))
    assert softmax.params.softmax is True and binary.params.softmax is False
    assert softmax.info["model"] == "softmax" and binary.info["model"] == "logistic"
    assert_rel(softmax.metrics["log_loss"], binary.metrics["log_loss"], 1e-12)
    assert_rel(mlfit_B(softmax.params), mlfit_B(binary.params), RTOL_COEF)  # L-BFGS: 6e-8
    assert softmax.coefficients.rows == ["intercept[1]", "x1[1]", "x2[1]", "x3[1]"]


def test_threshold_changes_binary_decisions(rng):
    X, y = labelled(rng)
    default = logreg.fit(ModelData(X, y), logreg.Config())
    strict = logreg.fit(ModelData(X, y), logreg.Config(threshold=0.8))
    p1 = strict.params.proba(X)[:, 1]
    for res, cut in [(default, 0.5), (strict, 0.8)]:
        matrix = np.array(res.metrics["confusion_matrix"]["rows_true_columns_predicted"])
        assert matrix[:, 1].sum() == np.sum(p1 >= cut)
        assert res.metrics["accuracy"] == accuracy_score(y, (p1 >= cut).astype(int))
    assert np.sum(p1 >= 0.8) < np.sum(p1 >= 0.5)
    np.testing.assert_array_equal(
        logreg.predict(strict.params, ModelData(X))["prediction"], (p1 >= 0.8).astype(int)
    )
    np.testing.assert_array_equal(
        logreg.predict(strict.params, ModelData(X), threshold=0.3)["prediction"],
        (p1 >= 0.3).astype(int),
    )


def test_fit_metrics_match_sklearn_metrics(rng):
    X, y = labelled(rng, K=3)
    res = logreg.fit(ModelData(X, y), logreg.Config())
    P = res.params.proba(X)
    pred = np.argmax(P, axis=1)
    m = res.metrics
    assert m["accuracy"] == accuracy_score(y, pred)
    assert (
        m["confusion_matrix"]["rows_true_columns_predicted"] == confusion_matrix(y, pred).tolist()
    )
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, zero_division=0)
    for k in range(3):
        row = m["per_class"][str(k)]
        np.testing.assert_allclose(
            [row["precision"], row["recall"], row["f1"]],
            [precision[k], recall[k], f1[k]],
            rtol=1e-14,
        )
        assert row["support"] == support[k]
    assert "roc_auc" not in m

    Xb, yb = labelled(rng)
    res = logreg.fit(ModelData(Xb, yb), logreg.Config())
    assert_rel(res.metrics["roc_auc"], roc_auc_score(yb, res.params.proba(Xb)[:, 1]), 1e-14)


# --------------------------------------------------------------------------- holdout


def test_holdout_split_is_stratified_and_seeded():
    codes = np.repeat([0, 1, 2], [40, 28, 52])
    np.random.default_rng(1).shuffle(codes)
    train, test = classes.holdout_split(codes, 0.25, seed=7)
    assert [int(np.sum(codes[test] == k)) for k in range(3)] == [10, 7, 13]
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(len(codes)))
    again = classes.holdout_split(codes, 0.25, seed=7)
    np.testing.assert_array_equal(again[1], test)
    other = classes.holdout_split(codes, 0.25, seed=8)
    assert not np.array_equal(other[1], test)
    assert [int(np.sum(codes[other[1]] == k)) for k in range(3)] == [10, 7, 13]


def flowers_like(rng, counts=(40, 28, 52)):
    """Three text classes with the given counts, two informative features."""
    species = np.repeat(["setosa", "versicolor", "virginica"], counts)
    rng.shuffle(species)
    code = np.searchsorted(["setosa", "versicolor", "virginica"], species)
    length = rng.normal(size=len(code)) + 1.2 * code
    width = rng.normal(size=len(code)) - 0.6 * (code == 1)
    return length, width, species


def test_holdout_cli(rng, runner, tmp_path):
    length, width, species = flowers_like(rng)
    path = write_table(
        tmp_path / "f.csv", ["length", "width", "species"], [length, width, list(species)]
    )
    args = ["logreg", path, "-y", "species", "--holdout", "0.25", "--seed", "3"]
    out = invoke_json(runner, args)
    holdout = out["metrics"]["holdout"]
    support = {k: v["support"] for k, v in holdout["per_class"].items()}
    assert support == {"setosa": 10, "versicolor": 7, "virginica": 13}
    assert holdout["n"] == 30 and out["metrics"]["n"] == 90
    assert out["solver"]["holdout"] == 0.25 and out["solver"]["seed"] == 3

    # the same metrics as a fit on the training rows, evaluated on the held-out rows
    codes = np.searchsorted(["setosa", "versicolor", "virginica"], species)
    train, test = classes.holdout_split(codes, 0.25, seed=3)
    X = np.column_stack([length, width])
    res = logreg.fit(ModelData(X[train], species[train]), logreg.Config())
    P = res.params.proba(X[test])
    assert_rel(holdout["log_loss"], log_loss(codes[test], P, labels=[0, 1, 2]), 1e-10)
    assert (
        holdout["confusion_matrix"]["rows_true_columns_predicted"]
        == confusion_matrix(codes[test], np.argmax(P, axis=1)).tolist()
    )

    again = invoke_json(runner, args)
    assert again["metrics"] == out["metrics"]
    other = invoke_json(runner, [*args[:-1], "4"])
    assert other["metrics"]["holdout"]["log_loss"] != holdout["log_loss"]


# --------------------------------------------------------------------------- labels, predict


@pytest.mark.parametrize(
    "labels, written",
    [
        (["no", "yes"], ["no", "yes"]),
        ([0, 1], ["0", "1"]),
        ([1.5, 7.0], ["1.5", "7"]),
        (["b", "a", "c"], ["a", "b", "c"]),  # sorted: 'a' is the reference
        ([3, 1, 2], ["1", "2", "3"]),
    ],
)
def test_labels_kept_in_model_file_and_predicted(rng, runner, tmp_path, labels, written):
    K = len(labels)
    X, codes = labelled(rng, n=120, K=K)
    values = [labels[c] for c in codes]
    path = write_table(tmp_path / "l.csv", ["a", "b", "c", "y"], [*X.T, [str(v) for v in values]])
    model = tmp_path / "l.model"
    out = invoke_json(runner, ["logreg", path, "-y", "y", "-o", str(model)])
    classes = json.loads(model.read_text())["params"]["classes"]
    order = sorted(labels)
    assert classes == order  # numbers stay numbers, text stays text
    assert out["solver"]["classes"] == written
    assert out["metrics"]["confusion_matrix"]["labels"] == written

    result = runner.invoke(cli, ["predict", str(model), path, "--proba"])
    assert result.exit_code == 0, result.stderr
    rows = read_rows(result.stdout)
    assert list(rows[0]) == ["prediction", *[f"p_{w}" for w in written]]
    P = np.array([[float(r[f"p_{w}"]) for w in written] for r in rows])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    sorted_codes = np.array([order.index(v) for v in values])
    sk = sklearn_fit(X, sorted_codes)
    np.testing.assert_allclose(P, sk.predict_proba(X), atol=ATOL_PROBA, rtol=0)
    predicted = [r["prediction"] for r in rows]
    assert set(predicted) <= set(written)
    assert predicted == [written[k] for k in np.argmax(P, axis=1)]


def test_predict_threshold_cli(rng, runner, tmp_path):
    X, codes = labelled(rng)
    y = np.array(["no", "yes"])[codes]
    path = write_table(tmp_path / "t.csv", ["a", "b", "c", "y"], [*X.T, list(y)])
    model = tmp_path / "t.model"
    fitted = invoke_json(
        runner, ["logreg", path, "-y", "y", "--threshold", "0.7", "-o", str(model)]
    )
    assert json.loads(model.read_text())["params"]["threshold"] == 0.7
    p_yes = {}
    for args in ([], ["--threshold", "0.2"]):
        result = runner.invoke(cli, ["predict", str(model), path, "--proba", *args])
        assert result.exit_code == 0, result.stderr
        rows = read_rows(result.stdout)
        p_yes = np.array([float(r["p_yes"]) for r in rows])
        cut = 0.7 if not args else 0.2
        assert [r["prediction"] for r in rows] == ["yes" if p >= cut else "no" for p in p_yes]
    matrix = np.array(fitted["metrics"]["confusion_matrix"]["rows_true_columns_predicted"])
    assert matrix[:, 1].sum() == np.sum(p_yes >= 0.7)


def test_multiclass_cli_names_parameters_by_class(rng, runner, tmp_path):
    X, codes = labelled(rng)
    y = np.array(["no", "yes"])[codes]
    path = write_table(tmp_path / "m.csv", ["a", "b", "c", "y"], [*X.T, list(y)])
    binary = invoke_json(runner, ["logreg", path, "-y", "y"])
    softmax = invoke_json(runner, ["logreg", path, "-y", "y", "--multiclass"])
    assert list(binary["coefficients"]) == ["intercept", "a", "b", "c"]
    assert list(softmax["coefficients"]) == ["intercept[yes]", "a[yes]", "b[yes]", "c[yes]"]
    assert softmax["solver"]["reference_class"] == "no"
    assert_rel(softmax["metrics"]["log_loss"], binary["metrics"]["log_loss"], 1e-12)
    assert_rel(
        [c["estimate"] for c in softmax["coefficients"].values()],
        [c["estimate"] for c in binary["coefficients"].values()],
        1e-8,
    )


# --------------------------------------------------------------------------- bad input


def test_single_class_exit_3(rng, runner, assert_error, tmp_path):
    path = write_table(tmp_path / "one.csv", ["x", "y"], [rng.normal(size=20), ["yes"] * 20])
    assert_error(runner.invoke(cli, ["logreg", path, "-y", "y"]), 3, "single class", "'yes'")


def test_stray_label_exit_3(rng, runner, assert_error, tmp_path):
    y = list(rng.choice(["yes", "no"], size=30))
    y[6] = "yse"
    path = write_table(tmp_path / "stray.csv", ["x", "y"], [rng.normal(size=30), y])
    message = assert_error(
        runner.invoke(cli, ["logreg", path, "-y", "y"]), 3, "'yse'", "single row"
    )
    assert "row 7" in message


def test_single_row_class_data_error():
    with pytest.raises(DataError, match="Class 3 of target 'y' has a single row"):
        classes.encode_labels(np.array([1, 2, 1, 2, 3, 1], dtype=object))


def test_separation_exit_1(rng, runner, assert_error, tmp_path):
    dose = np.arange(30.0)
    y = np.where(dose >= 15, "cured", "ill")
    path = write_table(
        tmp_path / "s.csv", ["noise", "dose", "y"], [rng.normal(size=30), dose, list(y)]
    )
    assert_error(runner.invoke(cli, ["logreg", path, "-y", "y"]), 1, "separation", "dose")


@pytest.mark.parametrize("ties", [0, 10])
def test_separation_by_a_combination_fails(rng, ties):
    """x1 + x2 > 0 separates the classes (neither alone); with `ties` rows on the boundary the
    separation is quasi-complete. (With ties the message is the singular-Hessian one that says
    the column may 'separate the classes'; see test_newton's strict xfail.)"""
    n = 80
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    x2[:ties] = -x1[:ties]
    y = (x1 + x2 > 0).astype(int)
    y[:ties] = np.arange(ties) % 2
    with pytest.raises(FitError, match="(?i)separat"):
        logreg.fit(ModelData(np.column_stack([x1, x2]), y), logreg.Config())


def test_same_command_same_json(rng, runner, tmp_path):
    length, width, species = flowers_like(rng)
    path = write_table(
        tmp_path / "d.csv", ["length", "width", "species"], [length, width, list(species)]
    )
    for extra in (
        ["--holdout", "0.3", "--seed", "5"],
        ["--method", "sgd", "--lr", "0.05", "--epochs", "5", "--seed", "2"],
    ):
        first = invoke_json(runner, ["logreg", path, "-y", "species", *extra])
        second = invoke_json(runner, ["logreg", path, "-y", "species", *extra])
        assert first.pop("timing").keys() == second.pop("timing").keys()
        assert first == second
