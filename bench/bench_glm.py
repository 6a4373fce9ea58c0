"""Benchmark mlfit's GLM commands (`logreg`, `newton --family poisson`) against scikit-learn and
statsmodels.

    python bench/bench_glm.py [--quick] [--only logistic,softmax,poisson] [--threads N]

Three workloads with a known model, generated once (seed 0, full float64 precision) and cached
in bench/data/ (git-ignored; delete the files to regenerate, about 10 s):

- logistic: 200,000 x 50, binary target (`mlfit logreg`), 191 MB;
- softmax: 100,000 x 20, five classes (`mlfit logreg`, softmax), 38 MB;
- poisson: 200,000 x 20, counts (`mlfit newton --family poisson`), 77 MB.

Features are correlated normal columns on scales from 0.5 to 20 (as in bench_regression.py);
the coefficients give each linear predictor a moderate spread, so there is no separation.

For each workload, on the same data and in one run:

1. fit only, in this process on the same numpy arrays, median of 3 (the fits take turns, so
   a burst of other work hits all of them): `mlfit.solvers.logreg.fit(ModelData(X, y), Config())` or
   `mlfit.solvers.newton.fit(ModelData(X, y), Config(family="poisson"))` versus scikit-learn
   (LogisticRegression lbfgs and newton-cholesky, PoissonRegressor newton-cholesky and lbfgs;
   C=inf / alpha=0, tol 1e-10), statsmodels (GLM, MNLogit; skipped after one fit if that
   takes over a minute), and the pipeline's estimator with scikit-learn's defaults. For each:
   the mean log-likelihood at its coefficients, computed the same way for all, and the
   relative difference to the best. mlfit is compared with the fastest competitor within
   1e-10 of the best (equal quality); faster but looser fits are listed as well.
2. end to end, fresh processes, median of 3 (alternating), file in the page cache:
   `mlfit logreg data.csv --json -q` (`mlfit newton data.csv --family poisson --json -q`)
   versus `python -c "import pandas, sklearn...; read_csv; fit"` with scikit-learn's defaults
   apart from the penalty (newton-cholesky for logistic and Poisson, lbfgs for softmax).

Goals: fit only <= 1.0 x the fastest competitor of equal quality; end to end <= 0.5 x the
pandas + scikit-learn pipeline. A full run takes 3-5 minutes (mostly scikit-learn's L-BFGS
at a tight tolerance on unscaled features); --quick (a tenth of the rows) about a minute.

Threads: the `mlfit` command runs BLAS single-threaded unless OPENBLAS_NUM_THREADS (or
MKL_/OMP_) is set; in this process numpy and scikit-learn use one thread per core.
--threads N sets every BLAS/OpenMP pool, here and in the fresh processes. On a busy shared
machine, --threads 1 gives far steadier figures: spinning BLAS threads that wait for a core
another process holds can slow a fit down several times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_regression import (
    HERE,
    cached_data,
    mlfit_command,
    print_mlfit_timing,
    wall_time,
    warm_page_cache,
)

REPEAT = 3
#: A competitor counts as "equal quality" when its mean log-likelihood is within this of the
#: best, relatively: Newton methods agree to about 1e-15, L-BFGS at a tight tolerance to about
#: 1e-13. (At 1e-8, the coefficients of the 200,000-row logistic fit are off by a few percent
#: of a standard error.)
EQUAL_QUALITY = 1e-10
#: statsmodels' MNLogit is skipped when one fit takes longer than this (seconds).
SLOW_LIMIT = 60.0
#: Tight tolerances for the references (their defaults stop far earlier than mlfit's).
TOL = 1e-10
MAX_ITER = 10_000


@dataclass(frozen=True)
class Workload:
    name: str
    rows: int
    cols: int
    classes: int = 2  # 0 for counts
    quick_rows: int = 0

    def file_name(self, rows: int) -> str:
        return f"glm_{self.name}_{rows}x{self.cols}.csv"


WORKLOADS = {
    "logistic": Workload("logistic", 200_000, 50, 2, quick_rows=20_000),
    "softmax": Workload("softmax", 100_000, 20, 5, quick_rows=10_000),
    "poisson": Workload("poisson", 200_000, 20, 0, quick_rows=20_000),
}

# The pipelines a user would otherwise run, as fresh processes: import, read_csv, fit. They keep
# scikit-learn's defaults (tolerance, iteration limit) apart from switching the penalty off: that
# is the script mlfit replaces. The same estimator is timed in process too ("defaults"), so its
# log-likelihood shows how close to the optimum the defaults stop.
PIPELINES = {
    "logistic": (
        "LogisticRegression",
        {"C": np.inf, "solver": "newton-cholesky"},
        "sklearn newton-cholesky",
    ),
    "softmax": ("LogisticRegression", {"C": np.inf}, "sklearn lbfgs"),
    "poisson": (
        "PoissonRegressor",
        {"alpha": 0.0, "solver": "newton-cholesky"},
        "sklearn newton-cholesky",
    ),
}

PIPELINE_SCRIPT = """\
import sys
import numpy, pandas, sklearn.linear_model

