"""What a bid request looks like on the wire, and what a buyer's answer means: pure
functions, no I/O, one pair per format (``rtbridge``, ``ringba``, ``retreaver``).

A bidder is a stranger on the hot path of every ping: whatever it answers — a 500, HTML, a
bid of ``NaN``, ``"-5"``, a destination with a newline in it, a megabyte of JSON — must
become a :class:`Bid` we can dial or a :class:`NoBid` that says why not, never an exception.
So every field is checked here, once, whichever format brought it:

- **amount**: a JSON number, or a string of plain decimal digits (``"12.50"``: ping/post
  platforms often send money as text); no sign, exponent, ``NaN`` or ``Infinity`` text.
  Rounded to cents, half up. ``0`` (or an amount that rounds to ``0.00``) is a no-bid;
  negative, non-finite or above :data:`MAX_BID` is invalid (a runaway bid would win every
  auction and never be paid).
- **destination**: a ``sip:``/``sips:`` URI with a host (a scheme in any case is written in
  lower case), at most 512 characters, no white space, control characters or ``<>"``; or a
  phone number, normalised to E.164 by :func:`rtbridge.domain.numbers.normalise_e164`.
  Missing on a positive bid: invalid.
- **expires_in**: whole seconds (a fraction is cut off); ``None`` when absent. Zero or less
  is invalid (the bid was dead on arrival: the buyer would refuse the call); more than
  :data:`MAX_EXPIRES_IN` is cut to it (the reservation's own TTL is shorter anyway).
- **bid_id**: text (or an integer, written as text) of at most 128 printable characters;
  longer or with control characters is invalid — a buyer reconciles by it, so it is never
  silently cut. Empty is ``None``.
- **HTTP**: 200, 201 and 203 carry a body to read; 204 and 205 are a no-bid; 202 is a
  no-bid (accepted, no answer yet); any other 2xx is invalid; anything else is
  ``NoBid("error", "HTTP <code>")``. An empty 200 body, ``{}`` and ``{"bid": null}`` are a
  no-bid (OpenRTB's convention for "nothing to say"); a body that is not JSON, JSON that is
  not an object, or more than :data:`MAX_BODY` bytes is invalid.

Ringba and Retreaver mappings and where they come from are in :func:`_ringba_request`,
:func:`_read_ringba`, :func:`_retreaver_request` and :func:`_read_retreaver`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson

from rtbridge.domain.errors import InvalidInput
from rtbridge.domain.numbers import normalise_e164
from rtbridge.timestamps import utcnow

FORMATS = ("rtbridge", "ringba", "retreaver")
MAX_BODY = 65536  # bytes of an answer; the client stops reading there too
MAX_BID = 10000.0  # per call; above it a bid is a bug or an attack, not a price
MAX_EXPIRES_IN = 86400  # seconds
MAX_DESTINATION = 512
MAX_BID_ID = 128
_MAX_REASON = 120  # characters of a bidder's own words kept in a reason

_DECIMAL = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,12})?")
_CENT = Decimal("0.01")
# scheme, optional userinfo, host (name, IPv4 or [IPv6]), optional port, then parameters or
# headers. Checked after the characters themselves (no space, control, <, > or ").
_SIP = re.compile(
    r"(?P<scheme>sips?):(?:[^@]+@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?(?:[;?].*)?",
    re.IGNORECASE,
)
_UNSAFE = re.compile(r"[\x00-\x20\x7f<>\"]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class BidRequest:
    reservation: str  # the reservation uuid the ping will make
    campaign: str
    publisher: str
    caller_number: str | None  # None when the buyer has hide_caller
    inbound_number: str | None
    tags: Mapping[str, str]
    deadline_ms: int


@dataclass(frozen=True)
class Bid:
    amount: float  # > 0, finite, at most MAX_BID, in cents
    destination: str  # "sip:..." / "sips:..." URI, or E.164 "+<digits>"
    expires_in: int | None  # seconds, 1..MAX_EXPIRES_IN, or None
    bid_id: str | None  # at most 128 characters
    # Minimum call length for the bid to be paid, when the format says it (Retreaver's
    # retreaver_seconds); None otherwise.
    seconds: int | None = None


@dataclass(frozen=True)
class NoBid:
    outcome: str  # "no-bid" | "invalid" | "error"
    reason: str  # short human text: "HTTP 500", "not JSON", "negative bid", ...


class _Refused(Exception):
    """A field that makes the whole answer invalid; the message is the NoBid's reason."""


