"""The publisher API through the real ASGI app and a real SQLite file (SPEC §3)."""

from __future__ import annotations

import re
import uuid as uuidlib
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from tests.conftest import ClientFactory, Clock
from tests.support.demo import DOMAIN, KEY_INBOUND, KEY_OPEN, KEY_STRICT, POOL, one_buyer_config
from tests.support.metrics import Exposition

RESERVED_FIELDS = {
    "uuid",
    "status",
    "retreaver_payout",
    "retreaver_seconds",
    "inbound_number",
    "sip_address",
    "expires_at",
}
EXPIRES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def ping(client: TestClient, **params: str) -> dict:
    response = client.post("/rtbs.json", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# -- §3.1 parameters and the response shape -------------------------------------------------


def test_reserved_response_has_exactly_the_documented_fields(client: TestClient) -> None:
    body = ping(client, key=KEY_OPEN, caller_number="12025550102")
    assert set(body) == RESERVED_FIELDS
    assert body["status"] == "reserved"
    assert str(uuidlib.UUID(body["uuid"])) == body["uuid"]
    assert body["retreaver_payout"] == 90.0 and body["retreaver_seconds"] == 120
    assert body["sip_address"] == f"{body['uuid']}@{DOMAIN}"
    assert EXPIRES.fullmatch(body["expires_at"])


def test_parameters_from_query_form_and_json_merge_with_body_winning(client: TestClient) -> None:
    # Query says one caller, the form body another: the body wins.
    r = client.post(
        f"/rtbs.json?key={KEY_OPEN}&caller_number=12025550199",
        data={"caller_number": "+1 202-555-0102", "caller_state": "CA"},
    )
    assert r.status_code == 200
    looked = client.get(f"/rtbs/{r.json()['uuid']}.json", params={"key": KEY_OPEN}).json()
    assert looked["caller_number"] == "+12025550102"
    assert looked["tags"] == {"caller_state": "CA"}
    r = client.post(
        "/rtbs.json?caller_number=12025550177",
        json={"key": KEY_OPEN, "caller_number": 12025550103, "caller_zip": "10001"},
    )
    looked = client.get(f"/rtbs/{r.json()['uuid']}.json", params={"key": KEY_OPEN}).json()
    assert looked["caller_number"] == "+12025550103"
    assert looked["tags"] == {"caller_zip": "10001"}


def test_multipart_form_is_read(client: TestClient) -> None:
    r = client.post(
        "/rtbs.json", files={"key": (None, KEY_OPEN), "caller_number": (None, "2025550104")}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "reserved"


@pytest.mark.parametrize(
    "raw", ["12025550102", "+1 202-555-0102", "(202) 555-0102", "+12025550102"]
)
def test_caller_number_is_normalised_to_e164(client: TestClient, raw: str) -> None:
    body = ping(client, key=KEY_OPEN, caller_number=raw)
    looked = client.get(f"/rtbs/{body['uuid']}.json", params={"key": KEY_OPEN}).json()
    assert looked["caller_number"] == "+12025550102"


def test_publisher_and_source_ids_are_stored_not_tags(client: TestClient) -> None:
    body = ping(
        client,
        key=KEY_OPEN,
        caller_number="2025550105",
        publisher_id="sub-7",
        source_id="s-9",
        x="1",
    )
    looked = client.get(f"/rtbs/{body['uuid']}.json", params={"key": KEY_OPEN}).json()
    assert looked["tags"] == {"x": "1"}


def test_response_root_rtb_wraps_the_body(client: TestClient) -> None:
    body = ping(client, key=KEY_STRICT, caller_number="+18888888888")
    assert set(body) == {"rtb"}
    assert set(body["rtb"]) == RESERVED_FIELDS


def test_missing_caller_number_exact_error(client: TestClient) -> None:
    r = client.post("/rtbs.json", params={"key": KEY_STRICT})
    assert r.status_code == 422
    assert r.json() == {"error": "FAILED must include caller_number (string)"}
    r = client.post("/rtbs.json", data={"key": KEY_STRICT, "caller_number": ""})
    assert r.json() == {"error": "FAILED must include caller_number (string)"}


# -- §3.3 which inbound_number -----------------------------------------------------------------


def test_inbound_with_caller_comes_from_the_pool(client: TestClient) -> None:
    body = ping(client, key=KEY_OPEN, caller_number="12025550102")
    assert body["inbound_number"] in POOL


def test_inbound_without_caller_request_parameter_first(client: TestClient) -> None:
    # The seed's curl: an unescaped '+' in the query string arrives as a space.
    r = client.post(f"/rtbs.json?key={KEY_INBOUND}&inbound_number=+35924930101")
    assert r.json()["inbound_number"] == "+35924930101"
    assert r.json()["sip_address"].endswith("@" + DOMAIN)


def test_inbound_without_caller_key_setting_second(client: TestClient) -> None:
    assert ping(client, key=KEY_INBOUND)["inbound_number"] == "+18339510260"


def test_inbound_without_caller_dynamic_sip_uri_last(client: TestClient) -> None:
    body = ping(client, key=KEY_OPEN)
    assert body["inbound_number"] == f"sip:{body['uuid']}@{DOMAIN}"
    assert body["sip_address"] == f"{body['uuid']}@{DOMAIN}"


def test_caller_given_but_no_pool_falls_back_to_the_no_caller_order(
    make_client: ClientFactory,
) -> None:
    client = make_client(one_buyer_config(pool=""))
    body = ping(client, key=KEY_OPEN, caller_number="2025550106")
    assert body["inbound_number"] == f"sip:{body['uuid']}@{DOMAIN}"


def test_bad_inbound_number_is_refused(client: TestClient) -> None:
    r = client.post("/rtbs.json", params={"key": KEY_OPEN, "inbound_number": "call-me"})
    assert r.status_code == 422
    assert r.json()["error"].startswith("inbound_number:")


def test_pool_dids_are_not_shared_by_two_live_reservations_of_one_caller(
    make_client: ClientFactory,
) -> None:
    client = make_client(
        one_buyer_config(pool='"+18339510260", "+18334583385"')
        + f"""
[[keys]]
key = "{KEY_INBOUND}"
publisher = "p1"
campaign = "c1"
"""
    )
    a = ping(client, key=KEY_OPEN, caller_number="2025550107")
    b = ping(client, key=KEY_INBOUND, caller_number="2025550107")
    assert {a["inbound_number"], b["inbound_number"]} == {"+18339510260", "+18334583385"}


# -- §3.2 ping shield ------------------------------------------------------------------------------


def test_ping_shield_returns_the_same_reservation(client: TestClient) -> None:
    first = ping(client, key=KEY_OPEN, caller_number="12025550102")
    second = ping(client, key=KEY_OPEN, caller_number="+1 (202) 555-0102")
    assert second["uuid"] == first["uuid"]
    assert second["inbound_number"] == first["inbound_number"]
    assert second["ping_shield"] is True
    assert "ping_shield" not in first


def test_ping_shield_does_not_reserve_a_second_buyer(make_client: ClientFactory) -> None:
    client = make_client(one_buyer_config(buyer="concurrency = 1"))
    first = ping(client, key=KEY_OPEN, caller_number="2025550108")
    again = ping(client, key=KEY_OPEN, caller_number="2025550108")
    assert again["uuid"] == first["uuid"]
    other = ping(client, key=KEY_OPEN, caller_number="2025550109")
    assert other["status"] == "no-target" and other["reason"] == "concurrency-cap-reached"


def test_ping_shield_ends_when_the_reservation_is_cancelled(client: TestClient) -> None:
    first = ping(client, key=KEY_OPEN, caller_number="2025550110")
    client.put(f"/rtbs/{first['uuid']}.json", data={"key": KEY_OPEN, "status": "cancelled"})
    assert ping(client, key=KEY_OPEN, caller_number="2025550110")["uuid"] != first["uuid"]


# -- §3.4 key settings -----------------------------------------------------------------------------


def test_unknown_and_missing_key_401_paused_key_403(make_client: ClientFactory) -> None:
    client = make_client(one_buyer_config(key="paused = true"))
    assert client.post("/rtbs.json", params={"key": "nope-nope-nope-nope"}).status_code == 401
    assert client.post("/rtbs.json").json() == {"error": "key: missing postback key"}
    r = client.post("/rtbs.json", params={"key": KEY_OPEN})
    assert r.status_code == 403 and "paused" in r.json()["error"]


def test_auto_confirm_and_ttl(make_client: ClientFactory, clock: Clock) -> None:
    client = make_client(one_buyer_config(key="auto_confirm = true\nttl_seconds = 30"))
    body = ping(client, key=KEY_OPEN, caller_number="2025550111")
    assert body["status"] == "confirmed" and "sip_address" in body
    clock.advance(29)
    assert (
        client.get(f"/rtbs/{body['uuid']}.json", params={"key": KEY_OPEN}).json()["status"]
        == "confirmed"
    )
    clock.advance(2)
    assert (
        client.get(f"/rtbs/{body['uuid']}.json", params={"key": KEY_OPEN}).json()["status"]
        == "expired"
    )


# -- §3.5 buyer selection ---------------------------------------------------------------------------


def test_no_target_has_reason_and_no_addresses(make_client: ClientFactory) -> None:
    client = make_client(one_buyer_config(buyer='filters = { caller_state = ["CA"] }'))
    body = ping(client, key=KEY_OPEN, caller_number="2025550112", caller_state="NY")
    assert body["status"] == "no-target"
    assert set(body) == {"uuid", "status", "reason"}
    assert body["reason"] == "filters-not-matched"
    assert (
        ping(client, key=KEY_OPEN, caller_number="2025550113", caller_state="ca")["status"]
        == "reserved"
    )


def test_no_target_pings_are_recorded(make_client: ClientFactory, clock: Clock) -> None:
    client = make_client(one_buyer_config(buyer='hours = "Mon 00:00-00:01 UTC"'))
    clock.now = datetime(2026, 6, 1, 0, 0, 30, tzinfo=UTC)  # a Monday, inside the window
    assert ping(client, key=KEY_OPEN, caller_number="2025550120")["status"] == "reserved"
    clock.now = datetime(2026, 6, 2, 12, 0, tzinfo=UTC)  # a Tuesday: outside it
    body = ping(client, key=KEY_OPEN, caller_number="2025550121")
    assert body["status"] == "no-target"
    looked = client.get(f"/rtbs/{body['uuid']}.json", params={"key": KEY_OPEN})
    assert looked.status_code == 200
    assert looked.json()["status"] == "no-target" and looked.json()["reason"] == "outside-hours"


def test_priority_then_daily_cap(make_client: ClientFactory) -> None:
    client = make_client(
        one_buyer_config(buyer="priority = 2")
        + """
[[campaigns.buyers]]
id = "b0"
destination = "sip:first@127.0.0.1"
payout = 50.0
seconds = 30
priority = 1
daily_cap = 2
"""
    )
    payouts = [
        ping(client, key=KEY_OPEN, caller_number=f"20255501{20 + i}")["retreaver_payout"]
        for i in range(3)
    ]
    assert payouts == [50.0, 50.0, 12.5]


def test_daily_cap_not_consumed_by_expired_or_cancelled(
    make_client: ClientFactory, clock: Clock
) -> None:
    client = make_client(one_buyer_config(buyer="daily_cap = 1", key="ttl_seconds = 5"))
    first = ping(client, key=KEY_OPEN, caller_number="2025550130")
    assert ping(client, key=KEY_OPEN, caller_number="2025550131")["reason"] == "daily-cap-reached"
    clock.advance(6)
    assert ping(client, key=KEY_OPEN, caller_number="2025550131")["status"] == "reserved"
    assert first["status"] == "reserved"


# -- §3.6 confirm / cancel / look up ----------------------------------------------------------------


def test_confirm_then_cancel_releases_the_buyer(make_client: ClientFactory) -> None:
    client = make_client(one_buyer_config(buyer="concurrency = 1"))
    body = ping(client, key=KEY_OPEN, caller_number="2025550140")
    r = client.put(f"/rtbs/{body['uuid']}.json", data={"key": KEY_OPEN, "status": "confirmed"})
    assert r.status_code == 200 and r.json()["status"] == "confirmed" and "sip_address" in r.json()
    assert ping(client, key=KEY_OPEN, caller_number="2025550141")["status"] == "no-target"
    r = client.patch(f"/rtbs/{body['uuid']}.json", json={"key": KEY_OPEN, "status": "cancelled"})
    assert r.json()["status"] == "cancelled" and "sip_address" not in r.json()
    assert ping(client, key=KEY_OPEN, caller_number="2025550141")["status"] == "reserved"
    # cancelled is final
    r = client.put(f"/rtbs/{body['uuid']}.json", data={"key": KEY_OPEN, "status": "confirmed"})
    assert r.status_code == 409


def test_confirm_after_expiry_reserves_again_or_says_no_target(
    make_client: ClientFactory, clock: Clock
) -> None:
    client = make_client(one_buyer_config(buyer="concurrency = 1", key="ttl_seconds = 5"))
    body = ping(client, key=KEY_OPEN, caller_number="2025550150")
    clock.advance(6)
    r = client.put(f"/rtbs/{body['uuid']}.json", data={"key": KEY_OPEN, "status": "confirmed"})
    assert r.json()["status"] == "confirmed"
    clock.advance(6)
    ping(client, key=KEY_OPEN, caller_number="2025550151")  # takes the only unit
    r = client.put(f"/rtbs/{body['uuid']}.json", data={"key": KEY_OPEN, "status": "confirmed"})
    assert r.json() == {
        "uuid": body["uuid"],
        "status": "no-target",
        "reason": "concurrency-cap-reached",
    }


def test_update_validation(client: TestClient) -> None:
    body = ping(client, key=KEY_OPEN)
    r = client.put(f"/rtbs/{body['uuid']}.json", data={"key": KEY_OPEN, "status": "paid"})
    assert r.status_code == 422 and r.json()["error"].startswith("status:")
    r = client.put(f"/rtbs/{body['uuid']}.json", data={"key": KEY_INBOUND, "status": "confirmed"})
    assert r.status_code == 404
    r = client.put(f"/rtbs/{uuidlib.uuid4()}.json", data={"key": KEY_OPEN, "status": "confirmed"})
    assert r.status_code == 404


def test_lookup_requires_the_owning_key(client: TestClient) -> None:
    body = ping(client, key=KEY_OPEN)
    assert client.get(f"/rtbs/{body['uuid']}.json").status_code == 401
    assert client.get(f"/rtbs/{body['uuid']}.json", params={"key": KEY_INBOUND}).status_code == 404
    assert client.get("/rtbs/not-a-uuid.json", params={"key": KEY_OPEN}).status_code == 422


# -- §3.7 expiry -----------------------------------------------------------------------------------


def test_expiry_releases_the_buyer_and_lookup_says_expired(
    make_client: ClientFactory, clock: Clock
) -> None:
    client = make_client(one_buyer_config(buyer="concurrency = 1", key="ttl_seconds = 10"))
    body = ping(client, key=KEY_OPEN, caller_number="2025550160")
    assert ping(client, key=KEY_OPEN, caller_number="2025550161")["status"] == "no-target"
    clock.advance(11)
    assert ping(client, key=KEY_OPEN, caller_number="2025550161")["status"] == "reserved"
    looked = client.get(f"/rtbs/{body['uuid']}.json", params={"key": KEY_OPEN}).json()
    assert looked["status"] == "expired" and "sip_address" not in looked


def test_sweeper_writes_expired_and_history_keeps_the_transitions(
    make_client: ClientFactory, clock: Clock
) -> None:
    """History rows record what the reservation row cannot: the publisher's confirm or
    cancel, the call's progress. Creation is the row itself, and an expiry's time is its
    ``expires_at``; neither writes one (issue 8: a row write less per ping and per expiry)."""
    from sqlalchemy import select

    from rtbridge.storage.models import Reservation, ReservationEvent

    client = make_client(one_buyer_config(key="ttl_seconds = 10"))
    body = ping(client, key=KEY_OPEN)
    cancelled = ping(client, key=KEY_OPEN)
    client.put(f"/rtbs/{cancelled['uuid']}.json", data={"key": KEY_OPEN, "status": "cancelled"})
    state = client.app.state.rtbridge  # type: ignore[attr-defined]
    assert state.reservations.expire_due() == 0
    clock.advance(11)
    assert state.reservations.expire_due() == 1
    assert state.reservations.expire_due() == 0
    with state.engine.connect() as conn:
        status = conn.execute(
            select(Reservation.status).where(Reservation.uuid == body["uuid"])
        ).scalar()
        history = conn.execute(
            select(
                ReservationEvent.reservation_uuid, ReservationEvent.status, ReservationEvent.detail
            )
        ).all()
    assert status == "expired"
    assert [tuple(h) for h in history] == [
        (cancelled["uuid"], "cancelled", "cancelled by publisher")
    ]


def test_metrics_say_why_pings_got_no_target(make_client: ClientFactory) -> None:
    """Issue 12: /metrics carries the no-target reason, so "why are pings not reserving?"
    has an answer without reading logs."""
    client = make_client(one_buyer_config(buyer="concurrency = 1"))
    assert ping(client, key=KEY_OPEN, caller_number="+12025550111")["status"] == "reserved"
    assert ping(client, key=KEY_OPEN, caller_number="+12025550112")["status"] == "no-target"
    scrape = Exposition(client.get("/metrics").text)
    answers = "rtbridge_reservations_total"
    assert scrape.value(answers, status="reserved", ping_shield="false") == 1
    assert (
        scrape.value(
            answers, status="no-target", ping_shield="false", reason="concurrency-cap-reached"
        )
        == 1
    )


def test_ping_answer_is_json_with_its_length(client: TestClient) -> None:
    """The ping is answered before Starlette's router (http/publisher/ping.py): its head must
    still say what the body is, as every other answer's does."""
    r = client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550177"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    refused = client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "12"})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/json"
    assert refused.json() == {"error": refused.json()["error"]} and "caller_number" in refused.text
