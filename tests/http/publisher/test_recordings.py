"""``GET /rtbs/<uuid>/recording?key=``: off unless the key says ``recordings = true``, and
then for its own publisher's calls only (another publisher's key, even one allowed, gets the
404 an unknown reservation gets)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import ClientFactory
from tests.support.demo import KEY_INBOUND, KEY_OPEN, KEY_STRICT, one_buyer_config
from tests.support.keys import key_id
from tests.support.recordings import recorded_call

OTHERS = f"""
[[publishers]]
id = "p2"

[[keys]]
key = "{KEY_INBOUND}"
publisher = "p2"
campaign = "c1"
allow_missing_caller_number = true
recordings = true

[[keys]]
key = "{KEY_STRICT}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
"""


def _site(make_client: ClientFactory) -> TestClient:
    """p1 pings with KEY_OPEN (recordings = true) and KEY_STRICT (off); p2 with
    KEY_INBOUND (recordings = true)."""
    return make_client(one_buyer_config(key="recordings = true") + OTHERS)


def test_an_allowed_key_fetches_its_publishers_calls(make_client: ClientFactory) -> None:
    client = _site(make_client)
    call = recorded_call(client, publisher="p1")
    got = client.get(f"/rtbs/{call.uuid}/recording", params={"key": KEY_OPEN})
    assert got.status_code == 200 and got.content == call.data
    assert got.headers["content-type"] == "audio/wav"
    part = client.get(f"/rtbs/{call.uuid}/recording", params={"key": KEY_OPEN},
                      headers={"Range": "bytes=4-7"})  # fmt: skip
    assert part.status_code == 206 and part.content == call.data[4:8]


def test_refused_without_the_setting_or_for_another_publisher(make_client: ClientFactory) -> None:
    client = _site(make_client)
    call = recorded_call(client, publisher="p1")
    off = client.get(f"/rtbs/{call.uuid}/recording", params={"key": KEY_STRICT})  # p1's, off
    assert off.status_code == 404 and "may not fetch recordings" in off.json()["error"]
    other = client.get(f"/rtbs/{call.uuid}/recording", params={"key": KEY_INBOUND})  # p2's
    assert other.status_code == 404 and other.content != call.data
    assert "not recorded (or no such call)" in other.json()["error"]
    unknown = client.get(f"/rtbs/{call.uuid}/recording", params={"key": "x" * 20})
    assert unknown.status_code == 401
    assert client.get(f"/rtbs/{call.uuid}/recording").status_code == 401


def test_the_admin_api_turns_it_on_and_off(admin: TestClient) -> None:
    call = recorded_call(admin)
    url = f"/rtbs/{call.uuid}/recording"
    assert admin.get(url, params={"key": KEY_OPEN}).status_code == 404  # default: off
    key = f"/admin/keys/{key_id(admin, KEY_OPEN)}"
    changed = admin.patch(key, json={"recordings": True})
    assert changed.status_code == 200 and changed.json()["recordings"] is True, changed.text
    assert admin.get(url, params={"key": KEY_OPEN}).content == call.data
    assert admin.patch(key, json={"recordings": False}).json()["recordings"] is False
    assert admin.get(url, params={"key": KEY_OPEN}).status_code == 404
    hint = changed.json()["hint"]
    audit = admin.get("/admin/audit", params={"resource": f"key/{hint}"}).json()["entries"]
    assert [e["new"]["recordings"] for e in audit][:2] == [False, True]  # audited, newest first
