"""The QR side of a GLM fit: the final weighted least-squares step (more digits than a
Cholesky factor of X'WX), IRLS by QR for designs too ill-conditioned for Newton, and the
aliased columns a singular information leaves out."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import numpy as np

from mlfit import engine
from mlfit.contract import FitResult, Step, Table
from mlfit.errors import FitError
from mlfit.solvers.lsq import (
    LeastSquares,
    aliased_columns,
    aliased_warning,
    append_rows,
    qr_r,
    solve_r,
)
from mlfit.solvers.newton_passes import final_pass
from mlfit.solvers.optimize import MAX_HALVINGS, Optimum, cholesky

#: Below this scaled condition number of the information, its Cholesky factor gives the
#: standard errors to about 1e-14 and the QR step is skipped (the benchmark data: about 3.5).
CHOLESKY_COND = 50.0
#: As normal-eq: a column is aliased when |R_jj| < RANK_TOL * its norm.
RANK_TOL = 1e-11
#: The final least-squares step is refined in extended precision while n * p is at most this.
REFINE_MAX_CELLS = 1_000_000


def needs_qr(opt: Optimum) -> bool:
    """Whether the Cholesky factor of the information (condition number squared) would cost
    digits: unless its scaled condition number is below CHOLESKY_COND (errors about
    cond * eps, 1e-14 relative), the final step and standard errors come from a QR."""
    if opt.info is None:  # IRLS by QR: the information was never factored
        return True
    L, _ = cholesky(opt.info)
    return np.linalg.cond(L) ** 2 > CHOLESKY_COND


def weighted_least_squares(fam, blocks, beta, refine: bool) -> LeastSquares:
    """The IRLS step from beta solved by QR: R of sqrt(W) [A | z] over cache-sized row blocks
    (TSQR), refined in extended precision in memory.  At the Newton estimate this returns it
    again, to the last digits, with (A'WA)^-1 from R rather than from a Cholesky factor of
    A'WA, whose condition number is the square of the design's."""
    weighted = partial(_weighted_r, fam, beta, refine)
    R_aug, rows = engine.over_partitions(blocks, weighted, _stack_weighted)
    in_memory = (rows[0][0], None, rows[0][1]) if refine and len(rows) == 1 else None
    return solve_r(R_aug, RANK_TOL, None, in_memory)


def _stack_weighted(a: tuple, b: tuple) -> tuple:
    return qr_r(np.vstack([a[0], b[0]])), a[1] + b[1]


def _weighted_r(fam, beta, refine: bool, blocks) -> tuple:
    """R of sqrt(W) [A | z] over the blocks (TSQR), and the weighted rows when refine."""
    R_aug, rows = None, []
    for A, y, offset, weights in blocks:
        sqrt_w, b = fam.working(y, A @ beta + offset, offset)
        root = np.sqrt(weights)
        sqrt_w, b = sqrt_w * root, b * root
        p = A.shape[1]

        def fill(start, stop, out, A=A, sqrt_w=sqrt_w, b=b, p=p):
            np.multiply(A[start:stop], sqrt_w[start:stop, None], out=out[:, :p])
            out[:, p] = b[start:stop]

        R_aug = append_rows(R_aug, len(b), p + 1, fill)
        if refine:
            rows.append((A * sqrt_w[:, None], b))
    return R_aug, rows


def irls_by_qr(fam, blocks, beta, config, on_progress, in_memory) -> Optimum | None:
    """R's glm.fit: each step the weighted least squares solved by QR, halved until the
    deviance does not rise.  For designs whose X'WX is too ill-conditioned to factor
    (condition number squared: a degree-10 polynomial), at a QR per iteration.  None when
    a step cannot be taken (the information is singular after all)."""
    refine = in_memory and sum(len(b[1]) for b in blocks) * len(beta) <= REFINE_MAX_CELLS
    at = final_pass(fam, blocks, beta)
    history, change = [-2.0 * at["loglik"]], math.nan
    for it in range(1, config.max_iter + 1):
        try:
            ls = weighted_least_squares(fam, blocks, beta, refine)
        except FitError:
            return None
        if ls.aliased.any():
            return None
        t = 1.0
        for _ in range(MAX_HALVINGS):
            trial = beta + t * (ls.coef - beta)
            new = final_pass(fam, blocks, trial)
            if (
                math.isfinite(new["deviance"])
                and new["deviance"]
                <= at["deviance"] * (1 + 8 * np.finfo(float).eps) + np.finfo(float).tiny
            ):
                break
            t *= 0.5
        else:
            return None
        change = abs(at["deviance"] - new["deviance"]) / (abs(new["deviance"]) + 0.1)
        beta, at = trial, new
        history.append(-2.0 * at["loglik"])
        on_progress(Step(it, config.max_iter, -at["loglik"]))
        if change <= config.tol:
            return Optimum(beta, at["loglik"], np.zeros_like(beta), None, it, True, history, change)
    return Optimum(
        beta, at["loglik"], np.zeros_like(beta), None, config.max_iter, False, history, change
    )


def find_aliased(blocks, p: int) -> np.ndarray:
    """Columns of A in the span of the columns before them, as normal-eq and R's glm find
    them: from a QR of the unweighted design (positive weights do not change its rank)."""
    R = engine.over_partitions(blocks, partial(_design_r, p), _stack_r)
    R = np.triu(R[:p])
    return aliased_columns(R, RANK_TOL)


def _design_r(p: int, blocks) -> np.ndarray | None:
    """R of the blocks' unweighted design (TSQR over cache-sized row blocks)."""
    R = None
    for A, *_ in blocks:

        def fill(start, stop, out, A=A):
            out[:] = A[start:stop]

        R = append_rows(R, len(A), p, fill)
    return R


def _stack_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """R of two partitions' rows from theirs (TSQR)."""
    return qr_r(np.vstack([a, b]))


def with_aliased(result: FitResult, aliased: np.ndarray, labels: list[str], config) -> FitResult:
    """A fit of the estimable columns, widened back to every column: the aliased ones have
    no estimate (null) and a coefficient of 0 in predictions, as in normal-eq."""
    keep = np.flatnonzero(~aliased)
    table = result.tables["coefficients"]
    widened = {}
    for key in table:
        full = np.full(len(labels), np.nan)
        full[keep] = np.asarray(table[key], dtype=float)
        widened[key] = full
    widened["aliased"] = aliased
    result.tables["coefficients"] = Table(labels, widened)
    coef = np.where(aliased, 0.0, np.nan_to_num(widened["estimate"]))
    result.params = replace(
        result.params,
        intercept=float(coef[0]) if config.intercept else None,
        coef=coef[1:] if config.intercept else coef,
    )
    result.warnings.insert(0, aliased_warning(labels, aliased))
    result.info["aliased_index"] = np.flatnonzero(aliased).tolist()
    cov = np.full((len(labels), len(labels)), np.nan)
    cov[np.ix_(keep, keep)] = result.internals["unscaled_cov"]
    result.internals["unscaled_cov"] = cov
    return result