X = pandas.read_csv(sys.argv[1])
y = X.pop("y")
sklearn.linear_model.{estimator}({arguments}).fit(X, y)
"""


def pipeline_script(workload: Workload) -> str:
    estimator, kwargs, _ = PIPELINES[workload.name]
    arguments = ", ".join(
        f"{key}={'numpy.inf' if value == np.inf else repr(value)}" for key, value in kwargs.items()
    )
    return PIPELINE_SCRIPT.format(estimator=estimator, arguments=arguments)


def pipeline_estimator(workload: Workload):
    """The pipeline's estimator, for the in-process run with the same settings."""
    import sklearn.linear_model

    estimator, kwargs, _ = PIPELINES[workload.name]
    return getattr(sklearn.linear_model, estimator)(**kwargs)


def mlfit_cli_args(workload: Workload) -> list[str]:
    if workload.classes:
        return ["logreg"]
    return ["newton", "--family", "poisson"]


# --------------------------------------------------------------------------- data


def feature_transform(p: int) -> tuple[np.ndarray, np.ndarray]:
    """X = Z @ M with Z standard normal: neighbouring columns correlated (0.3), scales 0.5..20
    (as in bench_regression.py). Returns M and the covariance of a row, M'M."""
    M = np.eye(p) + 0.3 * np.eye(p, k=1)  # column j gets 0.3 * Z[:, j - 1]
    M[-1, 0] = 0.3  # wrap around, as np.roll
    M = M * np.linspace(0.5, 20.0, p)
    return M, M.T @ M


def true_model(workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    """(intercepts, coefficients (p, outputs)) of the generating model.

    Coefficients are scaled so that each linear predictor has a standard deviation of 2
    (logistic), 1.5 (softmax) or 0.5 (Poisson, mean count about 2.3): every class is common
    and there is no separation.
    """
    rng = np.random.default_rng(12345)
    p = workload.cols
    _, cov = feature_transform(p)
    scale = np.linspace(0.5, 20.0, p)
    if workload.classes == 0:
        outputs, sd, intercept = 1, 0.5, np.array([0.7])
    elif workload.classes == 2:
        outputs, sd, intercept = 1, 2.0, np.array([-0.5])
    else:
        outputs, sd = workload.classes - 1, 1.5
        intercept = np.linspace(-0.4, 0.4, outputs)
    B = rng.uniform(0.5, 2.0, (p, outputs)) * rng.choice([-1.0, 1.0], (p, outputs))
    B = B / scale[:, None]
    B = B * (sd / np.sqrt(np.einsum("io,ij,jo->o", B, cov, B)))
    return intercept, B


def make_block(rng, n: int, workload: Workload, intercept, B):
    M, _ = feature_transform(workload.cols)
    X = rng.normal(size=(n, workload.cols)) @ M
    eta = X @ B + intercept
    if workload.classes == 0:
        y = rng.poisson(np.exp(eta[:, 0]))
    elif workload.classes == 2:
        y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta[:, 0]))).astype(np.int64)
    else:  # Gumbel-max: argmax of the logits plus Gumbel noise is a draw from the softmax
        logits = np.column_stack([np.zeros(n), eta])
        y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    return X, y.astype(np.int64)


