"""Figures for --plot: regression diagnostics, loss curves, ROC, calibration, BIC model selection
and mixture components, in one file (the regression panels are in plot_regression.py, the
mixture panels in plot_mixture.py).

matplotlib is an optional extra (mlfit[plot]); it is imported only when a figure is drawn, and
drawn without pyplot on an Agg canvas, so no display and no global backend are involved.
"""

from __future__ import annotations

import math
import os

import numpy as np

from mlfit import plot_mixture, plot_regression
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
_CALIBRATION_BINS = 10


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


#: kind -> (number of panels, function drawing them onto that many axes)
_PANELS = {
    "diagnostics": (4, plot_regression.diagnostics),
    "loss": (1, _loss),
    "accuracy": (1, _accuracy),
    "roc": (1, _roc),
    "calibration": (1, _calibration),
    "bic": (1, plot_mixture.bic),
    "clusters": (1, plot_mixture.clusters),
    "fit": (2, plot_regression.fitted),
}
