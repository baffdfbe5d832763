"""``/metrics`` on prometheus_client (``http/metrics.py``), read back with its parser, and the
access log (``http/access_log.py``), through the real ASGI app on a real SQLite file."""

from __future__ import annotations

import json
import logging
import platform
import re
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from rtbridge import __version__
from rtbridge.admin.apply import apply_file
from rtbridge.http.app import create_app
from rtbridge.http.instruments import PING_BUCKETS
from rtbridge.logs import JsonFormatter
from rtbridge.settings import Settings
from rtbridge.storage.database import open_database
from tests.conftest import ClientFactory, write_config
from tests.support.admin import make_token
from tests.support.demo import KEY_OPEN, one_buyer_config
from tests.support.metrics import Exposition
from tests.support.net import free_port
from tests.support.server import serve

ADMIN_SECRET = "not-a-real-admin-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def scrape(client: TestClient) -> Exposition:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Exposition(answer.text)


def insider(client: TestClient, url: str) -> TestClient:
    """``client`` sending an admin token: shown the build series (tests/http/test_health.py
    has who else is)."""
    client.headers["Authorization"] = f"Bearer {make_token(url)}"
    return client


def test_every_family_is_exposed_with_its_type(client: TestClient, sqlite_url: str) -> None:
    families = scrape(insider(client, sqlite_url)).families
    expected = {
        "rtbridge_build_info": "gauge",
        "rtbridge_reservations": "counter",
        "rtbridge_reservations_expired": "counter",
        "rtbridge_reservations_live": "gauge",
        "rtbridge_ping_seconds": "histogram",
    }
    assert {name: families[name].type for name in expected} == expected
    # no SIP agent in this process: no rtbridge_sip_* series at all
    assert not [name for name in families if name.startswith("rtbridge_sip")]


def test_build_info_names_this_rtbridge_and_python(client: TestClient, sqlite_url: str) -> None:
    info = scrape(insider(client, sqlite_url)).families["rtbridge_build_info"].samples
    assert [(s.labels, s.value) for s in info] == [
        ({"version": __version__, "python": platform.python_version()}, 1.0)
    ]


def test_live_reservations_and_answers_count_real_pings(make_client: ClientFactory) -> None:
    client = make_client(one_buyer_config(buyer="concurrency = 1"))
    for caller in ("+12025550111", "+12025550112"):
        client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": caller})
    metrics = scrape(client)
    assert metrics.labelled("rtbridge_reservations_live", "status") == {
        "reserved": 1, "confirmed": 0, "claimed": 0, "connected": 0,
    }  # fmt: skip
    assert metrics.value("rtbridge_reservations_expired_total") == 0
    assert metrics.value("rtbridge_reservations_total", status="reserved", ping_shield="false") == 1


