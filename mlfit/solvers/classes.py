"""Class labels shared by every classifier: codes (in memory or over chunks), the stratified
holdout, thresholds, metrics and predictions from class probabilities, ROC/calibration data.

A classifier's fit stores internals codes, train and test (indices, test None without
--holdout) and its Params has proba(X); `plot_data` then serves the roc and calibration plots.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mlfit import engine
from mlfit.contract import FitResult, ModelData
from mlfit.errors import DataError, UsageError
from mlfit.metrics import classification_metrics
from mlfit.params import ParamsError, read_float


def encode_labels(y: np.ndarray, target: str = "y") -> tuple[np.ndarray, list]:
    """Class codes 0..K-1 of a column y (n,) and the sorted labels (numbers as numbers, text
    as text)."""
    return _encoded([_factorized(y)], target)


def class_codes(chunks: Iterable[ModelData]) -> tuple[np.ndarray, list]:
    """Class codes 0..K-1 of every row of a chunk stream (one pass) and the sorted labels,
    the same as encode_labels gives for the whole column."""
    found = engine.map_reduce(chunks, label_part, concat)  # where the chunks live
    if not found:
        raise DataError("No data rows to fit.")
    return codes_from_parts(found)


def label_part(chunk: ModelData) -> list:
    """[(target, the chunk's distinct labels and codes into them)], for codes_from_parts."""
    return [(chunk.target, _factorized(chunk.y))]


def codes_from_parts(found: list) -> tuple[np.ndarray, list]:
    """Codes and sorted labels from the label_part of every chunk, in row order."""
    return _encoded([part for _, part in found], found[-1][0])


def concat(a: list, b: list) -> list:
    """Lists of consecutive chunks' results, in order (engine.map_reduce's combine)."""
    return a + b


def _factorized(y) -> tuple[np.ndarray, np.ndarray, bool]:
    """A column's distinct labels (floats for numbers, strings for text), each row's index
    into them, and whether they are numbers.  Text is factorized through a dict (O(n); sorting
    objects is ten times slower), and only the distinct values are converted; two that convert
    alike are merged in _encoded."""
    y = np.asarray(y)
    if y.dtype.kind in "fiub":
        u, local = np.unique(y.astype(float), return_inverse=True)
        return u, local.ravel(), True
    index: dict = {}
    local = np.fromiter((index.setdefault(v, len(index)) for v in y), np.int64, len(y))
    u = list(index)
    if all(isinstance(v, (int, float, np.floating, np.integer)) for v in u):
        return np.array(u, dtype=float), local, True
    return np.array([str(v) for v in u], dtype=object), local, False


def _encoded(parts: list, target: str) -> tuple[np.ndarray, list]:
    """Codes and sorted labels from the _factorized parts of a column, in row order; a single
    class, or a class of one row, is a DataError."""
    uniques = [u for u, _, _ in parts]
    numeric = all(is_number for _, _, is_number in parts)
    if not numeric:  # text somewhere: every label is text
        uniques = [np.array([str(v) for v in u], dtype=object) for u in uniques]
    values, inverse = np.unique(np.concatenate(uniques), return_inverse=True)
    inverse = inverse.ravel()
    codes, start = [], 0
    for u, (_, local, _) in zip(uniques, parts):
        codes.append(inverse[start : start + len(u)][local])
        start += len(u)
    codes = np.concatenate(codes).astype(np.int64)
    if numeric:
        labels = [int(v) if float(v).is_integer() else float(v) for v in values]
    else:
        labels = list(values)
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
    codes, labels = encode_labels(data.y, data.target)
    train, test = np.arange(len(codes)), None
    if holdout:
        train, test = holdout_split(codes, holdout, seed)
    return codes, labels, train, test


def holdout_info(config) -> dict:
    """The info entries of a fit with --holdout (its fraction and seed); none without."""
    return {"holdout": config.holdout, "seed": config.seed} if config.holdout else {}


def read_threshold(d: dict) -> float:
    """A model file's 'threshold', which must be a probability."""
    threshold = read_float(d, "threshold")
    if not 0.0 <= threshold <= 1.0:
        raise ParamsError("'threshold' must be a probability")
    return threshold


def decide(P: np.ndarray, threshold: float) -> np.ndarray:
    """(n,) class codes from probabilities P (n, K): the most probable class; for two classes,
    the second when its probability is at least the threshold."""
    if P.shape[1] == 2:
        return (P[:, 1] >= threshold).astype(np.int64)
    return np.argmax(P, axis=1)


def threshold_warning(K: int, threshold: float, default: float) -> list[str]:
    """The warning for a --threshold given to a fit of more than two classes (else none)."""
    if K > 2 and threshold != default:
        return [f"--threshold is for two classes; {K} classes go to the most probable."]
    return []


def metrics(codes, P, labels: list, decide, train, test, **extra) -> dict:
    """classification_metrics of the training rows (codes and P indexed by train), then the
    extra entries (the log-likelihood), then those of the held-out rows under 'holdout' (test
    None: none); decide(P) gives the predicted codes."""
    out = classification_metrics(codes[train], P[train], labels, decide(P[train]))
    out.update(extra)
    if test is not None:
        out["holdout"] = classification_metrics(codes[test], P[test], labels, decide(P[test]))
    return out


def predict(
    params, data: ModelData, proba: bool = False, threshold: float | None = None
) -> dict[str, np.ndarray]:
    """The predicted label, and with proba a column p_<class> per class, of a Params with
    classes, proba(X) and decide(P, threshold)."""
    if threshold is not None and len(params.classes) > 2:
        raise UsageError(
            f"--threshold is for two classes; this model has {len(params.classes)}: every "
            "row goes to its most probable class."
        )
    P = params.proba(data.X)
    labels = np.array(params.classes, dtype=object)
    out = {"prediction": labels[params.decide(P, threshold)]}
    if proba:
        for k, label in enumerate(params.classes):
            out[f"p_{label}"] = P[:, k]
    return out


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
