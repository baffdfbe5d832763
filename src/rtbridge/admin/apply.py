"""``rtbridge apply``: make the database match a validated :class:`Document`.

One transaction; idempotent (a second run reports no changes); ``dry_run`` computes the same
report and rolls back. Secrets never appear in the report.

Every row apply can remove remembers who made it (``managed_by``): publishers, allowlist
entries, SIP credentials and keys (issue 12), campaigns, buyers, DIDs and trunks (migration
0015). A row the file no longer lists is removed only if ``apply`` made it; one made through
the admin API, CLI or console is kept — and reported as such — unless ``prune``
(``--prune``) is given. A row the file lists is adopted by it, and an admin's edit of a row
the file manages lasts until the next apply restores the file's values."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, tuple_
from sqlmodel import Session, SQLModel, col, select

from rtbridge.admin import audit
from rtbridge.admin.changes import write_session
from rtbridge.admin.offers import (
    MASKED,
    buyer_row,
    check_announcement,
    headers_as_read,
    opened_headers,
    seal_headers,
)
from rtbridge.config.overlaps import (
    PUBLISHER,
    TRUNK,
    Claim,
    expiry_problem,
    overlap_message,
    overlapping,
    trunk_claims,
    unacknowledged,
)
from rtbridge.config.schema import (
    BuyerSpec,
    CallerListSpec,
    CampaignSpec,
    ConfigError,
    Document,
    TrunkSpec,
    key_hint,
    load_file,
)
from rtbridge.domain.errors import InvalidInput
from rtbridge.sip.auth.digest import ha1
from rtbridge.storage import sitekey
from rtbridge.storage.catalog import DEFAULT_SIP_DOMAIN, DOMAIN_SETTING, bump_version
from rtbridge.storage.models import (
    AllowlistEntry,
    Buyer,
    CallerList,
    CallerListEntry,
    Campaign,
    DidNumber,
    PostbackKey,
    Publisher,
    Setting,
    SipCredential,
    Trunk,
)
from rtbridge.storage.recordings import RECORDINGS_SETTINGS
from rtbridge.timestamps import utcnow

M = TypeVar("M", bound=SQLModel)
_FILE = "file"  # managed_by of the rows apply makes (storage/models.py)
_SECRET_FIELDS = {"ha1_md5", "ha1_sha256", "auth_ha1_md5", "bid_headers"}  # bid_headers: sealed


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # not in the file but made outside it: kept (``--prune`` would remove them)
    kept: list[str] = field(default_factory=list)
    # (action, resource, old, new) per row, for the audit trail (secrets redacted there)
    changes: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = field(
        default_factory=list
    )

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def lines(self) -> list[str]:
        out = [f"created {x}" for x in self.created]
        out += [f"updated {x}" for x in self.updated]
        out += [f"removed {x}" for x in self.removed]
        out += [f"kept {x} (not in the file, made outside it; --prune removes it)"
                for x in self.kept]  # fmt: skip
        return out or ["no changes"]

    def summary(self) -> str:
        text = (
            f"{len(self.created)} created, {len(self.updated)} updated, {len(self.removed)} removed"
        )
        return f"{text}, {len(self.kept)} kept" if self.kept else text


def _describe_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    parts = []
    for name, value in new.items():
        if old.get(name) != value:
            if name in _SECRET_FIELDS:
                parts.append("secret changed")
            else:
                parts.append(f"{name} {old.get(name)!r} -> {value!r}")
    return ", ".join(dict.fromkeys(parts))


def _sync(
    session: Session,
    report: Report,
    model: type[M],
    label: str,
    wanted: Mapping[Any, Mapping[str, Any]],
    ident: Callable[[M], Any],
    *,
    show: Callable[[Any], str] = str,
    upsert: bool = True,
    remove: bool = True,
    prune: bool = False,
    rows: Iterable[M] | None = None,
) -> None:
    """Create/update (``upsert``) and delete (``remove``) rows of ``model`` so that they equal
    ``wanted``, keyed by ``ident``. Split in two phases so parents can be created before
    their children and deleted after them (foreign keys are enforced on both databases).
    A row with ``managed_by`` other than "file" is deleted only with ``prune``. ``rows``:
    the rows to compare with, when not the whole table."""
    found = rows if rows is not None else session.exec(select(model))
    current = {ident(row): row for row in found}
    if upsert:
        for key, values in wanted.items():
            row = current.get(key)
            if row is None:
                session.add(model(**values))
                report.created.append(f"{label} {show(key)}")
                report.changes.append(("create", _resource(label, key, show), None, dict(values)))
                continue
            old = {name: getattr(row, name) for name in values}
            if old != dict(values):
                report.updated.append(f"{label} {show(key)} ({_describe_change(old, values)})")
                report.changes.append(("update", _resource(label, key, show), old, dict(values)))
                for name, value in values.items():
                    setattr(row, name, value)
                session.add(row)
    if remove:
        for key, row in current.items():
            if key not in wanted:
                if not prune and getattr(row, "managed_by", _FILE) != _FILE:
                    report.kept.append(f"{label} {show(key)}")
                    continue
                session.delete(row)
                report.removed.append(f"{label} {show(key)}")
                report.changes.append(
                    ("delete", _resource(label, key, show), row.model_dump(), None)
                )
    session.flush()


def existing_ids(engine: Engine) -> dict[str, set[str]]:
    with Session(engine) as s:
        return {
            "publishers": set(s.exec(select(Publisher.id))),
            "campaigns": set(s.exec(select(Campaign.id))),
            "trunks": set(s.exec(select(Trunk.id))),
        }


def apply_document(
    engine: Engine, doc: Document, *, dry_run: bool = False, prune: bool = False
) -> Report:
    _check_announcements(doc)
    report = Report()
    # an admin change's transaction: it reads, then writes, and a service's write between the
    # two must wait for it, not fail it ("database is locked")
    with write_session(engine) as session:

        def sync(model: type[M], label: str, wanted: Mapping[Any, Mapping[str, Any]],
                 ident: Callable[[M], Any] = _ident, **phase: Any) -> None:  # fmt: skip
            _sync(session, report, model, label, wanted, ident, prune=prune, **phase)

        realm = _sync_domain(session, report, doc)
        _sync_recordings(session, report, doc)
        keys = _wanted_keys(session, doc)
        trunks_before = {t.id: set(t.ips) for t in session.exec(select(Trunk))}
        entries_before = {(e.publisher_id, e.cidr) for e in session.exec(select(AllowlistEntry))}
        campaigns = {c.id: _campaign_row(c) for c in doc.campaigns or ()}
        publishers = {
            p.id: {"id": p.id, "name": p.name, "require_tls": p.require_tls,
                   "require_srtp": p.require_srtp, "media_networks": list(p.media_networks),
                   "managed_by": _FILE}
            for p in doc.publishers or ()
        }  # fmt: skip
        # Order matters for the foreign keys: keys leave before the publishers and campaigns
        # they point at; parents arrive before their children and leave after them.
        if keys is not None:
            sync(PostbackKey, "key", keys[0], show=keys[1].__getitem__, upsert=False)
        if doc.trunks is not None:
            sync(Trunk, "trunk", {t.id: _trunk_row(t) for t in doc.trunks})
        if doc.campaigns is not None:
            sync(Campaign, "campaign", campaigns, remove=False)
            sync(Buyer, "buyer", _buyer_rows(session, doc.buyers))
            dids = {n: {"number": n, "campaign_id": c.id, "managed_by": _FILE}
                    for c in doc.campaigns for n in c.numbers}  # fmt: skip
            sync(DidNumber, "DID", dids, lambda r: r.number)
        if doc.publishers is not None:
            sync(Publisher, "publisher", publishers, remove=False)
            _sync_publisher_children(session, report, doc, realm, prune)
        if doc.trunks is not None:  # after the entries: it sees those the file keeps
            _check_new_trunk_networks(session, doc, trunks_before, entries_before)
        if keys is not None:
            sync(PostbackKey, "key", keys[0], show=keys[1].__getitem__, remove=False)
        # Before the removals below: the foreign keys would otherwise refuse them first.
        _check_references(session, doc, prune)
        if doc.campaigns is not None:
            sync(Campaign, "campaign", campaigns, upsert=False)
        if doc.publishers is not None:
            sync(Publisher, "publisher", publishers, upsert=False)
        if doc.caller_lists is not None:
            _sync_caller_lists(session, report, doc.caller_lists, prune)
        if report.changed:
            for action, resource, old, new in report.changes:
                audit.record(
                    session, actor="apply", action=action, resource=resource, old=old, new=new
                )
            bump_version(session)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return report


_RESOURCE = {"allowlist entry": "ip", "SIP credential": "credential", "DID": "did",
             "caller list": "caller-list", "caller list entry": "caller-list-entry"}  # fmt: skip


def _resource(label: str, key: Any, show: Callable[[Any], str]) -> str:
    """The audit trail's name for a row, as the admin API names it (``ip/pub-1/10.0.0.0/8``)."""
    kind = _RESOURCE.get(label, label)
    if isinstance(key, tuple):
        return "/".join([kind, *map(str, key)])
    return f"{kind}/{show(key)}"


