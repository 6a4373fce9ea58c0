"""Figures for --plot: regression diagnostics, loss curves, ROC, calibration, BIC model selection
and mixture components, in one file.

matplotlib is an optional extra (mlfit[plot]); it is imported only when a figure is drawn, and
drawn without pyplot on an Agg canvas, so no display and no global backend are involved.
"""

from __future__ import annotations

import math
import os

import numpy as np

from mlfit.errors import UsageError
from mlfit.files import atomic_write
from mlfit.metrics import roc_auc

#: Big or streamed inputs plot a seeded sample of this many rows.
SAMPLE_ROWS = 10_000
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: Pixels per inch of PNG files, and of the rasterized point clouds in SVG and PDF.
DPI = {"png": 100, "svg": 200, "pdf": 200}
_PANEL_INCHES = (3.6, 3.0)  # the axes of one panel
_MARGINS = {"left": 0.8, "right": 0.25, "bottom": 0.55, "top": 0.6}  # inches
_GAPS = (0.85, 0.75)  # inches between panels: tick and axis labels, titles
_NOTE_INCHES = 0.25
#: Leave out the dates matplotlib would write, so the same figure gives the same bytes.
_METADATA = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
#: SVG element ids are hashed with this salt (a random one otherwise); text drawn as paths so
#: the file looks the same without the fonts; tick labels beyond 1e4 (or under 1e-3) in
#: scientific notation, so they stay short enough for the fixed margins.
_RC = {"svg.hashsalt": "mlfit", "svg.fonttype": "path", "axes.formatter.limits": (-3, 4)}
_VECTOR_POINTS = 2000  # more points than this are rasterized in SVG and PDF
_N_LABELLED = 3  # R's id.n: the most extreme points are labelled with their row numbers
_COOK_LEVELS = (0.5, 1.0)
_CALIBRATION_BINS = 10
_SIGMAS = ((1.0, "-"), (2.0, "--"))  # the ellipses of a mixture component: 1 and 2 sigma


def plot_format(path: str) -> str:
    """The matplotlib format for `path` from its extension ('png', 'svg' or 'pdf')."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        known = ", ".join(FORMATS)
        raise UsageError(f"Cannot plot to '{path}': give a file name ending in {known}.")
    return FORMATS[extension]


def require_matplotlib() -> None:
    """Raise UsageError with the install command when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'mlfit[plot]'") from None


def sample_rows(n: int, seed: int, limit: int | None = None) -> np.ndarray | None:
    """Sorted indices of `limit` (default SAMPLE_ROWS) of `n` rows drawn without replacement,
    or None when n <= limit (plot every row). The same (n, seed, limit) gives the same rows."""
    limit = SAMPLE_ROWS if limit is None else limit
    if n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def draw(path: str, kinds: list[str], data: dict, title: str, note: str | None = None) -> None:
    """Write one figure with the panels of every kind in `kinds` to `path`, atomically.

    data keys by kind:
      diagnostics: "diagnostics" (the dict of mlfit.diagnostics.glm_diagnostics), "glm" (bool:
        R's plot.glm labels), optional "rows" (the row numbers, 1-based, shown next to the
        three most extreme points; no labels without it);
      loss: "history" (loss per iteration), optional "validation_history";
      accuracy: "validation_accuracy" (per iteration);
      roc, calibration: "classes" (K labels), "train" = (codes (n,) in 0..K-1, P (n, K)),
        optional "holdout" likewise (drawn dashed);
      bic: "bic" = {"ks": [k, ...] (m,), "types": [covariance type, ...] (t,), "values": (t, m)
        BIC of types[i] at ks[j] (None where it could not be fitted), optional "chosen":
        [k, type]};
      clusters: "clusters" = {"points": (n, 2) the rows on two axes, "labels": (n,) component
        of each row in 0..K-1, "means": (K, 2), "covariances": (K, 2, 2), "weights": (K,),
        optional "axis_labels": [x label, y label]}, all in the coordinates of the points.
      fit: "fit" = {"observed": (n,), "fitted": (n,), optional "curve": {"x": (n,) the one
        feature, "grid": (m,), "values": (m,) the fitted curve on the grid, "xlabel"}}.
    note: printed small at the bottom (say, that the rows are a sample).
    """
    unknown = [kind for kind in kinds if kind not in _PANELS]
    if unknown or not kinds:
        raise ValueError(f"Plot kinds {kinds!r}: expected some of {sorted(_PANELS)}")
    fmt = plot_format(path)
    require_matplotlib()
    import matplotlib
    import matplotlib.style

    total = sum(_PANELS[kind][0] for kind in kinds)
    ncols = {1: 1, 2: 2, 3: 3, 4: 2}.get(total, 3)
    nrows = math.ceil(total / ncols)
    # The default style, not the user's matplotlibrc: the same figure on every machine.
    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        fig, axes = _figure(nrows, ncols, title, note)
        for ax in axes[total:]:
            ax.remove()
        for kind in kinds:
            count, panel = _PANELS[kind]
            panel(axes[:count], data)
            del axes[:count]
        with atomic_write(path, binary=True) as f:
            fig.savefig(f, format=fmt, dpi=DPI[fmt], metadata=_METADATA[fmt])


