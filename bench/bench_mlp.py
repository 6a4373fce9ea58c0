"""Benchmark `mlfit mlp` (backpropagation in numpy) against scikit-learn's MLPClassifier and
MLPRegressor.

    python bench/bench_mlp.py [--quick] [--only digits,regression,e2e,profile]
                              [--digits-epochs 100] [--regression-epochs 30] [--threads N]

Two workloads, the same network for both libraries: one hidden layer of 64 relu units, adam
(lr 1e-3, betas 0.9 / 0.999), every epoch run (mlfit tol=0 and patience > epochs;
scikit-learn tol=0, n_iter_no_change > max_iter, early_stopping off), seed / random_state r in
repeat r, inputs standardized (mlfit does it internally; scikit-learn gets a StandardScaler in
front):

- digits: sklearn.datasets.load_digits (1,797 x 64, ten classes), a fixed stratified 80/20
  split (train_test_split random_state=0): 1,437 training rows, 360 test rows. Batch 200 and
  batch 32, --digits-epochs epochs (100).
- regression: 50,000 x 10 generated once (seed 0, full float64 precision) and cached in
  bench/data/ (git-ignored; delete it to regenerate, under a second),
  `mlp_regression_50000x10.csv` (11 MB): features normal on scales 1..5 with shifts,
  y = 10 + 3 f(z) + N(0, 1) noise with f a sum of sines, products, a square and a tanh of the
  standardized features (the noise alone gives a test RMSE of 1.0, a linear model 4.66,
  predicting the mean 6.4). A fixed 80/20 split (train_test_split random_state=0): 40,000 /
  10,000 rows. Batch 200, --regression-epochs epochs (30). mlfit also standardizes the
  target, so scikit-learn's MLPRegressor is wrapped in
  TransformedTargetRegressor(transformer=StandardScaler()) to fit the same problem (without
  it, its test RMSE after 30 epochs is about 2.1 instead of 1.4).

For each, in this process on the same arrays, 3 rounds (mlfit float32, mlfit float64 and
scikit-learn taking turns, so that a burst of other work hits all three alike; round r uses
seed r):

1. ms per epoch: the median over the rounds of the whole fit's wall time / epochs run
   (standardization, initialisation and mlfit's training metrics included: about 10 ms per
   fit on the digits, about 100 ms on the regression, 10 % of its ms per epoch there), the
   ratio to scikit-learn's median in the same run, and the epochs run (checked to be exactly
   the epochs asked for).
2. test accuracy (digits) or test RMSE (regression, on the original scale) of the seed-0 fit,
   which decides the goal, and the mean over the seeds, which shows how much of a difference
   is the seed's luck (on 360 test digits, one image is 0.0028 of accuracy).

3. end to end (e2e), fresh processes, the regression CSV (all 50,000 rows) in the page cache,
   median of 3 (taking turns): `mlfit mlp data.csv -y y --hidden 64 --batch-size 200
   --epochs E --tol 0 --patience E+1 --json -q` (--tol 0 alone could still stop after 10
   epochs without a strict improvement) versus `python -c "import pandas, sklearn...;
   read_csv; StandardScaler + MLPRegressor (target standardized too) .fit; training RMSE"`,
   the same epochs and batch size. Both print the epochs run and the training RMSE.

4. profile: where one epoch of mlfit goes, for each workload and dtype, by timing mlfit's own
   pieces one at a time on the data as mlp.fit prepares it (median over epochs, ms per
   epoch): the shuffle (rng.permutation and train[...]), the copies of the batches (Z[rows],
   T[rows]), Network.forward, Network.loss, the rest of Network.gradients (the backward
   GEMMs), the l2 term of gradients (gradients with l2 minus without), Optimizer.step, and
   the remainder (the loop, the isfinite checks, the history) of a whole epoch of mlfit's
   own mlp.train (called for one epoch, taking turns with the pieces); and, per fit, the
   time mlp.fit spends outside train (standardizing, initialising, the training metrics),
   which the ms per epoch of 1. include. The pieces are timed apart from each other, so
   their sum differs from the whole epoch by noise (a negative remainder is noise).

Goals (from the issue): time per epoch at most half of scikit-learn's (ratio <= 0.5), with
test accuracy and RMSE at least as good (seed 0), for both batch sizes. Also reported, for
choosing the default --dtype: whether float32 keeps the accuracy / RMSE of scikit-learn
(float64) and how much faster it is than float64.

Not identical between the two (both at their defaults): the initialisation (mlfit: He normal
weights and zero biases for relu; scikit-learn: Glorot uniform weights and biases) and the
penalty's scale (both 1e-4, but mlfit's l2 is lambda/2 * sum W^2 on the loss summed over all
rows, scikit-learn's alpha the same on each batch's summed loss: n/batch times stronger per
epoch, 7 times on the digits at batch 200, 200 on the regression; mlfit with l2 = 0.02, the
penalty scikit-learn effectively applies there, changed its test RMSE by 3e-4).

A full run takes about 50 s on this 2-core machine with other work on it (load 2); --quick
(20 digits epochs, 10,000 regression rows, 5 epochs, end to end once) about 10 s.

Threads: like the `mlfit` command (mlfit/cli.py), the script sets OPENBLAS_NUM_THREADS=1 and
MKL_NUM_THREADS=1 before numpy loads unless one of OPENBLAS_/MKL_/OMP_NUM_THREADS is set; the
fresh processes inherit that, so both libraries run BLAS single-threaded. `--threads N` sets
every BLAS/OpenMP pool to N, here and in the fresh processes.
"""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Whether BLAS threads were pinned here (as mlfit/cli.py does), before numpy loads; the fresh
#: processes inherit the setting.
PINNED = not any(v in os.environ for v in BLAS_THREAD_VARIABLES)
if PINNED:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_regression import HERE, cached_data, mlfit_command, print_mlfit_timing, warm_page_cache

