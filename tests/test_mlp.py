"""mlfit mlp against independent references: backpropagation against central differences, the
loss definitions against least squares, scikit-learn's log_loss and LogisticRegression, XOR, a
smooth curve, digits against sklearn's MLPClassifier; early stopping, save/load/predict,
determinism, bad input and options, task detection."""

from __future__ import annotations

import io
import json
import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, log_softmax
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.model_io import read_model
from mlfit.solvers import mlp
from mlfit.solvers.network import ACTIVATIONS, Network, check_gradient

# --------------------------------------------------------------------------- helpers


def write_table(write_csv, frame: pd.DataFrame, name: str = "data.csv") -> str:
    """A CSV whose numbers read back bit for bit."""
    return write_csv(frame.to_csv(index=False, float_format="%.17g"), name)


def table(X: np.ndarray, y) -> pd.DataFrame:
    frame = pd.DataFrame(X, columns=[f"x{j + 1}" for j in range(X.shape[1])])
    frame["y"] = y
    return frame


@pytest.fixture
def fit_json(runner, strict_json):
    """fit_json(*args) -> the JSON document of a successful `mlfit mlp ... --json`."""

    def run(*args):
        result = runner.invoke(cli, ["mlp", *map(str, args), "--json"])
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return strict_json(result.stdout)

    return run


def jittered_net(sizes, activation, classify, seed=1) -> Network:
    """A float64 network with biases moved off 0: with zero biases a relu pre-activation can
    sit exactly on the kink, where no difference quotient is the derivative."""
    rng = np.random.default_rng(seed)
    net = Network.initialise(sizes, activation, classify, rng, np.float64)
    for b in net.biases:
        b += 0.1 * rng.standard_normal(b.shape)
    return net


