"""Caller lists and their entries (SPEC §3.10) as the admin API changes them: a list's
settings as ``[[caller_lists]]`` spells them, and its entries one at a time or in bulk — a
JSON array or a CSV upload — all or nothing, with a verdict per entry. Entries made here are
``source = "admin"``: ``apply`` keeps them (it manages its own only)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, text
from sqlmodel import Session, col, func, select

from rtbridge.admin import audit
from rtbridge.admin.changes import as_read, body, commit, merge, validating
from rtbridge.config.schema import ConfigError, ListEntrySpec, read_caller_list, read_list_entry
from rtbridge.domain.errors import Conflict, InvalidInput, NotFound
from rtbridge.storage.models import Buyer, CallerList, CallerListEntry, Campaign
from rtbridge.timestamps import iso_utc, utcnow

MAX_LINES = 200_000  # entries one upload may carry
# what a CSV export guards with a ' so a spreadsheet does not evaluate it (http/csvfile.py)
_GUARDED = ("=", "+", "-", "@", "\t", "\r")
MAX_PAGE = 1000
ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"


def list_view(row: CallerList) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "campaign": row.campaign_id, "buyer": row.buyer_id,
            "note": row.note, "auto_block_converted": row.auto_block_converted,
            "managed_by": row.managed_by}  # fmt: skip


def entry_view(row: CallerListEntry) -> dict[str, Any]:
    return {"value": row.value, "expires": row.expires_at, "note": row.note,
            "source": row.source, "created_at": row.created_at}  # fmt: skip


def scope_text(view: dict[str, Any]) -> str:
    """``global``, ``campaign auto`` or ``buyer acme``: where a list applies, for people."""
    if view["buyer"] is not None:
        return f"buyer {view['buyer']}"
    if view["campaign"] is not None:
        return f"campaign {view['campaign']}"
    return "global"


def tally(verdicts: Sequence[dict[str, Any]]) -> str:
    """``2 added, 0 updated, 5 unchanged``: a bulk add's verdicts counted."""
    counts = {k: sum(1 for v in verdicts if v["verdict"] == k) for k in (ADDED, UPDATED, UNCHANGED)}
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def _list(session: Session, list_id: str) -> CallerList:
    row = session.get(CallerList, list_id)
    if row is None:
        raise NotFound(f"no caller list {list_id!r}")
    return row


def list_lists(session: Session) -> list[dict[str, Any]]:
    return [list_view(r) for r in session.exec(select(CallerList).order_by(col(CallerList.id)))]


def entry_counts(session: Session) -> dict[str, int]:
    """How many entries each list holds (expired ones too), by list id; a list without
    entries is absent. One scan of the entries' primary key: for pages and the CLI, not
    for a hot path."""
    query = select(CallerListEntry.list_id, func.count()).group_by(col(CallerListEntry.list_id))
    return {list_id: n for list_id, n in session.exec(query)}


def overview(session: Session) -> list[dict[str, Any]]:
    """The lists as the CLI and the console show them: each with its ``scope`` in words and
    its number of ``entries``."""
    counts = entry_counts(session)
    return [{**v, "scope": scope_text(v), "entries": counts.get(v["id"], 0)}
            for v in list_lists(session)]  # fmt: skip


def get_list(session: Session, list_id: str) -> dict[str, Any]:
    return list_view(_list(session, list_id))


def _check_scope(session: Session, campaign: str | None, buyer: str | None) -> None:
    if campaign is not None and session.get(Campaign, campaign) is None:
        raise InvalidInput(f"campaign: no campaign {campaign!r}")
    if buyer is not None and session.get(Buyer, buyer) is None:
        raise InvalidInput(f"buyer: no buyer {buyer!r}")


def create_list(session: Session, *, actor: str, raw: Any) -> dict[str, Any]:
    """``{id, kind, campaign?, buyer?, note?, auto_block_converted?, entries?}``."""
    with validating():
        spec = read_caller_list(body(raw))
    if session.get(CallerList, spec.id) is not None:
        raise Conflict(f"id: caller list {spec.id!r} exists")
    _check_scope(session, spec.campaign, spec.buyer)
    row = CallerList(id=spec.id, kind=spec.kind, campaign_id=spec.campaign, buyer_id=spec.buyer,
                     note=spec.note, auto_block_converted=spec.auto_block_converted)  # fmt: skip
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="create", resource=f"caller-list/{row.id}",
                 new=list_view(row))  # fmt: skip
    if spec.entries:
        _upsert(session, actor, row, spec.entries)
    commit(session)
    return list_view(row)


