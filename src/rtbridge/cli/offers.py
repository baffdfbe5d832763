"""Terminal verbs for the buyer side and the keys publishers ping with: ``rtbridge campaigns``,
``buyers``, ``dids`` and ``keys``. Each action calls the function the admin API calls
(:mod:`rtbridge.admin.offers`), so the values refused, the audit entries written (actor
``cli:<unix user>``) and the PostgreSQL advisory lock taken are the same.

A postback key is a secret: a chosen one is read from stdin (``--key-stdin``), never from the
command line where ``ps`` and shell history would keep it; a random one is printed once. An RTB
buyer's bid headers may hold one too (an ``Authorization`` token): ``--bid-header NAME=VALUE``
is there for the harmless ones, ``--bid-headers-stdin`` reads ``Name: value`` lines instead."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from rtbridge.admin import offers
from rtbridge.cli.admin import action, change_text, read, table, verb, write
from rtbridge.cli.fields import Field, add_options, body_of
from rtbridge.domain.errors import InvalidInput, NotFound

# -- campaigns --------------------------------------------------------------------------------


CAMPAIGN_FIELDS = (
    Field(
        "failover",
        "the buyer failures that send a call on to the next buyer: no-answer, busy, rejected, "
        "unreachable (comma-separated or repeated; default: all four; 'none' turns failover "
        "off; on update the given ones replace all)",
        "list",
        resettable=True,
        metavar="KIND[,KIND]",
    ),
    Field(
        "max_attempts",
        "buyers tried for one call, the reservation's own included (1-10, default 3)",
        "integer",
        resettable=True,
        metavar="N",
    ),
    Field(
        "bid_deadline_ms",
        "how long a ping waits for its RTB buyers' bids, in milliseconds (10-5000, default 250)",
        "integer",
        resettable=True,
        metavar="MS",
    ),
    Field(
        "publisher_share",
        "the publisher's payout is the winning bid times this, rounded down to the cent "
        "(more than 0, at most 1; default 1)",
        "number",
        resettable=True,
        metavar="FRACTION",
    ),
    Field(
        "min_bid",
        "bids below this are not taken (at least 0.01, the default)",
        "number",
        resettable=True,
        metavar="AMOUNT",
    ),
    Field(
        "duplicate_window",
        "seconds during which a caller who reached a buyer is a duplicate for it (0, the "
        "default: off); its buyers' default",
        "integer",
        resettable=True,
        metavar="SECONDS",
    ),
    Field(
        "duplicate_after",
        "what the caller's earlier call must have reached: ping, connected (default) or "
        "converted; its buyers' default",
        resettable=True,
        metavar="ping|connected|converted",
    ),
    Field(
        "min_attestation",
        "the least STIR/SHAKEN attestation a call needs: A, B or C; lower, unsigned or failing "
        "calls are refused 403 (default: every call)",
        resettable=True,
        metavar="A|B|C",
    ),
    Field(
        "record",
        "record its answered calls, stereo: publisher left, buyer right (default: no); its "
        "buyers' default",
        "flag",
    ),
    Field(
        "record_announcement",
        "the notice its recorded calls play to both parties before they are bridged: a mono "
        "PCM16 WAV of at most 30 s (a relative path is the working directory's); its buyers' "
        "default (default: none; --reset record_announcement removes it)",
        "path",
        resettable=True,
        metavar="PATH",
    ),
)
_CAMPAIGN_COLUMNS = ["id", "numbers", "buyers", "failover", "max_attempts", "bid_deadline_ms",
                     "publisher_share", "min_bid"]  # fmt: skip


def _campaign_body(args: argparse.Namespace) -> dict[str, Any]:
    raw = body_of(args, CAMPAIGN_FIELDS)
    if raw.get("failover") == ["none"]:  # a word for [], which an option cannot spell
        raw["failover"] = []
    return raw


def cmd_campaigns(args: argparse.Namespace) -> int:
    if args.action == "add":
        raw: dict[str, Any] = {"id": args.id, **_campaign_body(args)}
        if args.numbers:
            raw["numbers"] = [n.strip() for text in args.numbers for n in text.split(",")]
        made = write(args, offers.create_campaign, raw=raw)
        print(f"campaign {made['id']} created with {len(made['numbers'])} number(s)")
    elif args.action == "update":
        raw = _campaign_body(args)
        _update_offer(args, "campaign", raw, offers.get_campaign, lambda session, actor: (
            offers.update_campaign(session, actor=actor, campaign_id=args.id, raw=raw)))  # fmt: skip
    elif args.action == "remove":
        write(args, offers.delete_campaign, campaign_id=args.id)
        print(f"campaign {args.id} removed, with its buyers and numbers")
    elif args.action == "show":
        print(_vertical(read(args, offers.get_campaign, args.id)))
    else:
        print(table(read(args, offers.list_campaigns), _CAMPAIGN_COLUMNS))
    return 0


def _update_offer(
    args: argparse.Namespace, what: str, raw: dict[str, Any],
    get: Callable[[Session, str], dict[str, Any]],
    update: Callable[[Session, str], dict[str, Any]],
) -> None:  # fmt: skip
    """Read the campaign or buyer and change it in one transaction, then say what changed.
    ``update(session, actor)`` applies ``raw`` to ``args.id``."""
    if not raw:
        raise InvalidInput("nothing to change: give at least one field option (see --help)")

    def change(session: Session, *, actor: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return get(session, args.id), update(session, actor)

    old, new = write(args, change)
    if old == new:
        print(f"{what} {args.id}: no changes")
    else:
        print(f"{what} {args.id} updated: {change_text(old, new)}")


# -- buyers -----------------------------------------------------------------------------------

BUYER_FIELDS = (
    Field("campaign", "the campaign whose calls the buyer takes", required=True, metavar="ID"),
    Field(
        "destination",
        "where calls go: a SIP URI (sip:queue@buyer.example.net) or an E.164 "
        "number dialled through a trunk (required, but for an RTB buyer: each bid brings it)",
        resettable=True,
        metavar="URI|NUMBER",
    ),
    Field(
        "payout",
        "paid to the publisher per converted call (required, but for an RTB buyer: its "
        "campaign's publisher_share of the winning bid)",
        "number",
        resettable=True,
    ),
    Field(
        "revenue",
        "paid by the buyer per converted call (default: the payout, a margin of 0)",
        "number",
        resettable=True,
    ),
    Field(
        "seconds", "call length in seconds that qualifies for the payout", "integer", required=True
    ),
    Field(
        "concurrency",
        "at most this many calls at once (default: no limit)",
        "integer",
        resettable=True,
        metavar="N",
    ),
    Field(
        "daily_cap",
        "at most this many calls per UTC day (default: no limit)",
        "integer",
        resettable=True,
        metavar="N",
    ),
    Field("priority", "lower is tried first (default 1)", "integer", resettable=True, metavar="N"),
    Field(
        "weight",
        "share among buyers of equal priority (default 1)",
        "integer",
        resettable=True,
        metavar="N",
    ),
    Field(
        "hours",
        "when the buyer takes calls, e.g. 'Mon-Fri 09:00-17:00 America/New_York' (default: always)",
        resettable=True,
    ),
    Field(
        "filters",
        "only pings whose tag has one of these values, e.g. caller_state=CA,NY "
        "(repeatable; on update the given filters replace all)",
        "filters",
        resettable=True,
        metavar="TAG=VALUE[,VALUE]",
        option="--filter",
    ),
    Field(
        "trunk",
        "the trunk that dials a number destination (default: the first trunk)",
        resettable=True,
        metavar="ID",
    ),
    Field(
        "srtp",
        "encrypt media to the buyer: off (default), optional or required",
        resettable=True,
        metavar="off|optional|required",
    ),
    Field(
        "media_networks",
        "a network (CIDR) beside the destination's address where a re-INVITE may move the "
        "buyer's media (repeatable; on update the given ones replace all)",
        "list",
        resettable=True,
        metavar="CIDR",
        option="--media-network",
    ),
    Field(
        "ring_timeout",
        "seconds the buyer may ring before the call moves on (at most 600; default: the SIP "
        "agent's ring_timeout)",
        "number",
        resettable=True,
        metavar="SECONDS",
    ),
    Field(
        "connect_timeout",
        "seconds to the buyer's first answer (any 1xx) before it counts as unreachable "
        "(at most 60, less than the ring timeout; default 2)",
        "number",
        resettable=True,
        metavar="SECONDS",
    ),
    Field(
        "bid_url",
        "makes it an RTB buyer: every ping of its campaign asks this http:// or https:// URL "
        "for a bid, which brings the destination and the price (then leave out, or --reset, "
        "destination, payout and revenue)",
        resettable=True,
        metavar="URL",
    ),
    Field(
        "bid_format",
        "the shape of its bid requests and answers: rtbridge (default), ringba or retreaver",
        resettable=True,
        metavar="rtbridge|ringba|retreaver",
    ),
    Field(
        "bid_headers",
        "a header sent with every bid request (repeatable; on update the given ones replace "
        "all). Stored sealed and shown as ***, but a value typed here is seen by ps and kept "
        "in shell history: use --bid-headers-stdin for a secret",
        "headers",
        resettable=True,
        metavar="NAME=VALUE",
        option="--bid-header",
    ),
    Field(
        "hide_caller",
        "withhold the caller's number from its bid requests (default: no)",
        "flag",
    ),
    Field(
        "duplicate_window",
        "its own duplicate-caller window in seconds, over the campaign's (0: off for it)",
        "integer",
        resettable=True,
        metavar="SECONDS",
    ),
    Field(
        "duplicate_after",
        "its own duplicate point over the campaign's: ping, connected or converted",
        resettable=True,
        metavar="ping|connected|converted",
    ),
    Field(
        "record",
        "record its answered calls, over the campaign's record (--reset record: the campaign's)",
        "flag",
        resettable=True,
    ),
    Field(
        "record_announcement",
        "its own notice for its recorded calls, over the campaign's: a mono PCM16 WAV of at "
        "most 30 s (a relative path is the working directory's; --reset record_announcement: "
        "the campaign's)",
        "path",
        resettable=True,
        metavar="PATH",
    ),
)
_BUYER_COLUMNS = ["id", "campaign", "destination", "payout", "revenue", "seconds", "concurrency",
                  "daily_cap", "priority", "weight", "hours", "filters", "trunk", "srtp"]  # fmt: skip


def _stdin_headers(args: argparse.Namespace, raw: dict[str, Any]) -> None:
    """``--bid-headers-stdin``: ``Name: value`` lines (blank ones skipped) as ``bid_headers``,
    kept out of argv where ``ps`` and shell history would show them."""
    if not args.bid_headers_stdin:
        return
    if "bid_headers" in raw:
        raise InvalidInput("bid_headers: give --bid-header, --bid-headers-stdin or --reset "
                           "bid_headers, one of them")  # fmt: skip
    headers: dict[str, str] = {}
    for line in sys.stdin.read().splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():  # not echoed: the line may be the secret itself
            raise InvalidInput("bid_headers: write one header per line as Name: value")
        headers[name.strip()] = value.strip()
    raw["bid_headers"] = headers


def _listed(view: dict[str, Any]) -> dict[str, Any]:
    """A buyer as ``buyers list`` shows it: an RTB buyer's destination is its bids."""
    if view["bid_url"] is not None:
        return {**view, "destination": f"bids ({view['bid_format']})"}
    return view


