"""``rtbridge campaigns|buyers|dids|keys`` on a real SQLite file: ``cli.main`` in this process
(stdout and stderr captured), and the console script itself where its output is the point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.admin import db_bytes
from tests.support.notices import write_wav
from tests.support.terminal import ACTOR, STAMP, Terminal


def test_buyers_add_show_update_remove(rtb: Terminal) -> None:
    status, out, err = rtb(
        "buyers", "add", "--campaign", "auto", "--id", "zed", "--destination",
        "sip:queue@127.0.0.1:5080", "--payout", "90", "--revenue", "110", "--seconds", "120",
        "--concurrency", "5",
        "--daily-cap", "500", "--hours", "Mon-Fri 09:00-17:00 America/New_York",
        "--filter", "caller_state=CA,NY", "--filter", "source=web", "--srtp", "optional",
    )  # fmt: skip
    assert (status, out, err) == (0, "buyer zed created in campaign auto\n", "")
    listed = rtb("buyers", "list", "--campaign", "auto")[1].splitlines()
    assert listed[0].split()[:6] == ["ID", "CAMPAIGN", "DESTINATION", "PAYOUT", "REVENUE",
                                     "SECONDS"]  # fmt: skip
    assert [line.split()[0] for line in listed[1:]] == ["acme", "zed"]
    shown = dict(line.split(None, 1) for line in rtb("buyers", "show", "zed")[1].splitlines())
    assert shown["payout"] == "90.0" and shown["revenue"] == "110.0"
    assert shown["concurrency"] == "5"
    assert shown["filters"] == "caller_state=CA,NY; source=web" and shown["srtp"] == "optional"

    status, out, err = rtb("buyers", "update", "zed", "--payout", "95.5", "--reset", "hours",
                           "--reset", "filters", "--reset", "revenue")  # fmt: skip
    assert status == 0, err
    assert out == (
        "buyer zed updated: payout: 90.0 -> 95.5; revenue: 110.0 -> None; "
        "hours: 'Mon-Fri 09:00-17:00 America/New_York' -> None; "
        "filters: {'caller_state': ['CA', 'NY'], 'source': ['web']} -> {}\n"
    )
    shown = dict(line.split(None, 1) for line in rtb("buyers", "show", "zed")[1].splitlines())
    assert shown["payout"] == "95.5" and shown["hours"] == "-" and shown["filters"] == "-"
    assert shown["revenue"] == "-"  # the payout: a margin of 0
    assert rtb("buyers", "update", "zed", "--payout", "95.5")[1] == "buyer zed: no changes\n"

    assert rtb("buyers", "remove", "zed")[:2] == (0, "buyer zed removed\n")
    assert "zed" not in rtb("buyers", "list")[1]
    trail = rtb.audit("--resource", "buyer/zed")
    assert [line.split()[2] for line in trail] == ["delete", "update", "create"]
    assert all(line.split()[1] == ACTOR for line in trail)


def test_bad_buyer_input_is_refused_with_the_services_words_and_changes_nothing(
    rtb: Terminal,
) -> None:
    before = rtb("buyers", "show", "acme")[1]
    trail = rtb("audit")[1]
    base = ["--campaign", "auto", "--destination", "sip:q@127.0.0.1", "--seconds", "60"]
    for args, status, message in [
        (["buyers", "add", "--id", "b2", *base, "--payout", "lots"], 2, "payout: must be a number"),
        (["buyers", "add", "--id", "b2", *base, "--payout", "-1"], 2, "payout: must be >= 0"),
        (["buyers", "add", "--id", "b2", *base, "--payout", "1", "--revenue", "-1"], 2,
         "revenue: must be >= 0"),
        (["buyers", "add", "--id", "b2", *base, "--payout", "1", "--revenue", "inf"], 2,
         "revenue: "),
        (["buyers", "add", "--id", "b2", *base, "--payout", "1", "--filter", "caller_state"], 2,
         "filters: expected TAG=VALUE[,VALUE...], got 'caller_state'"),
        (["buyers", "add", "--id", "b2", *base, "--payout", "1", "--hours", "sometimes"], 2,
         "hours: "),
        (["buyers", "add", "--id", "acme", *base, "--payout", "1"], 1, "id: buyer 'acme' exists"),
        (["buyers", "add", "--id", "b2", "--campaign", "none", "--destination", "sip:q@x",
          "--payout", "1", "--seconds", "1"], 2, "campaign: no campaign 'none'"),
        (["buyers", "add", "--id", "b2", *base], 2, "payout: required"),
        (["buyers", "update", "acme", "--seconds", "1.5"], 2, "seconds: must be an integer"),
        (["buyers", "update", "acme", "--trunk", "nowhere"], 2, "trunk: no trunk 'nowhere'"),
        (["buyers", "update", "acme", "--weight", "2", "--reset", "weight"], 2,
         "weight: give --weight or --reset weight, not both"),
        (["buyers", "update", "acme"], 2, "nothing to change"),
        (["buyers", "update", "nobody", "--payout", "1"], 1, "no buyer 'nobody'"),
        (["buyers", "remove", "nobody"], 1, "no buyer 'nobody'"),
    ]:  # fmt: skip
        got, out, err = rtb(*args)
        assert (got, out) == (status, ""), (args, got, out, err)
        assert message in err, (args, err)
    assert rtb("buyers", "show", "acme")[1] == before
    assert rtb("buyers", "list")[1].count("\n") == 2  # header and acme
    assert rtb("audit")[1] == trail


def test_campaigns_and_their_number_pools(rtb: Terminal) -> None:
    status, out, _ = rtb(
        "campaigns", "add", "--id", "home", "--numbers", "+18005550001,+18005550002"
    )
    assert (status, out) == (0, "campaign home created with 2 number(s)\n")
    listed = rtb("campaigns", "list")[1].splitlines()
    assert listed[0].split() == ["ID", "NUMBERS", "BUYERS", "FAILOVER", "MAX_ATTEMPTS",
                                 "BID_DEADLINE_MS", "PUBLISHER_SHARE", "MIN_BID"]  # fmt: skip
    assert listed[2].split() == ["home", "+18005550001,+18005550002", "-",
                                 "no-answer,busy,rejected,unreachable", "3", "250", "1.0",
                                 "0.01"]  # fmt: skip
    assert rtb("dids", "add", "--number", "+18005550003", "--campaign", "home")[:2] == (
        0, "DID +18005550003 added to campaign home\n")  # fmt: skip
    taken = rtb("dids", "add", "--number", "+18005550003", "--campaign", "auto")
    assert taken[0] == 1 and "DID +18005550003 is in campaign 'home''s pool" in taken[2]
    bad = rtb("dids", "add", "--number", "555-0100", "--campaign", "home")
    assert bad[0] == 2 and "number: not an E.164 number" in bad[2]
    pool = rtb("dids", "list", "--campaign", "home")[1].splitlines()
    assert pool == ["NUMBER        CAMPAIGN", "+18005550001  home", "+18005550002  home",
                    "+18005550003  home"]  # fmt: skip
    assert rtb("dids", "remove", "+18005550003")[:2] == (0, "DID +18005550003 removed\n")
    assert rtb("dids", "remove", "+18005550003")[0] == 1
    in_use = rtb("campaigns", "remove", "auto")
    assert in_use[0] == 1 and "campaign 'auto' still has 3 key(s)" in in_use[2]
    assert rtb("campaigns", "add", "--id", "home")[0] == 1
    assert rtb("campaigns", "add", "--id", "bad id")[0] == 2
    assert rtb("campaigns", "remove", "home")[:2] == (0, "campaign home removed, with its buyers "
                                                         "and numbers\n")  # fmt: skip
    assert "home" not in rtb("dids", "list")[1] + rtb("campaigns", "list")[1]
    resources = [line.split()[3] for line in rtb.audit()]
    assert resources[:3] == ["campaign/home", "did/+18005550002", "did/+18005550001"]
    assert "did/+18005550003" in resources


def test_keys_add_pause_update_remove(rtb: Terminal, sqlite_url: str) -> None:
    status, out, err = rtb("keys", "add", "--publisher", "pub-1", "--campaign", "auto",
                           "--ttl-seconds", "30", "--auto-confirm")  # fmt: skip
    assert status == 0, err
    key = out.strip()
    assert len(key) == 36 and "shown only this once" in err
    hint = key[:4]
    row = next(line for line in rtb("keys", "list")[1].splitlines() if f"{hint}…" in line)
    assert row.split()[2:] == ["pub-1", "auto", "no", "-", "30", "yes", "-", "no", "no"]
    assert key not in rtb("keys", "list")[1] + "\n".join(rtb.audit())
    assert key.encode() not in db_bytes(sqlite_url)

    assert (
        rtb("keys", "pause", hint)[1]
        == f"key {hint}… (pub-1, auto) updated: paused: False -> True\n"
    )
    assert rtb("keys", "pause", f"{hint}…")[1] == f"key {hint}… (pub-1, auto): no changes\n"
    assert rtb("keys", "resume", hint)[0] == 0
    key_id = row.split()[0]  # a 12-character prefix of the id also names it
    status, out, err = rtb("keys", "update", key_id, "--inbound-number", "+18005551234",
                           "--no-auto-confirm", "--response-root", "rtb")  # fmt: skip
    assert status == 0, err
    shown = dict(line.split(None, 1) for line in rtb("keys", "show", hint)[1].splitlines())
    assert shown["id"].startswith(key_id) and len(shown["id"]) == 64
    assert (shown["inbound_number"], shown["auto_confirm"], shown["response_root"]) == (
        "+18005551234", "no", "rtb")  # fmt: skip
    assert rtb("keys", "update", hint, "--reset", "inbound_number")[0] == 0
    assert "inbound_number               -" in rtb("keys", "show", hint)[1]

    for args, status, message in [
        (["keys", "update", hint, "--ttl-seconds", "0"], 2, "ttl_seconds: must be between 1 and"),
        (["keys", "update", hint, "--publisher", "nobody"], 2, "publisher: no publisher 'nobody'"),
        (["keys", "pause", "abc"], 2, "give the ID or the HINT"),
        (["keys", "pause", "ffffffffffff"], 1, "no key 'ffffffffffff'"),
        (["keys", "add", "--publisher", "pub-1"], 2, "required: --campaign"),
    ]:  # fmt: skip
        got, out, err = rtb(*args)
        assert (got, out) == (status, ""), (args, got, out, err)
        assert message in err, (args, err)
    short = rtb("keys", "add", "--key-stdin", "--publisher", "pub-1", "--campaign", "auto",
                stdin="short\n")  # fmt: skip
    assert short[0] == 2 and "key: too short (at least 16 characters" in short[2]

    assert rtb("keys", "remove", hint)[:2] == (0, f"key {hint}… removed\n")
    assert rtb("keys", "remove", hint)[0] == 1
    actions = [line.split()[2:4] for line in rtb.audit("--resource", "key")]
    assert actions == [["delete", f"key/{hint}…"]] + [["update", f"key/{hint}…"]] * 4 + [
        ["create", f"key/{hint}…"]]  # fmt: skip


def test_a_chosen_key_comes_from_stdin_and_is_not_echoed(rtb: Terminal) -> None:
    chosen = "partner-key-0123456789abcdef"
    status, out, err = rtb("keys", "add", "--key-stdin", "--publisher", "pub-1", "--campaign",
                           "auto", "--allow-missing-caller-number", stdin=chosen + "\n")  # fmt: skip
    assert status == 0, err
    assert out.startswith("key part… created for pub-1 in campaign auto (id ")
    assert chosen not in out + err + "\n".join(rtb.audit())
    again = rtb("keys", "add", "--key-stdin", "--publisher", "pub-1", "--campaign", "auto",
                stdin=chosen)  # fmt: skip
    assert again[0] == 1 and "key: this key exists" in again[2]
    twin = "partner-key-ffffffffffffffff"
    assert rtb("keys", "add", "--key-stdin", "--publisher", "pub-1", "--campaign", "auto",
               stdin=twin)[0] == 0  # fmt: skip
    both = rtb("keys", "pause", "part")  # the hint of both: 4 characters
    assert both[0] == 2 and "key: 'part' matches 2 keys (" in both[2]
    assert "give more of the id" in both[2]


def test_the_console_script_prints_a_new_key_once_and_exits_2_on_bad_input(
    rtb: Terminal, sqlite_url: str
) -> None:
    env = {**os.environ, "RTBRIDGE_DB": sqlite_url}

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rtbridge", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    made = script("keys", "add", "--publisher", "pub-1", "--campaign", "auto")
    assert made.returncode == 0 and len(made.stdout.strip()) == 36
    assert made.stdout.strip() not in made.stderr
    bad = script("buyers", "update", "acme", "--payout", "-5")
    assert (bad.returncode, bad.stdout, bad.stderr) == (2, "", "rtbridge: payout: must be >= 0\n")
    gone = script("keys", "remove", "0000000000000000")
    assert gone.returncode == 1 and gone.stderr.startswith("rtbridge: no key")


def test_audit_lines_carry_the_actor_and_utc_times_with_z(rtb: Terminal) -> None:
    rtb("dids", "add", "--number", "+18005550009", "--campaign", "auto")
    rtb("ips", "add", "pub-1", "192.0.2.0/24", "--expires", "2099-06-30T20:00:00-04:00")
    trail = rtb.audit()
    assert [line.split()[3] for line in trail[:2]] == ["ip/pub-1/192.0.2.0/24", "did/+18005550009"]
    for line in trail:
        at, actor = line.split()[:2]
        assert STAMP.match(at) and actor == ACTOR, line
    assert "expires_at=2099-07-01T00:00:00.000Z" in trail[0]
    listed = rtb("ips", "list", "pub-1")[1]
    assert "2099-07-01T00:00:00.000Z" in listed and "+00:00" not in listed
    since = trail[1].split()[0]  # a time copied from the output is a valid --since
    assert len(rtb.audit("--since", since)) == 2


def _shown(rtb: Terminal, *args: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in rtb(*args)[1].splitlines())


def test_campaign_failover_settings(rtb: Terminal) -> None:
    status, out, err = rtb("campaigns", "add", "--id", "solar", "--failover", "unreachable,busy",
                           "--max-attempts", "4")  # fmt: skip
    assert (status, out) == (0, "campaign solar created with 0 number(s)\n"), err
    shown = _shown(rtb, "campaigns", "show", "solar")
    assert (shown["failover"], shown["max_attempts"]) == ("busy,unreachable", "4")
    assert rtb("campaigns", "update", "solar", "--failover", "none")[1] == (
        "campaign solar updated: failover: ['busy', 'unreachable'] -> []\n")  # fmt: skip
    assert _shown(rtb, "campaigns", "show", "solar")["failover"] == "-"
    status, out, err = rtb("campaigns", "update", "solar", "--reset", "failover",
                           "--failover", "busy", "--failover", "no-answer")  # fmt: skip
    assert status == 2 and "failover: give --failover or --reset failover, not both" in err
    assert rtb("campaigns", "update", "solar", "--failover", "busy", "--failover", "no-answer",
               "--reset", "max_attempts")[1] == (
        "campaign solar updated: failover: [] -> ['no-answer', 'busy']; max_attempts: 4 -> 3\n"
    )  # fmt: skip
    assert rtb("campaigns", "update", "solar", "--max-attempts", "3")[1] == (
        "campaign solar: no changes\n")  # fmt: skip
    row = next(r for r in rtb("campaigns", "list")[1].splitlines() if r.startswith("solar"))
    assert row.split() == ["solar", "-", "-", "no-answer,busy", "3", "250", "1.0", "0.01"]
    trail = rtb.audit("--resource", "campaign/solar")
    assert [line.split()[2] for line in trail] == ["update", "update", "create"]


def test_bad_failover_settings_are_refused_and_change_nothing(rtb: Terminal) -> None:
    rtb("buyers", "update", "acme", "--ring-timeout", "20", "--connect-timeout", "1.5")
    before = rtb("campaigns", "show", "auto")[1], rtb("buyers", "show", "acme")[1]
    trail = rtb("audit")[1]
    allowed = "(allowed: no-answer, busy, rejected, unreachable)"
    for args, status, message in [
        (["campaigns", "update", "auto", "--failover", "busy,voicemail"], 2,
         f"failover: 'voicemail' is not a failure kind {allowed}"),
        (["campaigns", "update", "auto", "--failover", "busy", "--failover", "busy"], 2,
         "failover: 'busy' is listed twice"),
        (["campaigns", "update", "auto", "--max-attempts", "11"], 2,
         "max_attempts: must be between 1 and 10"),
        (["campaigns", "update", "auto", "--max-attempts", "three"], 2,
         "max_attempts: must be an integer"),
        (["campaigns", "update", "auto"], 2, "nothing to change"),
        (["campaigns", "update", "ghost", "--max-attempts", "2"], 1, "no campaign 'ghost'"),
        (["campaigns", "add", "--id", "c2", "--max-attempts", "0"], 2,
         "max_attempts: must be between 1 and 10"),
        (["campaigns", "show", "ghost"], 1, "no campaign 'ghost'"),
        (["buyers", "update", "acme", "--ring-timeout", "0"], 2,
         "ring_timeout: must be more than 0 and at most 600 seconds"),
        (["buyers", "update", "acme", "--ring-timeout", "soon"], 2,
         "ring_timeout: must be a number of seconds"),
        (["buyers", "update", "acme", "--connect-timeout", "61"], 2,
         "connect_timeout: must be more than 0 and at most 60 seconds"),
        (["buyers", "update", "acme", "--connect-timeout", "25"], 2,
         "connect_timeout: 25 s is not less than ring_timeout (20 s): the connect timeout "
         "must be shorter than the ring timeout"),
    ]:  # fmt: skip
        got, out, err = rtb(*args)
        assert (got, out) == (status, ""), (args, got, out, err)
        assert message in err, (args, err)
    assert (rtb("campaigns", "show", "auto")[1], rtb("buyers", "show", "acme")[1]) == before
    assert rtb("audit")[1] == trail
    assert "c2" not in rtb("campaigns", "list")[1]


def test_buyer_timeouts(rtb: Terminal) -> None:
    status, out, err = rtb(
        "buyers", "add", "--campaign", "auto", "--id", "zed", "--destination",
        "sip:queue@127.0.0.1:5080", "--payout", "90", "--seconds", "120",
        "--ring-timeout", "20", "--connect-timeout", "1.5",
    )  # fmt: skip
    assert (status, out) == (0, "buyer zed created in campaign auto\n"), err
    shown = _shown(rtb, "buyers", "show", "zed")
    assert (shown["ring_timeout"], shown["connect_timeout"]) == ("20.0", "1.5")
    assert rtb("buyers", "update", "zed", "--reset", "connect_timeout", "--ring-timeout", "25")[
        1] == "buyer zed updated: ring_timeout: 20.0 -> 25.0; connect_timeout: 1.5 -> None\n"  # fmt: skip
    shown = _shown(rtb, "buyers", "show", "zed")
    assert (shown["ring_timeout"], shown["connect_timeout"]) == ("25.0", "-")


def test_the_console_script_sets_failover(rtb: Terminal, sqlite_url: str) -> None:
    env = {**os.environ, "RTBRIDGE_DB": sqlite_url}

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rtbridge", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    done = script(
        "campaigns", "update", "auto", "--failover", "busy,rejected", "--max-attempts", "2"
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == ("campaign auto updated: failover: ['no-answer', 'busy', 'rejected', "
                           "'unreachable'] -> ['busy', 'rejected']; max_attempts: 3 -> 2\n")  # fmt: skip
    bad = script("campaigns", "update", "auto", "--failover", "ringing")
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        2, "", "rtbridge: failover: 'ringing' is not a failure kind (allowed: no-answer, busy, "
        "rejected, unreachable)\n")  # fmt: skip


TOKEN = "Bearer sk-live-0123456789abcdef"


def test_rtb_buyers_add_show_update(rtb: Terminal, sqlite_url: str) -> None:
    """An RTB buyer needs no destination or payout; its headers are never printed, and the
    ones read from stdin never sit in argv."""
    status, out, err = rtb(
        "buyers", "add", "--campaign", "auto", "--id", "bidder", "--seconds", "60",
        "--bid-url", "https://bids.buyer.example/rtb", "--bid-format", "ringba",
        "--bid-header", "X-Seat=42", "--hide-caller",
    )  # fmt: skip
    assert (status, out, err) == (0, "buyer bidder created in campaign auto\n", "")
    shown = _shown(rtb, "buyers", "show", "bidder")
    assert (shown["bid_url"], shown["bid_format"], shown["hide_caller"]) == (
        "https://bids.buyer.example/rtb", "ringba", "yes")  # fmt: skip
    assert shown["bid_headers"] == "X-Seat=***" and (shown["destination"], shown["payout"]) == (
        "-", "-")  # fmt: skip
    listed = {line.split()[0]: line for line in rtb("buyers", "list")[1].splitlines()[1:]}
    assert "bids (ringba)" in listed["bidder"] and "sip:queue@127.0.0.1:5070" in listed["acme"]

    status, out, err = rtb("buyers", "update", "bidder", "--bid-headers-stdin",
                           stdin=f"Authorization: {TOKEN}\n\nX-Seat: 43\n")  # fmt: skip
    assert (status, err) == (0, ""), err
    assert out == ("buyer bidder updated: bid_headers: {'X-Seat': '***'} -> "
                   "{'Authorization': '***', 'X-Seat': '***'}\n")  # fmt: skip
    assert _shown(rtb, "buyers", "show", "bidder")["bid_headers"] == "Authorization=***; X-Seat=***"
    assert TOKEN not in rtb("audit")[1] and TOKEN.encode() not in db_bytes(sqlite_url)
    # the same headers again: no change, the seal kept
    same = rtb("buyers", "update", "bidder", "--bid-headers-stdin",
               stdin=f"X-Seat: 43\nAuthorization: {TOKEN}\n")  # fmt: skip
    assert same[:2] == (0, "buyer bidder: no changes\n"), same
    # a value alone changes: said as a secret change in the trail, never shown
    assert rtb("buyers", "update", "bidder", "--bid-header", "X-Seat=44")[0] == 0
    assert rtb("buyers", "update", "bidder", "--bid-header", "X-Seat=45")[1] == (
        "buyer bidder: no changes\n")  # the view is the same  # fmt: skip
    assert rtb.audit("--resource", "buyer/bidder")[0].endswith("(secret changed)")
    assert rtb("buyers", "update", "bidder", "--reset", "bid_headers", "--no-hide-caller")[1] == (
        "buyer bidder updated: bid_headers: {'X-Seat': '***'} -> {}; hide_caller: True -> False\n"
    )  # fmt: skip


def test_a_static_buyer_turns_rtb_and_back(rtb: Terminal) -> None:
    turned = rtb("buyers", "update", "acme", "--bid-url", "https://bids.acme.example/rtb")
    assert turned[0] == 2 and "clear destination and payout in the same change" in turned[2]
    status, out, err = rtb("buyers", "update", "acme", "--bid-url", "https://bids.acme.example/rtb",
                           "--reset", "destination", "--reset", "payout")  # fmt: skip
    assert (status, err) == (0, ""), err
    assert out == ("buyer acme updated: destination: 'sip:queue@127.0.0.1:5070' -> None; "
                   "payout: 90.0 -> None; bid_url: None -> 'https://bids.acme.example/rtb'\n")  # fmt: skip
    status, _, err = rtb("buyers", "update", "acme", "--reset", "bid_url", "--destination",
                         "sip:queue@127.0.0.1:5070", "--payout", "90")  # fmt: skip
    assert (status, err) == (0, ""), err
    assert _shown(rtb, "buyers", "show", "acme")["bid_url"] == "-"


def test_bad_rtb_input_is_refused_and_changes_nothing(rtb: Terminal) -> None:
    before, trail = rtb("buyers", "show", "acme")[1], rtb("audit")[1]
    base = ["buyers", "add", "--id", "b2", "--campaign", "auto", "--seconds", "60"]
    url = ["--bid-url", "https://bids.example/rtb"]
    for args, stdin, message in [
        ([*base, "--bid-url", "ftp://bids.example/rtb"], "", "bid_url: must be an http:// or "
         "https:// URL with a host"),
        ([*base, *url, "--payout", "5"], "", "payout: not for a buyer with bid_url"),
        ([*base, *url, "--bid-format", "openrtb"], "", "bid_format: must be one of rtbridge, "
         "ringba, retreaver"),
        ([*base, *url, "--bid-header", f"Authorization {TOKEN}"], "",
         "bid_headers: expected NAME=VALUE (one had no name or no '=')"),
        ([*base, *url, "--bid-header", "Host=x"], "", "bid_headers: Host: set by rtbridge itself"),
        ([*base, *url, "--bid-headers-stdin"], f"Authorization {TOKEN}\n",
         "bid_headers: write one header per line as Name: value"),
        ([*base, *url, "--bid-header", "A=b", "--bid-headers-stdin"], "A: c\n",
         "bid_headers: give --bid-header, --bid-headers-stdin or --reset bid_headers"),
        ([*base, "--destination", "sip:q@x", "--payout", "1", "--hide-caller"], "",
         "bid_headers and hide_caller: only for a buyer with bid_url"),
        (["campaigns", "update", "auto", "--publisher-share", "1.5"], "",
         "publisher_share: must be more than 0 and at most 1"),
        (["campaigns", "update", "auto", "--bid-deadline-ms", "2"], "",
         "bid_deadline_ms: must be between 10 and 5000"),
        (["campaigns", "update", "auto", "--min-bid", "free"], "", "min_bid: must be a number"),
    ]:  # fmt: skip
        status, out, err = rtb(*args, stdin=stdin)
        assert (status, out) == (2, ""), (args, status, out, err)
        assert message in err and TOKEN not in err, (args, err)
    assert rtb("buyers", "show", "acme")[1] == before and "b2" not in rtb("buyers", "list")[1]
    assert rtb("audit")[1] == trail


def test_campaign_auction_settings(rtb: Terminal) -> None:
    status, out, err = rtb("campaigns", "add", "--id", "solar", "--bid-deadline-ms", "400",
                           "--publisher-share", "0.8", "--min-bid", "5")  # fmt: skip
    assert (status, out) == (0, "campaign solar created with 0 number(s)\n"), err
    shown = _shown(rtb, "campaigns", "show", "solar")
    assert (shown["bid_deadline_ms"], shown["publisher_share"], shown["min_bid"]) == (
        "400", "0.8", "5.0")  # fmt: skip
    listed = rtb("campaigns", "list")[1].splitlines()
    assert listed[0].split()[-3:] == ["BID_DEADLINE_MS", "PUBLISHER_SHARE", "MIN_BID"]
    out = rtb("campaigns", "update", "solar", "--reset", "publisher_share", "--reset", "min_bid",
              "--bid-deadline-ms", "300")[1]  # fmt: skip
    assert out == ("campaign solar updated: bid_deadline_ms: 400 -> 300; publisher_share: 0.8 -> "
                   "1.0; min_bid: 5.0 -> 0.01\n")  # fmt: skip


def test_duplicate_caller_rules(rtb: Terminal) -> None:
    """Issue 23: a campaign's duplicate window and point, a buyer's own over them."""
    status, _, err = rtb("campaigns", "update", "auto", "--duplicate-window", "86400",
                         "--duplicate-after", "converted")  # fmt: skip
    assert status == 0, err
    shown = _shown(rtb, "campaigns", "show", "auto")
    assert (shown["duplicate_window"], shown["duplicate_after"]) == ("86400", "converted")
    status, _, err = rtb("buyers", "update", "acme", "--duplicate-window", "0")
    assert status == 0, err
    assert _shown(rtb, "buyers", "show", "acme")["duplicate_window"] == "0"
    status, _, err = rtb("buyers", "update", "acme", "--duplicate-after", "answered")
    assert status != 0 and "duplicate_after: must be one of ping, connected, converted" in err


def test_recording_notices(rtb: Terminal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--record-announcement PATH`` on campaigns and buyers: a relative path is the working
    directory's (as the shell means it), stored absolute, read as the API reads it;
    ``--reset record_announcement`` clears it (a buyer's: back to the campaign's)."""
    monkeypatch.chdir(tmp_path)
    notice = write_wav(tmp_path / "sounds" / "notice.wav")
    write_wav(tmp_path / "sounds" / "stereo.wav", channels=2)
    status, out, err = rtb("campaigns", "update", "auto", "--record",
                           "--record-announcement", "sounds/notice.wav")  # fmt: skip
    assert (status, err) == (0, "")
    assert out == (f"campaign auto updated: record: False -> True; record_announcement: None "
                   f"-> '{notice}'\n")  # fmt: skip
    shown = dict(line.split(None, 1) for line in rtb("campaigns", "show", "auto")[1].splitlines())
    assert shown["record_announcement"] == str(notice)
    status, out, err = rtb("buyers", "update", "acme", "--record-announcement", str(notice))
    assert (status, out) == (0, f"buyer acme updated: record_announcement: None -> '{notice}'\n")
    before = rtb("buyers", "show", "acme")[1]
    for args, message in [
        (["buyers", "update", "acme", "--record-announcement", "sounds/stereo.wav"],
         f"record_announcement: {tmp_path}/sounds/stereo.wav: not mono PCM16 (format 1, 2 ch)"),
        (["campaigns", "update", "auto", "--record-announcement", "missing.wav"],
         f"record_announcement: {tmp_path}/missing.wav: No such file or directory"),
        (["buyers", "update", "acme", "--record-announcement", "x.wav", "--reset",
          "record_announcement"],
         "record_announcement: give --record-announcement or --reset record_announcement"),
    ]:  # fmt: skip
        got, out, err = rtb(*args)
        assert (got, out) == (2, ""), (args, err)
        assert message in err, (args, err)
    assert rtb("buyers", "show", "acme")[1] == before
    status, out, _ = rtb("buyers", "update", "acme", "--reset", "record_announcement")
    assert out == f"buyer acme updated: record_announcement: '{notice}' -> None\n"
    status, out, _ = rtb("campaigns", "update", "auto", "--reset", "record_announcement")
    assert out == f"campaign auto updated: record_announcement: '{notice}' -> None\n"
