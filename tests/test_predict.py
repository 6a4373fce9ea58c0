"""`mlfit predict`: predictions equal the fitted values, in input row order, with an --id column
copied through; CSV or JSON Lines, stdout or --output; clear errors for data that does not fit
the model."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from mlfit.cli import cli


def fit_model(runner, data, path, *args, command="normal-eq"):
    result = runner.invoke(cli, [command, str(data), "-o", str(path), "--quiet", *args])
    assert result.exit_code == 0, result.stderr
    return path


def read_csv_output(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def design_by_hand(df, poly: bool = False) -> np.ndarray:
    """[1, area, rooms, district=north, district=south (, area^2, area*rooms, rooms^2)]."""
    cols = [np.ones(len(df)), df.area, df.rooms, df.district == "north", df.district == "south"]
    if poly:
        cols += [df.area**2, df.area * df.rooms, df.rooms**2]
    return np.column_stack(cols).astype(float)


def by_hand(df, poly: bool = False) -> np.ndarray:
    """Fitted values of price on design_by_hand(df, poly), by lstsq."""
    X = design_by_hand(df, poly)
    beta, *_ = np.linalg.lstsq(X, df.price.to_numpy(float), rcond=None)
    return X @ beta


@pytest.fixture
def model(runner, houses_csv, tmp_path):
    return fit_model(runner, houses_csv, tmp_path / "houses.model", "-y", "price", "--drop", "id")


@pytest.mark.parametrize("poly", [False, True])
def test_predictions_equal_fitted_values(runner, houses, houses_csv, tmp_path, poly):
    path = fit_model(
        runner,
        houses_csv,
        tmp_path / "m.json",
        "-y",
        "price",
        "--drop",
        "id",
        *(["--poly", "2"] if poly else []),
    )
    result = runner.invoke(cli, ["predict", str(path), houses_csv])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    rows = read_csv_output(result.stdout)
    assert list(rows[0]) == ["prediction"]
    got = np.array([float(r["prediction"]) for r in rows])
    np.testing.assert_allclose(got, by_hand(houses, poly), rtol=1e-10)
    params = json.loads(path.read_text())["params"]  # the model's coefficients, applied by hand
    beta = np.array([params["intercept"], *params["coef"]])
    np.testing.assert_allclose(got, design_by_hand(houses, poly) @ beta, rtol=1e-13)


def test_no_intercept_model(runner, houses, houses_csv, tmp_path):
    path = fit_model(
        runner, houses_csv, tmp_path / "m.json", "-y", "price", "--drop", "id", "--no-intercept"
    )
    result = runner.invoke(cli, ["predict", str(path), houses_csv])
    assert result.exit_code == 0, result.stderr
    X = np.column_stack(
        [
            houses.area,
            houses.rooms,
            houses.district == "centre",
            houses.district == "north",
            houses.district == "south",
        ]
    ).astype(float)
    beta, *_ = np.linalg.lstsq(X, houses.price.to_numpy(float), rcond=None)
    got = [float(r["prediction"]) for r in read_csv_output(result.stdout)]
    np.testing.assert_allclose(got, X @ beta, rtol=1e-10)


def test_predictions_follow_input_row_order(runner, model, houses, write_csv):
    shuffled = houses.sample(frac=1.0, random_state=5).drop(columns=["price"])
    path = write_csv(shuffled.to_csv(index=False), name="shuffled.csv")
    result = runner.invoke(cli, ["predict", str(model), path, "--id", "id"])
    assert result.exit_code == 0, result.stderr
    rows = read_csv_output(result.stdout)
    assert list(rows[0]) == ["id", "prediction"]
    assert [int(r["id"]) for r in rows] == shuffled.id.tolist()
    fitted = dict(zip(houses.id, by_hand(houses)))
    np.testing.assert_allclose(
        [float(r["prediction"]) for r in rows], [fitted[i] for i in shuffled.id], rtol=1e-10
    )


def test_json_lines_output_keeps_integer_ids(runner, model, houses_csv, houses):
    result = runner.invoke(cli, ["predict", str(model), houses_csv, "--id", "id", "--json"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(houses)
    records = [json.loads(line) for line in lines]
    assert all(list(r) == ["id", "prediction"] for r in records)
    assert [r["id"] for r in records] == houses.id.tolist()
    assert all(type(r["id"]) is int for r in records)
    np.testing.assert_allclose([r["prediction"] for r in records], by_hand(houses), rtol=1e-10)


@pytest.mark.parametrize(
    ("ids", "csv_out", "json_out"),
    [
        (["007", "010", "3"], ["007", "010", "3"], ["007", "010", "3"]),  # zero padding kept
        (["a-1", "b-2", "c-3"], ["a-1", "b-2", "c-3"], ["a-1", "b-2", "c-3"]),
        (["1.50", "2", "3"], ["1.50", "2", "3"], ["1.50", "2", "3"]),
        (["-4", "", "12"], ["-4", "", "12"], [-4, None, 12]),
        (
            ["2021-03-04", "2021-03-05", "2021-03-06"],
            ["2021-03-04", "2021-03-05", "2021-03-06"],
            ["2021-03-04", "2021-03-05", "2021-03-06"],
        ),
    ],
)
def test_id_column_is_copied_unchanged(runner, model, write_csv, ids, csv_out, json_out):
    body = "".join(f"{i},{a},2,north\n" for i, a in zip(ids, (50, 60, 70)))
    path = write_csv("key,area,rooms,district\n" + body, name="new.csv")
    result = runner.invoke(cli, ["predict", str(model), path, "--id", "key"])
    assert result.exit_code == 0, result.stderr
    assert [r["key"] for r in read_csv_output(result.stdout)] == csv_out
    result = runner.invoke(cli, ["predict", str(model), path, "--id", "key", "--json"])
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["key"] for line in result.stdout.splitlines()] == json_out


def test_id_column_from_parquet_keeps_its_type(runner, model, houses, tmp_path):
    path = tmp_path / "new.parquet"
    houses.assign(id=houses.id.astype(str).str.zfill(3)).to_parquet(path)
    result = runner.invoke(cli, ["predict", str(model), str(path), "--id", "id", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["id"] == "001"


def test_date_id_column_from_parquet(runner, model, houses, tmp_path):
    import datetime

    path = tmp_path / "new.parquet"
    days = [datetime.date(2024, 1, 1) + datetime.timedelta(days=i) for i in range(len(houses))]
    houses.assign(day=days).to_parquet(path)
    for args in ([], ["--json"]):
        result = runner.invoke(cli, ["predict", str(model), str(path), "--id", "day", *args])
        assert result.exit_code == 0, result.stderr
        first = result.stdout.splitlines()[0 if args else 1]
        assert "2024-01-01" in first


def test_id_may_also_be_a_feature(runner, model, houses_csv, houses):
    result = runner.invoke(cli, ["predict", str(model), houses_csv, "--id", "rooms", "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rooms"] for r in records] == houses.rooms.tolist()
    np.testing.assert_allclose([r["prediction"] for r in records], by_hand(houses), rtol=1e-10)


def test_output_file(runner, model, houses_csv, houses, tmp_path):
    out = tmp_path / "pred.csv"
    result = runner.invoke(cli, ["predict", str(model), houses_csv, "--output", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    rows = read_csv_output(out.read_text())
    np.testing.assert_allclose([float(r["prediction"]) for r in rows], by_hand(houses), rtol=1e-10)
    assert [n for n in tmp_path.iterdir() if n.name.endswith(".tmp")] == []


def test_output_file_json_lines(runner, model, houses_csv, houses, tmp_path):
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(cli, ["predict", str(model), houses_csv, "--json", "--output", str(out)])
    assert result.exit_code == 0, result.stderr
    assert len([json.loads(line) for line in out.read_text().splitlines()]) == len(houses)


def test_extra_columns_are_ignored(runner, model, houses, write_csv):
    extra = houses.drop(columns=["price"]).assign(
        note=['x, "quoted"'] * len(houses), when="2020-01-01", empty=""
    )
    extra = extra[["note", "district", "when", "area", "empty", "rooms", "id"]]
    path = write_csv(extra.to_csv(index=False), name="extra.csv")
    result = runner.invoke(cli, ["predict", str(model), path])
    assert result.exit_code == 0, result.stderr
    got = [float(r["prediction"]) for r in read_csv_output(result.stdout)]
    np.testing.assert_allclose(got, by_hand(houses), rtol=1e-10)


def test_predict_from_other_formats_and_stdin(runner, model, houses, tmp_path):
    data = houses.drop(columns=["price"])
    data.to_parquet(tmp_path / "new.parquet")
    data.to_json(tmp_path / "new.jsonl.gz", orient="records", lines=True, compression="gzip")
    expected = by_hand(houses)
    for args, stdin in [
        ([str(tmp_path / "new.parquet")], None),
        ([str(tmp_path / "new.jsonl.gz")], None),
        (["-"], data.to_csv(index=False).encode()),
    ]:
        result = runner.invoke(cli, ["predict", str(model), *args], input=stdin)
        assert result.exit_code == 0, result.stderr
        got = [float(r["prediction"]) for r in read_csv_output(result.stdout)]
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_linreg_model_predicts_like_normal_eq(runner, houses_csv, houses, tmp_path):
    path = fit_model(
        runner,
        houses_csv,
        tmp_path / "lin.json",
        "-y",
        "price",
        "--drop",
        "id",
        "--seed",
        "2",
        "--epochs",
        "5000",
        command="linreg",
    )
    result = runner.invoke(cli, ["predict", str(path), houses_csv])
    assert result.exit_code == 0, result.stderr
    got = [float(r["prediction"]) for r in read_csv_output(result.stdout)]
    np.testing.assert_allclose(got, by_hand(houses), rtol=1e-4)


def test_text_levels_that_look_numeric_here(runner, write_csv, tmp_path):
    # 'floor' is text at fit time (G, B), but the new file only has the numeric floors.
    train = write_csv("x,floor,y\n1,1,1\n2,2,3\n3,G,2\n4,B,5\n5,1,4\n6,2,7\n7,G,6\n8,B,9\n")
    path = fit_model(runner, train, tmp_path / "m.json")
    result = runner.invoke(cli, ["predict", str(path), train])
    full = [float(r["prediction"]) for r in read_csv_output(result.stdout)]
    new = write_csv("x,floor\n1,1\n2,2\n", name="new.csv")
    result = runner.invoke(cli, ["predict", str(path), new])
    assert result.exit_code == 0, result.stderr
    assert [float(r["prediction"]) for r in read_csv_output(result.stdout)] == full[:2]


# --------------------------------------------------------------------------- errors


def test_missing_feature_column(runner, assert_error, model, write_csv):
    path = write_csv("area,district\n50,north\n", name="new.csv")
    assert_error(
        runner.invoke(cli, ["predict", str(model), path]),
        3,
        "'rooms'",
        "model's feature",
        "not found",
        "columns: area, district",
    )


def test_missing_id_column(runner, assert_error, model, houses_csv):
    assert_error(
        runner.invoke(cli, ["predict", str(model), houses_csv, "--id", "ident"]),
        3,
        "'ident'",
        "--id",
        "did you mean 'id'",
    )


def test_unseen_level(runner, assert_error, model, write_csv):
    path = write_csv("area,rooms,district\n50,2,north\n60,3,harbour\n", name="new.csv")
    assert_error(
        runner.invoke(cli, ["predict", str(model), path]),
        3,
        "column 'district'",
        "'harbour'",
        "row 2",
        "never saw",
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("50,2,north\n,3,south\n", ["'area'", "missing", "row 2"]),
        ("50,2,north\n60,two,south\n", ["'rooms'", "numeric", "row 2", "'two'"]),
        ("50,2,north\ninf,3,south\n", ["'area'", "infinite", "row 2"]),
        ("50,2,north\n60,3,\n", ["'district'", "missing"]),
    ],
)
def test_bad_values(runner, assert_error, model, write_csv, body, words):
    path = write_csv("area,rooms,district\n" + body, name="new.csv")
    assert_error(runner.invoke(cli, ["predict", str(model), path]), 3, *words)


def test_missing_data_file(runner, assert_error, model, tmp_path):
    assert_error(
        runner.invoke(cli, ["predict", str(model), str(tmp_path / "none.csv")]), 3, "not found"
    )


def test_an_unseen_level_is_named_by_its_row_in_the_file(
    runner, assert_error, model, write_csv, tmp_path
):
    """Predict reads in chunks; the message still counts rows from the start of the file."""
    body = "".join(f"{50 + i},2,north\n" for i in range(7)) + "60,3,harbour\n"
    path = write_csv("area,rooms,district\n" + body, name="new.csv")
    result = runner.invoke(cli, ["predict", str(model), path, "--chunk-rows", "3"])
    assert result.exit_code == 3  # rows of earlier chunks are already on stdout, as in a pipe
    assert "'harbour'" in result.stderr and "row 8," in result.stderr
    output = tmp_path / "out.csv"
    written = runner.invoke(
        cli, ["predict", str(model), path, "--chunk-rows", "3", "--output", str(output)]
    )
    assert_error(written, 3, "'harbour'", "row 8,")
    assert not output.exists()  # --output is all or nothing


def test_text_levels_arriving_as_numbers_match_by_value(runner, write_csv, tmp_path):
    """'floor' is text when fitted (1, 2, G); a Parquet file with only the numeric floors holds
    numbers, which are matched to the levels by value."""
    import pandas as pd

    train = write_csv("x,floor,y\n1,1,1\n2,2,3\n3,G,2\n4,B,5\n5,1,4\n6,2,7\n7,G,6\n8,B,9\n")
    path = fit_model(runner, train, tmp_path / "m.json")
    full = runner.invoke(cli, ["predict", str(path), train])
    expected = [float(r["prediction"]) for r in read_csv_output(full.stdout)][:2]
    parquet = tmp_path / "new.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "floor": [1, 2]}).to_parquet(parquet)
    result = runner.invoke(cli, ["predict", str(path), str(parquet)])
    assert result.exit_code == 0, result.stderr
    assert [float(r["prediction"]) for r in read_csv_output(result.stdout)] == expected
