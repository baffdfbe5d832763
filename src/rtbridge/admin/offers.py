"""The buyer side and the keys publishers ping with: campaigns, buyers, DID pools, keys.

A postback key is a bearer secret: stored as its digest under the site key
(``storage/sitekey.py``), shown in clear once (in the answer that creates it), listed by its
4-character hint.

An RTB buyer's ``bid_headers`` are secrets rtbridge must send again, so they are sealed under
the site key instead (``storage/sealed.py``) and write-only: a view names them with their
values masked (``{"Authorization": "***"}``), a PATCH without them keeps them, and a masked
value sent back as read keeps the stored one (the view is the request's shape)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from rtbridge.admin import audit
from rtbridge.admin.changes import as_read, body, commit, merge, validating
from rtbridge.config import fields as f
from rtbridge.config.schema import (
    BuyerSpec,
    CampaignSpec,
    key_hint,
    read_buyer,
    read_campaign,
    read_field,
    read_key,
)
from rtbridge.domain.errors import Conflict, InvalidInput, NotFound
from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.sip.announcements import read_announcement
from rtbridge.storage import sitekey
from rtbridge.storage.models import Buyer, Campaign, DidNumber, PostbackKey, Publisher, Trunk
from rtbridge.storage.sealed import BID_HEADERS, SealError, seal_json, unseal_json

# -- campaigns --------------------------------------------------------------------------------


def _campaign_row(session: Session, campaign_id: str) -> Campaign:
    row = session.get(Campaign, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    return row


def list_campaigns(session: Session) -> list[dict[str, Any]]:
    return [
        get_campaign(session, c.id)
        for c in session.exec(select(Campaign).order_by(col(Campaign.id)))
    ]


def campaign_settings(row: Campaign) -> dict[str, Any]:
    """A campaign's own fields (its pool and buyers are rows of their own). A row stored
    without failover (NULL) has the default, all four kinds, as the catalog reads it."""
    failover = list(FAILOVER_KINDS) if row.failover is None else list(row.failover)
    return {"id": row.id, "failover": failover, "max_attempts": row.max_attempts,
            "bid_deadline_ms": row.bid_deadline_ms, "publisher_share": row.publisher_share,
            "min_bid": row.min_bid, "duplicate_window": row.duplicate_window,
            "duplicate_after": row.duplicate_after, "min_attestation": row.min_attestation,
            "record": row.record, "record_announcement": row.record_announcement}  # fmt: skip


def get_campaign(session: Session, campaign_id: str) -> dict[str, Any]:
    row = _campaign_row(session, campaign_id)
    numbers = session.exec(
        select(DidNumber.number)
        .where(DidNumber.campaign_id == row.id)
        .order_by(col(DidNumber.number))
    )
    buyers = session.exec(
        select(Buyer.id).where(Buyer.campaign_id == row.id).order_by(col(Buyer.id))
    )
    return {**campaign_settings(row), "numbers": list(numbers), "buyers": list(buyers),
            "managed_by": row.managed_by}  # fmt: skip


def _campaign_values(spec: CampaignSpec) -> dict[str, Any]:
    return {"failover": list(spec.failover), "max_attempts": spec.max_attempts,
            "bid_deadline_ms": spec.bid_deadline_ms, "publisher_share": spec.publisher_share,
            "min_bid": spec.min_bid, "duplicate_window": spec.duplicate_window,
            "duplicate_after": spec.duplicate_after, "min_attestation": spec.min_attestation,
            "record": spec.record, "record_announcement": spec.record_announcement}  # fmt: skip


def create_campaign(session: Session, *, actor: str, raw: Any) -> dict[str, Any]:
    """``{id, numbers?, failover?, max_attempts?, bid_deadline_ms?, publisher_share?,
    min_bid?, duplicate_window?, duplicate_after?, min_attestation?, record?,
    record_announcement?, buyers?}`` — the ``[[campaigns]]`` table of the file."""
    with validating():
        spec = read_campaign(body(raw))
    if session.get(Campaign, spec.id) is not None:
        raise Conflict(f"id: campaign {spec.id!r} exists")
    check_announcement(spec.record_announcement)
    for i, buyer in enumerate(spec.buyers):
        check_announcement(buyer.record_announcement, where=f"buyers[{i}].record_announcement")
    row = Campaign(id=spec.id, **_campaign_values(spec))
    session.add(row)
    audit.record(session, actor=actor, action="create", resource=f"campaign/{spec.id}",
                 new=campaign_settings(row))  # fmt: skip
    session.flush()
    for number in spec.numbers:
        _add_did(session, actor, spec.id, number)
    for buyer in spec.buyers:
        _check_buyer(session, buyer, None)
        made = Buyer(**buyer_row(buyer, bid_headers=seal_headers(session, buyer.bid_headers)))
        session.add(made)
        audit.record(session, actor=actor, action="create", resource=f"buyer/{buyer.id}",
                     new=_audited(buyer_view(session, made)))  # fmt: skip
    commit(session)
    return get_campaign(session, spec.id)


def update_campaign(session: Session, *, actor: str, campaign_id: str, raw: Any) -> dict[str, Any]:
    """``{failover?, max_attempts?, bid_deadline_ms?, publisher_share?, min_bid?,
    duplicate_window?, duplicate_after?, min_attestation?, record?, record_announcement?}``:
    the campaign's own settings; ``null`` resets one. Its pool and its buyers have their own
    routes (``/admin/dids``, ``/admin/buyers``)."""
    row = _campaign_row(session, campaign_id)
    patch = as_read(dict(body(raw)), row.managed_by)
    if patch.get("id", row.id) != row.id:
        raise InvalidInput("id: a campaign's id cannot change (keys and reservations use it)")
    for name, route in (("numbers", "/admin/dids"), ("buyers", "/admin/buyers")):
        if name in patch:
            raise InvalidInput(f"{name}: not changed here; use {route}")
    old = campaign_settings(row)
    with validating():
        spec = read_campaign(merge(old, patch))
    check_announcement(spec.record_announcement, stored=row.record_announcement)
    for name, value in _campaign_values(spec).items():
        setattr(row, name, value)
    session.add(row)
    new = campaign_settings(row)
    if new != old:
        audit.record(session, actor=actor, action="update", resource=f"campaign/{row.id}",
                     old=old, new=new)  # fmt: skip
        commit(session)
    return get_campaign(session, row.id)


def delete_campaign(session: Session, *, actor: str, campaign_id: str) -> None:
    """Removes its buyers and DIDs too; refused while keys use it."""
    row = _campaign_row(session, campaign_id)
    keys = list(session.exec(select(PostbackKey).where(PostbackKey.campaign_id == row.id)))
    if keys:
        hints = ", ".join(k.hint for k in keys)
        raise Conflict(
            f"campaign {row.id!r} still has {len(keys)} key(s) ({hints}); delete them first"
        )
    for buyer in session.exec(select(Buyer).where(Buyer.campaign_id == row.id)):
        audit.record(
            session,
            actor=actor,
            action="delete",
            resource=f"buyer/{buyer.id}",
            old=_audited(buyer_view(session, buyer)),
        )
        session.delete(buyer)
    for did in session.exec(select(DidNumber).where(DidNumber.campaign_id == row.id)):
        audit.record(session, actor=actor, action="delete", resource=f"did/{did.number}",
                     old={"number": did.number, "campaign": row.id})  # fmt: skip
        session.delete(did)
    session.flush()
    audit.record(session, actor=actor, action="delete", resource=f"campaign/{row.id}",
                 old=campaign_settings(row))  # fmt: skip
    session.delete(row)
    commit(session)


# -- buyers -----------------------------------------------------------------------------------


def buyer_view(session: Session, row: Buyer) -> dict[str, Any]:
    """A buyer as the API, CLI and console show it: its bid headers by name, values masked."""
    return {
        "id": row.id, "campaign": row.campaign_id, "destination": row.destination,
        "payout": row.payout, "revenue": row.revenue, "seconds": row.seconds,
        "concurrency": row.concurrency,
        "daily_cap": row.daily_cap, "priority": row.priority, "weight": row.weight,
        "hours": row.hours, "filters": row.filters, "trunk": row.trunk_id, "srtp": row.srtp,
        "media_networks": list(row.media_networks), "ring_timeout": row.ring_timeout,
        "connect_timeout": row.connect_timeout, "bid_url": row.bid_url,
        "bid_format": row.bid_format,
        "bid_headers": dict.fromkeys(opened_headers(session, row.bid_headers), MASKED),
        "hide_caller": row.hide_caller, "duplicate_window": row.duplicate_window,
        "duplicate_after": row.duplicate_after, "record": row.record,
        "record_announcement": row.record_announcement, "managed_by": row.managed_by,
    }  # fmt: skip


def buyer_row(b: BuyerSpec, *, bid_headers: str | None = None) -> dict[str, Any]:
    """A buyer's row as the file or a request spells it (``apply`` adds ``managed_by``);
    ``bid_headers`` already sealed (:func:`seal_headers`)."""
    return {
        "id": b.id, "campaign_id": b.campaign, "destination": b.destination, "payout": b.payout,
        "revenue": b.revenue, "seconds": b.seconds, "concurrency": b.concurrency, "daily_cap": b.daily_cap,
        "priority": b.priority, "weight": b.weight, "hours": b.hours, "filters": b.filters,
        "trunk_id": b.trunk, "srtp": b.srtp, "media_networks": list(b.media_networks),
        "ring_timeout": b.ring_timeout, "connect_timeout": b.connect_timeout,
        "bid_url": b.bid_url, "bid_format": b.bid_format, "bid_headers": bid_headers,
        "hide_caller": b.hide_caller, "duplicate_window": b.duplicate_window,
        "duplicate_after": b.duplicate_after, "record": b.record,
        "record_announcement": b.record_announcement,
    }  # fmt: skip


def check_announcement(
    path: str | None, *, stored: str | None = None, where: str = "record_announcement"
) -> None:
    """A recording notice named here must be one the agent can play: an absolute path to a
    mono PCM16 WAV of at most 30 s (``sip/announcements.py``), else 422 in its words. One
    left as stored is not read again: the agent checks it each time it plays it."""
    if path is None or path == stored:
        return
    try:
        read_announcement(path)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


# -- an RTB buyer's sealed headers ------------------------------------------------------------

MASKED = "***"  # a bid header's value as every view shows it (audit.REDACTED's spelling)
# A name of a header that is stored but does not open under this site key (a damaged value):
# shown so that the buyer's page says so; not a header name, so it cannot be sent back.
UNREADABLE = "(unreadable)"


def seal_headers(
    session: Session, headers: Mapping[str, str], current: str | None = None
) -> str | None:
    """Bid headers sealed under the site key; ``current`` itself when it holds the same
    headers (a new nonce would look like a change), None when there are none."""
    if not headers:
        return None
    site = sitekey.of(session)
    return seal_json(site, dict(headers), purpose=BID_HEADERS, current=current)


def opened_headers(session: Session, sealed: str | None) -> dict[str, str]:
    """Stored bid headers in clear ({} when none; ``{UNREADABLE: MASKED}`` when they do not
    open), for a view's names and a change's merge: never shown unmasked."""
    if not sealed:
        return {}
    try:
        opened = unseal_json(sitekey.of(session), sealed, purpose=BID_HEADERS)
    except (SealError, ValueError):
        return {UNREADABLE: MASKED}
    return dict(opened) if isinstance(opened, dict) else {UNREADABLE: MASKED}


def headers_as_read(value: Any, stored: dict[str, str]) -> Any:
    """``bid_headers`` with each masked value (``"***"``, as a view shows it) put back to
    the stored one: a view sent back as read — to the API, or written into the file —
    changes nothing. Anything else is left to the schema's rule."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, text in value.items():
        if text != MASKED:
            continue
        if name not in stored or stored[name] == MASKED:
            raise InvalidInput(
                f"bid_headers: {name}: {MASKED} stands for the stored value, and none is "
                "stored (or it does not open); send the value"
            )
        out[name] = stored[name]
    return out


