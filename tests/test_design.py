"""The design matrix: one-hot encoding, polynomial terms (names, order, double-double low parts)
and the encoding's round trip through the model file."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mlfit.cli import cli
from mlfit.design import Design, build_design
from mlfit.errors import DataError


def text(*values):
    return np.array(values, dtype=object)


def num(*values):
    return np.array(values, dtype=float)


# --------------------------------------------------------------------------- one-hot


def test_one_hot_drops_the_first_sorted_level_with_an_intercept():
    cols = {"x": num(1, 2, 3, 4), "c": text("b", "a", "c", "b")}
    design, warnings = build_design(["x", "c"], cols, intercept=True)
    assert warnings == []
    assert design.levels == {"c": ["a", "b", "c"]}
    assert design.names == ["x", "c=b", "c=c"]
    X, lo = design.transform(cols)
    assert lo is None
    np.testing.assert_array_equal(X, [[1, 1, 0], [2, 0, 0], [3, 0, 1], [4, 1, 0]])


def test_no_intercept_keeps_every_level_of_the_first_text_column_only():
    cols = {"c": text("b", "a", "b"), "x": num(1, 2, 3), "d": text("u", "v", "v")}
    design, _ = build_design(["c", "x", "d"], cols, intercept=False)
    assert design.names == ["c=a", "c=b", "x", "d=v"]
    X, _ = design.transform(cols)
    np.testing.assert_array_equal(X, [[0, 1, 1, 0], [1, 0, 2, 1], [0, 1, 3, 1]])


def test_text_column_expands_in_place(runner, strict_json, write_csv):
    path = write_csv("c,x,d,y\nb,1,u,1\na,2,v,3\nb,3,v,2\na,4,u,5\nc,5,u,4\nc,6,v,7\nb,7,u,6\n")
    result = runner.invoke(cli, ["normal-eq", path, "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    assert list(strict_json(result.stdout)["coefficients"]) == [
        "intercept",
        "c=b",
        "c=c",
        "x",
        "d=v",
    ]
    result = runner.invoke(cli, ["normal-eq", path, "--json", "-q", "--no-intercept"])
    assert result.exit_code == 0, result.stderr
    assert list(strict_json(result.stdout)["coefficients"]) == ["c=a", "c=b", "c=c", "x", "d=v"]


def test_boolean_column_is_one_hot_encoded(runner, strict_json, write_csv):
    rows = [("x", "flag", "y")] + [
        (i, ["false", "true"][i % 2], 2 * i + 3 * (i % 2) + (i % 3)) for i in range(1, 11)
    ]
    path = write_csv(rows)
    result = runner.invoke(cli, ["normal-eq", path, "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    out = strict_json(result.stdout)
    assert list(out["coefficients"]) == ["intercept", "x", "flag=true"]
    result = runner.invoke(cli, ["normal-eq", path, "--json", "-q", "--no-intercept"])
    assert list(strict_json(result.stdout)["coefficients"]) == ["x", "flag=false", "flag=true"]


def test_boolean_column_from_parquet_matches_csv(runner, strict_json, tmp_path):
    import pandas as pd

    df = pd.DataFrame(
        {"x": np.arange(1.0, 9), "flag": [True, False] * 4, "y": [3.0, 2, 7, 4, 9, 8, 15, 12]}
    )
    df.to_parquet(tmp_path / "b.parquet")
    df.to_csv(tmp_path / "b.csv", index=False)
    outs = []
    for name in ("b.parquet", "b.csv"):
        result = runner.invoke(cli, ["normal-eq", str(tmp_path / name), "--json", "-q"])
        assert result.exit_code == 0, result.stderr
        outs.append(strict_json(result.stdout)["coefficients"])
    assert list(outs[0]) == list(outs[1]) == ["intercept", "x", "flag=true"]
    for name in outs[0]:
        assert outs[0][name]["estimate"] == pytest.approx(outs[1][name]["estimate"], rel=1e-12)


def test_single_level_text_column_warns():
    cols = {"x": num(1, 2, 3), "c": text("a", "a", None)}
    design, warnings = build_design(["x", "c"], cols, intercept=True)
    assert design.levels == {"c": ["a"]}
    assert design.names == ["x"]  # the one level is the intercept's
    assert len(warnings) == 1 and "'c'" in warnings[0] and "single value 'a'" in warnings[0]


def test_single_level_warning_on_stderr_and_quiet(runner, strict_json, write_csv):
    path = write_csv("x,k,y\n1,a,1\n2,a,3\n3,a,2\n4,a,5\n")
    result = runner.invoke(cli, ["normal-eq", path, "--json"])
    assert result.exit_code == 0
    strict_json(result.stdout)  # the warning is not on stdout
    assert "Warning:" in result.stderr and "'k'" in result.stderr
    assert strict_json(result.stdout)["warnings"] == [result.stderr.strip()[len("Warning: ") :]]
    quiet = runner.invoke(cli, ["normal-eq", path, "--json", "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_unseen_level_names_column_and_value():
    design, _ = build_design(["c"], {"c": text("a", "b")}, intercept=True)
    with pytest.raises(DataError, match=r"Column 'c' in new.csv has value 'zz' at row 2"):
        design.transform({"c": text("a", "zz")}, "new.csv")


def test_identifier_like_text_column_is_an_error():
    values = text(*(f"id{i}" for i in range(1001)))
    with pytest.raises(DataError, match="--drop c"):
        build_design(["c"], {"c": values}, intercept=True)


def test_levels_given_for_a_chunked_fit():
    # A chunked fit knows the text columns' levels before it sees any rows: numeric features
    # are then simply the ones without levels.
    design, warnings = build_design(
        ["x", "c"], {}, intercept=True, poly=2, levels={"c": ["a", "b"]}
    )
    assert warnings == []
    assert design.names == ["x", "c=b", "x^2"]
    X, _ = design.transform({"x": num(3, 4), "c": text("b", "a")})
    np.testing.assert_array_equal(X, [[3, 1, 9], [4, 0, 16]])


def test_design_round_trips_through_a_dict():
    cols = {"x": num(1, 2, 3), "z": num(0, 1, 5), "c": text("b", "a", "b")}
    design, _ = build_design(["x", "c", "z"], cols, intercept=True, poly=3)
    again = Design.from_dict(design.to_dict())
    assert again == design
    assert again.names == design.names
    np.testing.assert_array_equal(again.transform(cols)[0], design.transform(cols)[0])


# --------------------------------------------------------------------------- polynomial terms


def test_poly_one_column_term_order_and_values():
    x = num(1.5, -2, 3)
    design, _ = build_design(["x"], {"x": x}, intercept=True, poly=4)
    assert design.names == ["x", "x^2", "x^3", "x^4"]
    X, lo = design.transform({"x": x})
    np.testing.assert_array_equal(X, np.column_stack([x, x**2, x**3, x**4]))
    np.testing.assert_array_equal(lo, 0.0)  # small exact products have no low part


def test_poly_two_columns_degree_two():
    cols = {"x1": num(2, 3), "x2": num(5, 7)}
    design, _ = build_design(["x1", "x2"], cols, intercept=True, poly=2)
    assert design.names == ["x1", "x2", "x1^2", "x1*x2", "x2^2"]
    X, _ = design.transform(cols)
    np.testing.assert_array_equal(X, [[2, 5, 4, 10, 25], [3, 7, 9, 21, 49]])


def test_poly_three_columns_degree_three_names():
    cols = {n: num(1, 2) for n in ("a", "b", "c")}
    design, _ = build_design(["a", "b", "c"], cols, intercept=True, poly=3)
    assert design.names == [
        "a",
        "b",
        "c",
        "a^2",
        "a*b",
        "a*c",
        "b^2",
        "b*c",
        "c^2",
        "a^3",
        "a^2*b",
        "a^2*c",
        "a*b^2",
        "a*b*c",
        "a*c^2",
        "b^3",
        "b^2*c",
        "b*c^2",
        "c^3",
    ]


def test_poly_leaves_text_columns_alone():
    cols = {"x": num(1, 2, 3), "c": text("a", "b", "a"), "z": num(4, 5, 6)}
    design, _ = build_design(["x", "c", "z"], cols, intercept=True, poly=2)
    assert design.names == ["x", "c=b", "z", "x^2", "x*z", "z^2"]


def test_poly_cli_names(runner, strict_json, write_csv):
    path = write_csv("x1,x2,y\n1,2,1\n2,1,3\n3,5,2\n4,2,5\n5,7,4\n6,1,7\n7,3,6\n8,2,9\n")
    result = runner.invoke(cli, ["normal-eq", path, "--poly", "2", "--json", "-q"])
    assert result.exit_code == 0, result.stderr
    assert list(strict_json(result.stdout)["coefficients"]) == [
        "intercept",
        "x1",
        "x2",
        "x1^2",
        "x1*x2",
        "x2^2",
    ]


def test_poly_errors():
    with pytest.raises(DataError, match="at least 1"):
        build_design(["x"], {"x": num(1, 2)}, intercept=True, poly=0)
    with pytest.raises(DataError, match="numeric feature"):
        build_design(["c"], {"c": text("a", "b")}, intercept=True, poly=2)


def test_poly_zero_is_a_usage_error(runner, write_csv):
    result = runner.invoke(cli, ["normal-eq", write_csv("x,y\n1,2\n2,3\n3,5\n"), "--poly", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_double_double_powers_match_exact_fractions(rng):
    x = rng.uniform(-3, 3, 200) * 10.0 ** rng.integers(-5, 6, 200)
    degree = 9
    design, _ = build_design(["x"], {"x": x}, intercept=True, poly=degree)
    hi, lo = design.transform({"x": x})
    assert hi.shape == lo.shape == (200, degree)
    worst = 0.0
    for k in range(2, degree + 1):
        for i, xi in enumerate(x):
            exact = Fraction(float(xi)) ** k
            got = Fraction(float(hi[i, k - 1])) + Fraction(float(lo[i, k - 1]))
            worst = max(worst, abs(float((got - exact) / exact)))
            assert hi[i, k - 1] == float(xi) ** k or abs(hi[i, k - 1] - exact) <= abs(exact) * 2e-16
    assert worst < 1e-30
    assert np.any(lo[:, 1:] != 0)  # the low parts carry real information


def test_double_double_cross_products_match_exact_fractions(rng):
    a, b = rng.normal(size=50), rng.normal(size=50) * 1e3
    design, _ = build_design(["a", "b"], {"a": a, "b": b}, intercept=True, poly=3)
    hi, lo = design.transform({"a": a, "b": b})
    for j, m in enumerate(design.monomials, start=2):
        for i in range(len(a)):
            exact = Fraction(1)
            for index in m:
                exact *= Fraction(float((a, b)[index][i]))
            got = Fraction(float(hi[i, j])) + Fraction(float(lo[i, j]))
            assert abs(float((got - exact) / exact)) < 1e-30, (design.names[j], i)
