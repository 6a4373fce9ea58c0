"""Rendering: the Rich report on stdout, JSON text, progress bars and warnings on stderr.

The only module that imports rich, and it does so lazily so `mlfit --help` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator

from mlfit.contract import ProgressFn, Step, json_safe, no_progress


def to_json(summary: dict) -> str:
    """Exactly one JSON document: full-precision floats, null for NaN or infinity."""
    return json.dumps(json_safe(summary), indent=2, allow_nan=False)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"Warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def progress(description: str, enabled: bool) -> Iterator[ProgressFn]:
    """A transient Rich progress bar on stderr, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield no_progress
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        console=_stderr_console(),
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with bar:
        task = bar.add_task(description, total=None, loss="")

        def update(step: Step) -> None:
            bar.update(
                task, completed=step.iteration, total=step.total or None, loss=f"{step.loss:.6g}"
            )

        yield update


def fmt(value, digits: int = 6) -> str:
    """Numbers for people: significant digits, R's '< 2e-16' style for tiny p-values."""
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NA"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "NA"
    return "< 2e-16" if p < 2e-16 else f"{p:.3g}"


def _stars(p) -> str:
    if p is None:
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


_METRIC_LABELS = {
    "r_squared": "R²",
    "adj_r_squared": "adjusted R²",
    "sigma": "residual standard error",
    "rss": "residual sum of squares",
    "rmse": "RMSE",
    "mse": "MSE",
    "df_model": "model df",
    "df_residual": "residual df",
    "n": "observations",
    "f_statistic": "F statistic",
    "f_p_value": "F p-value",
    "log_likelihood": "log-likelihood",
    "aic": "AIC",
    "bic": "BIC",
    "condition_number": "condition number (scaled)",
    "log_loss": "log-loss",
    "roc_auc": "ROC AUC",
    "pseudo_r_squared": "McFadden pseudo-R²",
    "null_deviance": "null deviance",
    "df_null": "null df",
    "null_log_likelihood": "null log-likelihood",
    "lr_statistic": "LR test vs null: chi²",
    "lr_df": "LR test vs null: df",
    "lr_p_value": "LR test vs null: p-value",
    "nb_alpha": "negative binomial alpha",
    "nb_alpha_std_error": "alpha standard error",
}


def _PipeAwareConsole():
    """A stdout Console that lets BrokenPipeError reach the CLI (exit 141), where Rich's own
    handler would exit 1 as if the fit had failed."""
    from rich.console import Console

    class PipeAwareConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return PipeAwareConsole()


