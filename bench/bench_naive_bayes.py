"""Benchmark `mlfit naive-bayes` against scikit-learn's GaussianNB and CategoricalNB.

    python bench/bench_naive_bayes.py [--rows 200000] [--cols 20] [--classes 3] [--repeat 5]

Two workloads, generated once (seed 0) and cached in bench/data/ (git-ignored):

- numeric: --rows x --cols normal features on different scales, class means apart, a label
  column of --classes classes of unequal size (`nb_gaussian_200000x20_k3.csv`, about 80 MB);
- text: --rows x 10 text columns of 5 levels each whose frequencies depend on the class
  (`nb_categorical_200000x10_k3.csv`, about 25 MB).

For each:

1. fit only, in this process on the same arrays, median of --repeat (taking turns):
   `mlfit.solvers.naive_bayes.fit` (on the design the CLI builds: one-hot text columns)
   versus scikit-learn's `fit` (CategoricalNB on ordinal codes). mlfit's fit also computes the
   training metrics (the posteriors of every row), so `fit` followed by `predict_proba` on the
   training rows is timed as well. Printed: ms, the ratios, the largest difference of the
   log-probabilities.
2. end to end, fresh processes, file in the page cache, median of 3 (taking turns):
   `mlfit naive-bayes data.csv -y label --json -q` versus
   `python -c "import pandas, sklearn; read_csv; [OrdinalEncoder;] GaussianNB/CategoricalNB().fit"`.

Threads: like the `mlfit` command, the script sets OPENBLAS_NUM_THREADS=1 and
MKL_NUM_THREADS=1 before numpy loads unless one of OPENBLAS_/MKL_/OMP_NUM_THREADS is set; the
fresh processes inherit that.
"""

from __future__ import annotations

import os

if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import sys
from pathlib import Path

import numpy as np
from bench_regression import (
    against_sklearn_classifier,
    cached_data,
    class_names,
    mlfit_command,
    print_timing_of,
    race,
    unequal_classes,
    warm_page_cache,
)

PIPELINE = """\
import sys
import pandas
from sklearn.naive_bayes import CategoricalNB, GaussianNB
from sklearn.preprocessing import OrdinalEncoder

X = pandas.read_csv(sys.argv[1])
y = X.pop("label")
if sys.argv[2] == "categorical":
    CategoricalNB().fit(OrdinalEncoder().fit_transform(X), y)
else:
    GaussianNB().fit(X, y)
"""

LEVELS = np.array(list("abcde"))
TEXT_COLS = 10


def write_csv(path: Path, rows: int, cols: int, classes: int, kind: str) -> None:
    """x1..xCOLS (numbers at full precision, or text levels a..e) and `label` (c0, c1, ...)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    y = unequal_classes(rng, classes, rows)
    columns = {}
    if kind == "gaussian":
        means = rng.normal(0, 1.0, (classes, cols))
        scales = np.geomspace(0.5, 50.0, cols)
        X = (rng.normal(size=(rows, cols)) + means[y]) * scales
        columns = {f"x{j + 1}": X[:, j] for j in range(cols)}
    else:
        for j in range(cols):
            p = rng.dirichlet(np.ones(len(LEVELS)), size=classes)  # (classes, levels)
            u = rng.random(rows)[:, None]
            codes = (u > np.cumsum(p[y], axis=1)).sum(axis=1)
            columns[f"t{j + 1}"] = LEVELS[np.minimum(codes, len(LEVELS) - 1)]
    columns["label"] = class_names(classes, y)
    tmp = path.with_suffix(".tmp")
    pcsv.write_csv(pa.table(columns), str(tmp))
    tmp.rename(path)


def model_data(frame, y):
    """The ModelData the CLI would build: one-hot text columns with every level."""
    from pandas.api.types import is_numeric_dtype

    from mlfit.contract import ModelData
    from mlfit.design import build_design

    columns = {
        c: frame[c].to_numpy(dtype=float if is_numeric_dtype(frame[c]) else object) for c in frame
    }
    design, _ = build_design(list(columns), columns, False, categorical=True)
    X, _ = design.transform(columns)
    data = ModelData(X, y, names=design.names, target="label")
    data.one_hot = design.one_hot
    return data


def fit_only(path: Path, kind: str, repeat: int) -> None:
    import pandas as pd
    from sklearn.naive_bayes import CategoricalNB, GaussianNB
    from sklearn.preprocessing import OrdinalEncoder

    from mlfit.solvers import naive_bayes

    frame = pd.read_csv(path)
    y = frame.pop("label").to_numpy(dtype=object)
    data = model_data(frame, y)
    if kind == "gaussian":
        Xs, make = np.ascontiguousarray(frame.to_numpy(dtype=float)), GaussianNB
    else:
        Xs, make = OrdinalEncoder().fit_transform(frame), CategoricalNB
    config = naive_bayes.Config()
    timing = against_sklearn_classifier(lambda: naive_bayes.fit(data, config), make, Xs, y, repeat)
    ours = naive_bayes.fit(data, config).params.log_proba(data.X)
    diff = np.max(np.abs(ours - make().fit(Xs, y).predict_log_proba(Xs)))
    print(
        f"  fit only ({Xs.shape[0]:,} x {Xs.shape[1]}, median of {repeat}): {timing}; "
        f"max |log P difference| {diff:.1e}"
    )


def end_to_end(path: Path, kind: str, repeat: int = 3) -> None:
    warm_page_cache(path)
    mlfit = [*mlfit_command(), "naive-bayes", str(path), "-y", "label", "--json", "-q"]
    sklearn = [sys.executable, "-c", PIPELINE, str(path), kind]
    t = race({"mlfit": mlfit, "sklearn": sklearn}, repeat)
    print(
        f"  end to end (fresh processes, median of {repeat}): mlfit {t['mlfit']:.2f} s, "
        f"pandas + sklearn {t['sklearn']:.2f} s (ratio {t['mlfit'] / t['sklearn']:.2f})"
    )
    print_timing_of(mlfit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for kind, cols in (("gaussian", args.cols), ("categorical", TEXT_COLS)):
        name = f"nb_{kind}_{args.rows}x{cols}_k{args.classes}.csv"
        path = cached_data(
            name, lambda p, k=kind, c=cols: write_csv(p, args.rows, c, args.classes, k)
        )
        print(f"{kind}: {path.name}")
        fit_only(path, kind, args.repeat)
        end_to_end(path, kind)


if __name__ == "__main__":
    main()
