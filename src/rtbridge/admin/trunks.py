"""Carrier trunks: trusted by IP for PSTN arrivals, and the URI template for numbers out.

The outbound digest password is kept as HA1 for the carrier's realm, like ``apply`` does, so
changing the username or realm needs the password again. A network overlapping a publisher's
allowlist entry is refused unless ``allow_overlap`` (config/overlaps.py), as an entry
overlapping a trunk's network is (admin/publishers.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlmodel import Session, col, select

from rtbridge.admin import audit
from rtbridge.admin.changes import as_read, body, commit, merge, validating
from rtbridge.config.overlaps import (
    TRUNK,
    Claim,
    overlap_message,
    overlapping,
    unacknowledged,
)
from rtbridge.config.schema import TrunkSpec, read_trunk
from rtbridge.domain.errors import Conflict, InvalidInput, NotFound
from rtbridge.sip.auth.digest import ha1
from rtbridge.storage.models import AllowlistEntry, Buyer, Trunk
from rtbridge.timestamps import utcnow


def trunk_view(row: Trunk) -> dict[str, Any]:
    return {
        "id": row.id,
        "ips": list(row.ips),
        "uri": row.uri,
        "username": row.auth_username,
        "realm": row.auth_realm,
        "has_password": row.auth_ha1_md5 is not None,
        "allow_overlap": row.allow_overlap,
        "managed_by": row.managed_by,
    }


def _trunk(session: Session, trunk_id: str) -> Trunk:
    row = session.get(Trunk, trunk_id)
    if row is None:
        raise NotFound(f"no trunk {trunk_id!r}")
    return row


def list_trunks(session: Session) -> list[dict[str, Any]]:
    return [trunk_view(t) for t in session.exec(select(Trunk).order_by(col(Trunk.id)))]


def get_trunk(session: Session, trunk_id: str) -> dict[str, Any]:
    return trunk_view(_trunk(session, trunk_id))


def _check_overlaps(session: Session, spec: TrunkSpec, checked: Collection[str]) -> list[Claim]:
    """The publishers' live entries the trunk's networks overlap, returned for the stored
    flag and the audit trail; those of the ``checked`` networks are refused (409) unless
    acknowledged by ``allow_overlap`` on either side."""
    entries = [Claim(e.publisher_id, e.cidr, e.expires_at, e.allow_overlap)
               for e in session.exec(select(AllowlistEntry))]  # fmt: skip
    now, found, problems = utcnow(), [], []
    for cidr in spec.ips:
        others = overlapping(spec.id, cidr, entries, now, kind=TRUNK)
        refused = unacknowledged(spec.allow_overlap, others) if cidr in checked else []
        if refused:
            problems.append(overlap_message(cidr, refused, kind=TRUNK))
        found += others
    if problems:
        raise Conflict(f"ips: {'; '.join(problems)}; send allow_overlap: true to accept it anyway")
    return found


def _apply(row: Trunk, spec: TrunkSpec) -> None:
    row.ips = list(spec.ips)
    row.uri = spec.uri
    row.auth_username = spec.username
    row.auth_realm = spec.realm
    if spec.password is not None and spec.username and spec.realm:
        row.auth_ha1_md5 = ha1(spec.username, spec.realm, spec.password, "MD5")


def create_trunk(session: Session, *, actor: str, raw: Any) -> dict[str, Any]:
    """``{id, ips, uri, username?, password?, realm?}`` — the ``[[trunks]]`` table."""
    fields_ = body(raw)
    with validating():
        spec = read_trunk(fields_)
    if session.get(Trunk, spec.id) is not None:
        raise Conflict(f"id: trunk {spec.id!r} exists")
    overlaps = _check_overlaps(session, spec, spec.ips)
    row = Trunk(id=spec.id, uri=spec.uri, allow_overlap=spec.allow_overlap and bool(overlaps))
    _apply(row, spec)
    session.add(row)
    new = {**trunk_view(row), "password": spec.password}
    if overlaps:
        new["overlaps"] = _described(overlaps)
    audit.record(session, actor=actor, action="create", resource=f"trunk/{row.id}", new=new)
    commit(session)
    return trunk_view(row)


def update_trunk(session: Session, *, actor: str, trunk_id: str, raw: Any) -> dict[str, Any]:
    row = _trunk(session, trunk_id)
    old = trunk_view(row)
    patch = as_read(body(raw), row.managed_by)
    if patch.get("id", row.id) != row.id:
        raise InvalidInput("id: a trunk's id cannot change (buyers use it)")
    current = {"id": row.id, "ips": list(row.ips), "uri": row.uri,
               "username": row.auth_username, "realm": row.auth_realm,
               "allow_overlap": row.allow_overlap}  # fmt: skip
    with validating():
        spec = read_trunk(merge(current, patch))
    # The networks it did not have: an overlap accepted (or older than the rule) stays,
    # unless the acceptance itself is taken back.
    checked = spec.ips if "allow_overlap" in patch else [c for c in spec.ips if c not in row.ips]
    overlaps = _check_overlaps(session, spec, checked)
    row.allow_overlap = spec.allow_overlap and bool(overlaps)
    rebinds = (spec.username, spec.realm) != (row.auth_username, row.auth_realm)
    if spec.password is None and rebinds:
        if spec.username is None:
            row.auth_ha1_md5 = None  # outbound authentication switched off
        elif row.auth_ha1_md5 is not None:
            raise InvalidInput(
                "password: required when username or realm changes (the stored HA1 binds them)"
            )
    _apply(row, spec)
    session.add(row)
    new = trunk_view(row)
    if new != old or spec.password is not None:
        recorded: dict[str, Any] = {**new, "password": spec.password}
        if overlaps:
            recorded["overlaps"] = _described(overlaps)
        audit.record(session, actor=actor, action="update", resource=f"trunk/{row.id}", old=old,
                     new=recorded)  # fmt: skip
        commit(session)
    return new


def _described(overlaps: list[Claim]) -> str:
    return "; ".join(f"{c.owner}'s {c.cidr}" for c in overlaps)


def delete_trunk(session: Session, *, actor: str, trunk_id: str) -> None:
    row = _trunk(session, trunk_id)
    users = list(session.exec(select(Buyer.id).where(Buyer.trunk_id == row.id)))
    if users:
        raise Conflict(
            f"trunk {row.id!r} is used by buyer(s) {', '.join(users)}; change them first"
        )
    others = session.exec(select(Trunk.id).where(Trunk.id != row.id)).first()
    if others is None:
        dialers = [
            b.id
            for b in session.exec(select(Buyer).where(col(Buyer.trunk_id).is_(None)))
            if b.destination is not None and not b.destination.startswith("sip")
        ]
        if dialers:
            raise Conflict(
                f"trunk {row.id!r} is the last trunk and buyer(s) {', '.join(dialers)} dial numbers"
            )
    audit.record(
        session, actor=actor, action="delete", resource=f"trunk/{row.id}", old=trunk_view(row)
    )
    session.delete(row)
    commit(session)
