"""Benchmark `mlfit kernel` against scikit-learn's KernelRidge, and its Nystrom path (Falkon's
preconditioned conjugate gradients) against Nystroem + Ridge.

    python bench/bench_kernel.py [--rows 5000] [--big-rows 200000] [--centers 2000]
                                 [--skip-big] [--skip-reference]

Data (seed 0, cached in bench/data/): 10 standard normal features, y = sin(x1) + 0.5 x2 x3 +
0.3 x4^2 + N(0, 0.3^2); a held-out set of 20,000 rows from the same law.

1. exact, --rows rows: fit only, in this process on the same arrays, median of 3 (taking
   turns): `mlfit.solvers.kernel.fit` (rbf, gamma 1/10, l2 1, standardized, centred target)
   versus KernelRidge(alpha=1, kernel="rbf", gamma=0.1) on the same standardized features
   and centred target (the same linear system), for rbf and poly (degree 3); the largest
   relative difference of their predictions. End to end, fresh processes, median of 3:
   `mlfit kernel data.csv -y y --json -q` versus python -c "pandas.read_csv; StandardScaler;
   KernelRidge.fit".
2. Nystrom, --big-rows rows, M = --centers: `mlfit kernel big.csv -y y --centers M` end to
   end once (its peak RSS, timing split, CG iterations and residual), and the RMSE of its predictions
   on the held-out rows; reference (unless --skip-reference): Nystroem(n_components=M) +
   Ridge(alpha=1, fit_intercept=False) on the same standardized features and centred target,
   fit only in this process (the same objective on other random centres; it holds the
   n x M feature matrix, 3.2 GB here), and its held-out RMSE.

Threads: like the `mlfit` command, OPENBLAS_NUM_THREADS=1 and MKL_NUM_THREADS=1 before numpy
loads unless one of the BLAS thread variables is set; mlfit's Nystrom path computes blocks of
K_nM on falkon.THREADS Python threads (numpy releases the GIL).
"""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if not any(v in os.environ for v in BLAS_THREAD_VARIABLES):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_regression import (
    cached_data,
    max_rel_diff,
    median_times,
    mlfit_command,
    peak_rss_and_wall,
    print_mlfit_timing,
    race,
    warm_page_cache,
)

P = 10
HELD_OUT = 20_000
SKLEARN_PIPELINE = """\
import sys
import pandas
from sklearn.kernel_ridge import KernelRidge
from sklearn.preprocessing import StandardScaler
X = pandas.read_csv(sys.argv[1])
y = X.pop("y").to_numpy()
Z = StandardScaler().fit_transform(X.to_numpy())
KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1).fit(Z, y - y.mean())
"""


def rows(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, P))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.3 * X[:, 3] ** 2 + rng.normal(0, 0.3, n)
    return X, y


def writer(n: int, seed: int):
    def write(path: Path) -> None:
        X, y = rows(np.random.default_rng(seed), n)
        header = ",".join([f"x{j + 1}" for j in range(P)] + ["y"])
        np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header, comments="")

    return write


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1]


