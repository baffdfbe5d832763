"""The ``rtbridge`` console script as users run it (subprocesses, real files)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from rtbridge.cli.main import build_parser
from tests.conftest import DEMO
from tests.support.server import serve


def rtbridge(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RTBRIDGE_DB": db}
    return subprocess.run(
        [sys.executable, "-m", "rtbridge", *args], env=env, capture_output=True, text=True
    )


def test_apply_reports_then_is_idempotent(sqlite_url: str) -> None:
    first = rtbridge("apply", str(DEMO), db=sqlite_url)
    assert first.returncode == 0, first.stderr
    assert "created key f382…" in first.stdout
    assert first.stdout.strip().endswith("13 created, 0 updated, 0 removed")
    assert "s3cret" not in first.stdout + first.stderr
    again = rtbridge("apply", str(DEMO), db=sqlite_url)
    assert again.stdout.splitlines() == ["no changes", "0 created, 0 updated, 0 removed"]


def test_dry_run_changes_nothing(sqlite_url: str) -> None:
    dry = rtbridge("apply", "--dry-run", str(DEMO), db=sqlite_url)
    assert dry.returncode == 0
    assert dry.stdout.strip().endswith("dry run, nothing written: 13 created, 0 updated, 0 removed")
    real = rtbridge("apply", str(DEMO), db=sqlite_url)
    assert "13 created" in real.stdout


def test_invalid_file_lists_every_error_and_exits_2(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[keys]]\nkey = "short"\npublisher = "nobody"\ncampaign = "none"\ninbound_number = "12"\n'
    )
    result = rtbridge("apply", str(bad), db=sqlite_url)
    assert result.returncode == 2
    assert "nothing changed" in result.stderr
    for expected in ("keys[0].key: too short", "keys[0].inbound_number: not an E.164 number",
                     "keys[0].publisher: no publisher 'nobody'", "keys[0].campaign: no campaign 'none'"):  # fmt: skip
        assert expected in result.stderr


def test_db_flag_after_the_command_and_bad_addresses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = subprocess.run([sys.executable, "-m", "rtbridge", "apply", "--db", url, str(DEMO)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0 and (tmp_path / "x.db").exists()
    result = rtbridge("serve", "--http", "nonsense", db=url)
    assert result.returncode == 2 and "--http: expected HOST:PORT" in result.stderr


@pytest.mark.live
@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--http-max-head", "100", "must be at least 1024"),
        ("--http-head-timeout", "-1", "must be greater than 0"),
        ("--http-keep-alive", "0", "must be greater than 0"),
        ("--http-concurrency", "x", "not a number"),
        ("--http-max-connections", "1.5", "not a number"),
        ("--auth-failures", "-1", "must be 0 or more"),
        ("--auth-cooldown", "0", "must be greater than 0"),
    ],
)
def test_bad_http_limits_are_refused_by_name(flag: str, value: str, says: str) -> None:
    result = rtbridge("serve", "--sip", "off", flag, value, db="sqlite://")
    assert result.returncode == 2 and flag in result.stderr and says in result.stderr, result


@pytest.mark.parametrize("command", [["sip"], ["webhooks", "run"]])
def test_every_command_serving_http_takes_the_limits(command: list[str]) -> None:
    result = rtbridge(*command, "--http-max-head", "100", db="sqlite://")
    assert result.returncode == 2 and "--http-max-head: must be at least 1024" in result.stderr
    helped = rtbridge(*command, "--help", db="sqlite://")
    assert "HTTP limits:" in helped.stdout and "--http-head-timeout" in helped.stdout


def test_serve_answers_health_and_a_ping(sqlite_url: str) -> None:
    rtbridge("apply", str(DEMO), db=sqlite_url)
    with serve(sqlite_url) as base:
        assert httpx2.get(f"{base}/health").json()["status"] == "ok"
        r = httpx2.post(f"{base}/rtbs.json", data={"key": "f38240dd-7f65-4e17-a4d7-2e09ccafad0e"})
        assert r.status_code == 200 and r.json()["status"] == "reserved"


def test_version_and_help_speak_to_users() -> None:
    """``--version`` names rtbridge's version and the pjsua2 build; help has no internal
    references (SPEC sections are for us, not for operators)."""
    run = [sys.executable, "-m", "rtbridge"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("rtbridge 0.1.0; pjsua2 2.17+rtbridge.2"), version.stdout
    for command in ([], ["apply"], ["serve"], ["sip"]):
        shown = subprocess.run(
            [*run, *command, "--help"], capture_output=True, text=True, check=True
        )
        assert "SPEC" not in shown.stdout, (command, shown.stdout)


def _every_action(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("rtbridge",)
) -> Iterator[tuple[str, str | None]]:
    """(where, help text) of every argument, command and action below ``parser``, and the
    parser's own description."""
    yield " ".join(path), parser.description
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield " ".join((*path, name)), helps.get(name)
                yield from _every_action(child, (*path, name))
        else:
            yield f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}", action.help


