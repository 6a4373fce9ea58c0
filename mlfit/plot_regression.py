"""Regression panels for --plot, as R draws them: plot.lm's four diagnostics (residuals with a
lowess trend, Q-Q, scale-location, leverage with Cook's distance contours) and, for models
without a linear predictor, fitted against observed values and the fitted curve."""

from __future__ import annotations

import numpy as np

#: More points than this are rasterized in SVG and PDF.
VECTOR_POINTS = 2000
_N_LABELLED = 3  # R's id.n: the most extreme points are labelled with their row numbers
_COOK_LEVELS = (0.5, 1.0)


# --- regression diagnostics (R's plot.lm, which = 1, 2, 3, 5) ------------------------------


def diagnostics(axes, data: dict) -> None:
    d = data["diagnostics"]
    glm = bool(data.get("glm"))
    rows = data.get("rows")
    rows = None if rows is None else np.asarray(rows)
    x = np.asarray(d["predicted"], dtype=float)
    xlabel = "Predicted values" if glm else "Fitted values"
    std_label = "Std. deviance resid." if glm else "Standardized residuals"
    rs = np.asarray(d["std_deviance_residuals"], dtype=float)

    ax = axes[0]
    r = np.asarray(d["residuals"], dtype=float)
    keep = np.isfinite(x) & np.isfinite(r)
    points(ax, x[keep], r[keep])
    ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1)
    _smooth_line(ax, x[keep], r[keep])
    _label_extremes(ax, x[keep], r[keep], np.abs(r[keep]), _subset(rows, keep))
    ax.set(title="Residuals vs Fitted", xlabel=xlabel, ylabel="Residuals")

    keep = np.isfinite(rs)
    _qq(axes[1], rs[keep], _subset(rows, keep), std_label)

    ax = axes[2]
    keep = np.isfinite(x) & np.isfinite(rs)
    root = np.sqrt(np.abs(rs[keep]))
    points(ax, x[keep], root)
    _smooth_line(ax, x[keep], root)
    _label_extremes(ax, x[keep], root, root, _subset(rows, keep))
    ax.set(title="Scale-Location", xlabel=xlabel, ylabel=f"\u221a|{std_label}|")

    _leverage(axes[3], d, rows, "Std. Pearson resid." if glm else "Standardized residuals")


def _qq(ax, rs: np.ndarray, rows: np.ndarray | None, ylabel: str) -> None:
    """Normal Q-Q plot of the standardized residuals with R's qqline (through the quartiles)."""
    from statistics import NormalDist

    normal = NormalDist()
    n = len(rs)
    order = np.argsort(rs, kind="stable")
    a = 3.0 / 8.0 if n <= 10 else 0.5  # R's ppoints
    probabilities = (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)
    theoretical = np.array([normal.inv_cdf(p) for p in probabilities.tolist()])
    sample = rs[order]
    points(ax, theoretical, sample)
    if n >= 2:
        y1, y2 = np.quantile(rs, [0.25, 0.75])
        x1, x2 = normal.inv_cdf(0.25), normal.inv_cdf(0.75)
        slope = (y2 - y1) / (x2 - x1)
        ax.axline((x1, y1), slope=slope, color="0.5", linestyle="--", linewidth=1)
    _label_extremes(ax, theoretical, sample, np.abs(sample), _subset(rows, order))
    ax.set(title="Q-Q Residuals", xlabel="Theoretical Quantiles", ylabel=ylabel)


def _leverage(ax, d: dict, rows: np.ndarray | None, ylabel: str) -> None:
    """Standardized Pearson residuals vs leverage, with Cook's distance contours 0.5 and 1."""
    h = np.asarray(d["leverage"], dtype=float)
    rp = np.asarray(d["std_pearson_residuals"], dtype=float)
    cooks = np.asarray(d["cooks_distance"], dtype=float)
    k = int(d["n_params"])
    keep = np.isfinite(h) & np.isfinite(rp)
    h, rp, cooks = h[keep], rp[keep], cooks[keep]
    points(ax, h, rp)
    ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1)
    ax.axvline(0.0, color="0.5", linestyle=":", linewidth=1)
    ax.set(title="Residuals vs Leverage", xlabel="Leverage", ylabel=ylabel)
    if not len(h):
        return
    _label_extremes(ax, h, rp, np.nan_to_num(cooks, nan=-1.0), _subset(rows, keep))
    h_max = float(h.max())
    if k == 0 or h_max <= 0.0:
        return
    # Fix the limits to the points first, as R does, so the contours do not stretch them.
    lo, hi = float(rp.min()), float(rp.max())
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    ax.set_ylim(lo - pad, hi + pad)
    right = min(1.0, 1.08 * h_max)
    ax.set_xlim(-0.02 * right, right)
    hh = np.linspace(h_max / 100.0, right, 101)
    for i, level in enumerate(_COOK_LEVELS):
        curve = np.sqrt(level * k * (1.0 - hh) / hh)
        label = "Cook's distance" if i == 0 else None
        ax.plot(hh, curve, color="red", linestyle="--", linewidth=1, label=label)
        ax.plot(hh, -curve, color="red", linestyle="--", linewidth=1)
        for end, va in ((curve[-1], "bottom"), (-curve[-1], "top")):
            if lo - pad < end < hi + pad:  # R labels the contours at the right edge
                ax.annotate(
                    f"{level:g}", (hh[-1], end), color="red", fontsize="x-small", ha="right", va=va
                )
    ax.legend(loc="lower left", fontsize="small", frameon=False)


