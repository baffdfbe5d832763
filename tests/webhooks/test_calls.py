"""End to end as deployed: ``rtbridge serve`` (HTTP + SIP agent + webhook sender), SIPp as
the publisher's SBC and the buyer, a live receiver — a call's events arrive signed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx2
import pytest

from tests.sip.b2bua.test_startup import Service, service  # noqa: F401  (the fixture)
from tests.support.admin import make_token
from tests.webhooks.conftest import MASTER
from tests.webhooks.receiver import Receiver, receiver

pytestmark = [pytest.mark.sip, pytest.mark.live]


@pytest.fixture(autouse=True)
def _master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTBRIDGE_WEBHOOK_KEY", MASTER)  # before the service fixture starts serve


@pytest.fixture
def hooks(sqlite_url: str, service: Service) -> Iterator[Receiver]:  # noqa: F811
    """A webhook of p1, made through the running service's admin API: the write reloads
    that process's catalog at once, so the very next ping is an event it gets."""
    with receiver() as box:
        admin = {"Authorization": f"Bearer {make_token(sqlite_url)}"}
        made = httpx2.post(f"{service.base}/admin/webhooks", headers=admin,
                           json={"publisher": "p1", "url": box.url})  # fmt: skip
        assert made.status_code == 201, made.text
        box.secret = made.json()["secret"]
        yield box


def _types(box: Receiver, count: int) -> list[str]:
    got = box.wait_for(count)
    assert all(r.verified for r in box.got), "a signature did not verify"
    return [r.body["type"] for r in sorted(got, key=lambda r: r.body["at"])]


def test_a_converted_call_sends_every_event(service: Service, hooks: Receiver) -> None:  # noqa: F811
    uuid = service.ping(caller_number="+12025550102")
    publisher = service.dial(uuid, duration_ms=1500).wait()
    assert publisher.returncode == 0, publisher.log
    assert service.wait_for(uuid, "completed")["status"] == "completed"
    types = _types(hooks, 5)
    assert types[:3] == ["reservation.reserved", "call.claimed", "call.answered"]
    assert sorted(types[3:]) == ["call.completed", "call.converted"]
    last = {r.body["type"]: r.body["data"] for r in hooks.got}
    assert all(d["uuid"] == uuid for d in last.values())
    done = last["call.completed"]
    assert done["converted"] is True and done["duration"] >= 1.0 and done["payout"] == 12.5
    assert done["call"]["hangup_by"] == "publisher" and done["call"]["sip_code"] == 200
    assert last["call.answered"]["status"] == "connected"


@pytest.mark.parametrize("service", ["uas_reject.xml"], indirect=True)
def test_a_busy_buyer_sends_failed(service: Service, hooks: Receiver) -> None:  # noqa: F811
    uuid = service.ping()
    publisher = service.dial(uuid, "uac_failure.xml").wait()
    assert publisher.statuses()[-1] == 486
    # the buyer's 486 is a failed attempt (its campaign has no other buyer to fail over to)
    types = _types(hooks, 4)
    assert types == ["reservation.reserved", "call.claimed", "call.attempt_failed", "call.failed"]
    failed = next(r.body["data"] for r in hooks.got if r.body["type"] == "call.failed")
    assert failed["status"] == "failed" and failed["call"]["buyer_sip_code"] == 486


def test_a_recorded_call_sends_a_link_to_its_file(sqlite_url: str, service: Service) -> None:  # noqa: F811
    """Recording turned on through the admin API, a buyer's webhook for recording.completed:
    the agent's end-of-call transaction makes the event, and its link opens the file the
    call record names, without a token."""
    admin = {"Authorization": f"Bearer {make_token(sqlite_url)}"}
    on = httpx2.patch(f"{service.base}/admin/campaigns/c1", headers=admin, json={"record": True})
    assert on.status_code == 200, on.text
    with receiver() as box:
        made = httpx2.post(f"{service.base}/admin/webhooks", headers=admin,
                           json={"buyer": "b1", "url": box.url,
                                 "events": ["recording_completed"]})  # fmt: skip
        assert made.status_code == 201, made.text
        box.secret = made.json()["secret"]
        uuid = service.ping()
        assert service.dial(uuid, duration_ms=1500).wait().returncode == 0
        (event,) = box.wait_for(1)
    assert event.verified and event.body["type"] == "recording.completed"
    data = event.body["data"]
    assert data["uuid"] == uuid and data["buyer"] == "b1" and data["seconds"] >= 1.0
    got = httpx2.get(f"{service.base}{data['url']}")  # no token
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
    assert len(got.content) == data["bytes"] and got.content[:4] == b"RIFF"
    assert hashlib.sha256(got.content).hexdigest() == data["sha256"]
    assert httpx2.get(f"{service.base}{data['url']}".replace("sig=", "sig=0")).status_code == 403
