"""``record`` in the console: a box on the campaign's settings, a choice on the buyer's
form (the campaign's, yes, no)."""

from __future__ import annotations

from typing import Any

from tests.http.console.conftest import Console, notice_of

TICKS = {f"failover-{k}": "on" for k in ("no-answer", "busy", "rejected", "unreachable")}
ACME = {"destination": "sip:queue@127.0.0.1:5070", "payout": "90", "seconds": "120",
        "priority": "1", "weight": "1", "srtp": "off"}  # fmt: skip


def _api(console: Console, path: str) -> Any:
    auth = {"Authorization": f"Bearer {console.token}"}
    return console.client.get(path, headers=auth).json()


def test_record_on_the_campaign_and_the_buyer_forms(console: Console) -> None:
    saved = console.post("/console/campaigns/auto/settings", **TICKS, max_attempts="3",
                         record="on")  # fmt: skip
    assert saved.status_code == 303 and notice_of(saved) == (
        "Saved campaign auto: record no → yes.")  # fmt: skip
    assert _api(console, "/admin/campaigns/auto")["record"] is True
    page = console.client.get("/console/campaigns").text
    form = page[page.index('id="failover-auto"') :].split("</form>")[0]
    assert 'name="record" checked' in form
    assert console.post("/console/buyers/acme", **ACME, record="no").status_code == 303
    assert _api(console, "/admin/buyers/acme")["record"] is False
    assert '<option value="no" selected>' in console.client.get("/console/buyers/acme").text
    assert console.post("/console/buyers/acme", **ACME, record="").status_code == 303
    assert _api(console, "/admin/buyers/acme")["record"] is None
    unticked = console.post("/console/campaigns/auto/settings", **TICKS, max_attempts="3")
    assert unticked.status_code == 303 and _api(console, "/admin/campaigns/auto")["record"] is False
