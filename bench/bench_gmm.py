"""Benchmark `mlfit gmm` (EM for Gaussian mixtures) against scikit-learn's GaussianMixture.

    python bench/bench_gmm.py [--quick] [--only full,diag,spherical,tied] [--threads N]
                              [--iterations 20] [--e2e-iterations 20] [--no-profile]

One workload, generated once (seed 0, full float64 precision) and cached in bench/data/
(git-ignored; delete the file to regenerate, under a second): 100,000 x 10 rows drawn from
a mixture of 8 Gaussians with unequal weights and correlated covariances of different
shapes, `gmm_100000x10_k8.csv` (19 MB). --quick: 20,000 rows, 10 iterations, end to end
timed once and without the n_init=2 reference.

For each covariance type (full, diag, spherical, tied), k = 8:

1. time per EM iteration, in this process on the same numpy array, median of 3 (the two
   taking turns): `mlfit.solvers.mixture.em` on the array split into gmm.BLOCK_ROWS-row
   blocks (as `mlfit gmm` feeds it), tol=-1 and plain steps (accelerate=False,
   monotone=False when em() has them) so that it runs exactly N EM iterations, reg an
   absolute vector equal to scikit-learn's reg_covar, versus `GaussianMixture(tol=0,
   max_iter=N, init_params="random", weights_init=..., means_init=..., precisions_init=...)`,
   both from the same initial parameters (8 rows drawn at random as means, equal weights, the
   whole data's covariance in the shape of the type). Both do N+1 E steps and N M steps
   (scikit-learn's random responsibilities cost it one more M step, overwritten by the
   given initial parameters: a bias of 1/N of an M step in mlfit's favour). Printed: ms per
   iteration (total / N), the ratio mlfit / sklearn, and how far the final parameters differ
   (max |difference of means| / max |mean|, and the mean log-likelihood per row).
2. end to end, fresh processes, file in the page cache, median of 3 (taking turns):
   `mlfit gmm data.csv --k 8 --covariance TYPE --n-init 1 --max-iter M --tol 0 --json -q`
   versus `python -c "import pandas, sklearn.mixture; read_csv; GaussianMixture(
   n_components=8, covariance_type=TYPE, n_init=1, max_iter=M, tol=0, random_state=0).fit"`.
   The same --max-iter, but not the same work: mlfit always runs two starts (Ward's
   clustering plus --n-init k-means++ starts; --n-init cannot go below 1, and there is no
   option for a single start), its iterations are SQUAREM-accelerated (two or three passes
   over the data each) and it may stop before M where a step would lose likelihood, while
   scikit-learn with tol=0 runs exactly M plain iterations. So the pipeline with n_init=2 is
   timed once as well, and the same fit is run in this process counting mlfit's passes over
   the data (mixture.one_pass calls) against scikit-learn's M + 1 E steps.
3. profile (cProfile) of mlfit's plain em() for N iterations, ms per iteration in
   Densities.__init__ (Cholesky factors), Densities.__call__ (log-densities), log_sum_exp
   (responsibilities), the rest of block_sums (counts, first moments, scatter) and m_step.

Goals (from the issue): per iteration <= 0.5 x scikit-learn for every covariance type; tied
no slower than full (the issue says scikit-learn's tied is slower than its full); end to end
<= 0.5 x the pandas + scikit-learn pipeline. A full run takes about 3 minutes on a quiet
2-core machine (much longer under load); --quick about 25 s, a smoke run (at 20,000
rows the ratios differ from the goals' figures).

Threads: like the `mlfit` command (mlfit/cli.py), the script sets OPENBLAS_NUM_THREADS=1 and
MKL_NUM_THREADS=1 before numpy loads unless one of OPENBLAS_/MKL_/OMP_NUM_THREADS is set; the
fresh processes inherit that, so scikit-learn's BLAS runs single-threaded as mlfit's does
(its k-means start still uses OpenMP threads). On this shared 2-core machine a second BLAS
thread mostly adds noise (a pipeline run took 14 s instead of 5 s while another benchmark
ran); `--threads N` sets every BLAS/OpenMP pool to N, here and in the fresh processes.
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
import cProfile
import inspect
import json
import pstats
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from bench_regression import HERE, cached_data, mlfit_command, print_mlfit_timing, warm_page_cache

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
K = 8
COLS = 10
ROWS, QUICK_ROWS = 100_000, 20_000
ITERATIONS, QUICK_ITERATIONS = 20, 10
REPEAT = 3
#: scikit-learn's default reg_covar; mlfit's em() gets it as an absolute vector.
REG_COVAR = 1e-6

PIPELINE_SCRIPT = """\
import sys
import pandas, sklearn.mixture

