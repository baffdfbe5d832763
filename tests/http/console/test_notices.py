"""A change's notice names what changed, and only the console can write one: the text rides
in the redirect signed for the session, so a link made elsewhere shows no notice."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime

from rtbridge.http.console.notices import changes, shown
from tests.http.console.conftest import Console, notice_of, sign_in


def test_values_and_changes_as_a_notice_writes_them() -> None:
    assert [shown(v) for v in (None, "", [], True, False, 75.0, ["a", "b"])] == [
        "none", "none", "none", "yes", "no", "75.0", "a, b"]  # fmt: skip
    assert shown(datetime(2031, 7, 8, 9, 10, tzinfo=UTC)) == "2031-07-08T09:10:00.000Z"
    assert shown({"zip": ["1"], "caller_state": ["CA", "NY"]}) == (
        "{caller_state = CA, NY; zip = 1}")  # fmt: skip
    old = {"payout": 75.0, "seconds": 90, "require_tls": False, "hours": None}
    new = {"payout": 80.0, "seconds": 90, "require_tls": True, "hours": ""}
    assert changes(old, new, ("payout", "seconds", "require_tls", "hours")) == (
        "payout 75.0 → 80.0; require TLS no → yes")  # fmt: skip
    assert changes(old, old, old) == "nothing changed"


def test_only_a_notice_this_session_signed_is_shown(console: Console) -> None:
    saved = console.post("/console/publishers/pub-1/settings", name="Renamed")
    text = notice_of(saved)
    assert text == "Saved publisher pub-1: name none → Renamed."
    page = console.client.get(saved.headers["location"]).text
    assert f'<p class="notice" role="status">{text}</p>' in page
    forged = urllib.parse.urlencode({"notice": "Session expired: sign in at evil.example",
                                     "sig": "0" * 32})  # fmt: skip
    for query in (forged, "notice=Publisher+deleted.", "notice=publisher-deleted"):
        page = console.client.get(f"/console/publishers/pub-1?{query}").text
        assert 'class="notice"' not in page, query
    sign_in(console.client, console.token)  # a new session: the old link says nothing
    assert 'class="notice"' not in console.client.get(saved.headers["location"]).text
