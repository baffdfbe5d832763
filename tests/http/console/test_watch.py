"""Watch pages through the real app: the RTB log pages and filters, the call log's CSV, a
call's detail with its buyer attempts, the agent page without an agent in the process and
with every state of the agents' leases, the audit trail's pages."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta

from rtbridge.storage import calls, leases
from rtbridge.timestamps import iso_utc
from tests.conftest import ClientFactory
from tests.http.console.conftest import Console, sign_in
from tests.support.admin import make_token
from tests.support.demo import KEY_OPEN
from tests.support.failover import BUSY, NO_ANSWER, add_backup_buyers, call_with_failover
from tests.support.keys import key_id


def _uuids(page: str) -> list[str]:
    """The uuids of a log page, each linked to its reservation's page."""
    found = re.findall(
        r'<td><a href="/console/rtbs/([0-9a-f-]{36})"><code>([0-9a-f-]{36})</code></a></td>', page
    )
    assert all(link == shown for link, shown in found)
    return [shown for _, shown in found]


def test_rtb_log_pages_and_filters(console: Console) -> None:
    made = []
    for i in range(120):
        answer = console.client.post("/rtbs.json", data={"key": KEY_OPEN,
                                     "caller_number": f"+1202555{i:04d}"})  # fmt: skip
        made.append(answer.json()["uuid"])
    seen: list[str] = []
    url = "/console/rtb?" + f"key={key_id(console.client, KEY_OPEN)}"
    while True:
        page = console.client.get(url).text
        seen += _uuids(page)
        more = re.search(r'<a href="\?([^"]+)" rel="next">', page)
        if more is None:
            break
        url = "/console/rtb?" + html.unescape(more.group(1))
        assert f"key={key_id(console.client, KEY_OPEN)}" in url  # the filters travel with the pages
    assert seen == made[::-1]
    reserved = console.client.get("/console/rtb", params={"status": "reserved"}).text
    assert len(_uuids(reserved)) == 10  # acme's concurrency; the rest were no-target
    missed = console.client.get("/console/rtb", params={"status": "no-target"}).text
    assert "concurrency-cap-reached" in missed
    found = console.client.get("/console/rtb", params={"uuid": made[5].upper()}).text
    assert _uuids(found) == [made[5]]
    # a caller, however written: (202) 555-0007 is +12025550007, the eighth ping's
    by_caller = console.client.get("/console/rtb", params={"caller_number": "(202) 555-0007"})
    assert _uuids(by_caller.text) == [made[7]]
    wrong = console.client.get("/console/rtb", params={"caller_number": "call me"})
    assert wrong.status_code == 422 and 'id="err-caller_number"' in wrong.text
    nothing = console.client.get("/console/rtb", params={"publisher": "nobody"}).text
    assert "No pings match." in nothing
    bad = console.client.get("/console/rtb", params={"since": "yesterday", "status": "x"})
    assert bad.status_code == 422
    assert 'id="err-since">not an ISO 8601 time' in bad.text and "one of reserved" in bad.text
    window = console.client.get("/console/rtb", params={"until": "2000-01-01T00:00"}).text
    assert "No pings match." in window


