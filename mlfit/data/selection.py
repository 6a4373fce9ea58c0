"""Which columns a command asked for and what each is for, checked against the header."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from mlfit.data.parse_errors import _stray_word_message, delimiter_hint
from mlfit.data.sources import Dialect
from mlfit.errors import DataError

NA_CHOICES = ("error", "drop", "required")  # required: a command with no --na (predict)
TARGET_KINDS = ("numeric", "label", "none", "optional", "auto")  # see mlfit.solvers
FEATURE_KINDS = ("numeric", "text")


@dataclass(frozen=True)
class Selection:
    """Everything a command says about its columns, so fit and predict share one validator.

    target: None means the last column, unless target_kind is "none" (a model without a
    target) or "optional" (a model that fits no target but reports against labels when given
    one, e.g. a mixture).  features: None means every column that is not the target, dropped,
    an extra or passed through.  extras: role -> column, e.g. {"offset": "log_exposure"}:
    numeric, validated like features, never a feature.  kinds: column -> "numeric" | "text", the
    kind a feature must have (predict passes the fitted model's).  roles: column -> what it is
    for, named in messages.  passthrough: columns copied unvalidated (predict --id); CSV/TSV
    text is kept as written ('007' stays '007'), so a passed-through CSV column that is also a
    feature should have a declared kind.  extra_domains: role -> (a key of
    mlfit.domains.TARGET_DOMAINS, who needs it), checked as rows are read (weights must be
    non-negative).  label_extras: roles whose column holds labels (numbers or text, as read),
    e.g. cluster ids: checked for missing values only; a feature too when --features names it.
    target_bounds: roles whose column bounds the target row by row (successes <= trials).
    """

    target: str | None = None
    features: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    na: str = "error"
    target_kind: str = "numeric"
    extras: Mapping[str, str] = field(default_factory=dict, hash=False)
    kinds: Mapping[str, str] = field(default_factory=dict, hash=False)
    roles: Mapping[str, str] = field(default_factory=dict, hash=False)
    passthrough: tuple[str, ...] = ()
    numeric_features: bool = False  # every feature must be numbers (a model without one-hot)
    dialect: Dialect = field(default_factory=Dialect)  # how CSV/TSV text is split and read
    # (a key of mlfit.domains.TARGET_DOMAINS, who needs it: 'the poisson family') or None
    target_domain: tuple[str, str] | None = None
    extra_domains: Mapping[str, tuple[str, str]] = field(default_factory=dict, hash=False)
    label_extras: tuple[str, ...] = ()
    target_bounds: tuple[str, ...] = ()

    def __post_init__(self):
        # Wrong values here are programming errors, not user errors: ValueError, not DataError.
        if self.na not in NA_CHOICES:
            raise ValueError(f"na must be one of {NA_CHOICES}, not {self.na!r}")
        if self.target_kind not in TARGET_KINDS:
            raise ValueError(f"target_kind must be one of {TARGET_KINDS}, not {self.target_kind!r}")
        bad = {k for k in self.kinds.values() if k not in FEATURE_KINDS}
        if bad:
            raise ValueError(f"kinds must be one of {FEATURE_KINDS}, not {sorted(bad)}")
        for name in ("extras", "kinds", "roles", "extra_domains"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def csv_text(self) -> list[str]:
        """Columns a CSV/TSV reader must keep as strings from the first block on."""
        text = [c for c, k in self.kinds.items() if k == "text"]
        return list(dict.fromkeys([*text, *self.passthrough]))


@dataclass(frozen=True)
class _Columns:
    """A Selection resolved against a header: the columns to read and what each one is for."""

    source: str
    model: str
    target: str | None
    target_kind: str
    features: list[str]
    extras: dict[str, str]  # role -> column
    passthrough: tuple[str, ...]
    kinds: Mapping[str, str]
    roles: dict[str, str]  # column -> e.g. "the offset", for messages
    na: str
    target_domain: tuple[str, str] | None = None  # as Selection.target_domain
    extra_domains: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # as Selection
    label_extras: tuple[str, ...] = ()  # as Selection
    target_bounds: tuple[str, ...] = ()  # as Selection, the roles given

    @property
    def used(self) -> list[str]:
        """The validated columns, in the order messages list them: features, extras, target."""
        target = [self.target] if self.target else []
        return list(dict.fromkeys([*self.features, *self.extras.values(), *target]))

    def must_be_numeric(self, name: str) -> bool:
        if name == self.target:
            return self.target_kind == "numeric"
        labels = {self.extras[r] for r in self.label_extras if r in self.extras}
        if name in labels:
            return False
        return name in self.extras.values() or self.kinds.get(name) == "numeric"

    def named(self, name: str) -> str:
        """'Column 'x' (the offset)': a column with its role, if it has one."""
        role = self.roles.get(name)
        return f"Column '{name}'" + (f" ({role})" if role else "")

    def not_numeric(self, name: str, row: str, value) -> str:
        """The message for text found at `row` of a column that holds (or must hold) numbers."""
        if name == self.target and self.target_kind == "numeric":
            return (
                f"Target column '{name}' in {self.source} is not numeric ({row} has "
                f"'{value}'); {self.model} needs a numeric target."
            )
        if self.must_be_numeric(name):
            return (
                f"{self.named(name)} in {self.source} must be numeric ({row} has '{value}'); "
                f"{self.model} needs numbers there."
            )
        return _stray_word_message(name, self.source, row, value)


def _check_header(names: list[str], src: str) -> None:
    """Every column named, and the names unique as options match them: up to surrounding
    spaces (`--drop 'x '` and `--drop x` both mean the column 'x ')."""
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        key = name.strip()
        if not key:
            raise DataError(
                f"Column {i + 1} of {src} has no name (a trailing comma on the header line?). "
                "Name it in the header, or remove the empty column."
            )
        if key in seen:
            spaces = f" (up to spaces: {seen[key]!r} and {name!r})" if seen[key] != name else ""
            raise DataError(
                f"{src} has two columns named '{key}'{spaces}; column names must be unique."
            )
        seen[key] = name


def _as_in_header(names: list[str], sel: Selection) -> Selection:
    """The selection with every column it names spelled as in the header (the one rule:
    names match up to surrounding spaces, which _check_header keeps unambiguous)."""
    actual = {n.strip(): n for n in names}

    def real(name):
        return actual.get(name.strip(), name) if isinstance(name, str) else name

    return replace(
        sel,
        target=real(sel.target),
        features=None if sel.features is None else tuple(real(n) for n in sel.features),
        drop=tuple(real(n) for n in sel.drop),
        extras={role: real(col) for role, col in sel.extras.items()},
        kinds={real(n): kind for n, kind in sel.kinds.items()},
        roles={real(n): role for n, role in sel.roles.items()},
        passthrough=tuple(real(n) for n in sel.passthrough),
    )


def unknown_column_message(name: str, names: list[str], src: str, role: str | None = None) -> str:
    """role: what the column is for, e.g. "the model's feature", named in the message."""
    same_but_case = [c for c in names if c.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    what = f"Column '{name}'" + (f" ({role})" if role else "")
    return f"{what} not found in {src}.{hint} Columns: {shown}."


def resolve_columns(
    names: list[str], sel: Selection, src: str, model: str = "this model"
) -> tuple[str | None, list[str]]:
    """Target (None for a model without one) and feature names; every name checked to exist."""
    columns = _resolve(names, sel, src, model)
    return columns.target, columns.features


def _resolve(names: list[str], sel: Selection, src: str, model: str) -> _Columns:
    sel = _as_in_header(names, sel)
    roles = {col: f"the {role}" for role, col in sel.extras.items()}
    roles.update(sel.roles)
    if sel.target_kind == "none" and sel.target is not None:
        raise DataError(
            f"{model} takes no target; leave out --target {sel.target} (every column not "
            "dropped is a feature)."
        )
    asked = [
        *(sel.features or ()),
        *sel.drop,
        *([sel.target] if sel.target else []),
        *sel.extras.values(),
        *sel.passthrough,
        *sel.kinds,
    ]
    for name in asked:
        if name not in names:
            raise DataError(unknown_column_message(name, names, src, roles.get(name)))
    if sel.target_kind == "none" or (sel.target_kind == "optional" and sel.target is None):
        target = None
    else:
        target = sel.target or names[-1]
    if target is not None and target in sel.drop:
        raise DataError(
            f"Column '{target}' is the target and cannot be dropped; choose another "
            "target with --target."
        )
    labels = {sel.extras[r] for r in sel.label_extras if r in sel.extras}
    for col in sel.extras.values():
        if col == target:
            raise DataError(
                f"Column '{col}' is the target and cannot also be {roles[col]}; choose another "
                "target with --target."
            )
        if col in sel.drop and col not in labels:
            raise DataError(f"Column '{col}' is {roles[col]} and cannot be dropped.")
        if sel.features is not None and col in sel.features and col not in labels:
            raise DataError(f"Column '{col}' is {roles[col]}; remove it from --features.")
    if sel.features is not None:
        if target is not None and target in sel.features:
            raise DataError(f"Column '{target}' is the target; remove it from --features.")
        features = [f for f in sel.features if f not in sel.drop]
    else:
        left_out = {target, *sel.drop, *sel.extras.values(), *sel.passthrough}
        features = [n for n in names if n not in left_out]
    if not features:
        raise DataError(
            f"No feature columns left in {src}: give --features, or drop fewer columns."
            + delimiter_hint(names)
        )
    _check_declared_text(sel, features, target, model)
    return _Columns(
        src,
        model,
        target,
        sel.target_kind,
        features,
        dict(sel.extras),
        tuple(sel.passthrough),
        {**{f: "numeric" for f in features}, **sel.kinds} if sel.numeric_features else sel.kinds,
        roles,
        sel.na,
        sel.target_domain if target else None,
        {r: d for r, d in sel.extra_domains.items() if r in sel.extras},
        tuple(sel.label_extras),
        tuple(r for r in sel.target_bounds if r in sel.extras) if target else (),
    )


def _check_declared_text(sel: Selection, features: list[str], target, model: str) -> None:
    """Columns declared categories (--categorical) must be features the model can one-hot."""
    for name, kind in sel.kinds.items():
        if kind != "text" or name in features:
            continue
        why = "the target" if name == target else "not a feature (dropped or not in --features)"
        raise DataError(
            f"--categorical names '{name}', which is {why}; it applies to feature columns."
        )
    if sel.numeric_features and any(k == "text" for k in sel.kinds.values()):
        raise DataError(f"{model} takes numeric features only; leave out --categorical.")
