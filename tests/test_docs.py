"""The documentation keeps up with the code: man pages, --help examples, README examples, CI."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import click
import pytest

from mlfit.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMANDS = cli.list_commands(click.Context(cli, info_name="mlfit"))


def _load_gen_man():
    spec = importlib.util.spec_from_file_location("gen_man", ROOT / "scripts" / "gen_man.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_man = _load_gen_man()


def _readme() -> str:
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    return README.read_text()


def _fenced_lines(markdown: str) -> list[str]:
    """Every line inside ``` fences, stripped, without a leading '$ ' prompt."""
    lines, inside = [], False
    for raw in markdown.splitlines():
        if raw.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(raw.strip().removeprefix("$ "))
    return lines


def test_man_pages_are_up_to_date():
    stale = gen_man.stale_pages()
    assert not stale, f"stale man pages {stale}: run `python scripts/gen_man.py`"


def test_every_command_has_a_man_page():
    pages = gen_man.render_pages()
    assert set(pages) == {"mlfit.1", *(f"mlfit-{name}.1" for name in COMMANDS)}
    for name in COMMANDS:
        text = pages[f"mlfit-{name}.1"]
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
            assert f".SH {section}\n" in text, f"mlfit-{name}.1 has no {section} section"
        assert ".nf\nmlfit " in text, f"mlfit-{name}.1 lost the examples block"


def test_gen_man_check_names_stale_pages(tmp_path, capsys):
    assert gen_man.main(["--out-dir", str(tmp_path)]) == 0
    assert gen_man.main(["--check", "--out-dir", str(tmp_path)]) == 0
    page = tmp_path / "mlfit-normal-eq.1"
    page.write_text(page.read_text() + '.\\" edited by hand\n')
    (tmp_path / "mlfit-gone.1").write_text(".TH GONE 1\n")
    capsys.readouterr()
    assert gen_man.main(["--check", "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mlfit-normal-eq.1" in err and "mlfit-gone.1" in err and "mlfit.1" not in err


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example(runner, name):
    result = runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    examples = [ln for ln in result.output.splitlines() if ln.strip().startswith(f"mlfit {name} ")]
    assert examples, f"`mlfit {name} --help` shows no example line starting with 'mlfit {name} '"


@pytest.mark.parametrize("name", COMMANDS)
def test_readme_has_an_example(name):
    lines = _fenced_lines(_readme())
    assert any(ln.startswith(f"mlfit {name} ") for ln in lines), (
        f"README.md has no fenced example line starting with 'mlfit {name} '"
    )


def _quick_start_commands() -> list[str]:
    """The command lines of the first two ```sh blocks after '## Quick start', as .ci/run reads them."""
    text = _readme().split("## Quick start", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)[:2]
    return [ln for block in blocks for ln in block.splitlines() if ln.strip()]


def test_quick_start_is_two_commands_ci_runs():
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert "sample_data/" in commands[0] and "mlfit " in commands[0]
    assert re.search(r"\bpytest\b", commands[1])
    ci = (ROOT / ".ci" / "run").read_text()
    assert "## Quick start" in ci and "README.md" in ci, ".ci/run must run the README's commands"
