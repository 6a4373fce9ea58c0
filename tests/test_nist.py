"""NIST StRD linear least squares: every certified value to at least 9 correct digits.

The 11 datasets of https://www.itl.nist.gov/div898/strd/lls/lls.shtml are fitted through the
command line exactly as a user would (`mlfit normal-eq FILE --poly D --json`), and each
certified coefficient, standard error, residual SD and R² is scored by its log relative error
(LRE, about the number of correct significant digits), computed against the certified decimal
strings in high precision.  Data and certified values: tests/data/nist/ (see its README).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlfit.cli import cli

NIST_DIR = Path(__file__).parent / "data" / "nist"
CERTIFIED = json.loads((NIST_DIR / "certified.json").read_text())
DATASETS = sorted(CERTIFIED)
#: The requirement: every certified value to at least this many significant digits.
MIN_LRE = 9.0


def lre(estimate, certified: str) -> float:
    """Log relative error of a float against a certified decimal string, clipped to [0, 15].

    |estimate - certified| is computed exactly (Decimal holds a float64 exactly), so the
    float64 rounding of the certified value does not count against the estimate.  A certified
    0 (the exact fits Wampler1 and Wampler2) scores the log absolute error instead.
    """
    if estimate is None or not math.isfinite(estimate):
        return 0.0
    with localcontext() as ctx:
        ctx.prec = 60
        est = Decimal(estimate)  # exact binary value of the float
        cert = Decimal(certified)
        err = abs(est - cert)
        if err == 0:
            return 15.0
        rel = err if cert == 0 else err / abs(cert)
        return min(15.0, max(0.0, float(-rel.log10())))


def test_lre_scores_digits():
    assert lre(1.00211681802045, "1.00211681802045") >= 14.3
    assert lre(1.0021, "1.00211681802045") == pytest.approx(
        -math.log10(0.00001681802045 / 1.00211681802045)
    )
    assert lre(0.0, "0.0") == 15.0
    assert lre(1e-20, "0") == 15.0
    assert lre(1e-3, "0") == pytest.approx(3.0)
    assert lre(5.0, "1") == 0.0
    assert lre(float("nan"), "1") == 0.0
    assert lre(None, "1") == 0.0


def _command(name: str) -> list[str]:
    cert = CERTIFIED[name]
    args = ["normal-eq", str(NIST_DIR / cert["csv"]), "-y", "y", "--json", "--quiet"]
    if cert["kind"] == "polynomial":
        args += ["--poly", str(cert["degree"])]
    if not cert["intercept"]:
        args.append("--no-intercept")
    return args


def _expected_names(name: str) -> list[str]:
    cert = CERTIFIED[name]
    names = ["intercept"] if cert["intercept"] else []
    if cert["kind"] == "multiple":
        return names + list(cert["predictors"])
    return names + ["x"] + [f"x^{d}" for d in range(2, cert["degree"] + 1)]


@pytest.fixture(scope="module")
def fits() -> dict:
    """The parsed JSON output of one CLI run per dataset (shared by the tests below)."""
    runner = CliRunner()
    out = {}
    for name in DATASETS:
        result = runner.invoke(cli, _command(name))
        assert result.exit_code == 0, (name, result.stderr, result.exception)
        out[name] = json.loads(result.stdout)
    return out


def scores(summary: dict, name: str) -> dict[str, list[float]]:
    cert = CERTIFIED[name]
    table = list(summary["coefficients"].values())
    metrics = summary["metrics"]
    return {
        "coefficients": [
            lre(row["estimate"], c) for row, c in zip(table, cert["coefficients_str"], strict=True)
        ],
        "std_errors": [
            lre(row["std_error"], c)
            for row, c in zip(table, cert["coef_std_errors_str"], strict=True)
        ],
        "residual_sd": [lre(metrics["sigma"], cert["residual_sd_str"])],
        "r_squared": [lre(metrics["r_squared"], cert["r_squared_str"])],
    }


def test_all_eleven_datasets_present():
    assert DATASETS == sorted(
        [
            "Norris",
            "Pontius",
            "NoInt1",
            "NoInt2",
            "Filip",
            "Longley",
            "Wampler1",
            "Wampler2",
            "Wampler3",
            "Wampler4",
            "Wampler5",
        ]
    )
    for name in DATASETS:
        assert (NIST_DIR / CERTIFIED[name]["csv"]).is_file()


@pytest.mark.parametrize("name", DATASETS)
def test_nist_fit_shape(fits, name):
    summary = fits[name]
    cert = CERTIFIED[name]
    assert list(summary["coefficients"]) == _expected_names(name)
    assert summary["data"]["rows_used"] == cert["n_obs"]
    assert summary["solver"]["aliased_index"] == []


@pytest.mark.parametrize("name", DATASETS)
def test_nist_coefficients_lre(fits, name):
    got = scores(fits[name], name)["coefficients"]
    assert min(got) >= MIN_LRE, dict(zip(CERTIFIED[name]["coefficient_names"], got))


@pytest.mark.parametrize("name", DATASETS)
def test_nist_standard_errors_lre(fits, name):
    got = scores(fits[name], name)["std_errors"]
    assert min(got) >= MIN_LRE, dict(zip(CERTIFIED[name]["coefficient_names"], got))


@pytest.mark.parametrize("name", DATASETS)
def test_nist_residual_sd_lre(fits, name):
    (got,) = scores(fits[name], name)["residual_sd"]
    assert got >= MIN_LRE


@pytest.mark.parametrize("name", DATASETS)
def test_nist_r_squared_lre(fits, name):
    """For NoInt1 and NoInt2 NIST certifies the uncentred R², 1 - RSS / sum(y²)."""
    (got,) = scores(fits[name], name)["r_squared"]
    assert got >= MIN_LRE


#: newton --family gaussian: the same least squares through its final weighted QR step.  Filip
#: (condition number about 1e15) lacks normal-eq's double-double polynomial terms.
GLM_MIN_LRE = {"Filip": 7.0}


@pytest.fixture(scope="module")
def glm_fits() -> dict:
    runner = CliRunner()
    out = {}
    for name in DATASETS:
        result = runner.invoke(cli, ["newton", *_command(name)[1:]])
        assert result.exit_code == 0, (name, result.stderr, result.exception)
        out[name] = json.loads(result.stdout)
    return out


@pytest.mark.parametrize("name", DATASETS)
def test_gaussian_glm_matches_the_certified_values(glm_fits, name):
    """Coefficients and standard errors to 13 digits (Longley's were 11.5 and 8.1 when they
    came from a Cholesky factor of X'X, whose condition number is the square of the design's)."""
    cert = CERTIFIED[name]
    table = list(glm_fits[name]["coefficients"].values())
    got = {
        key: [lre(row[field], c) for row, c in zip(table, cert[f"{cstr}_str"], strict=True)]
        for key, field, cstr in (
            ("coefficients", "estimate", "coefficients"),
            ("std_errors", "std_error", "coef_std_errors"),
        )
    }
    floor = GLM_MIN_LRE.get(name, 13.0)
    assert min(got["coefficients"]) >= floor, got["coefficients"]
    assert min(got["std_errors"]) >= floor, got["std_errors"]


@pytest.mark.parametrize("name", [n for n in DATASETS if n not in GLM_MIN_LRE])
def test_gaussian_glm_equals_normal_eq(fits, glm_fits, name):
    for a, b in zip(fits[name]["coefficients"].values(), glm_fits[name]["coefficients"].values()):
        assert b["estimate"] == pytest.approx(a["estimate"], rel=1e-13, abs=1e-300)
        assert b["std_error"] == pytest.approx(a["std_error"], rel=1e-13, abs=1e-300)