def _figure(nrows: int, ncols: int, title: str, note: str | None):
    """A figure of nrows x ncols panels on an Agg canvas (no pyplot, no global backend), with
    fixed margins in inches: a layout engine would double the drawing time, and these panels
    have short tick labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w, h = _PANEL_INCHES
    bottom = _MARGINS["bottom"] + (_NOTE_INCHES if note else 0.0)
    width = _MARGINS["left"] + ncols * w + (ncols - 1) * _GAPS[0] + _MARGINS["right"]
    height = bottom + nrows * h + (nrows - 1) * _GAPS[1] + _MARGINS["top"]
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    grid = {
        "left": _MARGINS["left"] / width,
        "right": 1.0 - _MARGINS["right"] / width,
        "bottom": bottom / height,
        "top": 1.0 - _MARGINS["top"] / height,
        "wspace": _GAPS[0] / w,
        "hspace": _GAPS[1] / h,
    }
    axes = list(fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=grid).ravel())
    fig.suptitle(title, y=1.0 - 0.12 / height, va="top")
    if note:
        fig.text(0.5, 0.1 / height, note, ha="center", va="bottom", fontsize="small", color="0.35")
    return fig, axes


# --- regression diagnostics (R's plot.lm, which = 1, 2, 3, 5) ------------------------------


def _diagnostics(axes, data: dict) -> None:
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
    _points(ax, x[keep], r[keep])
    ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1)
    _smooth_line(ax, x[keep], r[keep])
    _label_extremes(ax, x[keep], r[keep], np.abs(r[keep]), _subset(rows, keep))
    ax.set(title="Residuals vs Fitted", xlabel=xlabel, ylabel="Residuals")

    keep = np.isfinite(rs)
    _qq(axes[1], rs[keep], _subset(rows, keep), std_label)

    ax = axes[2]
    keep = np.isfinite(x) & np.isfinite(rs)
    root = np.sqrt(np.abs(rs[keep]))
    _points(ax, x[keep], root)
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
    _points(ax, theoretical, sample)
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
    _points(ax, h, rp)
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


def _points(ax, x: np.ndarray, y: np.ndarray) -> None:
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
        rasterized=len(x) > _VECTOR_POINTS,
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


# --- loss per iteration ----------------------------------------------------------------------


def _loss(axes, data: dict) -> None:
    from matplotlib.ticker import MaxNLocator

    ax = axes[0]
    curves = [("training", np.asarray(data["history"], dtype=float), "-")]
    if data.get("validation_history") is not None:
        curves.append(("validation", np.asarray(data["validation_history"], dtype=float), "--"))
    for label, values, style in curves:
        marker = "o" if len(values) == 1 else None  # a line through one point is invisible
        ax.plot(np.arange(1, len(values) + 1), values, linestyle=style, marker=marker, label=label)
    if _log_axis(np.concatenate([values for _, values, _ in curves])):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set(title="Loss", xlabel="iteration", ylabel="loss")
    if len(curves) > 1:
        ax.legend(fontsize="small")


def _accuracy(axes, data: dict) -> None:
    """A classifier's validation accuracy per epoch."""
    from matplotlib.ticker import MaxNLocator

    ax = axes[0]
    values = np.asarray(data["validation_accuracy"], dtype=float)
    ax.plot(np.arange(1, len(values) + 1), values, marker="o" if len(values) == 1 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set(title="Validation accuracy", xlabel="iteration", ylabel="accuracy")


def _log_axis(values: np.ndarray) -> bool:
    """A log axis for losses that are all positive and span more than 2 decades."""
    finite = len(values) and np.all(np.isfinite(values)) and values.min() > 0
    return bool(finite and values.max() > 100.0 * values.min())


# --- classifiers: ROC and calibration --------------------------------------------------------


def _sets(data: dict):
    """(name, codes, P, line style) for the training rows and, if given, the holdout rows."""
    out = [("training", *data["train"], "-")]
    if data.get("holdout") is not None:
        out.append(("holdout", *data["holdout"], "--"))
    return [(name, np.asarray(c), np.asarray(P, dtype=float), style) for name, c, P, style in out]


def _targets(classes: list) -> list[int]:
    """The classes drawn: binary the positive class (code 1), else every class vs the rest."""
    return [1] if len(classes) == 2 else list(range(len(classes)))


def _auc_text(auc: float) -> str:
    return f"{auc:.3f}" if math.isfinite(auc) else "n/a (one class)"


def _legend(ax, classes: list, sets: list, loc: str, short: bool) -> None:
    """Many classes: one entry per class (colour), line styles for training and holdout once;
    past 6 classes smaller, and in two columns if the labels are short."""
    if len(classes) > 2 and len(sets) > 1:
        for name, *_, style in sets:
            ax.plot([], [], color="0.3", linestyle=style, label=name)
    many = len(classes) > 6
    ncols = 2 if many and short else 1
    ax.legend(loc=loc, fontsize="xx-small" if many else "x-small", ncols=ncols)


def _roc(axes, data: dict) -> None:
    ax = axes[0]
    classes = list(data["classes"])
    sets = _sets(data)
    for i, c in enumerate(_targets(classes)):
        curves = []
        for name, codes, P, style in sets:
            positive = codes == c
            fpr, tpr = _roc_curve(positive, P[:, c])
            auc = roc_auc(positive, P[:, c]) if len(fpr) else math.nan
            curves.append((name, fpr, tpr, auc, style))
        if len(classes) > 2:  # one entry per class: "b: AUC 0.81, holdout 0.78"
            text = ", ".join(
                f"{'AUC' if j == 0 else name} {_auc_text(auc)}"
                for j, (name, _, _, auc, _) in enumerate(curves)
            )
            labels = [f"{classes[c]}: {text}"] + [None] * (len(curves) - 1)
        else:
            labels = [f"{name} (AUC {_auc_text(auc)})" for name, _, _, auc, _ in curves]
        for (_, fpr, tpr, _, style), label in zip(curves, labels):
            ax.plot(fpr, tpr, color=f"C{i % 10}", linestyle=style, label=label)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    title = f"ROC (positive class {classes[1]})" if len(classes) == 2 else "ROC, one vs rest"
    ax.set(title=title, xlabel="false positive rate", ylabel="true positive rate")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal")
    _legend(ax, classes, sets, "lower right", short=False)


def _roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold from (0, 0);
    empty when one of the two classes is absent."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(-score, kind="stable")
    s, p = score[order], positive[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last row of each run of ties
    tp, fp = np.cumsum(p)[ends], np.cumsum(~p)[ends]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def _calibration(axes, data: dict) -> None:
    ax = axes[0]
    classes = list(data["classes"])
    sets = _sets(data)
    for i, c in enumerate(_targets(classes)):
        for j, (name, codes, P, style) in enumerate(sets):
            p = np.clip(P[:, c], 0.0, 1.0)
            bins = np.minimum((p * _CALIBRATION_BINS).astype(np.intp), _CALIBRATION_BINS - 1)
            count = np.bincount(bins, minlength=_CALIBRATION_BINS)
            mean_p = np.bincount(bins, weights=p, minlength=_CALIBRATION_BINS)
            observed = np.bincount(bins, weights=codes == c, minlength=_CALIBRATION_BINS)
            full = count > 0
            ax.plot(
                mean_p[full] / count[full],
                observed[full] / count[full],
                color=f"C{i % 10}",
                linestyle=style,
                marker="o",
                markersize=3,
                label=name if len(classes) == 2 else (str(classes[c]) if j == 0 else None),
            )
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="perfectly calibrated")
    title = "Calibration" + (f" (class {classes[1]})" if len(classes) == 2 else "")
    ax.set(title=title, xlabel="mean predicted probability", ylabel="observed frequency")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal")
    _legend(ax, classes, sets, "upper left", short=True)


# --- mixture models: BIC per number of components, components on two axes ------------------


def _bic(axes, data: dict) -> None:
    from matplotlib.ticker import MaxNLocator

    ax = axes[0]
    bic = data["bic"]
    ks = [int(k) for k in bic["ks"]]
    types = [str(t) for t in bic["types"]]
    values = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in bic["values"]], dtype=float
    ).reshape(len(types), len(ks))
    values[~np.isfinite(values)] = math.nan  # None, or a fit that gave inf: not drawn
    x = np.array(ks, dtype=float)
    for i, name in enumerate(types):
        # NaN leaves a gap in the line: no interpolation across a model that was not fitted
        label = name if np.isfinite(values[i]).any() else f"{name} (not fitted)"
        ax.plot(x, values[i], marker="o", markersize=4, color=f"C{i % 10}", label=label)
    chosen = bic.get("chosen")
    if chosen is not None and int(chosen[0]) in ks and str(chosen[1]) in types:
        j, i = ks.index(int(chosen[0])), types.index(str(chosen[1]))
        if math.isfinite(values[i, j]):
            ax.plot(
                x[j],
                values[i, j],
                linestyle="none",
                marker="o",
                markersize=13,
                markerfacecolor="none",
                markeredgecolor="black",
                markeredgewidth=1.2,
            )
            # below the point, the lowest BIC as a rule, so the lines do not cross the text;
            # near an edge of the panel towards its middle
            where = (ks[j] - min(ks)) / (max(ks) - min(ks)) if len(ks) > 1 else 0.5
            ax.annotate(
                f"chosen: k={ks[j]}, {types[i]}",
                (x[j], values[i, j]),
                xytext=(0, -11),
                textcoords="offset points",
                ha="left" if where < 0.25 else "right" if where > 0.75 else "center",
                va="top",
                fontsize="x-small",
            )
            finite = values[np.isfinite(values)]
            lo, hi = float(finite.min()), float(finite.max())
            span = hi - lo if hi > lo else max(1.0, 0.05 * abs(lo))
            ax.set_ylim(lo - 0.2 * span, hi + 0.08 * span)  # room for the text
    if not np.isfinite(values).any():
        ax.text(0.5, 0.5, "no model could be fitted", transform=ax.transAxes, ha="center")
        ax.set_yticks([])
    if ks:
        ax.set_xlim(min(ks) - 0.5, max(ks) + 0.5)  # one k: the point in the middle, not an edge
    # min_n_ticks=1: otherwise a range with one integer (one k) gets fractional ticks
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set(
        title="BIC by number of components", xlabel="components (k)", ylabel="BIC (lower is better)"
    )
    if types:
        ax.legend(fontsize="x-small", title="covariance", title_fontsize="x-small")


