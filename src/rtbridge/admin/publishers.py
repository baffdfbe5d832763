"""Publishers and who may send calls as them: IP allowlist entries and SIP credentials.

Passwords are hashed to HA1 for the current SIP domain (the digest realm) as soon as they
arrive and are never stored, returned or written to the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from rtbridge.admin import audit
from rtbridge.admin.changes import as_read, body, commit, merge, validating
from rtbridge.config.overlaps import (
    PUBLISHER,
    Claim,
    expiry_problem,
    overlap_message,
    overlapping,
    trunk_claims,
    unacknowledged,
)
from rtbridge.config.schema import IpSpec, read_credential, read_ip, read_publisher
from rtbridge.domain.errors import Conflict, InvalidInput, NotFound
from rtbridge.sip.auth.digest import ha1
from rtbridge.storage.catalog import DEFAULT_SIP_DOMAIN, DOMAIN_SETTING
from rtbridge.storage.models import (
    AllowlistEntry,
    PostbackKey,
    Publisher,
    Setting,
    SipCredential,
    Trunk,
)
from rtbridge.timestamps import utcnow


def realm(session: Session) -> str:
    """The digest realm credentials are hashed for: the SIP domain (SPEC §4.2)."""
    row = session.get(Setting, DOMAIN_SETTING)
    return row.value if row else DEFAULT_SIP_DOMAIN


# -- views ------------------------------------------------------------------------------------


def ip_view(row: AllowlistEntry, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return {
        "id": row.id,
        "publisher": row.publisher_id,
        "cidr": row.cidr,
        "note": row.note,
        "expires_at": row.expires_at,
        "expired": row.expires_at is not None and row.expires_at <= now,
        "allow_overlap": row.allow_overlap,
        "managed_by": row.managed_by,
    }


def _publisher_row(session: Session, publisher_id: str) -> Publisher:
    row = session.get(Publisher, publisher_id)
    if row is None:
        raise NotFound(f"no publisher {publisher_id!r}")
    return row


def _settings(row: Publisher) -> dict[str, Any]:
    """The publisher's own fields (its entries, credentials and keys live elsewhere)."""
    return {"id": row.id, "name": row.name, "require_tls": row.require_tls,
            "require_srtp": row.require_srtp, "media_networks": list(row.media_networks)}  # fmt: skip


def list_publishers(session: Session) -> list[dict[str, Any]]:
    return [{**_settings(p), "managed_by": p.managed_by}
            for p in session.exec(select(Publisher).order_by(col(Publisher.id)))]  # fmt: skip


def get_publisher(session: Session, publisher_id: str) -> dict[str, Any]:
    row = _publisher_row(session, publisher_id)
    keys = session.exec(select(PostbackKey).where(PostbackKey.publisher_id == row.id))
    return {
        **_settings(row),
        "managed_by": row.managed_by,
        "ips": list_ips(session, row.id),
        "credentials": list_credentials(session, row.id),
        "keys": [{"id": k.id, "hint": k.hint, "campaign": k.campaign_id} for k in keys],
    }


# -- publishers -------------------------------------------------------------------------------


def create_publisher(session: Session, *, actor: str, raw: Any) -> dict[str, Any]:
    """``{id, name?, ips?, credentials?}`` — the ``[[publishers]]`` table of the file."""
    with validating():
        spec = read_publisher(body(raw))
    if session.get(Publisher, spec.id) is not None:
        raise Conflict(f"id: publisher {spec.id!r} exists")
    seen: set[str] = set()
    for c in spec.credentials:
        if c.username in seen:
            raise InvalidInput(f"credentials: duplicate SIP username {c.username!r}")
        seen.add(c.username)
    row = Publisher(id=spec.id, name=spec.name, require_tls=spec.require_tls,
                    require_srtp=spec.require_srtp, media_networks=list(spec.media_networks))  # fmt: skip
    session.add(row)
    audit.record(session, actor=actor, action="create", resource=f"publisher/{spec.id}",
                 new=_settings(row))  # fmt: skip
    session.flush()
    for ip in spec.ips:
        _add_ip(session, actor, spec.id, ip)
    domain = realm(session)
    for c in spec.credentials:
        _set_password(session, actor, spec.id, c.username, c.password, domain)
    commit(session)
    return get_publisher(session, spec.id)


