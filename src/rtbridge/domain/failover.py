"""Failover (SPEC §4.4): how a buyer's attempt at a call ended, which failures send the call
on to the next buyer, and which final answer the publisher hears when every buyer failed.

Plain Python: the SIP agent classifies what it saw, storage records it, the router picks
the next buyer by the ping's rules (``domain/selection.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

NO_ANSWER: Final = "no-answer"  # rang past its ring timeout
BUSY: Final = "busy"  # 486 or 600
REJECTED: Final = "rejected"  # any other final answer 300-699 (a 3xx is never followed)
UNREACHABLE: Final = "unreachable"  # no answer at all within connect_timeout, or transport error
FAILOVER_KINDS: Final = (NO_ANSWER, BUSY, REJECTED, UNREACHABLE)
ANSWERED: Final = "answered"
CANCELLED: Final = "cancelled"  # the publisher gave up, or the agent stopped, while it rang
AttemptKind = Literal["no-answer", "busy", "rejected", "unreachable", "answered", "cancelled"]

TIMED_OUT: Final = 408  # the final code recorded for a buyer we stopped waiting for


@dataclass(frozen=True)
class Attempt:
    """One buyer dialled for a call, as it ended (``kind``); ``final_code`` is the buyer's
    final answer, or 408 when we stopped waiting for one (no-answer, unreachable)."""

    buyer_id: str
    destination: str
    started_at: datetime
    ended_at: datetime
    kind: AttemptKind
    final_code: int | None = None
    reason: str = ""
    provisional_at: datetime | None = None

    @property
    def failed(self) -> bool:
        return self.kind in FAILOVER_KINDS


def failure_kind(code: int) -> AttemptKind:
    """The kind of a final answer 300-699 from the buyer itself."""
    return BUSY if code in (486, 600) else REJECTED


def publisher_code(attempt: Attempt) -> int:
    """What this attempt alone would have told the publisher (SPEC §4.5): the buyer's code,
    but 480 for an auth challenge we could not meet or a redirect we do not follow (they
    describe our leg to the buyer, not the buyer), 408 for a buyer we stopped waiting for,
    and 500 for a buyer's 503 (RFC 3261 §16.7): a 503 from us means "this agent cannot take
    the call, try another", and Kamailio or an SBC would retry the used reservation there."""
    code = attempt.final_code or 0
    if attempt.kind == NO_ANSWER or (attempt.kind == UNREACHABLE and code in (0, TIMED_OUT)):
        return TIMED_OUT
    if code in (401, 407) or not 400 <= code <= 699:
        return 480
    return 500 if code == 503 else code


def best_answer(attempts: Sequence[Attempt]) -> int:
    """The final answer the publisher gets when every attempt failed, after RFC 3261
    §16.7: a 6xx first (the callee declined everywhere); then the lowest class, 4xx before
    5xx; among 4xx, 486 (busy), then 480, then the others, a timeout (408) last."""
    codes = [publisher_code(a) for a in attempts] or [480]

    def rank(code: int) -> tuple[int, int, int]:
        klass = {6: 0, 4: 1, 5: 2}.get(code // 100, 3)
        within = {486: 0, 480: 1, TIMED_OUT: 3}.get(code, 2) if klass == 1 else 0
        return klass, within, codes.index(code)

    return min(codes, key=rank)