def _clusters(axes, data: dict) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    ax = axes[0]
    c = data["clusters"]
    points = np.asarray(c["points"], dtype=float).reshape(-1, 2)
    labels = np.asarray(c["labels"]).reshape(-1).astype(np.intp)
    means = np.asarray(c["means"], dtype=float).reshape(-1, 2)
    covariances = np.asarray(c["covariances"], dtype=float).reshape(-1, 2, 2)
    weights = np.asarray(c["weights"], dtype=float).reshape(-1)
    K = len(means)
    colours = _component_colours(max(K, int(labels.max()) + 1 if len(labels) else 0))

    keep = np.isfinite(points).all(axis=1) & (labels >= 0)
    if keep.any():
        ax.scatter(
            points[keep, 0],
            points[keep, 1],
            s=4,
            c=colours[labels[keep]],
            linewidths=0,
            alpha=0.6,
            rasterized=int(keep.sum()) > _VECTOR_POINTS,
        )
    else:  # at the bottom: the means are often in the middle
        ax.text(0.5, 0.05, "no finite values", transform=ax.transAxes, ha="center", color="0.4")
    handles = []
    for j in range(K):
        colour = colours[j]
        if np.isfinite(means[j]).all():
            for sigma, style in _SIGMAS:
                shape = _ellipse(covariances[j], sigma)
                if shape is not None:
                    width, height, angle = shape
                    ax.add_patch(
                        Ellipse(
                            tuple(means[j]),
                            width,
                            height,
                            angle=angle,
                            fill=False,
                            edgecolor=colour,
                            linestyle=style,
                            linewidth=1.2,
                            zorder=3,
                        )
                    )
            ax.plot(
                means[j, 0],
                means[j, 1],
                marker="X",
                markersize=8,
                markerfacecolor=colour,
                markeredgecolor="black",
                markeredgewidth=0.8,
                linestyle="none",
                zorder=4,
            )
        weight = f"{weights[j]:.2f}" if j < len(weights) else "?"
        handles.append(
            Line2D(
                [],
                [],
                color=colour,
                marker="o",
                markersize=4,
                label=f"component {j + 1} (weight {weight})",
            )
        )
    x_label, y_label = (list(c.get("axis_labels") or []) + ["axis 1", "axis 2"])[:2]
    ax.set(title="Mixture components", xlabel=x_label, ylabel=y_label)
    if handles:
        ax.legend(
            handles=handles,
            fontsize="xx-small" if K > 6 else "x-small",
            ncols=1 if K <= 6 else 2 if K <= 20 else 3,
        )


