"""Round trips for every admin resource, and the errors: 404, 409, 422 with the words of
``rtbridge apply`` (one implementation of the rules)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from rtbridge.config.schema import ConfigError, parse_document


def apply_errors(section: str, entry: dict[str, object]) -> list[str]:
    """What `rtbridge apply` says about ``entry`` in ``section``, paths stripped."""
    with pytest.raises(ConfigError) as info:
        parse_document(
            {section: [entry]}, existing={"publishers": {"pub-1"}, "campaigns": {"auto"}}
        )
    return [e.split(": ", 1)[1] for e in info.value.errors]


def version(client: TestClient) -> int:
    return client.app.state.rtbridge.catalog.get().version  # type: ignore[attr-defined, no-any-return]


def test_publisher_round_trip(admin: TestClient) -> None:
    before = version(admin)
    cred = {"username": "pub2", "password": "An0ther-Pass-99"}
    r = admin.post("/admin/publishers", json={"id": "pub-2", "name": "Second", "ips": ["192.0.2.0/24"],
                                             "credentials": [cred]})  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "pub-2" and body["name"] == "Second"
    assert [ip["cidr"] for ip in body["ips"]] == ["192.0.2.0/24"]
    assert body["credentials"] == [
        {"username": "pub2", "publisher": "pub-2", "realm": "sip.rtb.example.com"}
    ]
    assert "An0ther" not in r.text
    assert version(admin) > before  # every change bumps the version, seen here at once
    listed = {"id": "pub-2", "name": "Second", "require_tls": False, "require_srtp": False,
              "media_networks": [], "managed_by": "admin"}  # fmt: skip
    assert listed in admin.get("/admin/publishers").json()["publishers"]
    assert admin.patch("/admin/publishers/pub-2", json=listed).status_code == 200  # as read
    r = admin.patch("/admin/publishers/pub-2", json={"require_tls": True, "require_srtp": True})
    assert r.status_code == 200 and (r.json()["require_tls"], r.json()["require_srtp"]) == (
        True,
        True,
    )
    r = admin.patch("/admin/publishers/pub-2", json={"require_tls": "yes"})
    assert r.status_code == 422 and "require_tls: must be true or false" in r.json()["error"]
    r = admin.patch("/admin/publishers/pub-2", json={"name": "Renamed"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    r = admin.patch("/admin/publishers/pub-2", json={"name": None})
    assert r.json()["name"] is None
    assert admin.post("/admin/publishers", json={"id": "pub-2"}).status_code == 409
    assert admin.delete("/admin/publishers/pub-2").status_code == 204
    assert admin.get("/admin/publishers/pub-2").status_code == 404
    r = admin.delete("/admin/publishers/pub-1")
    assert r.status_code == 409 and "still has 3 key(s)" in r.json()["error"]


def test_allowlist_round_trip(admin: TestClient) -> None:
    r = admin.post("/admin/publishers/pub-1/ips",
                   json={"cidr": "2001:db8::/32", "note": "office", "expires_at": "2030-01-01T00:00:00Z"})  # fmt: skip
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["cidr"] == "2001:db8::/32" and entry["note"] == "office"
    assert entry["expires_at"] == "2030-01-01T00:00:00.000Z" and entry["expired"] is False
    listed = admin.get("/admin/publishers/pub-1/ips").json()["ips"]
    assert entry in listed and len(listed) == 3
    assert entry in admin.get("/admin/ips").json()["ips"]
    r = admin.patch(
        f"/admin/publishers/pub-1/ips/{entry['id']}",
        json={"note": None, "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert r.status_code == 422 and r.json()["error"].startswith("expires_at: 2020-01-01")
    r = admin.patch(f"/admin/publishers/pub-1/ips/{entry['id']}", json={"note": None})
    assert r.status_code == 200 and r.json()["note"] is None and r.json()["expired"] is False
    r = admin.post("/admin/publishers/pub-1/ips", json={"cidr": "2001:db8::/32"})
    assert r.status_code == 409 and "already on pub-1's allowlist" in r.json()["error"]
    admin.post("/admin/publishers", json={"id": "pub-3"})
    r = admin.post("/admin/publishers/pub-3/ips", json={"cidr": "127.0.0.1/32"})
    assert r.status_code == 409 and "belongs to publisher 'pub-1'" in r.json()["error"]
    assert admin.delete(f"/admin/publishers/pub-1/ips/{entry['id']}").status_code == 204
    assert admin.delete(f"/admin/publishers/pub-1/ips/{entry['id']}").status_code == 404
    assert (
        admin.post("/admin/publishers/nobody/ips", json={"cidr": "10.0.0.0/8"}).status_code == 404
    )


def test_credentials_set_rotate_remove(admin: TestClient) -> None:
    r = admin.put("/admin/publishers/pub-1/credentials/pub1b", json={"password": "Fresh-Pass-2026"})
    assert r.status_code == 201 and r.json() == {
        "username": "pub1b",
        "publisher": "pub-1",
        "created": True,
    }
    r = admin.put(
        "/admin/publishers/pub-1/credentials/pub1b", json={"password": "Rotated-Pass-2027"}
    )
    assert r.status_code == 200 and r.json()["created"] is False
    listed = admin.get("/admin/publishers/pub-1/credentials").json()["credentials"]
    assert [c["username"] for c in listed] == ["pub1", "pub1b"]
    assert "Pass" not in admin.get("/admin/publishers/pub-1").text
    admin.post("/admin/publishers", json={"id": "pub-3"})
    r = admin.put("/admin/publishers/pub-3/credentials/pub1b", json={"password": "Fresh-Pass-2026"})
    assert r.status_code == 409 and "belongs to publisher 'pub-1'" in r.json()["error"]
    assert admin.delete("/admin/publishers/pub-1/credentials/pub1b").status_code == 204
    assert admin.delete("/admin/publishers/pub-1/credentials/pub1b").status_code == 404
    assert (
        admin.put(
            "/admin/publishers/pub-1/credentials/x", json={"password": "a", "other": 1}
        ).status_code
        == 422
    )


def test_campaign_buyer_did_round_trip(admin: TestClient) -> None:
    r = admin.post("/admin/campaigns", json={"id": "health", "numbers": ["+18005550111"], "buyers": [
        {"id": "clinic", "destination": "sip:q@clinic.example:5060", "payout": 20, "seconds": 90}]})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "health", "numbers": ["+18005550111"], "buyers": ["clinic"],
                        "failover": ["no-answer", "busy", "rejected", "unreachable"],
                        "max_attempts": 3, "bid_deadline_ms": 250, "publisher_share": 1.0,
                        "min_bid": 0.01, "duplicate_window": 0, "duplicate_after": "connected",
                        "min_attestation": None, "record": False,
                        "record_announcement": None, "managed_by": "admin"}  # fmt: skip
    assert admin.post("/admin/campaigns", json={"id": "health"}).status_code == 409
    r = admin.post("/admin/buyers", json={"campaign": "health", "id": "clinic2", "destination": "+18005550199",
                                         "payout": 5.5, "seconds": 30, "trunk": "carrier",
                                         "hours": "Mon-Fri 09:00-17:00 America/New_York",
                                         "filters": {"caller_state": ["CA"]}})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["trunk"] == "carrier" and r.json()["filters"] == {"caller_state": ["CA"]}
    r = admin.patch("/admin/buyers/clinic2", json={"payout": 7, "hours": None})
    assert r.status_code == 200 and r.json()["payout"] == 7.0 and r.json()["hours"] is None
    assert [b["id"] for b in admin.get("/admin/buyers?campaign=health").json()["buyers"]] == [
        "clinic",
        "clinic2",
    ]
    r = admin.post("/admin/dids", json={"number": "+18005550112", "campaign": "health"})
    assert r.status_code == 201
    assert (
        admin.post("/admin/dids", json={"number": "+18005550112", "campaign": "auto"}).status_code
        == 409
    )
    assert admin.get("/admin/dids?campaign=health").json()["dids"] == [
        {"number": n, "campaign": "health", "managed_by": "admin"}
        for n in ("+18005550111", "+18005550112")]  # fmt: skip
    assert admin.delete("/admin/dids/+18005550112").status_code == 204
    assert admin.delete("/admin/buyers/clinic2").status_code == 204
    assert admin.get("/admin/buyers/clinic2").status_code == 404
    catalog = admin.app.state.rtbridge.catalog.get()  # type: ignore[attr-defined]
    assert [b.rule.id for b in catalog.campaigns["health"].buyers] == ["clinic"]
    assert admin.delete("/admin/campaigns/health").status_code == 204
    assert admin.get("/admin/buyers/clinic").status_code == 404
    r = admin.delete("/admin/campaigns/auto")
    assert r.status_code == 409 and "key(s)" in r.json()["error"]


def test_key_round_trip_shows_the_key_once(admin: TestClient) -> None:
    r = admin.post(
        "/admin/keys",
        json={"publisher": "pub-1", "campaign": "auto", "allow_missing_caller_number": True},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    key, key_id = created["key"], created["id"]
    assert len(key) == 36 and created["hint"] == key[:4] + "…"
    listed = admin.get("/admin/keys")
    assert key not in listed.text and any(k["id"] == key_id for k in listed.json()["keys"])
    ping = admin.post("/rtbs.json", data={"key": key})
    assert ping.status_code == 200 and ping.json()["status"] == "reserved"  # live at once
    r = admin.patch(f"/admin/keys/{key_id}", json={"paused": True})
    assert r.status_code == 200 and r.json()["paused"] is True and "key" not in r.json()
    assert admin.post("/rtbs.json", data={"key": key}).status_code == 403
    assert admin.patch(f"/admin/keys/{key_id}", json={"key": "x" * 20}).status_code == 422
    r = admin.post("/admin/keys", json={"key": key, "publisher": "pub-1", "campaign": "auto"})
    assert r.status_code == 409
    assert admin.delete(f"/admin/keys/{key_id}").status_code == 204
    assert admin.post("/rtbs.json", data={"key": key}).status_code == 401
    assert admin.get(f"/admin/keys/{key_id}").status_code == 404


def test_trunk_round_trip(admin: TestClient) -> None:
    auth = {"username": "acct", "password": "trunk-secret", "realm": "carrier.example"}
    r = admin.post("/admin/trunks", json={"id": "carrier2", "ips": ["192.0.2.0/28"],
                                         "uri": "sip:{number}@192.0.2.1", **auth})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "carrier2", "ips": ["192.0.2.0/28"], "uri": "sip:{number}@192.0.2.1",
                        "username": "acct", "realm": "carrier.example", "has_password": True,
                        "allow_overlap": False, "managed_by": "admin"}  # fmt: skip
    r = admin.patch("/admin/trunks/carrier2", json={"managed_by": "file"})
    assert r.status_code == 422 and r.json()["error"].startswith("managed_by: only rtbridge apply")
    r = admin.patch("/admin/trunks/carrier2", json={"realm": "other.example"})
    assert r.status_code == 422 and r.json()["error"].startswith(
        "password: required when username or realm changes"
    )
    r = admin.patch("/admin/trunks/carrier2", json={"ips": ["192.0.2.0/27"]})
    assert r.status_code == 200 and r.json()["ips"] == ["192.0.2.0/27"] and r.json()["has_password"]
    assert "carrier2" in [t["id"] for t in admin.get("/admin/trunks").json()["trunks"]]
    assert admin.delete("/admin/trunks/carrier2").status_code == 204
    admin.post("/admin/buyers", json={"campaign": "auto", "id": "pstn", "destination": "+18005550100",
                                      "payout": 1, "seconds": 10, "trunk": "carrier"})  # fmt: skip
    r = admin.delete("/admin/trunks/carrier")
    assert r.status_code == 409 and "pstn" in r.json()["error"]


@pytest.mark.parametrize(
    ("route", "section", "entry", "extra"),
    [
        (
            "/admin/keys",
            "keys",
            {"key": "short", "publisher": "pub-1", "campaign": "auto", "inbound_number": "12"},
            {},
        ),
        (
            "/admin/keys",
            "keys",
            {"key": "k" * 20, "publisher": "pub-1", "campaign": "auto", "ttl_seconds": 0},
            {},
        ),
        ("/admin/trunks", "trunks", {"id": "t", "uri": "sip:x@y", "ips": ["1.2.3.4/8"]}, {}),
        ("/admin/trunks", "trunks", {"id": "t", "uri": "sip:{number}@y", "password": "p"}, {}),
        ("/admin/publishers", "publishers", {"id": "-bad", "ips": ["300.1.1.1"]}, {}),
        (
            "/admin/publishers",
            "publishers",
            {"id": "p9", "credentials": [{"username": "u", "password": "short"}]},
            {},
        ),
        ("/admin/publishers", "publishers", {"id": "p9", "colour": "red"}, {}),
        ("/admin/campaigns", "campaigns", {"id": "c9", "numbers": ["555"]}, {}),
    ],
)
def test_validation_messages_are_the_files(
    admin: TestClient, route: str, section: str, entry: dict[str, object], extra: dict[str, object]
) -> None:
    r = admin.post(route, json={**entry, **extra})
    assert r.status_code == 422, r.text
    message = r.json()["error"]
    for expected in apply_errors(section, entry):
        assert expected in message, (expected, message)


def test_buyer_srtp(admin: TestClient) -> None:
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "secure", "payout": 1, "seconds": 1,
                                          "destination": "sips:q@buyer.example.net", "srtp": "required"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["srtp"] == "required"
    r = admin.patch("/admin/buyers/secure", json={"srtp": "sometimes"})
    assert r.status_code == 422
    assert 'srtp: must be "off", "optional" or "required"' in r.json()["error"]
    assert admin.patch("/admin/buyers/secure", json={"srtp": None}).json()["srtp"] == "off"


def test_media_networks_of_publishers_and_buyers(admin: TestClient) -> None:
    """Where a re-INVITE may move a party's media (SPEC §4.6): CIDRs, checked like the
    allowlist's; a bad one changes nothing."""
    r = admin.post("/admin/publishers", json={"id": "pub-m", "media_networks": ["100.64.0.0/24"]})
    assert r.status_code == 201 and r.json()["media_networks"] == ["100.64.0.0/24"], r.text
    r = admin.patch("/admin/publishers/pub-m", json={"media_networks": ["100.64.0.0/24", "nope"]})
    assert r.status_code == 422 and "media_networks[1]: not a CIDR" in r.json()["error"], r.text
    assert admin.get("/admin/publishers/pub-m").json()["media_networks"] == ["100.64.0.0/24"]
    r = admin.patch("/admin/publishers/pub-m", json={"media_networks": ["2001:db8:9::/48"]})
    assert r.json()["media_networks"] == ["2001:db8:9::/48"]
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "moves", "payout": 1, "seconds": 1,
                                          "destination": "sip:q@buyer.example.net",
                                          "media_networks": ["198.18.0.0/15"]})  # fmt: skip
    assert r.status_code == 201 and r.json()["media_networks"] == ["198.18.0.0/15"], r.text
    r = admin.patch("/admin/buyers/moves", json={"media_networks": "198.18.0.0/15"})
    assert r.status_code == 422, r.text
    assert admin.patch("/admin/buyers/moves", json={"media_networks": None}).json()[
        "media_networks"] == []  # fmt: skip


