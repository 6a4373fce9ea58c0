"""newton's gamma, inverse Gaussian and negative binomial families and its --link choices,
against statsmodels GLM (and its discrete NegativeBinomial for an estimated alpha).

Conventions (R's glm and summary.glm, which mlfit follows):
- standard errors from the expected (Fisher) information at the estimate, times the
  dispersion.  statsmodels' IRLS reports the same (at its last iterate's weights); with a
  gradient method its default is the observed information, so the reference here is its
  Newton from IRLS's estimate with cov_type="eim", at the exact optimum.
- dispersion: Pearson's chi-squared over the residual df (statsmodels' scale for these).
- log-likelihood and AIC: at the dispersion deviance / n for gaussian, gamma and inverse
  Gaussian (R's logLik.glm), with the dispersion counted in AIC; statsmodels' llf uses its
  Pearson scale except for the identity-link Gaussian, and its aic does not count the scale,
  so the reference is llf_scaled(scale=deviance / n).
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from mlfit.cli import cli
from mlfit.commands import newton as newton_cmd
from mlfit.contract import ModelData
from mlfit.solvers import links, newton
from mlfit.solvers.family import FAMILIES, family

RTOL = 1e-10
N = 300
SM_LINKS = {
    "identity": sm.families.links.Identity,
    "log": sm.families.links.Log,
    "logit": sm.families.links.Logit,
    "probit": sm.families.links.Probit,
    "cloglog": sm.families.links.CLogLog,
    "inverse": sm.families.links.InversePower,
    "inverse-squared": sm.families.links.InverseSquared,
    "sqrt": sm.families.links.Sqrt,
}
SM_FAMILIES = {
    "gaussian": sm.families.Gaussian,
    "bernoulli": sm.families.Binomial,
    "poisson": sm.families.Poisson,
    "gamma": sm.families.Gamma,
    "inverse-gaussian": sm.families.InverseGaussian,
}
NB_ALPHA = 0.6
#: Every family with every link it allows.
CASES = [(name, link) for name, cls in FAMILIES.items() if name == cls.name for link in cls.links]


def assert_rel(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=0
    )


def family_data(rng, name: str, n: int = N):
    """Two features in (0, 1) and a mean inside every link's valid region: (X, y)."""
    X = rng.uniform(size=(n, 2))
    if name == "bernoulli":
        mu = 0.2 + 0.4 * X[:, 0] + 0.2 * X[:, 1]
        return X, (rng.uniform(size=n) < mu).astype(float)
    mu = 1.5 + 1.5 * X[:, 0] - 0.8 * X[:, 1]
    y = {
        "gaussian": lambda: mu + 0.3 * rng.normal(size=n),
        "poisson": lambda: rng.poisson(mu).astype(float),
        "gamma": lambda: rng.gamma(3.0, mu / 3.0),
        "inverse-gaussian": lambda: rng.wald(mu, 8.0),
        "negative-binomial": lambda: rng.negative_binomial(
            1 / NB_ALPHA, 1 / (1 + NB_ALPHA * mu)
        ).astype(float),
    }[name]()
    return X, y


def sm_family(name: str, link: str, alpha: float = NB_ALPHA):
    sm_link = SM_LINKS[link]()
    if name == "negative-binomial":
        return sm.families.NegativeBinomial(link=sm_link, alpha=alpha)
    return SM_FAMILIES[name](link=sm_link)


