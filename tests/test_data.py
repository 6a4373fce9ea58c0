"""The loader: every format and compression, stdin, column selection, and every input error
reported as one clear line with exit code 3."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import lzma

import numpy as np
import pandas as pd
import pytest
import zstandard

from mlfit.cli import cli
from mlfit.data import ChunkStream, Selection, load_dataset, resolve_columns
from mlfit.errors import DataError

FIT = ["normal-eq", "-y", "price", "--drop", "id", "--json", "--quiet"]

COMPRESSORS = {
    "": lambda b: b,
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".zst": lambda b: zstandard.ZstdCompressor().compress(b),
}

# (format, extension): "" means no extension, so the format must be sniffed from the bytes.
FORMATS = [
    ("csv", ".csv"),
    ("csv", ""),
    ("tsv", ".tsv"),
    ("tsv", ".tab"),
    ("tsv", ""),
    ("parquet", ".parquet"),
    ("parquet", ""),
    ("jsonl", ".jsonl"),
    ("jsonl", ".ndjson"),
    ("jsonl", ""),
]


def encode(df: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    if fmt == "tsv":
        return df.to_csv(index=False, sep="\t").encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    assert fmt == "jsonl"
    return df.to_json(orient="records", lines=True).encode()


def coefficients(stdout: str, strict_json) -> dict[str, float]:
    return {k: v["estimate"] for k, v in strict_json(stdout)["coefficients"].items()}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, houses_base):
    """Every format x compression of the same table, in one directory."""
    d = tmp_path_factory.mktemp("formats")
    for fmt, ext in FORMATS:
        raw = encode(houses_base, fmt)
        for suffix, compress in COMPRESSORS.items():
            (d / f"houses_{fmt}{ext}{suffix}").write_bytes(compress(raw))
    return d


@pytest.fixture(scope="module")
def reference(houses_base):
    """Least-squares coefficients of the table, by numpy, in mlfit's parameter order."""
    df = houses_base
    X = np.column_stack(
        [np.ones(len(df)), df.area, df.rooms, df.district == "north", df.district == "south"]
    ).astype(float)
    beta, *_ = np.linalg.lstsq(X, df.price.to_numpy(float), rcond=None)
    return dict(zip(["intercept", "area", "rooms", "district=north", "district=south"], beta))


def assert_same_fit(coefs: dict, reference: dict) -> None:
    assert list(coefs) == list(reference)
    np.testing.assert_allclose(list(coefs.values()), list(reference.values()), rtol=1e-10)


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("compression", list(COMPRESSORS))
@pytest.mark.parametrize(("fmt", "ext"), FORMATS)
def test_every_format_and_compression_gives_the_same_fit(
    runner, data_dir, reference, strict_json, fmt, ext, compression
):
    path = data_dir / f"houses_{fmt}{ext}{compression}"
    result = runner.invoke(cli, [FIT[0], str(path), *FIT[1:]])
    assert result.exit_code == 0, result.stderr
    assert_same_fit(coefficients(result.stdout, strict_json), reference)


@pytest.mark.parametrize("compression", ["", ".gz", ".xz", ".zst"])
@pytest.mark.parametrize(
    ("fmt", "ext"),
    [("csv", ".csv"), ("tsv", ""), ("parquet", ".parquet"), ("parquet", ""), ("jsonl", ".jsonl")],
)
def test_chunked_fit_matches_in_memory_fit(
    runner, data_dir, reference, strict_json, fmt, ext, compression
):
    path = data_dir / f"houses_{fmt}{ext}{compression}"
    result = runner.invoke(cli, [FIT[0], str(path), *FIT[1:], "--chunk-rows", "7"])
    assert result.exit_code == 0, result.stderr
    assert_same_fit(coefficients(result.stdout, strict_json), reference)
    assert strict_json(result.stdout)["data"]["rows_used"] == 30


@pytest.mark.parametrize(("fmt", "ext"), FORMATS)
def test_loaded_columns_equal_the_written_table(data_dir, houses_base, fmt, ext):
    ds = load_dataset(
        str(data_dir / f"houses_{fmt}{ext}.gz"), Selection(target="price", drop=("id",))
    )
    assert ds.target == "price"
    assert ds.features == ["area", "rooms", "district"]
    np.testing.assert_array_equal(ds.y, houses_base.price.to_numpy(float))
    np.testing.assert_array_equal(ds.columns["area"], houses_base.area.to_numpy(float))
    np.testing.assert_array_equal(ds.columns["rooms"], houses_base.rooms.to_numpy(float))
    assert ds.columns["district"].tolist() == houses_base.district.tolist()


def test_tsv_is_sniffed_by_tabs_not_by_extension(write_csv):
    path = write_csv("a\tb\ty\n1\t2\t3\n2\t1\t5\n3\t5\t4\n4\t3\t9\n", name="table.txt")
    ds = load_dataset(path, Selection())
    assert ds.features == ["a", "b"]
    np.testing.assert_array_equal(ds.y, [3, 5, 4, 9])


# --------------------------------------------------------------------------- stdin


