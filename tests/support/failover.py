"""A call that fails over, written as the SIP agent writes it (``storage/calls.py``,
``storage/attempts.py``): the claim, each failed buyer recorded and the reservation moved
to the next buyer of the campaign, then the end of the call with its last attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from rtbridge.admin import offers
from rtbridge.admin.changes import write_session
from rtbridge.domain.failover import Attempt, AttemptKind
from rtbridge.storage import attempts, calls
from rtbridge.storage.catalog import load_catalog

SOURCE = "198.51.100.7:5060/UDP"
# deploy/demo.toml's campaign "auto" has acme (priority 1, payout 90); these come after it
BACKUPS = {"zenith": "sip:zenith@127.0.0.1:5072", "bolt": "sip:bolt@127.0.0.1:5073"}


def add_backup_buyers(engine: Engine) -> None:
    """The demo campaign's next buyers, in this order, paying what acme pays."""
    for priority, (buyer, destination) in enumerate(BACKUPS.items(), start=2):
        with write_session(engine) as session:
            offers.create_buyer(session, actor="test", raw={
                "campaign": "auto", "id": buyer, "destination": destination, "payout": 90.0,
                "seconds": 60, "priority": priority,
            })  # fmt: skip


@dataclass(frozen=True)
class Failure:
    """How one buyer failed the call."""

    kind: AttemptKind
    code: int
    reason: str


BUSY = Failure("busy", 486, "Busy Here")
NO_ANSWER = Failure("no-answer", 408, "Request Timeout")


@dataclass
class Made:
    """What the call wrote: its attempts in order (the failed ones, then the last)."""

    uuid: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def buyers(self) -> list[str]:
        return [a.buyer_id for a in self.attempts]


def call_with_failover(
    engine: Engine, *, uuid: str, publisher: str, now: datetime, failures: list[Failure],
    answered: bool = True, talk: float = 130.0,
) -> Made:  # fmt: skip
    """Claim ``uuid``, fail its buyers in turn with ``failures`` (each moving the call on),
    then the last buyer answers and the call lasts ``talk`` seconds — or, not
    ``answered``, that buyer is busy too and the call fails."""
    claimed = calls.claim(engine, uuid=uuid, publisher_id=publisher, now=now, agent="t",
                          source=SOURCE)  # fmt: skip
    assert isinstance(claimed, calls.Claimed), claimed
    catalog = load_catalog(engine)
    made = Made(uuid)
    buyer, at = claimed.buyer_id, now

    def attempt(kind: AttemptKind, code: int, reason: str, lasted: float = 2.0) -> Attempt:
        info = next(b for c in catalog.campaigns.values() if (b := c.buyer(buyer)) is not None)
        return Attempt(buyer, info.destination, started_at=at,
                       ended_at=at + timedelta(seconds=lasted), kind=kind, final_code=code,
                       reason=reason, provisional_at=at + timedelta(milliseconds=120))  # fmt: skip

    for failure in failures:
        failed = attempt(failure.kind, failure.code, failure.reason)
        made.attempts.append(failed)
        moved = attempts.fail_over(engine, catalog, uuid=uuid, failed=failed,
                                   tried=made.buyers, now=failed.ended_at)  # fmt: skip
        assert moved.buyer is not None, moved.why
        buyer, at = moved.buyer.rule.id, failed.ended_at + timedelta(milliseconds=5)
    if not answered:
        last = attempt(BUSY.kind, BUSY.code, BUSY.reason)
        made.attempts.append(last)
        calls.ended(engine, uuid=uuid, answer_at=None, end_at=last.ended_at, publisher_code=486,
                    buyer_code=486, hangup_by=None, duration=0.0, detail="Busy Here",
                    attempts=[last])  # fmt: skip
        return made
    last = attempt("answered", 200, "OK", lasted=1.0)  # an answer ends the attempt
    made.attempts.append(last)
    answer_at = last.ended_at
    calls.answered(engine, uuid=uuid, at=answer_at)
    calls.ended(engine, uuid=uuid, answer_at=answer_at, end_at=answer_at + timedelta(seconds=talk),
                publisher_code=200, buyer_code=200, hangup_by="publisher", duration=talk,
                attempts=[last])  # fmt: skip
    return made