# -- the request -------------------------------------------------------------------------------


def request_body(fmt: str, req: BidRequest) -> bytes:
    """The JSON body to POST to a buyer of format ``fmt``."""
    return orjson.dumps(_REQUESTS[fmt](req))


def _rtbridge_request(req: BidRequest) -> dict[str, Any]:
    """The issue's own format (issue 25): the reservation's uuid as ``id``."""
    return {
        "id": req.reservation,
        "campaign": req.campaign,
        "publisher": req.publisher,
        "caller_number": req.caller_number,
        "inbound_number": req.inbound_number,
        "tags": dict(req.tags),
        "deadline_ms": req.deadline_ms,
    }


def _ringba_request(req: BidRequest) -> dict[str, Any]:
    """A publisher's ping to a Ringba RTB endpoint (``POST .../v1/production/<RTB_ID>.json``).

    Source: Ringba's "Publishers: How to Implement Ringba RTB" (support.ringba.com, article
    26359999885079): a flat JSON object, ``CID`` the caller id as digits without ``+``
    (``"15557779999"``), ``exposeCallerId: "yes"`` to let the buyer see it, ``sipOk: "yes"``
    when the publisher can send the call over SIP (we can: the agent dials SIP natively), and
    every other key a tag (``zipcode``, ``State``, ``SubID``...). Our tags go in flat; the
    three fields above are ours and win over a tag of the same name.

    With ``hide_caller`` there is no ``CID`` (nor ``exposeCallerId``). Ringba matches the
    arriving call by its caller id ("the caller ID you include in your bid request must match
    the caller ID of the call that arrives"), so a campaign that requires one answers a
    rejection (error 1100), which reads as a no-bid.
    """
    body: dict[str, Any] = dict(req.tags)
    for reserved in ("CID", "exposeCallerId", "sipOk"):
        body.pop(reserved, None)
    if req.caller_number is not None:
        body["CID"] = req.caller_number.lstrip("+")
        body["exposeCallerId"] = "yes"
    body["sipOk"] = "yes"
    return body


def _retreaver_request(req: BidRequest) -> dict[str, Any]:
    """A publisher's ping to a Retreaver RTB endpoint (``POST .../rtbs.json``), which
    rtbridge's own publisher API copies (docs/publisher-api.md): another rtbridge is a
    buyer of this format too.

    Source: Retreaver's "Working with the Retreaver Real-Time-Bidding API" and its
    news "Allow RTB requests without caller_number on a postback key" (learn.retreaver.com):
    parameters ``key``, ``caller_number``, ``inbound_number``, ``publisher_id``, and any other
    parameter is a tag. Retreaver documents them as query or form parameters; rtbridge reads
    a JSON body as well, and Retreaver's docs neither show nor rule out JSON (thin here: a
    buyer that reads only forms will not see the body).

    ``key`` and ``publisher_id`` belong to the buyer's side (the postback key it issued us,
    the publisher id it knows us by): they go in ``bid_url``'s query, as Retreaver's RTB
    links carry them. ``inbound_number`` is never sent: to Retreaver it means "answer with
    this number", which would make the buyer send our own number back to us.
    """
    body: dict[str, Any] = dict(req.tags)
    for reserved in ("key", "caller_number", "inbound_number", "publisher_id"):
        body.pop(reserved, None)
    if req.caller_number is not None:
        body["caller_number"] = req.caller_number
    return body


