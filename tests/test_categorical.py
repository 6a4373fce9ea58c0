"""--categorical: numeric codes as categories in every command that reads features, CSV and
Parquet alike, the same encoding at predict time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_json import fit_json
from sklearn.naive_bayes import CategoricalNB

from mlfit.cli import cli


@pytest.fixture
def coded(tmp_path, rng):
    """x, agecat (codes 1..3), a numeric target y and a label; as CSV and Parquet."""
    n = 60
    agecat = rng.integers(1, 4, n)
    x = rng.normal(size=n).round(3)
    y = (x + agecat + rng.normal(size=n)).round(3)
    frame = pd.DataFrame({"x": x, "agecat": agecat, "y": y, "label": np.where(y > 2.5, "hi", "lo")})
    frame.to_csv(tmp_path / "coded.csv", index=False)
    frame.to_parquet(tmp_path / "coded.parquet")
    return frame, tmp_path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_normal_eq_one_hot_encodes_the_codes(runner, coded, fmt):
    frame, tmp = coded
    path = str(tmp / f"coded.{fmt}")
    doc = fit_json(
        runner, "normal-eq", path, "-y", "y", "--drop", "label", "--categorical", "agecat"
    )
    assert list(doc["coefficients"]) == ["intercept", "x", "agecat=2", "agecat=3"]
    A = np.column_stack([np.ones(len(frame)), frame.x, frame.agecat == 2, frame.agecat == 3])
    b, *_ = np.linalg.lstsq(A.astype(float), frame.y, rcond=None)
    estimate = [doc["coefficients"][k]["estimate"] for k in doc["coefficients"]]
    np.testing.assert_allclose(estimate, b, rtol=1e-10)
    plain = fit_json(runner, "normal-eq", path, "-y", "y", "--drop", "label")
    assert list(plain["coefficients"]) == ["intercept", "x", "agecat"]


def test_csv_and_parquet_and_chunks_agree(runner, coded):
    _, tmp = coded
    args = ["-y", "label", "--drop", "y", "--categorical", "agecat"]
    docs = [
        fit_json(runner, "naive-bayes", str(tmp / f"coded.{fmt}"), *args, *chunks)
        for fmt in ("csv", "parquet")
        for chunks in ([], ["--chunk-rows", "7"])
    ]
    for doc in docs[1:]:
        assert doc["categorical"] == docs[0]["categorical"]
        assert doc["metrics"]["log_loss"] == pytest.approx(docs[0]["metrics"]["log_loss"])
    assert list(docs[0]["categorical"]) == ["agecat=1", "agecat=2", "agecat=3"]


def test_naive_bayes_codes_match_categorical_nb(runner, coded):
    frame, tmp = coded
    model = str(tmp / "nb.model")
    path = str(tmp / "coded.csv")
    args = ["naive-bayes", path, "-y", "label", "-x", "agecat", "--categorical", "agecat"]
    result = runner.invoke(cli, [*args, "-o", model, "-q"])
    assert result.exit_code == 0, result.stderr
    out = runner.invoke(cli, ["predict", model, str(tmp / "coded.parquet"), "--proba"])
    assert out.exit_code == 0, out.stderr
    ours = np.loadtxt(out.stdout.splitlines()[1:], delimiter=",", usecols=(1, 2))
    sk = CategoricalNB().fit(frame[["agecat"]] - 1, frame.label)
    np.testing.assert_allclose(ours, sk.predict_proba(frame[["agecat"]] - 1), atol=1e-12)


def test_predict_reads_the_same_encoding_from_either_format(runner, coded):
    _, tmp = coded
    outputs = []
    for fit_fmt in ("csv", "parquet"):
        model = str(tmp / f"{fit_fmt}.model")
        args = ["logreg", str(tmp / f"coded.{fit_fmt}"), "-y", "label", "--drop", "y"]
        result = runner.invoke(cli, [*args, "--categorical", "agecat", "-o", model, "-q"])
        assert result.exit_code == 0, result.stderr
        for data_fmt in ("csv", "parquet"):
            out = runner.invoke(cli, ["predict", model, str(tmp / f"coded.{data_fmt}"), "--proba"])
            assert out.exit_code == 0, out.stderr
            outputs.append(out.stdout)
    assert len(set(outputs)) == 1
    assert outputs[0].splitlines()[0] == "prediction,p_hi,p_lo"


def test_a_code_never_seen_is_smoothed_by_naive_bayes_and_an_error_for_normal_eq(
    runner, coded, write_csv
):
    _, tmp = coded
    new = write_csv("x,agecat\n0.5,9\n", "new.csv")
    for command, target, drop in (("naive-bayes", "label", "y"), ("normal-eq", "y", "label")):
        model = str(tmp / f"{command}.model")
        args = [command, str(tmp / "coded.csv"), "-y", target, "--drop", drop]
        result = runner.invoke(cli, [*args, "--categorical", "agecat", "-o", model, "-q"])
        assert result.exit_code == 0, result.stderr
        out = runner.invoke(cli, ["predict", model, new])
        if command == "naive-bayes":
            assert out.exit_code == 0, out.stderr
        else:
            assert out.exit_code == 3 and "never saw" in out.stderr


@pytest.mark.parametrize(
    "command, args",
    [
        ("normal-eq", ["-y", "y", "--drop", "label"]),
        ("logreg", ["-y", "label", "--drop", "y"]),
        ("naive-bayes", ["-y", "label", "--drop", "y"]),
    ],
)
def test_unknown_column_did_you_mean(runner, coded, command, args):
    _, tmp = coded
    result = runner.invoke(cli, [command, str(tmp / "coded.csv"), *args, "--categorical", "agecta"])
    assert result.exit_code == 3
    assert "Column 'agecta' (a --categorical column) not found" in result.stderr
    assert "Did you mean 'agecat'?" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["-y", "y", "--drop", "label", "--categorical", "y"], "which is the target"),
        (["-y", "y", "--drop", "label,agecat", "--categorical", "agecat"], "not a feature"),
    ],
)
def test_categorical_must_name_a_feature(runner, coded, args, message):
    _, tmp = coded
    result = runner.invoke(cli, ["normal-eq", str(tmp / "coded.csv"), *args])
    assert result.exit_code == 3 and message in result.stderr


def test_numeric_only_models_refuse_it(runner, coded):
    _, tmp = coded
    args = ["gmm", str(tmp / "coded.csv"), "--drop", "label", "--categorical", "agecat"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 3 and "numeric features only" in result.stderr


def test_a_code_written_another_way_is_the_same_level():
    from mlfit.design import build_design

    levels = np.array(["1", "2", "10"], dtype=object)
    design, _ = build_design(["c"], {"c": levels}, False, categorical=True)
    X, _ = design.transform({"c": np.array(["2.0", "02", "10", "3"], dtype=object)})
    assert design.names == ["c=1", "c=10", "c=2"]
    np.testing.assert_array_equal(X, [[0, 0, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0]])