@pytest.mark.parametrize("name", ["houses_csv.csv", "houses_parquet.parquet.zst"])
def test_stdin_through_a_real_pipe(mlfit_proc, data_dir, reference, strict_json, name):
    proc = mlfit_proc(*FIT[:1], "-", *FIT[1:], input=(data_dir / name).read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    out = strict_json(proc.stdout.decode())
    assert out["data"]["source"] == "<stdin>"
    assert_same_fit({k: v["estimate"] for k, v in out["coefficients"].items()}, reference)


@pytest.mark.parametrize(
    "name",
    [
        "houses_csv.csv",
        "houses_tsv.tsv",
        "houses_jsonl.jsonl.gz",
        "houses_parquet.parquet.xz",
        "houses_csv.bz2",
    ],
)
def test_stdin_through_clirunner(runner, data_dir, reference, strict_json, name):
    result = runner.invoke(cli, [FIT[0], "-", *FIT[1:]], input=(data_dir / name).read_bytes())
    assert result.exit_code == 0, result.stderr
    assert_same_fit(coefficients(result.stdout, strict_json), reference)


def test_empty_stdin_is_an_error(runner, assert_error):
    result = runner.invoke(cli, ["normal-eq", "-"], input=b"")
    assert_error(result, 3, "standard input is empty")


# --------------------------------------------------------------------------- choosing columns


def fit_json(runner, strict_json, path, *args):
    result = runner.invoke(cli, ["normal-eq", path, "--json", "--quiet", *args])
    assert result.exit_code == 0, result.stderr
    return strict_json(result.stdout)


def test_target_defaults_to_the_last_column(runner, strict_json, houses_csv):
    out = fit_json(runner, strict_json, houses_csv)
    assert out["target"] == "price"
    assert out["features"] == ["id", "area", "rooms", "district"]


@pytest.mark.parametrize("flag", ["-y", "--target"])
def test_target_option(runner, strict_json, houses_csv, flag):
    out = fit_json(runner, strict_json, houses_csv, flag, "area")
    assert out["target"] == "area"
    assert out["features"] == ["id", "rooms", "district", "price"]


@pytest.mark.parametrize("value", ["rooms,area", " rooms , area ", "rooms,area,"])
@pytest.mark.parametrize("flag", ["-x", "--features"])
def test_features_option_keeps_the_given_order(runner, strict_json, houses_csv, flag, value):
    out = fit_json(runner, strict_json, houses_csv, flag, value)
    assert out["features"] == ["rooms", "area"]
    assert list(out["coefficients"]) == ["intercept", "rooms", "area"]


def test_drop_option(runner, strict_json, houses_csv):
    out = fit_json(runner, strict_json, houses_csv, "--drop", "id,rooms")
    assert out["features"] == ["area", "district"]


def test_drop_applies_to_features(runner, strict_json, houses_csv):
    out = fit_json(runner, strict_json, houses_csv, "-x", "area,rooms,id", "--drop", "id")
    assert out["features"] == ["area", "rooms"]


def test_resolve_columns():
    names = ["id", "a", "b", "y"]
    assert resolve_columns(names, Selection(), "f") == ("y", ["id", "a", "b"])
    assert resolve_columns(names, Selection(target="a", drop=("id",)), "f") == ("a", ["b", "y"])
    assert resolve_columns(names, Selection(features=("b", "a")), "f") == ("y", ["b", "a"])
    with pytest.raises(DataError, match="No feature columns"):
        resolve_columns(names, Selection(drop=("id", "a", "b")), "f")


def test_dropped_column_of_an_unsupported_type_is_never_read(runner, strict_json, write_csv):
    path = write_csv("a,when,y\n1,2020-01-01,2\n2,2020-01-02,5\n3,2020-01-03,5\n4,2020-01-04,9\n")
    out = fit_json(runner, strict_json, path, "--drop", "when")
    assert out["features"] == ["a"]


# --------------------------------------------------------------------------- missing values


NA_CSV = "a,b,y\n1,2,3\n2,,5\n3,5,\n4,4,9\n5,1,11\n6,,\n7,3,8\n"


@pytest.mark.parametrize("chunks", [[], ["--chunk-rows", "2"]], ids=["in-memory", "chunked"])
def test_missing_values_are_an_error_naming_columns_and_counts(
    runner, assert_error, write_csv, chunks
):
    # chunked: the counts are the whole file's, not the first chunk's
    result = runner.invoke(cli, ["normal-eq", write_csv(NA_CSV), *chunks])
    assert_error(result, 3, "missing values", "'b' (2 rows)", "'y' (2 rows)", "--na drop")


@pytest.mark.parametrize("chunks", [[], ["--chunk-rows", "2"]], ids=["in-memory", "chunked"])
def test_na_drop_drops_rows_and_reports_how_many(runner, strict_json, write_csv, chunks):
    out = fit_json(runner, strict_json, write_csv(NA_CSV), "--na", "drop", *chunks)
    assert out["data"]["rows_read"] == 7
    assert out["data"]["rows_dropped"] == 3
    assert out["data"]["rows_used"] == 4
    complete = write_csv("a,b,y\n1,2,3\n4,4,9\n5,1,11\n7,3,8\n", name="complete.csv")
    expected = fit_json(runner, strict_json, complete)
    np.testing.assert_allclose(
        [v["estimate"] for v in out["coefficients"].values()],
        [v["estimate"] for v in expected["coefficients"].values()],
        rtol=1e-12,
    )


def test_na_drop_warns_on_stderr_unless_quiet(runner, write_csv):
    path = write_csv(NA_CSV)
    loud = runner.invoke(cli, ["normal-eq", path, "--na", "drop", "--json"])
    assert loud.exit_code == 0
    assert "Warning:" in loud.stderr and "dropped 3 row" in loud.stderr
    quiet = runner.invoke(cli, ["normal-eq", path, "--na", "drop", "--json", "--quiet"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_na_drop_in_a_text_column(runner, strict_json, write_csv):
    path = write_csv("a,c,y\n1,u,3\n2,,5\n3,v,4\n4,u,9\n5,v,11\n6,u,8\n")
    out = fit_json(runner, strict_json, path, "--na", "drop")
    assert out["data"]["rows_dropped"] == 1
    assert list(out["coefficients"]) == ["intercept", "a", "c=v"]


# --------------------------------------------------------------------------- errors

OK = "a,b,y\n1,2,3\n2,3,5\n3,5,7\n4,4,9\n5,1,11\n"
STRAY = "a,b,y\n" + "".join(f"{i},{'five' if i == 3 else i % 4},{2 * i}\n" for i in range(1, 12))

# id, file contents (None: no file is written), extra arguments, words the message must contain
ERRORS = [
    ("missing file", None, [], ["not found", "nope.csv"]),
    ("empty file", "", [], ["is empty", "header"]),
    ("header only", "a,b,y\n", [], ["header", "no data rows"]),
    (
        "unknown target",
        OK,
        ["-y", "yy"],
        ["'yy' not found", "did you mean 'y'", "columns: a, b, y"],
    ),
    ("unknown feature", OK, ["-x", "a,bb"], ["'bb' not found", "did you mean 'b'"]),
    ("unknown drop", OK, ["--drop", "aa"], ["'aa' not found", "did you mean 'a'"]),
    (
        "duplicate column",
        "a,b,a,y\n1,2,3,4\n2,3,4,5\n3,5,6,7\n4,1,1,1\n",
        [],
        ["two columns named 'a'", "unique"],
    ),
    (
        "text target",
        "a,b,y\n1,2,3\n2,3,high\n3,5,7\n4,4,9\n5,1,11\n",
        [],
        ["target column 'y'", "not numeric", "row 2 (line 3)", "'high'", "normal-eq"],
    ),
    (
        "inf feature",
        "a,b,y\n1,2,3\n2,3,5\n3,inf,7\n4,4,9\n5,1,11\n",
        [],
        ["column 'b'", "infinite", "row 3 (line 4)"],
    ),
    (
        "-inf feature",
        "a,b,y\n1,2,3\n2,-inf,5\n3,5,7\n4,4,9\n5,1,11\n",
        [],
        ["column 'b'", "infinite", "row 2 (line 3)"],
    ),
    (
        "overflowing target",
        "a,b,y\n1,2,3\n2,3,5\n3,5,7\n4,4,9\n5,1,1e999\n",
        [],
        ["column 'y'", "infinite", "row 5 (line 6)"],
    ),
    (
        "inf after dropped row",
        "a,b,y\n1,2,3\n2,,5\n3,4,7\n4,Infinity,9\n5,1,11\n6,2,3\n",
        ["--na", "drop"],
        ["column 'b'", "infinite", "row 4 (line 5)"],
    ),
    ("too few rows", "a,b,y\n1,2,3\n2,3,5\n", [], ["2 usable rows", "3 parameters"]),
    (
        "too few rows after drop",
        "a,b,y\n1,2,3\n2,,5\n3,5,7\n4,4,\n",
        ["--na", "drop"],
        ["2 usable rows", "3 parameters"],
    ),
    ("every row missing", "a,b,y\n1,,3\n2,,5\n3,,7\n", ["--na", "drop"], ["every row"]),
    (
        "short row",
        "a,b,y\n1,2,3\n2,3,5\n3,5\n4,4,9\n5,1,11\n",
        [],
        ["line 4", "expected 3 fields, found 2"],
    ),
    (
        "long row",
        "a,b,y\n1,2,3\n2,3,5\n3,5,7\n4,4,9,9\n5,1,11\n",
        [],
        ["line 5", "expected 3 fields, found 4"],
    ),
    ("stray word in numbers", STRAY, [], ["column 'b'", "'five'", "row 3 (line 4)", "--na drop"]),
    (
        "stray word, chunked",
        STRAY,
        ["--chunk-rows", "2"],
        ["column 'b'", "'five'", "row 3 (line 4)"],
    ),
    ("features include target", OK, ["-x", "a,y"], ["'y' is the target", "--features"]),
    ("drop the target", OK, ["--drop", "y"], ["'y' is the target", "cannot be dropped"]),
    ("drop the default target", OK, ["-y", "a", "--drop", "a,b"], ["'a' is the target"]),
    ("no features left", OK, ["--drop", "a,b"], ["no feature columns"]),
    (
        "date feature",
        "a,when,y\n1,2020-01-01,2\n2,2020-01-02,5\n3,2020-01-03,5\n",
        [],
        ["column 'when'", "date", "--drop when"],
    ),
]


@pytest.mark.parametrize(
    ("contents", "args", "words"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_input_errors_are_one_clear_line(runner, assert_error, tmp_path, contents, args, words):
    path = tmp_path / "nope.csv"
    if contents is not None:
        path.write_text(contents)
    result = runner.invoke(cli, ["normal-eq", str(path), *args])
    assert_error(result, 3, *words)


@pytest.mark.parametrize("model", ["linreg", "normal-eq"])
def test_errors_name_the_model(runner, assert_error, write_csv, model):
    path = write_csv("a,b,y\n1,2,3\n2,3,high\n3,5,7\n4,4,9\n5,1,11\n")
    assert_error(runner.invoke(cli, [model, path]), 3, "not numeric", model)


def test_directory_is_an_error(runner, assert_error, tmp_path):
    assert_error(runner.invoke(cli, ["normal-eq", str(tmp_path)]), 3, "directory")


def test_stray_word_after_the_first_block_of_a_chunked_read(runner, assert_error, write_csv):
    # The chunked CSV reader fixes column types from its first 4 MiB block; a word after that
    # must still be reported with its column and row.
    lines = [f"{i},{i % 7},{2 * i}" for i in range(360_000)]
    lines[350_000] = "350000,five,1"
    path = write_csv("a,b,y\n" + "\n".join(lines) + "\n")
    result = runner.invoke(cli, ["normal-eq", path, "--chunk-rows", "100000"])
    assert_error(result, 3, "column 'b'", "'five'", "row 350001 (line 350002)")


def test_a_stray_word_is_never_one_hot_encoded(write_csv):
    with pytest.raises(DataError, match="'five'"):
        load_dataset(write_csv(STRAY), Selection())


def test_mostly_text_column_is_categorical(write_csv):
    # Half the values are words: a real categorical column, even though some look like numbers.
    path = write_csv("a,floor,y\n1,1,3\n2,2,5\n3,G,4\n4,B,9\n5,1,11\n6,G,8\n")
    ds = load_dataset(path, Selection())
    assert ds.columns["floor"].tolist() == ["1", "2", "G", "B", "1", "G"]


def test_bad_json_line_names_its_line(runner, assert_error, write_csv):
    rows = [f'{{"a": {i}, "b": {i % 3}, "y": {2 * i}}}' for i in range(6)]
    rows[3] = '{"a": 3, "b":'
    path = write_csv("\n".join(rows) + "\n", name="data.jsonl")
    assert_error(runner.invoke(cli, ["normal-eq", path]), 3, "line 4", "json")


def test_bad_json_line_number_beyond_the_first_block(runner, assert_error, write_csv):
    rows = [f'{{"a": {i}, "b": {i % 7}, "y": {2 * i}}}' for i in range(60_000)]
    rows[50_000] = "[1, 2, 3]"
    path = write_csv("\n".join(rows) + "\n", name="data.ndjson")
    assert_error(runner.invoke(cli, ["normal-eq", path]), 3, "line 50001", "not a json object")


def test_json_column_changing_type_names_its_line(runner, assert_error, write_csv):
    path = write_csv(
        '{"a": 1, "y": 2}\n{"a": 2, "y": 3}\n{"a": "x", "y": 3}\n{"a": 4, "y": 1}\n',
        name="data.jsonl",
    )
    assert_error(
        runner.invoke(cli, ["normal-eq", path]), 3, "line 3", "column 'a'", '"x"', "numbers"
    )


@pytest.mark.parametrize(
    ("name", "contents", "words"),
    [
        (
            "latin1.csv",
            b"a,b,y\n1,caf\xe9,3\n2,x,5\n3,y,6\n4,x,7\n",
            ["column 'b'", "not utf-8", "row 1"],
        ),
        ("garbage.parquet", b"this is not parquet\n", ["cannot parse", "parquet"]),
        (
            "truncated.csv.gz",
            gzip.compress(b"a,y\n" + b"".join(b"%d,%d\n" % (i, i * i % 97) for i in range(2000)))[
                :500
            ],
            ["cannot parse", "truncated.csv.gz"],
        ),
        ("fake.csv.gz", b"\x1f\x8bnot gzip at all", ["cannot parse", "fake.csv.gz"]),
        (
            "nested.jsonl",
            b'{"a": [1, 2], "y": 1}\n{"a": [3], "y": 2}\n',
            ["column 'a'", "list", "--drop a"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else "",
)
def test_unreadable_contents(runner, assert_error, write_csv, name, contents, words):
    assert_error(runner.invoke(cli, ["normal-eq", write_csv(contents, name=name)]), 3, *words)


def test_parquet_inf_names_the_row(runner, assert_error, tmp_path):
    path = tmp_path / "inf.parquet"
    df = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [1.0, 2, np.inf, 3], "y": [1.0, 3, 2, 5]})
    df.to_parquet(path)
    assert_error(runner.invoke(cli, ["normal-eq", str(path)]), 3, "column 'b'", "infinite", "row 3")


def test_a_missing_column_is_named_with_its_role(write_csv):
    sel = Selection(features=("a", "c"), target_kind="none", roles={"c": "the model's feature"})
    with pytest.raises(DataError, match=r"Column 'c' \(the model's feature\) not found"):
        load_dataset(write_csv(OK), sel)


def test_passthrough_columns_keep_text_as_written(write_csv):
    sel = Selection(features=("a",), target_kind="none", passthrough=("id",))
    dataset = load_dataset(write_csv("id,a\n007,1\n010,2\n"), sel)
    assert dataset.passthrough["id"] == ["007", "010"]
    np.testing.assert_array_equal(dataset.columns["a"], [1.0, 2.0])


def test_chunk_stream_counts_rows_across_chunks(write_csv):
    stream = ChunkStream(write_csv(NA_CSV), Selection(na="drop"), chunk_rows=2)
    chunks = list(stream)
    assert sum(c.n_rows for c in chunks) == 4
    assert (stream.rows_read, stream.rows_dropped) == (7, 3)
    assert list(stream) and stream.rows_read == 7  # re-iterable


# --------------------------------------------------------------------------- column roles

ROLE_FORMATS = [("csv", ".csv"), ("tsv", ".tsv"), ("parquet", ".parquet"), ("jsonl", ".jsonl")]
ROW_NUMBERS = {"csv": " (line {})", "tsv": " (line {})", "parquet": "", "jsonl": ""}


def write_df(tmp_path, df: pd.DataFrame, fmt: str, ext: str) -> str:
    path = tmp_path / f"data{ext}"
    path.write_bytes(encode(df, fmt))
    return str(path)


def row_name(fmt: str, row: int) -> str:
    """How messages name data row `row` (1-based) of a file in `fmt`."""
    return f"row {row}" + ROW_NUMBERS[fmt].format(row + 1)


def error_of(fn) -> str | None:
    try:
        fn()
    except DataError as exc:
        return str(exc)
    return None


def in_chunks(path: str, sel: Selection, chunk_rows: int = 2):
    """The chunks of a ChunkStream joined into one Dataset-like dict, and the stream."""
    stream = ChunkStream(path, sel, chunk_rows=chunk_rows)
    chunks = list(stream)
    assert all(c.n_rows <= chunk_rows for c in chunks)

    def join(parts):
        return np.concatenate(parts) if parts else np.empty(0)

    return {
        "features": stream.features,
        "target": stream.target,
        "columns": {n: join([c.columns[n] for c in chunks]) for n in stream.features},
        "y": None if stream.target is None else join([c.y for c in chunks]),
        "extras": {r: join([c.extras[r] for c in chunks]) for r in stream.extras},
        "passthrough": {
            n: [v for c in chunks for v in c.passthrough[n]] for n in stream.passthrough
        },
        "n_rows": sum(c.n_rows for c in chunks),
    }, stream


def assert_same_data(chunked: dict, ds) -> None:
    assert chunked["features"] == ds.features
    assert chunked["target"] == ds.target
    assert chunked["n_rows"] == ds.n_rows
    for name, values in ds.columns.items():
        assert chunked["columns"][name].dtype == values.dtype, name
        np.testing.assert_array_equal(chunked["columns"][name], values)
    if ds.y is None:
        assert chunked["y"] is None
    else:
        np.testing.assert_array_equal(chunked["y"], ds.y)
    assert chunked["extras"].keys() == ds.extras.keys()
    for role, values in ds.extras.items():
        assert values.dtype == np.float64
        np.testing.assert_array_equal(chunked["extras"][role], values)
    assert chunked["passthrough"] == ds.passthrough


ROLES_DF = pd.DataFrame(
    {
        "id": ["007", "010", "011", "012", "013", "014", "015"],
        "area": [50.0, 60, 70, 80, 90, 100, 110],
        "floor": ["1", "2", "G", "1", "2", "G", "1"],  # text whose values look like numbers
        "log_exp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        "y": [3.0, 4, 5, 6, 7, 8, 9],
    }
)


@pytest.mark.parametrize(("fmt", "ext"), ROLE_FORMATS)
def test_a_model_without_a_target_loads_every_column_as_a_feature(tmp_path, fmt, ext):
    df = ROLES_DF[["area", "log_exp", "y"]]
    path = write_df(tmp_path, df, fmt, ext)
    ds = load_dataset(path, Selection(target_kind="none"))
    assert (ds.target, ds.y, ds.n_rows) == (None, None, 7)
    assert ds.features == ["area", "log_exp", "y"]
    np.testing.assert_array_equal(ds.columns["y"], df.y.to_numpy(float))
    chunked, stream = in_chunks(path, Selection(target_kind="none"))
    assert_same_data(chunked, ds)
    assert stream.rows_read == 7


def test_a_target_for_a_model_without_one_is_an_error(write_csv):
    sel = Selection(target="y", target_kind="none")
    for read in (load_dataset, ChunkStream):
        with pytest.raises(DataError, match="gmm takes no target") as exc:
            read(write_csv(OK), sel, model="gmm")
        assert exc.value.exit_code == 3


def test_targetless_selection_leaves_out_drop_extras_and_passthrough():
    names = ["id", "a", "b", "off", "c"]
    sel = Selection(target_kind="none", drop=("c",), extras={"offset": "off"}, passthrough=("id",))
    assert resolve_columns(names, sel, "f") == (None, ["a", "b"])
    numeric = dataclasses.replace(sel, target_kind="numeric", drop=())
    assert resolve_columns(names, numeric, "f") == ("c", ["a", "b"])
    with pytest.raises(DataError, match="'c' is the target and cannot be dropped"):
        resolve_columns(names, dataclasses.replace(sel, target_kind="numeric"), "f")


@pytest.mark.parametrize(("fmt", "ext"), ROLE_FORMATS)
@pytest.mark.parametrize("features", [None, ("area",)], ids=["all-features", "features"])
def test_an_extra_is_loaded_apart_from_the_features(tmp_path, fmt, ext, features):
    df = ROLES_DF[["area", "log_exp", "y"]]
    path = write_df(tmp_path, df, fmt, ext)
    sel = Selection(features=features, extras={"offset": "log_exp"})
    ds = load_dataset(path, sel)
    assert ds.features == ["area"]
    assert list(ds.columns) == ["area"]
    np.testing.assert_array_equal(ds.extras["offset"], df.log_exp.to_numpy(float))
    assert_same_data(in_chunks(path, sel)[0], ds)


@pytest.mark.parametrize(
    ("sel", "words"),
    [
        (Selection(extras={"offset": "log_exposure"}), ["'log_exposure' (the offset) not found"]),
        (
            Selection(extras={"offset": "log_exposure"}, roles={"log_exposure": "the model's x"}),
            ["'log_exposure' (the model's x) not found"],
        ),
        (Selection(target="log_exp", extras={"offset": "log_exp"}), ["is the target", "offset"]),
        (Selection(extras={"offset": "y"}), ["'y' is the target", "cannot also be the offset"]),
        (
            Selection(features=("area", "log_exp"), extras={"offset": "log_exp"}),
            ["'log_exp' is the offset", "remove it from --features"],
        ),
        (
            Selection(drop=("log_exp",), extras={"offset": "log_exp"}),
            ["'log_exp' is the offset", "cannot be dropped"],
        ),
        (Selection(passthrough=("ident",)), ["'ident' not found", "did you mean 'id'"]),
        (
            Selection(features=("area", "rooms"), roles={"rooms": "the model's feature"}),
            ["Column 'rooms' (the model's feature) not found in", "Columns: id, area"],
        ),
    ],
)
def test_selection_errors_name_the_role(tmp_path, sel, words):
    path = write_df(tmp_path, ROLES_DF, "csv", ".csv")
    messages = {error_of(lambda: load_dataset(path, sel)), error_of(lambda: ChunkStream(path, sel))}
    assert len(messages) == 1
    message = messages.pop()
    assert message is not None
    for word in words:
        assert word.lower() in message.lower(), (word, message)


def with_text(df: pd.DataFrame, column: str, row: int, value: str) -> pd.DataFrame:
    """df with `column` as text, `value` at 0-based `row`: text in every format."""
    out = df.copy()
    out[column] = [value if i == row else f"{v:g}" for i, v in enumerate(df[column])]
    return out


@pytest.mark.parametrize(("fmt", "ext"), ROLE_FORMATS)
@pytest.mark.parametrize(
    ("column", "sel", "start"),
    [
        ("log_exp", Selection(extras={"offset": "log_exp"}), "Column 'log_exp' (the offset) in"),
        (
            "area",
            Selection(kinds={"area": "numeric"}, roles={"area": "the model's feature"}),
            "Column 'area' (the model's feature) in",
        ),
        ("area", Selection(target_kind="none", kinds={"area": "numeric"}), "Column 'area' in"),
        ("y", Selection(), "Target column 'y' in"),
    ],
    ids=["extra", "numeric-kind-with-role", "numeric-kind", "target"],
)
def test_text_in_a_column_that_must_be_numeric(tmp_path, fmt, ext, column, sel, start):
    df = ROLES_DF[["area", "log_exp", "y"]]
    path = write_df(tmp_path, with_text(df, column, 4, "abc"), fmt, ext)
    message = error_of(lambda: load_dataset(path, sel, model="newton"))
    assert message is not None and message.startswith(start), message
    assert f"({row_name(fmt, 5)} has 'abc')" in message
    assert "numeric" in message and "newton" in message
    chunked = error_of(lambda: list(ChunkStream(path, sel, chunk_rows=2, model="newton")))
    assert chunked == message


@pytest.mark.parametrize(
    ("sel", "start"),
    [
        (Selection(target="y", extras={"offset": "off"}), "Column 'off' (the offset) in"),
        (Selection(target="off"), "Target column 'off' in"),
    ],
    ids=["extra", "target"],
)
def test_text_in_numbers_after_the_first_block_of_a_chunked_read(write_csv, sel, start):
    # The chunked CSV reader fixes the column as numbers from its first block; the message must
    # still be the one an in-memory read gives.
    lines = [f"{i},{i % 7},0.5" for i in range(200_000)]
    lines[150_000] = "150000,3,half"
    path = write_csv("a,y,off\n" + "\n".join(lines) + "\n")
    message = error_of(lambda: list(ChunkStream(path, sel, chunk_rows=50_000)))
    assert message.startswith(start)
    assert "row 150001 (line 150002) has 'half'" in message
    assert error_of(lambda: load_dataset(path, sel)) == message


@pytest.mark.parametrize(("fmt", "ext"), ROLE_FORMATS)
def test_missing_values_in_an_extra(tmp_path, fmt, ext):
    df = ROLES_DF[["area", "log_exp", "y"]].copy()
    df.loc[[1, 4], "log_exp"] = np.nan
    df.loc[[4, 5], "area"] = np.nan
    path = write_df(tmp_path, df, fmt, ext)
    sel = Selection(extras={"offset": "log_exp"})
    message = error_of(lambda: load_dataset(path, sel))
    assert message == (
        f"Missing values in {path}: 'area' (2 rows), 'log_exp' (2 rows); the first at "
        f"row 2{' (line 3)' if fmt in ('csv', 'tsv') else ''}. Use --na drop to drop those "
        "rows, or fill them in."
    )
    assert error_of(lambda: list(ChunkStream(path, sel, chunk_rows=2))) == message
    dropped = load_dataset(path, dataclasses.replace(sel, na="drop"))
    assert (dropped.n_rows, dropped.rows_dropped) == (4, 3)
    np.testing.assert_array_equal(dropped.extras["offset"], [0.1, 0.3, 0.4, 0.7])
    np.testing.assert_array_equal(dropped.y, [3, 5, 6, 9])
    chunked, stream = in_chunks(path, dataclasses.replace(sel, na="drop"))
    assert_same_data(chunked, dropped)
    assert (stream.rows_read, stream.rows_dropped) == (7, 3)


@pytest.mark.parametrize(("fmt", "ext"), ROLE_FORMATS)
def test_text_kind_keeps_text_that_looks_like_numbers(tmp_path, fmt, ext):
    path = write_df(tmp_path, ROLES_DF[["floor", "area", "y"]], fmt, ext)
    sel = Selection(kinds={"floor": "text"})
    ds = load_dataset(path, sel)
    assert ds.columns["floor"].tolist() == ["1", "2", "G", "1", "2", "G", "1"]
    chunked, stream = in_chunks(path, sel)
    assert_same_data(chunked, ds)
    assert stream.text_columns() == ["floor"]
    assert stream.levels(["floor"]) == {"floor": ["1", "2", "G"]}


@pytest.mark.parametrize("chunked", [False, True], ids=["in-memory", "chunked"])
def test_text_kind_reads_a_csv_number_column_as_text(write_csv, chunked):
    # Without a kind, "1,2,1" is a number column; declared text, '1' stays '1', '01' stays '01'.
    path = write_csv("floor,y\n1,3\n2,4\n01,5\n1,6\n")
    sel = Selection(kinds={"floor": "text"})
    floor = (
        in_chunks(path, sel)[0]["columns"]["floor"]
        if chunked
        else (load_dataset(path, sel).columns["floor"])
    )
    assert floor.tolist() == ["1", "2", "01", "1"]
    plain = load_dataset(path, Selection()).columns["floor"]
    np.testing.assert_array_equal(plain, [1.0, 2, 1, 1])


def test_text_kind_of_a_number_column_in_parquet_gives_the_csv_level_names(tmp_path):
    # A column declared text (--categorical, or a model's text feature) is categories whatever
    # the format stores: Parquet's 1, 2 become the levels '1', '2' that a CSV gives.
    path = write_df(
        tmp_path,
        pd.DataFrame({"floor": [1, 2, 1, 3], "z": [0.5, 1.0, None, 2.5], "y": [1.0, 2, 3, 4]}),
        "parquet",
        ".parquet",
    )
    sel = Selection(kinds={"floor": "text", "z": "text"}, na="drop")
    ds = load_dataset(path, sel)
    assert ds.columns["floor"].tolist() == ["1", "2", "3"]
    assert ds.columns["z"].tolist() == ["0.5", "1", "2.5"]
    chunked, stream = in_chunks(path, sel)
    assert_same_data(chunked, ds)
    assert stream.levels(["floor", "z"]) == {"floor": ["1", "2", "3"], "z": ["0.5", "1", "2.5"]}


def test_a_text_kind_column_is_not_checked_for_stray_words(write_csv):
    path = write_csv(STRAY)
    with pytest.raises(DataError, match="'five'"):
        load_dataset(path, Selection())
    ds = load_dataset(path, Selection(kinds={"b": "text"}))
    assert ds.columns["b"][2] == "five"
    chunked, stream = in_chunks(path, Selection(kinds={"b": "text"}))
    assert_same_data(chunked, ds)
    assert "five" in stream.levels(["b"])["b"]


@pytest.mark.parametrize(("fmt", "ext"), ROLE_FORMATS)
def test_passthrough_copies_values_as_written_and_follows_dropped_rows(tmp_path, fmt, ext):
    df = ROLES_DF[["id", "area", "y"]].copy()
    df.loc[[2, 5], "area"] = np.nan
    path = write_df(tmp_path, df, fmt, ext)
    sel = Selection(passthrough=("id",), na="drop")
    ds = load_dataset(path, sel)
    assert ds.features == ["area"]  # a passed-through column is not a feature
    assert ds.passthrough == {"id": ["007", "010", "012", "013", "015"]}
    assert_same_data(in_chunks(path, sel)[0], ds)


def test_passthrough_of_other_types_is_as_pyarrow_reads_them(tmp_path):
    df = pd.DataFrame({"id": [7, 10, 11], "a": [1.0, 2, 3], "y": [1.0, 2, 4]})
    path = write_df(tmp_path, df, "parquet", ".parquet")
    sel = Selection(passthrough=("id",))
    assert load_dataset(path, sel).passthrough == {"id": [7, 10, 11]}
    assert in_chunks(path, sel)[0]["passthrough"] == {"id": [7, 10, 11]}


def test_passthrough_of_a_numeric_feature(write_csv):
    # The id is also a feature of the model: copied as text, used as numbers.
    path = write_csv("id,y\n007,1\n010,2\n011,4\n")
    sel = Selection(features=("id",), kinds={"id": "numeric"}, passthrough=("id",))
    ds = load_dataset(path, sel)
    assert ds.passthrough == {"id": ["007", "010", "011"]}
    np.testing.assert_array_equal(ds.columns["id"], [7.0, 10, 11])
    assert_same_data(in_chunks(path, sel)[0], ds)


def test_predict_reads_a_file_in_chunks(write_csv):
    """What predict asks of the loader: the model's features and kinds, its offset, an id."""
    path = write_csv(
        "id,area,floor,log_exp,other\n"
        "007,50,1,0.1,x\n010,60,2,0.2,y\n011,70,1,0.3,\n012,80,G,0.4,z\n013,90,2,0.5,w\n"
    )
    features = ("area", "floor")
    roles = {f: "the model's feature" for f in features} | {"log_exp": "the model's offset"}
    sel = Selection(
        target_kind="none",
        features=features,
        kinds={"area": "numeric", "floor": "text"},
        roles=roles,
        extras={"offset": "log_exp"},
        passthrough=("id",),
    )
    stream = ChunkStream(path, sel, chunk_rows=2)
    chunks = list(stream)
    assert [c.n_rows for c in chunks] == [2, 2, 1]
    assert [v for c in chunks for v in c.passthrough["id"]] == ["007", "010", "011", "012", "013"]
    assert np.concatenate([c.columns["floor"] for c in chunks]).tolist() == [
        "1",
        "2",
        "1",
        "G",
        "2",
    ]
    np.testing.assert_array_equal(
        np.concatenate([c.extras["offset"] for c in chunks]), [0.1, 0.2, 0.3, 0.4, 0.5]
    )
    assert all(c.target is None and c.y is None for c in chunks)
    assert stream.rows_read == 5
    assert_same_data(in_chunks(path, sel)[0], load_dataset(path, sel))
    # a column the model needs, missing from the new file, is named with its role
    without = write_csv("id,area,floor\n007,50,1\n", name="without.csv")
    for read in (load_dataset, ChunkStream):
        with pytest.raises(DataError, match=r"^Column 'log_exp' \(the model's offset\) not found"):
            read(without, sel)


# Files with one or more problems: in memory and in chunks the message must be the same, the
# first problem by the same rules (text in numbers, then missing values, then infinities).
SAME_MESSAGE = [
    ("missing in first chunk, word later", "a,y\n1,2\n,3\n4,5\n6,7\n8,abc\n", Selection()),
    ("missing late", "a,y\n1,2\n3,3\n4,5\n6,7\n8,\n", Selection()),
    ("inf early, missing late", "a,y\n1,2\ninf,3\n4,5\n6,7\n,8\n", Selection()),
    ("inf after drop", "a,y\n1,2\n,3\n4,5\n-inf,7\n5,8\n", Selection(na="drop")),
    ("all rows missing", "a,y\n1,\n,3\n,5\n", Selection(na="drop")),
    ("text feature", "a,b,y\n1,u,2\n2,1,3\n3,v,5\n", Selection(kinds={"b": "numeric"})),
    (
        "extra missing and text",
        "a,o,y\n1,,2\n2,1,3\n3,1,5\n4,x,1\n",
        Selection(extras={"offset": "o"}),
    ),
    ("label target", "a,y\n1,no\n2,yes\n3,\n", Selection(target_kind="label")),
]


@pytest.mark.parametrize(
    ("contents", "sel"), [c[1:] for c in SAME_MESSAGE], ids=[c[0] for c in SAME_MESSAGE]
)
@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_in_memory_and_chunked_reads_give_the_same_message(write_csv, contents, sel, chunk_rows):
    path = write_csv(contents)
    message = error_of(lambda: load_dataset(path, sel))
    assert message is not None
    assert error_of(lambda: list(ChunkStream(path, sel, chunk_rows=chunk_rows))) == message


def test_a_chunk_whose_rows_are_all_dropped_is_skipped(write_csv):
    stream = ChunkStream(write_csv("a,b,y\n1,2,3\n2,,5\n3,5,6\n4,4,9\n"), Selection(na="drop"), 1)
    assert [c.n_rows for c in stream] == [1, 1, 1]
    assert (stream.rows_read, stream.rows_dropped) == (4, 1)


def test_selection_rejects_unknown_choices():
    with pytest.raises(ValueError, match="target_kind"):
        Selection(target_kind="classes")
    with pytest.raises(ValueError, match="kinds"):
        Selection(kinds={"a": "categorical"})
    with pytest.raises(ValueError, match="na"):
        Selection(na="fill")
    sel = Selection(extras={"offset": "o"})
    assert sel == Selection(extras={"offset": "o"}) and hash(sel) == hash(Selection())
    with pytest.raises(TypeError):
        sel.extras["weights"] = "w"  # read-only: a Selection cannot change under a stream