# -- the answer --------------------------------------------------------------------------------


def read_answer(fmt: str, status: int, body: bytes, *, now: datetime | None = None) -> Bid | NoBid:
    """What a buyer of format ``fmt`` answered: a bid to dial, or why there is none.
    ``now`` (aware UTC; default the clock) turns an absolute expiry into ``expires_in``."""
    reader = _ANSWERS[fmt]  # an unknown format is the caller's bug: KeyError
    if status in (204, 205):
        return NoBid("no-bid", f"HTTP {status}")
    if status == 202:
        return NoBid("no-bid", "HTTP 202 (accepted, no bid)")
    if status not in (200, 201, 203):
        return NoBid("invalid" if 200 <= status < 300 else "error", f"HTTP {status}")
    if len(body) > MAX_BODY:
        return NoBid("invalid", f"answer over {MAX_BODY // 1024} KiB")
    if not body.strip():
        return NoBid("no-bid", "empty answer")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return NoBid("invalid", "not JSON")
    if not isinstance(parsed, dict):
        return NoBid("invalid", "not a JSON object")
    try:
        return reader(parsed, now or utcnow())
    except _Refused as exc:
        return NoBid("invalid", str(exc))


def _read_rtbridge(answer: dict[str, Any], now: datetime) -> Bid | NoBid:
    """``{"bid": 12.5, "destination": "sip:..."|"+1800...", "expires_in": 60,
    "bid_id": "..."}``; ``{"bid": 0}``, ``{}`` or ``{"bid": null}`` for no bid (issue 25)."""
    raw = answer.get("bid")
    amount = _amount(raw)
    if amount is None:
        return NoBid("no-bid", "no bid in the answer" if raw is None else "bid 0")
    return Bid(
        amount=amount,
        destination=_destination(answer.get("destination")),
        expires_in=_expires_in(answer.get("expires_in")),
        bid_id=_bid_id(answer.get("bid_id")),
    )


def _read_ringba(answer: dict[str, Any], now: datetime) -> Bid | NoBid:
    """A Ringba RTB answer (a flat object).

    Sources: Ringba's "Publishers: How to Implement Ringba RTB" (support.ringba.com, article
    26359999885079: "the call must be transferred to the phoneNumber (or phoneNumberNoPlus or
    sipAddress) WITHIN the expireInSeconds number of seconds"); its "Real Time Bidding FAQ"
    (article 17993169843991: a bid carries its amount, expiry and number; a cached repeat
    carries ``warnings`` code 230); a Ringba partner's guide (help.mojaai.com, hq4ads
    integration) for the failed bid ``{"bidId": "...", "bidAmount": 0, "rejectReason":
    "Missing required fields"}``; and a full successful answer as integrators log it
    (``bidId``, ``bidAmount``, ``expireInSeconds``, ``bidExpireDT``, ``bidExpireEpoch``,
    ``phoneNumber``, ``phoneNumberNoPlus``, ``sipAddress`` given without ``sip:``, as
    ``RTB...@rtb.ringba.sip.telnyx.com``).

    Mapping: ``bidAmount`` -> amount; ``sipAddress`` (``sip:`` added when missing), else
    ``phoneNumber``, else ``phoneNumberNoPlus`` -> destination (SIP first: the agent dials it
    without a trunk); ``expireInSeconds`` -> expires_in, else ``bidExpireEpoch`` (ms) against
    ``now``; ``bidId`` -> bid_id; ``rejectReason`` -> a no-bid's reason. Ringba's own
    documentation is thin on the successful answer, so each field is also read in its
    snake_case spelling (``bid_amount``, ``phone_number``, ``sip_address``...), which
    integrations that re-serve Ringba's shape use.
    """
    raw = _first(answer, "bidAmount", "bid_amount")
    amount = _amount(raw)
    if amount is None:
        reason = _first(answer, "rejectReason", "reject_reason")
        return NoBid(
            "no-bid", _said(reason) if reason else "no bidAmount" if raw is None else "bidAmount 0"
        )
    sip = _first(answer, "sipAddress", "sip_address")
    phone = _first(answer, "phoneNumber", "phone_number", "phoneNumberNoPlus")
    expires = _first(answer, "expireInSeconds", "expire_in_seconds", "expiresInSeconds")
    epoch = _first(answer, "bidExpireEpoch")
    if expires is None and isinstance(epoch, int | float) and not isinstance(epoch, bool):
        expires = _seconds_until(epoch / 1000 if math.isfinite(epoch) else -1.0, now)
    return Bid(
        amount=amount,
        destination=_either(_with_scheme(sip), phone),
        expires_in=_expires_in(expires),
        bid_id=_bid_id(_first(answer, "bidId", "bid_id")),
    )


