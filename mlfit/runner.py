"""One fit from file to output: load, encode, fit, report, save. Shared by every model command."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from mlfit import __version__
from mlfit.data import ChunkStream, Dataset, Selection, load_dataset, should_stream
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
    if extras and sel.features is not None:
        sel = replace(
            sel,
            features=tuple(f for f in sel.features if f not in extras.values())
            + tuple(extras.values()),
        )
    streaming = hasattr(module, "fit_chunks") and should_stream(data, chunk_rows)
    if streaming:
        stream = ChunkStream(data, sel, chunk_rows or 65_536, model=model)
        features = [f for f in stream.features if f not in extras.values()]
        _check_extras_numeric(extras, [c for c in stream.text_columns()], stream.source)
        levels = stream.levels([c for c in stream.text_columns() if c in features])
        design, design_warnings = build_design(
            features, {}, config.intercept, poly, levels, stream.source
        )
        loaded = time.perf_counter()
        chunks = _DesignChunks(stream, design, list(extras.values()))
        with progress(f"{model}: reading chunks", not out.quiet) as tick:
            result = _call(
                module.fit_chunks, chunks, config, tick, names=design.names, target=stream.target
            )
        notes = (
            [f"dropped {stream.rows_dropped} row(s) with missing values"]
            if stream.rows_dropped
            else []
        )
        dataset = Dataset(
            stream.source,
            stream.target,
            features,
            {},
            np.empty(0),
            stream.rows_read,
            stream.rows_dropped,
            notes,
        )
        rows_used = stream.rows_read - stream.rows_dropped
    else:
        dataset = load_dataset(data, sel, target_kind=target_kind, model=model)
        extra_values = {key: dataset.columns.pop(col) for key, col in extras.items()}
        _check_extras_numeric(
            extras,
            [c for c, v in zip(extras.values(), extra_values.values()) if v.dtype == object],
            dataset.source,
        )
        dataset.features = [f for f in dataset.features if f not in extras.values()]
        design, design_warnings = build_design(
            dataset.features, dataset.columns, config.intercept, poly, source=dataset.source
        )
        X, X_lo = design.transform(dataset.columns, dataset.source)
        n_params = X.shape[1] + (1 if config.intercept else 0)
        if dataset.n_rows < n_params:
            raise DataError(
                f"{dataset.source} has {dataset.n_rows} usable rows but the model has "
                f"{n_params} parameters; it needs at least as many rows. Use fewer "
                "features or a lower --poly."
            )
        loaded = time.perf_counter()
        with progress(model, not out.quiet) as tick:
            result = _call(
                module.fit,
                X,
                dataset.y,
                config,
                tick,
                X_lo=X_lo,
                names=design.names,
                target=dataset.target,
                **extra_values,
            )
        rows_used = dataset.n_rows
    fitted = time.perf_counter()
    warnings = [*design_warnings, *dataset.notes, *result.warnings]
    summary = _summary(model, dataset, design, config, result, rows_used, warnings)
    if extras:
        summary["data"]["columns"] = dict(extras)
    summary["timing"] = {
        "load_seconds": loaded - started,
        "fit_seconds": fitted - loaded,
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


def _call(fn, *args, **kwargs):
    """Call a solver's fit with the keyword arguments it takes (X_lo, names, offset, ...)."""
    accepted = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in kwargs.items() if k in accepted})


def _check_extras_numeric(extras: dict[str, str], text_columns: list[str], source: str) -> None:
    for key, col in extras.items():
        if col in text_columns:
            raise DataError(f"Column '{col}' (the {key}) in {source} must be numeric.")


class _DesignChunks:
    """Re-iterable (X, y, *extras) chunks from a ChunkStream, encoded with the fitted design."""

    def __init__(self, stream: ChunkStream, design: Design, extra_columns: list[str]):
        self._stream, self._design, self._extra = stream, design, extra_columns

    def __iter__(self):
        for chunk in self._stream:
            X, _ = self._design.transform(chunk.columns, self._stream.source)
            yield (X, chunk.y, *(chunk.columns[c] for c in self._extra))


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
