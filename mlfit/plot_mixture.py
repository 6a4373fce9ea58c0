"""Mixture-model panels for --plot: the BIC of each model fitted against its number of
components, and the rows on two axes with each component's mean and 1- and 2-sigma ellipses."""

from __future__ import annotations

import math

import numpy as np

from mlfit.plot_regression import VECTOR_POINTS

_SIGMAS = ((1.0, "-"), (2.0, "--"))  # the ellipses of a mixture component: 1 and 2 sigma


# --- mixture models: BIC per number of components, components on two axes ------------------


def bic(axes, data: dict) -> None:
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


def clusters(axes, data: dict) -> None:
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
            rasterized=int(keep.sum()) > VECTOR_POINTS,
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
