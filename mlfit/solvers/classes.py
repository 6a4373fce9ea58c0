"""Class labels shared by every classifier: codes, the stratified holdout, ROC/calibration data.

A classifier's fit stores internals codes, train and test (indices, test None without
--holdout) and its Params has proba(X); `plot_data` then serves the roc and calibration plots.
"""

from __future__ import annotations

import numpy as np

from mlfit.contract import FitResult, ModelData
from mlfit.errors import DataError


def encode_labels(y: np.ndarray, target: str = "y") -> tuple[np.ndarray, list]:
    """Class codes 0..K-1 and the sorted labels (numbers as numbers, text as text)."""
    numeric = y.dtype != object or all(
        isinstance(v, (int, float, np.floating, np.integer)) for v in y
    )
    if numeric:
        values, codes = np.unique(np.asarray(y, dtype=float), return_inverse=True)
        labels = [int(v) if float(v).is_integer() else float(v) for v in values]
    else:  # a dict, not np.unique: sorting 10^5 Python strings costs far more than hashing
        text = [str(v) for v in y]
        labels = sorted(set(text))
        index = {label: k for k, label in enumerate(labels)}
        codes = np.fromiter((index[v] for v in text), dtype=np.int64, count=len(text))
    codes = codes.astype(np.int64).ravel()
    if len(labels) < 2:
        raise DataError(
            f"Target '{target}' has a single class ({labels[0]!r}); classification "
            "needs at least two."
        )
    counts = np.bincount(codes, minlength=len(labels))
    for k in np.flatnonzero(counts == 1):
        row = int(np.flatnonzero(codes == k)[0]) + 1
        raise DataError(
            f"Class {labels[k]!r} of target '{target}' has a single row (row {row}): "
            "a typo or a stray value? Fix or remove that row, or merge the class."
        )
    return codes, labels


def holdout_split(codes: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: about `fraction` of each class's rows held out (train, test indices)."""
    if not 0.0 < fraction < 1.0:
        raise DataError("--holdout must be a fraction between 0 and 1.")
    rng = np.random.default_rng(seed)
    test = []
    for k in np.unique(codes):
        rows = np.flatnonzero(codes == k)
        take = round(fraction * len(rows))
        take = min(max(take, 1), len(rows) - 1)
        test.extend(rng.permutation(rows)[:take].tolist())
    test = np.sort(np.array(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(codes)), test)
    return train, test


def split(data: ModelData, holdout: float, seed: int):
    """Class codes of every row, the sorted labels, and the training and held-out rows."""
    y = np.asarray(data.y)
    codes, labels = encode_labels(y if y.dtype.kind in "fiu" else y.astype(object), data.target)
    train, test = np.arange(len(codes)), None
    if holdout:
        train, test = holdout_split(codes, holdout, seed)
    return codes, labels, train, test


def plot_data(result: FitResult, data: ModelData, rows: np.ndarray | None) -> dict:
    """Labels and probabilities of the training (and held-out) rows among `rows`."""
    codes, train, test = (result.internals[k] for k in ("codes", "train", "test"))
    out = {"classes": [str(c) for c in result.params.classes]}
    for key, part in (("train", train), ("holdout", test)):
        if part is None:
            continue
        if rows is not None:
            part = np.intersect1d(part, rows)
        out[key] = (codes[part], result.params.proba(data.X[part]))
    return out