def _audited(view: dict[str, Any]) -> dict[str, Any]:
    """A buyer view for the audit trail: headers redacted there (audit.py), and none as null
    rather than a "***" that would say a secret was set."""
    return {**view, "bid_headers": view["bid_headers"] or None}


# Fields that one kind of buyer has and the other has not (config/schema.py
# Buyer._static_or_bidding).
_STATIC_ONLY = ("destination", "payout", "revenue")
_BIDDING_ONLY = ("bid_headers", "hide_caller")


def _check_turn(row: Buyer, merged: dict[str, Any], patch: dict[str, Any]) -> None:
    """A PATCH that makes a static buyer bid, or a bidding one static, clears what only the
    other kind has. The schema would refuse the stored values, which the PATCH did not
    send, in words about the whole buyer; this names them."""
    if row.bid_url is None and merged.get("bid_url") is not None:
        kept = [n for n in _STATIC_ONLY if n not in patch and merged.get(n) is not None]
        why = ("a buyer with bid_url has no destination, payout or revenue (each bid brings "
               "its destination, and its amount is the revenue)")  # fmt: skip
    elif row.bid_url is not None and merged.get("bid_url") is None:
        kept = [n for n in _BIDDING_ONLY if n not in patch and merged.get(n)]
        why = "a buyer without bid_url has no bid_headers or hide_caller"
    else:
        return
    if kept:  # in words for every surface: null in the API, --reset in the CLI, a box here
        raise InvalidInput(f"bid_url: {why}: clear {' and '.join(kept)} in the same change")


