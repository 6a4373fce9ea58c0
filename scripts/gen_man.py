"""Generate the troff man pages in man/ from the Click definitions of the `mlfit` command.

    python scripts/gen_man.py           write man/mlfit.1 and man/mlfit-<command>.1
    python scripts/gen_man.py --check   exit 1, naming the stale pages, if any differ

Subcommands are enumerated from the group itself, so a new command gets a page without any
change here.  The text comes from the docstrings and option help (the same text as --help);
the exit codes from mlfit.errors.EXIT_MEANINGS.  The output depends only on the sources
and the mlfit version (no dates), so --check can run in CI.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAN_DIR = ROOT / "man"
sys.path.insert(0, str(ROOT))

import click

import mlfit
import mlfit.cli
from mlfit.errors import EXIT_MEANINGS

PROG = "mlfit"


# --------------------------------------------------------------------------- troff text


def esc(text: str) -> str:
    """Escape plain text for troff: backslashes, dashes, non-ASCII, control characters."""
    out = []
    for ch in text.replace("\\", "\\e").replace("-", "\\-"):
        out.append(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]")
    return "".join(out)


def line(text: str) -> str:
    """One input line of text; a leading . or ' would be read as a request."""
    return "\\&" + text if text.startswith((".", "'")) else text


def inline(text: str) -> str:
    """Escaped text with `code` spans in bold."""
    return re.sub(r"`([^`]+)`", r"\\fB\1\\fR", esc(text))


def paragraphs(help_text: str) -> list[tuple[bool, list[str]]]:
    """Click help text as (preformatted, lines) paragraphs; \\b marks a preformatted one."""
    help_text = inspect.cleandoc(help_text or "").split("\f")[0]
    out = []
    for para in re.split(r"\n\s*\n", help_text):
        lines = para.splitlines()
        if not lines:
            continue
        if lines[0].strip() == "\b":
            out.append((True, textwrap.dedent("\n".join(lines[1:])).splitlines()))
        else:
            out.append((False, [ln.strip() for ln in lines]))
    return out


def render_paragraphs(paras: list[tuple[bool, list[str]]]) -> list[str]:
    out = []
    for preformatted, lines in paras:
        if preformatted:
            out += [".PP", ".RS 4", ".nf", *(line(esc(ln)) for ln in lines), ".fi", ".RE"]
        else:
            out += [".PP", *(line(inline(ln)) for ln in lines)]
    return out


def flags(record: str) -> str:
    """'-y, --target COL' -> bold flags, italic metavar; '--a / --no-a' kept as alternatives."""
    groups = []
    for group in record.split(" / "):
        parts = []
        for token in group.split(", "):
            flag, _, metavar = token.partition(" ")
            parts.append(f"\\fB{esc(flag)}\\fR" + (f" \\fI{esc(metavar)}\\fR" if metavar else ""))
        groups.append(", ".join(parts))
    return " / ".join(groups)


def usage(pieces: list[str]) -> str:
    """Usage pieces with placeholders (OPTIONS, DATA, COMMAND) in italics."""
    return re.sub(r"\b([A-Z][A-Z_]+)\b", r"\\fI\1\\fR", esc(" ".join(pieces)))


# --------------------------------------------------------------------------- sections


def summary(command: click.Command) -> str:
    """The first paragraph of the help, as one line without its final full stop."""
    paras = paragraphs(command.help)
    return " ".join(paras[0][1]).rstrip(".") if paras else ""


def page(
    name: str,
    command: click.Command,
    ctx: click.Context,
    see_also: list[str],
    commands: list[tuple[str, str]] | None = None,
) -> str:
    """The whole man page for one command (the group when commands is given)."""
    title = name.replace(" ", "-")
    paras = paragraphs(command.help)
    if commands is None:
        description = paras[1:] or paras
        what = summary(command)
    else:
        description = paras
        what = mlfit.__doc__.split(":", 1)[-1].strip().rstrip(".")
    out = [
        f'.TH "{esc(title.upper())}" "1" "" "{PROG} {mlfit.__version__}" "{PROG} manual"',
        ".ad l",
        ".nh",  # ragged right, no hyphenation: flags and names stay whole
        ".SH NAME",
        f"{esc(title)} \\- {esc(what)}",
        ".SH SYNOPSIS",
        f"\\fB{esc(name)}\\fR {usage(command.collect_usage_pieces(ctx))}",
        ".SH DESCRIPTION",
        *render_paragraphs(description),
    ]
    if commands:
        out.append(".SH COMMANDS")
        for sub, text in commands:
            out += [".TP", f"\\fB{esc(sub)}\\fR", line(esc(text) + ".")]
        out += [".PP", f"See \\fB{esc(PROG)}\\-\\fICOMMAND\\fR(1) for the options of each one."]
    out.append(".SH OPTIONS")
    for param in command.get_params(ctx):
        record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
        if record is None:  # arguments (in the synopsis) and hidden options
            continue
        out += [".TP", flags(record[0]), line(inline(record[1]))]
    out.append(".SH EXIT STATUS")
    for code, meaning in EXIT_MEANINGS.items():
        out += [".TP", f"\\fB{int(code)}\\fR", line(esc(meaning[0].upper() + meaning[1:]) + ".")]
    out.append(".SH SEE ALSO")
    out.append(",\n".join(f".BR {esc(ref)} (1)" for ref in see_also))
    return "\n".join(out) + "\n"


def render_pages() -> dict[str, str]:
    """{file name: troff text} for the group and every subcommand it lists."""
    group = mlfit.cli.cli
    # Context settings (e.g. -h as well as --help) apply as when the command runs.
    ctx = click.Context(group, info_name=PROG, **group.context_settings)
    names = group.list_commands(ctx)
    commands = {name: group.get_command(ctx, name) for name in names}
    pages = {
        f"{PROG}.1": page(
            PROG,
            group,
            ctx,
            [f"{PROG}-{n}" for n in names],
            [(n, summary(c)) for n, c in commands.items()],
        )
    }
    for name, command in commands.items():
        sub_ctx = click.Context(command, info_name=name, parent=ctx, **command.context_settings)
        see_also = [PROG] + [f"{PROG}-{n}" for n in names if n != name]
        pages[f"{PROG}-{name}.1"] = page(f"{PROG} {name}", command, sub_ctx, see_also)
    return pages


def stale_pages(man_dir: Path = MAN_DIR) -> list[str]:
    """Pages that differ from what would be generated, are missing, or have no command left."""
    pages = render_pages()
    stale = [
        name
        for name, text in pages.items()
        if not (man_dir / name).exists() or (man_dir / name).read_text() != text
    ]
    stale += sorted(p.name for p in man_dir.glob(f"{PROG}*.1") if p.name not in pages)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the pages that are out of date",
    )
    parser.add_argument("--out-dir", type=Path, default=MAN_DIR, help="default: man/")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages(args.out_dir)
        for name in stale:
            print(f"stale: {args.out_dir / name}", file=sys.stderr)
        if stale:
            print("Run: python scripts/gen_man.py", file=sys.stderr)
        return 1 if stale else 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    pages = render_pages()
    for name, text in pages.items():
        path = args.out_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    for path in sorted(args.out_dir.glob(f"{PROG}*.1")):
        if path.name not in pages:
            path.unlink()
            print(f"removed {path} (no such command)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
