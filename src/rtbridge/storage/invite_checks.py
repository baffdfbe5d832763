"""What an INVITE must pass before its reservation is claimed (SPEC §3.10, §4.9): the
campaign's least STIR/SHAKEN attestation, and — for a ping that came without a caller
number — the caller rules the ping could not apply, with the INVITE's caller: its lists
(``storage/caller_lists.py``), then its buyer's duplicate rule.

A refusal ends the reservation ``failed`` with the rule's reason, its unit given back, in
one transaction; the INVITE then gets ``403`` naming the reason. The claim (``calls.claim``)
answers for reservations that cannot be claimed any more, so those pass here untouched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from rtbridge.domain import lifecycle as st
from rtbridge.domain.attestation import REFUSED as ATTESTATION
from rtbridge.domain.attestation import meets
from rtbridge.domain.numbers import is_e164
from rtbridge.domain.selection import REASON_BLOCKED, REASON_DUPLICATE, is_duplicate
from rtbridge.storage import caller_lists, callers
from rtbridge.storage.catalog import CampaignInfo, Catalog
from rtbridge.storage.counters import Tally
from rtbridge.storage.reservations import record_event
from rtbridge.storage.sql import Db, transaction

# the reasons an INVITE is refused here (each a reservation's ``failed`` reason)
INVITE_CHECKS = (REASON_BLOCKED, REASON_DUPLICATE, ATTESTATION)

_ROW = (
    "SELECT expires_at, status, buyer_id, campaign_id, created_at, caller_number, "
    "inbound_number FROM reservation WHERE uuid = :u"
)


def needed(catalog: Catalog, caller: str | None) -> bool:
    """Is there anything to check? Not when the INVITE names no caller, no campaign asks
    for an attestation and there are no caller lists (which an anonymous caller may be on):
    then the INVITE goes straight to its claim."""
    return caller is not None or catalog.attesting or bool(catalog.lists)


@dataclass(frozen=True)
class Checked:
    """What the caller rules said of an INVITE (``why``: the reason it is refused, its
    reservation failed; None: go on), and what its attestation is then held to: the number
    called (the reservation's inbound number, when E.164) and the campaign's minimum."""

    why: str | None = None
    called: str | None = None
    minimum: str | None = None


PASSED = Checked()


def check_invite(
    engine: Engine, catalog: Catalog, *, uuid: str, caller: str | None, now: datetime
) -> Checked:
    """The caller rules for the INVITE of reservation ``uuid``, in the one transaction an
    INVITE spends before its claim. ``caller``: the INVITE's (E.164, None when anonymous),
    recorded on a reservation whose ping had none and checked as the ping would have been;
    a reservation that had its caller was checked at its ping. The reservation's called
    number and minimum attestation come back for the signature's check (:func:`attested_below`),
    so that check costs no read of its own."""
    with transaction(engine, write=True) as db:
        row = db.one(_ROW, {"u": uuid})
        if row is None or row["status"] not in st.UNCLAIMED:
            return PASSED
        expires = db.read_ts(row["expires_at"])
        if expires is not None and expires <= now:
            return PASSED
        campaign = catalog.campaigns.get(row["campaign_id"])
        number = row["inbound_number"]
        facts = Checked(None, number if number and is_e164(number) else None,
                        campaign.min_attestation if campaign else None)  # fmt: skip
        if row["caller_number"] is not None:
            return facts  # the ping had its caller, and applied the rules to it
        if caller is not None:
            db.execute(
                "UPDATE reservation SET caller_number = :c "
                "WHERE uuid = :u AND caller_number IS NULL",
                {"c": caller, "u": uuid},
            )
        why = _listed(db, catalog, row, caller, now) or _duplicate(db, campaign, row, caller, now)
        detail = f"{caller or 'anonymous'} at the INVITE"
        if why is None or not _refuse(db, row, uuid, why, detail, now=now):
            return facts
        return replace(facts, why=why)


def attested_below(
    engine: Engine, *, uuid: str, attestation: str, why: str | None, minimum: str | None,
    now: datetime,
) -> bool:  # fmt: skip
    """Is the INVITE attested below its campaign's ``minimum``? Then its reservation ends
    ``failed``, reason ``attestation``, with the attestation (and why it failed) kept, its
    unit back (True: the INVITE gets 403). False also for a reservation another writer
    moved meanwhile: its claim answers."""
    if meets(attestation, minimum):
        return False
    with transaction(engine, write=True) as db:
        row = db.one(_ROW, {"u": uuid})
        if row is None or row["status"] not in st.UNCLAIMED:
            return False
        what = attestation + (f" ({why})" if why else "")
        return _refuse(db, row, uuid, ATTESTATION, f"{what}, below the campaign's {minimum}",
                       (attestation, why), now=now)  # fmt: skip


def _listed(
    db: Db, catalog: Catalog, row: Mapping[str, Any], caller: str | None, now: datetime
) -> str | None:
    """``blocked-caller`` when the caller lists of the reservation's campaign and buyer
    refuse ``caller`` (None: anonymous)."""
    lists = catalog.lists
    if not row["buyer_id"] or not lists.concern(row["campaign_id"]):
        return None
    found = caller_lists.matched(caller_lists.of(db, lists, caller), caller, now)
    return (
        REASON_BLOCKED if lists.refuses_call(found, row["campaign_id"], row["buyer_id"]) else None
    )


def _duplicate(
    db: Db, campaign: CampaignInfo | None, row: Mapping[str, Any], caller: str | None,
    now: datetime,
) -> str | None:  # fmt: skip
    """The reservation's buyer's duplicate rule, applied to the INVITE's caller as the ping
    would have (``storage/callers.py``); an anonymous caller is nobody's duplicate."""
    buyer = campaign.buyer(row["buyer_id"]) if campaign and row["buyer_id"] else None
    if caller is None or buyer is None or not buyer.rule.duplicate_window:
        return None
    rule = buyer.rule
    last = callers.last(callers.of(db, caller, rule.id), caller, rule.id, rule.duplicate_after)
    return REASON_DUPLICATE if is_duplicate(rule, last, now) else None


def _refuse(
    db: Db,
    row: Mapping[str, Any],
    uuid: str,
    why: str,
    detail: str,
    attestation: tuple[str | None, str | None] = (None, None),
    *,
    now: datetime,
) -> bool:
    """End the reservation ``failed`` with reason ``why``, its unit back; False when another
    writer moved it first (its claim then answers)."""
    moved = db.execute(
        "UPDATE reservation SET status = :s, reason = :r, updated_at = :now, attestation = :a, "
        "attestation_why = :aw WHERE uuid = :u AND status = :old",
        {"s": st.FAILED, "r": why, "now": db.ts(now), "u": uuid, "old": row["status"],
         "a": attestation[0], "aw": _clip(attestation[1])},
    ).rowcount  # fmt: skip
    if moved != 1:
        return False
    tally = Tally(db)
    tally.transition(row["buyer_id"], row["created_at"], row["status"], st.FAILED)
    record_event(db, uuid, st.FAILED, now, f"{why}: {detail}"[:256])
    tally.flush()
    return True


def _clip(why: str | None) -> str | None:
    return None if why is None else why[:128]
