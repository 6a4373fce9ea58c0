"""Benchmark `mlfit normal-eq` against the scikit-learn and statsmodels pipelines.

    python bench/bench_regression.py [--rows 200000] [--cols 50] [--big-gb 1.0] [--skip-big]

Three measurements on the same data, printed as they run and again as a table at the end:

1. end to end: `mlfit normal-eq data.csv --json -q` versus a fresh
   `python -c "import pandas, sklearn...; read_csv; LinearRegression().fit"`, median of 3;
2. fit only, in this process on the same numpy arrays: mlfit's solver versus scikit-learn's
   LinearRegression and statsmodels' OLS, median of 5, and how far the coefficients differ;
3. out of core: `mlfit normal-eq big.csv --chunk-rows 100000` on a CSV of --big-gb GiB:
   peak resident memory and throughput.

The CSVs are generated once (seed 0, full float64 precision) and cached in bench/data/.
See bench/README.md for what each figure means and the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# BLAS threads pinned as the mlfit command pins them (before numpy loads): the in-process fits
# then compare like with like, and a busy second core cannot stall them.
if __name__ == "__main__" and not any(
    v in os.environ for v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
):
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
BIG_COLS = 40
GIB = 1 << 30

SKLEARN_PIPELINE = """\
import sys
import pandas, sklearn.linear_model
X = pandas.read_csv(sys.argv[1])
y = X.pop("y")
sklearn.linear_model.LinearRegression().fit(X, y)
"""

#: The floor: the least any tool must do to fit from this CSV, reading it with pyarrow (the
#: fastest parser here) straight into one array and taking the R factor of a QR (no
#: statistics, no output).  mlfit's end to end should be within 1.3x of it.
FLOOR_PIPELINE = """\
import sys
import numpy as np, pyarrow.csv
t = pyarrow.csv.read_csv(sys.argv[1])
A = np.empty((t.num_rows, t.num_columns + 1), order="F")
A[:, 0] = 1.0
for j, c in enumerate(t.columns):
    A[:, j + 1] = c.to_numpy()
np.linalg.qr(A, mode="r")
"""


# --------------------------------------------------------------------------- data


def make_rows(rng, n: int, beta: np.ndarray):
    """n rows of features (correlated a little, different scales) and y = 3 + X beta + noise."""
    p = len(beta)
    Z = rng.normal(size=(n, p))
    X = (Z + 0.3 * np.roll(Z, 1, axis=1)) * np.linspace(0.5, 20.0, p)
    y = 3.0 + X @ beta + rng.normal(scale=2.0, size=n)
    return X, y


def true_beta(p: int) -> np.ndarray:
    rng = np.random.default_rng(12345)
    return rng.uniform(0.5, 2.0, p) * rng.choice([-1.0, 1.0], p)


def write_csv(
    path: Path, n_rows: int | None, cols: int, target_bytes: int | None = None, block: int = 100_000
) -> Path:
    """Write rows in blocks (memory bounded) until n_rows, or until the file has target_bytes.

    pyarrow writes the shortest decimal that reads back to the same float64, so nothing is
    rounded away. Written to a temporary name and renamed, so an interrupted run leaves no
    half-written cache.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    beta = true_beta(cols)
    names = [f"x{j + 1}" for j in range(cols)] + ["y"]
    tmp = path.with_suffix(".tmp")
    written = 0
    options = pcsv.WriteOptions(quoting_style="none")
    schema = pa.schema([(name, pa.float64()) for name in names])
    with pcsv.CSVWriter(str(tmp), schema, write_options=options) as writer:
        while True:
            size = block if n_rows is None else min(block, n_rows - written)
            if size <= 0:
                break
            X, y = make_rows(rng, size, beta)
            writer.write_table(pa.table(dict(zip(names, [*X.T, y])), schema=schema))
            written += size
            if target_bytes is not None and tmp.stat().st_size >= target_bytes:
                break
    tmp.rename(path)
    return path


def cached_csv(name: str, **kwargs) -> Path:
    return cached_data(name, lambda path: write_csv(path, **kwargs))