def _ident(row: Any) -> Any:
    return row.id


def _sync_domain(session: Session, report: Report, doc: Document) -> str:
    """Store ``[sip] domain``; return the realm new credentials are hashed for."""
    row = session.get(Setting, DOMAIN_SETTING)
    if doc.sip_domain is None:
        return row.value if row else DEFAULT_SIP_DOMAIN
    if row is None:
        session.add(Setting(name=DOMAIN_SETTING, value=doc.sip_domain))
        report.created.append(f"sip.domain {doc.sip_domain}")
        report.changes.append(("create", "setting/sip.domain", None, {"value": doc.sip_domain}))
    elif row.value != doc.sip_domain:
        if doc.publishers is None and session.exec(select(SipCredential.id)).first() is not None:
            # HA1 binds the realm: stored digests cannot be re-hashed without the passwords.
            raise ConfigError(
                [
                    "sip.domain: changing the domain invalidates the stored SIP credentials (hashed "
                    "for the old realm); list [[publishers]] with their passwords in the same file"
                ]
            )
        report.updated.append(f"sip.domain ({row.value} -> {doc.sip_domain})")
        report.changes.append(
            ("update", "setting/sip.domain", {"value": row.value}, {"value": doc.sip_domain})
        )
        row.value = doc.sip_domain
        session.add(row)
    return doc.sip_domain


