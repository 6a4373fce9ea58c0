"""--engine dask against the local chunked path on 8 Parquet parts: the out-of-core regression
(normal-eq) and a logistic GLM (newton), on a local cluster of 1 and of 2 worker processes,
with the bytes moved per pass (from the JSON's engine section) and a model of how they grow.

    python bench/bench_dask.py            # the 200,000 x 50 regression and logistic tables
    python bench/bench_dask.py --quick    # 20,000 rows (a few seconds per run)

Each contender runs as a fresh `mlfit` process (the clusters are started once, here, and
reached with --scheduler, so the times are the fits', not the clusters' start-up); medians of
--repeat runs, taking turns.  Needs pip install ".[dask]".
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_glm import WORKLOADS, cached_glm_csv
from bench_regression import DATA_DIR, cached_csv, max_rel_diff, mlfit_command

PARTS = 8


def parquet_parts(csv_path: Path, parts: int = PARTS) -> Path:
    """The CSV as `parts` Parquet files in bench/data/<name>-parts<k>/ (written once)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    folder = DATA_DIR / f"{csv_path.stem}-parts{parts}"
    if not folder.exists():
        table = pcsv.read_csv(csv_path)
        tmp = folder.with_suffix(".tmp")
        tmp.mkdir(exist_ok=True)
        bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
        for k in range(parts):
            part = table.slice(bounds[k], bounds[k + 1] - bounds[k])
            pq.write_table(part, tmp / f"part-{k:03d}.parquet")
        tmp.rename(folder)
    return folder


def run(args: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    out = subprocess.run(
        [*mlfit_command(), *args, "--json", "-q"], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, json.loads(out.stdout)


def compare(name: str, args: list[str], clusters: dict, repeat: int) -> None:
    contenders = {"local chunked": []}
    contenders.update(
        {
            f"dask, {k} worker{'s' * (k > 1)}": [
                "--engine",
                "dask",
                "--scheduler",
                c.scheduler_address,
            ]
            for k, c in clusters.items()
        }
    )
    times = {label: [] for label in contenders}
    last = {}
    for _ in range(repeat):
        for label, extra in contenders.items():
            seconds, summary = run([*args, *extra])
            times[label].append(seconds)
            last[label] = summary
    base = _estimates(last["local chunked"])
    print(f"\n{name}: mlfit {' '.join(args)}")
    print(f"  {'':<20} {'seconds':>8} {'passes':>7} {'bytes/pass':>11} {'max rel diff':>13}")
    for label in contenders:
        engine = last[label].get("engine")
        passes = engine["passes"] if engine else 0
        per_pass = f"{engine['bytes_moved'] / passes:,.0f}" if engine else "-"
        diff = max_rel_diff(_estimates(last[label]), base) if engine else 0.0
        print(
            f"  {label:<20} {statistics.median(times[label]):8.2f} {passes:7d} "
            f"{per_pass:>11} {diff:13.1e}"
        )
    engine = last[next(iter(contenders.keys() - {"local chunked"}))]["engine"]
    p = len(base)
    statistic = 8 * (p + 1) ** 2  # an R factor of [1 X y], or an information matrix
    print(
        f"  model: one {p + 1} x {p + 1} statistic is {statistic:,} bytes; a pass moves about "
        f"partitions + merges = {engine['partitions']} + "
        f"{_merges(engine['partitions'])} of them"
    )
    for nodes, per_node in ((100, 8),):
        k = nodes * per_node
        mb = (k + _merges(k)) * statistic / 1e6
        print(
            f"  {nodes} nodes x {per_node} partitions: {k + _merges(k)} statistics, "
            f"~{mb:.0f} MB per pass"
        )


def _merges(partitions: int, fan_in: int = 8) -> int:
    """Merge tasks of the reduction tree over `partitions` results."""
    total = 0
    while partitions > 1:
        partitions = -(-partitions // fan_in)
        total += partitions
    return total


def _estimates(summary: dict) -> np.ndarray:
    return np.array([row["estimate"] for row in summary["coefficients"].values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000-row tables")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the clusters' closing chatter
    rows = 20_000 if opts.quick else 200_000
    regression = parquet_parts(cached_csv(f"regression_{rows}x50.csv", n_rows=rows, cols=50))
    logistic = WORKLOADS["logistic"]
    glm = parquet_parts(
        cached_glm_csv(logistic, logistic.quick_rows if opts.quick else logistic.rows)
    )
    clusters = {}
    try:
        for k in (1, 2):
            clusters[k] = LocalCluster(
                n_workers=k,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.CRITICAL,
            )
        compare(
            "out-of-core regression",
            ["normal-eq", str(regression), "-y", "y"],
            clusters,
            opts.repeat,
        )
        compare(
            "logistic GLM",
            ["newton", str(glm), "-y", "y", "--family", "logistic"],
            clusters,
            opts.repeat,
        )
    finally:
        for cluster in clusters.values():
            cluster.close()


if __name__ == "__main__":
    main()
