"""Terminal verbs for network admins: tokens, publishers, allowlists, credentials,
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
from rtbridge.numerals import int_or_text
from rtbridge.settings import Settings
from rtbridge.timestamps import iso_utc

T = TypeVar("T")


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (some containers)
        user = "unknown"
    return f"cli:{user}"


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    from rtbridge.storage.database import open_database

    engine = open_database(Settings.from_env(db_url=getattr(args, "db", None)).db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def write(args: argparse.Namespace, fn: Callable[..., T], **kwargs: Any) -> T:
    """``fn(session, actor=..., **kwargs)`` in one admin transaction (see admin.changes)."""
    with _engine(args) as engine, write_session(engine) as session:
        return fn(session, actor=actor(), **kwargs)


def read(args: argparse.Namespace, fn: Callable[..., T], *fn_args: Any) -> T:
    """``fn(session, *fn_args)`` on a read-only session."""
    with _engine(args) as engine, read_session(engine) as session:
        return fn(session, *fn_args)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):  # a buyer's filters: caller_state=CA,NY; source=web
        return "; ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
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
        token = write(args, tokens.create, name=args.name)
        print(token)
        print(f"admin token {args.name!r} created; it is shown only this once", file=sys.stderr)
    elif args.action == "revoke":
        write(args, tokens.revoke, name=args.name)
        print(f"admin token {args.name!r} revoked")
    else:
        print(table(read(args, tokens.listing), ["name", "hint", "created_at", "revoked_at"]))
    return 0


# -- publishers, ips, credentials -------------------------------------------------------------


def cmd_publishers(args: argparse.Namespace) -> int:
    if args.action == "add":
        raw = {"id": args.id, **({"name": args.name} if args.name else {}),
               **({"media_networks": args.media_networks} if args.media_networks else {})}  # fmt: skip
        write(args, publishers.create_publisher, raw=raw)
        print(f"publisher {args.id} created")
    elif args.action == "remove":
        write(args, publishers.delete_publisher, publisher_id=args.id)
        print(f"publisher {args.id} removed")
    else:
        print(table(read(args, publishers.list_publishers), ["id", "name"]))
    return 0


def _add_ips_from_file(args: argparse.Namespace) -> int:
    """``--file F`` (``-``: stdin), the console's paste format; exit 0 when every line was
    added, 3 when some were refused (each added or refused on its own), 1 or 2 on an error."""
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
    results = write(args, publishers.add_ips, publisher_id=args.publisher, items=items,
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
        entry = write(args, publishers.add_ip, publisher_id=args.publisher, raw=raw)
        print(f"added {entry['cidr']} to {args.publisher} (rule {entry['id']})")
    elif args.action == "remove":
        target: int | str = int_or_text(args.entry)
        entry = write(args, publishers.remove_ip, publisher_id=args.publisher, entry=target)
        print(f"removed {entry['cidr']} from {args.publisher} (rule {entry['id']})")
    else:
        rows = read(args, publishers.list_ips, args.publisher)
        print(table(rows, ["id", "publisher", "cidr", "note", "expires_at", "expired"]))
    return 0


def cmd_credentials(args: argparse.Namespace) -> int:
    if args.action == "set":
        password = _password(args, confirm=True)
        created = write(args, publishers.set_password, publisher_id=args.publisher,
                         username=args.username, password=password)  # fmt: skip
        print(
            f"{'created' if created else 'rotated'} SIP credential {args.username} of {args.publisher}"
        )
    elif args.action == "remove":
        write(
            args, publishers.remove_credential, publisher_id=args.publisher, username=args.username
        )
        print(f"removed SIP credential {args.username} of {args.publisher}")
    else:
        print(
            table(
                read(args, publishers.list_credentials, args.publisher),
                ["username", "publisher", "realm"],
            )
        )
    return 0


# -- check, audit, export ---------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when accepted, 3 when refused (so scripts can branch), 2 on bad input."""
    from rtbridge.storage.catalog import load_catalog

    if args.counters:
        return _check_counters(args)
    if args.rollups:
        return _check_rollups(args)
    if args.repair:
        raise InvalidInput("--repair: only with --counters or --rollups")
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


