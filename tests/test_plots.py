"""--plot figures: every kind and the combinations the models ask for, in each format; the same
bytes twice for SVG and PDF; degenerate data without warnings; atomic output; the matplotlib
guard; the seeded row sample."""

from __future__ import annotations

import math
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mlfit import plot_mixture, plot_regression, plots
from mlfit.diagnostics import glm_diagnostics
from mlfit.errors import UsageError
from mlfit.solvers.family import Bernoulli, Gaussian

pytest.importorskip("matplotlib")

#: Any warning while drawing fails the test: the CLI's stderr must stay clean.
pytestmark = pytest.mark.filterwarnings("error")

N = 40
KINDS = [
    ["diagnostics"],
    ["loss"],
    ["roc"],
    ["calibration"],
    ["diagnostics", "loss"],
    ["roc", "calibration", "loss"],
    ["bic"],
    ["clusters"],
    ["bic", "clusters", "loss"],
]


def _least_squares(rng, n: int = N) -> dict:
    A = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = A @ [1.0, 2.0, -1.0] + rng.normal(size=n)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    eta = A @ coef
    sigma2 = float(np.sum((y - eta) ** 2) / (n - A.shape[1]))
    cov = np.linalg.solve(A.T @ A, np.eye(A.shape[1]))
    return glm_diagnostics(A, y, eta, Gaussian(), cov, sigma2)