def cached_data(name: str, write) -> Path:
    """bench/data/NAME (git-ignored), written by write(path) the first time; every bench
    script caches its generated data through this."""
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / name
    if not path.exists():
        print(f"generating {path.relative_to(HERE.parent)} ...", flush=True)
        start = time.perf_counter()
        write(path)
        print(
            f"  {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
    return path


def print_mlfit_timing(timing: dict | None) -> None:
    """The split of one `mlfit` run, from its JSON's timing section."""
    if timing:
        print(
            f"  mlfit's own timing: load {timing['load_seconds']:.2f} s, "
            f"fit {timing['fit_seconds']:.2f} s, total {timing['total_seconds']:.2f} s "
            "(the rest is start-up and output)"
        )


def warm_page_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


# --------------------------------------------------------------------------- helpers


def mlfit_command() -> list[str]:
    """The installed `mlfit` script next to this Python, else `python -m mlfit`."""
    script = Path(sys.executable).parent / "mlfit"
    if script.exists():
        return [str(script)]
    found = shutil.which("mlfit")
    return [found] if found else [sys.executable, "-m", "mlfit"]


def wall_time(cmd: list[str]) -> float:
    """Seconds of one run of cmd, stdout discarded (also used by bench_glm.py)."""
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def median_times(fns: dict, repeat: int) -> dict:
    """{name: median seconds of fn()}, the contenders taking turns so that a burst of other
    work on the machine hits them alike."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def race(commands: dict, repeat: int) -> dict:
    """{name: median wall seconds of a fresh run of the command}, taking turns."""
    return median_times(
        {name: lambda c=cmd: wall_time(c) for name, cmd in commands.items()}, repeat
    )


def print_timing_of(cmd: list[str]) -> None:
    """Run an `mlfit ... --json` command once more and print its own timing split."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print_mlfit_timing(json.loads(out).get("timing"))


def against_sklearn_classifier(ours, make, X, y, repeat: int) -> str:
    """ours() against make().fit(X, y), and fit then predict_proba on the training rows (an
    mlfit classifier's fit computes every row's probabilities for its metrics), median of
    repeat: 'mlfit .. ms, sklearn fit .. ms (ratio ..), sklearn fit + predict_proba ..'."""
    t = median_times(
        {
            "mlfit": ours,
            "sklearn": lambda: make().fit(X, y),
            "sklearn+proba": lambda: make().fit(X, y).predict_proba(X),
        },
        repeat,
    )
    return (
        f"mlfit {1e3 * t['mlfit']:.0f} ms, sklearn fit {1e3 * t['sklearn']:.0f} ms "
        f"(ratio {t['mlfit'] / t['sklearn']:.2f}), sklearn fit + predict_proba "
        f"{1e3 * t['sklearn+proba']:.0f} ms (ratio {t['mlfit'] / t['sklearn+proba']:.2f})"
    )


def unequal_classes(rng, classes: int, n: int) -> np.ndarray:
    """(n,) class codes 0..classes-1, class k drawn with probability proportional to k + 1."""
    weights = np.arange(1, classes + 1) / (classes * (classes + 1) / 2)
    return rng.choice(classes, size=n, p=weights)


def class_names(classes: int, y: np.ndarray) -> np.ndarray:
    """The label column (c0, c1, ...) of class codes y."""
    return np.array([f"c{k}" for k in range(classes)])[y]


def max_rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)))


