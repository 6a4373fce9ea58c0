"""One fit from file to output: load, encode, fit, report, save. Shared by every model command."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from mlfit import __version__
from mlfit.data import (
    DEFAULT_CHUNK_ROWS,
    ChunkStream,
    Dataset,
    Selection,
    load_dataset,
    should_stream,
)
from mlfit.design import Design, build_design
from mlfit.errors import DataError, NotConvergedError
from mlfit.model_io import save_model
from mlfit.report import progress, render, to_json, warn
from mlfit.result import FitResult
from mlfit.solvers import solver


@dataclass(frozen=True)
class Output:
    as_json: bool = False
    save: str | None = None
    quiet: bool = False


def run_fit(
    model: str,
    config,
    data: str,
    sel: Selection,
    out: Output,
    poly: int = 1,
    chunk_rows: int | None = None,
    strict: bool = False,
    extras: dict[str, str] | None = None,
    target_kind: str = "numeric",
) -> dict:
    """Fit `model` to the file `data` and print the result; returns the summary dict.

    extras: solver keyword -> column, for numeric columns a model uses but not as features
    (e.g. {"offset": "log_exposure"}); they are validated like features and stored in the
    model file so predict reads them too.
    """
    started = time.perf_counter()
    module = solver(model)
    extras = extras or {}
    sel = replace(sel, target_kind=target_kind, extras=extras)
    job = _Job(model, module, config, poly, extras, not out.quiet)
    if hasattr(module, "fit_chunks") and should_stream(data, chunk_rows):
        done = _fit_streaming(
            job, ChunkStream(data, sel, chunk_rows or DEFAULT_CHUNK_ROWS, model=model)
        )
    else:
        done = _fit_in_memory(job, load_dataset(data, sel, model=model))
    fit_end = time.perf_counter()
    dataset, design, result = done.dataset, done.design, done.result
    warnings = [*done.design_warnings, *dataset.notes, *result.warnings]
    summary = _summary(model, dataset, design, config, result, done.rows_used, warnings)
    if extras:
        summary["data"]["columns"] = dict(extras)
    summary["timing"] = {
        "load_seconds": done.loaded - started,
        "fit_seconds": fit_end - done.loaded,
        "total_seconds": time.perf_counter() - started,
    }
    if strict and not result.converged:
        raise NotConvergedError(
            f"{model} did not converge and --strict is set; no model file was "
            "written. Raise the iteration limit or loosen --tol."
        )
    if out.save:
        save_model(
            out.save,
            {
                "method": model,
                "target": dataset.target,
                "design": design.to_dict(),
                "columns": dict(extras),
                "params": result.params,
                "config": dataclasses.asdict(config),
                "fit": {k: v for k, v in summary.items() if k != "timing"},
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
    extras: dict[str, str]
    show_progress: bool


@dataclass
class _Fitted:
    dataset: Dataset
    design: Design
    design_warnings: list[str]
    result: FitResult
    rows_used: int
    loaded: float  # perf_counter when loading and encoding ended


def _fit_in_memory(job: _Job, dataset: Dataset) -> _Fitted:
    design, design_warnings = build_design(
        dataset.features, dataset.columns, job.config.intercept, job.poly, source=dataset.source
    )
    X, X_lo = design.transform(dataset.columns, dataset.source)
    n_params = X.shape[1] + (1 if job.config.intercept else 0)
    if dataset.n_rows < n_params:
        raise DataError(
            f"{dataset.source} has {dataset.n_rows} usable rows but the model has "
            f"{n_params} parameters; it needs at least as many rows. Use fewer "
            "features or a lower --poly."
        )
    loaded = time.perf_counter()
    with progress(job.model, job.show_progress) as tick:
        result = _call(
            job.module.fit,
            X,
            dataset.y,
            job.config,
            tick,
            X_lo=X_lo,
            names=design.names,
            target=dataset.target,
            **dataset.extras,
        )
    return _Fitted(dataset, design, design_warnings, result, dataset.n_rows, loaded)


def _fit_streaming(job: _Job, stream: ChunkStream) -> _Fitted:
    features = stream.features
    levels = stream.levels(stream.text_columns())
    design, design_warnings = build_design(
        features, {}, job.config.intercept, job.poly, levels, stream.source
    )
    loaded = time.perf_counter()
    chunks = _DesignChunks(stream, design, list(job.extras))
    with progress(f"{job.model}: reading chunks", job.show_progress) as tick:
        result = _call(
            job.module.fit_chunks,
            chunks,
            job.config,
            tick,
            names=design.names,
            target=stream.target,
        )
    dropped = stream.rows_dropped
    notes = [f"dropped {dropped} row(s) with missing values"] if dropped else []
    dataset = Dataset(
        stream.source,
        stream.target,
        features,
        {},
        np.empty(0),
        stream.rows_read,
        dropped,
        notes,
        n_rows=stream.rows_read - dropped,
    )
    return _Fitted(dataset, design, design_warnings, result, stream.rows_read - dropped, loaded)


def _call(fn, *args, **kwargs):
    """Call a solver's fit with the keyword arguments it takes (X_lo, names, offset, ...)."""
    accepted = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in kwargs.items() if k in accepted})


class _DesignChunks:
    """Re-iterable (X, y, *extras) chunks from a ChunkStream, encoded with the fitted design."""

    def __init__(self, stream: ChunkStream, design: Design, extra_roles: list[str]):
        self._stream, self._design, self._extra = stream, design, extra_roles

    def __iter__(self):
        for chunk in self._stream:
            X, _ = self._design.transform(chunk.columns, self._stream.source)
            yield (X, chunk.y, *(chunk.extras[role] for role in self._extra))


def _summary(
    model: str,
    dataset: Dataset,
    design: Design,
    config,
    result: FitResult,
    rows_used: int,
    warnings: list[str],
) -> dict:
    names = result.parameter_names or (
        (["intercept"] if getattr(config, "intercept", False) else []) + design.names
    )
    summary = {
        "mlfit_version": __version__,
        "model": model,
        "target": dataset.target,
        "features": dataset.features,
        "data": {
            "source": dataset.source,
            "rows_read": dataset.rows_read,
            "rows_used": rows_used,
            "rows_dropped": dataset.rows_dropped,
        },
        "solver": {k: v for k, v in result.info.items() if k != "fit_seconds"},
    }
    if result.coefficients:
        aliased = set(result.info.get("aliased_index", []))
        summary["coefficients"] = {
            name: {
                **{k: float(v[i]) for k, v in result.coefficients.items()},
                **({"aliased": True} if i in aliased else {}),
            }
            for i, name in enumerate(names)
        }
    summary["metrics"] = result.metrics
    if result.convergence is not None:
        summary["convergence"] = result.convergence
    summary["warnings"] = warnings
    return summary
