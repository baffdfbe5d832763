"""What an RTB buyer answered one ping (SPEC §3.5): asked by ``bidding/`` before the ping
joins its batch, weighed by the auction in ``storage/reservations.py``, kept as a ``bid``
row."""

from __future__ import annotations

from dataclasses import dataclass

# An answer's outcome before the auction; the auction makes a "bid" into won or lost.
BID, NO_BID, TIMEOUT, ERROR, INVALID = "bid", "no-bid", "timeout", "error", "invalid"
WON, LOST = "won", "lost"
OUTCOMES = (WON, LOST, NO_BID, TIMEOUT, ERROR, INVALID)  # a bid row's, once the auction is over


@dataclass(frozen=True, slots=True)
class BidAnswer:
    outcome: str  # BID, NO_BID, TIMEOUT, ERROR or INVALID
    latency_ms: float | None  # until the answer; None: none came (a timeout)
    reason: str | None = None  # why it is not a bid ("HTTP 500", "negative bid"…)
    amount: float | None = None  # a bid's
    destination: str | None = None  # a bid's: a SIP URI or an E.164 number
    expires_in: int | None = None  # a bid's, seconds
    bid_id: str | None = None
    seconds: int | None = None  # a bid's required call length, when its format says one


def publisher_payout(amount: float, share: float) -> float:
    """The publisher's part of a winning bid: ``amount x share``, rounded down to the cent
    (a publisher is never quoted more than the buyer's share allows)."""
    cents = int(round(amount * 100, 6) * share + 1e-9)
    return cents / 100
