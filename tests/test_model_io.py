"""Model files: what --save writes, what predict refuses to read, and atomic writes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlfit import __version__
from mlfit.cli import cli
from mlfit.errors import ModelFileError
from mlfit.files import atomic_write
from mlfit.model_io import FORMAT, FORMAT_VERSION, load_model, save_model


def fit_and_save(runner, data, model, *args, command="normal-eq"):
    result = runner.invoke(
        cli, [command, str(data), "-y", "price", "--drop", "id", "-o", str(model), "--quiet", *args]
    )
    assert result.exit_code == 0, result.stderr
    return result


def leftovers(directory) -> list[str]:
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


@pytest.fixture
def model_path(runner, houses_csv, tmp_path):
    path = tmp_path / "houses.model"
    fit_and_save(runner, houses_csv, path, "--poly", "2", "-x", "area,district")
    return path


# --------------------------------------------------------------------------- what is written


@pytest.mark.parametrize("flag", ["-o", "--save"])
def test_save_writes_a_versioned_json_model(runner, houses_csv, tmp_path, strict_json, flag):
    path = tmp_path / "m.json"
    result = runner.invoke(
        cli,
        [
            "normal-eq",
            houses_csv,
            "-y",
            "price",
            "--drop",
            "id",
            flag,
            str(path),
            "--json",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.stderr
    strict_json(result.stdout)  # --save does not add anything to stdout
    doc = strict_json(path.read_text())
    assert doc["format"] == FORMAT == "mlfit-model"
    assert doc["format_version"] == FORMAT_VERSION
    assert doc["mlfit_version"] == __version__
    assert doc["method"] == "normal-eq"
    assert doc["target"] == "price"
    assert doc["design"]["features"] == ["area", "rooms", "district"]
    assert doc["design"]["levels"] == {"district": ["centre", "north", "south"]}
    assert doc["design"]["poly"] == 1 and doc["design"]["monomials"] == []
    assert set(doc["params"]) >= {"intercept", "coef"}
    assert len(doc["params"]["coef"]) == 4


def test_model_file_records_poly_terms(model_path, strict_json):
    doc = strict_json(model_path.read_text())
    design = doc["design"]
    assert design["poly"] == 2
    assert design["features"] == ["area", "district"]
    assert design["monomials"] == [[0, 0]]
    assert design["names"] == ["area", "district=north", "district=south", "area^2"]
    assert len(doc["params"]["coef"]) == 4


def test_model_coefficients_equal_the_reported_ones(runner, houses_csv, tmp_path, strict_json):
    path = tmp_path / "m.json"
    result = runner.invoke(
        cli, ["normal-eq", houses_csv, "--drop", "id", "-o", str(path), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    reported = [c["estimate"] for c in strict_json(result.stdout)["coefficients"].values()]
    params = strict_json(path.read_text())["params"]
    assert [params["intercept"], *params["coef"]] == reported


def test_linreg_model_file(runner, houses_csv, tmp_path, strict_json):
    path = tmp_path / "lin.json"
    fit_and_save(runner, houses_csv, path, "--seed", "1", command="linreg")
    doc = strict_json(path.read_text())
    assert doc["method"] == "linreg"
    assert doc["config"]["seed"] == 1


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "m.json"
    model = {
        "method": "normal-eq",
        "target": "y",
        "design": {"features": ["x"]},
        "params": {"intercept": 1.5, "coef": [float("nan")]},
    }
    save_model(str(path), model)
    text = path.read_text()
    assert "NaN" not in text
    doc = load_model(str(path))
    assert doc["format"] == FORMAT and doc["format_version"] == FORMAT_VERSION
    assert doc["params"] == {"intercept": 1.5, "coef": [None]}


def test_new_model_file_gets_normal_permissions(runner, houses_csv, tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "m.json"
        fit_and_save(runner, houses_csv, path)
        assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
        path.chmod(0o640)
        fit_and_save(runner, houses_csv, path)
        assert path.stat().st_mode & 0o777 == 0o640  # an overwritten file keeps its mode
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- what is refused


def predict(runner, model, data):
    return runner.invoke(cli, ["predict", str(model), str(data)])


@pytest.mark.parametrize(
    ("contents", "words"),
    [
        ("this is not json\n", ["not an mlfit model file", "not json"]),
        ("", ["not an mlfit model file"]),
        ("[1, 2, 3]\n", ["not an mlfit model file"]),
        ('{"a": 1}\n', ["not an mlfit model file"]),
        ('{"format": "other-tool", "format_version": 1}\n', ["not an mlfit model file"]),
        (b"\xff\xfe\x00binary", ["cannot read model file"]),
    ],
)
def test_not_an_mlfit_model(runner, assert_error, houses_csv, tmp_path, contents, words):
    path = tmp_path / "bad.model"
    path.write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    assert_error(predict(runner, path, houses_csv), 4, *words)


def test_model_file_not_found_or_a_directory(runner, assert_error, houses_csv, tmp_path):
    assert_error(predict(runner, tmp_path / "none.model", houses_csv), 4, "not found")
    assert_error(predict(runner, tmp_path, houses_csv), 4, "cannot read model file")


@pytest.mark.parametrize("version", [0, "1", True, None, 1.5, -2])
def test_unknown_format_version(runner, assert_error, model_path, houses_csv, version):
    doc = json.loads(model_path.read_text())
    doc["format_version"] = version
    model_path.write_text(json.dumps(doc))
    assert_error(predict(runner, model_path, houses_csv), 4, "format version", "refit")


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99])
def test_newer_format_version_says_upgrade(runner, assert_error, model_path, houses_csv, version):
    doc = json.loads(model_path.read_text())
    doc["format_version"] = version
    model_path.write_text(json.dumps(doc))
    message = assert_error(predict(runner, model_path, houses_csv), 4, "format version", "newer")
    assert "upgrade mlfit" in message.lower() and "refit" not in message.lower()


V1 = Path(__file__).parent / "data" / "model_v1"


@pytest.mark.parametrize(
    ("model", "data", "args"),
    [
        ("normal_eq", "houses.csv", ["--id", "id"]),
        ("linreg", "houses.csv", []),
        ("newton", "claims.csv", []),
        ("logreg", "admissions.csv", ["--proba", "--threshold", "0.4"]),
        ("softmax", "flowers.csv", ["--proba"]),
    ],
)
def test_version_1_model_files_still_predict_the_same(runner, model, data, args):
    """Files written before the model contract (format version 1) are read, and predict what
    that version predicted (tests/data/model_v1/README.md)."""
    result = runner.invoke(cli, ["predict", str(V1 / f"{model}.model"), str(V1 / data), *args])
    assert result.exit_code == 0, result.stderr
    got = list(csv.reader(result.stdout.splitlines()))
    want = list(csv.reader((V1 / f"{model}.expected.csv").read_text().splitlines()))
    assert got[0] == want[0] and len(got) == len(want)
    for g, w in zip(got[1:], want[1:]):
        for a, b in zip(g, w):
            try:
                assert float(a) == pytest.approx(float(b), rel=1e-13, abs=1e-300)
            except ValueError:
                assert a == b


def test_large_arrays_are_stored_exactly_as_base64(tmp_path):
    from mlfit.params import INLINE_MAX, decode_array, encode_array

    a = np.random.default_rng(1).normal(size=(INLINE_MAX + 1, 3)) * 1e300
    encoded = encode_array(a)
    assert set(encoded) == {"dtype", "shape", "base64"} and encoded["shape"] == list(a.shape)
    back = decode_array(json.loads(json.dumps({"w": encoded})), "w", (None, 3))
    assert back.tobytes() == a.tobytes()
    small = encode_array(a[:2, 0])
    assert small == a[:2, 0].tolist()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"method": "no-such-model"}, ["'no-such-model'", "known models"]),
        ({"method": ["normal-eq"]}, ["cannot apply"]),
        ({"design": {"features": "area"}}, ["damaged", "design"]),
        ({"params": {}}, ["damaged", "params"]),
        ({"params": {"intercept": 1.0, "coef": [1.0]}}, ["damaged", "params"]),
    ],
)
def test_damaged_model_file(runner, assert_error, model_path, houses_csv, change, words):
    doc = json.loads(model_path.read_text())
    doc.update(change)
    model_path.write_text(json.dumps(doc))
    assert_error(predict(runner, model_path, houses_csv), 4, *words)


@pytest.mark.parametrize("key", ["method", "design", "params"])
def test_model_file_missing_a_key(runner, assert_error, model_path, houses_csv, key):
    doc = json.loads(model_path.read_text())
    del doc[key]
    model_path.write_text(json.dumps(doc))
    assert_error(predict(runner, model_path, houses_csv), 4, "damaged", f"'{key}'")


def test_load_model_raises_model_file_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"format": "mlfit-model", "format_version": 99}')
    with pytest.raises(ModelFileError) as info:
        load_model(str(path))
    assert info.value.exit_code == 4


# --------------------------------------------------------------------------- atomic writes


BAD_DATA = "area,price\n1,2\n2,\n3,4\n"


@pytest.mark.parametrize("command", ["normal-eq", "linreg"])
def test_failed_fit_leaves_the_old_model_file_alone(
    runner, assert_error, write_csv, tmp_path, command
):
    old = tmp_path / "m.json"
    old.write_text("old contents\n")
    result = runner.invoke(cli, [command, write_csv(BAD_DATA), "-o", str(old)])
    assert_error(result, 3, "missing values")
    assert old.read_text() == "old contents\n"
    assert leftovers(tmp_path) == []


def test_strict_failure_leaves_the_old_model_file_alone(runner, houses_csv, tmp_path):
    old = tmp_path / "m.json"
    old.write_text("old contents\n")
    result = runner.invoke(cli, ["linreg", houses_csv, "--strict", "--epochs", "1", "-o", str(old)])
    assert result.exit_code == 5
    assert old.read_text() == "old contents\n"
    assert leftovers(tmp_path) == []


def test_successful_fit_replaces_the_model_file(runner, houses_csv, tmp_path, strict_json):
    old = tmp_path / "m.json"
    old.write_text("old contents\n")
    fit_and_save(runner, houses_csv, old)
    assert strict_json(old.read_text())["format"] == "mlfit-model"
    assert leftovers(tmp_path) == []


def test_predict_failure_leaves_the_old_output_alone(
    runner, assert_error, model_path, write_csv, tmp_path
):
    out = tmp_path / "pred.csv"
    out.write_text("old predictions\n")
    data = write_csv("area,district\n50,north\n60,west\n", name="new.csv")
    result = runner.invoke(cli, ["predict", str(model_path), data, "--output", str(out)])
    assert_error(result, 3, "'district'", "'west'")
    assert out.read_text() == "old predictions\n"
    assert leftovers(tmp_path) == []


def test_atomic_write_removes_its_temporary_file_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("before")
    with pytest.raises(RuntimeError), atomic_write(str(path)) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "before"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_success(tmp_path):
    path = tmp_path / "out.txt"
    with atomic_write(str(path)) as f:
        f.write("after")
    assert path.read_text() == "after"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_bug_in_a_solver_is_not_called_a_damaged_file(
    runner, model_path, houses_csv, monkeypatch
):
    """Parameters are checked when the file is loaded, so an exception inside predict is a bug
    (exit 1, 'internal error'), never 'damaged model file' (exit 4)."""
    from mlfit.solvers import normal_eq

    def broken(params, data):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(normal_eq, "predict", broken)
    result = predict(runner, model_path, houses_csv)
    assert result.exit_code == 1
    assert "internal error" in result.stderr and "damaged" not in result.stderr