def _classifier(rng, n: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    codes = rng.integers(0, K, size=n)
    P = rng.dirichlet(np.ones(K), size=n)
    P[np.arange(n), codes] += 0.5  # informative, so the curves are not all on the diagonal
    return codes, P / P.sum(axis=1, keepdims=True)


def _bic() -> dict:
    return {
        "ks": [1, 2, 3, 4, 5],
        "types": ["full", "diag", "spherical", "tied"],
        "values": [
            [500.0, 420.0, 380.0, 390.0, 400.0],
            [520.0, 450.0, None, 410.0, 415.0],
            [530.0, 470.0, 440.0, 430.0, 435.0],
            [None, None, None, None, None],
        ],
        "chosen": [3, "full"],
    }


def _mixture(rng, n: int, K: int) -> dict:
    """n rows from K Gaussian components on two axes, as the gmm command passes them."""
    means = rng.normal(scale=5.0, size=(K, 2))
    A = rng.normal(size=(K, 2, 2))
    covariances = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(2)
    weights = rng.dirichlet(np.ones(K))
    labels = rng.choice(K, size=n, p=weights)
    z = rng.normal(size=(n, 2))
    points = means[labels] + np.einsum("nij,nj->ni", np.linalg.cholesky(covariances)[labels], z)
    return {
        "points": points,
        "labels": labels,
        "means": means,
        "covariances": covariances,
        "weights": weights,
        "axis_labels": ["PC1 (43% of variance)", "PC2 (21%)"],
    }


@pytest.fixture
def data(rng) -> dict:
    history = list(2.0 * np.exp(-np.arange(25) / 3.0) + 1e-3)
    return {
        "diagnostics": _least_squares(rng),
        "glm": False,
        "rows": np.arange(1, N + 1),
        "history": history,
        "validation_history": [v * 1.1 for v in history],
        "classes": ["no", "yes"],
        "train": _classifier(rng, N, 2),
        "holdout": _classifier(rng, 15, 2),
        "bic": _bic(),
        "clusters": _mixture(rng, N, 3),
    }


def check_image(path, fmt: str) -> None:
    """The file is a valid, non-blank image of the format."""
    content = Path(path).read_bytes()
    if fmt == "png":
        import matplotlib.image

        assert content.startswith(b"\x89PNG\r\n\x1a\n")
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3
        assert not np.all(pixels == pixels[0, 0])
    elif fmt == "svg":
        root = ET.fromstring(content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find(".//{http://www.w3.org/2000/svg}path") is not None
    else:
        assert content.startswith(b"%PDF-")
        assert content.rstrip().endswith(b"%%EOF")


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
@pytest.mark.parametrize("kinds", KINDS, ids="+".join)
def test_each_kind_and_combination_in_each_format(tmp_path, data, kinds, fmt):
    path = tmp_path / f"figure.{fmt}"
    plots.draw(str(path), kinds, data, "a title", note="40 of 40 rows")
    check_image(path, fmt)
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
@pytest.mark.parametrize(
    "kinds", [["diagnostics", "loss"], ["roc", "calibration", "loss"], ["bic", "clusters", "loss"]]
)
def test_the_same_call_gives_the_same_bytes(tmp_path, data, kinds, fmt):
    first, second = tmp_path / f"1.{fmt}", tmp_path / f"2.{fmt}"
    plots.draw(str(first), kinds, data, "title", note="a note")
    plots.draw(str(second), kinds, data, "title", note="a note")
    assert first.read_bytes() == second.read_bytes()


def test_extension_is_case_insensitive(tmp_path, data):
    path = tmp_path / "FIGURE.PNG"
    plots.draw(str(path), ["loss"], data, "t")
    check_image(path, "png")


def test_glm_diagnostics_and_many_classes(tmp_path, rng, capsys):
    n = 30
    A = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = (rng.uniform(size=n) < 0.5).astype(float)
    family = Bernoulli()
    eta = A @ [0.1, 0.8]
    w = family.mu_eta(eta)
    cov = np.linalg.solve(A.T @ (w[:, None] * A), np.eye(2))
    data = {
        "diagnostics": glm_diagnostics(A, y, eta, family, cov, 1.0),
        "glm": True,
        "rows": np.arange(101, 101 + n),
        "classes": ["a", "b", "c", "d"],
        "train": _classifier(rng, n, 4),
        "holdout": _classifier(rng, 12, 4),
        "history": [0.7, 0.6, 0.55],
    }
    path = tmp_path / "glm.svg"
    plots.draw(str(path), ["diagnostics", "roc", "calibration", "loss"], data, "glm")
    check_image(path, "svg")
    assert capsys.readouterr().err == ""


def test_degenerate_data_still_gives_a_figure_without_warnings(tmp_path, rng, capsys):
    n = 12
    # an exact fit: residuals 0 and sigma^2 0, so every standardized residual is NaN
    A = np.column_stack([np.ones(n), np.arange(n, dtype=float)])
    y = 1.0 + 2.0 * np.arange(n)
    cov = np.linalg.solve(A.T @ A, np.eye(2))
    exact = glm_diagnostics(A, y, y.copy(), Gaussian(), cov, 0.0)
    assert np.all(np.isnan(exact["std_deviance_residuals"]))
    codes, P = _classifier(rng, n, 2)
    data = {
        "diagnostics": exact,
        "glm": False,
        "rows": np.arange(1, n + 1),
        "history": [],
        "classes": ["no", "yes"],
        "train": (codes, P),
        "holdout": (np.zeros(5, dtype=int), P[:5]),  # one class only: no ROC curve
    }
    path = tmp_path / "degenerate.png"
    plots.draw(str(path), ["diagnostics", "loss", "roc", "calibration"], data, "t", note="n")
    check_image(path, "png")
    # one point, one iteration, losses spanning many decades with a zero
    tiny = {
        "diagnostics": {key: v[:1] if key != "n_params" else v for key, v in exact.items()},
        "history": [3.0],
        "validation_history": [0.0],
        "classes": ["only"],
        "train": (np.zeros(3, dtype=int), np.ones((3, 1))),
    }
    plots.draw(str(path), ["diagnostics", "loss", "roc", "calibration"], tiny, "t")
    check_image(path, "png")
    assert capsys.readouterr().err == ""


def test_degenerate_mixtures_still_give_a_figure_without_warnings(tmp_path, rng, capsys):
    clusters = _mixture(rng, 30, 6)
    covariances = clusters["covariances"]
    covariances[0] = 0.0  # collapsed onto one point
    covariances[1] = [[1.0, 2.0], [2.0, 4.0]]  # singular: the component lies on a line
    covariances[2] = [[1.0, 1.0], [1.0, 1.0 - 1e-17]]  # rounding makes an eigenvalue negative
    covariances[3] = np.nan  # a component that failed
    covariances[4] = 1e-300 * np.eye(2)
    clusters["means"][3] = np.nan
    clusters["labels"][clusters["labels"] == 5] = 4  # a component without rows
    clusters["points"][0] = np.nan
    del clusters["axis_labels"]
    # one k: one point per type, one of them not fitted, the chosen one marked
    bic = {"ks": [2], "types": ["full", "diag"], "values": [[10.0], [None]], "chosen": [2, "full"]}
    for fmt in ("png", "svg", "pdf"):
        path = tmp_path / f"degenerate.{fmt}"
        plots.draw(str(path), ["bic", "clusters"], {"bic": bic, "clusters": clusters}, "t")
        check_image(path, fmt)
    one = {"means": np.zeros((1, 2)), "covariances": np.eye(2)[None], "weights": np.ones(1)}
    cases = [
        # nothing fitted, nothing chosen; no rows at all
        (
            {"ks": [1, 2], "types": ["full"], "values": [[None, None]], "chosen": None},
            {**one, "points": np.empty((0, 2)), "labels": np.empty(0, dtype=int)},
        ),
        # the same BIC everywhere; one row
        (
            {
                "ks": [1, 2, 3],
                "types": ["full"],
                "values": [[5.0, 5.0, 5.0]],
                "chosen": [3, "full"],
            },
            {**one, "points": np.zeros((1, 2)), "labels": np.zeros(1, dtype=int)},
        ),
        # the chosen model was not fitted, or is not among those drawn; identical rows
        (
            {"ks": [1, 2], "types": ["full"], "values": [[math.inf, 3.0]], "chosen": [1, "full"]},
            {**one, "points": np.ones((3, 2)), "labels": np.zeros(3, dtype=int)},
        ),
        (
            {"ks": [1, 2], "types": ["full"], "values": [[4.0, 3.0]], "chosen": [5, "tied"]},
            {**one, "points": np.ones((3, 2)), "labels": np.zeros(3, dtype=int)},
        ),
    ]
    path = tmp_path / "degenerate.pdf"
    for bic, clusters in cases:
        data = {"bic": bic, "clusters": clusters, "history": [1.0]}
        plots.draw(str(path), ["bic", "clusters", "loss"], data, "t")
        check_image(path, "pdf")
    assert capsys.readouterr().err == ""


def test_many_components_and_many_points(tmp_path, rng):
    # 25 components outrun tab20; 2,500 points are an embedded image in SVG, not 2,500 paths
    path = tmp_path / "many.svg"
    plots.draw(str(path), ["clusters"], {"clusters": _mixture(rng, 2500, 25)}, "t")
    check_image(path, "svg")
    root = ET.fromstring(path.read_bytes())
    assert root.find(".//{http://www.w3.org/2000/svg}image") is not None
    assert path.stat().st_size < 1_000_000


def test_component_colours_do_not_run_out():
    from matplotlib import colormaps

    np.testing.assert_array_equal(plot_mixture._component_colours(3), colormaps["tab10"](range(3)))
    twenty = plot_mixture._component_colours(20)
    np.testing.assert_array_equal(twenty[:10], colormaps["tab10"](range(10)))  # tab20, strong
    assert len({tuple(c) for c in twenty}) == 20
    assert len({tuple(c) for c in plot_mixture._component_colours(60)}) == 60
    assert len(plot_mixture._component_colours(100)) == 100


def test_ellipse_axes_follow_the_covariance():
    width, height, angle = plot_mixture._ellipse(np.diag([4.0, 1.0]), 2.0)
    assert (width, height) == pytest.approx((8.0, 4.0))
    assert angle % 180.0 == pytest.approx(0.0, abs=1e-9)
    theta = np.radians(30.0)
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    width, height, angle = plot_mixture._ellipse(R @ np.diag([9.0, 0.25]) @ R.T, 1.0)
    assert (width, height) == pytest.approx((6.0, 1.0))
    assert angle % 180.0 == pytest.approx(30.0)
    width, height, _ = plot_mixture._ellipse(np.array([[1.0, 2.0], [2.0, 4.0]]), 1.0)  # singular
    assert width == pytest.approx(2.0 * np.sqrt(5.0)) and height == pytest.approx(0.0, abs=1e-7)
    assert plot_mixture._ellipse(np.zeros((2, 2)), 1.0) is None
    assert plot_mixture._ellipse(np.full((2, 2), np.nan), 1.0) is None


def test_every_kind_a_model_can_declare_is_drawn():
    from mlfit.solvers import PLOT_KINDS

    assert set(PLOT_KINDS) <= set(plots._PANELS)


def test_leverage_one_rows_are_skipped(tmp_path, rng):
    n = 20
    X = rng.normal(size=(n, 1))
    A = np.column_stack([np.ones(n), X, np.eye(n)[0]])
    y = 2.0 * X[:, 0] + rng.normal(size=n)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    eta = A @ coef
    sigma2 = float(np.sum((y - eta) ** 2) / (n - 3))
    diag = glm_diagnostics(A, y, eta, Gaussian(), np.linalg.solve(A.T @ A, np.eye(3)), sigma2)
    path = tmp_path / "lev.pdf"
    plots.draw(str(path), ["diagnostics"], {"diagnostics": diag, "rows": np.arange(1, n + 1)}, "t")
    check_image(path, "pdf")


def test_loss_axis_is_log_only_when_positive_over_two_decades():
    assert not plots._log_axis(np.array([5.0, 1.0, 0.1]))
    assert plots._log_axis(np.array([5.0, 1.0, 0.01]))
    assert not plots._log_axis(np.array([5.0, 0.0, 0.01]))
    assert not plots._log_axis(np.array([5.0, np.inf, 0.01]))
    assert not plots._log_axis(np.array([]))


@pytest.mark.parametrize("name", ["figure.jpg", "figure", "figure.png.txt"])
def test_bad_extension_is_a_usage_error(tmp_path, data, name):
    path = str(tmp_path / name)
    with pytest.raises(UsageError) as info:
        plots.draw(path, ["loss"], data, "t")
    message = str(info.value)
    assert path in message and ".png" in message and ".svg" in message and ".pdf" in message
    assert os.listdir(tmp_path) == []


def test_plot_format():
    assert plots.plot_format("a/b.Svg") == "svg"
    assert plots.plot_format("x.pdf") == "pdf"
    assert plots.plot_format("x.png") == "png"


def test_unknown_kind_is_a_programming_error(tmp_path, data):
    with pytest.raises(ValueError, match="histogram"):
        plots.draw(str(tmp_path / "f.png"), ["loss", "histogram"], data, "t")
    assert os.listdir(tmp_path) == []


def test_missing_matplotlib_is_a_usage_error_naming_the_install(tmp_path, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError) as info:
        plots.require_matplotlib()
    assert str(info.value) == "--plot needs matplotlib: pip install 'mlfit[plot]'"
    with pytest.raises(UsageError):
        plots.draw(str(tmp_path / "f.png"), ["loss"], data, "t")
    assert os.listdir(tmp_path) == []


def test_a_failure_while_drawing_leaves_no_file_behind(tmp_path, data, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, f, **kwargs):
        f.write(b"half a figure")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError):
        plots.draw(str(tmp_path / "new.png"), ["loss"], data, "t")
    assert os.listdir(tmp_path) == []
    old = tmp_path / "old.svg"
    old.write_text("previous figure")
    with pytest.raises(RuntimeError):
        plots.draw(str(old), ["loss"], data, "t")
    assert old.read_text() == "previous figure"
    assert os.listdir(tmp_path) == ["old.svg"]


def test_sample_rows_is_seeded_sorted_and_only_for_big_inputs():
    assert plots.sample_rows(plots.SAMPLE_ROWS, seed=0) is None
    assert plots.sample_rows(5, seed=0, limit=5) is None
    rows = plots.sample_rows(1000, seed=3, limit=100)
    assert rows is not None and len(rows) == 100
    assert np.all(np.diff(rows) > 0)  # sorted, no repeats
    assert rows.min() >= 0 and rows.max() < 1000
    np.testing.assert_array_equal(rows, plots.sample_rows(1000, seed=3, limit=100))
    assert not np.array_equal(rows, plots.sample_rows(1000, seed=4, limit=100))
    big = plots.sample_rows(10**9, seed=0)  # without materialising a permutation of 1e9
    assert len(big) == plots.SAMPLE_ROWS and np.all(np.diff(big) > 0)


def test_roc_curve_matches_sklearn_and_its_area_is_the_auc(rng):
    from sklearn.metrics import roc_curve

    from mlfit.metrics import roc_auc

    positive = rng.uniform(size=200) < 0.4
    score = np.round(rng.uniform(size=200) + 0.3 * positive, 1)  # many ties
    fpr, tpr = plots._roc_curve(positive, score)
    ref_fpr, ref_tpr, _ = roc_curve(positive, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc(positive, score), rel=1e-12)


@pytest.mark.parametrize("n", [12, 60])
def test_the_smooth_is_lowess(rng, n):
    # Up to 100 rows every row is a lowess point: the same as statsmodels' (and R's) lowess.
    from statsmodels.nonparametric.smoothers_lowess import lowess

    x = rng.normal(size=n)
    y = np.sin(x) + 0.3 * rng.standard_t(2, size=n)
    grid, trend = plot_regression._lowess(x, y)
    expected = lowess(y, x, frac=2 / 3, it=3, delta=0.0)
    np.testing.assert_allclose(grid, expected[:, 0])
    np.testing.assert_allclose(trend, expected[:, 1], rtol=1e-10, atol=1e-12)
