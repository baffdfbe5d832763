"""The publisher API's OpenAPI description is served at /openapi.json, lists exactly the
routes and methods the app serves (schemathesis fuzzes from it: test_fuzz_openapi.py), is
generated from the models of http/publisher/models.py, and real answers match the schemas
it declares (so the handlers' dicts and the models cannot drift apart)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import jsonschema_rs
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from rtbridge.domain import lifecycle as st
from rtbridge.http import health
from rtbridge.http.publisher import routes as publisher
from rtbridge.http.publisher.openapi import openapi_document
from rtbridge.storage import calls
from tests.conftest import ClientFactory, Clock
from tests.support.demo import KEY_OPEN, one_buyer_config
from tests.support.openapi import conforms, operation


def _served() -> set[tuple[str, str]]:
    served = set()
    for route in [*publisher.routes, *health.routes]:
        assert isinstance(route, Route)
        served |= {(route.path, m.lower()) for m in route.methods or () if m != "HEAD"}
    return served


def test_description_lists_exactly_the_served_routes(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert described == _served()


def test_errors_are_described_with_their_shape(client: TestClient) -> None:
    ping = client.get("/openapi.json").json()["paths"]["/rtbs.json"]["post"]
    assert {"200", "401", "403", "422", "503"} <= set(ping["responses"])
    assert ping["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    names = {p["name"] for p in ping["parameters"]}
    assert {"key", "caller_number", "inbound_number", "publisher_id", "source_id"} <= names
    # The admin API keeps its own description where it was.
    assert client.get("/admin/openapi.json").status_code == 401


# -- generated from the models, and real answers match it ------------------------------------

KEY_RTB = "9d1c7e55-4b2a-4c61-b8d4-3f2e6a1b0c77"  # response_root rtb, auto-confirm
KEY_PAUSED = "5e8a2f10-7c3d-4b9e-a1f6-2d4c8b0e9a33"
CONFIG = (
    one_buyer_config(buyer='filters = { caller_state = ["CA"] }')
    + f"""
[[keys]]
key = "{KEY_RTB}"
publisher = "p1"
campaign = "c1"
response_root = "rtb"
auto_confirm = true

