"""The options that say what a command reads: DATA and the column selection (--target,
--features, --drop, --na, --categorical) and the CSV dialect (--delimiter, --decimal)."""

from __future__ import annotations

import click

from mlfit.data import Dialect, Selection


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    return names


def data_options_with(target_help: str):
    """DATA, --target/-y (described by target_help), --features/-x, --drop, --na,
    --categorical."""
    return lambda f: _data_options(f, target_help)


def data_options(f):
    """DATA, --target/-y, --features/-x, --drop, --na, --categorical."""
    return _data_options(f, "Target column (default: the last).")


#: Where --categorical leaves its columns for selection() (click's per-invocation store, so
#: that every command gets the option without a parameter of its own).
CATEGORICAL = "mlfit.categorical"


def _remember_categorical(ctx, param, value):
    ctx.meta[CATEGORICAL] = _names(value) or ()


#: Where --delimiter and --decimal leave their values for dialect() (as CATEGORICAL).
DIALECT = "mlfit.dialect"


class DelimiterType(click.ParamType):
    """One character that separates fields; `tab` or `\\t` for a tab."""

    name = "CHAR"

    def convert(self, value, param, ctx):
        text = {"tab": "\t", "\\t": "\t", "space": " "}.get(value.lower(), value)
        if len(text) != 1 or text in '"\r\n' or text.isalnum() or text == ".":
            self.fail(
                f"{value!r} cannot separate fields: give one character such as ';', '|' "
                "or tab (not a letter, digit, point, quote or newline).",
                param,
                ctx,
            )
        return text


def _remember_dialect(ctx, param, value):
    ctx.meta.setdefault(DIALECT, {})[param.name] = value


def dialect_options(f):
    """--delimiter and --decimal, for every command that reads a table."""
    f = click.option(
        "--decimal",
        type=click.Choice([".", ","]),
        default=".",
        expose_value=False,
        callback=_remember_dialect,
        help="Decimal mark of numbers in CSV/TSV files: ',' reads 3,14 as 3.14 (with "
        "--delimiter ';', as such files are written).",
    )(f)
    return click.option(
        "--delimiter",
        type=DelimiterType(),
        expose_value=False,
        callback=_remember_dialect,
        help="Field separator of CSV/TSV files (default: a comma; a tab for .tsv).",
    )(f)


def dialect() -> Dialect:
    """The --delimiter and --decimal of the running command."""
    ctx = click.get_current_context(silent=True)
    given = ctx.meta.get(DIALECT, {}) if ctx else {}
    return Dialect(given.get("delimiter"), given.get("decimal") or ".")


def _data_options(f, target_help: str):
    f = dialect_options(f)
    f = click.option(
        "--categorical",
        metavar="A,B",
        expose_value=False,
        callback=_remember_categorical,
        help="Numeric columns whose values are categories (codes such as 1, 2, 3), one-hot "
        "encoded like text, as R's factor().",
    )(f)
    f = click.option(
        "--na",
        type=click.Choice(["error", "drop"]),
        default="error",
        show_default=True,
        help="Rows with missing values: stop with an error, or drop them.",
    )(f)
    f = click.option("--drop", metavar="A,B", help="Columns to leave out.")(f)
    f = click.option(
        "--features",
        "-x",
        metavar="A,B",
        help="Feature columns (default: all but the target and --drop).",
    )(f)
    f = click.option("--target", "-y", metavar="COL", help=target_help)(f)
    return click.argument("data", metavar="DATA")(f)


def selection(target, features, drop, na) -> Selection:
    ctx = click.get_current_context(silent=True)
    categorical = ctx.meta.get(CATEGORICAL, ()) if ctx else ()
    return Selection(
        target=target,
        features=_names(features),
        drop=_names(drop) or (),
        na=na,
        kinds={name: "text" for name in categorical},
        roles={name: "a --categorical column" for name in categorical},
        dialect=dialect(),
    )