def small_problem(classify: bool, rows: int = 7, p: int = 4, seed: int = 2):
    """X (rows, p); T one-hot over 3 classes (every class present) or (rows, 1) numbers."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, p))
    if classify:
        codes = np.arange(rows) % 3
        T = np.eye(3)[codes]
    else:
        T = rng.standard_normal((rows, 1))
    return X, T


def reference_loss(net: Network, X, T, l2: float, n_total: int) -> float:
    """The mean loss plus l2 / (2 n_total) sum W^2, written independently of mlfit."""
    g = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh, "sigmoid": expit}[net.activation]
    A = X
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        A = g(A @ W + b)
    out = A @ net.weights[-1] + net.biases[-1]
    if net.classify:
        data = -np.mean(np.sum(T * log_softmax(out, axis=1), axis=1))
    else:
        data = 0.5 * np.mean(np.sum((out - T) ** 2, axis=1))
    return float(data + l2 / (2 * n_total) * sum(np.sum(W * W) for W in net.weights))


def all_parameters(net: Network) -> list[np.ndarray]:
    """Every parameter array, weights and bias of each layer in turn (views, not copies)."""
    return [p for pair in zip(net.weights, net.biases) for p in pair]


ARCHITECTURES = {"none": (), "one": (5,), "two": (5, 4)}


# --------------------------------------------------------------------------- 1. backprop


@pytest.mark.parametrize("hidden", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
@pytest.mark.parametrize("classify", [True, False], ids=["classification", "regression"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_check_gradient_below_1e_6(activation, classify, hidden):
    X, T = small_problem(classify)
    net = Network.initialise(
        [X.shape[1], *hidden, T.shape[1]], activation, classify, np.random.default_rng(1), float
    )
    for l2 in (0.0, 0.5):
        assert check_gradient(net, X, T, l2) < 1e-6, (activation, classify, hidden, l2)


@pytest.mark.parametrize("hidden", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
@pytest.mark.parametrize("classify", [True, False], ids=["classification", "regression"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backprop_equals_central_differences_of_every_parameter(activation, classify, hidden):
    X, T = small_problem(classify)
    net = jittered_net([X.shape[1], *hidden, T.shape[1]], activation, classify)
    l2, n_total = 0.3, 3 * len(X)  # a minibatch of a larger set: the penalty's scale matters
    loss, dW, db = net.gradients(X, T, l2, n_total)
    # the loss itself, so that differences of a wrong loss cannot agree with a wrong gradient
    assert loss == pytest.approx(reference_loss(net, X, T, l2, n_total), rel=1e-12)
    backprop = np.concatenate([g.ravel() for pair in zip(dW, db) for g in pair])
    numeric = []
    for p in all_parameters(net):
        flat = p.reshape(-1)  # a view: writing it moves the network's parameter
        for j in range(flat.size):
            keep = flat[j]
            h = 1e-5 * max(1.0, abs(keep))  # truncation h^2 and rounding eps/h both ~1e-10
            flat[j] = keep + h
            up = net.gradients(X, T, l2, n_total)[0]
            flat[j] = keep - h
            down = net.gradients(X, T, l2, n_total)[0]
            flat[j] = keep
            numeric.append((up - down) / (2 * h))
    numeric = np.array(numeric)
    assert backprop.size == net.n_parameters == numeric.size
    scale = float(np.abs(numeric).max())
    err = np.abs(backprop - numeric)
    # the differences themselves err by ~1e-10 of the scale (5e-10 at worst here)
    assert err.max() <= 1e-8 * scale, f"max error {err.max():.3g} at scale {scale:.3g}"
    big = np.abs(numeric) > 1e-2 * scale  # entries well above that: relative agreement
    rel = err[big] / np.abs(numeric[big])
    assert rel.max() < 1e-6, f"largest relative error {rel.max():.3g}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_cli_check_grad(fit_json, write_csv, rng, activation, task, dtype):
    X = rng.normal(size=(30, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(0, 0.3, 30)
    labels = np.array(["a", "b", "c"])[np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))]
    path = write_table(write_csv, table(X, labels if task == "classification" else y))
    doc = fit_json(
        path, "-y", "y", "--hidden", "6,4", "--activation", activation, "--epochs", 1,
        "--check-grad", "--dtype", dtype,
    )  # fmt: skip
    assert doc["solver"]["task"] == task
    error = doc["solver"]["gradient_check_max_relative_error"]
    assert 0 <= error < 1e-6, error


# --------------------------------------------------------------------------- 2. loss definitions


def test_linear_output_loss_is_half_mse_and_zero_gradient_at_least_squares(rng):
    n = 40
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 1.0]
    y = X @ [1.0, 0.2, 3.0] + rng.normal(0, 0.5, n)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    t = ((y - y.mean()) / y.std())[:, None]
    # at an arbitrary point: 1/2 MSE, and the gradient of the normal equations
    w, b = rng.normal(size=(3, 1)), rng.normal(size=1)
    net = Network([w.copy()], [b.copy()], "relu", classify=False)
    loss, dW, db = net.gradients(Z, t, 0.0, n)
    r = Z @ w + b - t
    assert loss == pytest.approx(0.5 * np.mean(r**2), rel=1e-13)
    np.testing.assert_allclose(dW[0], Z.T @ r / n, rtol=1e-12)
    np.testing.assert_allclose(db[0], r.mean(axis=0), rtol=1e-12)
    # at the least-squares solution the gradient vanishes
    A = np.column_stack([Z, np.ones(n)])
    beta, *_ = np.linalg.lstsq(A, t[:, 0], rcond=None)
    net = Network([beta[:3, None].copy()], [beta[3:].copy()], "relu", classify=False)
    loss, dW, db = net.gradients(Z, t, 0.0, n)
    residual = A @ beta - t[:, 0]
    assert loss == pytest.approx(0.5 * np.mean(residual**2), rel=1e-13)
    assert np.abs(dW[0]).max() < 1e-14 and np.abs(db[0]).max() < 1e-14, (dW, db)


def test_no_hidden_layer_regression_fit_reaches_least_squares(rng):
    n = 120
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 1.0]
    y = X @ [1.0, 0.2, 3.0] + 7.0 + rng.normal(0, 0.5, n)
    A = np.column_stack([X, np.ones(n)])
    beta, *_ = np.linalg.lstsq(A, y, rcond=None)
    # full batch, l2 0: adam on a convex quadratic ends at its minimum (original units here:
    # this also checks the standardization of inputs and target and its undoing)
    config = mlp.Config(
        hidden=(), l2=0.0, dtype="float64", lr=0.05, batch_size=n, epochs=3000, tol=0.0,
        patience=3000,
    )  # fmt: skip
    res = mlp.fit(ModelData(X, y), config)
    np.testing.assert_allclose(res.params.outputs(X), A @ beta, rtol=0, atol=1e-7 * y.std())
    rmse = np.sqrt(np.mean((A @ beta - y) ** 2))
    assert res.metrics["rmse"] == pytest.approx(rmse, rel=1e-9)


def test_softmax_loss_is_sklearn_log_loss(rng):
    X = rng.normal(size=(25, 4))
    codes = np.arange(25) % 3
    net = Network([rng.normal(size=(4, 3)) * 2.0], [rng.normal(size=3)], "tanh", classify=True)
    P = net.forward(X)[-1]
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    loss, _, _ = net.gradients(X, np.eye(3)[codes], 0.0, len(X))
    assert loss == pytest.approx(log_loss(codes, P, labels=[0, 1, 2]), rel=1e-13)
    assert net.loss(P, np.eye(3)[codes]) == pytest.approx(log_loss(codes, P), rel=1e-13)


def test_softmax_fit_reaches_sklearn_penalized_optimum(rng):
    """No hidden layer and softmax is multinomial logistic regression; l2 = lambda/2 sum W^2
    on the summed loss with free biases is sklearn's LogisticRegression with C = 1/lambda."""
    n, lam = 150, 1.0
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 1.0]
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    logits = 1.5 * Z @ rng.normal(size=(3, 3))
    u = rng.uniform(size=(n, 1))
    y = np.sum(u > np.cumsum(np.exp(log_softmax(logits, axis=1)), axis=1), axis=1)
    sk = LogisticRegression(C=1.0 / lam, tol=1e-12, max_iter=10_000).fit(Z, y)
    objective_sk = log_loss(y, sk.predict_proba(Z)) + lam / (2 * n) * np.sum(sk.coef_**2)
    config = mlp.Config(
        hidden=(), l2=lam, dtype="float64", lr=0.05, batch_size=n, epochs=3000, tol=0.0,
        patience=3000,
    )  # fmt: skip
    res = mlp.fit(ModelData(X, y), config)
    P = res.params.outputs(X)
    assert res.metrics["log_loss"] == pytest.approx(log_loss(y, P), rel=1e-12)
    objective = log_loss(y, P) + lam / (2 * n) * np.sum(res.params.weights[0] ** 2)
    assert objective == pytest.approx(objective_sk, rel=1e-8), (objective, objective_sk)
    assert res.convergence["history"][-1] == pytest.approx(objective, rel=1e-8)