def _buyer(session: Session, buyer_id: str) -> Buyer:
    row = session.get(Buyer, buyer_id)
    if row is None:
        raise NotFound(f"no buyer {buyer_id!r}")
    return row


def _check_buyer(session: Session, spec: BuyerSpec, current: Buyer | None) -> None:
    """The file's cross-checks (``campaigns[i].buyers[j].trunk: no trunk 'x'``), against the
    database instead of the rest of the file."""
    if current is None and session.get(Buyer, spec.id) is not None:
        raise Conflict(f"id: buyer {spec.id!r} exists")
    trunks = set(session.exec(select(Trunk.id)))
    if spec.trunk is not None and spec.trunk not in trunks:
        raise InvalidInput(f"trunk: no trunk {spec.trunk!r}")
    dials_number = spec.destination is not None and not spec.destination.startswith("sip")
    if dials_number and spec.trunk is None and not trunks:
        raise InvalidInput("destination: a phone number needs a trunk; add [[trunks]]")


def list_buyers(session: Session, campaign_id: str | None = None) -> list[dict[str, Any]]:
    query = select(Buyer).order_by(col(Buyer.id))
    if campaign_id is not None:
        query = query.where(Buyer.campaign_id == campaign_id)
    return [buyer_view(session, b) for b in session.exec(query)]