[[keys]]
key = "{KEY_PAUSED}"
publisher = "p1"
campaign = "c1"
paused = true
"""
)


def test_operation_ids_are_unique_and_everywhere() -> None:
    ops = [op for item in openapi_document()["paths"].values() for op in item.values()]
    ids = [op.get("operationId") for op in ops]
    assert all(ids) and len(set(ids)) == len(ops), ids


def test_parameters_bodies_and_answers_are_the_models() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    ping = doc["paths"]["/rtbs.json"]["post"]
    bodies = {media["schema"]["$ref"] for media in ping["requestBody"]["content"].values()}
    assert bodies == {"#/components/schemas/PingParams"}
    assert len(ping["requestBody"]["content"]) == 3  # JSON, urlencoded and multipart forms
    assert [p["name"] for p in ping["parameters"]] == list(schemas["PingParams"]["properties"])
    assert schemas["PingParams"]["additionalProperties"] == {"type": "string"}  # the tags
    answer = ping["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in
                                ("ReservationPublic", "NoTargetPublic", "RtbRoot")]}  # fmt: skip
    update = doc["paths"]["/rtbs/{uuid}.json"]["put"]
    assert {p["name"] for p in update["parameters"]} == {"uuid", "key", "status"}
    assert set(update["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
    }
    # a field left out when it does not apply is not offered as null
    sip_address = schemas["ReservationPublic"]["properties"]["sip_address"]
    assert sip_address["type"] == "string" and "default" not in sip_address
    assert "sip_address" not in schemas["ReservationPublic"]["required"]
    statuses = set(schemas["ReservationPublic"]["properties"]["status"]["enum"])
    assert statuses | {"no-target"} == {*st.UNCLAIMED, *st.IN_CALL, *st.TERMINAL}
    refs = set(re.findall(r"'\$ref': '#/components/schemas/([^']+)'", str(doc)))
    assert refs | {"CallPublic"} == set(schemas)  # CallPublic is reached from ReservationPublic


def _call(client: TestClient, uuid: str, *, seconds: float | None) -> None:
    """What the SIP agent writes (storage/calls.py): a claim, then unless None the answer and
    the end of the call."""
    state = client.app.state.rtbridge  # type: ignore[attr-defined]
    now = state.reservations.clock()
    claimed = calls.claim(state.engine, uuid=uuid, publisher_id="p1", now=now, agent="t",
                          source="198.51.100.7:5060/UDP")  # fmt: skip
    assert isinstance(claimed, calls.Claimed), claimed
    if seconds is not None:
        calls.answered(state.engine, uuid=uuid, at=now)
        calls.ended(state.engine, uuid=uuid, answer_at=now, end_at=now + timedelta(seconds=seconds),
                    publisher_code=200, buyer_code=200, hangup_by="media-timeout",
                    duration=seconds)  # fmt: skip


def test_real_answers_match_the_declared_schemas(make_client: ClientFactory, clock: Clock) -> None:
    """Every answer the API gives on the way is validated against the schema declared for
    its operation and status: pings in both shapes, updates, look-ups and refusals."""
    client = make_client(CONFIG)
    doc = openapi_document()
    seen: list[tuple[int, dict[str, Any]]] = []

    def check(r: Any) -> dict[str, Any]:
        conforms(doc, r)
        body: dict[str, Any] = r.json()
        seen.append((r.status_code, body))
        return body.get("rtb", body)  # type: ignore[no-any-return]

    def lookup(uuid: str, key: str = KEY_OPEN) -> dict[str, Any]:
        return check(client.get(f"/rtbs/{uuid}.json", params={"key": key}))

    def ping(query: str = "", **body: Any) -> dict[str, Any]:
        return check(client.post(f"/rtbs.json{query}", **body))

    ca = {"caller_state": "CA", "caller_zip": "94105"}
    reserved = ping(data={"key": KEY_OPEN, "caller_number": "12025550102", **ca})
    shielded = ping(f"?key={KEY_OPEN}", json={"caller_number": "+12025550102", **ca})
    bare = ping(files={"key": (None, KEY_OPEN), "caller_state": (None, "CA")})  # a SIP URI
    no_target = ping(data={"key": KEY_OPEN, "caller_state": "NY"})
    confirmed = ping(data={"key": KEY_RTB, "caller_number": "+12025550103", **ca})
    wrapped_no_target = ping(json={"key": KEY_RTB, "caller_number": "+12025550104"})
    expiring = ping(data={"key": KEY_OPEN, **ca})
    assert [b["status"] for b in (reserved, bare, no_target, confirmed, wrapped_no_target)] == [
        "reserved", "reserved", "no-target", "confirmed", "no-target"]  # fmt: skip
    assert shielded["ping_shield"] is True and shielded["uuid"] == reserved["uuid"]
    assert ["rtb" in body for _, body in seen] == [False] * 4 + [True] * 2 + [False]

    assert lookup(reserved["uuid"])["tags"] == ca  # no call record yet
    assert lookup(no_target["uuid"])["reason"] == "filters-not-matched"
    assert lookup(confirmed["uuid"], KEY_RTB)["caller_number"] == "+12025550103"
    path = f"/rtbs/{reserved['uuid']}.json"
    renewed = check(client.put(path, data={"key": KEY_OPEN, "status": "confirmed"}))
    assert renewed["status"] == "confirmed"
    _call(client, reserved["uuid"], seconds=None)  # claimed: the call is ringing
    ringing = lookup(reserved["uuid"])
    assert ringing["status"] == "claimed" and ringing["call"]["answered_at"] is None
    _call(client, bare["uuid"], seconds=75.5)  # answered and ended
    done = lookup(bare["uuid"])
    assert (done["status"], done["converted"], done["call"]["hangup_by"]) == (
        "completed", True, "media-timeout")  # fmt: skip
    rtb_path = f"/rtbs/{confirmed['uuid']}.json"
    cancelled = check(client.patch(f"{rtb_path}?key={KEY_RTB}&status=cancelled"))
    again = check(client.patch(rtb_path, json={"key": KEY_RTB, "status": "cancelled"}))
    assert cancelled["status"] == again["status"] == "cancelled"
    clock.advance(3600)
    expired = lookup(expiring["uuid"])
    assert expired["status"] == "expired" and "sip_address" not in expired

    ping(data={"key": "no-such-key-0000000000"})  # 401
    ping(data={"key": KEY_PAUSED, **ca})  # 403
    check(client.get(path, params={"key": KEY_RTB}))  # 404: another key's reservation
    check(client.put(path, data={"key": KEY_OPEN, "status": "cancelled"}))  # 409: claimed
    check(client.put(path, data={"key": KEY_OPEN, "status": "reserved"}))  # 422
    ping(data={"key": KEY_OPEN, "caller_number": "+1 abc"})  # 422
    check(client.get("/rtbs/short.json", params={"key": KEY_OPEN}))  # 422
    assert {status for status, _ in seen} == {200, 401, 403, 404, 409, 422}
    assert [set(body) for status, body in seen if status != 200] == [{"error"}] * 7


_RESERVED = {"uuid": "0c4d6f2a-1b3e-7a9d-8c7f-9e2b1a6d4f30", "status": "reserved",
             "retreaver_payout": 12.5, "retreaver_seconds": 60, "inbound_number": "+18339510260"}  # fmt: skip


@pytest.mark.parametrize(
    "answer",
    [
        {**_RESERVED, "sip_address": None},  # left out, never null
        {**_RESERVED, "retreaver_payout": "12.5"},  # a number, not text
        {**_RESERVED, "reason": "no-buyers"},  # a reason only with no-target
        {k: v for k, v in _RESERVED.items() if k != "inbound_number"},  # a field missing
        {"uuid": _RESERVED["uuid"], "status": "no-target"},  # no-target without its reason
        {"rtb": _RESERVED, "uuid": _RESERVED["uuid"]},  # the wrapper holds only rtb
        {**_RESERVED, "status": "claimed", "call": {"invite_at": "2026-12-02T10:15:00.123Z"}},
    ],
)
def test_a_wrong_answer_would_be_caught(answer: dict[str, Any]) -> None:
    """The conformance check can fail: answers the models do not allow are refused."""
    doc = openapi_document()
    for method, path in (("POST", "/rtbs.json"), ("GET", "/rtbs/x.json")):
        media = operation(doc, method, path)["responses"]["200"]["content"]["application/json"]
        validator = jsonschema_rs.validator_for(
            {**media["schema"], "components": doc["components"]}
        )
        assert not validator.is_valid(answer)
        assert validator.is_valid(_RESERVED)
