"""`mlfit gmm`: Gaussian mixture models by EM, with model selection by BIC."""

from __future__ import annotations

import click

from mlfit.commands import (
    FiniteFloat,
    chunk_rows_option,
    config_from,
    config_option,
    data_options_with,
    max_iter_option,
    output_options,
    selection,
    strict_option,
)
from mlfit.runner import Output, run_fit
from mlfit.solvers.gmm import Config
from mlfit.solvers.mixture import COVARIANCE_TYPES


class ComponentCounts(click.ParamType):
    """--k 3, --k 1-8 or --k 2,4,6: the numbers of components to try."""

    name = "K"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        ks = set()
        try:
            for part in str(value).split(","):
                low, _, high = part.strip().partition("-")
                ks.update(range(int(low), int(high or low) + 1))
        except ValueError:
            self.fail(f"{value!r} is not a number, a range like 1-8, or a list like 2,4,6.")
        if not ks or min(ks) < 1:
            self.fail(f"{value!r}: the number of components must be at least 1.")
        if len(ks) > 50:
            self.fail(f"{value!r}: at most 50 values of k at once.")
        return tuple(sorted(ks))


class CovarianceTypes(click.ParamType):
    """--covariance full, full,diag or all."""

    name = "TYPE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if parts == ["all"]:
            return COVARIANCE_TYPES
        bad = [p for p in parts if p not in COVARIANCE_TYPES]
        if bad or not parts:
            self.fail(
                f"{value!r}: choose from {', '.join(COVARIANCE_TYPES)}, a comma-separated "
                "list of them, or all."
            )
        return tuple(dict.fromkeys(parts))


def _axes(ctx, param, value):
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if len(names) != 2:
        raise click.BadParameter("give two feature names, e.g. --plot-axes area,price.")
    return names


@click.command("gmm")
@data_options_with(
    "A label column left out of the fit and cross-tabulated against the components, with "
    "the adjusted Rand index (default: none; every column is a feature)."
)
@click.option(
    "--k",
    type=ComponentCounts(),
    default="-".join(map(str, (Config.k[0], Config.k[-1]))),
    show_default=True,
    help="Numbers of components to try: 3, a range 1-8, or a list 2,4,6.",
)
@click.option(
    "--covariance",
    type=CovarianceTypes(),
    default=",".join(Config.covariance),
    show_default=True,
    help="Covariance structures to try: full, diag, spherical, tied, a list, or all. With "
    "several k or types, the lowest BIC wins.",
)
@config_option(
    Config,
    "n_init",
    "k-means++ starts per model (one start from Ward's clustering is always added).",
    type=click.IntRange(min=1),
)
@config_option(
    Config,
    "reg_covar",
    "Added to each covariance diagonal, times that feature's variance (unit-free).",
    type=FiniteFloat(min=0),
)
@max_iter_option(Config, "Maximum EM iterations per start.")
@config_option(
    Config,
    "tol",
    "Stop when the mean log-likelihood per row changes by less than this.",
    type=FiniteFloat(min=0),
)
@click.option(
    "--seed", type=int, default=Config.seed, show_default=True, help="Seed of the starts."
)
@click.option(
    "--standardize/--no-standardize",
    default=Config.standardize,
    show_default=True,
    help="Fit on standardized features (results are still reported in the original units).",
)
@click.option(
    "--plot-axes",
    metavar="A,B",
    callback=_axes,
    help="--plot: draw the rows on these two features (default: the first two principal "
    "components).",
)
@chunk_rows_option("one pass per EM iteration")
@strict_option
@output_options
def command(
    data, target, features, drop, na, chunk_rows, strict, as_json, save, plot, quiet, **settings
):
    """Gaussian mixtures by EM; components and covariance chosen by BIC.

    Fits a mixture of k Gaussians by expectation-maximisation (log-sum-exp responsibilities,
    densities through Cholesky factors), from several starts per model (k-means++ and Ward's
    clustering), keeping the best solution whose components each hold enough rows to be more
    than a spurious spike. With several --k or --covariance values it fits every
    combination and picks the lowest BIC (BIC = -2 log-likelihood + log(n) parameters; mclust
    reports the opposite sign). Every column is a feature unless --features or --drop say
    otherwise. predict gives the most likely component, --proba the responsibilities, --score
    the log-density and --outliers Q flags rows less likely than the training rows' Q-quantile.

    \b
        mlfit gmm sample_data/clusters.csv
        mlfit gmm sample_data/clusters.csv --k 1-8 --covariance all --json | jq .bic
        mlfit gmm sample_data/flowers.csv -y species --k 3 --n-init 5
        mlfit gmm sample_data/clusters.csv --k 3 -o clusters.model && mlfit predict clusters.model sample_data/clusters.csv --score --outliers 0.01
    """
    config = config_from(Config, settings)
    run_fit(
        "gmm",
        config,
        data,
        selection(target, features, drop, na),
        Output(as_json, save, quiet, plot),
        chunk_rows=chunk_rows,
        strict=strict,
    )