def _check_rollups(args: argparse.Namespace) -> int:
    """The business figures against the reservations and calls: exit 0 when they agree
    (or were repaired), 3 when some differ."""
    from rtbridge.storage.rollup_recount import check_rollups

    with _engine(args) as engine:
        report = check_rollups(engine, repair=args.repair)
    if not report.differences:
        print(f"rollups: all {report.compared} rows agree with the reservations and calls")
        return 0
    rows = [
        {"hour/day": d.key[0], "publisher": d.key[1], "campaign": d.key[2], "buyer": d.key[3] or "-",
         "reason": d.key[4] or "-", "figure": d.measure, "stored": f"{d.stored:g}",
         "recounted": f"{d.recounted:g}"}
        for d in report.differences
    ]  # fmt: skip
    print(table(rows, list(rows[0])))
    if report.repaired:
        print(f"rollups: repaired {len(rows)} figures of {report.compared} rows")
        return 0
    print(f"rollups: {len(rows)} figures of {report.compared} rows differ (--repair rewrites them)")
    return 3


def cmd_audit(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"actor": args.actor, "resource": args.resource, "limit": args.limit}
    if args.since:
        with validating():
            query["since"] = read_field("since", f.timestamp, args.since)

    def work(session: Session) -> list[dict[str, Any]]:
        return [audit.view(e) for e in audit.entries(session, **query)]

    rows = read(args, work)
    for row in rows:
        row["change"] = change_text(row["old"], row["new"])
    print(table(rows, ["at", "actor", "action", "resource", "change"]))
    return 0


