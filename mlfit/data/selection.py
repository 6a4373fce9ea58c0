"""Which columns the user asked for, checked against the header."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from mlfit.errors import DataError


@dataclass(frozen=True)
class Selection:
    """What the user asked for: which columns, and what to do with missing values."""

    target: str | None = None
    features: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    na: str = "error"


def _check_header(names: list[str], src: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise DataError(f"{src} has two columns named '{name}'; column names must be unique.")
        seen.add(name)


def unknown_column_message(name: str, names: list[str], src: str) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"Column '{name}' not found in {src}.{hint} Columns: {shown}."


def resolve_columns(names: list[str], sel: Selection, src: str) -> tuple[str, list[str]]:
    """Target and feature names from the user's options; every name checked to exist."""
    for name in [*(sel.features or ()), *sel.drop, *([sel.target] if sel.target else [])]:
        if name not in names:
            raise DataError(unknown_column_message(name, names, src))
    target = sel.target or names[-1]
    if target in sel.drop:
        raise DataError(
            f"Column '{target}' is the target and cannot be dropped; choose another "
            "target with --target."
        )
    if sel.features is not None:
        if target in sel.features:
            raise DataError(f"Column '{target}' is the target; remove it from --features.")
        features = [f for f in sel.features if f not in sel.drop]
    else:
        features = [n for n in names if n != target and n not in sel.drop]
    if not features:
        raise DataError(
            f"No feature columns left in {src}: give --features, or drop fewer columns."
        )
    return target, features
