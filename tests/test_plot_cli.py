"""--plot through the real command line: every fit command in every format, stdout untouched,
usage errors before any fit, the missing-extra message without matplotlib, the seeded row
sample (the same bytes twice, and chunked as in memory), --strict, and the loss sparkline of
the terminal report."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mlfit import plots
from mlfit.cli import cli
from mlfit.report import sparkline
from mlfit.solvers import SOLVERS, solver

pytest.importorskip("matplotlib")

_REGRESSION = ["-y", "price", "-x", "area,rooms,district"]
#: The fit commands this file covers, and the columns each is fitted on (a houses-shaped
#: table, see _table). tests/test_contract.py checks --plot for every registered model.
ARGS = {
    "normal-eq": _REGRESSION,
    "linreg": _REGRESSION,
    "newton": _REGRESSION,
    "logreg": ["-y", "expensive", "-x", "area,rooms"],
}
COMMANDS = list(ARGS)
FORMATS = [".png", ".svg", ".pdf"]
SVG = "{http://www.w3.org/2000/svg}"
BARS = "▁▂▃▄▅▆▇█"


def test_the_commands_are_registered_models_that_plot():
    for command in ARGS:
        assert SOLVERS[command].plots, command
    assert all(SOLVERS[command].sum_over_rows for command in CHUNKED)


def _table(rng: np.random.Generator, n: int) -> str:
    """CSV text: area, rooms, district (3 levels), price linear in them, expensive (yes/no)."""
    area = rng.uniform(40, 160, n).round(1)
    rooms = rng.integers(1, 7, n)
    district = np.array(["centre", "north", "south"])[np.arange(n) % 3]
    effect = np.select([district == "north", district == "south"], [-40.0, -55.0], 0.0)
    price = (100 + 2.0 * area + 5.0 * rooms + effect + rng.normal(0, 10, n)).round(2)
    expensive = np.where(price + rng.normal(0, 30, n) > np.median(price), "yes", "no")
    rows = zip(area, rooms, district, price, expensive)
    return "area,rooms,district,price,expensive\n" + "".join(
        ",".join(map(str, row)) + "\n" for row in rows
    )


@pytest.fixture
def small_csv(rng, write_csv) -> str:
    return write_csv(_table(rng, 30), "small.csv")


@pytest.fixture
def big_csv(rng, write_csv) -> str:
    """More rows than the (patched) sample limit of 50."""
    return write_csv(_table(rng, 120), "big.csv")


def _fit(runner, command: str, data: str, *more: str):
    return runner.invoke(cli, [command, data, *ARGS[command], *more])


def _without_timing(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "timing"}


def _assert_image(path: Path, extension: str) -> None:
    """A valid, non-blank image of the format its extension names."""
    content = path.read_bytes()
    if extension == ".png":
        import matplotlib.image

        assert content.startswith(b"\x89PNG\r\n\x1a\n")
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        # more than one distinct colour (np.unique over rows of pixels would take seconds)
        drawn = np.any(pixels != pixels[0, 0], axis=-1)
        assert drawn.mean() > 0.01, "a blank PNG"
    elif extension == ".svg":
        root = ET.fromstring(content)
        assert root.tag == f"{SVG}svg"
        assert len(list(root.iter(f"{SVG}path"))) > 10, "an SVG without drawing"
    else:
        assert content.startswith(b"%PDF-")
        assert content.rstrip().endswith(b"%%EOF")
        assert len(content) > 2000, "a PDF without drawing"


# --------------------------------------------------------------------------- every command, format


@pytest.mark.parametrize("extension", FORMATS)
@pytest.mark.parametrize("command", COMMANDS)
def test_plot_every_command_every_format(
    runner, small_csv, tmp_path, strict_json, command, extension
):
    out = tmp_path / f"figure{extension}"
    result = _fit(runner, command, small_csv, "--json", "--plot", str(out))
    assert result.exit_code == 0, result.stderr
    _assert_image(out, extension)
    # stdout is exactly one strict JSON document, the same as without --plot
    doc = strict_json(result.stdout)
    assert result.stdout == json.dumps(doc, indent=2) + "\n"
    plain = _fit(runner, command, small_csv, "--json")
    assert plain.exit_code == 0, plain.stderr
    assert _without_timing(doc) == _without_timing(json.loads(plain.stdout))
    assert "figure" not in result.stdout
    assert result.stderr == plain.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("figure")] == [out.name]


# --------------------------------------------------------------------------- errors before the fit


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_extension_is_a_usage_error_before_the_fit(
    runner, small_csv, tmp_path, assert_error, monkeypatch, command
):
    def no_fit(*args, **kwargs):
        raise AssertionError("the fit ran")

    monkeypatch.setattr(solver(command), "fit", no_fit)
    model, figure = tmp_path / "model.json", tmp_path / "out.txt"
    result = _fit(runner, command, small_csv, "--plot", str(figure), "--save", str(model))
    assert_error(result, 2, "out.txt", ".png", ".svg", ".pdf")
    assert not model.exists() and not figure.exists()


def test_without_matplotlib(mlfit_proc, small_csv, tmp_path, monkeypatch, assert_error):
    """In a Python where matplotlib cannot be imported, --plot is exit 2 naming the extra to
    install, before the fit; a fit without --plot still works."""
    shadow = tmp_path / "no_matplotlib" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("No module named matplotlib")\n')
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    model, figure = tmp_path / "model.json", tmp_path / "figure.png"
    args = ["normal-eq", small_csv, *ARGS["normal-eq"], "--save", model]
    refused = mlfit_proc(*args, "--plot", figure)
    assert_error(refused, 2, "pip install 'mlfit[plot]'")
    assert not model.exists() and not figure.exists()
    plain = mlfit_proc(*args, "--json")
    assert plain.returncode == 0, plain.stderr.decode()
    assert json.loads(plain.stdout)["model"] == "normal-eq"
    assert model.exists()


@pytest.mark.parametrize(
    "command, limit", [("linreg", ["--epochs", "1"]), ("logreg", ["--max-iter", "1"])]
)
def test_strict_not_converged_writes_no_plot(
    runner, small_csv, tmp_path, assert_error, command, limit
):
    figure, model = tmp_path / "figure.png", tmp_path / "model.json"
    result = _fit(
        runner, command, small_csv, *limit, "--strict", "--plot", str(figure), "-o", str(model)
    )
    assert_error(result, 5, "did not converge", "--strict")
    assert not figure.exists() and not model.exists()


# --------------------------------------------------------------------------- the row sample


@pytest.fixture
def drawn(monkeypatch):
    """Sample at most 50 rows, and record each call of plots.draw (then draw as usual).

    sample_rows binds its limit (SAMPLE_ROWS) when it is defined, so patching SAMPLE_ROWS
    would not reach it: wrap the function instead.
    """
    calls = []
    sample_rows, draw = plots.sample_rows, plots.draw

    def small_sample(n, seed, limit=50):
        return sample_rows(n, seed, min(limit, 50))

    def recording_draw(path, kinds, data, title, note=None):
        calls.append({"kinds": list(kinds), "data": data, "title": title, "note": note})
        return draw(path, kinds, data, title, note)

    monkeypatch.setattr(plots, "sample_rows", small_sample)
    monkeypatch.setattr(plots, "draw", recording_draw)
    return calls


#: The models fitted from chunks whose figures are checked against the in-memory fit.
CHUNKED = ["normal-eq", "newton"]


@pytest.mark.parametrize("command", CHUNKED)
def test_big_fit_is_drawn_from_a_seeded_sample(runner, big_csv, tmp_path, drawn, command):
    """The same sample, and the same bytes, twice in memory and once from chunks (the runner
    collects the sampled rows in one more pass over the chunks)."""
    runs = {"first": [], "second": [], "chunked": ["--chunk-rows", "7"]}
    for name, more in runs.items():
        result = _fit(
            runner, command, big_csv, "-q", "--plot", str(tmp_path / f"{name}.svg"), *more
        )
        assert result.exit_code == 0, result.stderr
    assert len(drawn) == 3
    for call in drawn:
        assert call["kinds"] == list(SOLVERS[command].plots)
        assert call["note"] == "50 of 120 rows, sampled at random (seed 0)"
        assert len(call["data"]["diagnostics"]["predicted"]) == 50
    rows = np.asarray(drawn[0]["data"]["rows"])
    assert len(set(rows.tolist())) == 50 and np.all(np.diff(rows) > 0)
    assert rows.min() >= 1 and rows.max() <= 120
    for call in drawn[1:]:
        np.testing.assert_array_equal(call["data"]["rows"], rows)
    first = (tmp_path / "first.svg").read_bytes()
    assert (tmp_path / "second.svg").read_bytes() == first
    assert (tmp_path / "chunked.svg").read_bytes() == first


@pytest.mark.parametrize("command", CHUNKED)
def test_small_fit_plots_every_row_in_memory_or_chunked(
    runner, small_csv, tmp_path, drawn, command
):
    whole, chunked = tmp_path / "whole.svg", tmp_path / "chunked.svg"
    result = _fit(runner, command, small_csv, "-q", "--plot", str(whole))
    assert result.exit_code == 0, result.stderr
    result = _fit(runner, command, small_csv, "-q", "--plot", str(chunked), "--chunk-rows", "7")
    assert result.exit_code == 0, result.stderr
    for call in drawn:
        assert call["note"] is None
        np.testing.assert_array_equal(call["data"]["rows"], np.arange(1, 31))
    assert whole.read_bytes() == chunked.read_bytes()


# --------------------------------------------------------------------------- the loss sparkline

#: Whether each fit reports a loss history.
ITERATIVE = {"normal-eq": False, "linreg": True, "newton": True, "logreg": True}
SPARKLINE = re.compile(f"^loss history +[{BARS}]+$", re.MULTILINE)


@pytest.mark.parametrize("command", COMMANDS)
def test_report_shows_the_loss_sparkline(runner, small_csv, command):
    """An iterative fit's report has a `loss history` line of bars; normal-eq has none."""
    result = _fit(runner, command, small_csv, "-q")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(_fit(runner, command, small_csv, "--json", "-q").stdout)
    history = (doc.get("convergence") or {}).get("history") or []
    assert (len(history) > 1) == ITERATIVE[command], history
    assert bool(SPARKLINE.search(result.stdout)) == ITERATIVE[command], result.stdout