def exact(path: Path) -> None:
    from sklearn.kernel_ridge import KernelRidge

    from mlfit.contract import ModelData
    from mlfit.solvers import kernel

    X, y = load(path)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    t = y - y.mean()
    print(f"\n== exact kernel ridge, {len(y):,} x {P} ==", flush=True)
    for name, settings in (("rbf", {}), ("poly", {"degree": 3})):
        config = kernel.Config(kernel=name, **settings)
        reference = KernelRidge(alpha=1.0, kernel=name, gamma=1 / P, **settings)
        out = {}

        def ours(config=config, out=out):
            out["m"] = kernel.fit(ModelData(X, y), config)

        def theirs(reference=reference, out=out):
            out["s"] = reference.fit(Z, t)

        times = median_times({"mlfit": ours, "sklearn": theirs}, 3)
        a = kernel.predict(out["m"].params, ModelData(X[:2000]))["prediction"]
        b = out["s"].predict(Z[:2000]) + y.mean()
        print(
            f"  fit only {name}: mlfit {times['mlfit']:.2f} s, KernelRidge "
            f"{times['sklearn']:.2f} s, ratio {times['mlfit'] / times['sklearn']:.2f}; "
            f"predictions differ by {max_rel_diff(a, b):.1e} (relative)",
            flush=True,
        )
    warm_page_cache(path)
    mlfit = [*mlfit_command(), "kernel", str(path), "-y", "y", "--json", "-q"]
    sklearn = [sys.executable, "-c", SKLEARN_PIPELINE, str(path)]
    times = race({"mlfit": mlfit, "sklearn": sklearn}, 3)
    print(
        f"  end to end rbf: mlfit {times['mlfit']:.2f} s, pandas + KernelRidge "
        f"{times['sklearn']:.2f} s, ratio {times['mlfit'] / times['sklearn']:.2f}"
    )


def nystrom(path: Path, held_out: Path, centers: int, reference: bool) -> None:
    from mlfit.model_io import read_model
    from mlfit.solvers import kernel

    print(f"\n== Nystrom centres, {centers:,} of the rows ==", flush=True)
    warm_page_cache(path)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "big.model"
        cmd = [*mlfit_command(), "kernel", str(path), "-y", "y", "--centers", str(centers)]
        peak, wall, stdout = peak_rss_and_wall([*cmd, "--json", "-q", "-o", str(model)])
        summary = json.loads(stdout)
        saved = read_model(str(model))
        size = model.stat().st_size
    Xh, yh = load(held_out)
    from mlfit.contract import ModelData

    pred = kernel.predict(saved.params, ModelData(Xh))["prediction"]
    rmse = float(np.sqrt(np.mean((pred - yh) ** 2)))
    c = summary["convergence"]
    print(
        f"  mlfit end to end {wall:.1f} s, peak RSS {peak:.0f} MB "
        f"({summary['data']['rows_used']:,} rows; "
        f"{c['iterations']} CG iterations, residual {c['residual']:.1e}); held-out RMSE "
        f"{rmse:.5f}; training RMSE {summary['metrics']['rmse']:.5f}; model file "
        f"{size / 1e6:.1f} MB"
    )
    print_mlfit_timing(summary.get("timing"))
    if not reference:
        return
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import Ridge

    X, y = load(path)
    mean, sd = X.mean(axis=0), X.std(axis=0)
    start = time.perf_counter()
    features = Nystroem(gamma=1 / P, n_components=centers, random_state=0)
    F = features.fit_transform((X - mean) / sd)
    ridge = Ridge(alpha=1.0, fit_intercept=False).fit(F, y - y.mean())
    seconds = time.perf_counter() - start
    del F
    ref = ridge.predict(features.transform((Xh - mean) / sd)) + y.mean()
    ref_rmse = float(np.sqrt(np.mean((ref - yh) ** 2)))
    fit_seconds = summary["timing"]["fit_seconds"]
    print(
        f"  Nystroem + Ridge fit only {seconds:.1f} s (mlfit's fit {fit_seconds:.1f} s, ratio "
        f"{fit_seconds / seconds:.2f}); held-out RMSE {ref_rmse:.5f} (mlfit / reference "
        f"{rmse / ref_rmse:.4f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--big-rows", type=int, default=200_000)
    parser.add_argument("--centers", type=int, default=2000)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    small = cached_data(f"kernel_{args.rows}x{P}.csv", writer(args.rows, 0))
    exact(small)
    if args.skip_big:
        return
    big = cached_data(f"kernel_{args.big_rows}x{P}.csv", writer(args.big_rows, 1))
    held_out = cached_data(f"kernel_heldout_{HELD_OUT}x{P}.csv", writer(HELD_OUT, 2))
    nystrom(big, held_out, args.centers, not args.skip_reference)


if __name__ == "__main__":
    main()