def test_money_earned_counts_the_calls_this_process_ended(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    from datetime import timedelta

    from rtbridge.storage import calls
    from rtbridge.timestamps import utcnow

    client = make_client(one_buyer_config(buyer="revenue = 15.0"))
    labels = {"campaign": "c1", "buyer": "b1"}
    names = ("rtbridge_calls_converted_total", "rtbridge_payout_earned_total",
             "rtbridge_revenue_earned_total")  # fmt: skip
    before = [scrape(client).value(name, **labels) or 0 for name in names]
    engine = open_database(sqlite_url)
    for talked in (90, 5):  # one call converts (60 s), one does not
        uuid = client.post("/rtbs.json", data={"key": KEY_OPEN}).json()["uuid"]
        calls.claim(engine, uuid=uuid, publisher_id="p1", now=utcnow(), agent="a", source="t")
        now = utcnow()
        calls.answered(engine, uuid=uuid, at=now)
        calls.ended(engine, uuid=uuid, answer_at=now, end_at=now + timedelta(seconds=talked),
                    publisher_code=200, buyer_code=200, hangup_by="publisher",
                    duration=talked)  # fmt: skip
    engine.dispose()
    after = [scrape(client).value(name, **labels) for name in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 12.5, 15.0]  # type: ignore[operator]


def test_ping_latency_histogram_counts_each_outcome(make_client: ClientFactory) -> None:
    client = make_client(one_buyer_config(buyer="concurrency = 1"))
    outcomes = [
        client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550111"}),
        client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550112"}),
        client.post("/rtbs.json", data={"key": "no-such-key"}),
        client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550113"}),
    ]
    assert [r.status_code for r in outcomes] == [200, 200, 401, 200]
    metrics = scrape(client)
    counts = metrics.labelled("rtbridge_ping_seconds_count", "status")
    assert counts == {"reserved": 1, "no-target": 2, "error": 1}
    for status, n in counts.items():
        buckets = {
            float(labels["le"]): value
            for (labels, value) in _buckets(metrics, "rtbridge_ping_seconds", status)
        }
        assert sorted(buckets)[:-1] == list(PING_BUCKETS) and buckets[float("inf")] == n
        assert list(buckets.values()) == sorted(buckets.values())  # cumulative
        assert 0 < (metrics.value("rtbridge_ping_seconds_sum", status=status) or 0) < 5 * n
    # updates and lookups are not pings
    uuid = outcomes[0].json()["uuid"]
    client.put(f"/rtbs/{uuid}.json", data={"key": KEY_OPEN, "status": "confirmed"})
    after = scrape(client).labelled("rtbridge_ping_seconds_count", "status")
    assert after == counts


@pytest.mark.postgres
def test_scrape_on_postgresql(make_client: ClientFactory, postgres_url: str) -> None:
    """On PostgreSQL the scrape (its live-count query included) runs in a worker thread
    while pings go on on the loop."""
    client = make_client(one_buyer_config(), url=postgres_url)
    client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550111"})
    metrics = scrape(client)
    assert metrics.value("rtbridge_reservations_live", status="reserved") == 1
    assert metrics.value("rtbridge_ping_seconds_count", status="reserved") == 1


def test_each_app_has_its_own_registry(make_client: ClientFactory) -> None:
    """Two apps in one process (tests, tools): neither refuses the other's metric names,
    and neither sees the other's pings."""
    first = make_client(one_buyer_config())
    second = make_client(one_buyer_config())
    first.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550111"})
    assert scrape(first).value("rtbridge_ping_seconds_count", status="reserved") == 1
    assert scrape(second).value("rtbridge_ping_seconds_count", status="reserved") is None


def test_sip_http_process_kind_serves_health_and_metrics(sqlite_url: str, tmp_path: Path) -> None:
    """``api=False`` is ``rtbridge sip --http``'s app without the agent: /health and /metrics
    only (the agent's series are tested with it running, tests/sip/b2bua/test_startup.py)."""
    _apply(sqlite_url, tmp_path)
    settings = Settings(db_url=sqlite_url, sip_enabled=False, sweep_interval=3600)
    with TestClient(create_app(settings, api=False), client=("127.0.0.1", 40000)) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert scrape(client).value("rtbridge_build_info", version=__version__,
                                    python=platform.python_version()) == 1  # fmt: skip
        assert client.post("/rtbs.json", data={"key": KEY_OPEN}).status_code == 404


def test_access_log_is_off_by_default(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client.post("/rtbs.json", data={"key": KEY_OPEN})
    assert not [r for r in caplog.records if r.name == "rtbridge.http.access"]


def test_access_log_has_one_line_per_request_and_no_secret(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _apply(sqlite_url, tmp_path)
    settings = Settings(db_url=sqlite_url, sip_enabled=False, sweep_interval=3600,
                        access_log=True)  # fmt: skip
    caplog.set_level(logging.WARNING)  # --log-level warning: the access log still speaks
    caplog.handler.setLevel(logging.NOTSET)  # (as our JSON handler: no level of its own)
    with TestClient(create_app(settings)) as client:
        reserved = client.post(
            f"/rtbs.json?key={KEY_OPEN}&caller_number=%2B12025550111&zip=10001"
        ).json()
        client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550112"})
        client.get(f"/rtbs/{reserved['uuid']}.json", params={"key": KEY_OPEN})
        client.get("/admin/publishers", headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
        client.post(f"/console/keys/{KEY_OPEN}/pause", data={"csrf": "c-s-r-f-value"})
        client.post("/rtbs.json", data={"key": "no-such-key"})
    lines = [r for r in caplog.records if r.name == "rtbridge.http.access"]
    formatted = [json.loads(JsonFormatter().format(r)) for r in lines]
    assert [(e["method"], e["path"], e["status"]) for e in formatted] == [
        ("POST", "/rtbs.json", 200),
        ("POST", "/rtbs.json", 200),
        ("GET", f"/rtbs/{reserved['uuid']}.json", 200),
        ("GET", "/admin/publishers", 401),
        ("POST", "/console/keys/{key}/pause", formatted[4]["status"]),
        ("POST", "/rtbs.json", 401),
    ]
    assert formatted[0]["query"] == "key=%5Bredacted%5D&caller_number=%2B12025550111&zip=10001"
    assert formatted[2]["query"] == "key=%5Bredacted%5D"
    for entry in formatted:
        assert entry["level"] == "info" and entry["msg"] == "http request"
        assert 0 <= entry["duration_ms"] < 5000 and entry["client"].startswith("testclient:")
    text = "\n".join(JsonFormatter().format(r) for r in lines)
    for secret in (KEY_OPEN, ADMIN_SECRET, "c-s-r-f-value", "no-such-key"):
        assert secret not in text


def documented_families() -> set[str]:
    """The families docs/metrics.md lists: the backticked names in the first cell of each
    row of its "Families" table (counters with their ``_total``, as Prometheus shows them)."""
    doc = (ROOT / "docs" / "metrics.md").read_text()
    table = doc[doc.index("\n## Families\n") :]
    table = table[: table.index("\n## ", 1)]
    cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `rtbridge_")]
    return {name for cell in cells for name in re.findall(r"`(rtbridge_\w+)`", cell)}


@pytest.mark.live
def test_docs_list_exactly_the_families_a_full_process_exposes(
    sqlite_url: str, tmp_path: Path
) -> None:
    """``rtbridge serve`` with everything in it (the SIP agent, the webhook sender), scraped
    over HTTP from loopback (an insider: the build series too) after a ping: every family it
    exposes is documented, and every documented family is exposed."""
    _apply(sqlite_url, tmp_path)
    with serve(sqlite_url, sip=f"127.0.0.1:{free_port('127.0.0.1')}") as base:
        assert httpx2.post(f"{base}/rtbs.json", data={"key": KEY_OPEN}).status_code == 200
        answer = httpx2.get(f"{base}/metrics")
    assert answer.status_code == 200
    exposed = {
        # Prometheus shows a counter family as its samples' name, ``_total``; the parser
        # gives the family's own name.
        f"{name}_total" if family.type == "counter" else name
        for name, family in Exposition(answer.text).families.items()
    }
    documented = documented_families()
    assert sorted(documented - exposed) == [], "documented but not exposed"
    assert sorted(exposed - documented) == [], "exposed but not in docs/metrics.md"
    assert {"rtbridge_webhook_deliveries_total", "rtbridge_webhook_pending"} <= exposed


def _apply(url: str, tmp_path: Path) -> None:
    engine = open_database(url)
    apply_file(engine, write_config(tmp_path, one_buyer_config()))
    engine.dispose()


def _buckets(metrics: Exposition, name: str, status: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for s in metrics.families[name].samples
        if s.name == f"{name}_bucket" and s.labels["status"] == status
    ]


def test_keys_in_paths_are_redacted_routed_or_not() -> None:
    from rtbridge.http.access_log import redact_path

    assert redact_path(f"/admin/keys/{KEY_OPEN}", {"key": KEY_OPEN}) == "/admin/keys/{key}"
    assert redact_path(f"/console/keys/{KEY_OPEN}/nope", {}) == "/console/keys/{key}/nope"
    assert redact_path("/admin/keys", {}) == "/admin/keys"
    assert redact_path("/rtbs/abc.json", {"uuid": "abc"}) == "/rtbs/abc.json"