def test_sparkline_needs_two_finite_values():
    assert sparkline([]) == ""
    assert sparkline([1.0]) == ""
    assert sparkline([None, float("nan"), 2.0, float("inf")]) == ""


def test_sparkline_skips_values_that_are_not_finite():
    assert sparkline([1.0, None, float("nan"), 8.0]) == "▁█"


def test_sparkline_constant_is_flat():
    assert sparkline([3.0] * 5) == "▁" * 5
    assert sparkline([0.0, 0.0]) == "▁▁"


def test_sparkline_linear_ramp():
    assert sparkline([1.0, 2, 3, 4, 5, 6, 7, 8]) == BARS
    assert sparkline([-8.0, -7, -6, -5, -4, -3, -2, -1]) == BARS


def test_sparkline_is_cut_to_the_width():
    values = [float(v) for v in range(1, 501)]
    line = sparkline(values)
    assert len(line) == 40 and line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line)  # still rising
    assert len(sparkline(values, width=10)) == 10
    assert len(sparkline(values[:25])) == 25  # under the width: one bar per value


def test_sparkline_wide_positive_range_is_log_scale():
    decay = [10.0**-i for i in range(8)]  # eight decades: a straight ramp on a log scale
    assert sparkline(decay) == BARS[::-1]
    narrow = [2.0**-i for i in range(6)]  # under two decades: drawn linearly
    assert sparkline(narrow) == "█▄▂▁▁▁"
    # a wide range through zero cannot be log scale
    assert sparkline([1000.0, 0.0, -1.0]) == "█▁▁"


@pytest.mark.parametrize("option", ["--plot", "--save"])
def test_an_unwritable_output_stops_before_fitting(
    runner, assert_error, houses_csv, tmp_path, option, monkeypatch
):
    """A missing directory is found before any data is read, so a big fit is not wasted."""
    from mlfit.solvers import normal_eq

    monkeypatch.setattr(normal_eq, "fit", lambda *a, **k: pytest.fail("fitted"))
    target = tmp_path / "missing" / ("x.png" if option == "--plot" else "m.json")
    result = runner.invoke(cli, ["normal-eq", houses_csv, "-y", "price", option, str(target)])
    assert_error(result, 1, "does not exist")