def _sync_recordings(session: Session, report: Report, doc: Document) -> None:
    """Store ``[recordings]``, one setting per key (``recordings.directory``, ...). Like every
    section, one left out leaves the stored values as they are; present, it is the whole
    truth: a key it leaves out is removed (back to its default)."""
    if doc.recordings is None:
        return
    given = doc.recordings.model_dump()
    for key, name in RECORDINGS_SETTINGS.items():
        value = None if given[key] is None else str(given[key])
        row = session.get(Setting, name)
        resource = f"setting/{name}"
        if row is None and value is not None:
            session.add(Setting(name=name, value=value))
            report.created.append(f"{name} {value}")
            report.changes.append(("create", resource, None, {"value": value}))
        elif row is not None and value is None:
            session.delete(row)
            report.removed.append(f"{name} {row.value}")
            report.changes.append(("delete", resource, {"value": row.value}, None))
        elif row is not None and row.value != value:
            report.updated.append(f"{name} ({row.value} -> {value})")
            report.changes.append(("update", resource, {"value": row.value}, {"value": value}))
            row.value = str(value)
            session.add(row)
    session.flush()


def _check_announcements(doc: Document) -> None:
    """Every recording notice the file names must be one the agent can play (an absolute
    path by now: the file's relative ones are its directory's), read here as the admin API
    reads it (``sip/announcements.py``); any that is not refuses the whole file."""
    problems = []
    for i, c in enumerate(doc.campaigns or ()):
        named = [(f"campaigns[{i}].record_announcement", f"campaign {c.id}",
                  c.record_announcement)]  # fmt: skip
        named += [(f"campaigns[{i}].buyers[{j}].record_announcement", f"buyer {b.id}",
                   b.record_announcement) for j, b in enumerate(c.buyers)]  # fmt: skip
        for where, whose, path in named:
            try:
                check_announcement(path, where=f"{where} ({whose})")
            except InvalidInput as exc:
                problems.append(str(exc))
    if problems:
        raise ConfigError(problems)


def _trunk_row(t: TrunkSpec) -> dict[str, Any]:
    ha1_md5 = None
    if t.password and t.username and t.realm:
        ha1_md5 = ha1(t.username, t.realm, t.password, "MD5")
    return {
        "id": t.id,
        "ips": list(t.ips),
        "uri": t.uri,
        "auth_username": t.username,
        "auth_realm": t.realm,
        "auth_ha1_md5": ha1_md5,
        "allow_overlap": t.allow_overlap,
        "managed_by": _FILE,
    }