HIDDEN = (64,)
REPEAT = 3
COLS = 10
ROWS, QUICK_ROWS = 50_000, 10_000
DIGITS_EPOCHS, QUICK_DIGITS_EPOCHS = 100, 20
REGRESSION_EPOCHS, QUICK_REGRESSION_EPOCHS = 30, 5
DIGITS_BATCHES = (200, 32)
REGRESSION_BATCH = 200
DTYPES = ("float32", "float64")
SECTIONS = ("digits", "regression", "e2e", "profile")

PIPELINE_SCRIPT = """\
import json, sys
import numpy, pandas
from sklearn.compose import TransformedTargetRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X = pandas.read_csv(sys.argv[1])
y = X.pop("y")
epochs, batch = int(sys.argv[2]), int(sys.argv[3])
net = MLPRegressor(hidden_layer_sizes=(64,), batch_size=batch, max_iter=epochs, tol=0.0,
                   n_iter_no_change=epochs + 1, random_state=0)
model = TransformedTargetRegressor(make_pipeline(StandardScaler(), net),
                                   transformer=StandardScaler()).fit(X, y)
rmse = float(numpy.sqrt(numpy.mean((model.predict(X) - y) ** 2)))
print(json.dumps({"epochs": model.regressor_[-1].n_iter_, "rmse": rmse}))
"""


# --------------------------------------------------------------------------- data