def peak_rss_and_wall(cmd: list[str]) -> tuple[float, float, str]:
    """(peak RSS in MB, wall seconds, stdout) of one run of cmd."""
    time_bin = "/usr/bin/time"
    start = time.perf_counter()
    if os.access(time_bin, os.X_OK):
        proc = subprocess.run([time_bin, "-v", *cmd], check=False, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        return kb / 1024, wall, proc.stdout
    # No GNU time: wait4 gives the resource usage of exactly this child (ru_maxrss in KiB).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return usage.ru_maxrss / 1024, wall, out


def coefficients(summary: dict) -> np.ndarray:
    """intercept, x1..xp from mlfit's JSON summary."""
    return np.array([c["estimate"] for c in summary["coefficients"].values()])


# --------------------------------------------------------------------------- benchmarks


def end_to_end(path: Path, repeat: int = 3) -> dict:
    warm_page_cache(path)
    mlfit = [*mlfit_command(), "normal-eq", str(path), "--json", "-q"]
    sklearn = [sys.executable, "-c", SKLEARN_PIPELINE, str(path)]
    floor = [sys.executable, "-c", FLOOR_PIPELINE, str(path)]
    t = race({"mlfit": mlfit, "sklearn": sklearn, "floor": floor}, repeat)
    summary = json.loads(subprocess.run(mlfit, capture_output=True, text=True, check=True).stdout)
    rows, cols = summary["data"]["rows_used"], len(summary["coefficients"])
    peak, _, _ = peak_rss_and_wall(mlfit)
    # start-up: the interpreter with the libraries a fit loads (numpy, pyarrow, mlfit)
    idle, _, _ = peak_rss_and_wall(
        [sys.executable, "-c", "import numpy, pyarrow.csv, mlfit.runner, mlfit.solvers.normal_eq"]
    )
    floor_peak, _, _ = peak_rss_and_wall(floor)
    return {
        **t,
        "ratio": t["mlfit"] / t["sklearn"],
        "floor_ratio": t["mlfit"] / t["floor"],
        "design_mb": rows * cols * 8 / 2**20,
        "peak_mb": peak,
        "idle_mb": idle,
        "floor_peak_mb": floor_peak,
        "cli_coef": coefficients(summary),
        "cli_timing": summary.get("timing", {}),
    }


def fit_only(path: Path, repeat: int = 5) -> dict:
    import pandas as pd
    import sklearn.linear_model
    import statsmodels.api as sm

    from mlfit.contract import ModelData
    from mlfit.solvers import normal_eq

    frame = pd.read_csv(path)
    y = frame.pop("y").to_numpy()
    X = np.ascontiguousarray(frame.to_numpy(dtype=float))
    X1 = sm.add_constant(X)

    res = normal_eq.fit(ModelData(X, y), normal_eq.Config())
    sk = sklearn.linear_model.LinearRegression().fit(X, y)
    ols = sm.OLS(y, X1).fit()
    b_mlfit = np.array([res.params.intercept, *res.params.coef])
    b_sklearn = np.array([sk.intercept_, *sk.coef_])

    t = median_times(
        {
            "mlfit": lambda: normal_eq.fit(ModelData(X, y), normal_eq.Config()),
            "sklearn": lambda: sklearn.linear_model.LinearRegression().fit(X, y),
            "statsmodels": lambda: sm.OLS(y, X1).fit(),
        },
        repeat,
    )
    return {
        **t,
        "ratio_sklearn": t["mlfit"] / t["sklearn"],
        "ratio_statsmodels": t["mlfit"] / t["statsmodels"],
        "diff_sklearn": max_rel_diff(b_mlfit, b_sklearn),
        "diff_statsmodels": max_rel_diff(b_mlfit, ols.params),
        "method": res.info.get("method"),
        "coef": b_mlfit,
    }


def out_of_core(path: Path) -> dict:
    warm_page_cache(path)  # as for end to end: measure parsing, not the disk
    cmd = [*mlfit_command(), "normal-eq", str(path), "--chunk-rows", "100000", "--json", "-q"]
    peak_mb, wall, out = peak_rss_and_wall(cmd)
    summary = json.loads(out)
    size_mb = path.stat().st_size / 1e6
    return {
        "peak_mb": peak_mb,
        "seconds": wall,
        "size_mb": size_mb,
        "mb_per_s": size_mb / wall,
        "rows": summary["data"]["rows_used"],
        "r_squared": summary["metrics"]["r_squared"],
        "coef": coefficients(summary),
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the regression CSV")
    parser.add_argument("--cols", type=int, default=50, help="feature columns (plus y)")
    parser.add_argument(
        "--big-gb", type=float, default=1.0, help="size of the out-of-core CSV in GiB (default 1.0)"
    )
    parser.add_argument("--skip-big", action="store_true", help="skip the out-of-core run")
    args = parser.parse_args()

    path = cached_csv(f"regression_{args.rows}x{args.cols}.csv", n_rows=args.rows, cols=args.cols)
    print(
        f"data: {path.relative_to(HERE.parent)}, {args.rows:,} x {args.cols} + y, "
        f"{path.stat().st_size / 1e6:.0f} MB; {os.cpu_count()} CPUs"
    )
    # Other work on the machine skews every figure: note it so runs can be compared.
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    e2e = end_to_end(path)
    print(
        f"\nend to end (fresh processes, median of 3): mlfit {e2e['mlfit']:.2f} s, "
        f"pandas + sklearn {e2e['sklearn']:.2f} s, ratio {e2e['ratio']:.2f}"
    )
    print_mlfit_timing(e2e["cli_timing"])
    print(
        f"  the floor (pyarrow read + QR, fresh process): {e2e['floor']:.2f} s; mlfit / floor "
        f"{e2e['floor_ratio']:.2f}"
    )
    print(
        f"  peak RSS: mlfit {e2e['peak_mb']:.0f} MB ({e2e['idle_mb']:.0f} MB of it start-up), "
        f"the floor {e2e['floor_peak_mb']:.0f} MB; design matrix {e2e['design_mb']:.0f} MB"
    )

    fo = fit_only(path)
    print(
        f"\nfit only (same arrays, median of 5): mlfit {fo['mlfit'] * 1e3:.0f} ms "
        f"({fo['method']}), sklearn {fo['sklearn'] * 1e3:.0f} ms, "
        f"statsmodels {fo['statsmodels'] * 1e3:.0f} ms"
    )
    print(
        f"  ratio vs sklearn {fo['ratio_sklearn']:.2f}, vs statsmodels "
        f"{fo['ratio_statsmodels']:.2f}; max relative coefficient difference vs sklearn "
        f"{fo['diff_sklearn']:.1e}, vs statsmodels {fo['diff_statsmodels']:.1e}"
    )
    cli_diff = max_rel_diff(e2e["cli_coef"], fo["coef"])
    print(f"  mlfit CLI (pyarrow parsing) vs in-process fit (pandas parsing): {cli_diff:.1e}")

    big = None
    if not args.skip_big:
        big_path = cached_csv(
            f"big_{BIG_COLS}cols_{args.big_gb:g}gib.csv",
            n_rows=None,
            cols=BIG_COLS,
            target_bytes=int(args.big_gb * GIB),
        )
        big = out_of_core(big_path)
        beta_diff = max_rel_diff(big["coef"][1:], true_beta(BIG_COLS))
        print(
            f"\nout of core ({big['size_mb']:.0f} MB, {big['rows']:,} rows, --chunk-rows 100000):"
            f" peak RSS {big['peak_mb']:.0f} MB, {big['seconds']:.1f} s, "
            f"{big['mb_per_s']:.0f} MB/s; R² {big['r_squared']:.6f}, "
            f"coefficients within {beta_diff:.1e} of the true ones"
        )

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    rows = [
        (
            "end to end, s",
            f"{e2e['mlfit']:.2f}",
            f"{e2e['sklearn']:.2f} (pandas+sklearn)",
            f"{e2e['ratio']:.2f}",
            f"<= 0.35 {verdict(e2e['ratio'] <= 0.35)}",
        ),
        (
            "end to end vs the floor, s",
            f"{e2e['mlfit']:.2f}",
            f"{e2e['floor']:.2f} (pyarrow + QR)",
            f"{e2e['floor_ratio']:.2f}",
            f"<= 1.3 {verdict(e2e['floor_ratio'] <= 1.3)}",
        ),
        (
            "peak RSS above start-up / design",
            f"{e2e['peak_mb'] - e2e['idle_mb']:.0f} MB",
            f"{e2e['design_mb']:.0f} MB",
            f"{(e2e['peak_mb'] - e2e['idle_mb']) / e2e['design_mb']:.2f}",
            "<= 2.5 {}".format(
                verdict((e2e["peak_mb"] - e2e["idle_mb"]) / e2e["design_mb"] <= 2.5)
            ),
        ),
        (
            "fit only vs sklearn, ms",
            f"{fo['mlfit'] * 1e3:.0f}",
            f"{fo['sklearn'] * 1e3:.0f}",
            f"{fo['ratio_sklearn']:.2f}",
            f"coef diff {fo['diff_sklearn']:.1e}",
        ),
        (
            "fit only vs statsmodels, ms",
            f"{fo['mlfit'] * 1e3:.0f}",
            f"{fo['statsmodels'] * 1e3:.0f}",
            f"{fo['ratio_statsmodels']:.2f}",
            f"coef diff {fo['diff_statsmodels']:.1e}",
        ),
    ]
    if big:
        rows += [
            (
                "out of core peak RSS, MB",
                f"{big['peak_mb']:.0f}",
                f"file {big['size_mb']:.0f} MB",
                "",
                f"< 300 {verdict(big['peak_mb'] < 300)}",
            ),
            (
                "out of core throughput, MB/s",
                f"{big['mb_per_s']:.0f}",
                f"{big['seconds']:.1f} s",
                "",
                "",
            ),
        ]
    print("\nload average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    header = ("measure", "mlfit", "reference", "ratio", "goal / check")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    main()
