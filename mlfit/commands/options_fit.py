"""The options that say how a command fits and what it writes: Config fields, the design
(--poly, --intercept), descent, --l2, robust standard errors, --weights, the classifier's
--holdout and --threshold, chunks and the engine, and the output flags."""

from __future__ import annotations

import dataclasses
import functools
import math

import click


class FiniteFloat(click.FloatRange):
    """click's FloatRange, refusing NaN and infinity: NaN passes every range comparison, so
    `--tol nan` or `--threshold nan` would otherwise be accepted and silently misbehave."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def config_from(config_cls, settings: dict):
    """The Config from a command's keyword arguments named as its fields (flags are field
    names with dashes); keywords that are not fields are an error, so none is dropped."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise TypeError(f"{config_cls.__module__}.Config has no field {', '.join(unknown)}")
    return config_cls(**settings)


def config_option(config_cls, field: str, help: str, type=None, **kwargs):
    """--FIELD-NAME for a Config field, its default taken from Config (never written twice)."""
    return click.option(
        "--" + field.replace("_", "-"),
        field,
        type=type,
        default=getattr(config_cls, field),
        show_default=True,
        help=help,
        **kwargs,
    )


def design_options(config_cls):
    """--no-intercept and --poly D."""

    def decorate(f):
        f = click.option(
            "--poly",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            metavar="D",
            help="Polynomial terms of the numeric features up to total "
            "degree D (x, x^2, x1*x2, ...).",
        )(f)
        return click.option(
            "--intercept/--no-intercept",
            default=config_cls.intercept,
            show_default=True,
            help="Fit an intercept.",
        )(f)

    return decorate


def classifier_options(config_cls, seed: bool = True, threshold_for: str = "Two classes"):
    """--holdout FRACTION, --seed (seed=False: the command has one, e.g. descent_options) and
    --threshold; `threshold_for` says when the threshold applies."""

    def decorate(f):
        f = config_option(
            config_cls,
            "threshold",
            f"{threshold_for}: predict the second class when its probability is at least this.",
            type=FiniteFloat(0, 1),
        )(f)
        if seed:
            f = config_option(config_cls, "seed", "Seed of --holdout.", type=int)(f)
        return click.option(
            "--holdout",
            type=FiniteFloat(0, 1, min_open=True, max_open=True),
            metavar="FRACTION",
            # no click default (it would fail the open range): Config's when not given
            callback=lambda ctx, param, value: config_cls.holdout if value is None else value,
            help="Hold out this fraction of each class's rows (seeded by --seed) and report the "
            "same metrics on them.",
        )(f)

    return decorate


def descent_options(config_cls, methods=("batch", "minibatch", "sgd")):
    """--method, --lr, --batch-size, --epochs, --tol, --seed, --strict."""

    def decorate(f):
        f = strict_option(f)
        f = click.option(
            "--seed",
            type=int,
            default=config_cls.seed,
            show_default=True,
            help="Seed for shuffling: the same seed gives the same result.",
        )(f)
        f = click.option(
            "--tol",
            type=FiniteFloat(min=0),
            default=config_cls.tol,
            show_default=True,
            help="Stop when the gradient norm falls below tol times its starting value.",
        )(f)
        f = click.option(
            "--epochs",
            type=click.IntRange(min=1),
            default=config_cls.epochs,
            show_default=True,
            help="Maximum number of passes over the data.",
        )(f)
        f = click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=config_cls.batch_size,
            show_default=True,
            help="Rows per step for --method minibatch.",
        )(f)
        f = click.option(
            "--lr",
            type=FiniteFloat(min=0, min_open=True),
            default=config_cls.lr,
            show_default=True,
            help="Learning rate.",
        )(f)
        return click.option(
            "--method",
            type=click.Choice(list(methods)),
            default=config_cls.method,
            show_default=True,
            help="Solver: " + ", ".join(methods) + " (batch, minibatch and sgd "
            "are gradient descent with full, --batch-size or one-row steps).",
        )(f)

    return decorate


def weights_option(f):
    """--weights COL: prior weights, as R's lm and glm weights=."""
    return click.option(
        "--weights",
        metavar="COL",
        help="Column of prior weights (R's weights= in lm and glm): row i counts w_i times "
        "in the sums of the fit (its variance is dispersion / w_i). Weights must be >= 0; "
        "rows of weight 0 are left out of the fit (not of predict).",
    )(f)


def robust_options(f):
    """--se model|robust, --hc 0|1|2|3 and --cluster COL (read by covariance())."""
    f = click.option(
        "--cluster",
        metavar="COL",
        help="Cluster-robust standard errors, clustered by this column (numbers or text): "
        "statsmodels' cov_type='cluster' and R's sandwich::vcovCL(type='HC1'), with the "
        "G/(G-1)·(n-1)/(n-k) correction.",
    )(f)
    f = click.option(
        "--hc",
        type=click.Choice(["0", "1", "2", "3"]),
        help="With --se robust: the sandwich's flavour, HC0-HC3 as statsmodels and R's "
        "sandwich::vcovHC (default 3, sandwich's).",
    )(f)
    return click.option(
        "--se",
        type=click.Choice(["model", "robust"]),
        default="model",
        show_default=True,
        help="Standard errors from the model (the inverse information) or robust to a "
        "misspecified variance (a sandwich; see --hc, --cluster).",
    )(f)