def regression_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): standard normal z on scales 1..5 with shifts -2..2, and y = 10 + 3 f(z) + noise,
    f = 2 sin z1 + z2 z3 + cos(2 z4) z5 + z6^2 / 2 + tanh(z7 + z8) + 0.3 z9 (z10 is noise);
    3 f has a standard deviation of about 6.3, the noise 1."""
    rng = np.random.default_rng(seed)
    scale, shift = np.linspace(1.0, 5.0, COLS), np.linspace(-2.0, 2.0, COLS)
    z = rng.standard_normal((rows, COLS))
    f = (
        2.0 * np.sin(z[:, 0])
        + z[:, 1] * z[:, 2]
        + np.cos(2.0 * z[:, 3]) * z[:, 4]
        + 0.5 * z[:, 5] ** 2
        + np.tanh(z[:, 6] + z[:, 7])
        + 0.3 * z[:, 8]
    )
    y = 10.0 + 3.0 * f + rng.standard_normal(rows)
    return z * scale + shift, y


def write_regression_csv(path: Path, rows: int) -> None:
    """x1..x10 and y at full float64 precision (the shortest decimal that reads back the
    same); written to a temporary name and renamed."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    X, y = regression_data(rows)
    names = [*(f"x{j + 1}" for j in range(COLS)), "y"]
    tmp = path.with_suffix(".tmp")
    options = pcsv.WriteOptions(quoting_style="none")
    pcsv.write_csv(pa.table(dict(zip(names, [*X.T, y]))), str(tmp), write_options=options)
    tmp.rename(path)


def cached_regression_csv(rows: int) -> Path:
    return cached_data(
        f"mlp_regression_{rows}x{COLS}.csv", lambda path: write_regression_csv(path, rows)
    )


@dataclass
class Workload:
    name: str
    classify: bool
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    batch: int
    epochs: int

    @property
    def label(self) -> str:
        n = len(self.X_train) + len(self.X_test)
        return f"{self.name} {n:,} x {self.X_train.shape[1]}, batch {self.batch}"


def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=0
    )
    return X_train, y_train, X_test, y_test


def regression_split(path: Path):
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(path)
    y = frame.pop("y").to_numpy(dtype=float)
    X = np.ascontiguousarray(frame.to_numpy(dtype=float))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    return X_train, y_train, X_test, y_test


# --------------------------------------------------------------------------- fits


def mlfit_config(w: Workload, dtype: str, seed: int, epochs: int | None = None):
    from mlfit.solvers import mlp

    epochs = epochs or w.epochs
    return mlp.Config(
        hidden=HIDDEN,
        task="classification" if w.classify else "regression",
        optimizer="adam",
        batch_size=w.batch,
        epochs=epochs,
        tol=0.0,
        patience=epochs + 1,  # every epoch runs: no stop for want of improvement
        dtype=dtype,
        seed=seed,
    )


def run_mlfit(w: Workload, dtype: str, seed: int, X=None, y=None, epochs=None):
    """Fit; return (epochs run, predict(X) -> labels or values)."""
    from mlfit.contract import ModelData
    from mlfit.solvers import mlp

    X = w.X_train if X is None else X
    y = w.y_train if y is None else y
    result = mlp.fit(ModelData(X, y.astype(float)), mlfit_config(w, dtype, seed, epochs))

    def predict(X_new):
        out = mlp.predict(result.params, ModelData(X_new))["prediction"]
        return out.astype(float)

    return result.convergence["iterations"], predict