def test_call_log_and_its_csv(console: Console) -> None:
    state = console.client.app.state.rtbridge  # type: ignore[attr-defined]
    uuid = console.client.post("/rtbs.json", data={"key": KEY_OPEN,
                               "caller_number": "+12025550123"}).json()["uuid"]  # fmt: skip
    claim = calls.claim(state.engine, uuid=uuid, publisher_id="pub-1", now=state.reservations.clock(),
                        agent="t", source="198.51.100.7:5060/UDP")  # fmt: skip
    assert claim is not None
    live = console.client.get("/console/live").text
    assert uuid in live and "198.51.100.7:5060/UDP" in live
    now = state.reservations.clock()
    calls.answered(state.engine, uuid=uuid, at=now)
    calls.ended(state.engine, uuid=uuid, answer_at=now, end_at=now + timedelta(seconds=130),
                publisher_code=200, buyer_code=200, hangup_by="buyer", duration=130.0)  # fmt: skip
    page = console.client.get("/console/calls", params={"publisher": "pub-1"}).text
    assert uuid in page and "2:10" in page and "<td>buyer</td>" in page
    assert _uuids(console.client.get("/console/calls", params={"uuid": uuid}).text) == [uuid]
    assert uuid not in console.client.get("/console/calls", params={"converted": "no"}).text
    assert uuid in console.client.get("/console/calls", params={"converted": "yes"}).text
    exported = console.client.get("/console/calls.csv", params={"publisher": "pub-1"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 1 and rows[0]["uuid"] == uuid and rows[0]["hangup_by"] == "buyer"
    assert rows[0]["converted"] == "True" and rows[0]["duration"] == "130.0"
    assert rows[0]["caller_number"] == "'+12025550123"  # no spreadsheet formula
    assert console.client.get("/console/calls.csv", params={"buyer": "none"}).text.count("\n") == 1


def test_agent_page_without_an_agent(console: Console) -> None:
    page = console.client.get("/console/agent").text
    assert "reachable" in page and "No SIP agent runs in this process" in page
    assert "No SIP agent has run on this database yet." in page


def _holder(host: str, pid: int) -> str:
    return f"{host} pid {pid} start 4242 boot 0badc0de ns pid:[4026531836]"


def _agent_rows(page: str) -> dict[str, str]:
    table = page.split('id="agents"')[1].split("</table>")[0]
    return dict(re.findall(r"<tr[^>]*>\s*<td><code>(sip-\w+)</code></td>(.*?)</tr>", table, re.S))


def _text(cell: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", cell)).split())


def test_agent_page_shows_each_agents_lease(console: Console) -> None:
    """All four states of a lease from real rows written by storage/leases.py: live (held,
    beating), silent (held, quiet past its takeover_after), stopped (released), taken over
    (by a peer, with the open call that closed, counted on the peer's row too)."""
    state = console.client.app.state.rtbridge  # type: ignore[attr-defined]
    engine = state.engine
    now = state.reservations.clock()
    hour_ago = now - timedelta(hours=1)

    def acquire(name: str, host: str, pid: int, at: datetime) -> int:
        taken = leases.acquire(engine, name=name, holder=_holder(host, pid), takeover_after=6.0,
                               now=at, seen=None)  # fmt: skip
        assert taken is not None
        return taken[0]

    live = acquire("sip-live", "edge-1", 101, now)
    assert leases.beat(engine, name="sip-live", epoch=live, at=now)
    acquire("sip-silent", "edge-2", 202, hour_ago)
    stopped = acquire("sip-stopped", "edge-3", 303, hour_ago)
    leases.release(engine, name="sip-stopped", epoch=stopped)
    gone = acquire("sip-gone", "edge-4", 404, hour_ago)
    for agent, epoch in (("sip-gone", gone), ("sip-live", live)):
        uuid = console.client.post("/rtbs.json", data={"key": KEY_OPEN}).json()["uuid"]
        claimed = calls.claim(engine, uuid=uuid, publisher_id="pub-1", now=now, agent=agent,
                              source="198.51.100.7:5060/UDP", epoch=epoch)  # fmt: skip
        assert isinstance(claimed, calls.Claimed), claimed
    seen = leases.read(engine, "sip-gone")
    assert seen is not None
    recovery = leases.take_over(engine, seen, by="sip-live", now=now)
    assert recovery is not None and recovery.closed == 1

    page = console.client.get("/console/agent").text
    assert "None" not in page
    rows = _agent_rows(page)
    assert list(rows) == ["sip-gone", "sip-live", "sip-silent", "sip-stopped"]
    cells = {name: re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for name, row in rows.items()}
    lease, epoch, holder, calls_now, took_over = 0, 1, 2, 5, 6
    shown = {name: [_text(c) for c in row] for name, row in cells.items()}
    assert shown["sip-live"][lease] == "live"
    assert shown["sip-live"][holder] == "edge-1 pid 101"  # the process, readable
    assert shown["sip-live"][calls_now] == "1"
    assert shown["sip-live"][took_over] == "took over: 1 call"
    assert shown["sip-silent"][lease].startswith("silent for 1:00:0")
    assert shown["sip-silent"][holder] == "edge-2 pid 202"
    assert shown["sip-stopped"][lease] == "stopped released by a clean stop"
    assert shown["sip-stopped"][holder] == "—"
    taken = shown["sip-gone"][lease]
    assert taken == f"taken over by sip-live at {iso_utc(now)}, 1 call closed", taken
    assert shown["sip-gone"][epoch] == "2"  # its start, then the takeover
    assert shown["sip-gone"][holder] == "—" and shown["sip-gone"][calls_now] == "0"
    for name in ("sip-gone", "sip-silent", "sip-stopped"):
        assert shown[name][took_over] == "—"
    badges = dict(re.findall(r'<span class="status (s-[\w-]+)">([\w ]+)</span>', page))
    assert badges == {"s-live": "live", "s-silent": "silent", "s-stopped": "stopped",
                      "s-taken-over": "taken over"}  # fmt: skip


def test_audit_pages(console: Console) -> None:
    for i in range(60):
        console.post("/console/publishers/pub-1/ips", cidr=f"10.{i}.0.0/16")
    first = console.client.get("/console/audit", params={"actor": "ops"}).text
    assert first.count("<td>ops</td>") == 50
    more = re.search(r'<a href="\?([^"]+)" rel="next">', first)
    assert more is not None
    second = console.client.get("/console/audit?" + html.unescape(more.group(1))).text
    assert second.count("<td>ops</td>") == 11  # 60 entries + the sign-in
    assert "sign-in" in second


def test_a_calls_detail_shows_its_buyer_attempts_and_history(console: Console) -> None:
    state = console.client.app.state.rtbridge  # type: ignore[attr-defined]
    add_backup_buyers(state.engine)
    uuid = console.client.post("/rtbs.json", data={"key": KEY_OPEN}).json()["uuid"]
    call_with_failover(state.engine, uuid=uuid, publisher="pub-1",
                       now=state.reservations.clock(), failures=[BUSY, NO_ANSWER])  # fmt: skip
    log = console.client.get("/console/calls", params={"uuid": uuid}).text
    link = re.search(rf'<a href="(/console/calls/{uuid})"[^>]*>(\d+)</a>', log)
    assert link is not None and link.group(2) == "3"  # attempts
    page = console.client.get(link.group(1))
    assert page.status_code == 200
    assert f"<title>Reservation {uuid} · rtbridge console</title>" in page.text
    attempts = page.text.split('id="attempts"')[1].split("</table>")[0]
    rows = re.findall(r'<td class="num">(\d)</td>\s*<td>(\w+)</td>\s*<td><code>([^<]+)</code>',
                      attempts)  # fmt: skip
    assert rows == [("1", "acme", "sip:queue@127.0.0.1:5070"),
                    ("2", "zenith", "sip:zenith@127.0.0.1:5072"),
                    ("3", "bolt", "sip:bolt@127.0.0.1:5073")]  # fmt: skip
    assert "Busy Here" in attempts and "no-answer" in attempts and ">answered<" in attempts
    history = page.text.split('id="history"')[1].split("</table>")[0]
    events = re.findall(r'<span class="(?:status s-[\w-]+|tag)">([\w -]+)</span>', history)
    assert events == [
        "pinged",
        "claimed",
        "attempt failed",
        "attempt failed",
        "connected",
        "completed",
    ]
    assert "buyer acme: busy, 486 Busy Here" in history
    missing = console.client.get("/console/calls/01a2354e-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and "no reservation" in missing.text


def test_the_audit_trail_shows_what_changed_not_json(console: Console) -> None:
    auth = {"Authorization": f"Bearer {console.token}"}
    answer = console.client.patch("/admin/buyers/acme", json={"payout": 95, "revenue": 120},
                                  headers=auth)  # fmt: skip
    assert answer.status_code == 200, answer.text
    trail = console.client.get("/console/audit", params={"resource": "buyer/acme"}).text
    row = trail.split("<tbody>")[1].split("</tr>")[0]
    assert "payout 90.0 → 95" in row and "revenue none → 120" in row, row
    assert "{&#34;" not in trail and '{"' not in row  # no JSON documents to compare by eye


def test_the_rtb_log_shows_tags_and_exports_every_matching_ping(console: Console) -> None:
    for i in range(3):
        console.client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": f"+1202555{i:04d}",
                                                "caller_state": "CA", "source_id": f"s-{i}"})  # fmt: skip
    page = console.client.get("/console/rtb", params={"campaign": "auto"}).text
    assert '<span class="tag">caller_state=CA</span>' in page and "<td>s-2</td>" in page
    link = re.search(
        r'<a href="(/console/rtb\.csv\?[^"]*)" class="button secondary" id="csv">', page
    )
    assert link is not None and "campaign=auto" in link.group(1)
    answer = console.client.get(html.unescape(link.group(1)))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted(r["source_id"] for r in rows) == ["s-0", "s-1", "s-2"]
    assert all(r["tags"] == '{"caller_state":"CA"}' and r["payout_offered"] for r in rows)
    assert "No pings match." in console.client.get("/console/rtb", params={"campaign": "nope"}).text


def test_admin_tokens_created_once_shown_and_revoked_after_asking(console: Console) -> None:
    made = console.post("/console/tokens", name="ci-bot")
    assert made.status_code == 200
    shown = re.search(r'<code class="reveal" id="secret-value">(rtba_[^<]+)</code>', made.text)
    assert shown is not None  # once, on this answer only
    token = shown.group(1)
    assert (
        console.client.get(
            "/admin/publishers", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )
    listed = console.client.get("/console/tokens").text
    assert "ci-bot" in listed and token not in listed
    twice = console.post("/console/tokens", name="ci-bot")
    assert twice.status_code == 409 and "a token named &#39;ci-bot&#39; exists" in twice.text
    bad = console.post("/console/tokens", name="bad name!")
    assert bad.status_code == 422
    question = console.client.get("/console/tokens/ci-bot/delete")
    assert question.status_code == 200 and "Revoke admin token ci-bot?" in question.text
    revoked = console.post("/console/tokens/ci-bot/delete")
    assert revoked.status_code == 303
    assert (
        console.client.get(
            "/admin/publishers", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 401
    )
    assert console.client.get("/console/tokens/ci-bot/delete").status_code == 404


def test_webhooks_are_listed_with_their_backlog_and_deleted_after_asking(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    client = make_client(settings={"webhook_key": "webhook-master-key-0123456789abcdef"})
    token = make_token(sqlite_url)
    console = Console(client, sign_in(client, token), token)
    auth = {"Authorization": f"Bearer {console.token}"}
    made = console.client.post("/admin/webhooks", json={"publisher": "pub-1", "url": "https://hooks.example.com/rtb",
                                                        "events": ["reserved", "converted"]}, headers=auth)  # fmt: skip
    assert made.status_code == 201, made.text
    wid = made.json()["id"]
    page = console.client.get("/console/webhooks").text
    assert "https://hooks.example.com/rtb" in page and ">converted<" in page
    question = console.client.get(f"/console/webhooks/{wid}/delete")
    assert (
        question.status_code == 200
        and f"Delete webhook {wid} to https://hooks.example.com/rtb?" in question.text
    )
    assert console.post(f"/console/webhooks/{wid}/delete").status_code == 303
    assert "No webhook." in console.client.get("/console/webhooks").text