def cmd_buyers(args: argparse.Namespace) -> int:
    if args.action in ("add", "update"):
        raw = body_of(args, BUYER_FIELDS)
        _stdin_headers(args, raw)
    if args.action == "add":
        made = write(args, offers.create_buyer, raw={"id": args.id, **raw})
        print(f"buyer {made['id']} created in campaign {made['campaign']}")
    elif args.action == "update":
        _update_offer(args, "buyer", raw, offers.get_buyer, lambda session, actor: (
            offers.update_buyer(session, actor=actor, buyer_id=args.id, raw=raw)))  # fmt: skip
    elif args.action == "remove":
        write(args, offers.delete_buyer, buyer_id=args.id)
        print(f"buyer {args.id} removed")
    elif args.action == "show":
        print(_vertical(read(args, offers.get_buyer, args.id)))
    else:
        rows = [_listed(b) for b in read(args, offers.list_buyers, args.campaign)]
        print(table(rows, _BUYER_COLUMNS))
    return 0


def _vertical(view: dict[str, Any]) -> str:
    """One field per line, for ``show``."""
    return table([{"field": k, "value": v} for k, v in view.items()], ["field", "value"])


# -- DIDs -------------------------------------------------------------------------------------


def cmd_dids(args: argparse.Namespace) -> int:
    if args.action == "add":
        added = write(args, offers.add_did, raw={"number": args.number, "campaign": args.campaign})
        print(f"DID {added['number']} added to campaign {added['campaign']}")
    elif args.action == "remove":
        write(args, offers.remove_did, number=args.number)
        print(f"DID {args.number} removed")
    else:
        print(table(read(args, offers.list_dids, args.campaign), ["number", "campaign"]))
    return 0


