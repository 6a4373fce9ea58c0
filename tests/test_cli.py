"""The command line: help and version, the --json contract, stdout/stderr separation, exit codes,
broken pipes and a light import at startup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlfit import __version__
from mlfit.cli import OTHER_COMMANDS, cli
from mlfit.solvers import SOLVERS

ALL_COMMANDS = [*SOLVERS, *OTHER_COMMANDS]


# --------------------------------------------------------------------------- help and version


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_subcommand(runner, flag):
    result = runner.invoke(cli, [flag])
    assert result.exit_code == 0
    assert result.stderr == ""
    commands = result.stdout.split("Commands:", 1)[1]
    # "  name  summary" rows; long summaries wrap onto lines indented further
    listed = [
        line.split()[0]
        for line in commands.splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    ]
    assert listed == ALL_COMMANDS
    assert {"normal-eq", "linreg", "predict"} <= set(listed)


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_every_subcommand_has_help(runner, command):
    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.stderr
    assert f"Usage: cli {command}" in result.stdout or f"{command} [OPTIONS]" in result.stdout


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(runner, flag):
    result = runner.invoke(cli, [flag])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mlfit, version {__version__}"


def test_python_dash_m_help_and_version(mlfit_proc):
    proc = mlfit_proc("--version")
    assert proc.returncode == 0
    assert proc.stdout.decode().strip() == f"mlfit, version {__version__}"


# --------------------------------------------------------------------------- --json


def test_json_is_one_document_on_stdout_in_a_real_process(mlfit_proc, houses_csv, strict_json):
    proc = mlfit_proc("normal-eq", houses_csv, "-y", "price", "--drop", "id", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    out = strict_json(proc.stdout.decode())  # one document and nothing else, or this fails
    assert out["model"] == "normal-eq"
    assert proc.stderr == b""


@pytest.fixture
def normal_eq_json(runner, houses_csv, strict_json):
    result = runner.invoke(cli, ["normal-eq", houses_csv, "-y", "price", "--drop", "id", "--json"])
    assert result.exit_code == 0, result.stderr
    return strict_json(result.stdout)


@pytest.fixture
def linreg_json(runner, houses_csv, strict_json):
    result = runner.invoke(
        cli,
        [
            "linreg",
            houses_csv,
            "-y",
            "price",
            "--drop",
            "id",
            "--json",
            "--seed",
            "3",
            "--epochs",
            "5000",
        ],
    )
    assert result.exit_code == 0, result.stderr
    return strict_json(result.stdout)


def check_contract(out: dict, model: str) -> None:
    assert out["mlfit_version"] == __version__
    assert out["model"] == model
    assert out["target"] == "price"
    assert out["features"] == ["area", "rooms", "district"]
    assert out["data"]["rows_used"] == 30
    assert out["data"]["rows_dropped"] == 0
    assert isinstance(out["metrics"], dict) and out["metrics"]
    assert set(out["timing"]) >= {"load_seconds", "fit_seconds", "total_seconds"}
    assert all(isinstance(v, float) and v >= 0 for v in out["timing"].values())
    coefs = out["coefficients"]
    assert list(coefs) == ["intercept", "area", "rooms", "district=north", "district=south"]
    assert all(isinstance(c["estimate"], float) for c in coefs.values())
    assert isinstance(out["warnings"], list)


def test_json_contract_normal_eq(normal_eq_json):
    check_contract(normal_eq_json, "normal-eq")
    first = normal_eq_json["coefficients"]["area"]
    assert {"estimate", "std_error", "t", "p_value", "ci_low", "ci_high"} <= set(first)
    assert normal_eq_json["metrics"]["r_squared"] > 0.9


def test_json_contract_linreg(linreg_json, normal_eq_json):
    check_contract(linreg_json, "linreg")
    conv = linreg_json["convergence"]
    assert {"iterations", "converged", "final_loss", "gradient_norm", "history"} <= set(conv)
    assert conv["converged"] is True
    assert isinstance(conv["iterations"], int) and conv["iterations"] >= 1
    assert isinstance(conv["history"], list) and all(isinstance(h, float) for h in conv["history"])
    assert conv["final_loss"] == pytest.approx(conv["history"][-1])
    for name, c in linreg_json["coefficients"].items():
        assert c["estimate"] == pytest.approx(
            normal_eq_json["coefficients"][name]["estimate"], rel=1e-3, abs=1e-3
        )


def test_json_has_no_nan_or_infinity(runner, write_csv, strict_json):
    # As many parameters as rows: no residual degrees of freedom, so standard errors, t values
    # and p-values are NaN inside; JSON must carry them as null.
    path = write_csv("a,b,y\n1,2,3\n2,1,5\n3,5,4\n")
    result = runner.invoke(cli, ["normal-eq", path, "--json"])
    assert result.exit_code == 0, result.stderr
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout
    out = strict_json(result.stdout)
    assert out["coefficients"]["a"]["std_error"] is None
    assert out["metrics"]["adj_r_squared"] is None
    assert "Warning:" in result.stderr  # the exact-fit warning goes to stderr, not stdout


def test_warnings_go_to_stderr_and_quiet_silences_them(runner, write_csv, strict_json):
    path = write_csv("a,k,y\n1,u,2\n2,u,3\n3,u,5\n4,u,4\n5,u,7\n")
    for args in (["--json"], []):
        loud = runner.invoke(cli, ["linreg", path, "--epochs", "1", *args])
        assert loud.exit_code == 0, loud.stderr
        assert "Warning:" not in loud.stdout
        warnings = [w for w in loud.stderr.splitlines() if w.startswith("Warning: ")]
        assert len(warnings) == 2  # single-valued column 'k', and not converged
        quiet = runner.invoke(cli, ["linreg", path, "--epochs", "1", "--quiet", *args])
        assert quiet.exit_code == 0
        assert quiet.stderr == ""
        if args:
            assert strict_json(quiet.stdout)["convergence"]["converged"] is False


def test_report_goes_to_stdout(runner, houses_csv):
    result = runner.invoke(cli, ["normal-eq", houses_csv, "-y", "price", "--drop", "id"])
    assert result.exit_code == 0
    assert "district=north" in result.stdout
    assert result.stderr == ""


# --------------------------------------------------------------------------- exit codes


def test_exit_code_0_even_when_not_converged(runner, houses_csv):
    result = runner.invoke(cli, ["linreg", houses_csv, "--epochs", "1", "--json"])
    assert result.exit_code == 0
    assert "did not converge" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["normal-eq", "x.csv", "--bogus"],
        ["no-such-command"],
        ["normal-eq"],
        ["linreg", "x.csv", "--epochs", "0"],
        ["normal-eq", "x.csv", "--na", "maybe"],
    ],
)
def test_exit_code_2_for_usage_errors(runner, args):
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "Error:" in result.stderr and result.stdout == ""


def test_exit_code_3_for_bad_data(runner, assert_error, tmp_path):
    assert_error(runner.invoke(cli, ["linreg", str(tmp_path / "none.csv")]), 3, "not found")


def test_exit_code_4_for_a_bad_model_file(runner, assert_error, houses_csv):
    assert_error(runner.invoke(cli, ["predict", houses_csv, houses_csv]), 4, "not an mlfit model")


def test_exit_code_5_strict_not_converged_writes_no_model(
    runner, assert_error, houses_csv, tmp_path
):
    model = tmp_path / "m.json"
    result = runner.invoke(
        cli, ["linreg", houses_csv, "--strict", "--epochs", "1", "-o", str(model), "--json"]
    )
    assert_error(result, 5, "did not converge", "--strict")
    assert not model.exists()
    assert os.listdir(tmp_path) == ["houses.csv"]


def test_strict_converged_exits_0(runner, houses_csv, tmp_path):
    model = tmp_path / "m.json"
    result = runner.invoke(
        cli,
        [
            "linreg",
            houses_csv,
            "--strict",
            "--drop",
            "id",
            "--epochs",
            "5000",
            "-o",
            str(model),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert model.exists()


def test_exit_code_1_when_the_output_cannot_be_written(runner, assert_error, houses_csv, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "m.json"
    assert_error(
        runner.invoke(cli, ["normal-eq", houses_csv, "-o", str(target)]),
        1,
        "cannot write",
        "does not exist",
    )
    assert_error(
        runner.invoke(cli, ["normal-eq", houses_csv, "-o", str(tmp_path)]),
        1,
        "cannot write",
        "directory",
    )
    assert sorted(os.listdir(tmp_path)) == ["houses.csv"]  # no temporary file left behind


def test_errors_in_a_real_process_are_one_line(mlfit_proc, assert_error, write_csv):
    path = write_csv(
        "a,b,y\n1,2,3\n2,x,5\n3,4,7\n4,5,9\n5,6,10\n6,7,11\n7,8,12\n8,9,13\n9,1,1\n10,2,2\n11,3,3\n"
    )
    assert_error(mlfit_proc("normal-eq", path), 3, "column 'b'", "'x'")


def test_traceback_flag_re_raises(runner, tmp_path):
    result = runner.invoke(cli, ["--traceback", "normal-eq", str(tmp_path / "none.csv")])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "DataError"


# --------------------------------------------------------------------------- pipes and startup


def test_broken_pipe_is_quiet(runner, tmp_path, write_csv):
    rows = [("x", "y")] + [(i, 2 * i + 1) for i in range(30_000)]
    data = write_csv(rows)
    model = tmp_path / "m.json"
    fit = runner.invoke(cli, ["normal-eq", data, "-o", str(model), "--quiet"])
    assert fit.exit_code == 0, fit.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfit", "predict", str(model), data],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.read(20).startswith(b"prediction\n")
    proc.stdout.close()  # like `| head -1`: the reader goes away while mlfit is still writing
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert err == ""


def run_with_reader_gone(*args) -> subprocess.CompletedProcess:
    """mlfit with a stdout pipe whose reader has already closed: the first write fails (EPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "mlfit", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)


