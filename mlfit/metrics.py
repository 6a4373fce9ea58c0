"""Classification metrics from class codes and predicted probabilities (pure numpy)."""

from __future__ import annotations

import numpy as np


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic, ties counted one half."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # average ranks (1-based) over runs of equal scores
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    codes: np.ndarray, P: np.ndarray, labels: list, predicted: np.ndarray | None = None
) -> dict:
    """codes: (n,) true class indices; P: (n, K) probabilities; labels: K class labels.

    predicted: (n,) predicted class indices (default: the most probable class).
    """
    n, K = P.shape
    if predicted is None:
        predicted = np.argmax(P, axis=1)
    p_true = np.clip(P[np.arange(n), codes], np.finfo(float).tiny, 1.0)
    confusion = np.zeros((K, K), dtype=int)
    np.add.at(confusion, (codes, predicted), 1)
    per_class = {}
    for k, label in enumerate(labels):
        tp = confusion[k, k]
        precision = tp / confusion[:, k].sum() if confusion[:, k].sum() else 0.0
        recall = tp / confusion[k, :].sum() if confusion[k, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[str(label)] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[k, :].sum()),
        }
    out = {
        "accuracy": float(np.mean(predicted == codes)),
        "log_loss": float(-np.mean(np.log(p_true))),
        "n": int(n),
    }
    if K == 2:
        out["roc_auc"] = roc_auc(codes == 1, P[:, 1])
    out["confusion_matrix"] = {
        "labels": [str(lab) for lab in labels],
        "rows_true_columns_predicted": confusion.tolist(),
    }
    out["per_class"] = per_class
    return out