def sm_glm(X, y, name, link, alpha=NB_ALPHA, start=None):
    """statsmodels' IRLS to 1e-14, then its Newton (exact optimum), SEs from the expected
    information (cov_type="eim"), as R's summary.glm.  start: IRLS's starting values where
    its own (from mu = y) leave the link's valid region."""
    A = sm.add_constant(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DomainWarning for links outside the family's range
        irls = sm.GLM(y, A, family=sm_family(name, link, alpha)).fit(
            tol=1e-14, maxiter=300, start_params=start
        )
        return sm.GLM(y, A, family=sm_family(name, link, alpha)).fit(
            method="newton", start_params=irls.params, tol=1e-15, maxiter=100, cov_type="eim"
        )


def fit(X, y, name, link=None, alpha=None, names=("a", "b"), **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Python warning may leak
        config = newton.Config(family=name, link=link, nb_alpha=alpha, **kw)
        return newton.fit(ModelData(X, y, names=list(names), target="y"), config)


def r_loglik(ref, name, n):
    """R's logLik: at dispersion deviance / n for the families that estimate one."""
    if name in ("gaussian", "gamma", "inverse-gaussian"):
        return ref.llf_scaled(scale=ref.deviance / n)
    return ref.llf


# --------------------------------------------------------------------------- vs statsmodels


@pytest.mark.parametrize("name, link", CASES)
def test_matches_statsmodels_glm(rng, name, link):
    X, y = family_data(rng, name)
    res = fit(X, y, name, link, NB_ALPHA if name == "negative-binomial" else None)
    try:
        ref = sm_glm(X, y, name, link)
    except ValueError:  # statsmodels' start gives eta <= 0: start it 1% from the answer
        ref = sm_glm(X, y, name, link, start=1.01 * res.tables["coefficients"]["estimate"])
    table = res.tables["coefficients"]
    assert_rel(table["estimate"], ref.params)
    assert_rel(table["std_error"], ref.bse)
    m = res.metrics
    assert_rel(m["deviance"], ref.deviance)
    assert_rel(m["null_deviance"], ref.null_deviance)
    assert_rel(m["dispersion"], ref.scale)
    ll = r_loglik(ref, name, N)
    assert_rel(m["log_likelihood"], ll)
    k = 3 + (name in ("gaussian", "gamma", "inverse-gaussian"))  # R counts the dispersion
    assert_rel(m["aic"], -2 * ll + 2 * k)
    assert_rel(m["bic"], -2 * ll + math.log(N) * k)
    assert res.info["link"] == link and res.params.link == link
    assert res.converged


def test_gamma_loglik_is_rs_with_dispersion_deviance_over_n(rng):
    """An independent check of R's convention: sum of log dgamma(y, shape 1/phi, scale mu phi)
    with phi = deviance / n, which is not statsmodels' llf (its Pearson scale)."""
    X, y = family_data(rng, "gamma")
    res = fit(X, y, "gamma", "log")
    eta = res.params.intercept + X @ res.params.coef
    mu = np.exp(eta)
    phi = res.metrics["deviance"] / N
    ll = stats.gamma.logpdf(y, a=1 / phi, scale=mu * phi).sum()
    assert_rel(res.metrics["log_likelihood"], ll)
    ref = sm_glm(X, y, "gamma", "log")
    assert abs(ref.llf - ll) > 1e-6 * abs(ll)  # statsmodels' llf (Pearson scale) differs
    # t statistics on the residual df, with the Pearson dispersion
    table = res.tables["coefficients"]
    assert_rel(table["std_error"], np.sqrt(np.diag(ref.cov_params())))
    assert res.metrics["dispersion"] == pytest.approx(ref.pearson_chi2 / (N - 3), rel=1e-12)


def test_estimated_alpha_matches_statsmodels_negative_binomial(rng):
    """alpha and the coefficients maximise the joint likelihood (statsmodels' discrete
    NegativeBinomial); alpha's SE is MASS's 1 / sqrt(-d2l/dalpha2) (the alpha entry of
    statsmodels' Hessian), the coefficients' SEs glm.nb's: the expected information at the
    final alpha (statsmodels GLM with that alpha)."""
    X, y = family_data(rng, "negative-binomial", n=400)
    res = fit(X, y, "negative-binomial")
    A = sm.add_constant(X)
    model = sm.NegativeBinomial(y, A)
    start = model.fit(disp=0, maxiter=300)
    ref = model.fit(start_params=start.params, method="newton", tol=1e-15, maxiter=100, disp=0)
    alpha = ref.params[-1]
    m = res.metrics
    assert_rel(m["nb_alpha"], alpha)
    assert_rel(m["nb_alpha_std_error"], 1 / math.sqrt(-model.hessian(ref.params)[-1, -1]))
    assert_rel(res.tables["coefficients"]["estimate"], ref.params[:-1])
    assert_rel(m["log_likelihood"], ref.llf)
    assert_rel(m["aic"], ref.aic)  # counts alpha, as glm.nb
    glm = sm_glm(X, y, "negative-binomial", "log", alpha)
    assert_rel(res.tables["coefficients"]["std_error"], glm.bse, 1e-9)
    assert_rel(m["deviance"], glm.deviance, 1e-9)
    assert res.params.nb_alpha == m["nb_alpha"] and res.info["nb_alpha"] == "maximum likelihood"


def test_fixed_alpha_is_not_counted_in_aic(rng):
    X, y = family_data(rng, "negative-binomial")
    res = fit(X, y, "negative-binomial", alpha=NB_ALPHA)
    assert res.metrics["nb_alpha"] == NB_ALPHA and "nb_alpha_std_error" not in res.metrics
    assert_rel(res.metrics["aic"], -2 * res.metrics["log_likelihood"] + 2 * 3)


def test_underdispersed_counts_have_no_alpha(rng):
    X = rng.uniform(size=(200, 1))
    y = rng.binomial(4, 0.5, size=200).astype(float)  # variance below the mean
    with pytest.raises(newton.FitError, match="not overdispersed"):
        newton.fit(ModelData(X, y), newton.Config(family="negative-binomial"))


@pytest.mark.parametrize(
    "name, link", [("gamma", "log"), ("inverse-gaussian", None), ("negative-binomial", None)]
)
def test_chunked_equals_in_memory(rng, name, link):
    X, y = family_data(rng, name)
    whole = fit(X, y, name, link)
    chunks = [ModelData(X[i : i + 70], y[i : i + 70], names=["a", "b"]) for i in range(0, N, 70)]
    config = newton.Config(family=name, link=link)
    parts = newton.fit_chunks(chunks, config)
    for key in ("estimate", "std_error"):
        assert_rel(parts.tables["coefficients"][key], whole.tables["coefficients"][key], 1e-11)
    for key in ("deviance", "log_likelihood", "dispersion", "aic"):
        assert_rel(parts.metrics[key], whole.metrics[key], 1e-11)


# --------------------------------------------------------------------------- valid regions


def test_identity_poisson_steps_back_into_the_valid_region(rng):
    """Steps that would give negative means (log of a negative: NaN) are halved back inside;
    the estimate is statsmodels'."""
    X = rng.uniform(size=(200, 1))
    y = rng.poisson(0.5 + 3.0 * X[:, 0]).astype(float)
    res = fit(X, y, "poisson", "identity", names=["a"])
    beta = np.array(res.tables["coefficients"]["estimate"])
    assert np.all(beta[0] + X[:, 0] * beta[1] > 0) and res.converged
    assert_rel(beta, sm_glm(X, y, "poisson", "identity").params)
    assert_rel(res.tables["coefficients"]["std_error"], sm_glm(X, y, "poisson", "identity").bse)


def test_a_maximum_on_the_edge_of_the_valid_region_is_a_clear_error(
    rng, runner, tmp_path, assert_error
):
    """Zero counts where the identity link's mean can reach 0: the likelihood rises towards
    the edge mu = 0, so there is no interior estimate (R's glm fails to converge here)."""
    x = rng.uniform(size=200)
    y = rng.poisson(0.05 + 6.0 * x**3)
    path = tmp_path / "edge.csv"
    path.write_text("x,y\n" + "".join(f"{a!r},{b}\n" for a, b in zip(x.tolist(), y.tolist())))
    args = ["newton", str(path), "--family", "poisson", "--link", "identity"]
    assert_error(runner.invoke(cli, args), 1, "edge", "identity link", "--link", "log")


def test_a_link_undefined_at_the_start_is_a_clear_error(runner, write_csv, assert_error):
    path = write_csv("x,y\n1,-2\n2,-1\n3,-3\n4,0.5\n")
    result = runner.invoke(cli, ["newton", path, "--family", "gaussian", "--link", "log"])
    assert_error(result, 1, "log link", "mean of 'y'", "--link")


def test_means_outside_the_range_at_the_start_are_a_clear_error(runner, write_csv, assert_error):
    rows = ["x,off,y"] + [f"{i},{-3 - i},{i % 3}" for i in range(10)]
    path = write_csv("\n".join(rows) + "\n")
    args = ["newton", path, "--family", "poisson", "--link", "sqrt", "--offset", "off"]
    assert_error(runner.invoke(cli, args), 1, "sqrt link", "poisson", "--link")


@pytest.mark.parametrize("name", ["gamma", "inverse-gaussian", "negative-binomial", "poisson"])
def test_log_likelihood_is_minus_infinity_outside_the_valid_region(name):
    fam = family(name, "identity")
    y = np.array([1.0, 2.0])
    assert np.all(fam.loglik(y, np.array([-1.0, 0.0])) == -np.inf)
    assert np.all(fam.unit_deviance(y, np.array([-1.0, 0.0])) == np.inf)


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize("name", sorted(links.LINKS))
def test_link_inverse_and_derivative(name):
    link = links.get_link(name)
    mu = np.array([0.05, 0.3, 0.5, 0.8, 0.97])
    eta = link.link(mu)
    assert np.all(link.valid_eta(eta))
    assert_rel(link.inverse(eta), mu, 1e-14)
    h = 1e-6
    fd = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    assert_rel(link.mu_eta(eta), fd, 1e-7)


def test_extreme_eta_never_overflows():
    eta = np.array([-800.0, -40.0, 40.0, 800.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("log", "logit", "probit", "cloglog"):
            link = links.get_link(name)
            assert np.all(np.isfinite(link.inverse(eta))) and np.all(np.isfinite(link.mu_eta(eta)))


def test_the_commands_choices_come_from_the_registries():
    options = {p.name: p for p in newton_cmd.command.params}
    assert list(options["family_name"].type.choices) == list(FAMILIES)
    assert list(options["link"].type.choices) == list(links.LINKS)


# --------------------------------------------------------------------------- command line


@pytest.fixture
def gamma_csv(rng, tmp_path):
    X, y = family_data(rng, "gamma", n=120)
    path = tmp_path / "gamma.csv"
    lines = ["a,b,y"] + [f"{a!r},{b!r},{v!r}" for (a, b), v in zip(X.tolist(), y.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return str(path), X, y


def test_model_file_keeps_the_link_and_predict_applies_its_inverse(runner, gamma_csv, tmp_path):
    path, X, _ = gamma_csv
    model = tmp_path / "g.model"
    args = ["newton", path, "-y", "y", "--family", "gamma", "--link", "log"]
    out = runner.invoke(cli, [*args, "--json", "--quiet", "-o", str(model)])
    assert out.exit_code == 0, out.stderr
    saved = json.loads(model.read_text())["params"]
    assert (saved["family"], saved["link"]) == ("gamma", "log")
    beta = [c["estimate"] for c in json.loads(out.stdout)["coefficients"].values()]
    result = runner.invoke(cli, ["predict", str(model), path])
    assert result.exit_code == 0, result.stderr
    got = [float(r["prediction"]) for r in csv.DictReader(io.StringIO(result.stdout))]
    assert_rel(got, np.exp(beta[0] + X @ beta[1:]), 1e-13)


def test_model_file_with_a_link_the_family_lacks_is_damaged(
    runner, gamma_csv, tmp_path, assert_error
):
    path, *_ = gamma_csv
    model = tmp_path / "g.model"
    args = ["newton", path, "-y", "y", "--family", "gamma", "--quiet", "-o", str(model)]
    assert runner.invoke(cli, args).exit_code == 0
    saved = json.loads(model.read_text())
    assert saved["params"]["link"] == "inverse"  # the canonical default, as old files have
    assert runner.invoke(cli, ["predict", str(model), path]).exit_code == 0
    saved["params"]["link"] = "logit"
    model.write_text(json.dumps(saved))
    assert_error(runner.invoke(cli, ["predict", str(model), path]), 4, "link", "logit")


def test_negative_binomial_model_file_keeps_alpha(runner, rng, tmp_path, assert_error):
    X, y = family_data(rng, "negative-binomial", n=150)
    path = tmp_path / "nb.csv"
    lines = ["a,b,y"] + [f"{a!r},{b!r},{v:g}" for (a, b), v in zip(X.tolist(), y.tolist())]
    path.write_text("\n".join(lines) + "\n")
    model = tmp_path / "nb.model"
    args = ["newton", str(path), "--family", "negative-binomial", "--json", "-o", str(model)]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.stderr
    metrics = json.loads(out.stdout)["metrics"]
    saved = json.loads(model.read_text())
    assert saved["params"]["nb_alpha"] == metrics["nb_alpha"] > 0
    assert metrics["nb_alpha_std_error"] > 0
    saved["params"]["nb_alpha"] = -1.0
    model.write_text(json.dumps(saved))
    assert_error(runner.invoke(cli, ["predict", str(model), str(path)]), 4, "nb_alpha")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--family", "poisson", "--link", "probit"], ["--link", "poisson", "log, identity, sqrt"]),
        (["--family", "gamma", "--nb-alpha", "1"], ["--nb-alpha", "negative-binomial"]),
        (["--family", "negative-binomial", "--nb-alpha", "0"], ["--nb-alpha"]),
        (["--family", "negative-binomial", "--nb-alpha", "nan"], ["--nb-alpha"]),
        (["--link", "logit2"], ["--link"]),
    ],
)
def test_option_errors(runner, write_csv, args, words):
    path = write_csv("x,y\n1,1\n2,3\n3,2\n4,5\n")
    result = runner.invoke(cli, ["newton", path, *args])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.stderr


@pytest.mark.parametrize("chunked", [[], ["--chunk-rows", "3"]])
@pytest.mark.parametrize(
    "name, bad, words",
    [
        ("gamma", "0", "positive"),
        ("gamma", "-1.5", "positive"),
        ("inverse-gaussian", "0", "positive"),
        ("negative-binomial", "2.5", "counts"),
        ("negative-binomial", "-1", "counts"),
    ],
)
def test_a_target_outside_the_family_names_the_files_row(
    runner, assert_error, write_csv, chunked, name, bad, words
):
    """As tests/test_robustness.py's test of the same name, for the new families."""
    rows = ["x,y"] + [f"{i},{i % 3 + 1}" for i in range(1, 12)]
    rows[2] = "2,"  # a missing target, dropped with --na drop
    rows[9] = f"9,{bad}"
    path = write_csv("\n".join(rows) + "\n")
    args = ["newton", path, "--family", name, "--na", "drop", *chunked]
    assert_error(runner.invoke(cli, args), 3, words, name, "row 9 (line 10)", path)


def test_report_names_alpha(runner, rng, tmp_path):
    X, y = family_data(rng, "negative-binomial", n=150)
    path = tmp_path / "nb.csv"
    lines = ["a,b,y"] + [f"{a!r},{b!r},{v:g}" for (a, b), v in zip(X.tolist(), y.tolist())]
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(cli, ["newton", str(path), "--family", "negative-binomial", "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert "negative binomial alpha" in result.stdout and "alpha standard error" in result.stdout
    assert "link=log" in result.stdout


def test_prior_weights_with_gamma_match_statsmodels_and_rs_loglik(rng):
    """--weights as R's glm(weights =) (statsmodels' var_weights); R's Gamma logLik sums
    w * log dgamma(y, 1/phi, scale = mu phi) with phi = deviance / sum(w)."""
    X, y = family_data(rng, "gamma")
    w = rng.uniform(0.5, 3.0, N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = newton.fit(
            ModelData(X, y, extras={"weights": w}), newton.Config(family="gamma", link="log")
        )
    ref = sm.GLM(
        y, sm.add_constant(X), family=sm.families.Gamma(SM_LINKS["log"]()), var_weights=w
    ).fit(tol=1e-14, maxiter=300)
    table = res.tables["coefficients"]
    assert_rel(table["estimate"], ref.params)
    assert_rel(table["std_error"], ref.bse, 1e-9)  # IRLS's last iterate: ~1e-10 off
    assert_rel(res.metrics["dispersion"], ref.scale, 1e-9)
    mu = np.exp(res.params.intercept + X @ res.params.coef)
    phi = res.metrics["deviance"] / w.sum()
    ll = float(np.sum(w * stats.gamma.logpdf(y, a=1 / phi, scale=mu * phi)))
    assert_rel(res.metrics["log_likelihood"], ll)
