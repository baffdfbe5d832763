"""``rtbridge trunks`` on a real SQLite file; the carrier password from stdin or a file, never
from the command line, never shown."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from rtbridge.sip.auth.digest import ha1
from rtbridge.storage.database import open_database
from rtbridge.storage.models import Trunk
from tests.support.admin import db_bytes
from tests.support.terminal import ACTOR, Terminal

PASSWORD = "Carrier-Pass-2026"


def _stored(db: str, trunk_id: str) -> Trunk | None:
    engine = open_database(db)
    try:
        with Session(engine) as session:
            return session.get(Trunk, trunk_id)
    finally:
        engine.dispose()


def test_trunks_add_show_update_remove(rtb: Terminal, sqlite_url: str, tmp_path: Path) -> None:
    status, out, err = rtb(
        "trunks", "add", "--id", "t2", "--uri", "sip:{number}@203.0.113.5:5060",
        "--ips", "203.0.113.5/32,203.0.113.6", "--username", "acct", "--realm", "carrier.example",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert (status, out, err) == (0, "trunk t2 created with outbound digest\n", "")
    row = _stored(sqlite_url, "t2")
    assert row is not None and row.auth_ha1_md5 == ha1("acct", "carrier.example", PASSWORD, "MD5")
    listed = rtb("trunks", "list")[1].splitlines()
    assert listed[0].split() == ["ID", "IPS", "URI", "USERNAME", "REALM", "HAS_PASSWORD",
                                 "ALLOW_OVERLAP"]  # fmt: skip
    assert listed[2].split() == ["t2", "203.0.113.5/32,203.0.113.6/32",
                                 "sip:{number}@203.0.113.5:5060", "acct", "carrier.example", "yes",
                                 "no"]  # fmt: skip

    secret = tmp_path / "carrier.pw"
    secret.write_text("Rotated-Pass-2027\nignored second line\n", encoding="utf-8")
    status, out, err = rtb("trunks", "update", "t2", "--realm", "other.example",
                           "--password-file", str(secret))  # fmt: skip
    assert (status, out) == (0, "trunk t2 updated: realm: 'carrier.example' -> 'other.example'\n")
    row = _stored(sqlite_url, "t2")
    assert row is not None
    assert row.auth_ha1_md5 == ha1("acct", "other.example", "Rotated-Pass-2027", "MD5")
    assert rtb("trunks", "update", "t2", "--password-stdin", stdin=PASSWORD)[1] == (
        "trunk t2 updated: password changed\n")  # fmt: skip
    assert rtb("trunks", "update", "t2", "--ips", "203.0.113.7")[0] == 0
    shown = dict(line.split(None, 1) for line in rtb("trunks", "show", "t2")[1].splitlines())
    assert shown["ips"] == "203.0.113.7/32" and shown["has_password"] == "yes"
    status, out, _ = rtb("trunks", "update", "t2", "--reset", "username", "--reset", "realm")
    assert status == 0 and "has_password: True -> False" in out

    trail = "\n".join(rtb.audit("--resource", "trunk/t2"))
    for shown_secret in (PASSWORD, "Rotated-Pass"):
        assert shown_secret not in trail
    assert trail.count("password: None -> '***'") == 2 and "password=***" in trail
    stored = db_bytes(sqlite_url)
    assert PASSWORD.encode() not in stored and b"Rotated-Pass" not in stored

    assert rtb("trunks", "remove", "t2")[:2] == (0, "trunk t2 removed\n")
    assert _stored(sqlite_url, "t2") is None
    newest = rtb.audit("--resource", "trunk/t2")[0]
    assert newest.split()[1:3] == [ACTOR, "delete"]


def test_bad_trunk_input_is_refused_and_changes_nothing(rtb: Terminal, tmp_path: Path) -> None:
    before = rtb("trunks", "list")[1]
    trail = rtb("audit")[1]
    add = ["trunks", "add", "--id", "t3", "--uri", "sip:{number}@203.0.113.9"]
    for args, stdin, status, message in [
        ([*add, "--username", "u", "--realm", "r"], "", 2,
         "password: no terminal to prompt on; use --password-stdin or --password-file"),
        ([*add, "--password-stdin"], "Some-Pass-12345\n", 2,
         "username and realm are required with password"),
        (["trunks", "add", "--id", "t3", "--uri", "sip:203.0.113.9"], "", 2,
         "uri: must be a sip: URI template containing {number}"),
        ([*add, "--ips", "10.0.0.5/8"], "", 2, "ips[0]: not a CIDR network (10.0.0.5/8 has host bits set)"),
        ([*add, "--password-file", str(tmp_path / "missing")], "", 2,
         "password: cannot read"),
        (["trunks", "add", "--id", "carrier", "--uri", "sip:{number}@x"], "", 1,
         "id: trunk 'carrier' exists"),
        (["trunks", "update", "carrier"], "", 2, "nothing to change"),
        (["trunks", "update", "nowhere", "--uri", "sip:{number}@x"], "", 1, "no trunk 'nowhere'"),
        (["trunks", "update", "carrier", "--password-stdin", "--password-file", "f"], "", 2,
         "not allowed with argument"),
        (["trunks", "remove", "nowhere"], "", 1, "no trunk 'nowhere'"),
    ]:  # fmt: skip
        got, out, err = rtb(*args, stdin=stdin)
        assert (got, out) == (status, ""), (args, got, out, err)
        assert message in err, (args, err)
    assert rtb("trunks", "list")[1] == before
    assert rtb("audit")[1] == trail


def test_a_trunk_buyers_dial_through_cannot_be_removed(rtb: Terminal) -> None:
    status, _, err = rtb("buyers", "add", "--campaign", "auto", "--id", "pstn", "--destination",
                         "+18005550100", "--payout", "10", "--seconds", "30", "--trunk", "carrier")  # fmt: skip
    assert status == 0, err
    used = rtb("trunks", "remove", "carrier")
    assert used[0] == 1 and "trunk 'carrier' is used by buyer(s) pstn; change them first" in used[2]
    changed = rtb("trunks", "update", "carrier", "--username", "acct", "--realm", "carrier.example")
    assert changed[0] == 0, changed[2]  # no password stored yet: nothing to re-bind


def test_a_trunk_over_a_publishers_network_needs_allow_overlap(rtb: Terminal) -> None:
    """Issue 17: the carrier's networks and a publisher's allowlist are two trust boundaries;
    the demo's pub-1 is 127.0.0.1/32 and ::1/128."""
    add = ["trunks", "add", "--id", "lab", "--uri", "sip:{number}@127.0.0.9", "--ips"]
    status, out, err = rtb(*add, "127.0.0.0/24")
    assert (status, out) == (1, "")
    assert err.startswith("rtbridge: ips: 127.0.0.0/24 overlaps pub-1's 127.0.0.1/32 (a source ")
    assert "--allow-overlap" in rtb("trunks", "add", "--help")[1]
    assert "lab" not in rtb("trunks", "list")[1]  # nothing made
    status, out, err = rtb(*add, "127.0.0.0/24", "--allow-overlap")
    assert (status, out, err) == (0, "trunk lab created\n", "")
    shown = dict(line.split(None, 1) for line in rtb("trunks", "show", "lab")[1].splitlines())
    assert shown["allow_overlap"] == "yes"
    status, out, _ = rtb("check", "--ip", "127.0.0.1")  # the agent's answer, and the overlap
    accepted, warning = out.splitlines()
    assert status == 0 and accepted.startswith("accepted as publisher pub-1 by ip 127.0.0.1/32")
    assert warning == (
        "warning: also inside trunk lab's 127.0.0.0/24: a call from here to a number that is "
        "not a reservation uuid is taken as the carrier's PSTN arrival"
    )