def _campaign_row(c: CampaignSpec) -> dict[str, Any]:
    return {"id": c.id, "failover": list(c.failover), "max_attempts": c.max_attempts,
            "bid_deadline_ms": c.bid_deadline_ms, "publisher_share": c.publisher_share,
            "min_bid": c.min_bid, "duplicate_window": c.duplicate_window,
            "duplicate_after": c.duplicate_after, "min_attestation": c.min_attestation,
            "record": c.record, "record_announcement": c.record_announcement,
            "managed_by": _FILE}  # fmt: skip


def _buyer_rows(session: Session, buyers: Iterable[BuyerSpec]) -> dict[str, dict[str, Any]]:
    """The file's buyers as rows, as the admin API writes them (``offers.buyer_row``), their
    bid headers sealed: unchanged ones keep their seal, and a value written as ``"***"`` (a
    view of the API written into the file) is the stored one, as in a ``PATCH``."""
    sealed = {b.id: b.bid_headers for b in session.exec(select(Buyer)) if b.bid_headers}
    rows, problems = {}, []
    for b in buyers:
        headers: Any = b.bid_headers
        if MASKED in headers.values():
            try:
                headers = headers_as_read(headers, opened_headers(session, sealed.get(b.id)))
            except InvalidInput as exc:
                problems.append(f"buyer {b.id}: {exc.message}")
                continue
        row = buyer_row(b, bid_headers=seal_headers(session, headers, sealed.get(b.id)))
        rows[b.id] = {**row, "managed_by": _FILE}
    if problems:
        raise ConfigError(problems)
    return rows


def _sync_publisher_children(
    session: Session, report: Report, doc: Document, realm: str, prune: bool
) -> None:
    assert doc.publishers is not None
    ips = {
        (p.id, ip.cidr): {
            "publisher_id": p.id,
            "cidr": ip.cidr,
            "note": ip.note,
            "expires_at": ip.expires_at,
            "allow_overlap": ip.allow_overlap,
            "managed_by": _FILE,
        }
        for p in doc.publishers
        for ip in p.ips
    }
    before = {(r.publisher_id, r.cidr): r.expires_at for r in session.exec(select(AllowlistEntry))}
    creds = {
        c.username: {
            "publisher_id": p.id,
            "username": c.username,
            "realm": realm,
            "ha1_md5": ha1(c.username, realm, c.password, "MD5"),
            "ha1_sha256": ha1(c.username, realm, c.password, "SHA-256"),
            "managed_by": _FILE,
        }
        for p in doc.publishers
        for c in p.credentials
    }
    _sync(
        session,
        report,
        AllowlistEntry,
        "allowlist entry",
        ips,
        lambda r: (r.publisher_id, r.cidr),
        show=lambda k: f"{k[1]} of {k[0]}",
        prune=prune,
    )
    _check_new_entries(session, doc, before)
    _sync(session, report, SipCredential, "SIP credential", creds, lambda r: r.username,
          prune=prune)  # fmt: skip


def _check_new_entries(
    session: Session, doc: Document, before: Mapping[tuple[str, str], Any]
) -> None:
    """The admin API's two rules for the entries this run creates or re-times (those it
    leaves as they were stay, so an entry that lapsed does not make the file unappliable):
    an expiry must be ahead, and an overlap with another publisher's live entry (from the
    file or made outside it, as stored after this run) or with a trunk's network needs
    ``allow_overlap`` on one side."""
    assert doc.publishers is not None
    now = utcnow()
    stored = [Claim(e.publisher_id, e.cidr, e.expires_at, e.allow_overlap)
              for e in session.exec(select(AllowlistEntry))]  # fmt: skip
    stored += trunk_claims((t.id, t.ips, t.allow_overlap) for t in session.exec(select(Trunk)))
    problems = []
    for i, p in enumerate(doc.publishers):
        for j, ip in enumerate(p.ips):
            key, path = (p.id, ip.cidr), f"publishers[{i}].ips[{j}]"
            if key in before and before[key] == ip.expires_at:
                continue
            problem = expiry_problem(ip.expires_at, now)
            if problem is not None:
                problems.append(f"{path}.{problem}")
            if key in before:
                continue  # only re-timed: its network was accepted already
            refused = unacknowledged(ip.allow_overlap, overlapping(p.id, ip.cidr, stored, now))
            if refused:
                wins = all(o.kind == PUBLISHER for o in refused)
                problems.append(
                    f"{path}: {overlap_message(ip.cidr, refused)}; set allow_overlap = true "
                    f"on the entry to accept it{' (the longest prefix wins)' if wins else ''}"
                )
    if problems:
        session.rollback()
        raise ConfigError(problems)


