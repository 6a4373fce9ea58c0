"""mlp trained from the chunk stream: the same model as in memory up to the shuffle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.solvers import mlp, mlp_stream


def chunks_of(X, y, size, target="y"):
    return [
        ModelData(X[i : i + size], y[i : i + size], target=target) for i in range(0, len(y), size)
    ]


def test_regression_from_chunks_learns_as_well_as_in_memory(rng):
    x = rng.uniform(-3, 3, size=(600, 1))
    y = np.sin(x[:, 0])
    config = mlp.Config(
        hidden=(32, 32),
        activation="tanh",
        epochs=300,
        lr=0.01,
        batch_size=32,
        patience=400,
        dtype="float64",
    )
    whole = mlp.fit(ModelData(x, y), config)
    streamed = mlp.fit_chunks(chunks_of(x, y, 97), config)
    assert streamed.metrics["rmse"] < 0.05, streamed.metrics
    assert streamed.metrics["rmse"] < 2 * whole.metrics["rmse"] + 0.01
    np.testing.assert_allclose(streamed.params.x_mean, whole.params.x_mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.params.x_scale, whole.params.x_scale, rtol=1e-12)
    assert streamed.params.y_mean == pytest.approx(whole.params.y_mean, rel=1e-12)


@pytest.mark.parametrize("text", [False, True])
def test_classes_and_a_stratified_validation_split(rng, text):
    n = 300
    codes = np.arange(n) % 3
    X = rng.normal(size=(n, 2)) + codes[:, None] * 2.0
    y = np.array(["a", "b", "c"], dtype=object)[codes] if text else codes.astype(float)
    config = mlp.Config(hidden=(8,), epochs=40, early_stopping=True, validation_fraction=0.2)
    res = mlp.fit_chunks(chunks_of(X, y, 41), config)
    assert res.params.classes == (["a", "b", "c"] if text else [0, 1, 2])
    assert res.metrics["validation"]["n"] == 60  # 20 of each class's 100 rows
    per_class = res.metrics["validation"]["confusion_matrix"]["rows_true_columns_predicted"]
    assert [sum(row) for row in per_class] == [20, 20, 20]
    history = res.convergence["validation_history"]
    assert res.convergence["best_epoch"] == int(np.argmin(history)) + 1
    assert res.metrics["accuracy"] > 0.75  # classes 2 sd apart: Bayes accuracy about 0.8


def test_metrics_on_a_sample_say_so(rng, monkeypatch):
    monkeypatch.setattr(mlp_stream, "METRIC_ROWS", 50)
    X, y = rng.normal(size=(200, 2)), rng.normal(size=200)
    res = mlp.fit_chunks(chunks_of(X, y, 30), mlp.Config(hidden=(4,), epochs=3))
    assert res.metrics["n"] == 50
    assert any("sample of 50" in w for w in res.warnings)


def test_the_cli_trains_from_chunks(runner, write_csv, rng, strict_json, assert_error):
    X = rng.normal(size=(120, 2))
    rows = ["x1,x2,label"] + [f"{a},{b},{'yes' if a + b > 0 else 'no'}" for a, b in X]
    path = write_csv("\n".join(rows) + "\n")
    args = ["mlp", path, "-y", "label", "--chunk-rows", "25", "--epochs", "50", "--json", "-q"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    doc = strict_json(result.stdout)
    assert doc["solver"]["task"] == "classification" and doc["metrics"]["accuracy"] > 0.8
    assert_error(runner.invoke(cli, [*args[:-2], "--task", "regression"]), 3, "not numeric")
    json.dumps(doc)
