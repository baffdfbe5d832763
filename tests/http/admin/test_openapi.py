"""The admin API's OpenAPI description: public at /openapi/admin.json, generated from the
pydantic models, an operationId on every operation, and real answers that match the
response schemas it declares (so a handler's view and its "Public" model cannot drift)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
from starlette.testclient import TestClient

from rtbridge.http.admin.openapi import OPERATIONS, _obj, _op, openapi_document
from tests.conftest import ClientFactory
from tests.support.openapi import conforms, operation

KEY = "0123456789abcdef-openapi"


def test_public_without_a_token(make_client: ClientFactory) -> None:
    client = make_client()
    r = client.get("/openapi/admin.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == openapi_document()
    assert client.get("/admin/openapi.json").status_code == 401  # the /admin path keeps its token


def test_operation_ids_are_unique_and_everywhere() -> None:
    ops = [op for item in openapi_document()["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in ops]
    assert len(ids) == len(ops) and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z]+_[a-z0-9_]+", i) for i in ids), ids


def test_request_bodies_and_answers_are_components() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    post = doc["paths"]["/admin/keys"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/KeyCreate"}
    assert "key" not in schemas["KeyCreate"]["required"]  # a random key is made
    assert schemas["KeyCreate"]["properties"]["ttl_seconds"]["maximum"] == 86400
    assert schemas["KeyCreate"]["additionalProperties"] is False
    answer = post["responses"]["201"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/KeyCreated"}
    assert schemas["PasswordSet"]["properties"]["password"]["writeOnly"] is True
    assert "null" not in str(
        schemas["TrunkSpec"]["properties"]["username"]
    )  # refused, so not offered


def test_failover_settings_are_described() -> None:
    """The campaign's PATCH, and the failover fields with their rules as JSON Schema."""
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    patch = doc["paths"]["/admin/campaigns/{campaign}"]["patch"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CampaignPatch"}
    # managed_by: the view's, which a body may send back as read
    assert set(schemas["CampaignPatch"]["properties"]) == {
        "failover", "max_attempts", "managed_by", "bid_deadline_ms", "publisher_share", "min_bid",
        "duplicate_window", "duplicate_after", "min_attestation", "record", "record_announcement",
    }  # fmt: skip
    failover = schemas["Campaign"]["properties"]["failover"]
    assert failover["items"]["enum"] == ["no-answer", "busy", "rejected", "unreachable"]
    assert failover["uniqueItems"] is True and failover["default"] == failover["items"]["enum"]
    attempts = schemas["Campaign"]["properties"]["max_attempts"]
    assert (attempts["minimum"], attempts["maximum"], attempts["default"]) == (1, 10, 3)
    buyer = schemas["BuyerSpec"]["properties"]
    assert (buyer["ring_timeout"]["exclusiveMinimum"], buyer["ring_timeout"]["maximum"]) == (0, 600)
    assert (buyer["connect_timeout"]["exclusiveMinimum"], buyer["connect_timeout"]["maximum"]) == (
        0, 60)  # fmt: skip
    assert {"ring_timeout", "connect_timeout"} <= set(schemas["BuyerPatch"]["properties"])
    assert {"failover", "max_attempts"} <= set(schemas["CampaignPublic"]["required"])


def test_a_hand_written_entry_sits_beside_generated_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operation described with plain JSON Schema dicts still gets its operationId and
    security, next to the model-generated ones."""
    things = _op("List things", answer=_obj(["things"], things={"type": "array"}))
    monkeypatch.setitem(OPERATIONS, "/admin/things/{thing}", {"get": things})
    op = openapi_document()["paths"]["/admin/things/{thing}"]["get"]
    assert op["operationId"] == "get_things_by_thing" and op["security"] == [{"bearer": []}]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["required"] == ["things"]
    assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorPublic"
    )


def test_every_ref_names_a_component() -> None:
    doc = openapi_document()
    refs = set(re.findall(r"'\$ref': '#/components/schemas/([^']+)'", str(doc)))
    assert refs and refs == set(doc["components"]["schemas"])


def test_real_answers_match_the_declared_schemas(admin: TestClient) -> None:
    doc = openapi_document()
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/admin/publishers", None),
        ("POST", "/admin/publishers", {"id": "pub-9", "name": "Nine", "ips": ["203.0.113.64/28",
         {"cidr": "2001:db8:9::/48", "note": "v6", "expires_at": "2099-01-01T00:00:00Z"}],
         "credentials": [{"username": "nine", "password": "s3cret-Pass-999"}]}),
        ("GET", "/admin/publishers/pub-9", None),
        ("PATCH", "/admin/publishers/pub-9", {"name": "Nine B", "require_tls": True}),
        ("GET", "/admin/ips", None),
        ("POST", "/admin/publishers/pub-9/ips", {"cidr": "192.0.2.0/28", "note": "lab"}),
        ("POST", "/admin/publishers/pub-9/ips", ["192.0.2.64/28", "not a cidr"]),
        ("GET", "/admin/publishers/pub-9/ips", None),
        ("GET", "/admin/publishers/pub-9/credentials", None),
        ("PUT", "/admin/publishers/pub-9/credentials/nine2", {"password": "An0ther-Pass-99"}),
        ("PUT", "/admin/publishers/pub-9/credentials/nine2", {"password": "weak"}),
        ("DELETE", "/admin/publishers/pub-9/credentials/nine2", None),
        ("GET", "/admin/campaigns", None),
        ("POST", "/admin/campaigns", {"id": "c9", "numbers": ["+18005550199"], "buyers": [
         {"id": "b9", "destination": "sip:q@buyer.example.net", "payout": 2.5, "seconds": 30,
          "filters": {"caller_state": ["CA"]}, "hours": "Mon-Fri 09:00-17:00 UTC"}]}),
        ("GET", "/admin/campaigns/c9", None),
        ("PATCH", "/admin/campaigns/c9", {"failover": ["busy"], "max_attempts": 2}),
        ("PATCH", "/admin/campaigns/c9", {"failover": ["ringing"]}),
        ("GET", "/admin/buyers?campaign=c9", None),
        ("POST", "/admin/buyers", {"campaign": "c9", "id": "b10", "destination": "+18005550100",
         "payout": 1, "seconds": 10, "concurrency": 2, "srtp": "optional"}),
        ("PATCH", "/admin/buyers/b10", {"weight": 3, "daily_cap": None, "ring_timeout": 15,
                                         "connect_timeout": 1.5}),
        ("GET", "/admin/buyers/b10", None),
        ("POST", "/admin/buyers", {"campaign": "c9", "id": "b11", "seconds": 30,
         "bid_url": "https://bids.buyer.example/rtb", "bid_headers": {"Authorization": "Bearer x"}}),
        ("PATCH", "/admin/buyers/b11", {"bid_format": "ringba", "hide_caller": True}),
        ("PATCH", "/admin/buyers/b11", {"payout": 3}),
        ("GET", "/admin/buyers/b11", None),
        ("PATCH", "/admin/campaigns/c9", {"bid_deadline_ms": 300, "publisher_share": 0.8,
                                          "min_bid": 2}),
        ("GET", "/admin/bids?buyer=b11", None),
        ("GET", "/admin/bids?outcome=winner", None),
        ("GET", "/admin/dids", None),
        ("POST", "/admin/dids", {"number": "+18005550198", "campaign": "c9"}),
        ("POST", "/admin/dids", {"number": "+18005550198", "campaign": "c9"}),
        ("DELETE", "/admin/dids/+18005550198", None),
        ("GET", "/admin/keys", None),
        ("POST", "/admin/keys", {"key": KEY, "publisher": "pub-9", "campaign": "c9",
                                 "inbound_number": "+18005550199", "response_root": "rtb"}),
        ("POST", "/admin/keys", {"publisher": "pub-9", "campaign": "c9", "ttl_seconds": "60"}),
        ("GET", "/admin/trunks", None),
        ("POST", "/admin/trunks", {"id": "t9", "uri": "sip:{number}@203.0.113.9", "ips":
         ["203.0.113.9/32"], "username": "u9", "realm": "carrier.example", "password": "pw"}),
        ("PATCH", "/admin/trunks/t9", {"uri": "sips:{number}@192.0.2.9"}),
        ("GET", "/admin/trunks/t9", None),
        ("GET", "/admin/check?ip=198.51.100.1", None),
        ("GET", "/admin/check?ip=203.0.113.250", None),
        ("POST", "/admin/check", {"username": "nine", "password": "s3cret-Pass-999"}),
        ("POST", "/admin/check", {"username": "nine", "password": "wrong-Pass-999"}),
        ("GET", "/admin/audit?limit=5", None),
        ("GET", "/admin/publishers/ghost", None),
        ("DELETE", "/admin/buyers/b10", None),
    ]  # fmt: skip
    statuses = set()
    for method, path, body in calls:
        r = (
            admin.request(method, path, json=body)
            if body is not None
            else admin.request(method, path)
        )
        assert r.status_code < 500, (method, path, r.text)
        conforms(doc, r)
        statuses.add(r.status_code)
    # the key made at random, a key's settings, an entry's change: answers read back too
    keys = admin.get("/admin/keys").json()["keys"]
    key_id = next(k["id"] for k in keys if k["publisher"] == "pub-9")
    for r in (admin.get(f"/admin/keys/{key_id}"),
              admin.patch(f"/admin/keys/{key_id}", json={"paused": True}),
              admin.patch(f"/admin/publishers/pub-9/ips/{admin.get('/admin/publishers/pub-9/ips').json()['ips'][0]['id']}",
                          json={"note": "renamed"})):  # fmt: skip
        assert r.status_code == 200, r.text
        conforms(doc, r)
    assert {200, 201, 204, 404, 409, 422} <= statuses


def test_bid_settings_are_described() -> None:
    """An RTB buyer's fields with their rules, write-only headers, and no destination or
    payout in its view; the campaign's auction; the bids in a reservation's story."""
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    spec = schemas["BuyerSpec"]
    assert {"destination", "payout"}.isdisjoint(spec["required"])
    assert spec["properties"]["bid_format"]["enum"] == ["rtbridge", "ringba", "retreaver"]
    assert {"bid_url", "bid_format", "bid_headers", "hide_caller"} <= set(
        schemas["BuyerPatch"]["properties"]
    )
    public = schemas["BuyerPublic"]["properties"]
    assert "null" in str(public["destination"]) and "null" in str(public["payout"])
    assert '"***"' in public["bid_headers"]["description"]
    share = schemas["Campaign"]["properties"]["publisher_share"]
    assert (share["exclusiveMinimum"], share["maximum"], share["default"]) == (0, 1, 1.0)
    post = doc["paths"]["/admin/buyers"]["post"]["requestBody"]["content"]
    assert post["application/x-www-form-urlencoded"]["schema"] == {
        "$ref": "#/components/schemas/BuyerSpec"
    }  # a model keeps its own schema: its headers in a form are the bid_headers.<name> keys
    story = doc["paths"]["/admin/rtbs/{uuid}"]["get"]["responses"]["200"]
    assert "bids" in story["content"]["application/json"]["schema"]["required"]


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/admin/publishers/pub-1", {"id": "pub-1", "name": None}),  # a key is missing
        ("/admin/trunks", {"trunks": [{"id": "t", "password": "x"}]}),  # a secret is extra
    ],
)
def test_a_wrong_answer_would_be_caught(path: str, answer: dict[str, Any]) -> None:
    """The conformance check can fail: answers the models do not allow are refused."""
    doc = openapi_document()
    schema = operation(doc, "GET", path)["responses"]["200"]["content"]["application/json"]
    validator = jsonschema_rs.validator_for({**schema["schema"], "components": doc["components"]})
    assert not validator.is_valid(answer)
