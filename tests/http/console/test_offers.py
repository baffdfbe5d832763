"""Campaigns, DID pools, buyers, trunks, keys and the Kamailio export through the console:
the same service functions as the JSON API, refusals next to their fields, the audit trail
under the token's name, and the running configuration changed (a ping sees it)."""

from __future__ import annotations

import re
from typing import Any

from tests.http.console.conftest import Console, notice_of
from tests.support.demo import KEY_OPEN
from tests.support.keys import key_id as id_of


def _field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<small class="error" id="err-([\w-]+)">([^<]*)</small>', html))


def test_campaign_and_did_pool(console: Console) -> None:
    assert console.post("/console/campaigns", id="solar").status_code == 303
    taken = console.post("/console/campaigns", id="solar")
    assert taken.status_code == 409 and "exists" in _field_errors(taken.text)["id"]
    bad = console.post("/console/campaigns/solar/dids", number="12")
    assert bad.status_code == 422 and "E.164" in _field_errors(bad.text)["number"]
    elsewhere = console.post("/console/campaigns/solar/dids", number="+18339510260")
    assert elsewhere.status_code == 409 and "auto" in _field_errors(elsewhere.text)["number"]
    assert console.post("/console/campaigns/solar/dids", number="+18005550111").status_code == 303
    page = console.client.get("/console/campaigns").text
    assert "+18005550111" in page and "No buyers" in page
    assert console.post("/console/dids/+18005550111/delete").status_code == 303
    in_use = console.post("/console/campaigns/auto/delete")
    assert in_use.status_code == 409 and "still has" in in_use.text
    assert console.post("/console/campaigns/solar/delete").status_code == 303
    trail = console.client.get("/console/audit", params={"resource": "did"}).text
    assert trail.count("<td>ops</td>") == 2


def test_buyer_create_edit_delete(console: Console) -> None:
    bad = console.post("/console/campaigns/auto/buyers", id="beta", destination="nowhere",
                       payout="lots", seconds="60", hours="Someday 25:00-26:00",
                       filters="caller_state CA")  # fmt: skip
    assert bad.status_code == 422
    assert "filters" in _field_errors(bad.text)  # the form's own reading, first
    bad = console.post("/console/campaigns/auto/buyers", id="beta", destination="nowhere",
                       payout="lots", seconds="60", hours="Someday 25:00-26:00")  # fmt: skip
    errors = _field_errors(bad.text)
    assert {"destination", "payout", "hours"} <= set(errors), errors
    assert 'value="beta"' in bad.text  # typed values kept
    made = console.post("/console/campaigns/auto/buyers", id="beta",
                        destination="sip:beta@buyer.example.net", payout="75.5", seconds="90",
                        concurrency="3", priority="2", weight="1", srtp="optional",
                        filters="caller_state = CA, NY")  # fmt: skip
    assert made.status_code == 303, made.text[:500]
    page = console.client.get("/console/buyers/beta").text
    assert 'value="75.5"' in page and "caller_state = CA, NY" in page
    assert 'href="/console/buyers/beta/delete">Delete beta</a>' in page  # its page deletes it
    edited = console.post("/console/buyers/beta", destination="sip:beta@buyer.example.net",
                          payout="80", seconds="90", concurrency="", priority="2", weight="1",
                          srtp="off", filters="")  # fmt: skip
    assert edited.status_code == 303
    campaigns = console.client.get("/console/campaigns").text
    row = re.search(r'<a href="/console/buyers/beta">beta</a>.*?</tr>', campaigns, re.S)
    assert row is not None and "80.00" in row.group(0) and "∞" in row.group(0)
    assert console.post("/console/buyers/beta/delete").status_code == 303
    trail = console.client.get("/console/audit", params={"resource": "buyer/beta"}).text
    assert [a for a in ("create", "update", "delete") if f"<td>{a}</td>" in trail] == [
        "create", "update", "delete"]  # fmt: skip


def test_trunks(console: Console) -> None:
    bad = console.post("/console/trunks", id="t2", uri="sip:nothing@x", ips="10.0.0.1/8")
    errors = _field_errors(bad.text)
    assert bad.status_code == 422 and "{number}" in errors["uri"] and "host bits" in errors["ips"]
    made = console.post("/console/trunks", id="t2", uri="sip:{number}@192.0.2.1", ips="192.0.2.1",
                        username="out", realm="carrier.example", password="Trunk-Pass-123")  # fmt: skip
    assert made.status_code == 303
    page = console.client.get("/console/trunks").text
    assert "outbound digest as out" in page and "Trunk-Pass-123" not in page
    rebind = console.post("/console/trunks/t2", uri="sip:{number}@192.0.2.1", ips="192.0.2.1",
                          username="other", realm="carrier.example")  # fmt: skip
    assert rebind.status_code == 422 and "required when username" in rebind.text
    kept = console.post("/console/trunks/t2", uri="sip:{number}@192.0.2.2", ips="192.0.2.2/32",
                        username="out", realm="carrier.example")  # fmt: skip
    assert kept.status_code == 303
    assert "192.0.2.2/32" in console.client.get("/console/trunks").text
    assert console.post("/console/trunks/t2/delete").status_code == 303
    export = console.client.get("/console/export/kamailio-permissions")
    assert "attachment" in export.headers["content-disposition"]
    assert "trunk:carrier" in export.text and "192.0.2.2" not in export.text


