"""``rtbridge trunks``: carrier trunks from the terminal, through the functions the admin API
calls (:mod:`rtbridge.admin.trunks`).

The outbound digest password never comes from the command line (``ps`` and shell history
would keep it) and is never echoed: a prompt on a terminal, one line on stdin
(``--password-stdin``) or the first line of a file (``--password-file``, e.g. a secret a
deployment tool mounted). Only its HA1 is stored, and the audit trail shows ``***``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from rtbridge.admin import trunks
from rtbridge.cli.admin import action, change_text, read, table, verb, write
from rtbridge.cli.fields import Field, add_options, body_of
from rtbridge.domain.errors import InvalidInput

TRUNK_FIELDS = (
    Field(
        "uri",
        "where numbers are dialled: a sip: URI template with {number}, e.g. "
        "'sip:{number}@198.51.100.10:5060'",
        required=True,
        metavar="TEMPLATE",
    ),
    Field(
        "ips",
        "the carrier's networks, trusted for calls from the phone network "
        "(CIDRs, comma-separated or repeated; on update they replace all)",
        "list",
        resettable=True,
        metavar="CIDR[,CIDR]",
    ),
    Field(
        "username",
        "username for the carrier's digest challenge (then a password is needed)",
        resettable=True,
    ),
    Field("realm", "the carrier's digest realm (needed with --username)", resettable=True),
    Field(
        "allow_overlap",
        "accept networks overlapping a publisher's allowlist (a source in both is trusted as "
        "the carrier for calls to DIDs and as the publisher for reservation uuids)",
        "flag",
    ),
)
_COLUMNS = ["id", "ips", "uri", "username", "realm", "has_password", "allow_overlap"]


def _password(args: argparse.Namespace, *, wanted: bool) -> str | None:
    """The password from the source named on the command line, or a prompt when ``wanted``
    and no source was named; ``None`` when there is none to set."""
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"password: cannot read {args.password_file} ({exc})") from None
    if not (wanted or args.password_prompt):
        return None
    if not sys.stdin.isatty():
        raise InvalidInput(
            "password: no terminal to prompt on; use --password-stdin or --password-file"
        )
    first = getpass.getpass("carrier password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidInput("password: the two entries differ")
    return first


def cmd_trunks(args: argparse.Namespace) -> int:
    if args.action == "add":
        raw: dict[str, Any] = {"id": args.id, **body_of(args, TRUNK_FIELDS)}
        password = _password(args, wanted=args.username is not None)
        if password is not None:
            raw["password"] = password
        made = write(args, trunks.create_trunk, raw=raw)
        auth = " with outbound digest" if made["has_password"] else ""
        print(f"trunk {made['id']} created{auth}")
    elif args.action == "update":
        raw = body_of(args, TRUNK_FIELDS)
        password = _password(args, wanted=False)
        if password is not None:
            raw["password"] = password
        if not raw:
            raise InvalidInput("nothing to change: give at least one field option (see --help)")
        old, new = write(args, lambda session, *, actor: (
            trunks.get_trunk(session, args.id),
            trunks.update_trunk(session, actor=actor, trunk_id=args.id, raw=raw),
        ))  # fmt: skip
        if old != new:
            print(f"trunk {args.id} updated: {change_text(old, new)}")
        elif password is not None:
            print(f"trunk {args.id} updated: password changed")
        else:
            print(f"trunk {args.id}: no changes")
    elif args.action == "remove":
        write(args, trunks.delete_trunk, trunk_id=args.id)
        print(f"trunk {args.id} removed")
    elif args.action == "show":
        view = read(args, trunks.get_trunk, args.id)
        print(table([{"field": k, "value": v} for k, v in view.items()], ["field", "value"]))
    else:
        print(table(read(args, trunks.list_trunks), _COLUMNS))
    return 0


def _password_options(parser: argparse.ArgumentParser, *, adding: bool) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--password-stdin", action="store_true",
                        help="read the carrier password from one line of stdin")  # fmt: skip
    source.add_argument("--password-file", metavar="FILE",
                        help="read the carrier password from the first line of FILE")  # fmt: skip
    prompt_help = (
        "ask for the carrier password (the default with --username)"
        if adding
        else "ask for a new carrier password (needed when --username or --realm changes)"
    )
    source.add_argument("--password-prompt", action="store_true", help=prompt_help)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``trunks`` (``cli.build_parser`` calls this)."""
    actions = verb(sub, common, "trunks", "carrier trunks: list, show, add, update or remove",
                   cmd_trunks)  # fmt: skip
    action(actions, "list", "list trunks (passwords are never shown)")
    p = action(actions, "show", "show every field of one trunk")
    p.add_argument("id", help="the trunk's id")
    p = action(actions, "add", "add a trunk")
    p.add_argument("--id", required=True, help="the trunk's id (letters, digits, _ . -)")
    add_options(p, TRUNK_FIELDS, adding=True)
    _password_options(p, adding=True)
    p = action(actions, "update", "change some of a trunk's fields")
    p.add_argument("id", help="the trunk's id (it cannot change)")
    add_options(p, TRUNK_FIELDS, adding=False)
    _password_options(p, adding=False)
    p = action(actions, "remove", "remove a trunk (refused while buyers use it)")
    p.add_argument("id", help="the trunk's id")
