"""Caller lists through the console: lists made and deleted, entries added, paged, filtered
and removed, a CSV file uploaded all or nothing with its verdicts — the admin API's service
functions underneath, the audit trail under the token's name, CSRF on the upload too."""

from __future__ import annotations

import re

import httpx2

from rtbridge.http.admin.caller_lists import MAX_UPLOAD
from tests.http.console.conftest import Console, notice_of

CSV = b"value,expires,note\n+1900,,premium rate\n+13125550100,2027-01-01T00:00:00Z,complaint\n"


def _field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<small class="error" id="err-([\w-]+)">([^<]*)</small>', html))


def _values(html: str) -> list[str]:
    """The entries' values in the page's table, in order."""
    return re.findall(r"<tr>\s*<td><code>([^<]+)</code></td>", html)


def _upload(console: Console, path: str, data: bytes, csrf: str | None = None) -> httpx2.Response:
    return console.client.post(
        path, data={"csrf": console.csrf if csrf is None else csrf},
        files={"file": ("complaints.csv", data, "text/csv")}, follow_redirects=False,
    )  # fmt: skip


def _make(console: Console, **fields: str) -> None:
    made = console.post("/console/caller-lists", **fields)
    assert made.status_code == 303, made.text[:500]


def test_lists_are_made_shown_and_deleted(console: Console) -> None:
    assert "No caller lists" in console.client.get("/console/caller-lists").text
    bad = console.post("/console/caller-lists", id="l1", kind="block", campaign="nope",
                       auto_block_converted="soon")  # fmt: skip
    errors = _field_errors(bad.text)
    assert bad.status_code == 422 and "must be an integer" in errors["auto_block_converted"]
    assert 'value="nope"' in bad.text  # typed values kept
    both = console.post("/console/caller-lists", id="l1", kind="block", campaign="auto",
                        buyer="acme")  # fmt: skip
    assert both.status_code == 422 and "not both" in both.text
    allow = console.post("/console/caller-lists", id="l1", kind="allow",
                         auto_block_converted="60")  # fmt: skip
    assert allow.status_code == 422 and "block lists only" in allow.text
    made = console.post("/console/caller-lists", id="complaints", kind="block", campaign="auto",
                        note="from the hotline", auto_block_converted="86400")  # fmt: skip
    assert made.status_code == 303 and made.headers["location"].startswith(
        "/console/caller-lists/complaints?")  # fmt: skip
    assert notice_of(made) == "Created block list complaints (campaign auto)."
    taken = console.post("/console/caller-lists", id="complaints", kind="allow")
    assert taken.status_code == 409 and "exists" in _field_errors(taken.text)["id"]

    page = console.client.get("/console/caller-lists").text
    row = re.search(r'<tr id="list-complaints">.*?</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert cells[1:6] == ["block", "campaign auto", "0", "for 24:00:00", "from the hotline"]
    assert 'href="/console/caller-lists" class="current">Caller lists</a>' in page  # the nav

    question = console.client.get("/console/caller-lists/complaints/delete").text
    assert "Delete block list complaints (campaign auto)?" in question
    assert "Its 0 entries go with it" in question
    gone = console.post("/console/caller-lists/complaints/delete")
    assert gone.status_code == 303 and "Deleted caller list complaints" in notice_of(gone)
    assert console.client.get("/console/caller-lists/complaints").status_code == 404
    trail = console.client.get("/console/audit", params={"resource": "caller-list"}).text
    assert trail.count("<td>ops</td>") == 2


def test_entries_added_paged_filtered_and_removed(console: Console) -> None:
    _make(console, id="l1", kind="block")
    bad = console.post("/console/caller-lists/l1/entries", value="12", expires="tomorrow")
    assert bad.status_code == 422 and "not an ISO 8601 time in UTC" in _field_errors(bad.text)[
        "expires"]  # fmt: skip
    bad = console.post("/console/caller-lists/l1/entries", value="12")
    assert bad.status_code == 422 and "not an E.164 number" in _field_errors(bad.text)["value"]
    added = console.post("/console/caller-lists/l1/entries", value="+1900", note="premium",
                         expires="2027-01-01 00:00")  # fmt: skip
    assert added.status_code == 303 and notice_of(added) == "+1900*: added in l1."
    again = console.post("/console/caller-lists/l1/entries", value="+1900*", note="premium")
    assert notice_of(again) == "+1900*: updated in l1."  # the expiry cleared
    for n in range(105):
        assert console.post("/console/caller-lists/l1/entries",
                            value=f"+1312555{n:04d}").status_code == 303  # fmt: skip

    page = console.client.get("/console/caller-lists/l1").text
    assert "block list, global, 106 entries" in page
    values = _values(page)
    assert len(values) == 100 and values[0] == "+13125550000"
    more = re.search(r'<a href="\?([^"]+)" rel="next">Next →</a>', page)
    assert more is not None
    rest = _values(console.client.get(f"/console/caller-lists/l1?{more.group(1)}").text)
    assert rest == ["+13125550100", "+13125550101", "+13125550102", "+13125550103",
                    "+13125550104", "+1900*"]  # fmt: skip
    start = console.client.get("/console/caller-lists/l1", params={"value": "+131255501"}).text
    assert _values(start) == ["+13125550100", "+13125550101", "+13125550102", "+13125550103",
                              "+13125550104"]  # fmt: skip
    assert "end of the list" in start

    link = "/console/caller-lists/l1/entries/%2B1900%2A/delete"
    assert f'href="{link}"' in console.client.get("/console/caller-lists/l1?value=%2B19").text
    question = console.client.get(link).text
    assert "Remove +1900* from block list l1?" in question and "no longer refused" in question
    assert console.client.get("/console/caller-lists/l1/entries/%2B1999%2A/delete").status_code == (
        404)  # fmt: skip
    removed = console.post(link)
    assert (
        removed.status_code == 303 and notice_of(removed) == "Removed +1900* from caller list l1."
    )
    assert "+1900*" not in _values(console.client.get("/console/caller-lists/l1?after=%2B14").text)


def test_an_upload_is_all_or_nothing_with_a_verdict_per_line(console: Console) -> None:
    _make(console, id="l1", kind="block")
    refused = _upload(console, "/console/caller-lists/l1/upload",
                      CSV + b"not a number\n+1900*,,twice\n")  # fmt: skip
    assert refused.status_code == 422
    text = refused.text
    assert "complaints.csv</b>: 2 invalid lines of 4: nothing changed." in text
    assert (
        "✗ invalid: value: not an E.164 number" in text and "✗ invalid: the same entry as 2" in text
    )
    assert "✓" not in text and _values(text) == [] and "No entries." in text

    done = _upload(console, "/console/caller-lists/l1/upload", CSV)
    assert done.status_code == 200
    assert "complaints.csv</b>: 2 lines: 2 added, 0 updated, 0 unchanged." in done.text
    assert done.text.count("✓ added") == 2
    again = _upload(console, "/console/caller-lists/l1/upload", CSV)
    assert "2 lines: 0 added, 0 updated, 2 unchanged." in again.text
    assert _values(again.text) == ["+13125550100", "+1900*"]

    empty = _upload(console, "/console/caller-lists/l1/upload", b"\xff\xfe")
    assert empty.status_code == 422 and _field_errors(empty.text)["file"] == "not UTF-8 text"
    none = console.client.post("/console/caller-lists/l1/upload", data={"csrf": console.csrf},
                               files={"file": ("", b"", "text/csv")})  # fmt: skip
    assert none.status_code == 422 and _field_errors(none.text)["file"] == "choose a CSV file"
    trail = console.client.get("/console/audit", params={"resource": "caller-list/l1"}).text
    assert "added 2" in trail


def test_the_upload_needs_the_csrf_token_and_may_be_larger_than_a_form(console: Console) -> None:
    _make(console, id="l1", kind="block")
    for token in ("", "0" * 64):
        forged = _upload(console, "/console/caller-lists/l1/upload", CSV, csrf=token)
        assert forged.status_code == 403 and "CSRF" in forged.text
    # 200,000 lines, 3 MB: over the 64 KB of any other form, under the API's 10 MB
    lines = b"".join(b"+1%010d\n" % n for n in range(200_000))
    assert 64 * 1024 < len(lines) < MAX_UPLOAD
    big = _upload(console, "/console/caller-lists/l1/upload", lines)
    assert big.status_code == 200
    assert "200000 lines: 200000 added" in big.text and "and 199000 more not shown" in big.text
    too_big = _upload(console, "/console/caller-lists/l1/upload", b"x" * (MAX_UPLOAD + 1))
    assert too_big.status_code == 413
    form = console.post("/console/caller-lists/l1/entries", value="+1" * 40_000)
    assert form.status_code == 413  # the entries form keeps the forms' limit