def change_text(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    if old and new:
        diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
        return "; ".join(diff) or "(secret changed)"
    shown = new or old or {}
    return ", ".join(f"{k}={v}" for k, v in shown.items() if v not in (None, {}, []))


def cmd_export(args: argparse.Namespace) -> int:
    text = read(args, export.kamailio_permissions)
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


# Exit statuses of every admin verb: 0 done, 1 refused by what is in the database (not found,
# conflict), 2 bad input (a value the rules refuse, as argparse does for a bad flag), 3 a check
# or a batch that ran but said no to something.
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


def guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The service's message on stderr, and the exit status for its kind of error."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except InvalidInput as exc:
            print(f"rtbridge: {exc.message}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except RtbError as exc:
            print(f"rtbridge: {exc.message}", file=sys.stderr)
            return EXIT_REFUSED

    return run


def verb(
    sub: Any,
    common: argparse.ArgumentParser,
    name: str,
    help_: str,
    fn: Callable[[argparse.Namespace], int],
) -> Any:
    """A command with actions (``rtbridge NAME list|add|...``); returns their subparsers."""
    parser = sub.add_parser(name, parents=[common], help=help_, description=help_)
    parser.set_defaults(func=guarded(fn))
    return parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def action(actions: Any, name: str, help_: str) -> argparse.ArgumentParser:
    """One action of a command, its help shown in the command's list and its own --help."""
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help_, description=help_)
    return parser


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the admin verbs to the ``rtbridge`` parser (``cli.build_parser`` calls this)."""
    actions = verb(sub, common, "admin-token", "create, revoke or list admin API tokens",
                   cmd_token)  # fmt: skip
    p = action(actions, "create", "create a token; it is printed once, only its hash is kept")
    p.add_argument("name", help="a name for the token; the audit trail shows it as the actor")
    p = action(actions, "revoke", "revoke a token: requests with it get 401 from then on")
    p.add_argument("name", help="the token's name")
    action(actions, "list", "list tokens: names, hints, when created and revoked")

    actions = verb(sub, common, "publishers", "list, add or remove publishers", cmd_publishers)
    action(actions, "list", "list publishers")
    p = action(actions, "add", "add a publisher")
    p.add_argument("id", help="the publisher's id (letters, digits, _ . -), used by keys")
    p.add_argument("--name", help="a readable name")
    p.add_argument("--media-network", dest="media_networks", action="append", metavar="CIDR",
                   help="a network beside its allowlist where a re-INVITE may move its calls' "
                        "media (repeatable)")  # fmt: skip
    p = action(actions, "remove", "remove a publisher with its allowlist and SIP credentials")
    p.add_argument("id", help="the publisher's id")

    actions = verb(sub, common, "ips", "a publisher's IP allowlist (where its SBCs call from)",
                   cmd_ips)  # fmt: skip
    p = action(actions, "list", "list allowlist entries")
    p.add_argument("publisher", nargs="?", help="only this publisher's (default: all)")
    p = action(actions, "add", "allow calls from a network (or from every line of --file)")
    p.add_argument("publisher", help="the publisher the calls are from")
    p.add_argument("cidr", nargs="?", help="203.0.113.0/24, 2001:db8::/32 or one address")
    p.add_argument("--note", help="a note for people, e.g. 'NYC office SBC'")
    p.add_argument(
        "--expires",
        help="stop matching at this ISO 8601 time with offset, e.g. 2026-12-31T23:59:00Z",
    )
    p.add_argument(
        "--file", help="many entries, one 'CIDR [note]' per line ('-': stdin); '#' comments"
    )
    p.add_argument(
        "--allow-overlap", action="store_true",
        help="accept a network overlapping another publisher's (the longest prefix wins)",
    )  # fmt: skip
    p = action(actions, "remove", "remove an allowlist entry")
    p.add_argument("publisher", help="the publisher it belongs to")
    p.add_argument("entry", help="the CIDR or the rule id")

    actions = verb(sub, common, "credentials", "a publisher's SIP digest credentials",
                   cmd_credentials)  # fmt: skip
    p = action(actions, "list", "list SIP usernames (passwords are never shown)")
    p.add_argument("publisher", nargs="?", help="only this publisher's (default: all)")
    p = action(actions, "set", "create a credential, or rotate its password (asked at a prompt)")
    p.add_argument("publisher", help="the publisher the credential belongs to")
    p.add_argument("username", help="the SIP digest username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = action(actions, "remove", "remove a SIP credential")
    p.add_argument("publisher", help="the publisher the credential belongs to")
    p.add_argument("username", help="the SIP digest username")

    check_help = (
        "would this IP / credential be accepted? or: do the buyer counters (or the rollups) agree?"
    )
    p = sub.add_parser("check", parents=[common], help=check_help, description=check_help)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--ip", help="a source address: which publisher would its calls be from?")
    who.add_argument(
        "--username", help="a SIP username: does the password (asked at a prompt) authenticate?"
    )
    who.add_argument(
        "--counters", action="store_true",
        help="recount every buyer counter from the reservations and report differences",
    )  # fmt: skip
    who.add_argument(
        "--rollups", action="store_true",
        help="recount the business figures (GET /admin/stats) from the reservations and calls",
    )  # fmt: skip
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument(
        "--repair",
        action="store_true",
        help="with --counters or --rollups: rewrite those that differ",
    )
    p.set_defaults(func=guarded(cmd_check))

    audit_help = "who changed what, newest first"
    p = sub.add_parser("audit", parents=[common], help=audit_help, description=audit_help)
    p.add_argument("--since", help="only changes at or after this ISO 8601 time with offset")
    p.add_argument("--actor", help="only this actor: a token name, cli:<user> or apply")
    p.add_argument("--resource", help="a type (publisher) or type/id (publisher/pub-1)")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.set_defaults(func=guarded(cmd_audit))

    export_help = "export the allowlist for other software"
    p = sub.add_parser("export", parents=[common], help=export_help, description=export_help)
    p.add_argument("format", choices=["kamailio-permissions"],
                   help="kamailio-permissions: a Kamailio permissions address file")  # fmt: skip
    p.add_argument("-o", "--output", help="file to write (default stdout)")
    p.set_defaults(func=guarded(cmd_export))