def get_buyer(session: Session, buyer_id: str) -> dict[str, Any]:
    return buyer_view(session, _buyer(session, buyer_id))


def _campaign_field(session: Session, raw: dict[str, Any]) -> str:
    with validating():
        campaign = read_field("campaign", f.identifier, raw.get("campaign"))
    if session.get(Campaign, campaign) is None:
        raise InvalidInput(f"campaign: no campaign {campaign!r}")
    return campaign


def create_buyer(session: Session, *, actor: str, raw: Any) -> dict[str, Any]:
    """``{campaign, id, destination, payout, seconds, ...}`` — ``[[campaigns.buyers]]``; an
    RTB buyer has ``bid_url`` (and ``bid_format``, ``bid_headers``, ``hide_caller``) instead
    of ``destination`` and ``payout``."""
    fields_ = dict(body(raw))
    campaign = _campaign_field(session, fields_)
    fields_.pop("campaign")
    if "bid_headers" in fields_:  # "***" (a view's) stands for a stored value: none yet
        fields_["bid_headers"] = headers_as_read(fields_["bid_headers"], {})
    with validating():
        spec = read_buyer(fields_, campaign=campaign)
    _check_buyer(session, spec, None)
    check_announcement(spec.record_announcement)
    row = Buyer(**buyer_row(spec, bid_headers=seal_headers(session, spec.bid_headers)))
    session.add(row)
    audit.record(session, actor=actor, action="create", resource=f"buyer/{spec.id}",
                 new=_audited(buyer_view(session, row)))  # fmt: skip
    commit(session)
    return get_buyer(session, spec.id)