def update_publisher(
    session: Session, *, actor: str, publisher_id: str, raw: Any
) -> dict[str, Any]:
    row = _publisher_row(session, publisher_id)
    patch = as_read(body(raw), row.managed_by)
    for name in ("ips", "credentials"):
        if name in patch:
            raise InvalidInput(f"{name}: change them with /admin/publishers/{{id}}/{name}")
    if patch.get("id", row.id) != row.id:
        raise InvalidInput("id: a publisher's id cannot change (keys and reservations use it)")
    old = _settings(row)
    with validating():
        spec = read_publisher(merge(old, patch))
    row.name, row.require_tls, row.require_srtp = spec.name, spec.require_tls, spec.require_srtp
    row.media_networks = list(spec.media_networks)
    if _settings(row) != old:
        session.add(row)
        audit.record(session, actor=actor, action="update", resource=f"publisher/{row.id}",
                     old=old, new=_settings(row))  # fmt: skip
        commit(session)
    return get_publisher(session, publisher_id)


def delete_publisher(session: Session, *, actor: str, publisher_id: str) -> None:
    """Removes its allowlist entries and credentials too; refused while keys use it."""
    row = _publisher_row(session, publisher_id)
    keys = list(session.exec(select(PostbackKey).where(PostbackKey.publisher_id == row.id)))
    if keys:
        hints = ", ".join(k.hint for k in keys)
        raise Conflict(
            f"publisher {row.id!r} still has {len(keys)} key(s) ({hints}); delete them first"
        )
    for entry in session.exec(select(AllowlistEntry).where(AllowlistEntry.publisher_id == row.id)):
        audit.record(session, actor=actor, action="delete", resource=_ip_resource(entry),
                     old=ip_view(entry))  # fmt: skip
        session.delete(entry)
    for cred in session.exec(select(SipCredential).where(SipCredential.publisher_id == row.id)):
        audit.record(session, actor=actor, action="delete", resource=f"credential/{cred.username}",
                     old={"username": cred.username, "publisher": row.id})  # fmt: skip
        session.delete(cred)
    session.flush()
    audit.record(session, actor=actor, action="delete", resource=f"publisher/{row.id}",
                 old=_settings(row))  # fmt: skip
    session.delete(row)
    commit(session)


# -- allowlist --------------------------------------------------------------------------------


def _ip_resource(entry: AllowlistEntry) -> str:
    return f"ip/{entry.publisher_id}/{entry.cidr}"


def list_ips(session: Session, publisher_id: str | None = None) -> list[dict[str, Any]]:
    query = select(AllowlistEntry).order_by(
        col(AllowlistEntry.publisher_id), col(AllowlistEntry.id)
    )
    if publisher_id is not None:
        _publisher_row(session, publisher_id)
        query = query.where(AllowlistEntry.publisher_id == publisher_id)
    now = utcnow()
    return [ip_view(e, now) for e in session.exec(query)]


def _check_cidr_free(
    session: Session, publisher_id: str, cidr: str, entry_id: int | None = None
) -> None:
    for other in session.exec(select(AllowlistEntry).where(AllowlistEntry.cidr == cidr)):
        if other.id == entry_id:
            continue
        if other.publisher_id == publisher_id:
            raise Conflict(
                f"cidr: {cidr} is already on {publisher_id}'s allowlist (rule {other.id})"
            )
        # Two publishers on one network: the agent could not tell whose call it is (no
        # flag accepts this one; a strictly nested network at least has a longest prefix).
        raise Conflict(
            f"cidr: {cidr} belongs to publisher {other.publisher_id!r} (rule {other.id})"
        )


def claims(session: Session, *, skip: int | None = None) -> list[Claim]:
    """Every stored entry and trunk network as :mod:`rtbridge.config.overlaps` sees it."""
    entries = [
        Claim(e.publisher_id, e.cidr, e.expires_at, e.allow_overlap)
        for e in session.exec(select(AllowlistEntry))
        if e.id != skip
    ]
    return entries + trunk_claims(
        (t.id, t.ips, t.allow_overlap) for t in session.exec(select(Trunk))
    )


def _check_overlap(
    session: Session,
    publisher_id: str,
    spec: IpSpec,
    entry_id: int | None = None,
    known: list[Claim] | None = None,
) -> list[Claim]:
    """The other publishers' live entries and the trunks' networks ``spec`` overlaps: refused
    (409) unless acknowledged by ``allow_overlap``; returned so the entry and the audit trail
    can say so. ``known``: the stored claims, read once by a caller adding many."""
    stored = known if known is not None else claims(session, skip=entry_id)
    others = overlapping(publisher_id, spec.cidr, stored, utcnow())
    refused = unacknowledged(spec.allow_overlap, others)
    if refused:
        wins = " (the longest prefix wins)" if all(o.kind == PUBLISHER for o in refused) else ""
        raise Conflict(
            f"cidr: {overlap_message(spec.cidr, refused)}; send allow_overlap: true to accept "
            f"it anyway{wins}"
        )
    return others


