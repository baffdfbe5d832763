"""``rtbridge bids``: the bid log in a terminal — every RTB buyer's answer to every ping,
newest first, as ``GET /admin/bids`` lists it (:func:`rtbridge.storage.listings.bid_log`, the
same filters), for whoever asks why a ping went to one bidder and not another.

A read on its own session: no audit entry, no admin lock. Times are ISO 8601 with an offset,
as everywhere else; ``--limit`` bounds one page (the API's cursor and CSV are for more)."""

from __future__ import annotations

import argparse
import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session

from rtbridge.admin.changes import validating
from rtbridge.cli.admin import guarded, read, table
from rtbridge.config import fields as f
from rtbridge.config.schema import read_field
from rtbridge.storage import listings

COLUMNS = ["at", "rtb", "buyer", "outcome", "amount", "latency_ms", "reason", "bid_id"]


def _reservation(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise f.FieldError("not a reservation uuid (8-4-4-4-12 hex digits)") from None


def _time(name: str, value: str | None) -> datetime | None:
    return None if value is None else read_field(name, f.timestamp, value)


def cmd_bids(args: argparse.Namespace) -> int:
    with validating():
        query: dict[str, Any] = {
            "rtb": None if args.rtb is None else read_field("rtb", _reservation, args.rtb),
            "buyer": None if args.buyer is None else read_field("buyer", f.identifier, args.buyer),
            "outcome": args.outcome,
            "since": _time("since", args.since),
            "until": _time("until", args.until),
            "limit": read_field("limit", lambda v: f.integer(v, minimum=1,
                                                             maximum=listings.MAX_PAGE),
                                args.limit),
        }  # fmt: skip

    def work(session: Session) -> listings.Page:
        return listings.bid_log(session, **query)

    print(table(read(args, work).rows, COLUMNS))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``bids`` to the ``rtbridge`` parser (``cli.build_parser`` calls this)."""
    bids_help = "the bid log: every RTB buyer's answer to every ping, newest first"
    p = sub.add_parser("bids", parents=[common], help=bids_help, description=bids_help)
    p.add_argument("--rtb", metavar="UUID", help="one ping's bids: its reservation's uuid")
    p.add_argument("--buyer", metavar="ID", help="only this buyer's")
    p.add_argument("--outcome", choices=listings.BID_OUTCOMES, help="only bids that ended so")
    p.add_argument("--since", help="only bids asked at or after this ISO 8601 time with offset")
    p.add_argument("--until", help="only bids asked before this ISO 8601 time with offset")
    p.add_argument("--limit", type=int, default=100,
                   help=f"at most this many (1-{listings.MAX_PAGE}, default 100)")  # fmt: skip
    p.set_defaults(func=guarded(cmd_bids))