X = pandas.read_csv(sys.argv[1])
sklearn.mixture.GaussianMixture(
    n_components=int(sys.argv[2]), covariance_type=sys.argv[3], n_init=int(sys.argv[4]),
    max_iter=int(sys.argv[5]), tol=0, random_state=0,
).fit(X)
"""


# --------------------------------------------------------------------------- data


def true_mixture():
    """(weights, means, covariances) of the generating mixture: weights 1..3 (normalised),
    means uniform on [-6, 6]^d, covariances A A'/d + diag(0.3..1.5) for a normal A: every
    component elongated in its own directions, most of them separated, a few overlapping."""
    rng = np.random.default_rng(12345)
    weights = np.linspace(1.0, 3.0, K)
    means = rng.uniform(-6.0, 6.0, (K, COLS))
    covs = []
    for _ in range(K):
        A = rng.normal(size=(COLS, COLS))
        covs.append(A @ A.T / COLS + np.diag(rng.uniform(0.3, 1.5, COLS)))
    return weights / weights.sum(), means, np.array(covs)


def write_gmm_csv(path: Path, rows: int, block: int = 100_000) -> None:
    """x1..x10 at full float64 precision (the shortest decimal that reads back the same);
    written to a temporary name and renamed."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    weights, means, covs = true_mixture()
    chol = np.linalg.cholesky(covs)
    names = [f"x{j + 1}" for j in range(COLS)]
    schema = pa.schema([(name, pa.float64()) for name in names])
    tmp = path.with_suffix(".tmp")
    options = pcsv.WriteOptions(quoting_style="none")
    with pcsv.CSVWriter(str(tmp), schema, write_options=options) as writer:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            z = rng.choice(K, size=n, p=weights)
            X = means[z] + np.einsum("nij,nj->ni", chol[z], rng.normal(size=(n, COLS)))
            writer.write_table(pa.table(dict(zip(names, X.T)), schema=schema))
    tmp.rename(path)


def cached_gmm_csv(rows: int) -> Path:
    return cached_data(f"gmm_{rows}x{COLS}_k{K}.csv", lambda path: write_gmm_csv(path, rows))


def initial_parameters(X: np.ndarray, kind: str):
    """(weights, means, covariances, precisions) to start both EMs from: K rows drawn at
    random (seed 1) as means, equal weights, the data's covariance in the shape of `kind`."""
    rng = np.random.default_rng(1)
    n = X.shape[0]
    means = X[np.sort(rng.choice(n, K, replace=False))].copy()
    weights = np.full(K, 1.0 / K)
    C = np.cov(X, rowvar=False, bias=True)
    if kind == "full":
        cov = np.repeat(C[None], K, axis=0)
    elif kind == "tied":
        cov = C.copy()
    elif kind == "diag":
        cov = np.repeat(np.diag(C)[None], K, axis=0)
    else:
        cov = np.full(K, np.diag(C).mean())
    precisions = np.linalg.inv(cov) if kind in ("full", "tied") else 1.0 / cov
    return weights, means, cov, precisions


def as_blocks(X: np.ndarray) -> list[np.ndarray]:
    """The array as the row blocks `mlfit gmm` gives em() (views, no copies)."""
    from mlfit.solvers import gmm

    return [X[i : i + gmm.BLOCK_ROWS] for i in range(0, X.shape[0], gmm.BLOCK_ROWS)]


# --------------------------------------------------------------------------- per iteration


def plain_em_options() -> dict:
    """em() keywords for exactly `max_iter` plain EM steps, when it has them: no SQUAREM
    extrapolation (`mlfit gmm` turns it on), no stop at a step that loses likelihood."""
    from mlfit.solvers import mixture

    params = inspect.signature(mixture.em).parameters
    wanted = {"accelerate": False, "monotone": False}
    return {key: value for key, value in wanted.items() if key in params}


def run_mlfit_em(blocks, X, kind: str, iterations: int):
    from mlfit.solvers import mixture

    weights, means, cov, _ = initial_parameters(X, kind)
    mix = mixture.Mixture(kind, weights, means, cov)
    reg = np.full(X.shape[1], REG_COVAR)
    return mixture.em(blocks, mix, reg, iterations, tol=-1.0, **plain_em_options())