# --------------------------------------------------------------------------- 3. XOR


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_learns_xor(fit_json, write_csv, activation):
    X = np.tile([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], (25, 1))
    y = (X[:, 0] != X[:, 1]).astype(int)
    path = write_table(write_csv, table(X, y))
    doc = fit_json(
        path, "-y", "y", "--hidden", 8, "--activation", activation, "--lr", 0.01,
        "--epochs", 500,
    )  # fmt: skip
    assert doc["solver"]["task"] == "classification"
    assert doc["metrics"]["accuracy"] == 1.0
    # without a hidden layer XOR is not separable: at best 3 of the 4 patterns
    linear = fit_json(path, "-y", "y", "--hidden", "none", "--lr", 0.01, "--epochs", 500)
    assert linear["metrics"]["accuracy"] <= 0.75


# --------------------------------------------------------------------------- 4. smooth curve


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fits_a_smooth_function(seed):
    """sin on [-3, 3], noise free. The best straight line has RMSE 0.41 (sin's SD is 0.72); a
    32-32 tanh network gets below 0.02. RMSE < 0.05 (7 % of the SD, R^2 > 0.995) fails any
    fit that misses the curvature, with room for seed-to-seed variation; it is checked on
    the midpoints between training points too, so it is a curve, not a lookup table."""
    x = np.linspace(-3, 3, 500)
    config = mlp.Config(
        hidden=(32, 32), activation="tanh", dtype="float64", lr=0.01, batch_size=500,
        epochs=2000, tol=0.0, patience=50, seed=seed,
    )  # fmt: skip
    res = mlp.fit(ModelData(x, np.sin(x)), config)
    assert res.metrics["rmse"] < 0.05, res.metrics
    assert res.metrics["r_squared"] > 0.99, res.metrics
    mid = (x[1:] + x[:-1]) / 2
    rmse = np.sqrt(np.mean((res.params.outputs(mid[:, None]) - np.sin(mid)) ** 2))
    assert rmse < 0.05, rmse


# --------------------------------------------------------------------------- 5. digits