# -- keys -------------------------------------------------------------------------------------

KEY_FIELDS = (
    Field("publisher", "the publisher that pings with the key", required=True, metavar="ID"),
    Field("campaign", "the campaign its pings reserve calls in", required=True, metavar="ID"),
    Field(
        "allow_missing_caller_number", "accept pings without caller_number (default: no)", "flag"
    ),
    Field(
        "inbound_number",
        "the E.164 number answered to pings without caller_number (default: none, they get "
        "the reservation's SIP address)",
        resettable=True,
        metavar="NUMBER",
    ),
    Field(
        "ttl_seconds",
        "how long a reservation lives, in seconds (default 60)",
        "integer",
        resettable=True,
        metavar="N",
    ),
    Field("auto_confirm", "reservations start confirmed instead of reserved (default: no)", "flag"),
    Field(
        "response_root",
        "'rtb' wraps answers in {\"rtb\": ...} (default: none)",
        resettable=True,
        metavar="rtb",
    ),
    Field("paused", "pings with a paused key are refused (default: no)", "flag"),
    Field(
        "recordings",
        "GET /rtbs/<uuid>/recording works for its publisher's calls (default: no)",
        "flag",
    ),
)
_KEY_COLUMNS = ["id", "hint", "publisher", "campaign", "allow_missing_caller_number",
                "inbound_number", "ttl_seconds", "auto_confirm", "response_root", "paused", "recordings"]  # fmt: skip
