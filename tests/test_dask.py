"""--engine dask: fits on a Dask cluster (one LocalCluster with two worker processes for the
module) equal the in-memory fit of the concatenated table, with the same errors and model
files; an unreachable scheduler fails fast; a worker killed mid-fit changes nothing."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_json import fit_json
from distributed import LocalCluster
from test_parts import write_table_parts

from mlfit import dask_engine, dask_passes
from mlfit.cli import cli
from mlfit.solvers import SOLVERS, reads_chunks, runs_distributed

#: The command-line arguments each distributed model is tested with (a new distributed model
#: must be added here: the test over the registry fails until it is).
MODEL_ARGS = {
    "normal-eq": ["-y", "y"],
    "newton": ["-y", "label", "--family", "logistic", "--drop", "y"],
    "gmm": ["--drop", "y,label", "--k", "2", "--seed", "1"],
    "gda": ["-y", "label", "--drop", "y"],
    "naive-bayes": ["-y", "label", "--drop", "y"],
}

#: Bytes per row and pass that a model's passes move besides its statistics.
PER_ROW_BYTES = {"gda": 64, "naive-bayes": 64}


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    ) as c:
        yield c


def make_table(n=240, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X[: n // 2] += 2.5  # two clusters, for the mixture
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=n)
    label = (X[:, 0] + rng.normal(size=n) > 1.2).astype(int)
    return {"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "y": y, "label": label}


def write(tmp_path, columns, fmt="parquet", parts=4, compress=False, name="parts"):
    """The table in `parts` files (see tests.test_parts.write_parts), and as one CSV."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    folder = write_table_parts(tmp_path, columns, fmt, parts, compress, name)
    whole = tmp_path / f"{name}-whole.csv"
    pcsv.write_csv(pa.table(columns), whole)
    return str(folder), str(whole)


def on(cluster):
    return ["--engine", "dask", "--scheduler", cluster.scheduler_address]


def assert_same_fit(a: dict, b: dict, rel=1e-10):
    """Every number of two summaries equal to rel (TSQR and summation order differ)."""
    for section in ("metrics", "coefficients", "components", "classes"):
        if section in a:
            assert _numbers(b[section]) == pytest.approx(_numbers(a[section]), rel=rel), section
    assert a["data"] == b["data"]


def _numbers(value) -> list:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return [value] if isinstance(value, float) else []


@pytest.mark.parametrize("model", [m for m, s in SOLVERS.items() if runs_distributed(s)])
def test_every_distributed_model_equals_its_in_memory_fit(runner, tmp_path, cluster, model):
    folder, whole = write(tmp_path, make_table())
    local = fit_json(runner, model, whole, *MODEL_ARGS[model])
    dist = fit_json(runner, model, folder, *MODEL_ARGS[model], *on(cluster))
    local["data"]["source"] = folder
    assert_same_fit(local, dist)
    engine = dist["engine"]
    assert engine["engine"] == "dask" and engine["scheduler"] == cluster.scheduler_address
    assert engine["workers"] == 2 and engine["partitions"] == 4 and engine["passes"] >= 1
    assert engine["rows_to_client"] == 0  # every pass a fold on the workers
    # statistics (p x p per partition), plus what a model needs per row: the classifiers
    # send each row's class code to the workers and get its probabilities back (the AUC)
    per_pass = 8_000 + PER_ROW_BYTES.get(model, 0) * dist["data"]["rows_used"]
    assert 0 < engine["bytes_moved"] < per_pass * engine["passes"]
    assert "engine" not in local


@pytest.mark.parametrize(
    "fmt,compress", [("csv", False), ("tsv", True), ("parquet", False), ("jsonl", True)]
)
def test_each_format_of_parts(runner, tmp_path, cluster, fmt, compress):
    columns = make_table()
    folder, whole = write(tmp_path, columns, fmt, compress=compress)
    pattern = f"{folder}/part-*.{fmt}" + (".gz" if compress else "")
    local = fit_json(runner, "normal-eq", whole, "-y", "y")
    dist = fit_json(runner, "normal-eq", pattern, "-y", "y", *on(cluster))
    local["data"]["source"] = pattern
    assert_same_fit(local, dist)


