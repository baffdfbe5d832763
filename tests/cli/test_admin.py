"""The admin verbs as admins run them: subprocesses on a real SQLite file."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO


def run(*args: str, db: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RTBRIDGE_DB": db}
    return subprocess.run([sys.executable, "-m", "rtbridge", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture
def db(sqlite_url: str) -> str:
    assert run("apply", str(DEMO), db=sqlite_url).returncode == 0
    return sqlite_url


def test_admin_token_create_list_revoke(db: str) -> None:
    created = run("admin-token", "create", "alice", db=db)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("rtba_") and "shown only this once" in created.stderr
    again = run("admin-token", "create", "alice", db=db)
    assert again.returncode == 1 and "exists; revoke it first" in again.stderr
    listed = run("admin-token", "list", db=db)
    assert listed.stdout.splitlines()[0].split() == ["NAME", "HINT", "CREATED_AT", "REVOKED_AT"]
    assert token not in listed.stdout and token[:9] in listed.stdout
    assert run("admin-token", "revoke", "alice", db=db).returncode == 0
    assert run("admin-token", "revoke", "alice", db=db).returncode == 1
    assert run("admin-token", "create", "bad name", db=db).returncode == 2  # bad input


def test_ips_add_list_remove(db: str) -> None:
    added = run(
        "ips",
        "add",
        "pub-1",
        "2001:db8::/32",
        "--note",
        "v6 office",
        "--expires",
        "2099-01-01T00:00:00Z",
        db=db,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added 2001:db8::/32 to pub-1 (rule ")
    listed = run("ips", "list", "pub-1", db=db).stdout.splitlines()
    assert listed[0].split() == ["ID", "PUBLISHER", "CIDR", "NOTE", "EXPIRES_AT", "EXPIRED"]
    assert any("2001:db8::/32" in line and "v6 office" in line for line in listed)
    bad = run("ips", "add", "pub-1", "10.0.0.5/8", db=db)
    assert bad.returncode == 2 and "not a CIDR network (10.0.0.5/8 has host bits set)" in bad.stderr
    assert run("ips", "add", "nobody", "10.0.0.0/8", db=db).returncode == 1
    removed = run("ips", "remove", "pub-1", "2001:db8::/32", db=db)
    assert removed.returncode == 0 and "removed 2001:db8::/32" in removed.stdout
    assert run("ips", "remove", "pub-1", "2001:db8::/32", db=db).returncode == 1
    assert "2001:db8::/32" not in run("ips", "list", db=db).stdout


def test_credentials_and_check(db: str) -> None:
    assert run("publishers", "add", "pub-9", "--name", "Nine", db=db).returncode == 0
    assert "pub-9" in run("publishers", "list", db=db).stdout
    weak = run("credentials", "set", "pub-9", "nine", "--password-stdin", db=db, stdin="weak\n")
    assert weak.returncode == 2 and "password: too weak" in weak.stderr
    no_tty = run("credentials", "set", "pub-9", "nine", db=db, stdin="")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    ok = run(
        "credentials", "set", "pub-9", "nine", "--password-stdin", db=db, stdin="Nine-Lives-999\n"
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "created SIP credential nine of pub-9"
    assert "Nine-Lives" not in ok.stdout + ok.stderr
    check = run("check", "--username", "nine", "--password-stdin", db=db, stdin="Nine-Lives-999\n")
    assert check.returncode == 0 and check.stdout.startswith(
        "accepted as publisher pub-9 by digest user nine"
    )
    wrong = run("check", "--username", "nine", "--password-stdin", db=db, stdin="Nine-Lives-998\n")
    assert wrong.returncode == 3 and wrong.stdout.startswith("refused: wrong password")
    unknown = run("check", "--username", "nein", "--password-stdin", db=db, stdin="x\n")
    assert unknown.returncode == 3 and unknown.stdout.startswith("refused: unknown SIP username")
    assert "the agent answers 403 Forbidden, as for a wrong password" in unknown.stdout
    assert run("check", "--ip", "127.0.0.1", db=db).stdout.startswith(
        "accepted as publisher pub-1 by ip 127.0.0.1/32"
    )
    assert run("check", "--ip", "203.0.113.1", db=db).returncode == 3
    assert run("check", "--ip", "nonsense", db=db).returncode == 2
    assert "nine" in run("credentials", "list", "pub-9", db=db).stdout
    assert run("credentials", "remove", "pub-9", "nine", db=db).returncode == 0
    assert (
        run(
            "check", "--username", "nine", "--password-stdin", db=db, stdin="Nine-Lives-999\n"
        ).returncode
        == 3
    )
    assert run("publishers", "remove", "pub-9", db=db).returncode == 0


def test_audit_and_export(db: str, tmp_path: Path) -> None:
    run("ips", "add", "pub-1", "192.0.2.0/24", db=db)
    run(
        "credentials", "set", "pub-1", "extra", "--password-stdin", db=db, stdin="Extra-Pass-1234\n"
    )
    audit = run("audit", "--actor", f"cli:{getpass.getuser()}", db=db)
    assert audit.returncode == 0, audit.stderr
    lines = audit.stdout.splitlines()
    assert lines[0].split() == ["AT", "ACTOR", "ACTION", "RESOURCE", "CHANGE"]
    assert "credential/extra" in lines[1] and "password=***" in lines[1]
    assert "ip/pub-1/192.0.2.0/24" in lines[2]
    assert "Extra-Pass" not in audit.stdout
    assert "apply" in run("audit", "--resource", "credential/pub1", db=db).stdout
    assert run("audit", "--since", "yesterday", db=db).returncode == 2
    out = tmp_path / "address.list"
    assert run("export", "kamailio-permissions", "-o", str(out), db=db).returncode == 0
    assert "1 192.0.2.0 24 0 pub-1" in out.read_text().splitlines()
    records = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    stdout = run("export", "kamailio-permissions", db=db).stdout.splitlines()
    assert [line for line in stdout if not line.startswith("#")] == records


def test_check_counters_reports_then_repairs(db: str) -> None:
    from sqlalchemy import text

    from rtbridge.storage.database import open_database

    engine = open_database(db)
    with engine.begin() as conn:  # a counter the reservations do not back
        conn.execute(text("INSERT INTO buyerlive (buyer_id, units) VALUES ('acme', 3)"))
    engine.dispose()
    found = run("check", "--counters", db=db)
    assert found.returncode == 3, found.stderr
    assert found.stdout.splitlines()[0].split() == ["BUYER", "COUNTER", "STORED", "RECOUNTED"]
    assert found.stdout.splitlines()[1].split() == ["acme", "live", "3", "0"]
    assert "1 of 1 differ (--repair rewrites them)" in found.stdout
    repaired = run("check", "--counters", "--repair", db=db)
    assert repaired.returncode == 0 and "repaired 1 of 1" in repaired.stdout
    clean = run("check", "--counters", db=db)
    assert clean.returncode == 0 and clean.stdout == "counters: all 1 agree with the reservations\n"
    assert run("check", "--ip", "127.0.0.1", "--repair", db=db).returncode == 2
    assert run("check", "--counters", "--ip", "127.0.0.1", db=db).returncode == 2


def test_check_rollups_reports_then_repairs(db: str) -> None:
    from sqlalchemy import text

    from rtbridge.storage.database import open_database

    engine = open_database(db)
    with engine.begin() as conn:  # figures no reservation backs
        conn.execute(text("INSERT INTO rollup VALUES ('2026-01-02 03', 'pub-1', 'auto', 'acme', "
                          "'', 2, 2, 0, 1, 1, 1, 125.5, 90, 90)"))  # fmt: skip
    engine.dispose()
    found = run("check", "--rollups", db=db)
    assert found.returncode == 3, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0].split() == ["HOUR/DAY", "PUBLISHER", "CAMPAIGN", "BUYER", "REASON", "FIGURE",
                                "STORED", "RECOUNTED"]  # fmt: skip
    assert lines[1].split() == ["2026-01-02", "03", "pub-1", "auto", "acme", "-", "pings", "2",
                                "0"]  # fmt: skip
    assert "8 figures of 1 rows differ (--repair rewrites them)" in found.stdout
    repaired = run("check", "--rollups", "--repair", db=db)
    assert repaired.returncode == 0 and "repaired 8 figures" in repaired.stdout
    clean = run("check", "--rollups", db=db)
    assert clean.returncode == 0 and clean.stdout.startswith("rollups: all 0 rows agree")
    assert run("check", "--rollups", "--counters", db=db).returncode == 2


def test_ips_add_overlap_needs_the_flag_and_check_warns(db: str) -> None:
    assert run("publishers", "add", "pub-3", db=db).returncode == 0
    assert run("ips", "add", "pub-1", "127.0.0.0/24", db=db).returncode == 0
    refused = run("ips", "add", "pub-3", "127.0.0.64/26", db=db)
    assert refused.returncode == 1 and "pub-1's 127.0.0.0/24" in refused.stderr
    added = run("ips", "add", "pub-3", "127.0.0.64/26", "--allow-overlap", db=db)
    assert added.returncode == 0, added.stderr
    checked = run("check", "--ip", "127.0.0.70", db=db)
    assert checked.stdout.splitlines() == [
        "accepted as publisher pub-3 by ip 127.0.0.64/26 (rule 4)",
        "warning: also matches pub-1's 127.0.0.0/24 (shadowed by longest prefix)",
    ]
    past = run("ips", "add", "pub-3", "10.0.0.0/8", "--expires", "2020-01-01T00:00:00Z", db=db)
    assert past.returncode == 2 and "expires_at: 2020-01-01" in past.stderr


def test_ips_add_file_gives_a_verdict_per_line(db: str, tmp_path: Path) -> None:
    lines = "# partner offices\n192.0.2.0/24 office\n10.0.0.5/8\n\n2001:db8:7::/48\n"
    from_stdin = run("ips", "add", "pub-1", "--file", "-", db=db, stdin=lines)
    assert from_stdin.returncode == 3, from_stdin.stderr  # one line refused
    out = from_stdin.stdout.splitlines()
    assert out[0].startswith("added    192.0.2.0/24 office  (rule ")
    assert out[1].startswith("refused  10.0.0.5/8  (") and "host bits" in out[1]
    assert out[2].startswith("added    2001:db8:7::/48")
    assert out[3] == "2 added, 1 refused"
    path = tmp_path / "ips.txt"
    path.write_text("203.0.113.0/24\n", encoding="utf-8")
    from_file = run("ips", "add", "pub-1", "--file", str(path),
                    "--expires", "2099-01-01T00:00:00Z", db=db)  # fmt: skip
    assert from_file.returncode == 0 and from_file.stdout.endswith("1 added, 0 refused\n")
    listed = run("ips", "list", "pub-1", db=db).stdout
    assert "203.0.113.0/24" in listed and "2099-01-01" in listed
    both = run("ips", "add", "pub-1", "10.9.0.0/16", "--file", str(path), db=db)
    assert both.returncode == 2 and "--file" in both.stderr
