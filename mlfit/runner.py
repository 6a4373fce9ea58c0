"""One fit from file to output: load, encode, fit, report, plot, save. Shared by every model.

The runner reads only the model's registry entry (mlfit.solvers.ModelSpec) and the solver's
contract (mlfit.contract), so it never needs to know which model it is running.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from mlfit import __version__, engine
from mlfit.contract import FitResult, ModelData
from mlfit.data import DEFAULT_CHUNK_ROWS, ChunkStream, Selection, load_dataset, should_stream
from mlfit.data.parts import open_chunks, part_paths
from mlfit.design import Design, build_design
from mlfit.errors import DataError, NotConvergedError, UsageError
from mlfit.files import check_writable
from mlfit.model_io import save_model
from mlfit.report import progress, render, to_json, warn
from mlfit.solvers import (
    EXTRA_ROLES,
    FROM_CONVERGENCE,
    SOLVERS,
    reads_chunks,
    runs_distributed,
    solver,
)


@dataclass(frozen=True)
class Output:
    as_json: bool = False
    save: str | None = None
    quiet: bool = False
    plot: str | None = None


def run_fit(
    model: str,
    config,
    data: str,
    sel: Selection,
    out: Output,
    poly: int = 1,
    chunk_rows: int | None = None,
    strict: bool = False,
    extras: dict[str, str | None] | None = None,
) -> dict:
    """Fit `model` to the file `data` and print the result; returns the summary dict.

    extras: role -> column for the extra columns the model declares (e.g. {"offset": COL});
    roles given None are left out.  They are validated like features, passed to the fit by
    role, and those predict needs (EXTRA_ROLES: an offset, not weights) are stored in the
    model file so predict reads them too.
    """
    started = time.perf_counter()
    spec = SOLVERS[model]
    extras = {role: col for role, col in (extras or {}).items() if col}
    undeclared = sorted(set(extras) - set(spec.extra_columns))
    if undeclared:  # a command passing a role its model does not declare is a bug
        raise TypeError(f"{model} declares no extra column {', '.join(undeclared)}")
    for path in (out.save, out.plot):  # before any reading or fitting: a bad path or a
        if path:  # missing extra must not cost a fit
            check_writable(path, inputs=(data,))
    if out.plot:
        from mlfit import plots

        plots.plot_format(out.plot)
        plots.require_matplotlib()
    roles = {role: EXTRA_ROLES[role] for role in extras}
    sel = replace(
        sel,
        target_kind=spec.target,
        extras=extras,
        numeric_features=not spec.text_features,
        extra_domains={r: (x.domain, x.help) for r, x in roles.items() if x.domain},
        label_extras=tuple(r for r, x in roles.items() if x.labels),
        target_bounds=tuple(r for r, x in roles.items() if x.bounds_target),
    )
    job = _Job(model, solver(model), config, poly, not out.quiet)
    on_cluster = engine.current().name == "dask"
    if on_cluster and not runs_distributed(spec):
        raise UsageError(
            f"{model} cannot run on a Dask cluster (its fit is not a sum over rows): leave out "
            "--engine dask; for a table larger than memory, --chunk-rows N streams it here."
        )
    partitioned = part_paths(data) is not None  # a glob or a directory: one chunk stream
    if partitioned and not reads_chunks(spec):
        raise DataError(
            f"{model} fits one table in memory, and '{data}' is a set of parts: concatenate "
            "them into one file, or use a model that reads chunks ("
            + ", ".join(name for name, s in SOLVERS.items() if reads_chunks(s))
            + ")."
        )
    if on_cluster:  # the parts read by the workers; the fit's passes run there
        stream = engine.cluster().stream(data, sel, chunk_rows or DEFAULT_CHUNK_ROWS, model)
        fitted = _fit_streaming(job, stream)
    elif reads_chunks(spec) and (partitioned or should_stream(data, chunk_rows)):
        stream = open_chunks(data, sel, chunk_rows or DEFAULT_CHUNK_ROWS, model=model)
        fitted = _fit_streaming(job, stream)
    else:
        fitted = _fit_in_memory(job, load_dataset(data, sel, model=model))
    fit_end = time.perf_counter()
    result = fitted.result
    warnings = [*fitted.design_warnings, *fitted.notes, *result.warnings]
    summary = _summary(model, fitted, result, warnings)
    if extras:
        summary["data"]["columns"] = dict(extras)
    if on_cluster:
        summary["engine"] = stream.info()
    summary["timing"] = {
        "load_seconds": fitted.loaded - started,
        "fit_seconds": fit_end - fitted.loaded,
        "total_seconds": time.perf_counter() - started,
    }
    if strict and not result.converged:
        raise NotConvergedError(
            f"{model} did not converge and --strict is set; no model file was "
            "written. Raise the iteration limit or loosen --tol."
        )
    if out.plot:
        _plot(out.plot, job, fitted, spec.plots)
    if out.save:
        save_model(
            out.save,
            {
                "method": model,
                "target": fitted.target,
                "design": fitted.design.to_dict(),
                # the extra columns predict reads (an offset; not weights or clusters)
                "columns": {r: c for r, c in extras.items() if roles[r].at_predict},
                "params": result.params.to_dict(),
                "n_parameters": result.n_parameters,
                "config": dataclasses.asdict(config),
                # the file a local fit writes: how long and where it ran are not the model
                "fit": {k: v for k, v in summary.items() if k not in ("timing", "engine")},
            },
        )
    if not out.quiet:
        for w in warnings:
            warn(w)
    if out.as_json:
        sys.stdout.write(to_json(summary) + "\n")
    else:
        render(summary)
    return summary


@dataclass(frozen=True)
class _Job:
    model: str
    module: object
    config: object
    poly: int
    show_progress: bool

    @property
    def intercept(self) -> bool:
        """Whether the design drops a level of each text column (models with an intercept)."""
        return bool(getattr(self.config, "intercept", False))

    @property
    def categorical(self) -> bool:
        """Whether the model treats each text column as one categorical variable."""
        return SOLVERS[self.model].categorical


@dataclass
class _Fitted:
    source: str
    target: str | None
    features: list[str]
    design: Design
    design_warnings: list[str]
    result: FitResult
    rows_read: int
    rows_dropped: int
    notes: list[str]
    loaded: float  # perf_counter when loading and encoding ended
    data: ModelData | None = None  # the rows fitted, when in memory
    stream: object = None  # re-iterable ModelData chunks, when streamed

    @property
    def rows_used(self) -> int:
        return self.rows_read - self.rows_dropped


def _fit_in_memory(job: _Job, dataset) -> _Fitted:
    design, design_warnings = build_design(
        dataset.features,
        dataset.columns,
        job.intercept,
        job.poly,
        source=dataset.source,
        categorical=job.categorical,
    )
    X, X_lo = design.transform(dataset.columns, dataset.source)
    data = ModelData(
        X, dataset.y, dataset.extras, X_lo, design.names, dataset.target, dataset.source
    )
    data.one_hot = design.one_hot
    loaded = time.perf_counter()
    with progress(job.model, job.show_progress) as tick:
        result = job.module.fit(data, job.config, tick)
    return _Fitted(
        dataset.source,
        dataset.target,
        dataset.features,
        design,
        design_warnings,
        result,
        dataset.rows_read,
        dataset.rows_dropped,
        dataset.notes,
        loaded,
        data=data,
    )


def _fit_streaming(job: _Job, stream: ChunkStream) -> _Fitted:
    levels = stream.levels(stream.text_columns())
    design, design_warnings = build_design(
        stream.features, {}, job.intercept, job.poly, levels, stream.source, job.categorical
    )
    loaded = time.perf_counter()
    # chunks kept on a cluster's workers (mlfit.dask_engine), or encoded here as they are read
    chunks = stream.encoded(design) if hasattr(stream, "encoded") else _DesignChunks(stream, design)
    with progress(f"{job.model}: reading chunks", job.show_progress) as tick:
        result = job.module.fit_chunks(chunks, job.config, tick)
    dropped = stream.rows_dropped
    notes = [f"dropped {dropped} row(s) with missing values"] if dropped else []
    return _Fitted(
        stream.source,
        stream.target,
        stream.features,
        design,
        design_warnings,
        result,
        stream.rows_read,
        dropped,
        notes,
        loaded,
        stream=chunks,
    )


class _DesignChunks:
    """Re-iterable ModelData chunks from a ChunkStream, encoded with the fitted design."""

    def __init__(self, stream: ChunkStream, design: Design):
        self._stream, self._design = stream, design

    def __iter__(self):
        for chunk in self._stream:
            source = chunk.source  # the part file, when DATA is a set of parts
            X, _ = self._design.transform(chunk.columns, source)
            names = self._design.names
            data = ModelData(X, chunk.y, chunk.extras, None, names, chunk.target, source)
            data.one_hot = self._design.one_hot
            yield data


def _plot(path: str, job: _Job, fitted: _Fitted, kinds: tuple[str, ...]) -> None:
    """The model's figures, on a seeded sample of at most plots.SAMPLE_ROWS rows (the same
    rows whether the fit was in memory or streamed)."""
    from mlfit import plots

    seed = int(getattr(job.config, "seed", 0))
    n = fitted.rows_used
    sample = plots.sample_rows(n, seed)  # None: every row
    data, rows = fitted.data, sample
    if data is None:  # streamed: collect the sampled rows in one more pass
        data, rows = _rows_of(fitted.stream, sample), None
    convergence = fitted.result.convergence or {}
    # a kind drawn from the convergence record needs it (a one-step fit has no loss curve)
    kinds = [
        k for k in kinds if k not in FROM_CONVERGENCE or convergence.get(FROM_CONVERGENCE[k])
    ] or ["loss"]
    figure = {"history": convergence.get("history") or []}
    for key in ("validation_history", "validation_accuracy"):
        if convergence.get(key):
            figure[key] = convergence[key]
    if any(k not in FROM_CONVERGENCE for k in kinds):
        figure.update(job.module.plot_data(fitted.result, data, rows))
        # 1-based numbers of the plotted rows among those fitted, to label extreme points
        figure["rows"] = (np.arange(data.n_rows) if sample is None else sample) + 1
    note = None
    if sample is not None:
        note = f"{len(sample):,} of {n:,} rows, sampled at random (seed {seed})"
    target = f": {fitted.target}" if fitted.target else ""
    title = f"mlfit {job.model}{target} on {fitted.source}"
    plots.draw(path, kinds, figure, title, note)


def _rows_of(chunks, rows: np.ndarray | None) -> ModelData:
    """The rows at the given indices (all when None) of a chunk stream, in one pass."""
    parts, start = [], 0
    for chunk in chunks:
        stop = start + chunk.n_rows
        take = slice(None) if rows is None else rows[(rows >= start) & (rows < stop)] - start
        parts.append(chunk if rows is None else _subset(chunk, take))
        start = stop
    first = parts[0]
    return ModelData(
        np.vstack([p.X for p in parts]),
        np.concatenate([p.y for p in parts]) if first.y is not None else None,
        {k: np.concatenate([p.extras[k] for p in parts]) for k in first.extras},
        None,
        first.names,
        first.target,
        first.source,
    )


def _subset(data: ModelData, take) -> ModelData:
    y = None if data.y is None else data.y[take]
    extras = {k: v[take] for k, v in data.extras.items()}
    return ModelData(data.X[take], y, extras, None, data.names, data.target, data.source)


def _summary(model: str, fitted: _Fitted, result: FitResult, warnings: list[str]) -> dict:
    summary = {
        "mlfit_version": __version__,
        "model": model,
        "target": fitted.target,
        "features": fitted.features,
        "data": {
            "source": fitted.source,
            "rows_read": fitted.rows_read,
            "rows_used": fitted.rows_used,
            "rows_dropped": fitted.rows_dropped,
        },
        "solver": {k: v for k, v in result.info.items() if k != "fit_seconds"},
    }
    for name, table in result.tables.items():
        summary[name] = table.records()
    summary["metrics"] = result.metrics
    if result.convergence is not None:
        summary["convergence"] = result.convergence
    summary["warnings"] = warnings
    return summary