def update_list(session: Session, *, actor: str, list_id: str, raw: Any) -> dict[str, Any]:
    row = _list(session, list_id)
    old = list_view(row)
    patch = as_read(body(raw), row.managed_by)
    if patch.get("id", row.id) != row.id:
        raise InvalidInput("id: a caller list's id cannot change")
    if "entries" in patch:
        raise InvalidInput("entries: add or remove them at /admin/caller-lists/{id}/entries")
    current = {k: v for k, v in old.items() if k != "managed_by"}
    with validating():
        spec = read_caller_list(merge(current, patch))
    _check_scope(session, spec.campaign, spec.buyer)
    row.kind, row.campaign_id, row.buyer_id = spec.kind, spec.campaign, spec.buyer
    row.note, row.auto_block_converted = spec.note, spec.auto_block_converted
    session.add(row)
    new = list_view(row)
    if new != old:
        audit.record(session, actor=actor, action="update", resource=f"caller-list/{row.id}",
                     old=old, new=new)  # fmt: skip
        commit(session)
    return new


def delete_list(session: Session, *, actor: str, list_id: str) -> None:
    """The list and every entry of it."""
    row = _list(session, list_id)
    session.execute(delete(CallerListEntry).where(col(CallerListEntry.list_id) == row.id))
    audit.record(session, actor=actor, action="delete", resource=f"caller-list/{row.id}",
                 old=list_view(row))  # fmt: skip
    session.delete(row)
    commit(session)