def _check_new_trunk_networks(
    session: Session,
    doc: Document,
    before: Mapping[str, set[str]],
    entries_before: set[tuple[str, str]],
) -> None:
    """A network a trunk gains in this run that overlaps a publisher's live entry needs
    ``allow_overlap`` on one side. Entries this run creates were checked against the trunks
    already (:func:`_check_new_entries`); those it keeps are checked here."""
    assert doc.trunks is not None
    now = utcnow()
    entries = [Claim(e.publisher_id, e.cidr, e.expires_at, e.allow_overlap)
               for e in session.exec(select(AllowlistEntry))
               if (e.publisher_id, e.cidr) in entries_before]  # fmt: skip
    problems = []
    for i, t in enumerate(doc.trunks):
        for j, cidr in enumerate(t.ips):
            if cidr in before.get(t.id, ()):
                continue  # it had that network: an overlap accepted or older than the rule
            others = overlapping(t.id, cidr, entries, now, kind=TRUNK)
            refused = unacknowledged(t.allow_overlap, others)
            if refused:
                problems.append(
                    f"trunks[{i}].ips[{j}]: {overlap_message(cidr, refused, kind=TRUNK)}; set "
                    "allow_overlap = true on the trunk to accept it"
                )
    if problems:
        session.rollback()
        raise ConfigError(problems)


def _wanted_keys(
    session: Session, doc: Document
) -> tuple[dict[str, dict[str, Any]], dict[str, str]] | None:
    """Key rows by id (the key's digest under the site key), and the display hint of every key
    old or new (for the report)."""
    if doc.keys is None:
        return None
    site = sitekey.of(session)
    ids = {k.key: site.digest(sitekey.KEY, k.key) for k in doc.keys}
    wanted = {
        ids[k.key]: {
            "id": ids[k.key],
            "hint": key_hint(k.key),
            "publisher_id": k.publisher,
            "campaign_id": k.campaign,
            "allow_missing_caller_number": k.allow_missing_caller_number,
            "inbound_number": k.inbound_number,
            "ttl_seconds": k.ttl_seconds,
            "auto_confirm": k.auto_confirm,
            "response_root": k.response_root,
            "paused": k.paused,
            "recordings": k.recordings,
            "managed_by": _FILE,
        }
        for k in doc.keys
    }
    hints: dict[str, str] = {r.id: r.hint for r in session.exec(select(PostbackKey))}
    hints.update({h: str(v["hint"]) for h, v in wanted.items()})
    return wanted, hints


def _check_references(session: Session, doc: Document, prune: bool) -> None:
    """Refuse a file whose removals would orphan rows it did not mention (e.g. a campaign
    removed while a key the file leaves alone still points at it, or a publisher or campaign
    removed while an allowlist entry or buyer made outside the file is kept)."""
    problems = []
    campaigns = set(session.exec(select(Campaign.id)))
    if doc.campaigns is not None:  # those it lists, and those kept: made outside it
        kept = set() if prune else _made_outside(session, Campaign)
        campaigns = {c.id for c in doc.campaigns} | kept
    publishers = set(session.exec(select(Publisher.id)))
    if doc.publishers is not None:
        kept = set() if prune else _made_outside(session, Publisher)
        publishers = {p.id for p in doc.publishers} | kept
    held = [
        (e.publisher_id, f"allowlist entry {e.cidr}") for e in session.exec(select(AllowlistEntry))
    ]
    held += [
        (c.publisher_id, f"SIP credential {c.username}")
        for c in session.exec(select(SipCredential))
    ]
    for owner, what in held:
        if owner not in publishers:
            problems.append(
                f"publishers: publisher {owner!r} is no longer in the file but keeps {what}, "
                "made outside it; remove that first or use --prune"
            )
    # Buyers and DIDs are synced by now: those left that the file does not list were kept.
    pooled = [(b.campaign_id, f"buyer {b.id}") for b in session.exec(select(Buyer))]
    pooled += [(d.campaign_id, f"DID {d.number}") for d in session.exec(select(DidNumber))]
    for owner, what in pooled:
        if owner not in campaigns:
            problems.append(
                f"campaigns: campaign {owner!r} is no longer in the file but keeps {what}, "
                "made outside it; remove that first or use --prune"
            )
    for key in session.exec(select(PostbackKey)):
        if key.campaign_id not in campaigns:
            problems.append(f"keys: key {key.hint} still uses removed campaign {key.campaign_id!r}")
        if key.publisher_id not in publishers:
            problems.append(
                f"keys: key {key.hint} still uses removed publisher {key.publisher_id!r}"
            )
    # Trunks are synced by now, so this sees the file's trunks (or the stored ones if omitted).
    trunks = set(session.exec(select(Trunk.id)))
    for buyer in session.exec(select(Buyer)):
        if buyer.trunk_id is not None and buyer.trunk_id not in trunks:
            problems.append(
                f"trunks: buyer {buyer.id!r} still uses removed trunk {buyer.trunk_id!r}"
            )
        elif (
            buyer.trunk_id is None
            and buyer.destination is not None  # an RTB buyer's: each bid's
            and not buyer.destination.startswith("sip")
            and not trunks
        ):
            problems.append(f"trunks: buyer {buyer.id!r} dials a number and needs a trunk")
    if problems:
        session.rollback()
        raise ConfigError(problems)