def _render_metrics(metrics: dict, console) -> None:
    """Scalar metrics as a two-column table; for classifiers also the confusion matrix and the
    per-class precision, recall and F1."""
    from rich.markup import escape
    from rich.table import Table

    scalar_metrics = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    if scalar_metrics:
        console.print()
        table = Table(box=None, pad_edge=False, show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        for key, value in scalar_metrics.items():
            shown = fmt_p(value) if key.endswith("p_value") else fmt(value)
            table.add_row(_METRIC_LABELS.get(key, key.replace("_", " ")), shown)
        console.print(table)
    confusion = metrics.get("confusion_matrix")
    if confusion:
        console.print()
        console.print("confusion matrix (rows: true class, columns: predicted)")
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("")
        for label in confusion["labels"]:
            table.add_column(escape(label), justify="right")
        for label, row in zip(confusion["labels"], confusion["rows_true_columns_predicted"]):
            table.add_row(escape(label), *(f"{v:,}" for v in row))
        console.print(table)
    per_class = metrics.get("per_class")
    if per_class:
        console.print()
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name in ("class", "precision", "recall", "F1", "support"):
            table.add_column(name, justify="left" if name == "class" else "right")
        for label, m in per_class.items():
            table.add_row(
                escape(label),
                fmt(m["precision"], 4),
                fmt(m["recall"], 4),
                fmt(m["f1"], 4),
                f"{m['support']:,}",
            )
        console.print(table)


#: Keys of the summary that are not tables; every other dict-valued key is a named table
#: of the result (coefficients, components, layers, ...), shown in the order it comes.
SECTIONS = (
    "mlfit_version",
    "model",
    "description",
    "target",
    "features",
    "data",
    "solver",
    "metrics",
    "convergence",
    "warnings",
    "timing",
    "engine",
)
_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list, width: int = 40) -> str:
    """The loss history as one line of block characters (log scale over a wide range)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return ""
    if len(finite) > width:
        finite = [finite[round(i * (len(finite) - 1) / (width - 1))] for i in range(width)]
    lo, hi = min(finite), max(finite)
    if lo > 0 and hi / lo > 100:
        finite, lo, hi = [math.log(v) for v in finite], math.log(lo), math.log(hi)
    if hi == lo:
        return _BARS[0] * len(finite)
    return "".join(_BARS[min(7, int(8 * (v - lo) / (hi - lo)))] for v in finite)


def _cell(value) -> str:
    """A table cell: numbers to 5 digits, vectors compactly, matrices by their shape (the JSON
    has every value)."""
    if isinstance(value, list):
        if value and isinstance(value[0], list):
            return f"{len(value)}×{len(value[0])} matrix"
        shown = ", ".join(fmt(v, 4) for v in value[:6])
        return f"[{shown}{', ...' if len(value) > 6 else ''}]"
    return fmt(value, 5)


def _render_coefficients(coefs: dict, console) -> None:
    """An R-style coefficient table: estimate, standard error, statistic, p-value, stars."""
    from rich.markup import escape
    from rich.table import Table

    first = next(iter(coefs.values()))
    stat = "t" if "t" in first else "z" if "z" in first else None
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("parameter", no_wrap=True, min_width=min(len(max(coefs, key=len)), 40))
    cols = [("estimate", "estimate"), ("std_error", "std. error")]
    if stat:
        cols += [(stat, stat), ("p_value", "p-value")]
    cols += [("ci_low", "2.5%"), ("ci_high", "97.5%")]
    cols = [(k, label) for k, label in cols if k in first]
    name_width = max(len(n) for n in coefs)
    if name_width + 11 * len(cols) + 4 > console.width:  # narrow terminal: drop the interval
        cols = [(k, label) for k, label in cols if k not in ("ci_low", "ci_high")]
    for _, label in cols:
        table.add_column(label, justify="right", no_wrap=True)
    if "p_value" in first:
        table.add_column("")
    for name, row in coefs.items():
        cells = [fmt_p(row[k]) if k == "p_value" else fmt(row.get(k), 5) for k, _ in cols]
        if row.get("aliased"):
            cells = ["aliased"] + ["" for _ in cols[1:]]
        if "p_value" in first:
            cells.append(_stars(row.get("p_value")))
        table.add_row(escape(name), *cells)
    console.print(table)
    if "p_value" in first:
        console.print("[dim]signif. codes: 0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1[/dim]")


def _render_table(name: str, records: dict, console) -> None:
    """Any other named table: a row per name, a column per key."""
    from rich.markup import escape
    from rich.table import Table

    columns = list(dict.fromkeys(k for r in records.values() for k in r))
    table = Table(title=escape(name), title_justify="left", box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    for key in columns:
        table.add_column(escape(key.replace("_", " ")), justify="right")
    for row, record in records.items():
        table.add_row(escape(row), *(_cell(record.get(k)) for k in columns))
    console.print(table)


def render(summary: dict, console=None) -> None:
    """The human report on stdout, drawn from the same summary dict as the JSON."""
    from rich.markup import escape

    console = console or _PipeAwareConsole()
    data = summary["data"]
    title = f"[bold]{summary['model']}[/bold]  {summary.get('description', '')}".rstrip()
    console.print(title)
    console.print(
        f"data: {escape(data['source'])}   rows used: {data['rows_used']:,}"
        + (f"   dropped: {data['rows_dropped']:,}" if data.get("rows_dropped") else "")
    )
    target = f"target: {summary['target']}   " if summary.get("target") is not None else ""
    console.print(escape(f"{target}features: {', '.join(summary['features'])}"))
    solver = summary.get("solver") or {}
    if solver:
        console.print(
            escape(
                "solver: "
                + ", ".join(
                    f"{k}={fmt(v)}"
                    for k, v in solver.items()
                    if v is not None and not isinstance(v, (list, dict))
                )
            )
        )
    cluster = summary.get("engine")
    if cluster:  # --engine dask: where the fit ran
        console.print(
            escape(
                f"engine: {cluster['engine']} at {cluster['scheduler']}, {cluster['workers']} "
                f"workers, {cluster['partitions']} partitions, {cluster['passes']} passes, "
                f"{cluster['bytes_moved']:,} bytes moved, {cluster['cluster_seconds']:.3f} s"
            )
        )
    for name, records in summary.items():
        if name in SECTIONS or not isinstance(records, dict) or not records:
            continue
        console.print()
        if "estimate" in next(iter(records.values())):
            _render_coefficients(records, console)
        else:
            _render_table(name, records, console)
    metrics = summary.get("metrics") or {}
    _render_metrics(metrics, console)
    for key, part in metrics.items():  # metrics of a subset of rows: holdout, validation
        if isinstance(part, dict) and "n" in part:
            console.print()
            title = {"holdout": "held-out rows"}.get(key, f"{key.replace('_', ' ')} rows")
            console.print(f"[bold]{title} ({part['n']:,})[/bold]")
            _render_metrics(part, console)
    conv = summary.get("convergence")
    if conv:
        console.print()
        state = "[green]converged[/green]" if conv["converged"] else "[red]did not converge[/red]"
        gradient = conv.get("gradient_norm")
        console.print(
            f"{state} after {conv['iterations']:,} iterations: final loss "
            f"{fmt(conv.get('final_loss'), 10)}"
            + (f", gradient norm {fmt(gradient, 3)}" if gradient is not None else "")
        )
        line = sparkline(conv.get("history") or [])
        if line:
            console.print(f"loss history  {line}")
    timing = summary.get("timing") or {}
    if timing:
        console.print(
            f"[dim]time: load {timing.get('load_seconds', 0):.3f} s, fit "
            f"{timing.get('fit_seconds', 0):.3f} s, total {timing.get('total_seconds', 0):.3f} s[/dim]"
        )