def points(ax, x: np.ndarray, y: np.ndarray) -> None:
    """Open circles as R draws them; many of them as an embedded image in SVG and PDF, which
    would otherwise hold one vector marker per row (megabytes for the sample of 10,000).
    No points (all standardized residuals NaN: zero dispersion, leverage 1) say so."""
    if not len(x):
        ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center", color="0.4")
    ax.plot(
        x,
        y,
        linestyle="none",
        marker="o",
        markersize=3,
        markerfacecolor="none",
        alpha=0.7,
        rasterized=len(x) > VECTOR_POINTS,
    )


def _smooth_line(ax, x: np.ndarray, y: np.ndarray) -> None:
    """The trend line of R's panels: lowess (span 2/3, 3 robustness iterations)."""
    if len(x) < 3:
        return
    grid, trend = _lowess(x, y)
    ax.plot(grid, trend, color="red", linewidth=1)


def _lowess(
    x: np.ndarray, y: np.ndarray, span: float = 2 / 3, iterations: int = 3, points: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Cleveland's lowess at up to `points` of the sorted x, interpolated between them (R's
    delta): local linear fits with tricube weights over the nearest span * n rows, then
    bisquare weights against the outliers. Cost about iterations * points * n."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    n = len(xs)
    q = min(n, max(2, int(span * n + 1e-7)))  # as R's lowess
    grid = xs[np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(np.intp))]
    robust = np.ones(n)
    for step in range(iterations + 1):
        trend = np.array([_local_fit(xs, ys, robust, x0, q) for x0 in grid.tolist()])
        if step == iterations:
            break
        residuals = ys - np.interp(xs, grid, trend)
        s = float(np.median(np.abs(residuals)))
        if s <= 0.0:
            break
        u = np.clip(residuals / (6.0 * s), -1.0, 1.0)
        robust = (1.0 - u * u) ** 2
    return grid, trend


def _local_fit(x: np.ndarray, y: np.ndarray, robust: np.ndarray, x0: float, q: int) -> float:
    """The weighted straight-line fit at x0 over the q rows nearest to it."""
    distance = np.abs(x - x0)
    radius = float(np.partition(distance, q - 1)[q - 1])
    if radius > 0.0:
        w = np.clip(1.0 - (distance / radius) ** 3, 0.0, None) ** 3 * robust
    else:  # q or more rows at x0 itself
        w = (distance == 0.0) * robust
    total = float(w.sum())
    if total <= 0.0:
        return float(np.median(y[distance <= radius]))
    mx = float(w @ x) / total
    my = float(w @ y) / total
    sxx = float(w @ (x - mx) ** 2)
    if sxx <= 1e-12 * max(1.0, radius) ** 2 * total:  # no spread in x: the weighted mean
        return my
    return my + (x0 - mx) * float(w @ ((x - mx) * (y - my))) / sxx


def _subset(rows: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
    return None if rows is None else rows[index]


def _label_extremes(ax, x, y, score, rows: np.ndarray | None) -> None:
    """Label the points of the largest `score` with their row numbers, as R's id.n."""
    if rows is None or not len(score):
        return
    for i in np.argsort(-score, kind="stable")[:_N_LABELLED].tolist():
        ax.annotate(
            str(rows[i]),
            (x[i], y[i]),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize="x-small",
        )


# --- regression without a linear model: fitted against observed, a fitted curve ---------------


def fitted(axes, data: dict) -> None:
    """Fitted against observed values (on the diagonal when perfect); second panel, for one
    feature the fitted curve over the data, else the residuals against the fitted values."""
    d = data["fit"]
    observed = np.asarray(d["observed"], dtype=float)
    fitted = np.asarray(d["fitted"], dtype=float)
    ax = axes[0]
    points(ax, observed, fitted)
    if len(observed):
        lo = float(min(observed.min(), fitted.min()))
        hi = float(max(observed.max(), fitted.max()))
        ax.plot([lo, hi], [lo, hi], color="0.5", linestyle="--", linewidth=1)
    ax.set(title="Fitted vs Observed", xlabel="Observed values", ylabel="Fitted values")
    ax = axes[1]
    curve = d.get("curve")
    if curve is None:
        points(ax, fitted, observed - fitted)
        ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1)
        ax.set(title="Residuals vs Fitted", xlabel="Fitted values", ylabel="Residuals")
        return
    points(ax, np.asarray(curve["x"], dtype=float), observed)
    ax.plot(curve["grid"], curve["values"], color="C1", linewidth=1.5)
    ax.set(title="Fitted curve", xlabel=curve.get("xlabel", "x"), ylabel="Observed values")