def _sync_caller_lists(
    session: Session, report: Report, specs: Iterable[CallerListSpec], prune: bool
) -> None:
    """The file's caller lists and the entries it lists. Entries an admin or a conversion
    added to a list the file manages stay (their ``source`` is not "file"), even with
    ``prune``: they are data, not configuration; a list removed goes with all its entries."""
    specs = tuple(specs)
    _check_scopes(session, specs)
    lists = {x.id: {"id": x.id, "kind": x.kind, "campaign_id": x.campaign, "buyer_id": x.buyer,
                    "note": x.note, "auto_block_converted": x.auto_block_converted,
                    "managed_by": _FILE} for x in specs}  # fmt: skip
    _sync(session, report, CallerList, "caller list", lists, _ident, remove=False)
    wanted = {(x.id, e.value): {"list_id": x.id, "value": e.value, "expires_at": e.expires,
                                "note": e.note, "source": _FILE}
              for x in specs for e in x.entries}  # fmt: skip
    _sync(session, report, CallerListEntry, "caller list entry", wanted,
          lambda r: (r.list_id, r.value), show=lambda k: f"{k[1]} of {k[0]}",
          rows=_file_entries(session, wanted))  # fmt: skip
    gone = [
        row.id for row in session.exec(select(CallerList))
        if row.id not in lists and (prune or row.managed_by == _FILE)
    ]  # fmt: skip
    if gone:
        session.execute(delete(CallerListEntry).where(col(CallerListEntry.list_id).in_(gone)))
    _sync(session, report, CallerList, "caller list", lists, _ident, upsert=False, prune=prune)


def _file_entries(session: Session, wanted: Mapping[tuple[str, str], Any]) -> list[CallerListEntry]:
    """The entries apply compares with: those it made (of every list), and those of the
    file's entries someone else made (the file adopts them), asked for in slices; never a
    list's whole content, which uploads may have made large."""
    found = list(session.exec(select(CallerListEntry).where(CallerListEntry.source == _FILE)))
    keys = sorted(wanted)
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        found.extend(
            session.exec(
                select(CallerListEntry).where(
                    CallerListEntry.source != _FILE,
                    tuple_(col(CallerListEntry.list_id), col(CallerListEntry.value)).in_(part),
                )
            )
        )
    return found


def _check_scopes(session: Session, specs: Iterable[CallerListSpec]) -> None:
    """A list names a campaign or a buyer that exists (the file's are synced by now)."""
    campaigns = set(session.exec(select(Campaign.id)))
    buyers = set(session.exec(select(Buyer.id)))
    problems = [
        f"caller_lists[{i}].buyer: no buyer {x.buyer!r}"
        for i, x in enumerate(specs)
        if x.buyer is not None and x.buyer not in buyers
    ]
    problems += [f"caller_lists[{i}].campaign: no campaign {x.campaign!r}"
                 for i, x in enumerate(specs)
                 if x.campaign is not None and x.campaign not in campaigns]  # fmt: skip
    if problems:
        session.rollback()
        raise ConfigError(problems)


def _made_outside(session: Session, model: type[Campaign] | type[Publisher]) -> set[str]:
    """Ids of the rows of ``model`` an admin made: a run without ``--prune`` keeps them."""
    return set(session.exec(select(model.id).where(model.managed_by != _FILE)))


def apply_file(engine: Engine, path: Any, *, dry_run: bool = False, prune: bool = False) -> Report:
    doc = load_file(path, existing=existing_ids(engine))
    return apply_document(engine, doc, dry_run=dry_run, prune=prune)