EPOCHS, BATCH = 200, 200


@cache
def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


@cache
def sklearn_digits_accuracy() -> float:
    X_train, X_test, y_train, y_test = digits_split()
    sk = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(64,), max_iter=EPOCHS, batch_size=BATCH, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X_train, y_train)
    return float(sk.score(X_test, y_test))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits_as_accurate_as_sklearn(dtype):
    X_train, X_test, y_train, y_test = digits_split()
    config = mlp.Config(
        hidden=(64,), optimizer="adam", batch_size=BATCH, epochs=EPOCHS, dtype=dtype
    )
    res = mlp.fit(ModelData(X_train, y_train), config)
    assert res.info["task"] == "classification"
    predicted = mlp.predict(res.params, ModelData(X_test))["prediction"]
    ours = float(np.mean(predicted.astype(int) == y_test))
    theirs = sklearn_digits_accuracy()
    assert ours >= theirs - 0.01, f"mlfit {dtype} test accuracy {ours:.4f}, sklearn {theirs:.4f}"


# --------------------------------------------------------------------------- 6. early stopping


def noisy_regression(n: int = 60, seed: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X[:, 0] + rng.normal(0, 1.0, n)


def validation_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """The rows mlp holds out for a regression: the first draw of its seeded generator is a
    permutation of the rows, whose first round(fraction n) are held out."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: round(fraction * n)])


EARLY = [
    "--hidden", "128,128", "--lr", 0.01, "--batch-size", 16, "--l2", 0, "--epochs", 400,
    "--patience", 30, "--early-stopping", "--validation-fraction", 0.25, "--dtype", "float64",
]  # fmt: skip


def test_early_stopping_keeps_the_best_epoch(fit_json, write_csv, tmp_path):
    X, y = noisy_regression()
    n = len(y)
    model = tmp_path / "early.model"
    doc = fit_json(write_table(write_csv, table(X, y)), "-y", "y", *EARLY, "-o", model)
    conv = doc["convergence"]
    history, valid_history = conv["history"], np.array(conv["validation_history"])
    assert conv["converged"] and conv["best_epoch"] < conv["iterations"] < 400
    assert len(valid_history) == len(history) == conv["iterations"]
    assert valid_history[-1] > valid_history.min()  # the validation loss did rise
    assert int(np.argmin(valid_history)) + 1 == conv["best_epoch"]
    # the kept weights, recomputed from the saved model on the held-out rows
    valid = validation_rows(n, 0.25, seed=0)
    train = np.setdiff1d(np.arange(n), valid)
    assert doc["solver"]["validation_rows"] == len(valid) == doc["metrics"]["validation"]["n"]
    assert doc["metrics"]["n"] == len(train)
    params = read_model(str(model)).params
    pred = params.outputs(X)
    loss = 0.5 * np.mean(((pred[valid] - y[valid]) / params.y_scale) ** 2)
    assert loss == pytest.approx(valid_history.min(), rel=1e-10)
    rmse_valid = np.sqrt(np.mean((pred[valid] - y[valid]) ** 2))
    assert doc["metrics"]["validation"]["rmse"] == pytest.approx(rmse_valid, rel=1e-12)
    rmse_train = np.sqrt(np.mean((pred[train] - y[train]) ** 2))
    assert doc["metrics"]["rmse"] == pytest.approx(rmse_train, rel=1e-12)
    # the same without knowing the rows: the reported validation RMSE on the loss's scale
    scaled = 0.5 * (doc["metrics"]["validation"]["rmse"] / y.std()) ** 2
    assert scaled == pytest.approx(valid_history.min(), rel=1e-10)


def test_early_stopping_keeps_the_minimum_also_for_improvements_below_tol(fit_json, write_csv):
    X, y = noisy_regression()
    args = ["--hidden", 64, "--batch-size", 16, "--epochs", 300, "--early-stopping", "--tol", 0.01]
    doc = fit_json(write_table(write_csv, table(X, y)), "-y", "y", *args, "--dtype", "float64")
    conv = doc["convergence"]
    valid_history = np.array(conv["validation_history"])
    scaled = 0.5 * (doc["metrics"]["validation"]["rmse"] / y.std()) ** 2
    assert (conv["best_epoch"], scaled) == (
        int(np.argmin(valid_history)) + 1,
        pytest.approx(valid_history.min(), rel=1e-10),
    )


@pytest.mark.parametrize("fraction", [0.15, 0.2, 0.3])
def test_early_stopping_split_is_stratified(fit_json, write_csv, rng, fraction):
    sizes = {"common": 37, "middle": 23, "rare": 11, "rarest": 9}
    labels = np.repeat(list(sizes), list(sizes.values()))
    labels = labels[rng.permutation(len(labels))]
    codes = np.searchsorted(list(sizes), labels)
    X = rng.normal(size=(len(labels), 2)) + codes[:, None]
    n = len(labels)
    doc = fit_json(
        write_table(write_csv, table(X, labels)), "-y", "y", "--hidden", 8, "--epochs", 60,
        "--early-stopping", "--validation-fraction", fraction, "--dtype", "float64", "--tol", 0,
    )  # fmt: skip
    held = {k: v["support"] for k, v in doc["metrics"]["validation"]["per_class"].items()}
    kept = {k: v["support"] for k, v in doc["metrics"]["per_class"].items()}
    n_valid = doc["solver"]["validation_rows"]
    assert sum(held.values()) == n_valid == doc["metrics"]["validation"]["n"]
    assert n_valid + doc["metrics"]["n"] == n
    for label, size in sizes.items():
        assert held[label] + kept[label] == size
        assert abs(held[label] - n_valid * size / n) <= 1, (label, held, n_valid)
        assert kept[label] >= 1
    # classification: the validation loss is the log-loss, and with --tol 0 the kept weights
    # are those of its minimum
    conv = doc["convergence"]
    valid_history = np.array(conv["validation_history"])
    assert len(valid_history) == conv["iterations"]
    assert int(np.argmin(valid_history)) + 1 == conv["best_epoch"]
    logloss = doc["metrics"]["validation"]["log_loss"]
    assert logloss == pytest.approx(valid_history.min(), rel=1e-10)


# --------------------------------------------------------------------------- 7. save, predict


def _three_classes(rng, n=90):
    X = rng.normal(size=(n, 3)) * [1.0, 50.0, 0.01] + [0.0, 1000.0, 0.0]
    score = X[:, 0] + (X[:, 1] - 1000.0) / 50.0 - X[:, 2] * 100.0
    labels = np.array(["low", "mid", "high"])[np.digitize(score, np.quantile(score, [0.33, 0.66]))]
    return X, labels


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_saved_model_predicts_as_in_memory(runner, write_csv, rng, tmp_path, task):
    X, labels = _three_classes(rng)
    y = labels if task == "classification" else X @ [1.0, 0.02, 30.0] + rng.normal(0, 0.1, 90)
    path = write_table(write_csv, table(X, y))
    model = tmp_path / "m.model"
    args = ["--hidden", "16,8", "--activation", "tanh", "--epochs", 30, "--batch-size", 16]
    fit = runner.invoke(cli, ["mlp", path, "-y", "y", *args, "-o", str(model), "--quiet"])
    assert fit.exit_code == 0, fit.stderr
    config = mlp.Config(hidden=(16, 8), activation="tanh", epochs=30, batch_size=16)
    # the CLI's design is column-major, and numpy's column means round by layout (pairwise
    # sums along a row-major axis): the same layout gives the same fit, bit for bit
    res = mlp.fit(ModelData(np.asfortranarray(X), np.asarray(y)), config)
    saved = json.loads(model.read_text())
    assert saved["params"] == json.loads(json.dumps(res.params.to_dict()))
    expected = res.params.outputs(X)
    proba = ["--proba"] if task == "classification" else []

    def run(*extra):
        result = runner.invoke(cli, ["predict", str(model), path, *proba, *extra])
        assert result.exit_code == 0, result.stderr
        return result.stdout

    csv_text, json_text = run(), run("--json")
    frame = pd.read_csv(io.StringIO(csv_text))
    rows = [json.loads(line) for line in json_text.splitlines()]
    assert len(frame) == len(rows) == len(X)
    if task == "classification":
        classes = res.params.classes
        assert list(frame.columns) == ["prediction", *[f"p_{c}" for c in classes]]
        for got in (frame[[f"p_{c}" for c in classes]].to_numpy(),
                    np.array([[r[f"p_{c}"] for c in classes] for r in rows])):  # fmt: skip
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        best = np.array(classes)[np.argmax(expected, axis=1)]
        np.testing.assert_array_equal(frame["prediction"], best)
        np.testing.assert_array_equal([r["prediction"] for r in rows], best)
    else:
        for got in (frame["prediction"].to_numpy(), np.array([r["prediction"] for r in rows])):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert run("--chunk-rows", 3) == csv_text
    assert run("--json", "--chunk-rows", 3) == json_text


# --------------------------------------------------------------------------- 8. determinism


def _without_timing(doc):
    return {k: v for k, v in doc.items() if k != "timing"}


def test_same_command_twice_same_json_and_seed_changes_weights(
    mlfit_proc, strict_json, write_csv, rng, tmp_path
):
    X, labels = _three_classes(rng)
    path = write_table(write_csv, table(X, labels))
    args = ["mlp", path, "-y", "y", "--hidden", "8,4", "--epochs", 20, "--early-stopping", "--json"]
    runs = [mlfit_proc(*args, "-o", tmp_path / f"{i}.model") for i in range(2)]
    runs.append(mlfit_proc(*args, "--seed", 1, "-o", tmp_path / "2.model"))
    for run in runs:
        assert run.returncode == 0, run.stderr
    one, two, other = (strict_json(r.stdout) for r in runs)
    assert _without_timing(one) == _without_timing(two)
    assert runs[0].stderr == runs[1].stderr
    models = [json.loads((tmp_path / f"{i}.model").read_text()) for i in range(3)]
    assert models[0] == models[1]
    assert other["solver"]["seed"] == 1
    first = np.asarray(models[0]["params"]["weights"][0])
    assert not np.array_equal(first, np.asarray(models[2]["params"]["weights"][0]))
    assert one["convergence"]["history"] != other["convergence"]["history"]


# --------------------------------------------------------------------------- 9. bad input


def _regression_csv(write_csv, rng, n=50):
    X = rng.normal(size=(n, 2)) * [1000.0, 0.001] + [5e4, 3.0]
    y = 3.0 * X[:, 0] + rng.normal(0, 100.0, n)
    frame = table(X, y)
    frame["label"] = np.where(y > np.median(y), "hi", "lo")
    return write_table(write_csv, frame)


def test_text_target_as_regression_is_exit_3(runner, write_csv, rng, assert_error):
    path = _regression_csv(write_csv, rng)
    result = runner.invoke(cli, ["mlp", path, "-y", "label", "--task", "regression"])
    assert_error(result, 3, "'label'", "regression")


DIVERGE = ["-y", "y", "--drop", "label", "--optimizer", "sgd", "--lr", "1e6"]


def test_divergent_fit_is_exit_1_naming_lr(mlfit_proc, write_csv, rng):
    result = mlfit_proc("mlp", _regression_csv(write_csv, rng), *DIVERGE)
    assert result.returncode == 1, result.stderr
    assert result.stdout == b""
    last = result.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("Error: ") and "diverged" in last and "--lr" in last, last


def test_divergent_fit_error_is_one_line(mlfit_proc, write_csv, rng, assert_error):
    result = mlfit_proc("mlp", _regression_csv(write_csv, rng), *DIVERGE)
    assert_error(result, 1, "--lr")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_in_the_last_step_is_exit_1(runner, write_csv, rng, tmp_path, assert_error):
    path = _regression_csv(write_csv, rng)
    model = tmp_path / "inf.model"
    args = ["--optimizer", "sgd", "--lr", "1e39", "--epochs", 1, "--batch-size", 100]
    result = runner.invoke(cli, ["mlp", path, "-y", "y", "--drop", "label", *args, "-o", model])
    assert_error(result, 1, "--lr")
    assert not model.exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_rising_loss_is_not_called_improving(runner, write_csv, rng):
    path = _regression_csv(write_csv, rng)
    args = ["--optimizer", "sgd", "--lr", "1e3", "--epochs", 3, "--json"]
    result = runner.invoke(cli, ["mlp", path, "-y", "y", "--drop", "label", *args])
    assert result.exit_code in (0, 1), result.stderr
    if result.exit_code == 0:
        history = json.loads(result.stdout)["convergence"]["history"]
        assert history[-1] > 1e40 * history[0]  # the loss rose, and it is not reported so:
    assert "still improving" not in result.stderr, result.stderr
    assert "smaller --lr" in result.stderr, result.stderr


def test_strict_not_converged_is_exit_5(runner, write_csv, rng, tmp_path, assert_error):
    model = tmp_path / "strict.model"
    path = _regression_csv(write_csv, rng)
    args = ["mlp", path, "-y", "y", "--drop", "label", "--epochs", 1, "--strict", "-o", model]
    assert_error(runner.invoke(cli, list(map(str, args))), 5, "--strict")
    assert not model.exists()


@pytest.mark.parametrize("hidden", ["0,3", "abc", "3,,4", "-2"])
def test_bad_hidden_is_a_usage_error(runner, write_csv, rng, hidden):
    path = _regression_csv(write_csv, rng)
    result = runner.invoke(cli, ["mlp", path, "-y", "y", "--hidden", hidden])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "--hidden" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def _drop_last(values):
    return values[:-1]


DAMAGES = {
    "first layer rows": lambda p: p["weights"].__setitem__(0, _drop_last(p["weights"][0])),
    "second layer rows": lambda p: p["weights"].__setitem__(1, _drop_last(p["weights"][1])),
    "layer columns": lambda p: p["weights"].__setitem__(1, [r[:-1] for r in p["weights"][1]]),
    "bias length": lambda p: p["biases"].__setitem__(0, _drop_last(p["biases"][0])),
    "missing layer": lambda p: p["weights"].pop(),
    "fewer classes": lambda p: p.__setitem__("classes", _drop_last(p["classes"])),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_model_with_wrongly_shaped_weights_is_exit_4(
    runner, write_csv, rng, tmp_path, assert_error, damage
):
    X, labels = _three_classes(rng, n=30)
    path = write_table(write_csv, table(X[:, :2], labels))
    model = tmp_path / "damaged.model"
    args = ["mlp", path, "-y", "y", "--hidden", 4, "--epochs", 2, "-o", model, "--quiet"]
    assert runner.invoke(cli, list(map(str, args))).exit_code == 0
    doc = json.loads(model.read_text())
    assert all(isinstance(W, list) for W in doc["params"]["weights"])  # small: plain lists
    damage(doc["params"])
    model.write_text(json.dumps(doc))
    result = runner.invoke(cli, ["predict", str(model), path])
    assert_error(result, 4, str(model), "damaged")


# --------------------------------------------------------------------------- 10. task detection


def _targets(rng):
    n = 50
    return {
        "text labels": (np.array(["cat", "dog"])[np.arange(n) % 2], [], "classification"),
        "0/1 integers": (np.arange(n) % 2, [], "classification"),
        "floats": (rng.normal(size=n).round(3) + 0.0005, [], "regression"),
        "20 distinct integers": (np.arange(n) % 20, [], "classification"),
        "25 distinct integers": (np.arange(n) % 25, [], "regression"),
        "forced classes on floats": (
            np.array([0.5, 1.5, 2.5])[np.arange(n) % 3],
            ["--task", "classification"],
            "classification",
        ),
        "forced regression on 0/1": (np.arange(n) % 2, ["--task", "regression"], "regression"),
    }


TARGET_CASES = list(_targets(np.random.default_rng(0)))


@pytest.mark.parametrize("case", TARGET_CASES)
def test_task_detection(fit_json, write_csv, rng, tmp_path, runner, case):
    y, extra, task = _targets(rng)[case]
    X = rng.normal(size=(len(y), 2))
    path = write_table(write_csv, table(X, y))
    model = tmp_path / "task.model"
    doc = fit_json(path, "-y", "y", "--hidden", 4, "--epochs", 2, *extra, "-o", model)
    assert doc["solver"]["task"] == task
    output = doc["layers"][str(len(doc["layers"]))]["activation"]
    assert output == ("softmax" if task == "classification" else "linear")
    saved = json.loads(model.read_text())["params"]
    pred = runner.invoke(cli, ["predict", str(model), path, "--json"])
    assert pred.exit_code == 0, pred.stderr
    predicted = [json.loads(line)["prediction"] for line in pred.stdout.splitlines()]
    if task == "classification":
        values = sorted(set(y.tolist()))
        assert saved["classes"] == values
        assert set(predicted) <= set(values)
        assert "accuracy" in doc["metrics"]
    else:
        assert "classes" not in saved and "r_squared" in doc["metrics"]
        assert all(isinstance(v, float) for v in predicted)
