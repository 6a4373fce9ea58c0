"""Fits on a Dask cluster: the session (a scheduler given by address, or a local cluster),
the parts of DATA read and persisted by the workers (mlfit.dask_parts), and each pass over
them a fold per partition plus a tree of merges (mlfit.dask_passes): only the small
statistics travel.

Imported only for --engine dask (mlfit.engine.cluster), so a local fit never imports Dask.
Workers read their parts with mlfit's own loader, so a bad part gets the message a local fit
would give; the model file is the one a local fit writes, so predict needs no cluster.
"""

from __future__ import annotations

import logging
import os

from distributed import Client, LocalCluster

from mlfit.dask_parts import DaskStream, _predict_part
from mlfit.dask_passes import _cluster_error, _nbytes, _share
from mlfit.data import Selection
from mlfit.engine import EngineChoice, EngineError

#: Seconds to reach a scheduler (and for it to have a worker) before giving up.
CONNECT_SECONDS = 5


class Session:
    """A client on a scheduler given by address, or on a local cluster started for the run
    (one worker process per core, one thread each) and closed at the end."""

    def __init__(self, choice: EngineChoice):
        for name in ("distributed", "tornado"):  # a lost worker is handled, not chatter
            logging.getLogger(name).setLevel(logging.ERROR)
        self._cluster = None
        address = choice.scheduler
        try:
            if address:
                _probe(address)  # a Client that fails to connect hangs in its __del__
                self.client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
            else:
                # dashboard on any free port (8787, when taken, is a warning); the workers'
                # logs silenced (they log errors mlfit handles, such as a singular start)
                self._cluster = LocalCluster(
                    n_workers=os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.CRITICAL,
                )
                self.client = Client(self._cluster, set_as_default=False)
            self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except Exception as exc:  # noqa: BLE001 (anything on the way: one line, exit 1)
            self.close()
            where = f"the Dask scheduler at {address}" if address else "a local Dask cluster"
            reason = getattr(exc, "strerror", None) or str(exc).split("\n")[0].rstrip(".")
            reason = reason or type(exc).__name__
            raise EngineError(
                f"Cannot use {where} ({reason}; waited at most {CONNECT_SECONDS} s). Check "
                "--scheduler (or DASK_SCHEDULER_ADDRESS), or leave it out to start a local "
                "cluster."
            ) from None
        self.address = self.client.scheduler.address

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()

    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def stream(self, data: str, sel: Selection, chunk_rows: int, model: str) -> DaskStream:
        return DaskStream(self, data, sel, chunk_rows, model)

    def predict(self, data: str, sel: Selection, chunk_rows: int, saved, options, id_column):
        """mlfit.predict.predicted_chunks of every part, each computed on a worker, yielded
        in input order (a part's predictions come to the client when it is written)."""
        parts = DaskStream(self, data, sel, chunk_rows, saved.spec.name).parts
        client = self.client
        model = _share(client, saved, _nbytes(saved))
        futures = client.map(
            _predict_part,
            parts,
            [model] * len(parts),
            [options] * len(parts),
            [id_column] * len(parts),
            [data] * len(parts),
            pure=False,
        )
        try:
            for future in futures:
                try:
                    predicted = future.result()
                except Exception as exc:  # noqa: BLE001 (mlfit's own errors stay as they are)
                    raise _cluster_error(exc).with_traceback(None) from None
                future.release()
                yield from predicted
        except BaseException:
            client.cancel(futures)
            raise


def _probe(address: str) -> None:
    """Ask the address who it is, within CONNECT_SECONDS: a closed port, a host that does not
    answer or a server that is not a Dask scheduler fails here, fast."""
    import asyncio
    import socket

    from distributed.comm import connect
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)  # ValueError: not an address
    if scheme == "tcp":  # a refused connection fails now (Dask would retry until its timeout)
        host, port = parse_host_port(location, default_port=8786)
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()

    async def identity():
        comm = await connect(address, timeout=CONNECT_SECONDS)
        try:
            await comm.write({"op": "identity"})
            return await asyncio.wait_for(comm.read(), CONNECT_SECONDS)
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), CONNECT_SECONDS + 1))
    except (OSError, asyncio.TimeoutError, ValueError) as exc:  # ValueError: a bad address
        raise OSError(str(exc).split("\n")[0] or "no answer") from None
    except Exception:  # noqa: BLE001 (garbage on the wire)
        reply = None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise OSError("it does not answer as a Dask scheduler")