def test_broken_pipe_json_exits_141(houses_csv):
    proc = run_with_reader_gone("normal-eq", houses_csv, "--json", "--quiet")
    assert proc.stderr == b""
    assert proc.returncode == 141


def test_broken_pipe_report_exits_141(houses_csv):
    proc = run_with_reader_gone("normal-eq", houses_csv, "--quiet")
    assert proc.stderr == b""
    assert proc.returncode == 141


@pytest.mark.parametrize(
    "code",
    ["import mlfit.cli", ("from mlfit.cli import cli\ncli(['--help'], standalone_mode=False)")],
)
def test_startup_does_not_import_heavy_modules(code):
    heavy = ("numpy", "pyarrow", "scipy", "rich", "pandas")
    check = (
        "import sys, io, contextlib\nwith contextlib.redirect_stdout(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def modules_imported_by_fit(args: list[str], package: str) -> list[str]:
    """Run `mlfit ARGS --json -q` in a fresh interpreter; the `package` modules it imported."""
    code = (
        "import sys, io, json, contextlib\nfrom mlfit.cli import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    cli({[*args, '--json', '-q']!r}, standalone_mode=False)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == {package!r})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


SAMPLE = Path(__file__).parent.parent / "sample_data"


@pytest.mark.parametrize(
    "command",
    [
        ["normal-eq", "-y", "price", "--drop", "id"],
        ["normal-eq", "-y", "price", "--drop", "id", "--chunk-rows", "50"],
        ["newton", "-y", "price", "--drop", "id"],
    ],
)
def test_a_fit_does_not_import_pandas(command):
    # pyarrow's to_numpy and pa.array import pandas (0.15-0.6 s, 50 MB); the loader avoids them.
    args = [command[0], str(SAMPLE / "houses.csv"), *command[1:]]
    assert modules_imported_by_fit(args, "pandas") == []


@pytest.mark.parametrize(
    "command",
    [
        ["logreg", "admissions.csv", "-y", "admitted"],
        ["newton", "claims.csv", "-y", "claims", "--family", "poisson", "--drop", "exposure"],
    ],
)
def test_glm_fits_do_not_import_scipy(command):
    # scipy costs 0.15-0.2 s to import; z tests, Cholesky and log-factorials do without it.
    args = [command[0], str(SAMPLE / command[1]), *command[2:]]
    assert modules_imported_by_fit(args, "scipy") == []
