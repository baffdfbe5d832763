"""Terminal verbs for network admins (SPEC §5): tokens, publishers, allowlists, credentials,
the dry-run check, the audit trail and the Kamailio export. Same service layer as the admin
API (:mod:`rtbridge.admin`); the audit trail names the actor ``cli:<unix user>``.

Passwords never come from argv (``ps`` and shell history would show them): a prompt on a
terminal, or one line on stdin with ``--password-stdin``."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from rtbridge.admin import audit, export, publishers, tokens
from rtbridge.admin.changes import read_session, validating, write_session
from rtbridge.admin.check import check
from rtbridge.config import fields as f
from rtbridge.config.schema import read_field
from rtbridge.domain.errors import InvalidInput, RtbError
from rtbridge.settings import Settings

T = TypeVar("T")


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (some containers)
        user = "unknown"
    return f"cli:{user}"


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    from rtbridge.storage.engine import open_database

    engine = open_database(Settings.from_env(db_url=getattr(args, "db", None)).db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _write(args: argparse.Namespace, fn: Callable[..., T], **kwargs: Any) -> T:
    with _engine(args) as engine, write_session(engine) as session:
        return fn(session, actor=actor(), **kwargs)


def _read(args: argparse.Namespace, fn: Callable[..., T], *fn_args: Any) -> T:
    with _engine(args) as engine, read_session(engine) as session:
        return fn(session, *fn_args)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns under an upper-case header; ``-`` for empty values."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _password(args: argparse.Namespace, *, confirm: bool) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise InvalidInput("password: no terminal to prompt on; pipe it with --password-stdin")
    first = getpass.getpass("SIP password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise InvalidInput("password: the two entries differ")
    return first


# -- admin-token ------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    if args.action == "create":
        token = _write(args, tokens.create, name=args.name)
        print(token)
        print(f"admin token {args.name!r} created; it is shown only this once", file=sys.stderr)
    elif args.action == "revoke":
        _write(args, tokens.revoke, name=args.name)
        print(f"admin token {args.name!r} revoked")
    else:
        print(table(_read(args, tokens.listing), ["name", "hint", "created_at", "revoked_at"]))
    return 0


# -- publishers, ips, credentials -------------------------------------------------------------


def cmd_publishers(args: argparse.Namespace) -> int:
    if args.action == "add":
        raw = {"id": args.id, **({"name": args.name} if args.name else {})}
        _write(args, publishers.create_publisher, raw=raw)
        print(f"publisher {args.id} created")
    elif args.action == "remove":
        _write(args, publishers.delete_publisher, publisher_id=args.id)
        print(f"publisher {args.id} removed")
    else:
        print(table(_read(args, publishers.list_publishers), ["id", "name"]))
    return 0


def _add_ips_from_file(args: argparse.Namespace) -> int:
    """``--file F`` (``-``: stdin), the console's paste format; exit 0 when every line was
    added, 3 when some were refused (each added or refused on its own), 1 on an error."""
    if args.cidr is not None or args.note:
        raise InvalidInput("--file: give the CIDRs (and notes) in the file, not as arguments")
    if args.file == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"--file: cannot read {args.file} ({exc})") from None
    lines = publishers.parse_lines(text)
    items = [{**item, "expires_at": args.expires} if args.expires else item for _, item in lines]
    results = _write(args, publishers.add_ips, publisher_id=args.publisher, items=items,
                     allow_overlap=args.allow_overlap)  # fmt: skip
    for (line, _), result in zip(lines, results, strict=True):
        if "added" in result:
            print(f"added    {line}  (rule {result['added']['id']})")
        else:
            print(f"refused  {line}  ({result['error']})")
    refused = sum(1 for r in results if "error" in r)
    print(f"{len(results) - refused} added, {refused} refused")
    return 3 if refused else 0


def cmd_ips(args: argparse.Namespace) -> int:
    if args.action == "add" and args.file is not None:
        return _add_ips_from_file(args)
    if args.action == "add":
        if args.cidr is None:
            raise InvalidInput("cidr: give one, or --file with one per line")
        raw: dict[str, Any] = {"cidr": args.cidr}
        if args.note:
            raw["note"] = args.note
        if args.expires:
            raw["expires_at"] = args.expires
        if args.allow_overlap:
            raw["allow_overlap"] = True
        entry = _write(args, publishers.add_ip, publisher_id=args.publisher, raw=raw)
        print(f"added {entry['cidr']} to {args.publisher} (rule {entry['id']})")
    elif args.action == "remove":
        target: int | str = int(args.entry) if args.entry.isdigit() else args.entry
        entry = _write(args, publishers.remove_ip, publisher_id=args.publisher, entry=target)
        print(f"removed {entry['cidr']} from {args.publisher} (rule {entry['id']})")
    else:
        rows = _read(args, publishers.list_ips, args.publisher)
        print(table(rows, ["id", "publisher", "cidr", "note", "expires_at", "expired"]))
    return 0


def cmd_credentials(args: argparse.Namespace) -> int:
    if args.action == "set":
        password = _password(args, confirm=True)
        created = _write(args, publishers.set_password, publisher_id=args.publisher,
                         username=args.username, password=password)  # fmt: skip
        print(
            f"{'created' if created else 'rotated'} SIP credential {args.username} of {args.publisher}"
        )
    elif args.action == "remove":
        _write(
            args, publishers.remove_credential, publisher_id=args.publisher, username=args.username
        )
        print(f"removed SIP credential {args.username} of {args.publisher}")
    else:
        print(
            table(
                _read(args, publishers.list_credentials, args.publisher),
                ["username", "publisher", "realm"],
            )
        )
    return 0


# -- check, audit, export ---------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when accepted, 3 when refused (so scripts can branch), 1 on an error."""
    from rtbridge.storage.catalog import load_catalog

    if args.counters:
        return _check_counters(args)
    if args.repair:
        raise InvalidInput("--repair: only with --counters")
    password = _password(args, confirm=False) if args.username is not None else None
    with _engine(args) as engine:
        answer = check(
            engine, load_catalog(engine), ip=args.ip, username=args.username, password=password
        )
    if answer["accepted"]:
        print(f"accepted as publisher {answer['publisher']} by {answer['rule']}")
        for warning in answer.get("warnings", ()):
            print(f"warning: {warning}")
        return 0
    print(f"refused: {answer['reason']}")
    return 3