def list_entries(
    session: Session, list_id: str, *, value: str | None = None, after: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:  # fmt: skip
    """A page of entries in value order; ``value``: those starting with it; ``after``: the
    previous page's ``next_after``."""
    _list(session, list_id)
    query = select(CallerListEntry).where(CallerListEntry.list_id == list_id)
    if value:
        query = query.where(col(CallerListEntry.value).startswith(value, autoescape=True))
    if after is not None:
        query = query.where(col(CallerListEntry.value) > after)
    limit = max(1, min(limit, MAX_PAGE))
    rows = list(session.exec(query.order_by(col(CallerListEntry.value)).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"entries": [entry_view(r) for r in rows],
            "next_after": rows[-1].value if more else None}  # fmt: skip


def remove_entry(session: Session, *, actor: str, list_id: str, value: str) -> None:
    _list(session, list_id)
    row = session.get(CallerListEntry, (list_id, value))
    if row is None:
        raise NotFound(f"no entry {value!r} in caller list {list_id!r}")
    audit.record(session, actor=actor, action="delete",
                 resource=f"caller-list-entry/{list_id}/{value}", old=entry_view(row))  # fmt: skip
    session.delete(row)
    commit(session)


def export_csv(session: Session, list_id: str) -> Iterator[str]:
    """The list's entries as CSV text, a page at a time: a ``value,expires,note`` header, then
    one line per entry in value order, as :func:`parse_csv` reads them back (the same
    entries, each ``unchanged``). Cells are guarded as every CSV download is (a ``'`` before
    ``+``, ``=`` …) so a spreadsheet shows ``+1900*`` instead of evaluating it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["value", "expires", "note"])
    after: str | None = None
    while True:
        page = list_entries(session, list_id, after=after, limit=MAX_PAGE)
        for e in page["entries"]:
            expires = _exported_time(e["expires"])
            writer.writerow([_guarded(e["value"]), expires, _guarded(e["note"] or "")])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        after = page["next_after"]
        if after is None:
            return


def _exported_time(value: datetime | None) -> str:
    """An expiry as the API writes times (``...000Z``), with every digit it has: an automatic
    entry's (a conversion's time plus seconds) has microseconds, which a round trip keeps."""
    if value is None:
        return ""
    if value.microsecond % 1000:
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return iso_utc(value)


def _guarded(cell: str) -> str:
    """``cell`` as an export writes it, which :func:`_unguarded` undoes: a ``'`` before a
    formula's first character, and before a ``'`` that a guard would be taken for."""
    return "'" + cell if _guards(cell) else cell


# -- bulk: JSON and CSV ------------------------------------------------------------------------


class Refused(InvalidInput):
    """A bulk add with bad entries: nothing was changed; ``verdicts``, one per entry or
    line, say which and why."""

    def __init__(self, verdicts: list[dict[str, Any]]) -> None:
        bad = [v for v in verdicts if v["verdict"].startswith("invalid")]
        super().__init__(f"{len(bad)} invalid entr{'y' if len(bad) == 1 else 'ies'}; "
                         "nothing was changed")  # fmt: skip
        self.verdicts = verdicts


@dataclass(frozen=True)
class Parsed:
    """One line (or array item) of a bulk add: its entry, or why it has none."""

    line: int
    entry: ListEntrySpec | None
    problem: str | None = None


def parse_json(raw: Any) -> list[Parsed]:
    """An array of entries as ``entries`` in the file spells them."""
    items = raw if isinstance(raw, list) else body(raw).get("entries")
    if not isinstance(items, list):
        raise InvalidInput('body: an array of entries, or {"entries": [...]}')
    return [_parse(i, item) for i, item in enumerate(items)]


def parse_csv(data: bytes) -> list[Parsed]:
    """``value,expires,note`` lines (a header line is optional); numbered from 1."""
    try:
        textual = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("body: not UTF-8 text") from None
    found: list[Parsed] = []
    reader = csv.reader(io.StringIO(textual))
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if not found and cells[0].strip().casefold() == "value":
                continue  # the header
            if len(found) >= MAX_LINES:
                raise TooManyLines(f"body: more than {MAX_LINES} lines")
            if len(cells) > 3:
                found.append(Parsed(line, None, "more than 3 columns (value,expires,note)"))
                continue
            value, expires, note = ([*(_unguarded(c) for c in cells), "", ""])[:3]
            item = {"value": value, **({"expires": expires} if expires else {}),
                    **({"note": note} if note else {})}  # fmt: skip
            found.append(_parse(line, item))
    except csv.Error as exc:
        raise InvalidInput(f"body: not CSV ({exc})") from None
    return found


class TooManyLines(InvalidInput):
    status = 413


def _unguarded(cell: str) -> str:
    """A cell as typed: without the ``'`` an export puts before ``+`` (http/csvfile.py), or
    before a ``'`` that is itself before one (:func:`_guarded`)."""
    cell = cell.strip()
    return cell[1:] if cell[:1] == "'" and _guards(cell[1:]) else cell


def _guards(cell: str) -> bool:
    """Would a ``'`` before ``cell`` be read as a guard: a formula start, or a guard?"""
    return cell[:1] in _GUARDED or (cell[:1] == "'" and cell[1:2] in _GUARDED)


def _parse(line: int, item: Any) -> Parsed:
    try:
        return Parsed(line, read_list_entry(item, root="value"))
    except ConfigError as exc:
        return Parsed(line, None, "; ".join(exc.errors))


def add_entries(
    session: Session, *, actor: str, list_id: str, parsed: Sequence[Parsed]
) -> list[dict[str, Any]]:
    """Add or update every entry, or none: any invalid one (or one value twice) refuses
    them all (:class:`Refused`). A verdict per entry: added, updated, unchanged."""
    row = _list(session, list_id)
    first: dict[str, int] = {}
    problems: dict[int, str] = {}
    for p in parsed:
        if p.entry is None:
            continue
        if p.entry.value in first:
            problems[p.line] = f"the same entry as {first[p.entry.value]}"
        else:
            first[p.entry.value] = p.line
    if any(p.entry is None for p in parsed) or problems:
        raise Refused([{"line": p.line, "verdict": f"invalid: {p.problem or problems[p.line]}"}
                       if p.entry is None or p.line in problems
                       else {"line": p.line, "value": p.entry.value, "verdict": "valid"}
                       for p in parsed])  # fmt: skip
    entries = [p.entry for p in parsed if p.entry is not None]
    verdicts = _upsert(session, actor, row, entries)
    commit(session)
    return [{"line": p.line, "value": e.value, "verdict": v}
            for p, e, v in zip(parsed, entries, verdicts, strict=True)]  # fmt: skip


def _upsert(
    session: Session, actor: str, row: CallerList, entries: Sequence[ListEntrySpec]
) -> list[str]:
    """Write ``entries`` into ``row``'s list in few statements; their verdicts, in order.
    One audit entry says how many of each, and the values added or updated (the first 100)."""
    stored = _stored(session, row.id, [e.value for e in entries])
    now, verdicts, inserts, updates = utcnow(), [], [], []
    for e in entries:
        params = {"l": row.id, "v": e.value, "e": e.expires, "n": e.note, "at": now}
        old = stored.get(e.value)
        if old is None:
            verdicts.append(ADDED)
            inserts.append(params)
        elif old != (e.expires, e.note):
            verdicts.append(UPDATED)
            updates.append(params)
        else:
            verdicts.append(UNCHANGED)
    if inserts:
        session.execute(text(
            "INSERT INTO callerlistentry (list_id, value, expires_at, note, source, created_at) "
            "VALUES (:l, :v, :e, :n, 'admin', :at)"), inserts)  # fmt: skip
    if updates:
        session.execute(text("UPDATE callerlistentry SET expires_at = :e, note = :n "
                             "WHERE list_id = :l AND value = :v"), updates)  # fmt: skip
    if inserts or updates:
        changed = [e.value for e, v in zip(entries, verdicts, strict=True) if v != UNCHANGED]
        audit.record(session, actor=actor, action="update",
                     resource=f"caller-list/{row.id}/entries",
                     new={"added": len(inserts), "updated": len(updates),
                          "values": changed[:100]})  # fmt: skip
    return verdicts


def _stored(
    session: Session, list_id: str, values: Sequence[str]
) -> dict[str, tuple[datetime | None, str | None]]:
    """The entries of these values the list holds now: (expiry, note) by value."""
    found: dict[str, tuple[datetime | None, str | None]] = {}
    for start in range(0, len(values), 500):
        part = values[start : start + 500]
        query = select(CallerListEntry).where(
            CallerListEntry.list_id == list_id, col(CallerListEntry.value).in_(part)
        )
        for e in session.exec(query):
            found[e.value] = (e.expires_at, e.note)
    return found