def _ellipse(covariance: np.ndarray, sigma: float) -> tuple[float, float, float] | None:
    """(width, height, angle in degrees) of the sigma ellipse of a 2x2 covariance: the axes along
    its eigenvectors, 2 sigma sqrt(eigenvalue) long. A singular covariance (the component on a
    line) gives a flat ellipse; None for a zero or non-finite one (the mean still shows)."""
    if not np.isfinite(covariance).all():
        return None
    eigenvalues, eigenvectors = np.linalg.eigh((covariance + covariance.T) / 2.0)
    radii = sigma * np.sqrt(np.clip(eigenvalues, 0.0, None))  # rounding: tiny negatives
    if not radii[1] > 0.0 or not np.isfinite(radii).all():
        return None
    major = eigenvectors[:, 1]  # eigh sorts ascending: the last is the major axis
    angle = math.degrees(math.atan2(major[1], major[0]))
    return 2.0 * float(radii[1]), 2.0 * float(radii[0]), angle


def _component_colours(K: int) -> np.ndarray:
    """(K, 4) RGBA colours of K mixture components: tab10 up to 10, else tab20's strong then
    pale halves (the first 10 as in tab10), then tab20b and tab20c, repeated past 60."""
    from matplotlib import colormaps

    if K <= 10:
        return colormaps["tab10"](np.arange(max(K, 1)))
    tab20 = colormaps["tab20"](np.r_[0:20:2, 1:20:2])
    palette = np.vstack(
        [tab20, colormaps["tab20b"](np.arange(20)), colormaps["tab20c"](np.arange(20))]
    )
    return palette[np.arange(K) % len(palette)]


