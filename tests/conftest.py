"""Shared fixtures: a seeded rng, tiny tables written to tmp_path, the Click runner, mlfit in a
subprocess, and a checker for the one-line error contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

SEED = 20240611


@pytest.fixture
def rng() -> np.random.Generator:
    """The one source of randomness in tests: fixed seed, fresh per test."""
    return np.random.default_rng(SEED)


@pytest.fixture
def runner() -> CliRunner:
    """click>=8.2: result.stdout and result.stderr are kept apart."""
    return CliRunner()


@pytest.fixture
def write_csv(tmp_path: Path):
    """write_csv(text, name="data.csv") -> path (str) of a file in tmp_path.

    text is a str (written as is), bytes, or a list of rows (lists/tuples, the first the header).
    """

    def write(text, name: str = "data.csv") -> str:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        elif isinstance(text, str):
            path.write_text(text)
        else:
            path.write_text("".join(",".join(str(v) for v in row) + "\n" for row in text))
        return str(path)

    return write


def make_houses(rng: np.random.Generator, n: int = 30):
    """A tiny pandas DataFrame shaped like sample_data/houses.csv: id, area, rooms, district,
    price, with price linear in the others plus noise."""
    import pandas as pd

    area = rng.uniform(40, 160, n).round(1)
    rooms = rng.integers(1, 7, n)
    district = np.array(["centre", "north", "south"])[np.arange(n) % 3]
    effect = {"centre": 0.0, "north": -40.0, "south": -55.0}
    price = (
        100 + 2.0 * area + 5.0 * rooms + np.vectorize(effect.get)(district) + rng.normal(0, 10, n)
    ).round(2)
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "area": area,
            "rooms": rooms,
            "district": district,
            "price": price,
        }
    )


@pytest.fixture(scope="session")
def houses_base():
    """The session's one houses DataFrame (do not modify; use `houses` for a copy)."""
    return make_houses(np.random.default_rng(SEED))


@pytest.fixture
def houses(houses_base):
    """DataFrame id, area, rooms, district (3 levels), price; 30 rows, fixed seed."""
    return houses_base.copy()


@pytest.fixture
def houses_csv(houses, tmp_path) -> str:
    path = tmp_path / "houses.csv"
    houses.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def mlfit_proc():
    """mlfit_proc(*args, input=bytes|None, cwd=None) -> CompletedProcess of `python -m mlfit`."""

    def run(*args, input: bytes | None = None, cwd=None, timeout: float = 60):
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        env.pop("MLFIT_TRACEBACK", None)
        return subprocess.run(
            [sys.executable, "-m", "mlfit", *map(str, args)],
            input=input,
            capture_output=True,
            cwd=cwd,
            check=False,
            timeout=timeout,
            env=env,
        )

    return run


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


@pytest.fixture
def strict_json():
    """strict_json(text): json.loads failing on NaN, Infinity, -Infinity (Python writes them,
    but they are not JSON)."""
    return lambda text: json.loads(text, parse_constant=_reject_constant)


@pytest.fixture
def assert_error():
    """assert_error(result, exit_code, *words): the one-line error contract.

    result: a click Result or a CompletedProcess.  Checks the exit code, that stderr is exactly
    one line starting with 'Error:' with no traceback, that stdout is empty, and that every word
    appears in the message (case-insensitive).  Returns the message.
    """

    def check(result, exit_code: int, *words: str) -> str:
        if isinstance(result, subprocess.CompletedProcess):
            code, out, err = result.returncode, result.stdout.decode(), result.stderr.decode()
        else:
            code, out, err = result.exit_code, result.stdout, result.stderr
        assert code == exit_code, (code, out, err)
        assert "Traceback" not in err, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("Error: "), err
        assert out == "", out
        for word in words:
            assert word.lower() in lines[0].lower(), (word, lines[0])
        return lines[0]

    return check
