"""Reservation statuses (SPEC §3.7) and the rules about which ones hold a buyer."""

from __future__ import annotations

from datetime import datetime
from typing import Final

RESERVED: Final = "reserved"
CONFIRMED: Final = "confirmed"
CLAIMED: Final = "claimed"
CONNECTED: Final = "connected"
COMPLETED: Final = "completed"
EXPIRED: Final = "expired"
CANCELLED: Final = "cancelled"
FAILED: Final = "failed"
NO_TARGET: Final = "no-target"

# Waiting for the publisher's call: dialable, and held only until expires_at.
UNCLAIMED: Final = (RESERVED, CONFIRMED)
# A call is in progress: the buyer is held regardless of expires_at.
IN_CALL: Final = (CLAIMED, CONNECTED)
TERMINAL: Final = (COMPLETED, EXPIRED, CANCELLED, FAILED, NO_TARGET)
# Reached the buyer (or may still): what a daily cap counts.
COUNTS_TODAY: Final = (*UNCLAIMED, *IN_CALL, COMPLETED, FAILED)


def effective_status(status: str, expires_at: datetime | None, now: datetime) -> str:
    """The status a reader should see: an unclaimed reservation past its TTL is expired even
    before the sweeper has written it down."""
    if status in UNCLAIMED and expires_at is not None and expires_at <= now:
        return EXPIRED
    return status


def holds_buyer(status: str, expires_at: datetime | None, now: datetime) -> bool:
    """Whether a reservation occupies one unit of its buyer's concurrency now."""
    return status in IN_CALL or effective_status(status, expires_at, now) in UNCLAIMED