_SHORT_ID = 12  # characters of the key id (a digest) shown in tables


def resolve_key(session: Session, ref: str) -> str:
    """The key id for what an admin typed: the whole id, a prefix of it (at least 8
    characters, as the table shows 12), or the hint (``f382`` or ``f382…``)."""
    text = ref.strip().rstrip("…").rstrip(".")
    if len(text) < 4:
        raise InvalidInput("key: give the ID or the HINT that `rtbridge keys list` shows")
    found: set[str] = {k["id"] for k in offers.list_keys(session)
             if (len(text) >= 8 and k["id"].startswith(text))
             or k["hint"].rstrip("…") == text}  # fmt: skip
    if not found:
        raise NotFound(f"no key {ref!r} (see `rtbridge keys list`)")
    if len(found) > 1:
        shown = ", ".join(sorted(k[:_SHORT_ID] for k in found))
        raise InvalidInput(f"key: {ref!r} matches {len(found)} keys ({shown}); give more of the id")
    return found.pop()


def _read_key(args: argparse.Namespace) -> str | None:
    if not args.key_stdin:
        return None
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def cmd_keys(args: argparse.Namespace) -> int:
    if args.action == "add":
        return _add_key(args)
    if args.action in ("update", "pause", "resume"):
        raw = body_of(args, KEY_FIELDS) if args.action == "update" else {
            "paused": args.action == "pause"}  # fmt: skip
        if not raw:
            raise InvalidInput("nothing to change: give at least one field option (see --help)")

        def change(session: Session, *, actor: str) -> tuple[dict[str, Any], dict[str, Any]]:
            key_id = resolve_key(session, args.key)
            old = offers.get_key(session, key_id)
            return old, offers.update_key(session, actor=actor, key_id=key_id, raw=raw)

        old, new = write(args, change)
        what = f"key {new['hint']} ({new['publisher']}, {new['campaign']})"
        print(f"{what} updated: {change_text(old, new)}" if old != new else f"{what}: no changes")
    elif args.action == "remove":

        def remove(session: Session, *, actor: str) -> str:
            key_id = resolve_key(session, args.key)
            hint: str = offers.get_key(session, key_id)["hint"]
            offers.delete_key(session, actor=actor, key_id=key_id)
            return hint

        print(f"key {write(args, remove)} removed")
    elif args.action == "show":
        view = read(args, lambda s: offers.get_key(s, resolve_key(s, args.key)))
        print(_vertical(view))
    else:
        rows = [{**k, "id": k["id"][:_SHORT_ID]} for k in read(args, offers.list_keys)]
        print(table(rows, _KEY_COLUMNS))
    return 0


def _add_key(args: argparse.Namespace) -> int:
    raw = body_of(args, KEY_FIELDS)
    chosen = _read_key(args)
    if chosen is not None:
        raw["key"] = chosen
    made = write(args, offers.create_key, raw=raw)
    about = (f"key {made['hint']} created for {made['publisher']} in campaign "
             f"{made['campaign']} (id {made['id'][:_SHORT_ID]})")  # fmt: skip
    if chosen is None:  # random: this is the only time anyone sees it
        print(made["key"])
        print(f"{about}; the key is shown only this once", file=sys.stderr)
    else:
        print(about)
    return 0