def write_glm_csv(path: Path, workload: Workload, rows: int, block: int = 100_000) -> None:
    """x1..xN at full float64 precision, then the integer target y; tmp file then rename."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    intercept, B = true_model(workload)
    names = [f"x{j + 1}" for j in range(workload.cols)]
    schema = pa.schema([(name, pa.float64()) for name in names] + [("y", pa.int64())])
    tmp = path.with_suffix(".tmp")
    options = pcsv.WriteOptions(quoting_style="none")
    with pcsv.CSVWriter(str(tmp), schema, write_options=options) as writer:
        for start in range(0, rows, block):
            X, y = make_block(rng, min(block, rows - start), workload, intercept, B)
            writer.write_table(pa.table(dict(zip([*names, "y"], [*X.T, y])), schema=schema))
    tmp.rename(path)


def cached_glm_csv(workload: Workload, rows: int) -> Path:
    return cached_data(workload.file_name(rows), lambda path: write_glm_csv(path, workload, rows))


# --------------------------------------------------------------------------- quality


def mean_loglik(workload: Workload, X, y, intercept, coef) -> float:
    """Mean log-likelihood per row of a fit, from its coefficients, computed the same way for
    every library. Softmax coefficients may be (p, K-1) with class 0 as reference, or (p, K)
    (scikit-learn's symmetric parameterisation): only differences between classes matter."""
    eta = X @ np.asarray(coef, dtype=float) + np.asarray(intercept, dtype=float)
    if workload.classes == 0:
        from scipy.special import gammaln

        eta = eta.reshape(-1)
        return float(np.mean(y * eta - np.exp(eta) - gammaln(y + 1.0)))
    if workload.classes == 2:
        eta = eta.reshape(-1)
        return float(np.mean(y * eta - np.logaddexp(0.0, eta)))
    from scipy.special import logsumexp

    if eta.shape[1] == workload.classes - 1:
        eta = np.column_stack([np.zeros(len(eta)), eta])
    return float(np.mean(eta[np.arange(len(y)), y] - logsumexp(eta, axis=1)))


# --------------------------------------------------------------------------- fit only


@dataclass
class Fit:
    name: str
    seconds: float = math.nan
    loglik: float = math.nan
    iterations: str = ""
    note: str = ""
    rel_diff: float = math.nan


def competitors(workload: Workload):
    """(name, fit(X, y) -> fitted object, (intercept, coef, iterations) of a fitted object)."""
    import sklearn.linear_model as lm
    import statsmodels.api as sm

    from mlfit.contract import ModelData
    from mlfit.solvers import logreg, newton

    def mlfit_params(res):
        d = res.params.to_dict()  # the model file's layout, the same for logreg and newton
        B = np.asarray(d["coef"], dtype=float)
        return d["intercept"], B.reshape(len(B), -1), res.convergence["iterations"]

    def sk_params(m):
        coef = m.coef_.T if m.coef_.ndim == 2 else m.coef_[:, None]
        return m.intercept_, coef, int(np.max(m.n_iter_))

    def sm_params(r):
        b = np.asarray(r.params)
        b = b if b.ndim == 2 else b[:, None]
        its = (
            r.fit_history["iteration"]
            if hasattr(r, "fit_history")
            else r.mle_retvals.get("iterations")
        )
        return b[0], b[1:], its

    with_const = {}

    def const(X):  # statsmodels wants the intercept column; built once, outside the timing
        if with_const.get("X") is not X:
            with_const.update(X=X, X1=sm.add_constant(X, has_constant="add"))
        return with_const["X1"]

    def log_reg(solver):
        return lambda X, y: lm.LogisticRegression(
            solver=solver, C=np.inf, tol=TOL, max_iter=MAX_ITER
        ).fit(X, y)

    defaults = (
        f"{PIPELINES[workload.name][2]} (defaults)",
        lambda X, y: pipeline_estimator(workload).fit(X, y),
        sk_params,
    )
    if workload.classes == 2:
        return [
            (
                "mlfit logreg",
                lambda X, y: logreg.fit(ModelData(X, y), logreg.Config()),
                mlfit_params,
            ),
            ("sklearn lbfgs", log_reg("lbfgs"), sk_params),
            ("sklearn newton-cholesky", log_reg("newton-cholesky"), sk_params),
            defaults,
            (
                "statsmodels GLM Binomial",
                lambda X, y: sm.GLM(y, const(X), family=sm.families.Binomial()).fit(tol=TOL),
                sm_params,
            ),
        ]
    if workload.classes > 2:
        return [
            (
                "mlfit logreg",
                lambda X, y: logreg.fit(ModelData(X, y), logreg.Config()),
                mlfit_params,
            ),
            ("sklearn lbfgs", log_reg("lbfgs"), sk_params),
            defaults,
            (
                "statsmodels MNLogit",
                lambda X, y: sm.MNLogit(y, const(X)).fit(
                    method="newton", tol=TOL, maxiter=100, disp=False
                ),
                sm_params,
            ),
        ]

    def poisson(solver):
        return lambda X, y: lm.PoissonRegressor(
            alpha=0.0, solver=solver, tol=TOL, max_iter=MAX_ITER
        ).fit(X, y)

    return [
        (
            "mlfit newton poisson",
            lambda X, y: newton.fit(ModelData(X, y), newton.Config(family="poisson")),
            mlfit_params,
        ),
        ("sklearn newton-cholesky", poisson("newton-cholesky"), sk_params),
        ("sklearn lbfgs", poisson("lbfgs"), sk_params),
        defaults,
        (
            "statsmodels GLM Poisson",
            lambda X, y: sm.GLM(y, const(X), family=sm.families.Poisson()).fit(tol=TOL),
            sm_params,
        ),
    ]


def fit_only(workload: Workload, path: Path, repeat: int = REPEAT) -> list[Fit]:
    """Each fit `repeat` times, in rounds (every fit once per round), so that a burst of other
    work on the machine hits all of them rather than the three runs of one."""
    import pandas as pd

    frame = pd.read_csv(path)
    y_int = frame.pop("y").to_numpy()
    X = np.ascontiguousarray(frame.to_numpy(dtype=float))
    # mlfit gets y as the command line gives it (float64); the references as integers.
    y_float = y_int.astype(float)
    entries = []
    for name, fit, params in competitors(workload):
        y = y_float if name.startswith("mlfit") else y_int
        # A small fit first: lazy imports and first-call overheads stay out of the timing.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(X[:2000], y[:2000])
        entries.append(
            {
                "fit": Fit(name),
                "run": fit,
                "params": params,
                "y": y,
                "times": [],
                "warnings": [],
                "result": None,
            }
        )
    for _ in range(repeat):
        for e in entries:
            if e["times"] and e["times"][0] > SLOW_LIMIT:
                continue  # too slow to repeat (statsmodels' MNLogit on a big problem)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.perf_counter()
                e["result"] = e["run"](X, e["y"])
                e["times"].append(time.perf_counter() - start)
            e["warnings"] += [str(w.message).splitlines()[0][:72].rstrip(" :") for w in caught]
    fits = []
    for e in entries:
        f = e["fit"]
        intercept, coef, its = e["params"](e["result"])
        f.seconds = statistics.median(e["times"])
        f.loglik = mean_loglik(workload, X, y_int, intercept, coef)
        f.iterations = str(its)
        if len(e["times"]) < repeat:
            f.note = f"one fit took {e['times'][0]:.0f} s (> {SLOW_LIMIT:.0f} s): not repeated"
        if e["warnings"]:
            f.note = (f.note + "; " if f.note else "") + "warning: " + e["warnings"][0]
        fits.append(f)
    best = max(f.loglik for f in fits)
    for f in fits:
        f.rel_diff = (best - f.loglik) / abs(best)
    return fits


# --------------------------------------------------------------------------- end to end


def end_to_end(workload: Workload, path: Path, repeat: int = REPEAT) -> dict:
    warm_page_cache(path)
    mlfit = [*mlfit_command(), *mlfit_cli_args(workload), str(path), "--json", "-q"]
    label = PIPELINES[workload.name][2]
    pipeline = [sys.executable, "-W", "ignore", "-c", pipeline_script(workload), str(path)]
    times = {"mlfit": [], "pipeline": []}
    for _ in range(repeat):  # alternating, so that other work on the machine hits both alike
        times["mlfit"].append(wall_time(mlfit))
        times["pipeline"].append(wall_time(pipeline))
    t_mlfit, t_pipeline = statistics.median(times["mlfit"]), statistics.median(times["pipeline"])
    summary = json.loads(subprocess.run(mlfit, capture_output=True, text=True, check=True).stdout)
    return {
        "mlfit": t_mlfit,
        "pipeline": t_pipeline,
        "pipeline_label": f"pandas + {label} (defaults)",
        "ratio": t_mlfit / t_pipeline,
        "timing": summary.get("timing", {}),
        "loglik": summary["metrics"]["log_likelihood"] / summary["data"]["rows_used"],
        "iterations": summary.get("convergence", {}).get("iterations"),
    }


# --------------------------------------------------------------------------- main


def limit_threads(n: int) -> None:
    """At most n BLAS/OpenMP threads: here (numpy is loaded already, so through threadpoolctl)
    and in every fresh process (through the environment). With other work on the machine,
    OpenBLAS threads that wait for a busy core can slow a fit down several times over."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)


def report_fits(fits: list[Fit]) -> dict:
    rows = [("fit", "seconds", "mean log-lik", "rel. to best", "iterations", "note")]
    for f in fits:
        rows.append(
            (
                f.name,
                f"{f.seconds:.3f}",
                f"{f.loglik:.12f}",
                f"{f.rel_diff:.1e}",
                f.iterations,
                f.note,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    mine, others = fits[0], fits[1:]
    equal = [f for f in others if f.rel_diff <= EQUAL_QUALITY]
    fastest = min(equal or others, key=lambda f: f.seconds)
    ratio = mine.seconds / fastest.seconds
    print(f"  ratio mlfit / fastest competitor of equal quality ({fastest.name}): {ratio:.2f}")
    looser = [f for f in others if f.seconds < fastest.seconds]
    for f in looser:
        print(
            f"  ({f.name} is faster, {f.seconds:.3f} s, but stops {f.rel_diff:.1e} below the "
            f"best log-likelihood; mlfit / it: {mine.seconds / f.seconds:.2f})"
        )
    return {"mlfit": mine, "fastest": fastest, "ratio": ratio, "looser": looser}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the rows: a smoke run of about a minute",
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help="comma-separated workloads (default: logistic,softmax,poisson)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="BLAS threads for every fit, in this process and the fresh ones "
        "(default: the libraries' own choice, one per core)",
    )
    args = parser.parse_args()
    chosen = [WORKLOADS[name.strip()] for name in args.only.split(",") if name.strip()]
    if args.threads:
        limit_threads(args.threads)

    print(
        f"{os.cpu_count()} CPUs, BLAS threads: {args.threads or 'default'}; load average "
        "before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    )
    table = []
    for workload in chosen:
        rows = workload.quick_rows if args.quick else workload.rows
        path = cached_glm_csv(workload, rows)
        kind = (
            "counts"
            if workload.classes == 0
            else "binary"
            if workload.classes == 2
            else f"{workload.classes} classes"
        )
        print(
            f"\n== {workload.name}: {rows:,} x {workload.cols} + y ({kind}), "
            f"{path.relative_to(HERE.parent)}, {path.stat().st_size / 1e6:.0f} MB"
        )

        print(f"fit only (same arrays, median of {REPEAT}) ...", flush=True)
        fits = fit_only(workload, path)
        fo = report_fits(fits)

        e2e = end_to_end(workload, path)
        cmd = " ".join(["mlfit", *mlfit_cli_args(workload), "data.csv", "--json", "-q"])
        print(
            f"end to end (fresh processes, median of {REPEAT}): `{cmd}` {e2e['mlfit']:.2f} s, "
            f"{e2e['pipeline_label']} {e2e['pipeline']:.2f} s, ratio {e2e['ratio']:.2f}"
        )
        print_mlfit_timing(e2e["timing"])
        diff = abs(e2e["loglik"] - fo["mlfit"].loglik) / abs(fo["mlfit"].loglik)
        print(
            f"  mlfit CLI mean log-likelihood {e2e['loglik']:.12f} ({e2e['iterations']} "
            f"iterations), vs in-process fit: {diff:.1e}"
        )
        table.append((workload, rows, fo, e2e))

    print("\nload average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    rows = [("workload", "measure", "mlfit", "reference", "ratio", "goal")]
    for workload, n, fo, e2e in table:
        label = f"{workload.name} {n // 1000}k x {workload.cols}"
        rows.append(
            (
                label,
                "fit only, s",
                f"{fo['mlfit'].seconds:.3f}",
                f"{fo['fastest'].seconds:.3f} {fo['fastest'].name}",
                f"{fo['ratio']:.2f}",
                f"<= 1.0 {verdict(fo['ratio'] <= 1.0)}",
            )
        )
        for f in fo["looser"]:
            rows.append(
                (
                    "",
                    "fit only, s",
                    "",
                    f"{f.seconds:.3f} {f.name}",
                    f"{fo['mlfit'].seconds / f.seconds:.2f}",
                    f"report (log-lik {f.rel_diff:.0e} lower)",
                )
            )
        rows.append(
            (
                "",
                "end to end, s",
                f"{e2e['mlfit']:.2f}",
                f"{e2e['pipeline']:.2f} {e2e['pipeline_label']}",
                f"{e2e['ratio']:.2f}",
                f"<= 0.5 {verdict(e2e['ratio'] <= 0.5)}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in [rows[0], tuple("-" * w for w in widths), *rows[1:]]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    main()
