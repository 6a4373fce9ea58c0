"""The model contract, checked for every registered model: a model passes by being registered.

Each check runs the real command line on a tiny table shaped for the model's target kind, so a
new model gets fit, save, load, predict, JSON, --quiet, determinism, option and model-file
checks without writing a test of its own.
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from mlfit import contract
from mlfit.cli import cli
from mlfit.solvers import (
    EXTRA_ROLES,
    FROM_CONVERGENCE,
    PLOT_KINDS,
    SOLVERS,
    TARGET_KINDS,
    module_name,
    predict_options,
    solver,
)

MODELS = list(SOLVERS)
N = 40


def contract_roles(spec) -> list[str]:
    """The extra columns the generic table gives: not those that change what the target is
    and need a family (--trials: successes; tests/test_trials.py)."""
    return [r for r in spec.extra_columns if not EXTRA_ROLES[r].bounds_target]


def tiny_table(spec, rng) -> tuple[str, list[str]]:
    """CSV text for the model and the command-line arguments that select its columns."""
    x1, x2 = rng.normal(size=N).round(3), rng.normal(size=N).round(3)
    g = np.array(["a", "b", "c"])[np.arange(N) % 3]
    columns = {"x1": x1, "x2": x2, "g": g} if spec.text_features else {"x1": x1, "x2": x2}
    args = []
    for role in contract_roles(spec):
        columns[f"{role}_col"] = extra_values(role, rng)
        args += [f"--{role.replace('_', '-')}", f"{role}_col"]
    eta = 0.8 * x1 - 0.5 * x2 + (g == "b")
    if spec.target == "optional":  # two clusters, so that a mixture has something to find
        columns["x1"] = np.where(np.arange(N) % 2 == 0, x1, x1 + 6.0).round(3)
    if spec.target in ("numeric", "auto"):
        columns["y"] = (1.0 + eta + rng.normal(0, 0.3, N)).round(3)
        args += ["-y", "y"]
    elif spec.target == "label":
        columns["label"] = np.where(eta + rng.normal(0, 1.0, N) > 0.3, "yes", "no")
        args += ["-y", "label"]
    header = ",".join(columns)
    rows = [",".join(str(v) for v in row) for row in zip(*columns.values())]
    return header + "\n" + "\n".join(rows) + "\n", args


def extra_values(role: str, rng) -> np.ndarray:
    """Values of an extra column in its role's domain: weights >= 0 (one of them 0, which
    leaves the fit), labels for clusters (8 of them), small numbers otherwise (an offset)."""
    kind = EXTRA_ROLES[role]
    if kind.labels:
        return np.array([f"c{i % 8}" for i in rng.permutation(N)])
    if kind.domain == "nonnegative":
        values = rng.uniform(0.2, 2.0, N).round(3)
        values[5] = 0.0
        return values
    assert kind.domain is None, f"tiny_table has no values for the domain {kind.domain}"
    return rng.uniform(-0.5, 0.5, N).round(3)


#: Each role's neutral value: the fit without the column (labels: each row its own cluster).
NEUTRAL = {"offset": "0", "weights": "1"}


@pytest.fixture(params=MODELS)
def case(request, tmp_path, rng):
    spec = SOLVERS[request.param]
    text, args = tiny_table(spec, rng)
    path = tmp_path / "tiny.csv"
    path.write_text(text)
    return spec, str(path), args, tmp_path


def fit(runner, spec, path, args, *more):
    return runner.invoke(cli, [spec.name, path, *args, *more])


def without_timing(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "timing"}


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", MODELS)
def test_spec_and_solver_module_agree(name):
    spec = SOLVERS[name]
    assert spec.name == name and spec.summary and spec.target in TARGET_KINDS
    assert set(spec.plots) <= set(PLOT_KINDS) and spec.plots, "every fit command can --plot"
    module = solver(name)
    assert issubclass(module.Params, contract.Params)
    for attr in ("Config", "fit", "predict"):
        assert hasattr(module, attr), attr
    assert hasattr(module, "fit_chunks") == (spec.sum_over_rows or spec.trains_from_chunks)
    if any(kind not in FROM_CONVERGENCE for kind in spec.plots):
        assert hasattr(module, "plot_data")
    accepted = set(inspect.signature(module.predict).parameters) - {"params", "data"}
    assert accepted == {o.name for o in spec.predict_options}
    command = importlib.import_module(f"mlfit.commands.{module_name(name)}").command
    flags = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for role in spec.extra_columns:
        assert f"--{role.replace('_', '-')}" in flags
    assert ("--chunk-rows" in flags) == (spec.sum_over_rows or spec.trains_from_chunks)
    assert {"--json", "--save", "--plot", "--quiet"} <= flags


# --------------------------------------------------------------------------- fitting


def test_json_alone_on_stdout_and_quiet(runner, case, strict_json):
    spec, path, args, _tmp = case
    result = fit(runner, spec, path, args, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = strict_json(result.stdout)  # one document, no NaN or Infinity
    assert doc["model"] == spec.name
    assert doc["target"] == {"numeric": "y", "auto": "y", "label": "label"}.get(spec.target)
    assert doc["data"]["rows_used"] == N
    assert isinstance(doc["metrics"], dict)
    if spec.extra_columns:
        assert doc["data"]["columns"] == {r: f"{r}_col" for r in contract_roles(spec)}


def test_report_without_json(runner, case):
    spec, path, args, _ = case
    result = fit(runner, spec, path, args, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(spec.name)
    assert ("target:" in result.stdout) == (spec.target in ("numeric", "label", "auto"))


def test_same_command_same_json(runner, case):
    spec, path, args, _ = case
    first = fit(runner, spec, path, args, "--json", "-q")
    second = fit(runner, spec, path, args, "--json", "-q")
    assert first.exit_code == second.exit_code == 0
    assert without_timing(json.loads(first.stdout)) == without_timing(json.loads(second.stdout))


def test_chunked_fit_equals_in_memory(runner, case):
    spec, path, args, _ = case
    if not spec.sum_over_rows:
        pytest.skip("not a sum over rows")
    whole = json.loads(fit(runner, spec, path, args, "--json", "-q").stdout)
    chunked = fit(runner, spec, path, args, "--json", "-q", "--chunk-rows", "7")
    assert chunked.exit_code == 0, chunked.stderr
    chunked = json.loads(chunked.stdout)
    for key, value in whole["metrics"].items():
        if isinstance(value, float):
            assert chunked["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_training_from_chunks_is_valid_and_deterministic(runner, case, strict_json):
    """A model that trains from the stream (another shuffle than in memory) gives a model of
    the same form, and the same command gives the same JSON."""
    spec, path, args, _ = case
    if not spec.trains_from_chunks:
        pytest.skip("does not train from chunks")
    runs = [fit(runner, spec, path, args, "--json", "-q", "--chunk-rows", "7") for _ in "ab"]
    assert runs[0].exit_code == 0, runs[0].stderr
    docs = [without_timing(strict_json(r.stdout)) for r in runs]
    assert docs[0] == docs[1]
    whole = strict_json(fit(runner, spec, path, args, "--json", "-q").stdout)
    assert set(docs[0]["metrics"]) == set(whole["metrics"])
    assert docs[0]["data"]["rows_used"] == whole["data"]["rows_used"] == N


def test_extra_columns_reach_the_fit(runner, case, tmp_path):
    """Each declared extra column changes the fit: the solver reads it under its role."""
    spec, path, args, _ = case
    if not spec.extra_columns:
        pytest.skip("no extra columns")
    with_extras = json.loads(fit(runner, spec, path, args, "--json", "-q").stdout)
    text = Path(path).read_text().splitlines()
    header = text[0].split(",")
    for role in contract_roles(spec):
        neutral = [text[0]]
        for i, line in enumerate(text[1:]):
            cells = line.split(",")
            cells[header.index(f"{role}_col")] = NEUTRAL.get(role, f"row{i}")
            neutral.append(",".join(cells))
        other = tmp_path / f"no_{role}.csv"
        other.write_text("\n".join(neutral) + "\n")
        without = json.loads(fit(runner, spec, str(other), args, "--json", "-q").stdout)
        keys = ("metrics", "coefficients")
        assert [with_extras.get(k) for k in keys] != [without.get(k) for k in keys], role


def test_plot_is_written(runner, case):
    spec, path, args, tmp = case
    out = tmp / "figure.png"
    result = fit(runner, spec, path, args, "-q", "--plot", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG")


def test_text_features_only_where_the_model_takes_them(runner, case, assert_error):
    spec, path, args, tmp = case
    if spec.text_features:
        pytest.skip("takes text features")
    text = Path(path).read_text().splitlines()
    with_text = [text[0] + ",g", *(f"{line},{'ab'[i % 2]}" for i, line in enumerate(text[1:]))]
    other = tmp / "with_text.csv"
    other.write_text("\n".join(with_text) + "\n")
    result = fit(runner, spec, str(other), args)
    assert_error(result, 3, "'g'", "must be numeric", spec.name)


# --------------------------------------------------------------------------- saving and predicting


@pytest.fixture
def saved(runner, case):
    spec, path, args, tmp = case
    model = tmp / "tiny.model"
    result = fit(runner, spec, path, args, "-q", "-o", str(model))
    assert result.exit_code == 0, result.stderr
    return spec, path, model


def test_save_load_predict(runner, saved, strict_json):
    _spec, path, model = saved
    csv_out = runner.invoke(cli, ["predict", str(model), path])
    assert csv_out.exit_code == 0, csv_out.stderr
    lines = csv_out.stdout.splitlines()
    assert lines[0].split(",")[0] == "prediction" and len(lines) == N + 1
    jsonl = runner.invoke(cli, ["predict", str(model), path, "--json"])
    records = [strict_json(line) for line in jsonl.stdout.splitlines()]
    assert len(records) == N and all("prediction" in r for r in records)
    chunked = runner.invoke(cli, ["predict", str(model), path, "--chunk-rows", "3"])
    assert chunked.stdout == csv_out.stdout


def test_predict_refuses_options_the_model_does_not_take(runner, saved, assert_error):
    spec, path, model = saved
    accepted = {o.name for o in spec.predict_options}
    for option in predict_options().values():
        if option.name in accepted:
            continue
        extra = [] if option.is_flag else ["0.5"]
        flag = f"--{option.name.replace('_', '-')}"
        result = runner.invoke(cli, ["predict", str(model), path, flag, *extra])
        assert_error(result, 2, flag, spec.name)
    unknown = runner.invoke(cli, ["predict", str(model), path, "--no-such-option"])
    assert unknown.exit_code == 2


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"params": {}}, ["damaged", "params"]),
        ({"params": None}, ["damaged", "params"]),
        ({"design": {}}, ["damaged", "design"]),
        ({"format_version": 99}, ["newer", "upgrade mlfit"]),
    ],
)
def test_damaged_model_file_is_exit_4(runner, saved, assert_error, change, words):
    _spec, path, model = saved
    doc = json.loads(model.read_text())
    doc.update(change)
    model.write_text(json.dumps(doc))
    assert_error(runner.invoke(cli, ["predict", str(model), path]), 4, str(model), *words)


def test_every_parameter_nulled_is_exit_4(runner, saved, assert_error):
    """Hand-edited parameters (a value set to null) are caught when the file is loaded."""
    _spec, path, model = saved
    doc = json.loads(model.read_text())
    for key, value in doc["params"].items():
        if value is None or isinstance(value, (bool, str, dict)):
            continue
        broken = {**doc, "params": {**doc["params"], key: None}}
        if isinstance(value, list):  # and a list with one null inside
            broken_inner = {**doc, "params": {**doc["params"], key: _null_first(value)}}
            model.write_text(json.dumps(broken_inner))
            assert_error(runner.invoke(cli, ["predict", str(model), path]), 4, "damaged")
        model.write_text(json.dumps(broken))
        result = runner.invoke(cli, ["predict", str(model), path])
        if key == "intercept":  # null means "fitted without an intercept": still valid
            assert result.exit_code == 0, result.stderr
        else:
            assert_error(result, 4, "damaged", key)


def _null_first(value: list) -> list:
    if value and isinstance(value[0], list):
        return [_null_first(value[0]), *value[1:]]
    return [None, *value[1:]]
