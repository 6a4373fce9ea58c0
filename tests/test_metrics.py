"""mlfit/metrics.py against sklearn.metrics: ROC AUC (with ties) and the classification table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from mlfit.metrics import classification_metrics, roc_auc

#: The Mann-Whitney sum and sklearn's trapezoids round differently: measured 1.1e-16.
ATOL_AUC = 1e-13


def test_roc_auc_matches_sklearn_with_ties(rng):
    for _ in range(300):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        levels = int(rng.integers(1, 6))  # few distinct scores: many ties, across classes
        score = rng.integers(0, levels, n) / 4.0
        assert abs(roc_auc(y == 1, score) - roc_auc_score(y, score)) <= ATOL_AUC


def test_roc_auc_matches_sklearn_continuous(rng):
    y = rng.integers(0, 2, 500)
    score = rng.normal(size=500) + 0.8 * y
    assert abs(roc_auc(y == 1, score) - roc_auc_score(y, score)) <= ATOL_AUC


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([-1.0, 0.0, 0.25, 0.5, 3.0])),
        min_size=2,
        max_size=40,
    )
)
def test_roc_auc_property_vs_sklearn(pairs):
    positive = np.array([p for p, _ in pairs])
    score = np.array([s for _, s in pairs])
    if positive.all() or not positive.any():
        assert math.isnan(roc_auc(positive, score))
        return
    expected = roc_auc_score(positive.astype(int), score)
    assert abs(roc_auc(positive, score) - expected) <= ATOL_AUC
    # the complement class sees the complementary area
    assert abs(roc_auc(~positive, score) - (1 - expected)) <= ATOL_AUC


def test_roc_auc_special_cases():
    positive = np.array([False, False, True, True])
    assert roc_auc(positive, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(positive, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert roc_auc(positive, np.full(4, 0.7)) == 0.5  # all tied: half credit
    assert roc_auc(positive, np.array([0.1, 0.3, 0.3, 0.4])) == 0.875  # one tie pair of 4 pairs
    assert math.isnan(roc_auc(np.zeros(3, dtype=bool), np.arange(3.0)))
    assert math.isnan(roc_auc(np.ones(3, dtype=bool), np.arange(3.0)))


def test_roc_auc_depends_only_on_the_order(rng):
    y = rng.integers(0, 2, 80) == 1
    score = rng.integers(0, 8, 80).astype(float)
    base = roc_auc(y, score)
    assert roc_auc(y, np.exp(score) - 5.0) == base
    assert roc_auc(y, 2.0 * score + 1.0) == base
    order = rng.permutation(80)
    assert roc_auc(y[order], score[order]) == base


def random_case(rng, n, K):
    codes = rng.integers(0, K, n)
    P = rng.dirichlet(np.ones(K), size=n)
    P[np.arange(n), codes] += 0.3  # a little signal
    return codes, P / P.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("K", [2, 3, 5])
def test_classification_metrics_match_sklearn(rng, K):
    codes, P = random_case(rng, 120, K)
    labels = ["ant", "bee", "cat", "dog", "eel"][:K]
    m = classification_metrics(codes, P, labels)
    predicted = np.argmax(P, axis=1)
    assert m["n"] == 120
    assert m["accuracy"] == accuracy_score(codes, predicted)
    np.testing.assert_allclose(m["log_loss"], log_loss(codes, P, labels=list(range(K))), rtol=1e-13)
    assert m["confusion_matrix"]["labels"] == labels
    assert (
        m["confusion_matrix"]["rows_true_columns_predicted"]
        == confusion_matrix(codes, predicted, labels=list(range(K))).tolist()
    )
    precision, recall, f1, support = precision_recall_fscore_support(
        codes, predicted, labels=list(range(K)), zero_division=0
    )
    assert list(m["per_class"]) == labels
    for k, label in enumerate(labels):
        row = m["per_class"][label]
        np.testing.assert_allclose(
            [row["precision"], row["recall"], row["f1"]],
            [precision[k], recall[k], f1[k]],
            rtol=1e-14,
            atol=0,
        )
        assert row["support"] == support[k]
    if K == 2:
        assert abs(m["roc_auc"] - roc_auc_score(codes, P[:, 1])) <= ATOL_AUC
    else:
        assert "roc_auc" not in m


def test_classification_metrics_use_given_decisions(rng):
    """`predicted` (e.g. from a threshold) replaces the argmax; log-loss and AUC do not change."""
    codes, P = random_case(rng, 100, 2)
    predicted = (P[:, 1] >= 0.8).astype(np.int64)
    m = classification_metrics(codes, P, [0, 1], predicted)
    default = classification_metrics(codes, P, [0, 1])
    assert m["accuracy"] == accuracy_score(codes, predicted) != default["accuracy"]
    assert (
        m["confusion_matrix"]["rows_true_columns_predicted"]
        == confusion_matrix(codes, predicted).tolist()
    )
    assert m["confusion_matrix"]["labels"] == ["0", "1"]
    assert m["log_loss"] == default["log_loss"] and m["roc_auc"] == default["roc_auc"]


def test_never_predicted_class_has_zero_precision(rng):
    """A class that is never predicted: precision and F1 are 0 (sklearn's zero_division=0)."""
    codes = np.array([0, 0, 1, 1, 2, 2])
    P = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.5, 0.4, 0.1],
            [0.1, 0.6, 0.3],
            [0.3, 0.3, 0.4],
        ]
    )
    P[5] = [0.45, 0.45, 0.10]  # class 2 never wins
    m = classification_metrics(codes, P, ["a", "b", "c"])
    predicted = np.argmax(P, axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        codes, predicted, labels=[0, 1, 2], zero_division=0
    )
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    for k, label in enumerate("abc"):
        row = m["per_class"][label]
        np.testing.assert_allclose(
            [row["precision"], row["recall"], row["f1"]],
            [precision[k], recall[k], f1[k]],
            rtol=1e-14,
        )


def test_log_loss_stays_finite_for_a_zero_probability():
    codes = np.array([0, 1])
    P = np.array([[1.0, 0.0], [1.0, 0.0]])  # the second row's true class has probability 0
    m = classification_metrics(codes, P, ["n", "y"])
    assert math.isfinite(m["log_loss"])
    assert m["log_loss"] == pytest.approx(-math.log(np.finfo(float).tiny) / 2)
