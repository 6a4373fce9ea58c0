"""Option values, as a class: every numeric option of every command refuses NaN and infinity.

NaN passes every range comparison, so a plain float option would accept `--tol nan` and the
fit would silently misbehave (every epoch run, every row one class, the penalty dropped).
"""

from __future__ import annotations

import click
import pytest

from mlfit.cli import cli
from mlfit.commands import FiniteFloat

CONTEXT = click.Context(cli, info_name="mlfit")
COMMANDS = {name: cli.get_command(CONTEXT, name) for name in cli.list_commands(CONTEXT)}
FLOAT_OPTIONS = [
    (name, param.opts[0])
    for name, command in COMMANDS.items()
    for param in command.params
    if isinstance(param, click.Option) and isinstance(param.type, click.types.FloatParamType)
]


def test_every_float_option_is_finite_checked():
    assert FLOAT_OPTIONS, "no float options found"
    for name, command in COMMANDS.items():
        for param in command.params:
            if isinstance(param.type, click.types.FloatParamType):
                assert isinstance(param.type, FiniteFloat), (name, param.opts)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity"])
@pytest.mark.parametrize(("command", "flag"), FLOAT_OPTIONS)
def test_non_finite_values_are_usage_errors(runner, houses_csv, tmp_path, command, flag, value):
    args = ["model.json"] if command == "predict" else []
    result = runner.invoke(cli, [command, *args, houses_csv, f"{flag}={value}"])
    assert result.exit_code == 2, (command, flag, value, result.stderr)
    assert "finite" in result.stderr or "range" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