def _read_retreaver(answer: dict[str, Any], now: datetime) -> Bid | NoBid:
    """A Retreaver RTB answer, bare or wrapped in ``{"rtb": {...}}`` (a per-key choice).

    Sources: Retreaver's news "Allow RTB requests without caller_number on a postback key"
    (``{"uuid", "status": "reserved", "retreaver_payout": 90.0, "retreaver_seconds": 120,
    "inbound_number": "+18339510260", "expires_at": "2026-05-05T06:26:06.534Z"}``) and
    "Connect RTB calls over SIP" (the ``{"rtb": ...}`` shape with ``sip_address`` as
    ``<uuid>@sip.rtb.retreaver.com``, no scheme), learn.retreaver.com; rtbridge's own answer
    (docs/publisher-api.md), which adds ``{"status": "no-target", "reason": ...}``.

    Mapping: ``retreaver_payout`` -> amount (what the buyer pays for the call);
    ``sip_address`` (``sip:`` added) else ``inbound_number`` -> destination (both reach the
    same reservation; SIP needs no trunk); ``expires_at`` - ``now`` -> expires_in;
    ``uuid`` -> bid_id; ``retreaver_seconds`` -> seconds. ``status`` other than
    ``reserved``/``confirmed`` is a no-bid with its ``reason``; ``{"error": ...}`` on a 200
    is an error. Statuses beyond these three are not documented: anything else is a no-bid.
    """
    inner = answer.get("rtb")
    rtb = inner if isinstance(inner, dict) else answer
    if "error" in rtb and "retreaver_payout" not in rtb:
        return NoBid("error", _said(rtb["error"]))
    status = rtb.get("status")
    if status is not None and status not in ("reserved", "confirmed"):
        reason = rtb.get("reason")
        return NoBid("no-bid", _said(f"{status}: {reason}" if reason else status))
    amount = _amount(rtb.get("retreaver_payout"))
    if amount is None:
        return NoBid("no-bid", "retreaver_payout 0" if "retreaver_payout" in rtb else "no payout")
    expires_at = rtb.get("expires_at")
    expires = _expires_in(_seconds_until(_iso_seconds(expires_at), now)) if expires_at else None
    seconds = rtb.get("retreaver_seconds")
    return Bid(
        amount=amount,
        destination=_either(_with_scheme(rtb.get("sip_address")), rtb.get("inbound_number")),
        expires_in=expires,
        bid_id=_bid_id(rtb.get("uuid")),
        seconds=_call_seconds(seconds),
    )


# -- fields ------------------------------------------------------------------------------------