def test_one_parquet_file_is_split_by_row_groups(runner, tmp_path, cluster):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    columns = make_table()
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=70)  # 4 row groups
    whole = tmp_path / "whole.csv"
    pcsv.write_csv(pa.table(columns), whole)
    local = fit_json(runner, "newton", str(whole), *MODEL_ARGS["newton"])
    dist = fit_json(runner, "newton", str(path), *MODEL_ARGS["newton"], *on(cluster))
    assert dist["engine"]["partitions"] == 4
    local["data"]["source"] = str(path)
    assert_same_fit(local, dist)
    x1 = columns["x1"].tolist()
    x1[100] = x1[230] = None  # in the second and the fourth row group
    pq.write_table(pa.table({**columns, "x1": x1}), path, row_group_size=70)
    alone = runner.invoke(cli, ["normal-eq", str(path), "-y", "y", "--chunk-rows", "50"])
    split = runner.invoke(cli, ["normal-eq", str(path), "-y", "y", *on(cluster)])
    assert alone.exit_code == split.exit_code == 3
    assert split.stderr == alone.stderr and "2 " in split.stderr and "101" in split.stderr


def test_model_file_is_a_local_fits(runner, tmp_path, cluster):
    folder, whole = write(tmp_path, make_table())
    a, b = tmp_path / "local.model", tmp_path / "dask.model"
    fit_json(runner, "normal-eq", folder, "-y", "y", "-o", str(a))
    fit_json(runner, "normal-eq", folder, "-y", "y", "-o", str(b), *on(cluster))
    local, dist = json.loads(a.read_text()), json.loads(b.read_text())
    assert _keys(local) == _keys(dist) and "engine" not in dist["fit"]
    assert _numbers(dist) == pytest.approx(_numbers(local), rel=1e-10)
    pa = runner.invoke(cli, ["predict", str(a), whole])
    pb = runner.invoke(cli, ["predict", str(b), whole])  # no cluster needed
    assert np.allclose(_column(pa.stdout), _column(pb.stdout), rtol=1e-12)


def _keys(d):
    return {k: _keys(v) for k, v in d.items()} if isinstance(d, dict) else None


def _column(csv_text: str) -> np.ndarray:
    return np.array([float(v) for v in csv_text.split()[1:]])


def test_predict_on_the_cluster_writes_what_predict_writes(runner, tmp_path, cluster):
    columns = make_table()
    columns["id"] = np.array([f"r{i:03d}" for i in range(len(columns["y"]))], dtype=object)
    folder, whole = write(tmp_path, columns, "csv")
    model = str(tmp_path / "m.model")
    fit_json(runner, "gda", whole, "-y", "label", "--drop", "y,id", "-o", model)
    args = ["predict", model, folder, "--id", "id", "--proba", "--chunk-rows", "25"]
    local = runner.invoke(cli, args)
    out = tmp_path / "out.csv"
    dist = runner.invoke(cli, [*args, *on(cluster), "--output", str(out)])
    assert dist.exit_code == 0, dist.stderr
    assert out.read_text() == local.stdout and local.stdout.count("\n") == 241


def test_a_bad_part_gets_the_local_message(runner, tmp_path, cluster):
    folder, _ = write(tmp_path, make_table(), "csv")
    for name, row in (("part-002.csv", 4), ("part-003.csv", 9)):  # the first in order counts
        path = Path(folder) / name
        lines = path.read_text().splitlines()
        fields = lines[row].split(",")
        fields[1] = "n/a?"
        lines[row] = ",".join(fields)
        path.write_text("\n".join(lines) + "\n")
    local = runner.invoke(cli, ["normal-eq", folder, "-y", "y"])
    dist = runner.invoke(cli, ["normal-eq", folder, "-y", "y", *on(cluster)])
    assert local.exit_code == dist.exit_code == 3
    assert dist.stderr == local.stderr
    assert "part-002.csv" in dist.stderr and "line 5" in dist.stderr


def test_models_that_cannot_run_distributed_say_so(runner, tmp_path):
    _, whole = write(tmp_path, make_table())
    result = runner.invoke(cli, ["mlp", whole, "-y", "y", "--engine", "dask"])
    assert result.exit_code == 2
    assert "mlp cannot run on a Dask cluster" in result.stderr and "--chunk-rows" in result.stderr
    for name, spec in SOLVERS.items():  # --engine exactly where --chunk-rows is
        flags = {p.opts[0] for p in cli.get_command(None, name).params if p.opts}
        assert ("--engine" in flags) == reads_chunks(spec), name
    assert set(MODEL_ARGS) == {m for m, s in SOLVERS.items() if runs_distributed(s)}


