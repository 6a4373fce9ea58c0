"""Odd uses as classes: outputs onto inputs, signals, case slips, grammar."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlfit.cli import cli
from mlfit.solvers import SOLVERS


@pytest.mark.parametrize("option", ["-o", "--plot"])
def test_a_fit_refuses_to_write_onto_its_data(runner, assert_error, houses_csv, option):
    before = Path(houses_csv).read_text()
    result = runner.invoke(cli, ["normal-eq", houses_csv, "-y", "price", option, houses_csv])
    assert_error(result, 2, "refusing to write", "input of this run")
    assert Path(houses_csv).read_text() == before


def test_predict_refuses_to_write_onto_its_model_or_data(
    runner, assert_error, houses_csv, tmp_path
):
    model = tmp_path / "m.json"
    assert (
        runner.invoke(cli, ["normal-eq", houses_csv, "-y", "price", "-o", str(model)]).exit_code
        == 0
    )
    saved = model.read_text()
    for target in (str(model), houses_csv):
        result = runner.invoke(cli, ["predict", str(model), houses_csv, "--output", target])
        assert_error(result, 2, "refusing to write")
    assert model.read_text() == saved


def test_a_case_slip_is_suggested(runner, assert_error, houses_csv):
    result = runner.invoke(cli, ["normal-eq", houses_csv, "-y", "PRICE"])
    assert_error(result, 3, "did you mean 'price'")


def test_one_row_is_singular(runner, assert_error, write_csv):
    path = write_csv("a,b,y\n1,2,3\n")
    message = assert_error(runner.invoke(cli, ["normal-eq", path]), 3, "1 usable row for")
    assert "1 usable rows" not in message


def test_sigterm_leaves_no_partial_file_and_exits_143(tmp_path, rng):
    """SIGTERM while fitting: exit 143, the earlier model file intact, no temporary files."""
    X = rng.normal(size=(20_000, 5))
    data = tmp_path / "d.csv"
    np.savetxt(
        data, np.column_stack([X, X @ np.ones(5)]), delimiter=",", header="a,b,c,d,e,y", comments=""
    )
    model = tmp_path / "m.model"
    model.write_text("earlier")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    args = [
        sys.executable,
        "-m",
        "mlfit",
        "mlp",
        str(data),
        "-y",
        "y",
        "--epochs",
        "100000",
        "--patience",
        "100000",
        "--batch-size",
        "8",
        "-q",
        "-o",
        str(model),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    time.sleep(3.0)  # imports and loading done, training under way
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert b"Traceback" not in err and err.strip().endswith(b"Terminated.")
    assert model.read_text() == "earlier"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("chunked", [[], ["--chunk-rows", "1"]])
def test_every_row_dropped_names_the_empty_column(runner, assert_error, write_csv, chunked):
    path = write_csv("a,b,y\n1,,3\n2,,5\n3,,6\n")
    result = runner.invoke(cli, ["normal-eq", path, "--na", "drop", *chunked])
    assert_error(result, 3, "every row", "'b'", "--drop b")


@pytest.mark.parametrize("sep", [";", "|"])
def test_a_file_with_another_separator_gets_a_hint(runner, assert_error, write_csv, sep):
    path = write_csv(f"a{sep}b{sep}y\n1{sep}2{sep}3\n4{sep}5{sep}6\n")
    assert_error(runner.invoke(cli, ["normal-eq", path]), 3, "looks separated by", "--delimiter")
    # with decimal commas the rows have more fields than the header: the same hint
    path = write_csv(f"a{sep}b{sep}y\n1,5{sep}2{sep}3,5\n4,5{sep}5{sep}6,5\n")
    assert_error(runner.invoke(cli, ["normal-eq", path]), 3, "looks separated by", "--delimiter")


def dialect_table(label: bool) -> str:
    """A plain CSV of 24 rows with decimals; y is a class label (0/1) when label."""
    rows = ["a,b,y"]
    for i in range(24):
        a, b = 1.5 + 0.25 * i + 0.125 * (i % 3), i % 4
        y = i % 2 if label else round(3.25 + 1.1 * a - 0.5 * b + 0.3 * ((i * 7) % 5), 4)
        rows.append(f"{a},{b},{y}")
    return "\n".join(rows) + "\n"


PLAIN = dialect_table(label=False)


@pytest.mark.parametrize("model", sorted(SOLVERS))
def test_delimiter_and_decimal_read_the_same_table_for_every_command(
    runner, write_csv, tmp_path, model
):
    """--delimiter ';' --decimal , on a European CSV gives what the plain CSV gives: the
    same JSON (but for the file name) and the same predictions, for every model."""
    spec = SOLVERS[model]
    target = [] if spec.target in ("none", "optional") else ["-y", "y"]
    plain = dialect_table(label=spec.target == "label")
    euro = plain.replace(",", ";").replace(".", ",")
    docs, predictions = [], []
    for text, dialect in ((plain, []), (euro, ["--delimiter", ";", "--decimal", ","])):
        path = write_csv(text)
        saved = str(tmp_path / f"m{len(docs)}.json")
        result = runner.invoke(cli, [model, path, *target, *dialect, "--json", "-q", "-o", saved])
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        docs.append({k: v for k, v in doc.items() if k not in ("timing", "data")})
        out = runner.invoke(cli, ["predict", saved, path, *dialect])
        assert out.exit_code == 0, out.stderr
        predictions.append(out.stdout)
    assert docs[0] == docs[1]
    assert predictions[0] == predictions[1]


def test_decimal_comma_needs_another_separator(runner, assert_error, write_csv):
    path = write_csv(PLAIN)
    assert_error(runner.invoke(cli, ["normal-eq", path, "--decimal", ","]), 2, "--delimiter")
    tsv = write_csv(PLAIN.replace(",", "\t").replace(".", ","), name="euro.tsv")
    result = runner.invoke(cli, ["normal-eq", tsv, "--decimal", ",", "--json", "-q"])
    assert result.exit_code == 0, result.stderr  # a .tsv file splits at tabs


@pytest.mark.parametrize("bad", ["ab", '"', "7", "x", ".", ""])
def test_a_delimiter_must_be_one_separating_character(runner, write_csv, bad):
    path = write_csv(PLAIN)
    result = runner.invoke(cli, ["normal-eq", path, "--delimiter", bad])
    assert result.exit_code == 2 and "Invalid value for '--delimiter'" in result.stderr


@pytest.mark.parametrize("name, sep", [("tab", "\t"), ("\\t", "\t"), ("|", "|")])
def test_named_delimiters(runner, write_csv, name, sep):
    path = write_csv(PLAIN.replace(",", sep), name="data.txt")
    result = runner.invoke(cli, ["normal-eq", path, "--delimiter", name, "--json", "-q"])
    assert result.exit_code == 0, result.stderr


def test_decimal_commas_without_the_option_suggest_it(runner, assert_error, write_csv):
    path = write_csv('a,b,y\n"1,5",2,3\n"2,5",1,4\n"3,5",1,5\n')
    assert_error(runner.invoke(cli, ["normal-eq", path]), 3, "'a'", "--decimal ,")


@pytest.mark.parametrize("chunked", [[], ["--chunk-rows", "2"]])
def test_a_latin1_header_is_one_clear_error(runner, assert_error, write_csv, chunked):
    path = write_csv(b"\xe9t\xe9,y\n1,2\n2,3\n3,5\n")
    assert_error(runner.invoke(cli, ["normal-eq", path, *chunked]), 3, "not utf-8", "iconv")


def test_integers_beyond_2_to_the_53_are_read_as_the_nearest_double(runner, write_csv):
    path = write_csv("x,y\n9007199254740993,1\n9007199254740995,2\n3,5\n4,6\n")
    assert runner.invoke(cli, ["normal-eq", path, "-q"]).exit_code == 0


def test_an_exact_gaussian_glm_has_null_likelihood(runner, write_csv, strict_json):
    path = write_csv("x,y\n1,5\n2,5\n3,5\n4,5\n")
    result = runner.invoke(cli, ["newton", path, "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    metrics = strict_json(result.stdout)["metrics"]
    assert metrics["log_likelihood"] is None and metrics["aic"] is None


@pytest.mark.parametrize("redirect", ["> /dev/full", ">&-"])
def test_an_unwritable_stdout_is_one_line_and_exit_1(houses_csv, redirect):
    if redirect == "> /dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    command = f"'{sys.executable}' -m mlfit normal-eq '{houses_csv}' -y price {redirect}"
    result = subprocess.run(["bash", "-c", command], capture_output=True, check=False)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("Error: cannot write the output"), err


def test_binary_garbage_is_one_line(mlfit_proc, tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 12)
    result = mlfit_proc("normal-eq", path)
    err = result.stderr.decode()
    assert result.returncode == 3 and err.count("\n") == 1, err
    assert "not look like a text table" in err and "Exception ignored" not in err


def test_a_utf16_file_says_so(runner, assert_error, tmp_path):
    path = tmp_path / "u16.csv"
    path.write_text("x,y\n1,2\n2,3\n3,5\n", encoding="utf-16")
    assert_error(runner.invoke(cli, ["normal-eq", str(path)]), 3, "utf-16", "iconv")


def test_a_fifo_is_read_once(tmp_path, houses_csv):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    command = f"cat '{houses_csv}' > '{fifo}' & '{sys.executable}' -m mlfit normal-eq '{fifo}' -y price -q --json"
    result = subprocess.run(["bash", "-c", command], capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert b'"rows_used": 30' in result.stdout


def test_a_row_longer_than_a_parse_block_is_read(runner, write_csv, strict_json):
    path = write_csv(
        "x,note,y\n" + "".join(f"{i},{'a' * (3 << 20) if i == 2 else 'b'},{i}\n" for i in range(6))
    )
    result = runner.invoke(cli, ["normal-eq", path, "-x", "x", "-y", "y", "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    assert strict_json(result.stdout)["data"]["rows_used"] == 6


def test_a_csv_named_parquet_says_what_to_do(runner, assert_error, houses_csv, tmp_path):
    fake = tmp_path / "houses.parquet"
    fake.write_bytes(Path(houses_csv).read_bytes())
    assert_error(runner.invoke(cli, ["normal-eq", str(fake)]), 3, "not a parquet file", "rename")


@pytest.mark.parametrize(
    "values",
    [
        ["1,000", "2,500", "3,100", "4,000"],
        ["10%", "20%", "15%", "40%"],
        ["$1.50", "$2.00", "$2.75", "$4.10"],
        ["1,5", "2,25", "3,0", "4,75"],
    ],
    ids=["thousands", "percent", "currency", "decimal-comma"],
)
@pytest.mark.parametrize("column", ["x", "y"])
@pytest.mark.parametrize("chunked", [[], ["--chunk-rows", "2"]])
def test_formatted_numbers_are_an_error_not_a_category(
    runner, assert_error, write_csv, values, column, chunked
):
    plain = ["1", "3", "2", "5"]
    xs, ys = (values, plain) if column == "x" else (plain, values)
    path = write_csv("x,y\n" + "".join(f'"{a}","{b}"\n' for a, b in zip(xs, ys)))
    message = assert_error(
        runner.invoke(cli, ["normal-eq", path, *chunked]),
        3,
        f"column '{column}'",
        "formatting",
        values[0],
    )
    assert ("--drop" in message) == (column == "x")


def test_text_categories_are_still_categories(runner, write_csv):
    path = write_csv("x,y\na,1\nb,3\na,2\nb,5\nc,4\n")
    assert runner.invoke(cli, ["normal-eq", path, "-q"]).exit_code == 0


@pytest.mark.parametrize("chunked", [[], ["--chunk-rows", "2"]])
def test_header_names_and_options_match_by_one_rule(
    runner, assert_error, write_csv, chunked, strict_json
):
    """Names match up to surrounding spaces; a header where that is ambiguous, or a column
    without a name (a trailing comma), is a clear error."""
    both = write_csv("x,x ,y\n1,2,3\n2,3,5\n3,5,6\n4,1,2\n")
    assert_error(runner.invoke(cli, ["normal-eq", both, *chunked]), 3, "two columns named 'x'")
    spaced = write_csv("a,x ,y\n1,2,3\n2,3,5\n3,5,6\n4,1,2\n", name="spaced.csv")
    for drop in ("x", "x ", " x"):
        result = runner.invoke(cli, ["normal-eq", spaced, "--drop", drop, "--json", "-q", *chunked])
        assert result.exit_code == 0, result.stderr
        assert strict_json(result.stdout)["features"] == ["a"]
    trailing = write_csv("a,b,y,\n1,2,3,\n2,3,5,\n3,5,6,\n", name="trailing.csv")
    assert_error(runner.invoke(cli, ["normal-eq", trailing, "-y", "y", *chunked]), 3, "no name")


BLANK_LINES = "x,y\n1,2\n\n2,3\n\n\n3,4\n4,5\n5,6\n"  # data rows 1-5 are on lines 2, 4, 7, 8, 9


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("chunked", [[], ["--chunk-rows", "2"]])
@pytest.mark.parametrize(
    "row4, expected",
    [
        ("3,x", "row 4 (line 8)"),  # a word in a column of numbers
        ("3,", "row 4 (line 8)"),  # a missing value
        ("3,4,5", "line 8"),  # too many fields
        ("3,inf", "row 4 (line 8)"),  # an infinity
    ],
)
def test_blank_lines_do_not_shift_reported_lines(
    runner, assert_error, write_csv, newline, chunked, row4, expected
):
    lines = BLANK_LINES.split("\n")
    lines[7] = row4
    path = write_csv(newline.join(lines).encode())
    assert_error(runner.invoke(cli, ["normal-eq", path, *chunked]), 3, expected)


@pytest.mark.parametrize("chunked", [[], ["--chunk-rows", "3"]])
@pytest.mark.parametrize(
    "family, bad, words",
    [("poisson", "-1", "counts"), ("poisson", "2.5", "counts"), ("bernoulli", "2", "0 or 1")],
)
def test_a_target_outside_the_family_names_the_files_row(
    runner, assert_error, write_csv, chunked, family, bad, words
):
    """The row is the file's, not the chunk's, and rows dropped for missing values before it
    do not shift it."""
    rows = ["x,y"] + [f"{i},{i % 2}" for i in range(1, 12)]
    rows[2] = "2,"  # a missing target, dropped with --na drop
    rows[9] = f"9,{bad}"
    path = write_csv("\n".join(rows) + "\n")
    args = ["newton", path, "--family", family, "--na", "drop", *chunked]
    assert_error(runner.invoke(cli, args), 3, words, "row 9 (line 10)", path)


def test_ctrl_c_while_the_command_is_importing_is_quiet():
    """Ctrl-C before mlfit's own handling is in place (during the imports, the first 0.1 s):
    one line and exit 130, not a traceback of the import machinery.  The signal is sent from
    inside the process, between importing mlfit and mlfit.cli, so the test is not a race."""
    code = (
        "import sys; sys.argv = ['mlfit']; import mlfit, os, signal; "
        "os.kill(os.getpid(), signal.SIGINT); import mlfit.cli; print('not reached')"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 130
    assert proc.stderr == "Interrupted.\n" and proc.stdout == ""
    # imported as a library, Ctrl-C stays Python's KeyboardInterrupt
    code = "import mlfit, os, signal; os.kill(os.getpid(), signal.SIGINT)"
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert "KeyboardInterrupt" in proc.stderr
