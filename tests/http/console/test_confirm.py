"""Every Remove and Delete asks first, on a page of its own (the console runs no script, so
no ``confirm()`` dialog): a GET of the ``…/delete`` path names the item and what goes with it
and changes nothing; only its form's POST removes. The answer names what was removed."""

from __future__ import annotations

import re

from sqlalchemy import text
from starlette.routing import Route

from rtbridge.http.console.routes import routes
from tests.http.console.conftest import Console, notice_of
from tests.support.demo import KEY_OPEN
from tests.support.keys import key_id


def _audit_rows(console: Console) -> int:
    state = console.client.app.state.rtbridge  # type: ignore[attr-defined]
    with state.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM auditentry")).scalar_one())


def _entry(console: Console, cidr: str) -> str:
    page = console.client.get("/console/publishers/pub-1").text
    found = re.search(rf"/ips/(\d+)/delete\" aria-label=\"Remove {re.escape(cidr)}\"", page)
    assert found is not None, cidr
    return found.group(1)


def test_every_delete_route_has_its_question() -> None:
    """Read from the router: a Remove or Delete added later cannot skip the question."""
    methods: dict[str, set[str]] = {}
    for route in routes:
        assert isinstance(route, Route)
        methods.setdefault(route.path, set()).update(route.methods or ())
    deletes = {path: m for path, m in methods.items() if path.endswith("/delete")}
    assert len(deletes) == 12  # with an admin token's revoke, a webhook's, a caller list's and
    # its entries' deletes
    assert [p for p, m in deletes.items() if not {"GET", "POST"} <= m] == []


def test_each_question_names_the_item_and_changes_nothing(console: Console) -> None:
    entry, key = _entry(console, "::1/128"), key_id(console.client, KEY_OPEN)
    questions = {
        f"/console/publishers/pub-1/ips/{entry}/delete":
            f"Remove allowlist entry ::1/128 (rule {entry}) from publisher pub-1?",
        "/console/publishers/pub-1/credentials/pub1/delete":
            "Remove SIP credential pub1 from publisher pub-1?",
        "/console/publishers/pub-1/delete": "Delete publisher pub-1?",
        f"/console/keys/{key}/delete": "Delete key f382… of publisher pub-1 (campaign auto)?",
        "/console/campaigns/auto/delete": "Delete campaign auto?",
        "/console/dids/+18334583385/delete": "Remove DID +18334583385 from campaign auto?",
        "/console/buyers/acme/delete": "Delete buyer acme of campaign auto?",
        "/console/trunks/carrier/delete": "Delete trunk carrier?",
    }  # fmt: skip
    before = _audit_rows(console)
    for url, question in questions.items():
        page = console.client.get(url)
        assert page.status_code == 200, url
        assert f"<h1>{question}</h1>" in page.text.replace("&#39;", "'"), (url, page.text[-2000:])
        form = re.search(r'<form method="post" action="([^"]+)"', page.text.split("<main>")[1])
        assert form is not None and form.group(1) == url, url
        assert re.search(r'<button type="submit" class="danger">Yes, (remove|delete) it', page.text)
    assert _audit_rows(console) == before  # asking changed nothing
    publisher = console.client.get("/console/publishers/pub-1/delete").text
    assert "Its 2 allowlist entries and 1 SIP credential go with it." in publisher
    assert "Refused while keys use it: delete 3 keys" in publisher  # said before, not after
    campaign = console.client.get("/console/campaigns/auto/delete").text
    assert "Its 1 buyer (acme) and 2 DIDs go with it." in campaign
    back = console.client.get(f"/console/keys/{key}/delete?back=keys").text
    assert '<input type="hidden" name="back" value="keys">' in back
    assert console.client.get("/console/buyers/nobody/delete").status_code == 404
    assert console.client.get("/console/publishers/pub-1/ips/999/delete").status_code == 404
    assert console.client.get("/console/dids/+18005550000/delete").status_code == 404


def test_the_answer_names_what_was_removed(console: Console) -> None:
    entry = _entry(console, "::1/128")
    removed = console.post(f"/console/publishers/pub-1/ips/{entry}/delete")
    assert notice_of(removed) == "Removed allowlist entry ::1/128 from publisher pub-1."
    removed = console.post("/console/publishers/pub-1/credentials/pub1/delete")
    assert notice_of(removed) == "Removed SIP credential pub1 from publisher pub-1."
    removed = console.post("/console/dids/+18334583385/delete")
    assert notice_of(removed) == "Removed DID +18334583385 from campaign auto."
    deleted = console.post(f"/console/keys/{key_id(console.client, KEY_OPEN)}/delete", back="keys")
    assert deleted.headers["location"].startswith("/console/keys?")
    assert notice_of(deleted) == (
        "Deleted key f382… of publisher pub-1 (campaign auto): its pings now get 401.")  # fmt: skip

    console.post("/console/publishers", id="pub-9")
    console.post("/console/publishers/pub-9/ips", cidr="10.0.0.0/8")
    deleted = console.post("/console/publishers/pub-9/delete")
    assert notice_of(deleted) == (
        "Deleted publisher pub-9 with its 1 allowlist entry and 0 SIP credentials.")  # fmt: skip
    console.post("/console/campaigns", id="solar")
    console.post("/console/campaigns/solar/dids", number="+18005550111")
    deleted = console.post("/console/campaigns/solar/delete")
    assert notice_of(deleted) == "Deleted campaign solar with its 0 buyers and 1 DID."

    made = console.post("/console/trunks", id="t2", uri="sip:{number}@192.0.2.1", ips="192.0.2.1")
    assert notice_of(made) == "Added trunk t2."
    saved = console.post("/console/trunks/t2", uri="sip:{number}@192.0.2.2", ips="192.0.2.1/32")
    assert notice_of(saved) == (
        "Saved trunk t2: URI sip:{number}@192.0.2.1 → sip:{number}@192.0.2.2.")  # fmt: skip
    assert notice_of(console.post("/console/trunks/t2/delete")) == "Deleted trunk t2."


def test_a_saved_buyer_says_what_changed(console: Console) -> None:
    form = {"destination": "sip:beta@buyer.example.net", "payout": "75", "seconds": "90",
            "priority": "1", "weight": "1", "srtp": "off"}  # fmt: skip
    made = console.post("/console/campaigns/auto/buyers", id="beta", **form)
    assert notice_of(made) == "Added buyer beta to campaign auto."
    saved = console.post("/console/buyers/beta", **{**form, "payout": "80"})
    assert notice_of(saved) == "Saved buyer beta of campaign auto: payout 75.0 → 80.0."
    again = console.post("/console/buyers/beta", **{**form, "payout": "80"})
    assert notice_of(again) == "Saved buyer beta of campaign auto: nothing changed."
    filtered = console.post("/console/buyers/beta", **form, filters="caller_state = CA, NY")
    assert notice_of(filtered) == ("Saved buyer beta of campaign auto: payout 80.0 → 75.0; "
                                   "filters none → {caller_state = CA, NY}.")  # fmt: skip
    deleted = console.post("/console/buyers/beta/delete")
    assert notice_of(deleted) == "Deleted buyer beta of campaign auto."
