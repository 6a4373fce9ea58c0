"""Training a network from chunks streamed from a file: memory bounded by the chunk.

One pass finds the scaling, the task and the classes; a second collects the validation rows
(--early-stopping: a stratified, seeded choice of each class's rows by their rank within the
class) and a seeded sample of training rows for the metrics; then each epoch is one pass,
the rows of every chunk shuffled (a file is read in order, so the chunks are not).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mlfit.errors import DataError

#: Training rows kept for the training metrics (they are computed on this seeded sample).
METRIC_ROWS = 100_000


class _Scan:
    """Rows, column moments (merged chunk by chunk, Chan et al.), the target's moments, its
    distinct values while there are few, and whether it is text."""

    def __init__(self, chunks, limit: int):
        self.n, mean, m2 = 0, None, None
        y_n, y_mean, y_m2 = 0, 0.0, 0.0
        self.text, values, self.target = False, set(), "y"
        for chunk in chunks:
            X, y = chunk.X, np.asarray(chunk.y)
            self.target = chunk.target
            nb = len(X)
            if nb == 0:
                continue
            mb, m2b = X.mean(axis=0), ((X - X.mean(axis=0)) ** 2).sum(axis=0)
            if mean is None:
                mean, m2 = mb, m2b
            else:
                delta = mb - mean
                mean = mean + delta * nb / (self.n + nb)
                m2 = m2 + m2b + delta * delta * self.n * nb / (self.n + nb)
            self.n += nb
            if y.dtype == object or self.text:
                self.text = True
                values = set() if values is None else values
                values.update(str(v) for v in y)
            else:
                yf = y.astype(float)
                ymb, ym2b = float(yf.mean()), float(((yf - yf.mean()) ** 2).sum())
                delta = ymb - y_mean
                y_mean += delta * nb / (y_n + nb)
                y_m2 += ym2b + delta * delta * y_n * nb / (y_n + nb)
                y_n += nb
                if values is not None:
                    values.update(np.unique(yf).tolist())
                    if len(values) > limit:
                        values = None
        if self.n == 0:
            raise DataError("No data rows to fit.")
        self.x_mean, self.x_var = mean, m2 / self.n
        self.y_mean, self.y_var = y_mean, (y_m2 / y_n if y_n else 0.0)
        self.values = None if values is None else sorted(values)


class _Codes:
    """Class codes of a chunk's labels, numbers or text, in the order of `labels`."""

    def __init__(self, labels: list, text: bool):
        self.text = text
        self.index = {(str(v) if text else float(v)): i for i, v in enumerate(labels)}

    def __call__(self, y) -> np.ndarray:
        keys = [str(v) for v in y] if self.text else np.asarray(y, dtype=float).tolist()
        return np.fromiter((self.index[k] for k in keys), dtype=np.int64, count=len(keys))


class _HeldOut:
    """Which rows are validation rows: per class, a seeded set of ranks within the class."""

    def __init__(self, counts: np.ndarray, fraction: float, rng):
        self.chosen = []
        for m in counts:
            held = min(max(1, round(fraction * m)), m - 1) if m > 1 else 0
            mask = np.zeros(m, dtype=bool)
            mask[rng.choice(m, size=held, replace=False)] = True
            self.chosen.append(mask)
        self.start()

    def start(self) -> None:
        self.seen = np.zeros(len(self.chosen), dtype=np.int64)

    def __call__(self, groups: np.ndarray) -> np.ndarray:
        """Validation mask of a chunk's rows (groups: class codes, or zeros), in file order."""
        held = np.zeros(len(groups), dtype=bool)
        for k in np.unique(groups):
            rows = np.flatnonzero(groups == k)
            ranks = self.seen[k] + np.arange(len(rows))
            held[rows] = self.chosen[k][ranks]
            self.seen[k] += len(rows)
        return held


