"""`mlfit kernel`: kernel ridge regression (exact, by descent, or on Nystrom centres)."""

from __future__ import annotations

import click

from mlfit.commands import (
    FiniteFloat,
    config_from,
    config_option,
    data_options,
    output_options,
    selection,
    strict_option,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers.kernel import CG_TOL, DEFAULT_CENTERS, DESCENT_TOL, EXACT_MAX_ROWS, Config
from mlfit.solvers.kernels import KERNELS


@click.command("kernel")
@data_options
@config_option(
    Config,
    "kernel",
    "linear x'z, poly (gamma x'z + coef0)^degree, or rbf exp(-gamma ||x - z||^2).",
    type=click.Choice(KERNELS),
)
@config_option(Config, "degree", "Degree of the poly kernel.", type=click.IntRange(min=1))
@click.option(
    "--gamma",
    type=FiniteFloat(min=0, min_open=True),
    default=Config.gamma,
    help="poly and rbf: the scale of x'z or ||x - z||^2; rbf's gamma is 1 / (2 sigma^2) "
    "[default: 1 / number of features].",
)
@config_option(
    Config,
    "coef0",
    "poly: the constant added to gamma x'z (the seeds' c when gamma is 1); negative "
    "values do not give a valid kernel.",
    type=FiniteFloat(),
)
@click.option(
    "--l2",
    type=FiniteFloat(min=0, min_open=True),
    default=Config.l2,
    show_default=True,
    metavar="LAMBDA",
    help="Solve (K + LAMBDA I) beta = y: KernelRidge's alpha.",
)
@config_option(
    Config,
    "method",
    "cholesky: the exact solve (conjugate gradients on centres); descent: the seeds' "
    "gradient descent on beta (exact kernel only).",
    type=click.Choice(["cholesky", "descent"]),
)
@click.option(
    "--centers",
    type=click.IntRange(min=1),
    default=Config.centers,
    metavar="M",
    help=f"Use M Nystrom centres, sampled from the rows with --seed; M at least the rows: "
    f"the exact kernel (default: exact up to {EXACT_MAX_ROWS:,} rows, else "
    f"{DEFAULT_CENTERS:,} centres).",
)
@config_option(
    Config,
    "lr",
    "descent: the step, times 1 / (largest eigenvalue of K + LAMBDA I); below 2.",
    type=FiniteFloat(min=0, max=2, min_open=True, max_open=True),
)
@config_option(
    Config,
    "max_iter",
    "Maximum iterations of descent or conjugate gradients.",
    type=click.IntRange(min=1),
)
@click.option(
    "--tol",
    type=FiniteFloat(min=0),
    default=Config.tol,
    help="Stop when the residual of the linear system falls below tol times its start "
    f"[default: {DESCENT_TOL:g} for descent, {CG_TOL:g} for conjugate gradients].",
)
@config_option(Config, "seed", "Seed for sampling the centres.", type=int)
@click.option(
    "--standardize/--no-standardize",
    default=Config.standardize,
    show_default=True,
    help="Scale each feature to mean 0 and standard deviation 1 before the kernel.",
)
@click.option(
    "--center-target/--no-center-target",
    default=Config.center_target,
    show_default=True,
    help="Fit y minus its mean and add the mean back; --no-center-target solves "
    "KernelRidge's system on y itself (no intercept).",
)
@strict_option
@output_options
def command(data, target, features, drop, na, strict, as_json, save, plot, quiet, **settings):
    """Kernel ridge regression: h(z) = sum_i beta_i K(x_i, z).

    beta solves (K + LAMBDA I) beta = y - mean(y) by Cholesky, as scikit-learn's
    KernelRidge(alpha=LAMBDA) on the centred target; --method descent runs the seeds'
    gradient descent beta += a (y - (K + LAMBDA I) beta) instead. The exact kernel needs n^2
    memory: above 20,000 rows, or with --centers M, the model uses M Nystrom centres and
    Falkon's preconditioned conjugate gradients (memory O(n M) at most, in row blocks). The
    linear kernel is solved as ridge regression at any size. Text columns are one-hot with
    every level kept (each pair of categories equally far apart), then standardized with
    the rest. A poly kernel with negative --coef0 is reported as not a valid kernel when
    its Gram matrix is not positive semi-definite.

    \b
        mlfit kernel sample_data/houses.csv -y price
        mlfit kernel sample_data/houses.csv -y price --kernel poly --degree 2 --l2 0.1
        mlfit kernel big.csv -y y --centers 2000 --json | jq .convergence.iterations
    """
    run_fit(
        "kernel",
        config_from(Config, settings),
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        strict=strict,
    )