def _check_expiry(spec: IpSpec) -> None:
    problem = expiry_problem(spec.expires_at, utcnow())
    if problem is not None:
        raise InvalidInput(problem)


def _add_ip(
    session: Session,
    actor: str,
    publisher_id: str,
    spec: IpSpec,
    known: list[Claim] | None = None,
) -> AllowlistEntry:
    _check_expiry(spec)
    _check_cidr_free(session, publisher_id, spec.cidr)
    others = _check_overlap(session, publisher_id, spec, known=known)
    entry = AllowlistEntry(
        publisher_id=publisher_id, cidr=spec.cidr, note=spec.note, expires_at=spec.expires_at,
        allow_overlap=spec.allow_overlap and bool(others),
    )  # fmt: skip
    session.add(entry)
    session.flush()
    new = ip_view(entry)
    if others:
        new["overlaps"] = overlap_message(spec.cidr, others)
    audit.record(session, actor=actor, action="create", resource=_ip_resource(entry), new=new)
    if known is not None:
        known.append(Claim(publisher_id, entry.cidr, entry.expires_at, entry.allow_overlap))
    return entry


def add_ip(session: Session, *, actor: str, publisher_id: str, raw: Any) -> dict[str, Any]:
    """``raw``: a CIDR string or ``{cidr, note?, expires_at?, allow_overlap?}``, as in the
    file's ``ips``."""
    with validating():
        spec = read_ip(raw)
    _publisher_row(session, publisher_id)
    entry = _add_ip(session, actor, publisher_id, spec)
    commit(session)
    return ip_view(entry)


MAX_BULK = 1000


def add_ips(
    session: Session, *, actor: str, publisher_id: str, items: Any, allow_overlap: bool = False
) -> list[dict[str, Any]]:
    """Many entries, each accepted or refused on its own (one bad item costs only itself),
    in one transaction: ``[{"item", "added": entry} | {"item", "error", "status"}]`` in the
    order given. Every check runs before its row is written, so a refused item leaves
    nothing behind; later items see the earlier ones (a duplicate in the batch is refused).
    ``allow_overlap`` applies to every item that does not say otherwise."""
    if not isinstance(items, list) or not items:
        raise InvalidInput("body: must be a non-empty JSON array of entries")
    if len(items) > MAX_BULK:
        raise InvalidInput(f"body: at most {MAX_BULK} entries at a time")
    _publisher_row(session, publisher_id)
    known = claims(session)  # once, then grown with each entry added
    results: list[dict[str, Any]] = []
    for item in items:
        raw = item
        if allow_overlap:
            raw = {"cidr": item} if isinstance(item, str) else item
            if isinstance(raw, dict):
                raw = {"allow_overlap": True, **raw}
        try:
            with validating():
                spec = read_ip(raw)
            entry = _add_ip(session, actor, publisher_id, spec, known)
        except (InvalidInput, Conflict) as exc:
            results.append({"item": item, "error": exc.message, "status": exc.status})
        else:
            results.append({"item": item, "added": ip_view(entry)})
    if any("added" in r for r in results):
        commit(session)
    return results


