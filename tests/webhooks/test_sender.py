"""The sender against a real HTTP receiver: signed, retried with backoff after a 500, given
up after its attempts and sent again by hand; and as ``rtbridge webhooks run``, killed with
SIGKILL while events flow — every event arrives, duplicates only within the in-flight bound."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from starlette.testclient import TestClient

from rtbridge import __version__
from rtbridge.storage.engine import make_engine
from rtbridge.webhooks.sender import Sender, SenderOptions
from tests.support.metrics import Exposition
from tests.support.net import free_port, wait_for_port
from tests.webhooks.conftest import KEY, MASTER, AppFactory, ping
from tests.webhooks.receiver import receiver


def _ping_and_cancel(client: TestClient, caller: str) -> str:
    """A reservation that gives its unit back at once (the demo buyer has a concurrency cap)."""
    uuid = ping(client, caller_number=caller)
    r = client.put(f"/rtbs/{uuid}.json", params={"key": KEY, "status": "cancelled"})
    assert r.status_code == 200, r.text
    return uuid


FAST = SenderOptions(interval=0.05, timeout=2.0, retry_min=0.2, retry_max=1.0)


def _hook(client: TestClient, url: str, **raw: object) -> dict:
    r = client.post("/admin/webhooks", json={"publisher": "pub-1", "url": url, **raw})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_500_is_retried_and_the_signature_verifies(make_app: AppFactory, db_url: str) -> None:
    client = make_app(db_url)
    with receiver(script=[500]) as hooks:
        made = _hook(client, hooks.url, events=["reserved", "cancelled"])
        hooks.secret = made["secret"]
        engine = make_engine(db_url)
        sender = Sender(engine, MASTER, FAST)
        sender.start()
        try:
            uuid = ping(client)
            (got,) = hooks.wait_for(1)
        finally:
            sender.stop()
            engine.dispose()
    assert [r.code for r in hooks.got] == [500, 200]
    assert hooks.got[0].msg_id == hooks.got[1].msg_id  # the same message, retried
    assert all(r.verified for r in hooks.got)
    assert got.body["type"] == "reservation.reserved" and got.body["data"]["uuid"] == uuid
    assert got.body["id"] == got.msg_id
    assert sender.stats.delivered == 1 and sender.stats.retried == 1
    (view,) = client.get(f"/admin/webhooks/{made['id']}/deliveries").json()["deliveries"]
    assert view["status"] == "delivered" and view["attempts"] == 2 and view["last_code"] == 200


def test_gives_up_after_its_attempts_and_redelivers_on_request(
    make_app: AppFactory, sqlite_url: str
) -> None:
    client = make_app(sqlite_url)
    with receiver(script=[503, 503]) as hooks:
        made = _hook(client, hooks.url, events=["reserved"])
        hooks.secret = made["secret"]
        engine = make_engine(sqlite_url)
        sender = Sender(engine, MASTER, SenderOptions(interval=0.05, retry_min=0.1, max_attempts=2))
        sender.start()
        try:
            ping(client)
            deadline = time.monotonic() + 10
            while sender.stats.failed == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            (view,) = client.get(f"/admin/webhooks/{made['id']}/deliveries?status=failed").json()[
                "deliveries"
            ]
            assert (
                view["attempts"] == 2
                and view["last_code"] == 503
                and view["last_error"] == "HTTP 503"
            )
            assert hooks.ids() == []
            r = client.post(f"/admin/webhooks/{made['id']}/deliveries/{view['id']}/redeliver")
            assert r.status_code == 200
            (got,) = hooks.wait_for(1)
            assert got.msg_id == view["id"] and got.verified
        finally:
            sender.stop()
            engine.dispose()


@pytest.mark.live
def test_sigkill_of_the_sender_loses_no_event(
    make_app: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    client = make_app(sqlite_url)
    batch = 4
    env = {**os.environ, "RTBRIDGE_DB": sqlite_url, "RTBRIDGE_WEBHOOK_KEY": MASTER}
    args = [sys.executable, "-m", "rtbridge", "webhooks", "run", "--timeout", "1",
            "--retry-min", "0.2", "--batch", str(batch), "--log-level", "warning"]  # fmt: skip
    log = (tmp_path / "sender.log").open("wb")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)

    with receiver(delay=0.03) as hooks:
        hooks.secret = _hook(client, hooks.url, events=["reserved"])["secret"]
        uuids = [_ping_and_cancel(client, f"+1202555{i:04d}") for i in range(60)]
        sender = start()
        try:
            hooks.wait_for(14)  # mid-batch: some POSTs answered, not yet settled
            sender.send_signal(signal.SIGKILL)  # mid-flow: a batch is in flight
            sender.wait()
            seen_at_kill = len(hooks.ids())
            assert seen_at_kill < 60
            uuids += [_ping_and_cancel(client, f"+1202556{i:04d}") for i in range(20)]
            sender = start()
            deadline = time.monotonic() + 40
            while len(set(hooks.ids())) < 80 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            sender.send_signal(signal.SIGTERM)
            sender.wait(timeout=15)
            log.close()
        ids = hooks.ids()
        distinct = set(ids)
        with hooks.lock:
            delivered = {r.body["data"]["uuid"] for r in hooks.got if r.code == 200}
    assert delivered == set(uuids)  # every event, at least once
    assert len(distinct) == 80  # after dedupe by webhook-id: exactly once each
    duplicates = len(ids) - len(distinct)
    assert duplicates <= batch, (duplicates, seen_at_kill)
    print(f"kill -9 after {seen_at_kill} of 80: {duplicates} duplicate(s), bound {batch}")


@pytest.mark.live
def test_the_sender_alone_serves_health_and_metrics(
    make_app: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """``rtbridge webhooks run --http``: a process kind of its own, so it answers /health and
    /metrics like the others, and its delivery counters count what the receiver saw."""
    client = make_app(sqlite_url)
    port = free_port()
    env = {**os.environ, "RTBRIDGE_DB": sqlite_url, "RTBRIDGE_WEBHOOK_KEY": MASTER}
    args = [sys.executable, "-m", "rtbridge", "webhooks", "run", "--retry-min", "0.2",
            "--http", f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    with receiver(script=[500]) as hooks, (tmp_path / "sender.log").open("wb") as log:
        hooks.secret = _hook(client, hooks.url, events=["reserved"])["secret"]
        sender = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port("127.0.0.1", port)
            base = f"http://127.0.0.1:{port}"
            assert requests.get(f"{base}/health", timeout=5).json()["status"] == "ok"
            assert requests.post(f"{base}/rtbs.json", timeout=5).status_code == 404  # no API
            big = requests.get(f"{base}/health", headers={"x-big": "b" * 20_000}, timeout=5)
            assert big.status_code == 431  # the HTTP limits of every process kind
            ping(client)
            hooks.wait_for(1)
            deadline = time.monotonic() + 10
            while True:  # the 2xx is counted once the POST settles, just after the receiver
                scrape = Exposition(requests.get(f"{base}/metrics", timeout=5).text)
                delivered = scrape.value("rtbridge_webhook_deliveries_total", result="delivered")
                if delivered == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            sender.send_signal(signal.SIGTERM)
            # uvicorn stops cleanly, then re-raises the signal it caught
            assert sender.wait(timeout=15) in (0, -signal.SIGTERM)
    assert b"Traceback" not in (tmp_path / "sender.log").read_bytes()
    assert delivered == 1
    assert scrape.value("rtbridge_webhook_deliveries_total", result="retried") == 1
    assert scrape.value("rtbridge_webhook_events_dispatched_total") == 1
    assert scrape.value("rtbridge_webhook_pending") == 0
    info = scrape.value(
        "rtbridge_build_info", version=__version__, python=platform.python_version()
    )
    assert info == 1  # no pjproject label: no SIP agent in this process
    assert not [name for name in scrape.families if name.startswith("rtbridge_sip")]
