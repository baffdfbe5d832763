"""End to end, as deployed: ``rtbridge serve`` (HTTP API + SIP agent in one process tree) on
a real SQLite file, SIPp as the publisher's SBC and as the buyer, outcomes read back over
HTTP (SPEC §4, §3.7)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from rtbridge import __version__
from rtbridge.admin.apply import apply_file
from rtbridge.http.metrics import AUTH_FAILURE_REASONS
from rtbridge.storage.database import open_database
from tests.conftest import write_config
from tests.sip.sipp import Sipp, hostport
from tests.support.metrics import Exposition
from tests.support.net import free_port
from tests.support.server import serve

pytestmark = [pytest.mark.sip, pytest.mark.live]

DOMAIN = "sip.rtb.example.com"
KEY1 = "e2e-key-publisher-one-0001"  # p1: allowlisted 127.0.0.1 and ::1
KEY2 = "e2e-key-publisher-two-0002"  # p2: digest credentials only


@dataclass
class Service:
    base: str
    sip_port: int
    buyer: Sipp
    workdir: Path

    def ping(self, key: str = KEY1, **params: str) -> str:
        r = httpx2.post(f"{self.base}/rtbs.json", data={"key": key, **params})
        assert r.status_code == 200 and r.json()["status"] == "reserved", r.text
        return str(r.json()["uuid"])

    def lookup(self, uuid: str, key: str = KEY1) -> dict:
        return dict(httpx2.get(f"{self.base}/rtbs/{uuid}.json", params={"key": key}).json())

    def dial(
        self, uuid: str, scenario: str = "uac_call.xml", host: str = "127.0.0.1", **kw: object
    ) -> Sipp:
        agent = "::1" if ":" in host else "127.0.0.1"  # the agent listens on both loopbacks
        return Sipp(scenario, self.workdir, host=host, remote=hostport(agent, self.sip_port), service=uuid,
                    **kw)  # type: ignore[arg-type]  # fmt: skip

    def wait_for(self, uuid: str, status: str, key: str = KEY1, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.lookup(uuid, key)
            if body["status"] == status or time.monotonic() > deadline:
                return body
            time.sleep(0.1)


def _config(buyer_uri: str) -> str:
    return f"""
[sip]
domain = "{DOMAIN}"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "b1"
destination = "{buyer_uri}"
payout = 12.5
seconds = 1

[[publishers]]
id = "p1"
ips = ["127.0.0.1/32", "::1/128"]

[[publishers]]
id = "p2"
credentials = [{{ username = "pub2", password = "s3cret-Pass-456" }}]

[[keys]]
key = "{KEY1}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true

[[keys]]
key = "{KEY2}"
publisher = "p2"
campaign = "c1"
allow_missing_caller_number = true
"""


@pytest.fixture
def service(sqlite_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Service]:
    # indirect parameter: the buyer's scenario, or (scenario, how many calls it answers)
    param = getattr(request, "param", "uas_answer.xml")
    buyer_scenario, buyer_calls = param if isinstance(param, tuple) else (param, 1)
    buyer = Sipp(buyer_scenario, tmp_path, rtp_echo=True, calls=buyer_calls)
    buyer.wait_listening()
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, _config(buyer.uri())))
    engine.dispose()
    sip_port = free_port("127.0.0.1")
    rtp = free_port("127.0.0.1")
    agent_file = tmp_path / "agent.toml"
    agent_file.write_text(f"""[agent]
