"""``rtbridge caller-lists``: block and allow lists of callers from the terminal, through the
functions ``/admin/caller-lists`` calls (:mod:`rtbridge.admin.caller_lists`), so the values
refused, the all-or-nothing CSV import with its verdicts and the audit entries (actor
``cli:<unix user>``) are the API's.

``import`` prints one verdict per CSV line; any invalid line (or a value twice) changes
nothing and exits 2, bad input, as any refused value does here. ``export`` writes the CSV
``import`` reads back (every line then ``unchanged``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session

from rtbridge.admin import caller_lists as lists
from rtbridge.admin.caller_lists import scope_text, tally
from rtbridge.admin.changes import validating
from rtbridge.cli.admin import (
    EXIT_BAD_INPUT,
    action,
    change_text,
    read,
    table,
    verb,
    write,
)
from rtbridge.cli.fields import Field, add_options, body_of
from rtbridge.config import fields as f
from rtbridge.config.schema import read_field
from rtbridge.domain.caller_lists import entry_value
from rtbridge.domain.errors import InvalidInput

LIST_FIELDS = (
    Field(
        "kind",
        "block: these callers are refused; allow: only they are taken",
        required=True,
        metavar="block|allow",
    ),
    Field(
        "campaign",
        "the campaign whose calls it concerns (default: global)",
        resettable=True,
        metavar="ID",
    ),
    Field(
        "buyer",
        "the buyer whose calls it concerns (default: global)",
        resettable=True,
        metavar="ID",
    ),
    Field("note", "a note for people, e.g. 'complaints'", resettable=True),
    Field(
        "auto_block_converted",
        "a block list's: add the caller of every conversion in its scope for this long",
        "integer",
        resettable=True,
        metavar="SECONDS",
    ),
)
_LIST_COLUMNS = ["id", "kind", "scope", "entries", "auto_block_converted", "note"]
_ENTRY_COLUMNS = ["value", "expires", "note", "source", "created_at"]


def print_verdicts(verdicts: Iterable[dict[str, Any]], out: Any) -> None:
    """``line 3  +1900*  added``: one line per CSV line, as the API answers them."""
    for v in verdicts:
        value = f"  {v['value']}" if "value" in v else ""
        print(f"line {v['line']}{value}  {v['verdict']}", file=out)


def _read_file(path: str) -> bytes:
    if path == "-":  # bytes, as from a file; a stdin swapped for text (tests) has no buffer
        stdin = getattr(sys.stdin, "buffer", None)
        return stdin.read() if stdin is not None else sys.stdin.read().encode()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InvalidInput(f"file: cannot read {path} ({exc.strerror})") from None


def _import(args: argparse.Namespace) -> int:
    parsed = lists.parse_csv(_read_file(args.file))
    try:
        verdicts = write(args, lists.add_entries, list_id=args.id, parsed=parsed)
    except lists.Refused as exc:
        print_verdicts(exc.verdicts, sys.stdout)
        print(f"rtbridge: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print_verdicts(verdicts, sys.stdout)
    print(f"caller list {args.id}: {tally(verdicts)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    def work(session: Session) -> str:
        return "".join(lists.export_csv(session, args.id))

    text = read(args, work)
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    with open(args.output, "w", encoding="utf-8", newline="") as out:
        out.write(text)
    print(f"caller list {args.id}: {text.count(chr(10)) - 1} entries written to {args.output}",
          file=sys.stderr)  # fmt: skip
    return 0


def _add_entry(args: argparse.Namespace) -> int:
    item = {"value": args.value, **({"expires": args.expires} if args.expires else {}),
            **({"note": args.note} if args.note else {})}  # fmt: skip
    parsed = lists.parse_json([item])
    try:
        verdicts = write(args, lists.add_entries, list_id=args.id, parsed=parsed)
    except lists.Refused as exc:  # one entry: its problem is the message
        raise InvalidInput(exc.verdicts[0]["verdict"].removeprefix("invalid: ")) from None
    print(f"{verdicts[0]['value']} {verdicts[0]['verdict']} in caller list {args.id}")
    return 0


def _stored_form(typed: str) -> str:
    """The entry as stored, for what was typed as it would be added (``+1900`` is
    ``+1900*``, ``(312) 555-0100`` is not a number)."""
    try:
        return entry_value(typed)
    except InvalidInput as exc:
        raise InvalidInput(f"value: {exc.message}") from None


def _entries(args: argparse.Namespace) -> int:
    with validating():
        limit = read_field("limit", lambda v: f.integer(v, minimum=1, maximum=lists.MAX_PAGE),
                           args.limit)  # fmt: skip
    page = read(args, lambda s: lists.list_entries(s, args.id, value=args.value,
                                                   after=args.after, limit=limit))  # fmt: skip
    print(table(page["entries"], _ENTRY_COLUMNS))
    if page["next_after"] is not None:
        print(f"more: --after '{page['next_after']}'", file=sys.stderr)
    return 0


def cmd_caller_lists(args: argparse.Namespace) -> int:
    if args.action == "add":
        made = write(args, lists.create_list, raw={"id": args.id, **body_of(args, LIST_FIELDS)})
        print(f"{made['kind']} list {made['id']} created ({scope_text(made)})")
    elif args.action == "update":
        raw = body_of(args, LIST_FIELDS)
        if not raw:
            raise InvalidInput("nothing to change: give at least one field option (see --help)")
        old, new = write(args, lambda session, *, actor: (
            lists.get_list(session, args.id),
            lists.update_list(session, actor=actor, list_id=args.id, raw=raw),
        ))  # fmt: skip
        changed = f" updated: {change_text(old, new)}" if old != new else ": no changes"
        print(f"caller list {args.id}{changed}")
    elif args.action == "remove":
        write(args, lists.delete_list, list_id=args.id)
        print(f"caller list {args.id} removed, with its entries")
    elif args.action == "entries":
        return _entries(args)
    elif args.action == "add-entry":
        return _add_entry(args)
    elif args.action == "remove-entry":
        value = _stored_form(args.value)
        write(args, lists.remove_entry, list_id=args.id, value=value)
        print(f"{value} removed from caller list {args.id}")
    elif args.action == "import":
        return _import(args)
    elif args.action == "export":
        return _export(args)
    else:
        print(table(read(args, lists.overview), _LIST_COLUMNS))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``caller-lists`` (``cli.build_parser`` calls this)."""
    actions = verb(sub, common, "caller-lists",
                   "block and allow lists of callers, and their entries", cmd_caller_lists)  # fmt: skip
    action(actions, "list", "list caller lists: kind, scope and how many entries")
    p = action(actions, "add", "add a list (global unless --campaign or --buyer)")
    p.add_argument("--id", required=True, help="the list's id (letters, digits, _ . -)")
    add_options(p, LIST_FIELDS, adding=True)
    p = action(actions, "update", "change some of a list's settings (its entries: add-entry, "
               "remove-entry, import)")  # fmt: skip
    p.add_argument("id", help="the list's id (it cannot change)")
    add_options(p, LIST_FIELDS, adding=False)
    p = action(actions, "remove", "remove a list with all its entries")
    p.add_argument("id", help="the list's id")

    p = action(actions, "entries", "a page of a list's entries, in value order")
    p.add_argument("id", help="the list's id")
    p.add_argument("--value", metavar="START", help="only values starting with START (+1312)")
    p.add_argument("--after", metavar="VALUE", help="the page after this value (printed as "
                   "'more: --after ...' when there is one)")  # fmt: skip
    p.add_argument("--limit", type=int, default=100, metavar="N",
                   help=f"at most this many (1-{lists.MAX_PAGE}, default 100)")  # fmt: skip
    value_help = "an E.164 number, a prefix (+1900 or +1900555*) or anonymous"
    p = action(actions, "add-entry", "add an entry to a list, or change its expiry and note")
    p.add_argument("id", help="the list's id")
    p.add_argument("value", help=value_help)
    p.add_argument("--expires", help="stop matching at this ISO 8601 time with offset, e.g. "
                   "2026-12-31T23:59:00Z")  # fmt: skip
    p.add_argument("--note", help="a note for people, e.g. 'complaint 2026-12-01'")
    p = action(actions, "remove-entry", "remove an entry from a list")
    p.add_argument("id", help="the list's id")
    p.add_argument("value", help="the entry as `entries` shows it (+1900*, not +1900)")
    p = action(actions, "import", "add or update the entries of a CSV file (value,expires,note; "
               "a header line is optional): all of them, or none when a line is invalid")  # fmt: skip
    p.add_argument("id", help="the list's id")
    p.add_argument("file", help="the CSV file ('-': stdin); at most 200,000 lines")
    p = action(actions, "export", "write a list's entries as CSV (value,expires,note), as "
               "import reads them")  # fmt: skip
    p.add_argument("id", help="the list's id")
    p.add_argument("output", nargs="?", help="the file to write (default: stdout)")