# --- regression without a linear model: fitted against observed, a fitted curve ---------------


def _fit(axes, data: dict) -> None:
    """Fitted against observed values (on the diagonal when perfect); second panel, for one
    feature the fitted curve over the data, else the residuals against the fitted values."""
    d = data["fit"]
    observed = np.asarray(d["observed"], dtype=float)
    fitted = np.asarray(d["fitted"], dtype=float)
    ax = axes[0]
    _points(ax, observed, fitted)
    if len(observed):
        lo = float(min(observed.min(), fitted.min()))
        hi = float(max(observed.max(), fitted.max()))
        ax.plot([lo, hi], [lo, hi], color="0.5", linestyle="--", linewidth=1)
    ax.set(title="Fitted vs Observed", xlabel="Observed values", ylabel="Fitted values")
    ax = axes[1]
    curve = d.get("curve")
    if curve is None:
        _points(ax, fitted, observed - fitted)
        ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1)
        ax.set(title="Residuals vs Fitted", xlabel="Fitted values", ylabel="Residuals")
        return
    _points(ax, np.asarray(curve["x"], dtype=float), observed)
    ax.plot(curve["grid"], curve["values"], color="C1", linewidth=1.5)
    ax.set(title="Fitted curve", xlabel=curve.get("xlabel", "x"), ylabel="Observed values")


#: kind -> (number of panels, function drawing them onto that many axes)
_PANELS = {
    "diagnostics": (4, _diagnostics),
    "loss": (1, _loss),
    "accuracy": (1, _accuracy),
    "roc": (1, _roc),
    "calibration": (1, _calibration),
    "bic": (1, _bic),
    "clusters": (1, _clusters),
    "fit": (2, _fit),
}