# -- the parser -------------------------------------------------------------------------------


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``campaigns``, ``buyers``, ``dids`` and ``keys`` (``cli.build_parser`` calls this)."""
    actions = verb(sub, common, "campaigns", "list, show, add, update or remove campaigns",
                   cmd_campaigns)  # fmt: skip
    action(actions, "list", "list campaigns with their numbers, buyers, failover and auction")
    p = action(actions, "show", "show every field of one campaign")
    p.add_argument("id", help="the campaign's id")
    p = action(actions, "add", "add a campaign (add its buyers with `rtbridge buyers add`)")
    p.add_argument("--id", required=True, help="the campaign's id (letters, digits, _ . -)")
    p.add_argument("--numbers", action="append", metavar="NUMBER[,NUMBER]",
                   help="its DID pool: E.164 numbers, comma-separated or repeated")  # fmt: skip
    add_options(p, CAMPAIGN_FIELDS, adding=True)
    p = action(actions, "update", "change a campaign's failover and auction settings (its "
               "numbers: `rtbridge dids`; its buyers: `rtbridge buyers`)")  # fmt: skip
    p.add_argument("id", help="the campaign's id (it cannot change)")
    add_options(p, CAMPAIGN_FIELDS, adding=False)
    p = action(actions, "remove", "remove a campaign with its buyers and numbers (refused "
               "while keys use it)")  # fmt: skip
    p.add_argument("id", help="the campaign's id")

    actions = verb(sub, common, "buyers", "list, show, add, update or remove buyers", cmd_buyers)
    p = action(actions, "list", "list buyers")
    p.add_argument("--campaign", help="only this campaign's buyers")
    p = action(actions, "show", "show every field of one buyer")
    p.add_argument("id", help="the buyer's id")
    stdin_help = ("read its bid headers from stdin, one 'Name: value' per line (on update "
                  "they replace all; no line: none)")  # fmt: skip
    p = action(actions, "add", "add a buyer to a campaign: a static one (--destination, "
               "--payout) or an RTB one (--bid-url)")  # fmt: skip
    p.add_argument("--id", required=True, help="the buyer's id (letters, digits, _ . -)")
    add_options(p, BUYER_FIELDS, adding=True)
    p.add_argument("--bid-headers-stdin", action="store_true", help=stdin_help)
    p = action(actions, "update", "change some of a buyer's fields")
    p.add_argument("id", help="the buyer's id (it cannot change)")
    add_options(p, BUYER_FIELDS, adding=False)
    p.add_argument("--bid-headers-stdin", action="store_true", help=stdin_help)
    p = action(actions, "remove", "remove a buyer")
    p.add_argument("id", help="the buyer's id")

    actions = verb(sub, common, "dids", "a campaign's pool of inbound numbers (DIDs)", cmd_dids)
    p = action(actions, "list", "list numbers and their campaigns")
    p.add_argument("--campaign", help="only this campaign's numbers")
    p = action(actions, "add", "add a number to a campaign's pool")
    p.add_argument("--number", required=True, help="an E.164 number, e.g. +18005551234")
    p.add_argument("--campaign", required=True, help="the campaign whose pool it joins")
    p = action(actions, "remove", "remove a number from its pool")
    p.add_argument("number", help="the E.164 number")

    actions = verb(sub, common, "keys", "the postback keys publishers ping with", cmd_keys)
    action(actions, "list", "list keys by id and hint (the keys themselves are not stored)")
    key_help = "the key's ID or HINT as `rtbridge keys list` shows them"
    p = action(actions, "show", "show every setting of one key")
    p.add_argument("key", help=key_help)
    p = action(actions, "add", "add a key; a random one is printed once unless --key-stdin")
    p.add_argument("--key-stdin", action="store_true",
                   help="read the key from stdin (at least 16 characters) instead of a random "
                   "one")  # fmt: skip
    add_options(p, KEY_FIELDS, adding=True)
    p = action(actions, "update", "change some of a key's settings (the key itself cannot "
               "change: add a new one, then remove this one)")  # fmt: skip
    p.add_argument("key", help=key_help)
    add_options(p, KEY_FIELDS, adding=False)
    for name, help_ in (("pause", "refuse pings with this key until resumed"),
                        ("resume", "accept pings with this key again")):  # fmt: skip
        action(actions, name, help_).add_argument("key", help=key_help)
    p = action(actions, "remove", "remove a key: pings with it are refused from then on")
    p.add_argument("key", help=key_help)