hosts = ["127.0.0.1", "::1"]
port = {sip_port}
media_address = "127.0.0.1"
rtp_port_min = {rtp}
rtp_port_max = {rtp + 40}
max_calls = 16
ring_timeout = 3.0
digest_algorithms = ["MD5", "SHA-256"]  # SIPp 3.6 answers only the first, and only MD5
""")
    env_secret = os.environ.get("RTBRIDGE_NONCE_SECRET")
    try:
        with serve(sqlite_url, "--sip-config", str(agent_file), sip=None) as base:
            yield Service(base, sip_port, buyer, tmp_path)
    finally:
        buyer.kill()
        assert env_secret == os.environ.get("RTBRIDGE_NONCE_SECRET")


def test_allowlisted_publisher_is_bridged_and_the_outcome_recorded(service: Service) -> None:
    uuid = service.ping(caller_number="+12025550102", caller_state="CA")
    publisher = service.dial(uuid, duration_ms=1500).wait()
    assert publisher.returncode == 0, publisher.log
    assert 180 in publisher.statuses() and publisher.statuses()[-1] == 200
    buyer = service.buyer.wait()
    assert buyer.returncode == 0, buyer.log
    invite = buyer.requests("INVITE")[0]
    assert invite.header("X-RTB-UUID") == uuid
    assert invite.header("X-RTB-Tag-caller_state") == "CA"
    assert "+12025550102" in (invite.header("From") or "")
    body = service.wait_for(uuid, "completed")
    assert body["status"] == "completed", body
    assert body["converted"] is True and body["duration"] >= 1.0
    assert body["call"]["hangup_by"] == "publisher" and body["call"]["sip_code"] == 200
    assert "sip_address" not in body
    # The reservation is used: a second INVITE is refused with 410.
    again = service.dial(uuid, "uac_failure.xml").wait()
    assert again.statuses()[-1] == 410 and "already used" in again.response(410).first_line


def test_digest_publisher_from_an_unlisted_address(service: Service) -> None:
    uuid = service.ping(KEY2)
    publisher = service.dial(uuid, "uac_digest_call.xml", host="127.0.0.2", duration_ms=300,
                             rewrite={"USERNAME": "pub2", "PASSWORD": "s3cret-Pass-456"}).wait()  # fmt: skip
    assert publisher.returncode == 0, publisher.log
    assert publisher.statuses()[0] in (100, 401) and publisher.statuses()[-1] == 200
    assert service.wait_for(uuid, "completed", KEY2)["status"] == "completed"


def test_ipv6_allowlisted_publisher(service: Service) -> None:
    uuid = service.ping()
    publisher = service.dial(uuid, host="::1", media_host="127.0.0.1", duration_ms=300).wait()
    assert publisher.returncode == 0, publisher.log
    assert service.wait_for(uuid, "completed")["status"] == "completed"


def test_refusals_carry_the_spec_codes(service: Service) -> None:
    other = service.ping(KEY2)  # p2's reservation, dialled from p1's address
    cases = {
        "not-a-uuid": 404,
        "0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30": 404,
        other: 403,
    }
    for user, code in cases.items():
        result = service.dial(user, "uac_failure.xml").wait()
        assert result.statuses()[-1] == code, (user, result.log)
    unknown = service.dial(other, "uac_failure.xml", host="127.0.0.3").wait()
    assert unknown.statuses()[-1] == 401
    assert unknown.response(401).header("WWW-Authenticate")
    assert service.lookup(other, KEY2)["status"] == "reserved"  # nothing claimed by refusals


@pytest.mark.parametrize("service", ["uas_reject.xml"], indirect=True)
def test_buyer_busy_is_relayed_and_recorded(service: Service) -> None:
    uuid = service.ping()
    publisher = service.dial(uuid, "uac_failure.xml").wait()
    assert publisher.statuses()[-1] == 486
    body = service.wait_for(uuid, "failed")
    assert body["status"] == "failed" and body["call"]["buyer_sip_code"] == 486


@pytest.mark.parametrize("service", ["uas_noanswer.xml"], indirect=True)
def test_ring_timeout_is_408(service: Service) -> None:
    uuid = service.ping()
    publisher = service.dial(uuid, "uac_failure.xml").wait()
    assert publisher.statuses()[-1] == 408
    body = service.wait_for(uuid, "failed")
    assert body["call"]["hangup_by"] == "timeout"


@pytest.mark.parametrize("service", [("uas_answer.xml", 2)], indirect=True)
def test_admin_changes_reach_the_running_agent_at_once(service: Service, sqlite_url: str) -> None:
    """Issue 4 item 3, live: an IP added through the admin API lets the next INVITE in, its
    removal refuses the next one, and an entry that expires stops matching on its own.

    ``serve``'s agent shares the HTTP process's catalog, which an admin write reloads before
    it answers (http/handlers.write): the very next INVITE sees the change, no waiting. (An
    agent in another process sees it within the catalog's one-second recheck.)"""
    from datetime import UTC, datetime, timedelta

    from tests.support.admin import make_token

    admin = {"Authorization": f"Bearer {make_token(sqlite_url)}"}
    ips = f"{service.base}/admin/publishers/p2/ips"
    source = "127.0.0.4"  # p2 has no allowlist entry: digest only

    def dial_from_source(scenario: str) -> int:
        result = service.dial(service.ping(KEY2), scenario, host=source, duration_ms=100).wait()
        return result.statuses()[-1]

    assert dial_from_source("uac_failure.xml") == 401

    added = httpx2.post(ips, json={"cidr": f"{source}/32", "note": "live test"}, headers=admin)
    assert added.status_code == 201, added.text
    assert dial_from_source("uac_call.xml") == 200

    removed = httpx2.delete(f"{ips}/{added.json()['id']}", headers=admin)
    assert removed.status_code == 204, removed.text
    assert dial_from_source("uac_failure.xml") == 401

    expires_at = datetime.now(UTC) + timedelta(seconds=3)
    added = httpx2.post(ips, json={"cidr": f"{source}/32", "expires_at": expires_at.isoformat()},
                        headers=admin)  # fmt: skip
    assert added.status_code == 201, added.text
    assert dial_from_source("uac_call.xml") == 200
    assert datetime.now(UTC) < expires_at, "the call must be placed before the expiry"
    time.sleep((expires_at - datetime.now(UTC)).total_seconds() + 0.2)  # no change made
    assert dial_from_source("uac_failure.xml") == 401


def test_health_and_metrics_show_the_build_and_the_bridges(service: Service) -> None:
    """SPEC §6 + issue 7: the linked pjsua2 and its limits, capacity, live bridges."""
    health = httpx2.get(f"{service.base}/health").json()
    sip = health["sip"]
    assert sip["pjsua2"]["rtbridge_build"] is True
    assert sip["pjsua2"]["wheel"].endswith("+rtbridge.2")
    assert sip["call_slots"] == 16 and sip["bridge_capacity"] == 7  # max_calls = 16 above
    assert sip["bridges"] == 0 and sip["draining"] is False
    service.dial(service.ping(), duration_ms=300).wait()
    metrics = Exposition(httpx2.get(f"{service.base}/metrics").text)
    (build,) = metrics.families["rtbridge_sip_build_info"].samples
    assert build.labels["pjproject"] == "2.17" and build.value == 1
    (info,) = metrics.families["rtbridge_build_info"].samples
    assert info.labels["pjproject"] == "2.17" and info.labels["version"] == __version__
    assert metrics.value("rtbridge_sip_bridge_capacity") == 7
    assert set(metrics.labelled("rtbridge_sip_bridges", "phase")) == {
        "routing", "dialing", "connected"
    }  # fmt: skip
    assert (metrics.value("rtbridge_sip_invites_total") or 0) >= 1
    assert metrics.value("rtbridge_sip_setup_seconds_count") == 1
    assert metrics.families["rtbridge_ping_seconds"].type == "histogram"


def test_auth_failures_are_counted_by_reason_after_real_calls(service: Service) -> None:
    """Issue 12: "why was this call refused?" from /metrics — real SIPp publishers refused
    by authentication, each counted under the reason the decision log line names."""
    uuid = service.ping(KEY2)
    digest = "uac_digest_call.xml"
    # not allowlisted, no credentials: 401 challenge
    bare = service.dial(uuid, "uac_failure.xml", host="127.0.0.3").wait()
    # challenged, then a wrong password: 401 then 403
    wrong = service.dial(uuid, digest, host="127.0.0.2", duration_ms=100,
                         rewrite={"USERNAME": "pub2", "PASSWORD": "not-it"}).wait()  # fmt: skip
    # challenged, then a username nobody has: 401 then 403, as for a wrong password
    nobody = service.dial(uuid, digest, host="127.0.0.5", duration_ms=100,
                          rewrite={"USERNAME": "nobody", "PASSWORD": "x"}).wait()  # fmt: skip
    assert bare.statuses()[-1] == 401
    assert [c for c in wrong.statuses() if c >= 400] == [401, 403]
    assert [c for c in nobody.statuses() if c >= 400] == [401, 403]
    metrics = Exposition(httpx2.get(f"{service.base}/metrics").text)
    failures = metrics.labelled("rtbridge_sip_auth_failures_total", "reason")
    assert set(failures) == set(AUTH_FAILURE_REASONS)  # every reason, 0 until it happens
    seen = {reason: n for reason, n in failures.items() if n}
    assert seen == {"missing-credentials": 3, "wrong-password": 1, "unknown-user": 1}
    assert metrics.value("rtbridge_sip_answers_total", code="403") == 2
    health = httpx2.get(f"{service.base}/health").json()
    assert health["sip"]["auth_failures"] == seen
    assert service.lookup(uuid, KEY2)["status"] == "reserved"  # refusals claimed nothing


def test_agent_refuses_a_configuration_its_build_cannot_hold(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, _config("sip:buyer@127.0.0.1:5999")))
    engine.dispose()
    options = tmp_path / "agent.toml"
    options.write_text(f'[agent]\nhosts = ["127.0.0.1"]\nport = {free_port()}\nmax_calls = 4096\n')
    env = {**os.environ, "RTBRIDGE_DB": sqlite_url}
    result = subprocess.run([sys.executable, "-m", "rtbridge", "sip", "--sip-config", str(options)],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "max_calls = 4096" in result.stderr and "PJSUA_MAX_CALLS" in result.stderr
    missing = subprocess.run([sys.executable, "-m", "rtbridge", "sip", "--sip-config",
                              str(tmp_path / "nope.toml")], env=env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr
