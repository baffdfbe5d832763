"""Access pages through the real app (TestClient, real SQLite): each change goes through the
admin service layer, lands in the audit trail under the token's name, and a refused value
comes back next to its field with the API's own words."""

from __future__ import annotations

import re

from tests.http.console.conftest import Console, notice_of
from tests.support.demo import KEY_OPEN
from tests.support.keys import key_id


def _field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<small class="error" id="err-([\w-]+)">([^<]*)</small>', html))


def _audit(console: Console, resource: str) -> str:
    return console.client.get("/console/audit", params={"resource": resource}).text


def test_publisher_create_refuse_and_delete(console: Console) -> None:
    created = console.post("/console/publishers", id="pub-9", name="Nine")
    assert created.status_code == 303
    assert created.headers["location"].startswith("/console/publishers/pub-9?")
    assert notice_of(created) == "Created publisher pub-9."
    again = console.post("/console/publishers", id="pub-9")
    assert again.status_code == 409 and "publisher &#39;pub-9&#39; exists" in again.text
    bad = console.post("/console/publishers", id="no spaces")
    assert bad.status_code == 422 and "must be 1-64 characters" in _field_errors(bad.text)["id"]
    assert 'value="no spaces"' in bad.text  # what was typed stays in the field
    in_use = console.post("/console/publishers/pub-1/delete")
    assert in_use.status_code == 409 and "still has" in in_use.text
    assert console.post("/console/publishers/pub-9/delete").status_code == 303
    trail = _audit(console, "publisher/pub-9")
    assert trail.count("<td>ops</td>") == 2 and "delete" in trail


def test_publishers_page_counts_each_publishers_entries_credentials_and_keys(
    console: Console,
) -> None:
    row = re.search(r'<a href="/console/publishers/pub-1">.*?</tr>', console.client.get(
        "/console/publishers").text, re.S)  # fmt: skip
    assert row is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', row.group(0)) == ["2", "1", "3"]


def test_allowlist_entry_with_expiry_and_note(console: Console) -> None:
    answer = console.post("/console/publishers/pub-1/ips", cidr="2001:db8:42::/48",
                          note="v6 SBC", expires_at="2030-01-01T12:30")  # fmt: skip
    assert answer.status_code == 303
    page = console.client.get("/console/publishers/pub-1").text
    assert "2001:db8:42::/48" in page and "v6 SBC" in page and "2030-01-01T12:30:00.000Z" in page
    bad = console.post("/console/publishers/pub-1/ips", cidr="2001:db8:42::/48",
                       expires_at="tomorrow")  # fmt: skip
    errors = _field_errors(bad.text)
    assert "ISO 8601" in errors["expires_at"] and bad.status_code == 422
    taken = console.post("/console/publishers/pub-1/ips", cidr="2001:db8:42::/48")
    assert "already on pub-1" in _field_errors(taken.text)["cidr"]
    trail = _audit(console, "ip/pub-1")
    assert "<td>ops</td>" in trail and "v6 SBC" in trail


def test_credentials_policy_rotate_and_remove(console: Console) -> None:
    weak = console.post("/console/publishers/pub-1/credentials", username="sbc-2", password="Tiny!")
    assert weak.status_code == 422 and "too weak" in _field_errors(weak.text)["password"]
    assert 'value="sbc-2"' in weak.text and "Tiny!" not in re.sub(
        r"<style.*?</style>", "", weak.text
    )
    chosen = console.post("/console/publishers/pub-1/credentials", username="sbc-2",
                          password="Chosen-Pass-1234")  # fmt: skip
    assert chosen.status_code == 200 and "&#39;sbc-2&#39; created" in chosen.text
    assert "Chosen-Pass-1234" in chosen.text  # shown in the answer to the form that set it…
    page = console.client.get("/console/publishers/pub-1").text
    assert "Chosen-Pass-1234" not in page and "sbc-2" in page  # …and never again
    other = console.post("/console/publishers", id="pub-8")
    assert other.status_code == 303
    stolen = console.post("/console/publishers/pub-8/credentials", username="sbc-2",
                          password="Other-Pass-12345")  # fmt: skip
    assert "belongs to publisher" in stolen.text and stolen.status_code == 409
    rotated = console.post("/console/publishers/pub-1/credentials/sbc-2/rotate", password="")
    shown = re.search(r'id="secret-value">([^<]+)<', rotated.text)
    assert shown is not None and len(shown.group(1)) == 24
    removed = console.post("/console/publishers/pub-1/credentials/sbc-2/delete")
    assert removed.status_code == 303
    trail = _audit(console, "credential/sbc-2")
    assert "rotate-password" in trail and "delete" in trail
    assert "Chosen-Pass-1234" not in trail and shown.group(1) not in trail  # "***"


def test_keys_created_once_and_paused(console: Console) -> None:
    bad = console.post("/console/publishers/pub-1/keys", campaign="auto", inbound_number="12")
    assert bad.status_code == 422 and "E.164" in _field_errors(bad.text)["inbound_number"]
    made = console.post("/console/publishers/pub-1/keys", campaign="auto", ttl_seconds="30",
                        allow_missing_caller_number="on")  # fmt: skip
    key = re.search(r'id="secret-value">([^<]+)<', made.text)
    assert made.status_code == 200 and key is not None
    ping = console.client.post("/rtbs.json", data={"key": key.group(1)})
    assert ping.status_code == 200 and ping.json()["status"] in ("reserved", "no-target")
    page = console.client.get("/console/publishers/pub-1").text
    assert key.group(1) not in page
    open_id = key_id(console.client, KEY_OPEN)
    assert f"/keys/{open_id}/pause" in page
    paused = console.post(f"/console/keys/{open_id}/pause", paused="1")
    assert paused.status_code == 303
    assert re.fullmatch(r"Paused key \w{4}… of publisher pub-1 \(campaign auto\): its pings now "
                        r"get 403\.", notice_of(paused))  # fmt: skip
    refused = console.client.post("/rtbs.json", data={"key": KEY_OPEN})
    assert refused.status_code == 403
    assert console.post(f"/console/keys/{open_id}/pause", paused="0").status_code == 303
    assert console.client.post("/rtbs.json", data={"key": KEY_OPEN}).status_code == 200


def test_bulk_paste_verdicts(console: Console) -> None:
    answer = console.post("/console/publishers/pub-1/ips/bulk",
                          lines="# office\n192.0.2.0/24 office\n192.0.2.1/24\n\n192.0.2.0/24",
                          expires_at="2031-05-05T00:00")  # fmt: skip
    verdicts = re.findall(r'<tr class="(ok|bad)"><td><code>([^<]*)</code></td><td>([^<]*)</td>',
                          answer.text)  # fmt: skip
    assert [v[0] for v in verdicts] == ["ok", "bad", "bad"]
    assert "host bits set" in verdicts[1][2] and "already on" in verdicts[2][2]
    empty = console.post("/console/publishers/pub-1/ips/bulk", lines="# nothing\n")
    assert empty.status_code == 422 and "at least one CIDR" in empty.text


def test_check_page_answers_as_the_agent_would(console: Console) -> None:
    ip = console.post("/console/check", ip="127.0.0.1")
    assert "Accepted as <b>pub-1</b>" in ip.text and "127.0.0.1/32" in ip.text
    refused = console.post("/console/check", ip="192.0.2.200")
    assert "Refused" in refused.text and "401" in refused.text
    cred = console.post("/console/check", username="pub1", password="s3cret-Pass-123")
    assert "Accepted as <b>pub-1</b>" in cred.text and "s3cret-Pass-123" not in cred.text
    wrong = console.post("/console/check", username="pub1", password="nope")
    assert "wrong password" in wrong.text and "403 Forbidden" in wrong.text
    unknown = console.post("/console/check", username="nobody", password="nope")
    assert "unknown SIP username" in unknown.text  # the admin is told; a publisher is not:
    assert "403 Forbidden, as for a wrong password" in unknown.text
    bad = console.post("/console/check", ip="not-an-ip")
    assert bad.status_code == 422 and "not an IP address" in _field_errors(bad.text)["ip"]
    both = console.post("/console/check", ip="203.0.113.77", username="pub1")
    assert both.status_code == 422 and "not both" in both.text
    assert console.client.get("/console/check").status_code == 200


def test_allowlist_entry_edit_keeps_its_rule(console: Console) -> None:
    console.post("/console/publishers/pub-1/ips", cidr="192.0.2.0/24", note="old")
    page = console.client.get("/console/publishers/pub-1").text
    entry = re.search(r'/ips/(\d+)" class="inline">\s*<input[^>]*>\s*<input[^>]*value="old"', page)
    assert entry is not None
    rule = entry.group(1)
    edited = console.post(f"/console/publishers/pub-1/ips/{rule}", note="new",
                          expires_at="2032-02-02T02:02")  # fmt: skip
    assert notice_of(edited) == ("Saved allowlist entry 192.0.2.0/24 of publisher pub-1: "
                                 "note old → new; expires none → 2032-02-02T02:02:00.000Z.")  # fmt: skip
    page = console.client.get("/console/publishers/pub-1").text
    assert 'value="new"' in page and 'value="2032-02-02 02:02"' in page  # as its field reads
    cleared = console.post(f"/console/publishers/pub-1/ips/{rule}", note="", expires_at="")
    assert cleared.status_code == 303
    bad = console.post(f"/console/publishers/pub-1/ips/{rule}", expires_at="soon")
    assert bad.status_code == 422 and "ISO 8601" in bad.text
    trail = console.client.get("/console/audit", params={"resource": "ip/pub-1/192.0.2.0/24"})
    assert trail.text.count("<td>update</td>") == 2


def test_an_expiry_is_typed_in_utc_and_a_bad_one_changes_nothing(console: Console) -> None:
    console.post("/console/publishers/pub-1/ips", cidr="192.0.2.0/24", note="n",
                 expires_at="2031-07-08 09:10")  # fmt: skip
    page = console.client.get("/console/publishers/pub-1").text
    assert "2031-07-08T09:10:00.000Z" in page and 'value="2031-07-08 09:10"' in page
    rule = re.search(r'/ips/(\d+)" class="inline">\s*<input[^>]*>\s*<input[^>]*value="n"', page)
    assert rule is not None
    trail = _audit(console, "ip/pub-1/192.0.2.0/24").count("<td>update</td>")
    for typed in ("07/08/2031 9:10 AM", "2031-07-08", "2031-02-30 09:10", "tomorrow"):
        bad = console.post(f"/console/publishers/pub-1/ips/{rule.group(1)}", note="changed",
                           expires_at=typed)  # fmt: skip
        assert bad.status_code == 422, typed
        error = re.search(r'<small class="error" id="err-edit-\d+">([^<]*)<', bad.text)
        assert error is not None and "write YYYY-MM-DD HH:MM" in error.group(1), typed
        assert f'value="{typed}"' in bad.text  # kept in the field, the row's form open
    assert _audit(console, "ip/pub-1/192.0.2.0/24").count("<td>update</td>") == trail
    page = console.client.get("/console/publishers/pub-1").text
    assert 'value="n"' in page and 'value="2031-07-08 09:10"' in page  # unchanged
    shown = "2031-07-08T09:10:30.000Z"  # a time as the tables show it, pasted in
    seconds = console.post(f"/console/publishers/pub-1/ips/{rule.group(1)}", note="n",
                           expires_at=shown)  # fmt: skip
    assert seconds.status_code == 303
    assert 'value="2031-07-08 09:10:30"' in console.client.get("/console/publishers/pub-1").text


def test_overlap_needs_the_checkbox_and_the_check_page_warns(console: Console) -> None:
    console.post("/console/publishers", id="pub-3")
    console.post("/console/publishers/pub-1/ips", cidr="127.0.0.0/24")
    refused = console.post("/console/publishers/pub-3/ips", cidr="127.0.0.64/26")
    assert refused.status_code == 409
    assert "pub-1&#39;s 127.0.0.0/24" in _field_errors(refused.text)["cidr"]
    past = console.post("/console/publishers/pub-3/ips", cidr="10.0.0.0/8",
                        expires_at="2020-01-01T00:00")  # fmt: skip
    assert past.status_code == 422 and "not in the future" in _field_errors(past.text)["expires_at"]
    added = console.post("/console/publishers/pub-3/ips", cidr="127.0.0.64/26", allow_overlap="on")
    assert added.status_code == 303, added.text
    assert "overlap accepted" in console.client.get("/console/publishers/pub-3").text
    check = console.post("/console/check", ip="127.0.0.70").text
    assert "Accepted as <b>pub-3</b>" in check
    assert "also matches pub-1&#39;s 127.0.0.0/24 (shadowed by longest prefix)" in check


def test_bulk_paste_overlaps_only_with_the_checkbox(console: Console) -> None:
    console.post("/console/publishers", id="pub-3")
    lines = "127.0.0.0/30 inside pub-1's /32? no: around it\n203.0.113.0/24"
    answer = console.post("/console/publishers/pub-3/ips/bulk", lines=lines)
    verdicts = re.findall(r'<tr class="(ok|bad)"><td><code>[^<]*</code></td><td>([^<]*)</td>',
                          answer.text)  # fmt: skip
    assert [v[0] for v in verdicts] == ["bad", "ok"] and "pub-1&#39;s 127.0.0.1/32" in verdicts[0][
        1
    ]
    answer = console.post("/console/publishers/pub-3/ips/bulk", lines=lines, allow_overlap="on")
    verdicts = re.findall(r'<tr class="(ok|bad)">', answer.text)
    assert verdicts == ["ok", "bad"]  # the second is a duplicate by now
