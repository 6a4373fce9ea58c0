"""DATA as a glob or a directory of parts: one stream, the answers of the concatenated table,
and each part's problems reported as for that file alone."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from cli_json import fit_json

from mlfit.cli import cli

HEADER = ["x1", "x2", "g", "y"]


def table(rng, n=90):
    X = rng.normal(size=(n, 2))
    g = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    g[-1] = "d"  # a level only the last part has: the design must still include it
    y = X @ [1.5, -2.0] + (g == "b") * 0.7 + rng.normal(size=n)
    return X, g, y


def write_parts(tmp_path, X, g, y, fmt="csv", parts=3, compress=False, name="parts"):
    """The table split into `parts` files of format fmt in tmp_path/name; returns the dir."""
    columns = {"x1": X[:, 0], "x2": X[:, 1], "g": g, "y": y}
    return write_table_parts(tmp_path, columns, fmt, parts, compress, name)


def write_table_parts(tmp_path, columns: dict, fmt="csv", parts=3, compress=False, name="parts"):
    """Columns (name -> array) split into `parts` files of format fmt (gzipped if compress)
    in tmp_path/name, beside a Spark-style _SUCCESS marker; returns the directory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / name
    folder.mkdir()
    header = list(columns)
    n = len(next(iter(columns.values())))
    bounds = np.linspace(0, n, parts + 1).astype(int)
    for k in range(parts):
        t = pa.table({c: v[bounds[k] : bounds[k + 1]] for c, v in columns.items()})
        path = folder / f"part-{k:03d}.{fmt}"
        if fmt == "parquet":
            pq.write_table(t, path)
            continue
        rows = [[r[c] for c in header] for r in t.to_pylist()]
        if fmt == "jsonl":
            text = "".join(json.dumps(dict(zip(header, row))) + "\n" for row in rows)
        else:
            sep = "\t" if fmt == "tsv" else ","
            text = "".join(sep.join(map(str, r)) + "\n" for r in [header, *rows])
        if compress:
            with gzip.open(f"{path}.gz", "wt") as f:
                f.write(text)
        else:
            path.write_text(text)
    (folder / "_SUCCESS").write_text("")  # Spark's marker is not a part
    return folder


def whole_csv(tmp_path, X, g, y):
    path = tmp_path / "whole.csv"
    rows = [HEADER, *[[*X[i], g[i], y[i]] for i in range(len(y))]]
    path.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    "fmt,compress",
    [("csv", False), ("csv", True), ("tsv", True), ("parquet", False), ("jsonl", True)],
)
def test_parts_fit_equals_the_whole_table(runner, rng, tmp_path, fmt, compress):
    X, g, y = table(rng)
    folder = write_parts(tmp_path, X, g, y, fmt, compress=compress)
    whole = fit_json(runner, "normal-eq", whole_csv(tmp_path, X, g, y), "-y", "y")
    pattern = str(folder / f"part-*.{fmt}") + (".gz" if compress else "")
    for data in (pattern, str(folder)):
        parts = fit_json(runner, "normal-eq", data, "-y", "y")
        assert parts["data"]["rows_read"] == 90 and parts["data"]["source"] == data
        assert list(parts["coefficients"]) == list(whole["coefficients"])  # g=d included
        for name, row in whole["coefficients"].items():
            assert parts["coefficients"][name]["estimate"] == pytest.approx(
                row["estimate"], rel=1e-10
            )


def test_parts_for_every_chunk_reading_model(runner, rng, tmp_path):
    X, g, y = table(rng)
    folder = write_parts(tmp_path, X, g, (y > 0).astype(int), "parquet")
    whole = whole_csv(tmp_path, X, g, (y > 0).astype(int))
    for args in (
        ["newton", "-y", "y", "--family", "logistic", "--drop", "g"],
        ["naive-bayes", "-y", "y"],
    ):
        a = fit_json(runner, args[0], whole, *args[1:], "--chunk-rows", "30")
        b = fit_json(runner, args[0], str(folder), *args[1:])
        for key, value in a["metrics"].items():
            if isinstance(value, float):
                assert b["metrics"][key] == pytest.approx(value, rel=1e-10), (args[0], key)


def test_predict_on_parts_equals_the_whole(runner, rng, tmp_path):
    X, g, y = table(rng)
    folder = write_parts(tmp_path, X, g, y, "csv")
    whole = whole_csv(tmp_path, X, g, y)
    model = str(tmp_path / "m.model")
    assert runner.invoke(cli, ["normal-eq", whole, "-y", "y", "-q", "-o", model]).exit_code == 0
    a = runner.invoke(cli, ["predict", model, whole])
    b = runner.invoke(cli, ["predict", model, str(folder / "*.csv"), "--chunk-rows", "7"])
    assert b.exit_code == 0, b.stderr
    assert a.stdout == b.stdout


def test_a_bad_part_is_reported_as_that_file_alone(runner, rng, tmp_path):
    X, g, y = table(rng)
    folder = write_parts(tmp_path, X, g, y, "csv")
    bad = folder / "part-001.csv"
    lines = bad.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[1], "oops", 1)
    bad.write_text("\n".join(lines) + "\n")
    alone = runner.invoke(cli, ["normal-eq", str(bad), "-y", "y", "--chunk-rows", "4"])
    parts = runner.invoke(cli, ["normal-eq", str(folder), "-y", "y"])
    assert parts.exit_code == alone.exit_code == 3
    assert parts.stderr == alone.stderr
    assert "part-001.csv" in parts.stderr and "line 6" in parts.stderr


def test_parts_that_cannot_be_one_table(runner, rng, tmp_path, write_csv):
    X, g, y = table(rng)
    folder = write_parts(tmp_path, X, g, y, "csv")
    (folder / "part-009.parquet").write_bytes(b"PAR1")  # named parquet: its format
    mixed = runner.invoke(cli, ["normal-eq", str(folder), "-y", "y"])
    assert mixed.exit_code == 3 and "share a format" in mixed.stderr
    (folder / "part-009.parquet").unlink()
    (folder / "part-009.csv").write_text("x1,g,y\n1,a,2\n")
    other = runner.invoke(cli, ["normal-eq", str(folder), "-y", "y"])
    assert other.exit_code == 3 and "part-009.csv has other columns" in other.stderr
    none = runner.invoke(cli, ["normal-eq", str(tmp_path / "nothing-*.csv"), "-y", "y"])
    assert none.exit_code == 3 and "No files match" in none.stderr
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(cli, ["normal-eq", str(tmp_path / "empty"), "-y", "y"])
    assert empty.exit_code == 3 and "holds no data files" in empty.stderr


def test_in_memory_models_refuse_parts(runner, rng, tmp_path):
    X, g, y = table(rng)
    folder = write_parts(tmp_path, X, g, y, "csv")
    result = runner.invoke(cli, ["linreg", str(folder), "-y", "y"])
    assert result.exit_code == 3
    assert "linreg fits one table in memory" in result.stderr and "normal-eq" in result.stderr
