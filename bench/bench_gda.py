"""Benchmark `mlfit gda` against scikit-learn's LinearDiscriminantAnalysis and
QuadraticDiscriminantAnalysis.

    python bench/bench_gda.py [--rows 200000] [--cols 20] [--classes 3] [--repeat 5]

One workload, generated once (seed 0, full float64 precision) and cached in bench/data/
(git-ignored): --rows x --cols correlated features on different scales and a label column
(--classes classes of unequal size, means apart), `gda_200000x20_k3.csv` (about 80 MB).

For the shared covariance (LDA; scikit-learn's solver='lsqr', the same estimates) and the
per-class one (QDA):

1. fit only, in this process on the same numpy arrays, median of --repeat (taking turns):
   `mlfit.solvers.gda.fit` versus scikit-learn's `fit`. mlfit's fit also computes the
   training metrics (accuracy, log-loss, confusion matrix: the posteriors of every row), so
   scikit-learn's `fit` followed by `predict_proba` on the training rows is timed as well.
   Printed: ms, the ratios, and the largest difference of the probabilities.
2. end to end, fresh processes, file in the page cache, median of 3 (taking turns):
   `mlfit gda data.csv -y label [--per-class-covariance] --json -q` versus
   `python -c "import pandas, sklearn; read_csv; LDA/QDA().fit"`.

Threads: like the `mlfit` command, the script sets OPENBLAS_NUM_THREADS=1 and
MKL_NUM_THREADS=1 before numpy loads unless one of OPENBLAS_/MKL_/OMP_NUM_THREADS is set; the
fresh processes inherit that, so both run single-threaded BLAS.
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
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis

X = pandas.read_csv(sys.argv[1])
y = X.pop("label")
model = QuadraticDiscriminantAnalysis() if sys.argv[2] == "qda" else LinearDiscriminantAnalysis(solver="lsqr")
model.fit(X, y)
"""


def write_gda_csv(path: Path, rows: int, cols: int, classes: int, block: int = 50_000) -> None:
    """x1..xCOLS at full precision and `label` (c0, c1, ...); written to a temporary name."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    means = rng.normal(0, 1.5, (classes, cols))
    mixing = [rng.normal(size=(cols, cols)) / np.sqrt(cols) + np.eye(cols) for _ in range(classes)]
    scales = np.geomspace(0.5, 50.0, cols)  # sklearn QDA: absolute rank tol 1e-4
    names = [f"x{j + 1}" for j in range(cols)]
    fields = [(n, pa.float64()) for n in names] + [("label", pa.string())]
    tmp = path.with_suffix(".tmp")
    with pcsv.CSVWriter(str(tmp), pa.schema(fields)) as writer:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            y = unequal_classes(rng, classes, n)
            Z = rng.normal(size=(n, cols))
            X = np.einsum("nj,njk->nk", Z, np.array(mixing)[y]) + means[y]
            columns = dict(zip(names, (X * scales).T))
            columns["label"] = class_names(classes, y)
            writer.write_table(pa.table(columns, schema=pa.schema(fields)))
    tmp.rename(path)


def fit_only(path: Path, repeat: int) -> None:
    import pandas as pd
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis as LDA
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis as QDA

    from mlfit.contract import ModelData
    from mlfit.solvers import gda

    frame = pd.read_csv(path)
    y = frame.pop("label").to_numpy(dtype=object)
    X = np.ascontiguousarray(frame.to_numpy(dtype=float))
    data = ModelData(X, y)
    print(f"fit only, {X.shape[0]:,} x {X.shape[1]}, {len(set(y))} classes, median of {repeat}")
    for kind, make in (("lda", lambda: LDA(solver="lsqr")), ("qda", QDA)):
        config = gda.Config(per_class_covariance=kind == "qda")
        timing = against_sklearn_classifier(
            lambda config=config: gda.fit(data, config), make, X, y, repeat
        )
        diff = np.max(
            np.abs(gda.fit(data, config).params.proba(X) - make().fit(X, y).predict_proba(X))
        )
        print(f"  {kind}: {timing}; max |P difference| {diff:.1e}")


def end_to_end(path: Path, repeat: int = 3) -> None:
    warm_page_cache(path)
    print(f"end to end, fresh processes, median of {repeat}")
    for kind in ("lda", "qda"):
        mlfit = [*mlfit_command(), "gda", str(path), "-y", "label", "--json", "-q"]
        if kind == "qda":
            mlfit.append("--per-class-covariance")
        sklearn = [sys.executable, "-c", PIPELINE, str(path), kind]
        t = race({"mlfit": mlfit, "sklearn": sklearn}, repeat)
        print(
            f"  {kind}: mlfit {t['mlfit']:.2f} s, pandas + sklearn {t['sklearn']:.2f} s "
            f"(ratio {t['mlfit'] / t['sklearn']:.2f})"
        )
        print_timing_of(mlfit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    name = f"gda_{args.rows}x{args.cols}_k{args.classes}.csv"
    path = cached_data(name, lambda p: write_gda_csv(p, args.rows, args.cols, args.classes))
    fit_only(path, args.repeat)
    end_to_end(path)


if __name__ == "__main__":
    main()