def test_buyer_validation_matches_the_file(admin: TestClient) -> None:
    buyer = {
        "id": "b9",
        "destination": "nowhere",
        "payout": -1,
        "seconds": 10,
        "weight": 0,
        "hours": "Funday 9-5",
    }
    with pytest.raises(ConfigError) as info:
        parse_document({"campaigns": [{"id": "auto", "buyers": [buyer]}]})
    expected = [e.split(": ", 1)[1] for e in info.value.errors]
    r = admin.post("/admin/buyers", json={"campaign": "auto", **buyer})
    assert r.status_code == 422
    for text in expected:
        assert text in r.json()["error"]
    assert r.json()["error"].startswith("destination: must be a SIP URI")
    r = admin.post(
        "/admin/buyers",
        json={"campaign": "nope", "id": "b9", "destination": "sip:a@b", "payout": 1, "seconds": 1},
    )
    assert r.status_code == 422 and r.json()["error"] == "campaign: no campaign 'nope'"


def test_password_policy_and_cidr_messages(admin: TestClient) -> None:
    r = admin.put("/admin/publishers/pub-1/credentials/weak", json={"password": "password"})
    assert r.status_code == 422
    assert r.json()["error"] == ("password: too weak: use at least 12 characters mixing three of "
                                 "lower case, upper case, digits and symbols")  # fmt: skip
    r = admin.post("/admin/publishers/pub-1/ips", json={"cidr": "203.0.113.5/24"})
    assert r.status_code == 422 and "has host bits set" in r.json()["error"]
    r = admin.post(
        "/admin/publishers/pub-1/ips", json={"cidr": "10.0.0.0/8", "expires_at": "tomorrow"}
    )
    assert r.status_code == 422 and "not an ISO 8601 time" in r.json()["error"]
    assert admin.post("/admin/publishers/pub-1/ips", content=b"{nope").status_code == 422
    assert admin.post("/admin/publishers", json=["not", "an", "object"]).status_code == 422


def test_an_allowlist_id_past_64_bits_is_404_not_500(admin: TestClient) -> None:
    """Found by the schemathesis run: SQLite cannot bind such an id, which was a 500."""
    huge = "/admin/publishers/pub-1/ips/11012724480390418072076288"
    assert admin.patch(huge, json={"note": "x"}).status_code == 404
    assert admin.delete(huge).status_code == 404
    assert admin.delete("/admin/publishers/pub-1/ips/0").status_code == 404