def run_sklearn_em(X, kind: str, iterations: int):
    from sklearn.mixture import GaussianMixture

    weights, means, _, precisions = initial_parameters(X, kind)
    model = GaussianMixture(
        n_components=K,
        covariance_type=kind,
        tol=0.0,
        reg_covar=REG_COVAR,
        max_iter=iterations,
        init_params="random",
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges
        return model.fit(X)


def per_iteration(X: np.ndarray, kind: str, iterations: int, repeat: int = REPEAT) -> dict:
    """ms per EM iteration, mlfit and scikit-learn taking turns, and the agreement."""
    blocks = as_blocks(X)
    run_mlfit_em(blocks, X[:2000], kind, 2)  # first-call overheads out of the timing
    run_sklearn_em(X[:2000], kind, 2)
    times = {"mlfit": [], "sklearn": []}
    out = model = None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run_mlfit_em(blocks, X, kind, iterations)
        times["mlfit"].append(time.perf_counter() - start)
        start = time.perf_counter()
        model = run_sklearn_em(X, kind, iterations)
        times["sklearn"].append(time.perf_counter() - start)
    ms = {name: 1e3 * statistics.median(t) / iterations for name, t in times.items()}
    # history[-2]: mean log-likelihood per row before the last M step, as sklearn's lower_bound_
    return {
        **ms,
        "ratio": ms["mlfit"] / ms["sklearn"],
        "mean_diff": float(
            np.max(np.abs(out.mix.means - model.means_)) / np.max(np.abs(model.means_))
        ),
        "loglik_diff": abs(out.history[-2] - model.lower_bound_) / abs(model.lower_bound_),
        "iterations": (out.iterations, int(model.n_iter_)),
        "reseeded": out.reseeded,
    }


# --------------------------------------------------------------------------- end to end


def wall_time(cmd: list[str]) -> tuple[float, str]:
    """Seconds of one run of cmd, and its stdout (mlfit's JSON is small: keeping it costs
    nothing measurable and saves a run)."""
    start = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return time.perf_counter() - start, out


def mlfit_gmm_args(path: Path, kind: str, max_iter: int) -> list[str]:
    return [
        *mlfit_command(),
        "gmm",
        str(path),
        "--k",
        str(K),
        "--covariance",
        kind,
        "--n-init",
        "1",
        "--max-iter",
        str(max_iter),
        "--tol",
        "0",
        "--json",
        "-q",
    ]


def pipeline_args(path: Path, kind: str, n_init: int, max_iter: int) -> list[str]:
    return [
        sys.executable,
        "-W",
        "ignore",
        "-c",
        PIPELINE_SCRIPT,
        str(path),
        str(K),
        kind,
        str(n_init),
        str(max_iter),
    ]


def end_to_end(path: Path, kind: str, max_iter: int, repeat: int, like_for_like: bool) -> dict:
    """mlfit and the n_init=1 pipeline `repeat` times each, taking turns (so that other work
    on the machine hits both alike), medians; the n_init=2 pipeline once, in the first round
    (to keep the run short)."""
    warm_page_cache(path)
    mlfit = mlfit_gmm_args(path, kind, max_iter)
    commands = {"mlfit": mlfit, "pipeline": pipeline_args(path, kind, 1, max_iter)}
    times = {name: [] for name in commands}
    pipeline2, stdout = float("nan"), {}
    for round_ in range(repeat):
        for name, cmd in commands.items():
            seconds, stdout[name] = wall_time(cmd)
            times[name].append(seconds)
        if like_for_like and round_ == 0:
            pipeline2 = wall_time(pipeline_args(path, kind, 2, max_iter))[0]
    t = {name: statistics.median(v) for name, v in times.items()}
    summary = json.loads(stdout["mlfit"])
    return {
        **t,
        "pipeline2": pipeline2,
        "ratio": t["mlfit"] / t["pipeline"],
        "ratio2": t["mlfit"] / pipeline2,
        "timing": summary.get("timing", {}),
        "iterations": summary.get("convergence", {}).get("iterations"),
    }


def count_passes(X: np.ndarray, kind: str, max_iter: int) -> dict:
    """The fit `mlfit gmm` runs (same settings), in this process on the same array, counting
    the passes over the data that EM makes (mixture.one_pass calls: SQUAREM iterations take
    two or three, plus the final plain step) and the seconds it takes."""
    from mlfit.contract import ModelData
    from mlfit.solvers import gmm, mixture

    original, calls = mixture.one_pass, [0]

    def counted(blocks, mix):
        calls[0] += 1
        return original(blocks, mix)

    config = gmm.Config(k=(K,), covariance=(kind,), n_init=1, max_iter=max_iter, tol=0.0)
    mixture.one_pass = counted  # em() looks it up in its module at call time
    try:
        start = time.perf_counter()
        result = gmm.fit(ModelData(X), config)
        seconds = time.perf_counter() - start
    finally:
        mixture.one_pass = original
    return {
        "passes": calls[0],
        "seconds": seconds,
        "iterations": result.convergence.get("iterations"),
        "converged": result.convergence.get("converged"),
    }


# --------------------------------------------------------------------------- profile

#: (label, function name in mlfit/solvers/mixture.py, cumulative or own time)
PROFILE_ROWS = (
    ("Densities.__init__ (Cholesky factors)", "__init__", "cum"),
    ("Densities.__call__ (log-densities)", "__call__", "cum"),
    ("log_sum_exp (responsibilities)", "log_sum_exp", "cum"),
    ("block_sums, rest (counts, first, scatter)", "block_sums", "rest"),
    ("m_step", "m_step", "cum"),
)


def profile_em(X: np.ndarray, kind: str, iterations: int) -> dict:
    """ms per iteration by function of mixture.py, from cProfile over em() (with its
    overhead: the total is a little above the unprofiled one)."""
    from mlfit.solvers import mixture

    blocks = as_blocks(X)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    run_mlfit_em(blocks, X, kind, iterations)
    profiler.disable()
    total = time.perf_counter() - start
    source = os.path.normcase(mixture.__file__)
    cum = {}
    for (filename, _, name), (_, _, _, ct, _) in pstats.Stats(profiler).stats.items():
        if os.path.normcase(filename) == source:
            cum[name] = cum.get(name, 0.0) + ct
    rows = {}
    for label, name, how in PROFILE_ROWS:
        seconds = cum.get(name, 0.0)
        if how == "rest":
            seconds -= cum.get("__call__", 0.0) + cum.get("log_sum_exp", 0.0)
        rows[label] = 1e3 * seconds / iterations
    rows["other (em, one_pass, ...)"] = 1e3 * total / iterations - sum(rows.values())
    return {"rows": rows, "total": 1e3 * total / iterations}


# --------------------------------------------------------------------------- main


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "?"
    pools = {p.get("internal_api", "?"): p.get("num_threads") for p in threadpool_info()}
    return ", ".join(f"{api} {n}" for api, n in pools.items()) or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, {QUICK_ITERATIONS} iterations"
    )
    parser.add_argument(
        "--only", default=",".join(COVARIANCE_TYPES), help="comma-separated covariance types"
    )
    parser.add_argument("--iterations", type=int, default=0, help="EM iterations N, section 1")
    parser.add_argument(
        "--e2e-iterations", type=int, default=0, help="EM iterations M per start, end to end"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profile")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="BLAS/OpenMP threads here and in the fresh processes (default: one here, as the "
        "mlfit command; the fresh processes as started)",
    )
    args = parser.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in COVARIANCE_TYPES]
    if unknown:
        parser.error(f"unknown covariance type(s): {', '.join(unknown)}")
    rows = QUICK_ROWS if args.quick else ROWS
    e2e_repeat = 1 if args.quick else REPEAT
    iterations = args.iterations or (QUICK_ITERATIONS if args.quick else ITERATIONS)
    max_iter = args.e2e_iterations or iterations
    if args.threads:
        for var in BLAS_THREAD_VARIABLES:
            os.environ[var] = str(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)

    import pandas as pd

    path = cached_gmm_csv(rows)
    X = np.ascontiguousarray(pd.read_csv(path).to_numpy(dtype=float))
    print(
        f"data: {path.relative_to(HERE.parent)}, {rows:,} x {COLS}, "
        f"{path.stat().st_size / 1e6:.0f} MB, k = {K}; {os.cpu_count()} CPUs"
    )
    setting = ", ".join(f"{v}={os.environ[v]}" for v in BLAS_THREAD_VARIABLES if v in os.environ)
    how = "pinned as the mlfit command does" if PINNED and not args.threads else "as set"
    print(f"threads: {setting} ({how}), here and in the fresh processes; here: {blas_threads()}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    results = {}
    for kind in kinds:
        print(f"\n== {kind}")
        it = per_iteration(X, kind, iterations)
        print(
            f"per EM iteration (same start, {iterations} iterations, median of {REPEAT}): "
            f"mlfit {it['mlfit']:.1f} ms, sklearn {it['sklearn']:.1f} ms, "
            f"ratio {it['ratio']:.2f}",
            flush=True,
        )
        print(
            f"  final parameters: max |Δ mean| / max |mean| {it['mean_diff']:.1e}, "
            f"mean log-likelihood {it['loglik_diff']:.1e} relative; iterations "
            f"{it['iterations'][0]} / {it['iterations'][1]}, re-seeded {it['reseeded']}"
        )
        e2e = end_to_end(path, kind, max_iter, e2e_repeat, not args.quick)
        print(
            f"end to end (fresh processes, median of {e2e_repeat}, --max-iter {max_iter} "
            f"--tol 0):\n"
            f"  mlfit gmm                          {e2e['mlfit']:6.2f} s  (two starts, Ward + 1 "
            "k-means++: there is no option for one)\n"
            f"  pandas + sklearn n_init=1          {e2e['pipeline']:6.2f} s  ratio "
            f"{e2e['ratio']:.2f} (goal <= 0.5)",
            flush=True,
        )
        if not args.quick:
            print(
                f"  pandas + sklearn n_init=2, one run {e2e['pipeline2']:6.2f} s  ratio "
                f"{e2e['ratio2']:.2f} (two starts, as mlfit)"
            )
        print_mlfit_timing(e2e["timing"])
        passes = count_passes(X, kind, max_iter)
        e2e["passes"] = passes
        print(
            f"  work: mlfit {passes['passes']} passes over the data for its two starts "
            f"(SQUAREM iterations; the chosen start {passes['iterations']} iterations, "
            f"converged {passes['converged']}; {passes['seconds']:.2f} s in this process), "
            f"scikit-learn {max_iter + 1} E steps a start"
        )
        prof = None
        if not args.no_profile:
            prof = profile_em(X, kind, iterations)
            print(f"  mlfit profile, ms per iteration (cProfile, total {prof['total']:.1f}):")
            for label, ms in prof["rows"].items():
                print(f"    {label:<44} {ms:6.1f}  {100 * ms / prof['total']:3.0f} %")
        results[kind] = (it, e2e, prof)

    print("\nload average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    table = [("type", "measure", "mlfit", "reference", "ratio", "goal")]
    for kind, (it, e2e, _) in results.items():
        table += [
            (
                kind,
                "ms / EM iteration",
                f"{it['mlfit']:.1f}",
                f"{it['sklearn']:.1f} sklearn",
                f"{it['ratio']:.2f}",
                f"<= 0.5 {verdict(it['ratio'] <= 0.5)}",
            ),
            (
                "",
                "end to end, s",
                f"{e2e['mlfit']:.2f}",
                f"{e2e['pipeline']:.2f} pandas+sklearn",
                f"{e2e['ratio']:.2f}",
                f"<= 0.5 {verdict(e2e['ratio'] <= 0.5)}",
            ),
        ]
        if not args.quick:
            table.append(
                (
                    "",
                    "end to end, s",
                    "",
                    f"{e2e['pipeline2']:.2f} n_init=2",
                    f"{e2e['ratio2']:.2f}",
                    "report (like for like)",
                )
            )
    if "full" in results and "tied" in results:
        full, tied = results["full"][0], results["tied"][0]
        r = tied["mlfit"] / full["mlfit"]
        table.append(
            (
                "tied",
                "tied / full per it.",
                f"{r:.2f}",
                f"{tied['sklearn'] / full['sklearn']:.2f} sklearn",
                "",
                f"<= 1.0 {verdict(r <= 1.0)}",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print()
    for r in [table[0], tuple("-" * w for w in widths), *table[1:]]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    if "full" in results:
        print(
            f"\n(scikit-learn full here: {results['full'][0]['sklearn']:.0f} ms per iteration at "
            f"k = {K}, {rows:,} x {COLS}; the issue quotes about 170 ms at k = 10.)"
        )


if __name__ == "__main__":
    main()