def run_sklearn(w: Workload, seed: int, X=None, y=None, epochs=None):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = w.X_train if X is None else X
    y = w.y_train if y is None else y
    epochs = epochs or w.epochs
    kind = MLPClassifier if w.classify else MLPRegressor
    net = kind(
        hidden_layer_sizes=HIDDEN,
        solver="adam",
        batch_size=w.batch,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        early_stopping=False,
        random_state=seed,
    )
    model = make_pipeline(StandardScaler(), net)
    if not w.classify:  # mlfit standardizes the target too
        model = TransformedTargetRegressor(model, transformer=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: every epoch runs on purpose
        model.fit(X, y)
    fitted = model[-1] if w.classify else model.regressor_[-1]  # (the wrapper clones)
    return fitted.n_iter_, lambda X_new: model.predict(X_new).astype(float)


def quality(w: Workload, predict) -> float:
    """Test accuracy (classification) or test RMSE (regression)."""
    pred = predict(w.X_test)
    if w.classify:
        return float(np.mean(pred == w.y_test))
    return float(np.sqrt(np.mean((pred - w.y_test) ** 2)))


@dataclass
class Timed:
    name: str
    times: list = field(default_factory=list)  # seconds per epoch, one per round
    scores: list = field(default_factory=list)  # test metric, one per round (seed = round)
    epochs: list = field(default_factory=list)

    @property
    def ms(self) -> float:
        return 1e3 * statistics.median(self.times)


def per_epoch(w: Workload, repeat: int = REPEAT) -> list[Timed]:
    """mlfit float32, mlfit float64, scikit-learn, taking turns; round r with seed r."""
    runs = {
        **{
            f"mlfit {dt}": (lambda seed, dt=dt, **kw: run_mlfit(w, dt, seed, **kw)) for dt in DTYPES
        },
        "sklearn": lambda seed, **kw: run_sklearn(w, seed, **kw),
    }
    # A small fit first: lazy imports and first-call overheads stay out of the timing.
    for run in runs.values():
        run(0, X=w.X_train[:500], y=w.y_train[:500], epochs=2)
    timed = {name: Timed(name) for name in runs}
    for seed in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            epochs, predict = run(seed)
            seconds = time.perf_counter() - start
            t = timed[name]
            t.times.append(seconds / epochs)
            t.epochs.append(epochs)
            t.scores.append(quality(w, predict))
    return list(timed.values())


def report_per_epoch(w: Workload, fits: list[Timed]) -> dict:
    metric = "accuracy" if w.classify else "RMSE"
    ref = fits[-1]
    rows = [("fit", "ms / epoch", "ratio", f"test {metric}", "mean over seeds", "epochs")]
    digits = 4 if w.classify else 3
    for f in fits:
        epochs = sorted(set(f.epochs))
        note = "" if epochs == [w.epochs] else "  NOT ALL EPOCHS RAN"
        rows.append(
            (
                f.name,
                f"{f.ms:.2f}",
                f"{f.ms / ref.ms:.2f}",
                f"{f.scores[0]:.{digits}f}",
                (
                    f"{statistics.mean(f.scores):.{digits}f} ({min(f.scores):.{digits}f}-"
                    f"{max(f.scores):.{digits}f})"
                ),
                ",".join(map(str, epochs)) + note,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("    " + "  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip())
    f32, f64 = fits[0], fits[1]
    better = (lambda a, b: a >= b) if w.classify else (lambda a, b: a <= b)
    print(
        f"  float32: {f64.ms / f32.ms:.2f} x the speed of float64; test {metric} "
        f"{f32.scores[0]:.{digits}f} vs {f64.scores[0]:.{digits}f} (float64) and "
        f"{ref.scores[0]:.{digits}f} (sklearn): "
        f"{'as good as' if better(f32.scores[0], ref.scores[0]) else 'WORSE than'} sklearn's"
    )
    return {"fits": fits, "better": better, "metric": metric, "digits": digits}


# --------------------------------------------------------------------------- end to end


def wall_time(cmd: list[str]) -> tuple[float, str]:
    """Seconds of one run of cmd, and its stdout (small)."""
    start = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return time.perf_counter() - start, out


def end_to_end(path: Path, epochs: int, repeat: int) -> dict:
    warm_page_cache(path)
    mlfit = [
        *mlfit_command(),
        "mlp",
        str(path),
        "-y",
        "y",
        "--hidden",
        ",".join(map(str, HIDDEN)),
        "--batch-size",
        str(REGRESSION_BATCH),
        "--epochs",
        str(epochs),
        "--tol",
        "0",
        "--patience",
        str(epochs + 1),
        "--json",
        "-q",
    ]
    pipeline = [
        sys.executable,
        "-W",
        "ignore",
        "-c",
        PIPELINE_SCRIPT,
        str(path),
        str(epochs),
        str(REGRESSION_BATCH),
    ]
    commands = {"mlfit": mlfit, "pipeline": pipeline}
    times, stdout = {name: [] for name in commands}, {}
    for _ in range(repeat):  # taking turns, so that other work on the machine hits both alike
        for name, cmd in commands.items():
            seconds, stdout[name] = wall_time(cmd)
            times[name].append(seconds)
    t = {name: statistics.median(v) for name, v in times.items()}
    summary = json.loads(stdout["mlfit"])
    theirs = json.loads(stdout["pipeline"])
    return {
        **t,
        "ratio": t["mlfit"] / t["pipeline"],
        "timing": summary.get("timing", {}),
        "epochs": (summary.get("convergence", {}).get("iterations"), theirs["epochs"]),
        "rmse": (summary.get("metrics", {}).get("rmse"), theirs["rmse"]),
    }


# --------------------------------------------------------------------------- profile

PROFILE_ROWS = (
    "shuffle (permutation, train[...])",
    "batch copies Z[rows], T[rows]",
    "Network.forward",
    "Network.loss",
    "gradients: backward (rest)",
    "gradients: l2 term",
    "Optimizer.step (adam)",
    "rest of the epoch loop",
)


def prepared(w: Workload, dtype: str):
    """Z, T as mlp.fit makes them (standardized inputs; one-hot or standardized target)."""
    X = w.X_train
    scale = X.std(axis=0)
    Z = ((X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)).astype(dtype)
    if w.classify:
        codes = np.unique(w.y_train, return_inverse=True)[1]
        T = np.zeros((len(codes), codes.max() + 1), dtype=dtype)
        T[np.arange(len(codes)), codes] = 1.0
    else:
        y = w.y_train
        T = ((y - y.mean()) / y.std()).astype(dtype)[:, None]
    return Z, T


def profile_epoch(w: Workload, dtype: str, epochs: int) -> dict:
    """ms per epoch of each piece of mlfit's epoch, each timed on its own with mlfit's
    functions, and of one whole epoch of mlp.train, taking turns (median over `epochs`
    rounds); and the ms per fit that mlp.fit spends outside train."""
    from mlfit.contract import no_progress
    from mlfit.solvers import mlp
    from mlfit.solvers.network import Network, Optimizer
    from mlfit.solvers.training import InMemoryBatches

    train_seconds, original = [], mlp.train

    def timed_train(*args, **kwargs):  # mlp.fit looks train up in its module when called
        start = time.perf_counter()
        out = original(*args, **kwargs)
        train_seconds.append(time.perf_counter() - start)
        return out

    mlp.train = timed_train
    try:
        start = time.perf_counter()
        run_mlfit(w, dtype, 0, epochs=epochs)
        fit_ms = 1e3 * (time.perf_counter() - start)
    finally:
        mlp.train = original
    outside = fit_ms - 1e3 * train_seconds[0]

    one_epoch = mlfit_config(w, dtype, 0, 1)
    Z, T = prepared(w, dtype)
    n, batch, l2 = len(Z), min(w.batch, len(Z)), one_epoch.l2
    train = np.arange(n)
    rng = np.random.default_rng(0)
    sizes = [Z.shape[1], *HIDDEN, T.shape[1]]
    net = Network.initialise(sizes, "relu", w.classify, rng, np.dtype(dtype))
    opt = Optimizer("adam", one_epoch.lr, net)
    pieces = {row: [] for row in (*PROFILE_ROWS, "no l2", "gradients", "epoch")}

    def clock(row, fn, items):
        start = time.perf_counter()
        out = [fn(*item) for item in items]
        pieces[row].append(1e3 * (time.perf_counter() - start))
        return out

    source = InMemoryBatches(Z, T, train)
    for _ in range(epochs):
        clock("epoch", lambda: original(net, source, None, one_epoch, rng, no_progress), [()])
        start = time.perf_counter()
        order = train[rng.permutation(n)]
        pieces[PROFILE_ROWS[0]].append(1e3 * (time.perf_counter() - start))
        slices = [(order[i : i + batch],) for i in range(0, n, batch)]
        batches = clock(PROFILE_ROWS[1], lambda rows: (Z[rows], T[rows]), slices)
        outs = clock(PROFILE_ROWS[2], lambda Zb, Tb: net.forward(Zb)[-1], batches)
        clock(PROFILE_ROWS[3], net.loss, list(zip(outs, (Tb for _, Tb in batches))))
        clock("no l2", lambda Zb, Tb: net.gradients(Zb, Tb, 0.0, n), batches)
        grads = clock("gradients", lambda Zb, Tb: net.gradients(Zb, Tb, l2, n), batches)
        clock(PROFILE_ROWS[6], lambda *_: opt.step(net), grads)  # uses net.grad
    ms = {row: statistics.median(v) for row, v in pieces.items() if v}
    ms[PROFILE_ROWS[4]] = ms["no l2"] - ms[PROFILE_ROWS[2]] - ms[PROFILE_ROWS[3]]
    ms[PROFILE_ROWS[5]] = ms["gradients"] - ms["no l2"]
    ms[PROFILE_ROWS[-1]] = ms["epoch"] - sum(ms[row] for row in PROFILE_ROWS[:-1])
    rows = {row: ms[row] for row in PROFILE_ROWS}
    return {"rows": rows, "total": ms["epoch"], "outside": outside}


# --------------------------------------------------------------------------- main


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "?"
    pools = {p.get("internal_api", "?"): p.get("num_threads") for p in threadpool_info()}
    return ", ".join(f"{api} {n}" for api, n in pools.items()) or "?"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_DIGITS_EPOCHS} digits epochs, {QUICK_ROWS:,} regression rows and "
        f"{QUICK_REGRESSION_EPOCHS} epochs, end to end once",
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS)
    )
    parser.add_argument("--digits-epochs", type=int, default=0, help="epochs on the digits")
    parser.add_argument(
        "--regression-epochs", type=int, default=0, help="epochs on the regression (and e2e)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="BLAS/OpenMP threads here and in the fresh processes (default: one, as the "
        "mlfit command)",
    )
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    digits_epochs = args.digits_epochs or (QUICK_DIGITS_EPOCHS if args.quick else DIGITS_EPOCHS)
    reg_epochs = args.regression_epochs or (
        QUICK_REGRESSION_EPOCHS if args.quick else REGRESSION_EPOCHS
    )
    rows = QUICK_ROWS if args.quick else ROWS
    e2e_repeat = 1 if args.quick else REPEAT
    if args.threads:
        for var in BLAS_THREAD_VARIABLES:
            os.environ[var] = str(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)

    path = cached_regression_csv(rows)
    setting = ", ".join(f"{v}={os.environ[v]}" for v in BLAS_THREAD_VARIABLES if v in os.environ)
    how = "pinned as the mlfit command does" if PINNED and not args.threads else "as set"
    print(f"{os.cpu_count()} CPUs; threads: {setting} ({how}); here: {blas_threads()}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    workloads = []
    if "digits" in chosen or "profile" in chosen:
        split = digits_split()
        for batch in DIGITS_BATCHES:
            workloads.append(Workload("digits", True, *split, batch, digits_epochs))
    if "regression" in chosen or "profile" in chosen:
        split = regression_split(path)
        workloads.append(Workload("regression", False, *split, REGRESSION_BATCH, reg_epochs))

    results = {}
    for w in workloads:
        if w.name not in chosen:
            continue
        print(
            f"\n== {w.label}: {len(w.X_train):,} training / {len(w.X_test):,} test rows, "
            f"hidden {HIDDEN}, adam, {w.epochs} epochs; median of {REPEAT} (seeds 0..{REPEAT - 1})",
            flush=True,
        )
        results[w.label] = (w, report_per_epoch(w, per_epoch(w)))

    e2e = None
    if "e2e" in chosen:
        print(
            f"\n== end to end: {path.relative_to(HERE.parent)} ({rows:,} x {COLS}, "
            f"{path.stat().st_size / 1e6:.0f} MB), {reg_epochs} epochs, batch "
            f"{REGRESSION_BATCH}, fresh processes, median of {e2e_repeat}",
            flush=True,
        )
        e2e = end_to_end(path, reg_epochs, e2e_repeat)
        print(
            f"  mlfit mlp --json -q                 {e2e['mlfit']:6.2f} s  (epochs "
            f"{e2e['epochs'][0]}, training RMSE {e2e['rmse'][0]:.3f})\n"
            f"  pandas + StandardScaler + sklearn   {e2e['pipeline']:6.2f} s  (epochs "
            f"{e2e['epochs'][1]}, training RMSE {e2e['rmse'][1]:.3f})\n"
            f"  ratio {e2e['ratio']:.2f}"
        )
        print_mlfit_timing(e2e["timing"])

    profiles = []
    if "profile" in chosen:
        print("\n== profile: one mlfit epoch, ms (each piece timed alone, median over epochs)")
        for w in workloads:
            epochs = max(5, min(w.epochs, 40 if w.classify else 10))
            for dtype in DTYPES:
                profiles.append((f"{w.name} b{w.batch} {dtype}", profile_epoch(w, dtype, epochs)))
        table = [("piece", *(head for head, _ in profiles))]
        for row in PROFILE_ROWS:
            cells = (
                f"{p['rows'][row]:6.2f} {100 * p['rows'][row] / p['total']:3.0f}%"
                for _, p in profiles
            )
            table.append((row, *cells))
        table.append(("epoch in mlp._train", *(f"{p['total']:6.2f}" for _, p in profiles)))
        table.append(("per fit, outside _train", *(f"{p['outside']:6.2f}" for _, p in profiles)))
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            print(
                "    "
                + "  ".join(
                    c.rjust(wd) if i else c.ljust(wd) for i, (c, wd) in enumerate(zip(r, widths))
                ).rstrip()
            )

    print("\nload average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    table = [("workload", "measure", "mlfit f32", "mlfit f64", "sklearn", "goal")]
    for label, (w, res) in results.items():
        f32, f64, ref = res["fits"]
        digits, better = res["digits"], res["better"]
        table.append(
            (
                label,
                "ms / epoch",
                f"{f32.ms:.2f} ({f32.ms / ref.ms:.2f})",
                f"{f64.ms:.2f} ({f64.ms / ref.ms:.2f})",
                f"{ref.ms:.2f}",
                (
                    f"<= 0.5 x: f32 {verdict(f32.ms <= 0.5 * ref.ms)}, "
                    f"f64 {verdict(f64.ms <= 0.5 * ref.ms)}"
                ),
            )
        )
        table.append(
            (
                "",
                f"test {res['metric']}",
                f"{f32.scores[0]:.{digits}f}",
                f"{f64.scores[0]:.{digits}f}",
                f"{ref.scores[0]:.{digits}f}",
                (
                    f"as good: f32 {verdict(better(f32.scores[0], ref.scores[0]))}, "
                    f"f64 {verdict(better(f64.scores[0], ref.scores[0]))}"
                ),
            )
        )
        table.append(
            (
                "",
                "  mean over seeds",
                f"{statistics.mean(f32.scores):.{digits}f}",
                f"{statistics.mean(f64.scores):.{digits}f}",
                f"{statistics.mean(ref.scores):.{digits}f}",
                f"report; f32 {f64.ms / f32.ms:.2f} x as fast as f64",
            )
        )
    if e2e:
        table.append(
            (
                "end to end regression",
                "wall s",
                f"{e2e['mlfit']:.2f} ({e2e['ratio']:.2f})",
                "",
                f"{e2e['pipeline']:.2f}",
                "report (ratio)",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print()
    for r in [table[0], tuple("-" * wd for wd in widths), *table[1:]]:
        print("  ".join(cell.ljust(wd) for cell, wd in zip(r, widths)).rstrip())
    if results:
        from mlfit.solvers import mlp

        default = mlp.Config().dtype
        k = DTYPES.index(default)
        goal_ok = all(
            res["fits"][k].ms <= 0.5 * res["fits"][-1].ms
            and res["better"](res["fits"][k].scores[0], res["fits"][-1].scores[0])
            for _, res in results.values()
        )
        print(
            "\ngoal (issue): time per epoch at most half of scikit-learn's, with test accuracy "
            f"and RMSE at least as good, with the default dtype ({default}): {verdict(goal_ok)}"
        )


if __name__ == "__main__":
    main()