def test_a_trunk_over_a_publishers_network_needs_the_checkbox(console: Console) -> None:
    """Issue 17, as the API: the demo's pub-1 is 127.0.0.1/32."""
    refused = console.post("/console/trunks", id="lab", uri="sip:{number}@127.0.0.9",
                           ips="127.0.0.0/24")  # fmt: skip
    assert refused.status_code == 409
    assert "overlaps pub-1&#39;s 127.0.0.1/32" in _field_errors(refused.text)["ips"]
    assert 'name="allow_overlap"' in refused.text
    made = console.post("/console/trunks", id="lab", uri="sip:{number}@127.0.0.9",
                        ips="127.0.0.0/24", allow_overlap="on")  # fmt: skip
    assert made.status_code == 303
    page = console.client.get("/console/trunks").text
    section = page[page.index('id="trunk-lab"') :]
    assert "overlap accepted" in section[: section.index("</h2>")]
    kept = console.post("/console/trunks/lab", uri="sips:{number}@127.0.0.9", ips="127.0.0.0/24")
    assert kept.status_code == 303  # an edit that adds no network keeps the acceptance


def test_keys_page_pause_and_delete(console: Console) -> None:
    key_id = id_of(console.client, KEY_OPEN)
    page = console.client.get("/console/keys").text
    assert f"/keys/{key_id}/delete" in page
    paused = console.post(f"/console/keys/{key_id}/pause", paused="1", back="keys")
    assert paused.headers["location"].startswith("/console/keys?")
    assert "its pings now get 403" in notice_of(paused)
    assert console.client.post("/rtbs.json", data={"key": KEY_OPEN}).status_code == 403
    deleted = console.post(f"/console/keys/{key_id}/delete")
    assert deleted.status_code == 303
    assert console.client.post("/rtbs.json", data={"key": KEY_OPEN}).status_code == 401
    gone = console.post(f"/console/keys/{key_id}/delete")
    assert gone.status_code == 404 and "no key" in gone.text


def test_publisher_settings(console: Console) -> None:
    saved = console.post("/console/publishers/pub-1/settings", name="Renamed", require_tls="on")
    assert saved.status_code == 303
    page = console.client.get("/console/publishers/pub-1").text
    assert 'value="Renamed"' in page and 'name="require_tls" checked' in page
    listing = console.client.get("/console/publishers").text
    assert "Renamed" in listing and "TLS" in listing


def _catalog(console: Console) -> Any:
    return console.client.app.state.rtbridge.catalog.get()  # type: ignore[attr-defined]


def _ticked(html: str, campaign: str) -> list[str]:
    form = html[html.index(f'id="failover-{campaign}"') :]
    form = form[: form.index("</form>")]
    return re.findall(r'name="failover-([a-z-]+)" checked', form)


def test_campaign_failover_settings(console: Console) -> None:
    page = console.client.get("/console/campaigns").text
    assert _ticked(page, "auto") == ["no-answer", "busy", "rejected", "unreachable"]
    ticks = {"failover-busy": "on", "failover-unreachable": "on"}
    saved = console.post("/console/campaigns/auto/settings", **ticks, max_attempts="5")
    assert saved.headers["location"].startswith("/console/campaigns?")
    assert notice_of(saved) == ("Saved campaign auto: failover no-answer, busy, rejected, "
                                "unreachable → busy, unreachable; buyers tried per call 3 → 5.")  # fmt: skip
    page = console.client.get("/console/campaigns").text
    assert _ticked(page, "auto") == ["busy", "unreachable"] and "Saved campaign" not in page
    info = _catalog(console).campaigns["auto"]
    assert (info.failover, info.max_attempts) == (frozenset({"busy", "unreachable"}), 5)

    bad = console.post("/console/campaigns/auto/settings", **{"failover-busy": "on"},
                       max_attempts="11")  # fmt: skip
    assert bad.status_code == 422
    assert _field_errors(bad.text)["max_attempts"] == "must be between 1 and 10"
    assert _ticked(bad.text, "auto") == ["busy"] and 'value="11"' in bad.text  # as typed
    assert _catalog(console).campaigns["auto"].max_attempts == 5  # nothing changed

    off = console.post("/console/campaigns/auto/settings", max_attempts="")  # nothing ticked
    assert off.status_code == 303
    info = _catalog(console).campaigns["auto"]
    assert (info.failover, info.max_attempts) == (frozenset(), 3)  # empty: the default
    assert _ticked(console.client.get("/console/campaigns").text, "auto") == []
    trail = console.client.get("/console/audit", params={"resource": "campaign/auto"}).text
    assert trail.count("<td>update</td>") == 2 and "<td>ops</td>" in trail


