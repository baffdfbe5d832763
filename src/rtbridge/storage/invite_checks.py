"""What an INVITE must pass before its reservation is claimed (SPEC §3.10, §4.9): the
campaign's least STIR/SHAKEN attestation, and — for a ping that came without a caller
number — the caller rules the ping could not apply, with the INVITE's caller: its lists
(``storage/caller_lists.py``), then its buyer's duplicate rule.

A refusal ends the reservation ``failed`` with the rule's reason, its unit given back, in
one transaction; the INVITE then gets ``403`` naming the reason. The claim (``calls.claim``)
answers for reservations that cannot be claimed any more, so those pass here untouched."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from rtbridge.domain import lifecycle as st
from rtbridge.domain.attestation import REFUSED as ATTESTATION
from rtbridge.domain.attestation import meets
from rtbridge.domain.selection import REASON_BLOCKED, REASON_DUPLICATE, is_duplicate
from rtbridge.storage import caller_lists, callers
from rtbridge.storage.catalog import CampaignInfo, Catalog
from rtbridge.storage.counters import Tally
from rtbridge.storage.reservations import record_event
from rtbridge.storage.sql import Db, transaction

_ROW = (
    "SELECT expires_at, status, buyer_id, campaign_id, created_at, caller_number "
    "FROM reservation WHERE uuid = :u"
)


def needed(catalog: Catalog, caller: str | None) -> bool:
    """Is there anything to check? Not when the INVITE names no caller, no campaign asks
    for an attestation and there are no caller lists (which an anonymous caller may be on):
    then the INVITE goes straight to its claim."""
    return caller is not None or catalog.attesting or bool(catalog.lists)


def check_invite(
    engine: Engine,
    catalog: Catalog,
    *,
    uuid: str,
    caller: str | None,
    attestation: str,
    attestation_why: str | None = None,
    now: datetime,
) -> str | None:
    """The reason the INVITE of reservation ``uuid`` is refused (``attestation``,
    ``duplicate-caller``), its reservation failed; None when it may go on to its claim.
    ``caller``: the INVITE's (E.164, None when anonymous), recorded on a reservation whose
    ping had none."""
    with transaction(engine, write=True) as db:
        row = db.one(_ROW, {"u": uuid})
        if row is None or row["status"] not in st.UNCLAIMED:
            return None
        expires = db.read_ts(row["expires_at"])
        if expires is not None and expires <= now:
            return None
        campaign = catalog.campaigns.get(row["campaign_id"])
        if campaign is not None and not meets(attestation, campaign.min_attestation):
            what = attestation + (f" ({attestation_why})" if attestation_why else "")
            detail = f"{what}, below the campaign's {campaign.min_attestation}"
            return _refuse(db, row, uuid, ATTESTATION, detail, (attestation, attestation_why), now)
        if row["caller_number"] is not None:
            return None  # the ping had its caller, and applied the rules to it
        if caller is not None:
            db.execute(
                "UPDATE reservation SET caller_number = :c "
                "WHERE uuid = :u AND caller_number IS NULL",
                {"c": caller, "u": uuid},
            )
        why = _listed(db, catalog, row, caller, now) or _duplicate(db, campaign, row, caller, now)
        if why is None:
            return None
        return _refuse(db, row, uuid, why, f"{caller or 'anonymous'} at the INVITE",
                       (attestation, attestation_why), now)  # fmt: skip


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
    attestation: tuple[str, str | None],
    now: datetime,
) -> str | None:
    """End the reservation ``failed`` with reason ``why``, its unit back; None when another
    writer moved it first (its claim then answers)."""
    moved = db.execute(
        "UPDATE reservation SET status = :s, reason = :r, updated_at = :now, attestation = :a, "
        "attestation_why = :aw WHERE uuid = :u AND status = :old",
        {"s": st.FAILED, "r": why, "now": db.ts(now), "u": uuid, "old": row["status"],
         "a": attestation[0], "aw": _clip(attestation[1])},
    ).rowcount  # fmt: skip
    if moved != 1:
        return None
    tally = Tally(db)
    tally.transition(row["buyer_id"], row["created_at"], row["status"], st.FAILED)
    record_event(db, uuid, st.FAILED, now, f"{why}: {detail}"[:256])
    tally.flush()
    return why


def _clip(why: str | None) -> str | None:
    return None if why is None else why[:128]
