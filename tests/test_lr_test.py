"""newton and logreg test the model against its null model as statsmodels and R do:
the likelihood-ratio statistic, its df and p-value; logreg also the null log-likelihood and
McFadden's pseudo-R²."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from mlfit.contract import ModelData
from mlfit.solvers import logreg, newton


@pytest.mark.parametrize("family", ["gaussian", "bernoulli", "poisson"])
def test_newton_lr_test_matches_statsmodels(rng, family):
    X = rng.normal(size=(200, 3))
    eta = 0.2 + X @ np.array([0.3, -0.2, 0.1])
    y = {
        "gaussian": eta + rng.normal(size=200),
        "bernoulli": (rng.uniform(size=200) < 1 / (1 + np.exp(-eta))).astype(float),
        "poisson": rng.poisson(np.exp(eta)).astype(float),
    }[family]
    result = newton.fit(ModelData(X, y), newton.Config(family=family))
    fam = {
        "gaussian": sm.families.Gaussian(),
        "bernoulli": sm.families.Binomial(),
        "poisson": sm.families.Poisson(),
    }[family]
    ref = sm.GLM(y, sm.add_constant(X), family=fam).fit()
    null = sm.GLM(y, np.ones((200, 1)), family=fam).fit()
    m = result.metrics
    assert m["null_log_likelihood"] == pytest.approx(null.llf, rel=1e-10)
    assert m["lr_statistic"] == pytest.approx(2 * (ref.llf - null.llf), rel=1e-9)
    assert m["lr_df"] == 3
    from scipy.stats import chi2

    assert m["lr_p_value"] == pytest.approx(chi2.sf(m["lr_statistic"], 3), rel=1e-10)


@pytest.mark.parametrize("k", [2, 3])
def test_logreg_null_model_and_lr_test_match_statsmodels(rng, k):
    X = rng.normal(size=(300, 2))
    logits = np.column_stack([np.zeros(300)] + [X @ rng.normal(size=2) for _ in range(k - 1)])
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in P])
    result = logreg.fit(ModelData(X, y), logreg.Config())
    ref = (sm.Logit if k == 2 else sm.MNLogit)(y, sm.add_constant(X)).fit(disp=0, tol=1e-12)
    m = result.metrics
    counts = np.bincount(y)
    exact = float(np.sum(counts * np.log(counts / len(y))))  # the class frequencies
    assert m["null_log_likelihood"] == pytest.approx(exact, rel=1e-14)
    assert m["null_log_likelihood"] == pytest.approx(ref.llnull, rel=1e-9)  # fitted by statsmodels
    assert m["pseudo_r_squared"] == pytest.approx(ref.prsquared, rel=1e-8)
    assert m["lr_statistic"] == pytest.approx(ref.llr, rel=1e-8)
    assert m["lr_df"] == ref.df_model
    assert m["lr_p_value"] == pytest.approx(ref.llr_pvalue, rel=1e-6, abs=1e-300)


def test_no_lr_test_for_penalised_or_weighted_fits(rng):
    X = rng.normal(size=(100, 2))
    y = (X[:, 0] + rng.normal(size=100) > 0).astype(int)
    for config in (logreg.Config(l2=1.0), logreg.Config(class_weight="balanced")):
        assert "lr_statistic" not in logreg.fit(ModelData(X, y), config).metrics
    assert (
        "lr_statistic"
        not in newton.fit(
            ModelData(X, y.astype(float)), newton.Config(family="bernoulli", l2=1.0)
        ).metrics
    )
