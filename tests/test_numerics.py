"""mlfit.numerics against exact rational arithmetic (fractions.Fraction) and the limits of the
link functions: the error-free transformations behind normal-eq's NIST accuracy."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfit.numerics import (
    accurate_residual,
    accurate_rmatvec,
    dd_times,
    logsumexp,
    power_of_two_scale,
    sigmoid,
    two_prod,
    two_sum,
)

EPS = np.finfo(float).eps


def F(x) -> Fraction:
    return Fraction(float(x))


def magnitude(lo: float, hi: float):
    """Floats with lo <= |x| <= hi, either sign, or zero (no subnormals, no overflow)."""
    positive = st.floats(min_value=lo, max_value=hi)
    return st.one_of(st.just(0.0), positive, positive.map(lambda v: -v))


# two_sum is exact for any finite a, b whose sum does not overflow.
sum_floats = magnitude(1e-300, 1e300)
# two_prod (Dekker) needs the split 2**27 * a and the error term to stay in range.
prod_floats = magnitude(1e-100, 1e100)


@pytest.fixture
def rng():
    return np.random.default_rng(99)


# --------------------------------------------------------------------------- error-free sums


@given(sum_floats, sum_floats)
def test_two_sum_is_error_free(a, b):
    s, e = two_sum(a, b)
    assert s == a + b  # s is the float64 sum
    assert F(s) + F(e) == F(a) + F(b)  # and e exactly what rounding lost
    assert abs(e) <= math.ulp(s) / 2 if s != 0 else e == 0


@given(prod_floats, prod_floats)
def test_two_prod_is_error_free(a, b):
    p, e = two_prod(a, b)
    assert p == a * b
    assert F(p) + F(e) == F(a) * F(b)


def test_error_free_transformations_elementwise(rng):
    """The solvers call them on whole columns: same exactness on arrays, wide exponent range."""
    a = rng.normal(size=500) * 10.0 ** rng.integers(-40, 40, size=500)
    b = rng.normal(size=500) * 10.0 ** rng.integers(-40, 40, size=500)
    s, e = two_sum(a, b)
    p, q = two_prod(a, b)
    for i in range(500):
        assert F(s[i]) + F(e[i]) == F(a[i]) + F(b[i])
        assert F(p[i]) + F(q[i]) == F(a[i]) * F(b[i])


def test_two_prod_recovers_what_rounding_loses():
    a = 1.0 + 2.0**-30
    p, e = two_prod(a, a)  # (1 + 2^-30)^2 = 1 + 2^-29 + 2^-60: the last term is rounded off
    assert p == 1.0 + 2.0**-29
    assert e == 2.0**-60


# --------------------------------------------------------------------------- double-double


@settings(max_examples=200)
@given(
    st.floats(min_value=1e-50, max_value=1e50),
    st.floats(min_value=-0.5, max_value=0.5),
    magnitude(1e-50, 1e50),
)
def test_dd_times_relative_error_1e_32(hi, frac, x):
    lo = frac * math.ulp(hi)  # a normalised double-double: |lo| <= ulp(hi) / 2
    s, e = dd_times(hi, lo, x)
    exact = (F(hi) + F(lo)) * F(x)
    err = abs(F(s) + F(e) - exact)
    assert err <= Fraction(1, 10**30) * abs(exact)
    assert s + e == s  # renormalised: e below half an ulp of s


def test_repeated_dd_times_keeps_powers_exact(rng):
    """x**k by repeated dd_times (as design.py builds polynomial terms) stays at ~k * 1e-32,
    where float64 powers lose up to k/2 ulps: the gap that costs Filip its digits."""
    for x in rng.uniform(-9, -3, size=20):  # the Filip range
        hi, lo = float(x), 0.0
        for k in range(2, 11):
            hi, lo = dd_times(hi, lo, x)
            exact = F(x) ** k
            assert abs(F(hi) + F(lo) - exact) <= Fraction(k, 10**31) * abs(exact)
            assert hi == float(exact)  # hi is the correctly rounded power


# --------------------------------------------------------------------------- residuals


def exact_residual(A_hi, A_lo, x, vectors):
    n, p = A_hi.shape
    out = []
    for i in range(n):
        v = sum((F(vec[i]) for vec in vectors), Fraction(0))
        for j in range(p):
            a = F(A_hi[i, j]) + (F(A_lo[i, j]) if A_lo is not None else 0)
            v -= a * F(x[j])
        out.append(v)
    return out


@pytest.mark.parametrize("with_lo", [False, True], ids=["hi", "hi+lo"])
def test_accurate_residual_against_fractions(rng, with_lo):
    """b - A x for b close to A x (the refinement's case): plain float64 keeps almost no correct
    digits, the compensated residual is correct to about float64 precision."""
    n, p = 40, 6
    A = rng.normal(size=(n, p)) * 10.0 ** rng.integers(-3, 4, size=p)
    A_lo = (rng.uniform(-0.5, 0.5, size=(n, p)) * np.vectorize(math.ulp)(A)) if with_lo else None
    x = rng.normal(size=p)
    b = A @ x + 1e-12 * rng.normal(size=n)  # heavy cancellation
    r = accurate_residual(A, A_lo, x, b)
    exact = exact_residual(A, A_lo, x, [b])
    naive = b - (A @ x if A_lo is None else A @ x + A_lo @ x)
    worst_naive = 0.0
    for i in range(n):
        scale = sum(abs(F(A[i, j]) * F(x[j])) for j in range(p)) + abs(F(b[i]))
        assert abs(F(r[i]) - exact[i]) <= 2 * F(EPS) * abs(exact[i]) + Fraction(1, 10**28) * scale
        worst_naive = max(worst_naive, float(abs(F(naive[i]) - exact[i]) / abs(exact[i])))
    assert worst_naive > 1e-6  # the test problem really is one float64 gets wrong


def test_accurate_residual_several_vectors(rng):
    n, p = 20, 3
    A, x = rng.normal(size=(n, p)), rng.normal(size=p)
    vs = [rng.normal(size=n) * 1e8, rng.normal(size=n), -rng.normal(size=n) * 1e8]
    r = accurate_residual(A, None, x, *vs)
    exact = exact_residual(A, None, x, vs)
    for i in range(n):
        assert abs(F(r[i]) - exact[i]) <= 2 * F(EPS) * abs(exact[i]) + Fraction(1, 10**20)


def test_accurate_residual_no_vectors_is_minus_ax(rng):
    A, x = rng.normal(size=(10, 3)), rng.normal(size=3)
    r = accurate_residual(A, None, x)
    exact = exact_residual(A, None, x, [])
    assert [float(v) for v in exact] == pytest.approx(r.tolist(), rel=4 * EPS)


def test_accurate_rmatvec_is_correctly_rounded(rng):
    """Without low parts each entry of A' r is the exact dot product, correctly rounded."""
    A = rng.normal(size=(50, 4)) * [1.0, 1e6, 1e-6, 1.0]
    r = rng.normal(size=50)
    A[:, 3] = -A[:, 0] + 1e-10 * rng.normal(size=50)  # cancellation for column 3's partner
    out = accurate_rmatvec(A, None, r)
    for j in range(4):
        exact = sum((F(A[i, j]) * F(r[i]) for i in range(50)), Fraction(0))
        assert out[j] == float(exact)


def test_accurate_rmatvec_with_low_parts(rng):
    A = rng.normal(size=(30, 3))
    A_lo = rng.uniform(-0.5, 0.5, size=A.shape) * np.vectorize(math.ulp)(A)
    r = rng.normal(size=30)
    out = accurate_rmatvec(A, A_lo, r)
    for j in range(3):
        exact = sum(((F(A[i, j]) + F(A_lo[i, j])) * F(r[i]) for i in range(30)), Fraction(0))
        assert abs(F(out[j]) - exact) <= F(EPS) * abs(exact)


def test_power_of_two_scale_is_exact(rng):
    A = rng.normal(size=(30, 4)) * [1e-8, 1.0, 3e5, 0.0]
    scale = power_of_two_scale(A)
    assert scale[3] == 1.0  # a zero column keeps scale 1
    assert np.all(np.log2(scale) == np.round(np.log2(scale)))
    norms = np.linalg.norm(A[:, :3], axis=0)
    assert np.all((norms / scale[:3] >= 2**-0.5) & (norms / scale[:3] <= 2**0.5))
    assert np.array_equal((A / scale) * scale, A)  # dividing by them loses nothing


# --------------------------------------------------------------------------- link functions


def test_sigmoid_limits_without_warnings():
    z = np.array([-np.inf, -1e308, -1e4, -800.0, 800.0, 1e4, 1e308, np.inf])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        s = sigmoid(z)
        s_neg = sigmoid(-z)
    assert s.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert s_neg.tolist() == s[::-1].tolist()


def test_sigmoid_accurate_in_both_tails():
    z = np.concatenate([np.linspace(-700, 700, 2801), [-36.0, -1e-10, 0.0, 1e-10, 36.0]])
    s = sigmoid(z)
    # reference: the form that never overflows for each sign, in float64 via math
    ref = [1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) for v in z]
    np.testing.assert_allclose(s, ref, rtol=1e-12, atol=0)
    assert sigmoid(np.array(0.0)) == 0.5
    assert sigmoid(np.array(-740.0)) > 0  # not 1 - sigmoid(740), which is 0 from z = -37 on
    assert np.all(np.diff(s[:2801]) >= 0)