def test_every_command_and_argument_has_help_in_users_words() -> None:
    """What ``--help`` shows anywhere in the tree: a help string for each command, action and
    argument, none pointing at internal documents (SPEC sections are for us)."""
    seen = list(_every_action(build_parser()))
    assert len(seen) > 150  # the walk reached the actions of every command
    missing = [where for where, text in seen if not text or text == argparse.SUPPRESS]
    assert missing == []
    internal = [(where, text) for where, text in seen if text and ("SPEC" in text or "§" in text)]
    assert internal == []
    commands = {where.split()[1] for where, _ in seen if len(where.split()) > 1}
    assert {"campaigns", "buyers", "dids", "keys", "trunks", "publishers", "ips"} <= commands


def test_the_sip_agent_logs_json_only(sqlite_url: str) -> None:
    """pjlib's start-up lines go through the same JSON logger as the rest (stderr); stdout
    stays empty, so log shippers see one format."""
    from tests.support.net import free_port

    assert rtbridge("apply", str(DEMO), db=sqlite_url).returncode == 0
    env = {**os.environ, "RTBRIDGE_DB": sqlite_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtbridge", "sip", "--sip", f"127.0.0.1:{free_port()}",
         "--log-level", "info"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        proc.send_signal(2)  # SIGINT: stop now
        out, err = proc.communicate(timeout=15)
    assert out == "", out
    lines = [line for line in err.splitlines() if line.strip()]
    assert any("SIP agent listening" in line for line in lines), err
    assert all(line.startswith("{") for line in lines), err


@pytest.mark.live
@pytest.mark.sip
def test_sip_http_serves_health_metrics_and_an_access_log(sqlite_url: str) -> None:
    """``rtbridge sip --http --access-log``: the agent's process kind has /health and
    /metrics of its own, and logs one JSON line per request without the secrets in it."""
    from tests.support.metrics import Exposition
    from tests.support.net import free_port, wait_for_port

    assert rtbridge("apply", str(DEMO), db=sqlite_url).returncode == 0
    sip, http = free_port(), free_port()
    env = {**os.environ, "RTBRIDGE_DB": sqlite_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtbridge", "sip", "--sip", f"127.0.0.1:{sip}",
         "--http", f"127.0.0.1:{http}", "--access-log", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", http, timeout=30)
        base = f"http://127.0.0.1:{http}"
        assert httpx2.get(f"{base}/health").json()["sip"]["port"] == sip
        metrics = Exposition(httpx2.get(f"{base}/metrics", params={"token": "hush-123"}).text)
        (info,) = metrics.families["rtbridge_build_info"].samples
        assert info.labels["pjproject"] == "2.17" and info.value == 1
        assert metrics.value("rtbridge_sip_auth_failures_total", reason="wrong-password") == 0
        assert httpx2.post(f"{base}/rtbs.json", data={"key": "k-secret"}).status_code == 404
        # the HTTP limits of every process kind (tests/http/test_server.py has them all)
        big = httpx2.get(f"{base}/health", headers={"x-big": "b" * 20_000})
        assert big.status_code == 431
    finally:
        proc.send_signal(15)  # SIGTERM: uvicorn stops the agent cleanly
        out, err = proc.communicate(timeout=20)
    assert out == "", out
    access = [json.loads(line) for line in err.splitlines() if "rtbridge.http.access" in line]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("GET", "/health", 200), ("GET", "/metrics", 200), ("POST", "/rtbs.json", 404),
    ]  # fmt: skip
    assert access[1]["query"] == "token=%5Bredacted%5D"
    assert "hush-123" not in err and "k-secret" not in err


def test_access_log_of_the_sip_agent_needs_http(sqlite_url: str) -> None:
    result = rtbridge("sip", "--access-log", db=sqlite_url)
    assert result.returncode == 2 and "--access-log" in result.stderr and "--http" in result.stderr


# Only these create a database; demo-buyer opens none.
CREATORS = {"apply", "serve", "sip"}
# A harmless run of every other command: each needs a database that is already there.
NEEDS_ONE = {
    "admin-token": ["admin-token", "list"],
    "publishers": ["publishers", "list"],
    "ips": ["ips", "list"],
    "credentials": ["credentials", "list"],
    "check": ["check", "--ip", "192.0.2.1"],
    "audit": ["audit"],
    "export": ["export", "kamailio-permissions"],
    "campaigns": ["campaigns", "list"],
    "buyers": ["buyers", "list"],
    "dids": ["dids", "list"],
    "keys": ["keys", "list"],
    "trunks": ["trunks", "list"],
    "webhooks": ["webhooks", "list"],
    "bids": ["bids"],
    "caller-lists": ["caller-lists", "list"],
}


def _commands() -> set[str]:
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_no_command_but_apply_serve_and_sip_creates_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run where there is no rtbridge.db, every other command says which file it looked for
    and how to point at the right one, exits 2, and leaves the directory empty (before,
    `rtbridge publishers list` made an empty rtbridge.db and listed nothing)."""
    from rtbridge.cli import main as cli

    assert set(NEEDS_ONE) == _commands() - CREATORS - {"demo-buyer"}, "a new command: add it"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RTBRIDGE_DB", raising=False)
    for argv in NEEDS_ONE.values():
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"rtbridge: no database at {tmp_path / 'rtbridge.db'} "
                              "(sqlite:///rtbridge.db, from the default); nothing was created. "
                              "Point at yours with --db URL or RTBRIDGE_DB=URL"), (argv, err)  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RTBRIDGE_DB", "sqlite:///elsewhere.db")
    assert cli.main(["keys", "list"]) == 2
    assert f"{tmp_path / 'elsewhere.db'} (sqlite:///elsewhere.db, from RTBRIDGE_DB)" in (
        capsys.readouterr().err
    )
    missing = tmp_path / "sub" / "site.db"
    for argv in (["--db", f"sqlite:///{missing}", "trunks", "list"],
                 ["trunks", "--db", f"sqlite:///{missing}", "list"]):  # fmt: skip
        assert cli.main(argv) == 2
        assert (
            f"no database at {missing} (sqlite:///{missing}, from --db)" in capsys.readouterr().err
        )
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["apply", str(DEMO)]) == 0  # apply makes one; then the others use it
    assert cli.main(["publishers", "list"]) == 0
    assert "pub-1" in capsys.readouterr().out


def test_the_webhook_sender_alone_needs_a_database_too(tmp_path: Path) -> None:
    """`webhooks run` (with or without --http) would otherwise run for ever on an empty file."""
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for extra in ([], ["--http", "127.0.0.1:0"]):
        result = subprocess.run(
            [sys.executable, "-m", "rtbridge", "webhooks", "run", *extra],
            env={**os.environ, "RTBRIDGE_DB": url}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert f"no database at {tmp_path / 'none.db'}" in result.stderr
    assert list(tmp_path.iterdir()) == []
