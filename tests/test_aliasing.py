"""Exactly collinear columns in GLMs are aliased as R's glm does (no estimate, a warning, the
rest of the model fitted), in logreg as in newton and normal-eq; separation stays an error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.errors import FitError
from mlfit.solvers import logreg
from mlfit.solvers.lsq import aliased_design_columns


def classes_data(rng, n=300, k=2):
    X = rng.normal(size=(n, 3))
    logits = np.column_stack([np.zeros(n)] + [X @ rng.normal(size=3) * 0.8 for _ in range(k - 1)])
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in P])
    return X, y


COLLINEAR = {
    "duplicate": lambda X: np.column_stack([X, X[:, 1]]),
    "combination": lambda X: np.column_stack([X, 2.0 * X[:, 0] - X[:, 2]]),
    "constant": lambda X: np.column_stack([X, np.full(len(X), 3.0)]),
}


@pytest.mark.parametrize("case", sorted(COLLINEAR))
@pytest.mark.parametrize("k, method", [(2, "newton"), (2, "lbfgs"), (3, "newton")])
def test_logreg_aliases_collinear_columns(rng, case, k, method):
    X, y = classes_data(rng, k=k)
    Xa = COLLINEAR[case](X)
    names = ["a", "b", "c", "d"]
    config = logreg.Config(method=method)
    result = logreg.fit(ModelData(Xa, y, names=names), config)
    reference = logreg.fit(ModelData(X, y, names=names[:3]), config)
    table, ref = result.tables["coefficients"], reference.tables["coefficients"]
    per_class = 5  # intercept, a, b, c, d
    aliased_rows = [c * per_class + 4 for c in range(k - 1)]
    assert [i for i, a in enumerate(table["aliased"]) if a] == aliased_rows
    assert all(np.isnan(table["estimate"][i]) for i in aliased_rows)
    kept = [i for i in range(len(table["estimate"])) if i not in aliased_rows]
    rtol = 1e-9 if method == "newton" else 1e-5
    np.testing.assert_allclose(np.asarray(table["estimate"])[kept], ref["estimate"], rtol=rtol)
    assert any("'d'" in w and "liased" in w for w in result.warnings)
    Xnew = rng.normal(size=(7, 3))
    np.testing.assert_allclose(
        result.params.proba(COLLINEAR[case](Xnew)), reference.params.proba(Xnew), rtol=rtol
    )


def test_logreg_aliasing_from_the_command_line(rng, runner, write_csv, tmp_path):
    X, y = classes_data(rng)
    rows = [["a", "b", "c", "a_copy", "y"]] + [[*x, x[0], v] for x, v in zip(X.tolist(), y)]
    path = write_csv(rows)
    model = str(tmp_path / "m.json")
    result = runner.invoke(cli, ["logreg", path, "-y", "y", "--json", "-o", model])
    assert result.exit_code == 0, result.stderr
    assert "'a_copy'" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["coefficients"]["a_copy"]["estimate"] is None
    assert runner.invoke(cli, ["predict", model, path, "--proba"]).exit_code == 0


def test_separation_is_still_an_error(rng):
    X, _ = classes_data(rng)
    y = (X[:, 0] > 0).astype(int)
    Xa = np.column_stack([X, X[:, 1]])
    with pytest.raises(FitError, match="(?i)separation"):
        logreg.fit(ModelData(Xa, y, names=["a", "b", "c", "d"]), logreg.Config())


def test_the_screen_passes_ill_conditioned_but_full_rank_designs(rng):
    t = rng.uniform(size=200)
    X = np.column_stack([t, t + 1e-6 * rng.normal(size=200), rng.normal(size=200)])
    assert not aliased_design_columns(X, intercept=True).any()
    assert aliased_design_columns(np.column_stack([X, X[:, 0]]), intercept=True).tolist() == [
        False,
        False,
        False,
        False,
        True,
    ]
    # without an intercept a constant column is a column like any other
    ones = np.column_stack([np.ones(200), X])
    assert not aliased_design_columns(ones, intercept=False).any()
    assert aliased_design_columns(ones, intercept=True)[1]
