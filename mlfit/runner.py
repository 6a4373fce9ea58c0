"""One fit from file to output: load, encode, fit, report, save. Shared by every model command."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

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


def run_fit(model: str, config, data: str, sel: Selection, out: Output, poly: int = 1,
            chunk_rows: int | None = None, strict: bool = False) -> dict:
    """Fit `model` to the file `data` and print the result; returns the summary dict."""
    started = time.perf_counter()
    module = solver(model)
    warnings: list[str] = []
    streaming = hasattr(module, "fit_chunks") and should_stream(data, chunk_rows)
    if streaming:
        stream = ChunkStream(data, sel, chunk_rows or 65_536, model=model)
        levels = stream.levels(stream.text_columns())
        design, design_warnings = build_design(stream.features, {}, config.intercept, poly, levels,
                                               stream.source)
        loaded = time.perf_counter()
        chunks = ((design.transform(c.columns, stream.source)[0], c.y) for c in stream)
        with progress(f"{model}: reading chunks", not out.quiet) as tick:
            result = module.fit_chunks(chunks, config, tick)
        dataset = Dataset(stream.source, stream.target, stream.features, {}, np.empty(0),
                          stream.rows_read, stream.rows_dropped)
        rows_used = stream.rows_read - stream.rows_dropped
    else:
        dataset = load_dataset(data, sel, model=model)
        design, design_warnings = build_design(dataset.features, dataset.columns, config.intercept,
                                               poly, source=dataset.source)
        X, X_lo = design.transform(dataset.columns, dataset.source)
        n_params = X.shape[1] + (1 if config.intercept else 0)
        if dataset.n_rows < n_params:
            raise DataError(f"{dataset.source} has {dataset.n_rows} usable rows but the model has "
                            f"{n_params} parameters; it needs at least as many rows. Use fewer "
                            "features or a lower --poly.")
        loaded = time.perf_counter()
        with progress(model, not out.quiet) as tick:
            result = module.fit(X, dataset.y, config, tick, X_lo=X_lo)
        rows_used = dataset.n_rows
    fitted = time.perf_counter()
    warnings = [*design_warnings, *dataset.notes, *result.warnings]
    summary = _summary(model, dataset, design, config, result, rows_used, warnings)
    summary["timing"] = {"load_seconds": loaded - started, "fit_seconds": fitted - loaded,
                         "total_seconds": time.perf_counter() - started}
    if strict and not result.converged:
        raise NotConvergedError(f"{model} did not converge ({result.warnings[-1] if result.warnings else ''}) "
                                "and --strict is set; no model file was written.")
    if out.save:
        save_model(out.save, {"method": model, "target": dataset.target, "design": design.to_dict(),
                              "params": result.params, "config": dataclasses.asdict(config),
                              "fit": {k: v for k, v in summary.items() if k != "timing"}})
    if not out.quiet:
        for w in warnings:
            warn(w)
    if out.as_json:
        sys.stdout.write(to_json(summary) + "\n")
    else:
        render(summary)
    return summary


def _summary(model: str, dataset: Dataset, design: Design, config, result: FitResult,
             rows_used: int, warnings: list[str]) -> dict:
    names = (["intercept"] if getattr(config, "intercept", False) else []) + design.names
    summary = {"mlfit_version": __version__, "model": model, "target": dataset.target,
               "features": dataset.features,
               "data": {"source": dataset.source, "rows_read": dataset.rows_read,
                        "rows_used": rows_used, "rows_dropped": dataset.rows_dropped},
               "solver": {k: v for k, v in result.info.items() if k != "fit_seconds"}}
    if result.coefficients:
        aliased = set(result.info.get("aliased_index", []))
        summary["coefficients"] = {
            name: {**{k: float(v[i]) for k, v in result.coefficients.items()},
                   **({"aliased": True} if i in aliased else {})}
            for i, name in enumerate(names)}
    summary["metrics"] = result.metrics
    if result.convergence is not None:
        summary["convergence"] = result.convergence
    summary["warnings"] = warnings
    return summary