class ChunkBatches:
    """Minibatches from the stream: each chunk's training rows, shuffled, per epoch."""

    def __init__(self, chunks, prep, codes, held, n_train: int, dtype):
        self._chunks, self._prep, self._codes, self._held = chunks, prep, codes, held
        self.n, self._dtype = n_train, dtype

    def targets_of(self, chunk) -> tuple[np.ndarray, np.ndarray]:
        """(target values for the metrics: codes or numbers, group of each row)."""
        if self._codes is not None:
            codes = self._codes(chunk.y)
            return codes, codes
        return np.asarray(chunk.y, dtype=float), np.zeros(chunk.n_rows, dtype=np.int64)

    def rows(self) -> Iterator[tuple]:
        """(chunk, target, held-out mask) in file order."""
        if self._held is not None:
            self._held.start()
        for chunk in self._chunks:
            target, groups = self.targets_of(chunk)
            held = self._held(groups) if self._held is not None else np.zeros(len(groups), bool)
            yield chunk, target, held

    def epoch(self, rng, batch: int) -> Iterator[tuple]:
        for chunk, target, held in self.rows():
            keep = np.flatnonzero(~held)
            keep = keep[rng.permutation(len(keep))]
            Z = self._prep.scaled(chunk.X[keep], self._dtype)
            T = self._prep.targets(target[keep], self._dtype)
            for i in range(0, len(keep), batch):
                yield Z[i : i + batch], T[i : i + batch]


def prepare(chunks, config, rng, task_of_values):
    """The mlp.Prepared of a chunk stream (two passes before training)."""
    from mlfit.solvers.mlp import MAX_CLASSES_AUTO, Prepared

    scan = _Scan(chunks, MAX_CLASSES_AUTO)
    task = config.task if config.task != "auto" else task_of_values(scan.text, scan.values)
    dtype = np.dtype(config.dtype)
    labels = codes = None
    if task == "classification":
        if scan.values is None:
            raise DataError(
                f"Target '{scan.target}' has more than {MAX_CLASSES_AUTO} distinct values; "
                "a chunked classification needs few classes (use --task regression?)."
            )
        labels = scan.values if scan.text else [int(v) if v == int(v) else v for v in scan.values]
        if len(labels) < 2:
            raise DataError(f"Target '{scan.target}' has a single class; classification needs two.")
        codes = _Codes(labels, scan.text)
    elif scan.text:
        raise DataError(f"Target '{scan.target}' is not numeric; a regression needs numbers.")
    x_scale = np.sqrt(scan.x_var)
    prep = Prepared(
        task,
        labels,
        scan.x_mean,
        np.where(x_scale > 0, x_scale, 1.0),
        0.0 if labels else scan.y_mean,
        1.0 if labels else (float(np.sqrt(scan.y_var)) or 1.0),
        len(scan.x_mean),
    )
    held = None
    batches = ChunkBatches(chunks, prep, codes, None, scan.n, dtype)
    if config.early_stopping:
        counts = np.zeros(len(labels) if labels else 1, dtype=np.int64)
        for chunk in chunks:
            counts += np.bincount(batches.targets_of(chunk)[1], minlength=len(counts))
        held = _HeldOut(counts, config.validation_fraction, rng)
        batches = ChunkBatches(chunks, prep, codes, held, 0, dtype)
    _collect(batches, prep, scan.n, rng, dtype)
    return prep


def _collect(batches: ChunkBatches, prep, n: int, rng, dtype) -> None:
    """One pass: the validation rows, and a seeded sample of training rows for the metrics."""
    sample = np.sort(rng.choice(n, size=min(n, METRIC_ROWS), replace=False))
    train_X, train_t, valid_X, valid_t = [], [], [], []
    start, n_train = 0, 0
    for chunk, target, held in batches.rows():
        index = start + np.arange(chunk.n_rows)
        pick = ~held & np.isin(index, sample)
        train_X.append(chunk.X[pick])
        train_t.append(target[pick])
        valid_X.append(chunk.X[held])
        valid_t.append(target[held])
        n_train += int((~held).sum())
        start += chunk.n_rows
    batches.n = n_train
    if n_train < 2:
        raise DataError("--validation-fraction leaves too few training rows.")
    prep.batches = batches
    prep.train_rows = (np.vstack(train_X), np.concatenate(train_t))
    if batches._held is not None:
        Xv, tv = np.vstack(valid_X), np.concatenate(valid_t)
        prep.valid = (prep.scaled(Xv, dtype), prep.targets(tv, dtype))
        prep.valid_rows = (Xv, tv)
    if n > METRIC_ROWS:
        prep.note = (
            f"Training metrics are on a seeded sample of {len(prep.train_rows[1]):,} of the "
            f"{n_train:,} training rows (the data were read in chunks)."
        )