def update_buyer(session: Session, *, actor: str, buyer_id: str, raw: Any) -> dict[str, Any]:
    """The fields given, merged over the stored buyer and validated whole; ``null`` resets
    one. ``bid_headers`` replaces them all (``null``: none); left out, they are kept."""
    row = _buyer(session, buyer_id)
    old, sealed = buyer_view(session, row), row.bid_headers
    current = {k: v for k, v in old.items() if k not in ("campaign", "managed_by")}
    current["bid_headers"] = stored = opened_headers(session, row.bid_headers)
    for name in ("filters", "bid_headers"):
        if not current[name]:
            current.pop(name)
    patch = as_read(dict(body(raw)), row.managed_by)
    campaign = _campaign_field(session, patch) if "campaign" in patch else row.campaign_id
    patch.pop("campaign", None)
    if patch.get("id", row.id) != row.id:
        raise InvalidInput("id: a buyer's id cannot change (reservations use it)")
    if "bid_headers" in patch:
        patch["bid_headers"] = headers_as_read(patch["bid_headers"], stored)
    elif UNREADABLE in stored:
        raise InvalidInput("bid_headers: the stored ones do not open under this site key; "
                           "send them again (or null)")  # fmt: skip
    merged = merge(current, patch)
    _check_turn(row, merged, patch)
    with validating():
        spec = read_buyer(merged, campaign=campaign)
    _check_buyer(session, spec, row)
    check_announcement(spec.record_announcement, stored=row.record_announcement)
    headers = seal_headers(session, spec.bid_headers, sealed)  # unchanged: the same seal
    for name, value in buyer_row(spec, bid_headers=headers).items():
        setattr(row, name, value)
    session.add(row)
    new = buyer_view(session, row)
    if new != old or row.bid_headers != sealed:  # a header's value alone: only its seal moved
        audit.record(session, actor=actor, action="update", resource=f"buyer/{row.id}",
                     old=_audited(old), new=_audited(new))  # fmt: skip
        commit(session)
    return new


def delete_buyer(session: Session, *, actor: str, buyer_id: str) -> None:
    row = _buyer(session, buyer_id)
    audit.record(session, actor=actor, action="delete", resource=f"buyer/{row.id}",
                 old=_audited(buyer_view(session, row)))  # fmt: skip
    session.delete(row)
    commit(session)


# -- DID numbers ------------------------------------------------------------------------------


def list_dids(session: Session, campaign_id: str | None = None) -> list[dict[str, Any]]:
    query = select(DidNumber).order_by(col(DidNumber.number))
    if campaign_id is not None:
        query = query.where(DidNumber.campaign_id == campaign_id)
    return [did_view(d) for d in session.exec(query)]


def did_view(row: DidNumber) -> dict[str, Any]:
    return {"number": row.number, "campaign": row.campaign_id, "managed_by": row.managed_by}


def _add_did(session: Session, actor: str, campaign_id: str, number: str) -> DidNumber:
    other = session.get(DidNumber, number)
    if other is not None:
        raise Conflict(f"number: DID {number} is in campaign {other.campaign_id!r}'s pool")
    row = DidNumber(number=number, campaign_id=campaign_id)
    session.add(row)
    audit.record(session, actor=actor, action="create", resource=f"did/{number}",
                 new={"number": number, "campaign": campaign_id})  # fmt: skip
    return row


def add_did(session: Session, *, actor: str, raw: Any) -> dict[str, Any]:
    """``{number, campaign}``: one more number in a campaign's pool."""
    fields_ = body(raw)
    unknown = sorted(set(fields_) - {"number", "campaign"})
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field")
    with validating():
        number = read_field("number", f.e164, fields_.get("number"))
    campaign = _campaign_field(session, fields_)
    row = _add_did(session, actor, campaign, number)
    commit(session)
    return did_view(row)


