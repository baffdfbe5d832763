"""``rtbridge serve --workers N`` (http/workers.py), as a real process group on a real port:
the workers share the port, /metrics adds up what all of them counted whichever one a
scrape reaches, one worker alone runs the SIP agent, a worker that dies is started again
without the totals going down, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import text

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from tests.conftest import write_config
from tests.support.demo import KEY_OPEN, one_buyer_config
from tests.support.metrics import Exposition
from tests.support.net import free_port
from tests.support.server import Served, serving

pytestmark = pytest.mark.live


def _apply(url: str, tmp_path: Path) -> None:
    engine = open_database(url)
    apply_file(engine, write_config(tmp_path, one_buyer_config()))
    engine.dispose()


def _health(base: str) -> dict:
    """/health over a new connection (the kernel picks the worker that accepts it)."""
    answer = httpx2.get(f"{base}/health", headers={"Connection": "close"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _workers(base: str, count: int) -> dict[int, dict]:
    """Each worker's /health, by its index: asked until every one has answered."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + 20
    while len(seen) < count and time.monotonic() < deadline:
        body = _health(base)
        seen[body["worker"]["index"]] = body
    assert sorted(seen) == list(range(count)), seen
    return seen


def _ping(base: str, n: int) -> None:
    answer = httpx2.post(
        f"{base}/rtbs.json",
        data={"key": KEY_OPEN, "caller_number": f"+1202555{n:04d}"},
        headers={"Connection": "close"},
    )
    assert answer.status_code == 200, answer.text


def _pings_counted(base: str) -> float:
    exposition = Exposition(httpx2.get(f"{base}/metrics", headers={"Connection": "close"}).text)
    return sum(exposition.labelled("rtbridge_ping_seconds_count", "status").values())


def _eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def test_workers_share_the_port_and_metrics_add_up(sqlite_url: str, tmp_path: Path) -> None:
    _apply(sqlite_url, tmp_path)
    with serving(sqlite_url, "--workers", "3") as served:
        workers = _workers(served.base, 3)
        pids = {i: body["worker"]["pid"] for i, body in workers.items()}
        assert len(set(pids.values())) == 3 and served.pid not in pids.values()
        for n in range(60):
            _ping(served.base, n)
        engine = open_database(sqlite_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM reservation")).scalar() == 60
        engine.dispose()
        # Whichever worker a scrape reaches, it says 60 once the others have published
        # (each once a second).
        _eventually(lambda: all(_pings_counted(served.base) == 60 for _ in range(6)))

        # A worker that dies is started again in its slot; the totals do not go down.
        os.kill(pids[2], signal.SIGKILL)
        # (a connection it accepted in the instant before it died is lost with it)
        _eventually(lambda: _zombie(pids[2]))
        _eventually(lambda: _workers(served.base, 3)[2]["worker"]["pid"] != pids[2], 20)
        for n in range(60, 70):
            _ping(served.base, n)
        _eventually(lambda: all(_pings_counted(served.base) == 70 for _ in range(6)))
        children = _children(served)
    for pid in children:  # SIGTERM to the supervisor stopped every worker
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"worker {pid} still runs"


def test_one_worker_runs_the_sip_agent_every_worker_shows_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    _apply(sqlite_url, tmp_path)
    sip = f"127.0.0.1:{free_port('127.0.0.1')}"
    with serving(sqlite_url, "--workers", "2", sip=sip) as served:
        workers = _workers(served.base, 2)
        assert "agent_id" in workers[0]["sip"]
        # The second worker shows the primary's status as the primary last published it.
        _eventually(lambda: all("sip" in body for body in _workers(served.base, 2).values()))
        for body in _workers(served.base, 2).values():
            assert body["sip"]["agent_id"] == workers[0]["sip"]["agent_id"]
        engine = open_database(sqlite_url)
        with engine.connect() as conn:
            held = conn.execute(text("SELECT count(*) FROM sipagent WHERE holder IS NOT NULL"))
            assert held.scalar() == 1
        engine.dispose()
        families = Exposition(httpx2.get(f"{served.base}/metrics").text).families
        assert any(name.startswith("rtbridge_sip_") for name in families)  # the primary's


def test_workers_out_of_range_are_refused(sqlite_url: str) -> None:
    import subprocess
    import sys

    for bad in ("0", "65", "two"):
        result = subprocess.run(
            [sys.executable, "-m", "rtbridge", "serve", "--sip", "off", "--workers", bad],
            capture_output=True, text=True, timeout=30,
            env={**os.environ, "RTBRIDGE_DB": sqlite_url},
        )  # fmt: skip
        assert result.returncode != 0
        assert "--workers" in result.stderr, result.stderr


def _children(served: Served) -> list[int]:
    path = Path(f"/proc/{served.pid}/task/{served.pid}/children")
    return [int(p) for p in path.read_text().split()]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_worker_that_cannot_start_stops_the_group(sqlite_url: str, tmp_path: Path) -> None:
    """The primary's SIP port is taken: it cannot start, and starting it again would fail
    again every second. The group stops with exit 1 and says why, and its other workers
    are gone too."""
    import socket
    import subprocess
    import sys

    _apply(sqlite_url, tmp_path)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    sip = f"127.0.0.1:{taken.getsockname()[1]}"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "rtbridge", "serve", "--workers", "2", "--sip", sip,
             "--http", f"127.0.0.1:{free_port('127.0.0.1')}"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "RTBRIDGE_DB": sqlite_url},
        )  # fmt: skip
    finally:
        taken.close()
    assert result.returncode == 1, result.stderr[-3000:]
    assert "could not start" in result.stderr and "stopping every worker" in result.stderr


def test_a_stranger_learns_nothing_of_the_workers(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which worker answered and its pid are insiders' (http/health.py): with no status
    network, a request from loopback is a stranger's, and neither /health nor /metrics
    names a worker, a pid or the build, whichever worker answers."""
    _apply(sqlite_url, tmp_path)
    monkeypatch.setenv("RTBRIDGE_STATUS_NETWORKS", "")
    with serving(sqlite_url, "--workers", "2") as served:
        for _ in range(12):
            body = _health(served.base)
            assert body == {"status": "ok", "database": "ok"}, body
            exposed = httpx2.get(f"{served.base}/metrics", headers={"Connection": "close"}).text
            assert "rtbridge_build_info" not in exposed
            assert str(served.pid) not in exposed and "worker" not in exposed
