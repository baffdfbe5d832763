"""``rtbridge serve --workers N``: N processes answering HTTP on one port.

One uvicorn process is one event loop on one core. The supervisor (this module) binds the
HTTP socket, then forks N workers that all accept on it; the kernel hands each new
connection to one of them. Worker 0 is the **primary**: it alone runs what must run once
per site process group — the SIP agent (one per ``agent_id``: its lease would refuse a
second), the expiry sweeper, the watch over the agents' leases, the webhook sender and the
SQLite WAL checkpointer. The others serve the publisher API, the admin API and the console.

The supervisor holds no database connection, thread or event loop before it forks (each
worker builds its own after), forwards SIGTERM and SIGINT to every worker and waits for
them (the primary drains its calls first), and starts a worker again, in the same slot,
when one dies on its own.

``/metrics`` stays one target (``http.metrics`` says why that matters): each worker writes
what it counted to a JSON file in a directory the supervisor made, once a second and when
it stops, and the worker a scrape reaches adds the other workers' files to its own counts.
A worker started again in a slot carries on from that slot's file, so the totals never go
down."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rtbridge.http.instruments import Metrics
from rtbridge.http.server import STARTUP_FAILURE

log = logging.getLogger("rtbridge.http")

MAX_WORKERS = 64
PUBLISH_EVERY = 1.0  # seconds between a worker's snapshots of what it counted
RESTART_PAUSE = 1.0  # seconds before a worker that died is started again
# A worker whose application could not start (a port taken, the database refused) exits with
# STARTUP_FAILURE: starting it again would fail again, once a second, forever. The supervisor
# stops the group instead, with exit status 1.


@dataclass(frozen=True)
class WorkerShare:
    """Worker ``index`` of ``count``: its snapshot file and the others'."""

    directory: Path
    index: int
    count: int

    @property
    def primary(self) -> bool:
        return self.index == 0

    def _file(self, index: int) -> Path:
        return self.directory / f"worker-{index}.json"

    def publish(self, metrics: Metrics, view: dict[str, Any] | None = None) -> None:
        """Write this worker's counts, and (the primary) what only it can show: ``view``.
        A whole file or none: written aside, then renamed."""
        path = self._file(self.index)
        aside = path.with_suffix(".tmp")
        aside.write_bytes(orjson.dumps({"counts": metrics.snapshot(), "view": view or {}}))
        aside.replace(path)

    def restore(self, metrics: Metrics) -> None:
        """Carry on from this slot's last snapshot (a worker started again after a death)."""
        metrics.add(self._read(self.index).get("counts", {}))

    def others(self) -> list[dict[str, Any]]:
        """The other workers' counts (``Metrics.snapshot``)."""
        found = (self._read(i) for i in range(self.count) if i != self.index)
        return [f["counts"] for f in found if isinstance(f.get("counts"), dict)]

    def primary_view(self) -> dict[str, Any]:
        """What the primary last published of its own: its SIP agent's status and metric
        families, its webhook sender's (``http.app._publish``)."""
        view = self._read(0).get("view")
        return view if isinstance(view, dict) else {}

    def _read(self, index: int) -> dict[str, Any]:
        try:
            found = orjson.loads(self._file(index).read_bytes())
        except (OSError, orjson.JSONDecodeError):  # not written yet
            return {}
        return found if isinstance(found, dict) else {}


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (inherited across fork)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def supervise(count: int, run_worker: Callable[[WorkerShare], None]) -> int:
    """Fork ``count`` workers, each running ``run_worker(share)`` until it returns, and keep
    them running until SIGTERM or SIGINT. Exit status: 0 after a requested stop, 1 when a
    worker could not start (:data:`STARTUP_FAILURE`)."""
    directory = Path(tempfile.mkdtemp(prefix="rtbridge-workers-"))
    children: dict[int, int] = {}  # pid -> slot
    stopping = False
    failed = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                run_worker(WorkerShare(directory, index, count))
            except SystemExit as exc:  # uvicorn's "could not start" (it logged why)
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", index)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = index

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for index in range(count):
            spawn(index)
        log.info("workers started", extra={"workers": count, "pids": sorted(children)})
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children or stopping:
                children.pop(pid, None)
                continue
            slot = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if code == STARTUP_FAILURE:
                log.error("worker %d (pid %d) could not start (exit status %d); stopping "
                          "every worker", slot, pid, code)  # fmt: skip
                failed = True
                stop(signal.SIGTERM, None)
                continue
            log.error("worker %d (pid %d) exited with status %d; starting it again",
                      slot, pid, code)  # fmt: skip
            time.sleep(RESTART_PAUSE)
            if not stopping:
                spawn(slot)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 1 if failed else 0