def remove_did(session: Session, *, actor: str, number: str) -> None:
    row = session.get(DidNumber, number)
    if row is None:
        raise NotFound(f"no DID {number!r}")
    audit.record(session, actor=actor, action="delete", resource=f"did/{number}",
                 old={"number": number, "campaign": row.campaign_id})  # fmt: skip
    session.delete(row)
    commit(session)


# -- keys -------------------------------------------------------------------------------------

# Stands in for the key when an existing key's settings are re-validated: the key itself is
# not stored, and cannot change (a new key is a new secret: create it, then delete the old).
_STORED = "stored-key-unchanged"


def key_view(row: PostbackKey) -> dict[str, Any]:
    return {
        "id": row.id, "hint": row.hint, "publisher": row.publisher_id, "campaign": row.campaign_id,
        "allow_missing_caller_number": row.allow_missing_caller_number,
        "inbound_number": row.inbound_number, "ttl_seconds": row.ttl_seconds,
        "auto_confirm": row.auto_confirm, "response_root": row.response_root, "paused": row.paused,
        "recordings": row.recordings,
    }  # fmt: skip


def _key(session: Session, key_id: str) -> PostbackKey:
    row = session.get(PostbackKey, key_id)
    if row is None:
        raise NotFound(f"no key {key_id!r} (use the id from GET /admin/keys)")
    return row


def list_keys(session: Session) -> list[dict[str, Any]]:
    query = select(PostbackKey).order_by(col(PostbackKey.publisher_id), col(PostbackKey.hint))
    return [key_view(k) for k in session.exec(query)]


def get_key(session: Session, key_id: str) -> dict[str, Any]:
    return key_view(_key(session, key_id))


def _key_values(session: Session, raw: dict[str, Any]) -> dict[str, Any]:
    with validating():
        spec = read_key(raw)
    if session.get(Publisher, spec.publisher) is None:
        raise InvalidInput(f"publisher: no publisher {spec.publisher!r}")
    if session.get(Campaign, spec.campaign) is None:
        raise InvalidInput(f"campaign: no campaign {spec.campaign!r}")
    return {
        "publisher_id": spec.publisher, "campaign_id": spec.campaign,
        "allow_missing_caller_number": spec.allow_missing_caller_number,
        "inbound_number": spec.inbound_number, "ttl_seconds": spec.ttl_seconds,
        "auto_confirm": spec.auto_confirm, "response_root": spec.response_root, "paused": spec.paused,
        "recordings": spec.recordings,
    }  # fmt: skip


def create_key(session: Session, *, actor: str, raw: Any) -> dict[str, Any]:
    """``{key?, publisher, campaign, ...settings}`` — ``[[keys]]``; without ``key`` a random
    one is made. The answer is the only place the key appears in clear."""
    fields_ = dict(body(raw))
    key = fields_.setdefault("key", str(uuid.uuid4()))
    values = _key_values(session, fields_)
    key_id = sitekey.of(session).digest(sitekey.KEY, str(key))
    if session.get(PostbackKey, key_id) is not None:
        raise Conflict("key: this key exists")
    row = PostbackKey(id=key_id, hint=key_hint(str(key)), **values)
    session.add(row)
    audit.record(session, actor=actor, action="create", resource=f"key/{row.hint}",
                 new={**key_view(row), "key": key})  # fmt: skip
    commit(session)
    return {**key_view(row), "key": key}


def update_key(session: Session, *, actor: str, key_id: str, raw: Any) -> dict[str, Any]:
    row = _key(session, key_id)
    patch = body(raw)
    if "key" in patch or "id" in patch or "hint" in patch:
        raise InvalidInput("key: a key cannot change; create a new key, then delete this one")
    old = key_view(row)
    current = {k: v for k, v in old.items() if k not in ("id", "hint")}
    values = _key_values(session, {**merge(current, patch), "key": _STORED})
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
    new = key_view(row)
    if new != old:
        audit.record(
            session, actor=actor, action="update", resource=f"key/{row.hint}", old=old, new=new
        )
        commit(session)
    return new


def delete_key(session: Session, *, actor: str, key_id: str) -> None:
    row = _key(session, key_id)
    audit.record(
        session, actor=actor, action="delete", resource=f"key/{row.hint}", old=key_view(row)
    )
    session.delete(row)
    commit(session)