def test_logsumexp_huge_values_without_warnings():
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        big = logsumexp(np.array([1000.0, 1000.0]))
        small = logsumexp(np.array([-1000.0, -1000.0]))
        huge = logsumexp(np.array([1e308, 1e308]))
        mixed = logsumexp(np.array([-np.inf, 0.0, -1e300]))
        plus_inf = logsumexp(np.array([np.inf, 0.0]))
    assert big == pytest.approx(1000.0 + math.log(2), rel=1e-15)
    assert small == pytest.approx(-1000.0 + math.log(2), rel=1e-15)
    assert huge == 1e308
    assert mixed == 0.0
    assert plus_inf == np.inf


def test_logsumexp_matches_scipy_along_axes(rng):
    Z = rng.normal(size=(7, 5)) * 300
    for axis in (0, 1, -1):
        np.testing.assert_allclose(
            logsumexp(Z, axis=axis), scipy.special.logsumexp(Z, axis=axis), rtol=1e-14
        )
    assert logsumexp(Z, axis=0).shape == (5,)


def test_logsumexp_all_minus_inf_value():
    with np.errstate(divide="ignore"):
        assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
        row = logsumexp(np.array([[-np.inf, -np.inf], [0.0, 0.0]]), axis=1)
    assert row[0] == -np.inf and row[1] == pytest.approx(math.log(2))


def test_logsumexp_all_minus_inf_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf


def test_rowwise_matmul_does_not_depend_on_the_rows_around(rng):
    """Predictions must not change with the chunk a row arrives in: BLAS rounds by shape."""
    from mlfit.numerics import rowwise_matmul

    X, W = rng.normal(size=(5000, 13)), rng.normal(size=(13, 3))
    full = rowwise_matmul(X, W)
    np.testing.assert_allclose(full, X @ W, rtol=1e-12, atol=1e-12)
    for start, size in [(0, 1), (7, 3), (2047, 2), (4999, 1), (100, 4096)]:
        part = rowwise_matmul(X[start : start + size], W)
        assert np.array_equal(part, full[start : start + size])
    assert np.array_equal(rowwise_matmul(X[:9], W[:, 0]), full[:9, 0])