def _check_counters(args: argparse.Namespace) -> int:
    """Buyer counters against the reservations: exit 0 when they agree (or were repaired),
    3 when some differ."""
    from rtbridge.storage.recount import check_counters

    with _engine(args) as engine:
        report = check_counters(engine, repair=args.repair)
    if not report.differences:
        print(f"counters: all {report.compared} agree with the reservations")
        return 0
    rows = [
        {"buyer": d.buyer_id, "counter": "live" if d.day is None else f"day {d.day}",
         "stored": d.counter, "recounted": d.recounted}
        for d in report.differences
    ]  # fmt: skip
    print(table(rows, ["buyer", "counter", "stored", "recounted"]))
    if report.repaired:
        print(f"counters: repaired {len(rows)} of {report.compared}")
        return 0
    print(f"counters: {len(rows)} of {report.compared} differ (--repair rewrites them)")
    return 3


def cmd_audit(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"actor": args.actor, "resource": args.resource, "limit": args.limit}
    if args.since:
        with validating():
            query["since"] = read_field("since", f.timestamp, args.since)

    def work(session: Session) -> list[dict[str, Any]]:
        return [audit.view(e) for e in audit.entries(session, **query)]

    rows = _read(args, work)
    for row in rows:
        row["change"] = _change(row["old"], row["new"])
    print(table(rows, ["at", "actor", "action", "resource", "change"]))
    return 0


def _change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    if old and new:
        diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
        return "; ".join(diff) or "(secret changed)"
    shown = new or old or {}
    return ", ".join(f"{k}={v}" for k, v in shown.items() if v not in (None, {}, []))


def cmd_export(args: argparse.Namespace) -> int:
    text = _read(args, export.kamailio_permissions)
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except RtbError as exc:
            print(f"rtbridge: {exc.message}", file=sys.stderr)
            return 1

    return run


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the admin verbs to the ``rtbridge`` parser (``cli.build_parser`` calls this)."""

    def verb(name: str, help_: str, fn: Callable[[argparse.Namespace], int]) -> Any:
        parser = sub.add_parser(name, parents=[common], help=help_)
        parser.set_defaults(func=_guard(fn))
        return parser.add_subparsers(dest="action", required=True)

    actions = verb("admin-token", "create, revoke or list admin API tokens", cmd_token)
    actions.add_parser("create", help="create a token; printed once").add_argument("name")
    actions.add_parser("revoke", help="revoke a token").add_argument("name")
    actions.add_parser("list", help="list tokens (names and hints)")

    actions = verb("publishers", "list, add or remove publishers", cmd_publishers)
    actions.add_parser("list")
    p = actions.add_parser("add")
    p.add_argument("id")
    p.add_argument("--name")
    actions.add_parser("remove", help="also removes its allowlist and credentials").add_argument(
        "id"
    )

    actions = verb("ips", "a publisher's IP allowlist", cmd_ips)
    actions.add_parser("list").add_argument("publisher", nargs="?")
    p = actions.add_parser("add")
    p.add_argument("publisher")
    p.add_argument("cidr", nargs="?", help="203.0.113.0/24, 2001:db8::/32 or one address")
    p.add_argument("--note")
    p.add_argument("--expires", help="ISO 8601 time with offset, e.g. 2026-12-31T23:59:00Z")
    p.add_argument(
        "--file", help="many entries, one 'CIDR [note]' per line ('-': stdin); '#' comments"
    )
    p.add_argument(
        "--allow-overlap", action="store_true",
        help="accept a network overlapping another publisher's (the longest prefix wins)",
    )  # fmt: skip
    p = actions.add_parser("remove")
    p.add_argument("publisher")
    p.add_argument("entry", help="the CIDR or the rule id")

    actions = verb("credentials", "a publisher's SIP digest credentials", cmd_credentials)
    actions.add_parser("list").add_argument("publisher", nargs="?")
    p = actions.add_parser("set", help="create, or rotate the password")
    p.add_argument("publisher")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = actions.add_parser("remove")
    p.add_argument("publisher")
    p.add_argument("username")

    p = sub.add_parser(
        "check", parents=[common],
        help="would this IP / credential be accepted? or: do the buyer counters agree?",
    )  # fmt: skip
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--ip")
    who.add_argument("--username")
    who.add_argument(
        "--counters", action="store_true",
        help="recount every buyer counter from the reservations and report differences",
    )  # fmt: skip
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument(
        "--repair", action="store_true", help="with --counters: rewrite those that differ"
    )
    p.set_defaults(func=_guard(cmd_check))

    p = sub.add_parser("audit", parents=[common], help="who changed what, newest first")
    p.add_argument("--since", help="ISO 8601 time with offset")
    p.add_argument("--actor", help="token name, cli:<user> or apply")
    p.add_argument("--resource", help="a type (publisher) or type/id (publisher/pub-1)")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=_guard(cmd_audit))

    p = sub.add_parser("export", parents=[common], help="export the allowlist for other software")
    p.add_argument("format", choices=["kamailio-permissions"])
    p.add_argument("-o", "--output", help="file to write (default stdout)")
    p.set_defaults(func=_guard(cmd_export))