def _amount(value: Any) -> float | None:
    """The bid in cents; None for no bid (absent, null, 0); _Refused for a bad one."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Refused("bid is not a number")
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise _Refused("bid is not a number")
        number = Decimal(text)
    elif isinstance(value, int | float):
        if not math.isfinite(value):  # orjson refuses NaN, but 1e999 reads as inf
            raise _Refused("bid is not finite")
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            raise _Refused("bid is not a number") from None
    else:
        raise _Refused("bid is not a number")
    if number < 0:
        raise _Refused("negative bid")
    if number > Decimal(MAX_BID):
        raise _Refused(f"bid above {MAX_BID:g}")
    cents = number.quantize(_CENT, rounding=ROUND_HALF_UP)
    return float(cents) if cents > 0 else None


def _destination(value: Any) -> str:
    if value is None or value == "":
        raise _Refused("no destination")
    if not isinstance(value, str):
        raise _Refused("destination is not a SIP URI or E.164 number")
    text = value.strip()
    if len(text) > MAX_DESTINATION:
        raise _Refused(f"destination over {MAX_DESTINATION} characters")
    if text[:4].lower() in ("sip:", "sips"):
        return _sip_uri(text)
    try:
        return normalise_e164(text, field="destination")
    except InvalidInput:
        raise _Refused("destination is not a SIP URI or E.164 number") from None


def _sip_uri(text: str) -> str:
    match = _SIP.fullmatch(text)
    if _UNSAFE.search(text) or match is None:
        raise _Refused("destination is not a SIP URI or E.164 number")
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise _Refused("destination's port is out of range")
    scheme = match["scheme"]
    return scheme.lower() + text[len(scheme) :]


def _either(sip: Any, phone: Any) -> str:
    """The SIP destination when it is valid, else the phone number; the first one's fault
    when neither is (a buyer that sent only a bad SIP URI is told about that URI)."""
    if sip in (None, "") and phone in (None, ""):
        raise _Refused("no destination")
    if sip not in (None, ""):
        try:
            return _destination(sip)
        except _Refused:
            if phone in (None, ""):
                raise
    return _destination(phone)


def _with_scheme(value: Any) -> Any:
    """``user@host`` as ``sip:user@host`` (Ringba and Retreaver send SIP addresses bare)."""
    if isinstance(value, str) and "@" in value and ":" not in value.split("@", 1)[0]:
        return "sip:" + value.strip()
    return value


def _expires_in(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.strip()
        if not _DECIMAL.fullmatch(value):
            raise _Refused("expires_in is not a number of seconds")
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Refused("expires_in is not a number of seconds")
    seconds = math.floor(value)
    if seconds <= 0:
        raise _Refused("bid already expired")
    return min(seconds, MAX_EXPIRES_IN)


def _seconds_until(epoch_seconds: float, now: datetime) -> float:
    return epoch_seconds - now.timestamp()


def _iso_seconds(value: Any) -> float:
    if not isinstance(value, str) or len(value) > 64:
        raise _Refused("expires_at is not a time")
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Refused("expires_at is not a time") from None
    if when.tzinfo is None:
        raise _Refused("expires_at has no time zone")
    return when.timestamp()


def _call_seconds(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Refused("retreaver_seconds is not a number of seconds")
    if not 0 <= value <= MAX_EXPIRES_IN:
        raise _Refused("retreaver_seconds out of range")
    return int(value)


def _bid_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Refused("bid_id is not text")
    if len(value) > MAX_BID_ID:
        raise _Refused(f"bid_id over {MAX_BID_ID} characters")
    if _CONTROL.search(value):
        raise _Refused("bid_id has control characters")
    return value


def _first(answer: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` present with a value other than null."""
    for name in names:
        value = answer.get(name)
        if value is not None:
            return value
    return None


def _said(value: Any) -> str:
    """A bidder's own words made safe to log and store: text, control characters as ``?``,
    cut to a short line."""
    text = value if isinstance(value, str) else str(value)
    text = _CONTROL.sub("?", text).strip()
    return text[:_MAX_REASON] if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


_REQUESTS: dict[str, Callable[[BidRequest], dict[str, Any]]] = {
    "rtbridge": _rtbridge_request,
    "ringba": _ringba_request,
    "retreaver": _retreaver_request,
}
_ANSWERS: dict[str, Callable[[dict[str, Any], datetime], Bid | NoBid]] = {
    "rtbridge": _read_rtbridge,
    "ringba": _read_ringba,
    "retreaver": _read_retreaver,
}