def parse_lines(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The paste format of the console and ``rtbridge ips add --file``: one entry per line,
    ``CIDR [note…]``; blank lines and lines starting with ``#`` are skipped."""
    out = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        cidr, _, note = line.partition(" ")
        item: dict[str, Any] = {"cidr": cidr}
        if note.strip():
            item["note"] = note.strip()
        out.append((line, item))
    return out


_MAX_ID = 2**63 - 1  # ids are 64-bit integers in both databases


def _entry(session: Session, publisher_id: str, entry: int | str) -> AllowlistEntry:
    """An entry by its id, or by its CIDR (as the CLI names it)."""
    _publisher_row(session, publisher_id)
    query = select(AllowlistEntry).where(AllowlistEntry.publisher_id == publisher_id)
    if isinstance(entry, int):
        if not 0 < entry <= _MAX_ID:  # no such row; the driver could not even bind it (500)
            raise NotFound(f"no allowlist entry {entry} for publisher {publisher_id!r}")
        query = query.where(AllowlistEntry.id == entry)
    else:
        with validating():
            cidr = read_ip(entry).cidr
        query = query.where(AllowlistEntry.cidr == cidr)
    row = session.exec(query).first()
    if row is None:
        raise NotFound(f"no allowlist entry {entry} for publisher {publisher_id!r}")
    return row


def update_ip(
    session: Session, *, actor: str, publisher_id: str, entry: int | str, raw: Any
) -> dict[str, Any]:
    row = _entry(session, publisher_id, entry)
    old = ip_view(row)
    current = {"cidr": row.cidr, "note": row.note, "expires_at": row.expires_at}
    with validating():
        spec = read_ip(merge(current, raw))
    if spec.expires_at != row.expires_at:  # an entry that lapsed may still get a new note
        _check_expiry(spec)
    if spec.cidr != row.cidr:
        _check_cidr_free(session, publisher_id, spec.cidr, row.id)
        others = _check_overlap(session, publisher_id, spec, row.id)
        row.allow_overlap = spec.allow_overlap and bool(others)
    row.cidr, row.note, row.expires_at = spec.cidr, spec.note, spec.expires_at
    session.add(row)
    session.flush()
    new = ip_view(row)
    if new != old:
        audit.record(
            session, actor=actor, action="update", resource=_ip_resource(row), old=old, new=new
        )
        commit(session)
    return new


def remove_ip(
    session: Session, *, actor: str, publisher_id: str, entry: int | str
) -> dict[str, Any]:
    row = _entry(session, publisher_id, entry)
    old = ip_view(row)
    audit.record(session, actor=actor, action="delete", resource=_ip_resource(row), old=old)
    session.delete(row)
    commit(session)
    return old


# -- credentials ------------------------------------------------------------------------------


def list_credentials(session: Session, publisher_id: str | None = None) -> list[dict[str, Any]]:
    """Usernames and the realm they were hashed for; never a password or an HA1."""
    query = select(SipCredential).order_by(col(SipCredential.username))
    if publisher_id is not None:
        query = query.where(SipCredential.publisher_id == publisher_id)
    return [
        {"username": c.username, "publisher": c.publisher_id, "realm": c.realm}
        for c in session.exec(query)
    ]


def _set_password(
    session: Session, actor: str, publisher_id: str, username: str, password: str, domain: str
) -> bool:
    row = session.exec(select(SipCredential).where(SipCredential.username == username)).first()
    if row is not None and row.publisher_id != publisher_id:
        raise Conflict(
            f"username: SIP username {username!r} belongs to publisher {row.publisher_id!r}"
        )
    created = row is None
    if row is None:
        row = SipCredential(
            publisher_id=publisher_id, username=username, realm=domain, ha1_md5="", ha1_sha256=""
        )
    row.realm = domain
    row.ha1_md5 = ha1(username, domain, password, "MD5")
    row.ha1_sha256 = ha1(username, domain, password, "SHA-256")
    session.add(row)
    values = {
        "username": username,
        "publisher": publisher_id,
        "realm": domain,
        "password": password,
    }
    audit.record(session, actor=actor, action="create" if created else "rotate-password",
                 resource=f"credential/{username}", old=None if created else values, new=values)  # fmt: skip
    return created


def set_password(
    session: Session, *, actor: str, publisher_id: str, username: str, password: str
) -> bool:
    """Create the credential or rotate its password; True when it was created. The policy is
    the file's (:func:`rtbridge.config.fields.password`)."""
    with validating():
        spec = read_credential({"username": username, "password": password})
    _publisher_row(session, publisher_id)
    created = _set_password(
        session, actor, publisher_id, spec.username, spec.password, realm(session)
    )
    commit(session)
    return created


def remove_credential(session: Session, *, actor: str, publisher_id: str, username: str) -> None:
    _publisher_row(session, publisher_id)
    row = session.exec(
        select(SipCredential).where(
            SipCredential.username == username, SipCredential.publisher_id == publisher_id
        )
    ).first()
    if row is None:
        raise NotFound(f"no SIP username {username!r} for publisher {publisher_id!r}")
    audit.record(session, actor=actor, action="delete", resource=f"credential/{username}",
                 old={"username": username, "publisher": publisher_id, "realm": row.realm})  # fmt: skip
    session.delete(row)
    commit(session)