def test_unreachable_scheduler_fails_fast(runner, tmp_path):
    import socket
    import threading

    _, whole = write(tmp_path, make_table())
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    server = socket.create_server(("127.0.0.1", 0))  # answers, but not as Dask does

    def answer():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    # a refused connection fails at once; a server that is not Dask's within the timeout
    cases = {
        closed: ("Connection refused", 2),
        server.getsockname()[1]: ("does not answer as a Dask", dask_engine.CONNECT_SECONDS + 3),
    }
    try:
        for port, (why, seconds) in cases.items():
            start = time.perf_counter()
            address = f"tcp://127.0.0.1:{port}"
            args = ["normal-eq", whole, "-y", "y", "--engine", "dask", "--scheduler", address]
            result = runner.invoke(cli, args)
            assert time.perf_counter() - start < seconds
            assert result.exit_code == 1
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and f"Cannot use the Dask scheduler at {address}" in lines[0]
            assert why in lines[0]
    finally:
        server.close()


def test_scheduler_without_dask_engine_is_a_usage_error(runner, tmp_path):
    _, whole = write(tmp_path, make_table())
    result = runner.invoke(cli, ["normal-eq", whole, "-y", "y", "--scheduler", "tcp://x:1"])
    assert result.exit_code == 2 and "--scheduler needs --engine dask" in result.stderr


def test_a_local_fit_never_imports_dask(tmp_path):
    _, whole = write(tmp_path, make_table())
    code = (
        "import sys; from click.testing import CliRunner; from mlfit.cli import cli; "
        f"args = ['normal-eq', {whole!r}, '-y', 'y', '-q', '--chunk-rows', '50']; "
        "r = CliRunner().invoke(cli, args); "
        "assert r.exit_code == 0, r.output; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())


def test_without_an_address_a_local_cluster_is_started_and_closed(runner, tmp_path):
    import psutil

    def workers() -> set:  # not multiprocessing's resource tracker: it lives as long as we do
        found = psutil.Process().children(recursive=True)
        return {p.pid for p in found if "resource_tracker" not in " ".join(p.cmdline())}

    folder, whole = write(tmp_path, make_table())
    before = workers()
    dist = fit_json(runner, "normal-eq", folder, "-y", "y", "--engine", "dask")
    assert dist["engine"]["scheduler"].startswith("tcp://127.0.0.1:")
    assert dist["engine"]["workers"] == (os.cpu_count() or 1)
    assert_same_fit({**fit_json(runner, "normal-eq", whole, "-y", "y"), "data": dist["data"]}, dist)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the workers exit as the cluster closes
        left = workers() - before
        if not left:
            break
        time.sleep(0.2)
    assert not left


def test_ctrl_c_cancels_the_fit_and_leaves_no_file(tmp_path, cluster):
    from distributed import Client

    folder, _ = write(tmp_path, make_table(n=20_000), parts=4)
    model = tmp_path / "mix.model"
    cmd = [sys.executable, "-m", "mlfit", "gmm", folder, "--drop", "y,label", "--k", "1-8"]
    cmd += ["--covariance", "all", *on(cluster), "-o", str(model), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(client.has_what().values()):
            time.sleep(0.1)  # until the parts are on the workers: the fit is under way
        time.sleep(0.5)
        assert proc.poll() is None, "the fit ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == "Interrupted."
        assert sorted(p.name for p in tmp_path.iterdir()) == ["parts", "parts-whole.csv"]
        deadline = time.monotonic() + 10  # the client went away: its tasks are dropped
        while time.monotonic() < deadline and any(client.processing().values()):
            time.sleep(0.1)
        assert not any(client.processing().values())


def test_a_worker_killed_mid_fit_changes_nothing(runner, tmp_path, cluster, monkeypatch):
    """Kill the worker holding most partitions after the second pass of a newton fit: Dask
    reads its partitions again on the other worker, and the answer is the same.  (Last in
    the module: the cluster's nanny restarts the worker afterwards.)"""
    folder, whole = write(tmp_path, make_table(n=2000), parts=8)
    args = MODEL_ARGS["newton"]
    local = fit_json(runner, "newton", whole, *args)
    fold, killed = dask_passes.DaskChunks.fold, []

    def fold_then_kill(self, *a, **k):
        out = fold(self, *a, **k)
        if getattr(self, "_base", self).passes == 2 and not killed:
            client = self.session.client
            held = client.has_what()
            worker = max(held, key=lambda w: len(held[w]))
            assert held[worker]  # it holds partitions, which are lost with it
            os.kill(client.run(os.getpid)[worker], signal.SIGKILL)
            killed.append(worker)
        return out

    monkeypatch.setattr(dask_passes.DaskChunks, "fold", fold_then_kill)
    dist = fit_json(runner, "newton", folder, *args, *on(cluster))
    assert killed and dist["engine"]["passes"] > 2
    local["data"]["source"] = folder
    assert_same_fit(local, dist)
