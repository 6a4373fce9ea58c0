"""t and F tails and t quantiles (mlfit.distributions) against scipy.special and exact forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import fdtrc, stdtr, stdtrit

from mlfit.distributions import f_upper, log_beta, t_quantile, t_two_sided

DFS = [1, 2, 3, 4.5, 7, 10, 30, 99, 1000, 12345, 199949]
# (not 1e-8: scipy's stdtr(1, -1e-8) is off by 3e-9; test_t_tail_exact_forms covers it)
TS = [0.01, 0.5, 1, 1.96, 3, 5, 10, 30, 100, 1e3, 1e5]


def tolerance(df: float) -> float:
    return max(1e-13, 1e-15 * df)


@pytest.mark.parametrize("df", DFS)
def test_t_tail_matches_scipy_in_both_tails(df):
    t = np.array(TS)
    ours = t_two_sided(df, t)
    ref = 2.0 * stdtr(df, -t)
    small = ref < 0.5  # relative error in the tail, absolute near 1
    assert np.all(np.abs(ours[small] - ref[small]) <= tolerance(df) * ref[small])
    assert np.all(np.abs(ours[~small] - ref[~small]) <= 1e-14 * 1e3)


def test_t_tail_exact_forms():
    # df = 1 is the Cauchy distribution, df = 2 has a closed form
    for t in [1e-8, 0.3, 1.0, 7.0, 1e6]:
        assert t_two_sided(1, np.array([t]))[0] == pytest.approx(
            1 - 2 * math.atan(t) / math.pi, rel=1e-14
        )
        assert t_two_sided(2, np.array([t]))[0] == pytest.approx(
            1 - t / math.sqrt(2 + t * t), rel=1e-13
        )
    # far tails keep relative accuracy (a 1e-200 p-value is not rounded to 0)
    assert t_two_sided(50, np.array([1e5]))[0] == pytest.approx(2 * stdtr(50, -1e5), rel=1e-13)


def test_t_tail_edges():
    out = t_two_sided(10, np.array([0.0, np.inf, -np.inf, np.nan, -3.0]))
    assert out[0] == 1.0 and out[1] == 0.0 and out[2] == 0.0 and math.isnan(out[3])
    assert out[4] == pytest.approx(2 * stdtr(10, -3.0), rel=1e-14)
    assert math.isnan(t_two_sided(0, np.array([1.0]))[0])
    assert t_two_sided(5, np.array([[1.0, 2.0]])).shape == (1, 2)


@pytest.mark.parametrize("df", DFS)
def test_t_quantile_matches_scipy(df):
    for p in [0.6, 0.9, 0.975, 0.995, 0.9995, 1 - 1e-10]:
        assert t_quantile(df, p) == pytest.approx(stdtrit(df, p), rel=max(1e-13, tolerance(df)))


@pytest.mark.parametrize("df2", DFS)
def test_f_tail_matches_scipy(df2):
    for df1 in [1, 2, 5, 49, 300]:
        for f in [0.01, 0.1, 1, 2, 5, 50, 1e3, 1e6]:
            ref = fdtrc(df1, df2, f)
            if ref < 1e-300:
                continue
            tol = tolerance(max(df1, df2))
            assert abs(f_upper(f, df1, df2) - ref) <= tol * ref
    assert f_upper(0.0, 3, df2) == 1.0 and f_upper(math.inf, 3, df2) == 0.0
    assert math.isnan(f_upper(math.nan, 3, df2)) and math.isnan(f_upper(1.0, 0, df2))


def test_log_beta_has_no_cancellation_for_large_arguments():
    for a, b in [(0.5, 0.5), (3, 4), (0.5, 1e6), (1e6, 0.5), (20, 30), (1e7, 1e7)]:
        exact = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        tol = 1e-15 * max(1.0, abs(math.lgamma(a)) + abs(math.lgamma(b)))
        assert abs(log_beta(a, b) - exact) <= tol
    # log B(a, 1/2) -> log sqrt(pi / a): the lgamma difference would lose 6 digits here
    a = 1e12
    assert log_beta(a, 0.5) == pytest.approx(0.5 * math.log(math.pi / a), rel=1e-14)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 50, 300, 1000, 5000])
def test_chi2_tail_matches_scipy(df):
    from scipy.special import chdtrc

    from mlfit.distributions import chi2_upper

    for x in [1e-6, 0.01, 0.5, 1, 2, 5, 10, 30, 100, 500, 1000, 2000, 6000, 20000]:
        ref = chdtrc(df, x)
        if ref > 1e-300:
            assert chi2_upper(x, df) == pytest.approx(ref, rel=max(1e-13, 5e-16 * df))
    assert chi2_upper(0.0, df) == 1.0 and chi2_upper(math.inf, df) == 0.0
    assert math.isnan(chi2_upper(1.0, 0)) and math.isnan(chi2_upper(math.nan, df))