def covariance(se: str, hc: str | None, cluster: str | None, l2: float = 0.0) -> str:
    """The Config's covariance from --se, --hc and --cluster (mlfit.solvers.sandwich)."""
    if (
        cluster
        and se == "model"
        and click.get_current_context().get_parameter_source("se")
        == click.core.ParameterSource.COMMANDLINE
    ):
        raise click.UsageError("--cluster gives robust standard errors; leave out --se model.")
    if cluster and hc not in (None, "1"):
        raise click.UsageError(
            "--cluster uses HC1's small-sample correction (as statsmodels and "
            "sandwich::vcovCL); leave out --hc."
        )
    if hc is not None and se != "robust" and not cluster:
        raise click.UsageError("--hc sets the robust standard errors: add --se robust.")
    if (cluster or se == "robust") and l2 > 0:
        raise click.UsageError(
            "Penalised fits (--l2) have no standard errors; leave out --se robust / --cluster."
        )
    if cluster:
        return "cluster"
    return "nonrobust" if se == "model" else f"HC{hc or 3}"


def strict_option(f):
    """--strict: non-convergence becomes exit code 5."""
    return click.option(
        "--strict",
        is_flag=True,
        help="Exit with code 5 when the fit does not converge (for Makefiles).",
    )(f)


def max_iter_option(config_cls, what: str = "Maximum Newton iterations."):
    """--max-iter for Newton-type solvers."""
    return click.option(
        "--max-iter",
        type=click.IntRange(min=1),
        default=config_cls.max_iter,
        show_default=True,
        help=what,
    )


def l2_option(config_cls, objective: str, note: str = ""):
    """--l2 LAMBDA: `objective` says what is penalised; the intercept never is."""
    return click.option(
        "--l2",
        type=FiniteFloat(min=0),
        default=config_cls.l2,
        show_default=True,
        metavar="LAMBDA",
        help=f"Penalty {objective}; the intercept is not penalised.{note}",
    )


def chunk_rows_option(what: str, when: str = "automatic for files over 1 GiB", engine=True):
    """--chunk-rows N: out-of-core work, memory bounded by the chunk; with engine (every fit
    that reads chunks), also --engine and --scheduler (engine_options)."""
    option = click.option(
        "--chunk-rows",
        type=click.IntRange(min=1),
        metavar="N",
        help=f"Read at most N rows at a time, {what}, memory bounded by the chunk ({when}).",
    )
    return (lambda f: engine_options(option(f))) if engine else option


def engine_options(f):
    """--engine local|dask and --scheduler ADDRESS: the command runs inside
    mlfit.engine.chosen(), where the runner finds them (and which closes a cluster it
    started); models that cannot run distributed refuse dask there."""
    from mlfit import engine as engines  # no Dask: that is imported only when used

    @functools.wraps(f)
    def run(*args, engine, scheduler, **kwargs):
        ctx = click.get_current_context()
        given = ctx.get_parameter_source("scheduler") == click.core.ParameterSource.COMMANDLINE
        if engine == "local" and scheduler and given:
            raise click.UsageError("--scheduler needs --engine dask.")
        with engines.chosen(engines.EngineChoice(engine, scheduler or None)):
            return f(*args, **kwargs)

    run = click.option(
        "--scheduler",
        metavar="ADDRESS",
        envvar="DASK_SCHEDULER_ADDRESS",
        help="With --engine dask: the scheduler, e.g. tcp://host:8786 (default: "
        "$DASK_SCHEDULER_ADDRESS, else a local cluster with one worker process per core).",
    )(run)
    return click.option(
        "--engine",
        type=click.Choice(engines.ENGINES),
        default="local",
        show_default=True,
        help="Where the work runs: in this process, or on a Dask cluster that reads DATA's "
        "parts on its workers (fits: the models that are sums over rows; needs pip install "
        "'mlfit[dask]').",
    )(run)


def output_options(f):
    """--json, --save/-o, --plot, --quiet/-q."""
    f = click.option("--quiet", "-q", is_flag=True, help="Print only the result and errors.")(f)
    f = click.option(
        "--plot",
        metavar="FILE",
        help="Draw the model's figures to FILE (.png, .svg or .pdf; needs matplotlib: "
        "pip install 'mlfit[plot]').",
    )(f)
    f = click.option(
        "--save",
        "-o",
        metavar="FILE",
        help="Write the fitted model to FILE (JSON; written atomically).",
    )(f)
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout instead of the report.",
    )(f)
