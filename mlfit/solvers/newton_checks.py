"""Whether a GLM's maximum-likelihood estimate exists: separation, zero-count patterns under
a log link, and maxima on the edge of a link's region, each a FitError naming the fix."""

from __future__ import annotations

import math

from mlfit.errors import FitError
from mlfit.solvers.newton_passes import classes, final_pass
from mlfit.solvers.newton_qr import weighted_least_squares
from mlfit.solvers.optimize import Optimum, cholesky, solve_cholesky
from mlfit.solvers.separation import (
    ColumnSummary,
    separating_column,
    separation_exists,
    zero_count_column,
    zero_counts_unbounded,
)


def check_link_region(fam, blocks, opt: Optimum, target: str) -> None:
    """Fisher scoring stopped short, and its next full step would leave the region where the
    link and family are defined: the maximum is on that region's edge (a fitted mean at 0,
    say, for an identity link), not an estimate with standard errors."""
    try:
        if opt.info is None:  # IRLS by QR: its next step
            after = weighted_least_squares(fam, blocks, opt.beta, False).coef
        else:
            after = opt.beta + solve_cholesky(*cholesky(opt.info), opt.gradient)
    except FitError:  # SingularInformation included
        return
    if not math.isfinite(final_pass(fam, blocks, after)["loglik"]):
        raise FitError(
            f"The likelihood of the {fam.name} family with the {fam.link} link is largest on "
            f"the edge of the region where the link gives valid means of '{target}' (a "
            "fitted mean at its bound), so there is no interior estimate. Choose another "
            f"--link (the default is {fam.links[0]})."
        )


def check_separation(fam, blocks, config, in_memory: bool, target: str) -> None:
    """The information became singular: in memory, a Bernoulli fit says so when the classes
    are separated (the estimates are infinite), rather than blaming a column."""
    if (
        fam.name == "bernoulli"
        and config.l2 == 0
        and in_memory
        and separation_exists(*classes(blocks[0][0], blocks[0][1]))
    ):
        raise FitError(
            f"Quasi-complete separation: a combination of columns predicts "
            f"{target} exactly for some rows, so the maximum-likelihood estimates "
            "are infinite (the Hessian became singular). Drop the separating "
            "columns, merge levels, or use --l2."
        ) from None


def _log_counts(fam) -> bool:
    """Counts with a log link: a zero-count pattern can drive a coefficient to -infinity."""
    return fam.domain == "counts" and fam.link == "log"


def check_single_columns(fam, columns: ColumnSummary, labels, intercept, target) -> None:
    """Before fitting: one column that alone makes an estimate infinite is named up front."""
    if fam.name == "bernoulli":
        cause = separating_column(columns, labels, intercept)
        if cause:
            raise FitError(
                f"Perfect or quasi-complete separation: {cause} ({target} = 1). The "
                "maximum-likelihood estimates are infinite. Drop or merge that column, "
                "or use --l2."
            )
    if _log_counts(fam):
        name = zero_count_column(columns, labels)
        if name:
            raise FitError(
                f"Every row where '{name}' is non-zero has {target} = 0, so its "
                "coefficient goes to minus infinity (the maximum-likelihood estimate "
                "does not exist). Drop or merge that column, or use --l2."
            )


def check_boundary(fam, blocks, final, opt, target, in_memory):
    """Estimates on the boundary (infinite) must not be printed as if they were estimates."""
    if fam.name == "bernoulli" and (final["extreme"] or not opt.converged):
        confirmed = True
        if in_memory:
            confirmed = separation_exists(*classes(blocks[0][0], blocks[0][1]))
        if confirmed:
            raise FitError(
                f"Quasi-complete separation: a combination of columns predicts {target} "
                f"exactly for {final['extreme']} rows, so the maximum-likelihood "
                "estimates are infinite. Drop the separating columns, merge levels, or "
                "use --l2."
            )
    if _log_counts(fam) and final["vanishing"]:
        confirmed = True
        if in_memory:
            A, y = blocks[0][0], blocks[0][1]
            confirmed = zero_counts_unbounded(A, y)
        if confirmed:
            raise FitError(
                f"The fitted mean is 0 for {final['vanishing']} rows with {target} = 0: "
                "a combination of columns (often a level with only zero counts) drives "
                "the coefficients to infinity, so the maximum-likelihood estimate does "
                "not exist. Drop or merge those columns, or use --l2."
            )