def test_buyer_timeouts(console: Console) -> None:
    made = console.post("/console/campaigns/auto/buyers", id="beta",
                        destination="sip:beta@buyer.example.net", payout="95", seconds="90",
                        priority="1", weight="1", srtp="off", ring_timeout="20",
                        connect_timeout="1.5")  # fmt: skip
    assert made.status_code == 303, made.text[:500]
    page = console.client.get("/console/buyers/beta").text
    assert 'name="ring_timeout" value="20.0"' in page
    assert 'name="connect_timeout" value="1.5"' in page
    form = {"destination": "sip:beta@buyer.example.net", "payout": "95", "seconds": "90",
            "priority": "1", "weight": "1", "srtp": "off"}  # fmt: skip
    bad = console.post("/console/buyers/beta", **form, ring_timeout="20", connect_timeout="30")
    assert bad.status_code == 422
    assert _field_errors(bad.text)["connect_timeout"] == (
        "30 s is not less than ring_timeout (20 s): the connect timeout must be shorter than "
        "the ring timeout")  # fmt: skip
    bad = console.post("/console/buyers/beta", **form, ring_timeout="0")
    assert _field_errors(bad.text)["ring_timeout"] == "must be more than 0 and at most 600 seconds"
    beta = next(b for b in _catalog(console).campaigns["auto"].buyers if b.rule.id == "beta")
    assert (beta.ring_timeout, beta.connect_timeout) == (20.0, 1.5)  # nothing changed
    cleared = console.post("/console/buyers/beta", **form, ring_timeout="", connect_timeout="")
    assert cleared.status_code == 303  # empty: back to the defaults
    beta = next(b for b in _catalog(console).campaigns["auto"].buyers if b.rule.id == "beta")
    assert (beta.ring_timeout, beta.connect_timeout) == (None, 2.0)


FROM_FILE = ">from the file</span>"


def _marked(html: str, start: str, end: str) -> bool:
    """Whether the stretch of ``html`` from ``start`` to the next ``end`` carries the tag."""
    stretch = html[html.index(start) :]
    return FROM_FILE in stretch[: stretch.index(end)]


def test_rows_from_the_file_are_marked(console: Console) -> None:
    """The demo file's rows carry "from the file" (apply restores or removes them); what an
    admin makes here carries nothing (apply keeps it unless --prune)."""
    for path, fields in [
        ("/console/campaigns", {"id": "solar"}),
        ("/console/campaigns/solar/dids", {"number": "+18005550111"}),
        ("/console/campaigns/auto/buyers", {"id": "beta", "destination": "sip:b@192.0.2.1",
                                            "payout": "5", "seconds": "60"}),
        ("/console/trunks", {"id": "t2", "uri": "sip:{number}@192.0.2.1", "ips": "192.0.2.1"}),
        ("/console/publishers", {"id": "pub-2"}),
    ]:  # fmt: skip
        assert console.post(path, **fields).status_code == 303, path
    page = console.client.get("/console/campaigns").text
    assert _marked(page, 'id="campaign-auto"', "</h2>")
    assert not _marked(page, 'id="campaign-solar"', "</h2>")
    assert _marked(page, ">acme</a>", "</td>") and not _marked(page, ">beta</a>", "</td>")
    assert _marked(page, "<code>+18339510260</code>", "</form>")
    assert not _marked(page, "<code>+18005550111</code>", "</form>")
    acme = console.client.get("/console/buyers/acme").text
    assert _marked(acme, "<h1>", "</h1>") and "Managed by the configuration file" in acme
    beta = console.client.get("/console/buyers/beta").text
    assert FROM_FILE not in beta and "Managed by" not in beta
    page = console.client.get("/console/trunks").text
    assert _marked(page, 'id="trunk-carrier"', "</h2>")
    assert not _marked(page, 'id="trunk-t2"', "</h2>")
    page = console.client.get("/console/publishers").text
    assert _marked(page, ">pub-1</a>", "</td>") and not _marked(page, ">pub-2</a>", "</td>")
    page = console.client.get("/console/publishers/pub-1").text
    assert _marked(page, "<h1>", "</h1>") and _marked(page, "<code>127.0.0.1/32</code>", "</td>")
