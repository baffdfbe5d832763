"""The site key: the one secret kept outside the database, under which the database stores
what it looks bearer secrets up by — postback key ids, admin token and console session
digests — as HMAC-SHA256 instead of a plain SHA-256 (issue 17).

Why: a plain SHA-256 of a postback key lets whoever holds a copy of the database test
guesses offline (a key chosen by a person is short), and the reservations repeat the id. An
HMAC under a key the copy does not hold turns it into random bytes. A digest is
``HMAC(site key, "<kind>:" + SHA-256(secret))``, not an HMAC of the secret itself, so the
rows stored before the upgrade — which hold ``SHA-256(secret)``, the secret itself gone —
are re-keyed in place once (:func:`adopt`), and every row, old or new, ends in one form.

Where the key comes from (:func:`resolve`): ``RTBRIDGE_SITE_KEY`` (at least 32 characters),
the same in every process of a site; else, on a SQLite file, a key file beside it
(``rtbridge.db.site-key``, made with mode 0600 on first need: SQLite is one machine, so every
process finds the same file); else (PostgreSQL, shared by hosts) a refusal saying to set it —
a key made up by one host would silently fail on the others. The database keeps a short
check value of the key it was adopted under (``site.key_check``), so a process with another
key refuses to start instead of answering "unknown key" to every publisher."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, text, update
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from rtbridge.storage.engine import IMMEDIATE
from rtbridge.storage.models import AdminToken, AuditEntry, ConsoleSession, PostbackKey, Reservation

ENV = "RTBRIDGE_SITE_KEY"
MIN_LENGTH = 32
FILE_SUFFIX = ".site-key"
CHECK_SETTING = "site.key_check"
# What a digest is of (a prefix in the HMAC's message, so one kind never matches another)
KEY, TOKEN, SESSION = "key", "token", "session"
# pg_advisory_xact_lock key of the adoption ("rtb-site" as a number): two processes starting
# on one database at once adopt once.
_ADOPT_LOCK = 0x7274622D73697465
_BATCH = 200  # old ids per UPDATE of the reservations (bound parameters stay well below limits)


class SiteKeyError(ValueError):
    """No usable site key, or not the one the database was adopted under."""


def legacy_digest(secret: str) -> str:
    """What rows stored before the site key hold: SHA-256 hex of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


class SiteKey:
    """Digests under one site key. ``source`` says where it came from, for messages."""

    __slots__ = ("_mac", "check", "recording_links", "sealing", "source")

    def __init__(self, secret: bytes, source: str) -> None:
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)
        self.source = source
        # 64 bits of HMAC(key, constant): tells keys apart, tells nothing about a secret
        self.check = hmac.new(secret, b"rtbridge site key check", hashlib.sha256).hexdigest()[:16]
        # the AES-256-GCM key of the secrets stored to be sent again (storage/sealed.py)
        self.sealing = hmac.new(secret, b"rtbridge sealing key v1", hashlib.sha256).digest()
        # the HMAC key of recordings' signed links (domain/recording_links.py)
        self.recording_links = hmac.new(
            secret, b"rtbridge recording links v1", hashlib.sha256
        ).digest()

    def __repr__(self) -> str:
        return f"SiteKey(source={self.source!r})"

    def digest(self, kind: str, secret: str) -> str:
        """The stored form of ``secret`` (64 hex characters, like the SHA-256 it replaces)."""
        return self.rekey(kind, legacy_digest(secret))

    def rekey(self, kind: str, legacy: str) -> str:
        """The stored form of a secret whose SHA-256 hex is ``legacy``."""
        mac = self._mac.copy()  # the key's pads are computed once, not per digest
        mac.update(f"{kind}:{legacy}".encode())
        return mac.hexdigest()


def key_file(engine: Engine) -> Path | None:
    """The key file beside a SQLite database file, else None."""
    url = make_url(engine.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}{FILE_SUFFIX}")


def _valid(value: str, source: str) -> SiteKey:
    if len(value) < MIN_LENGTH:
        raise SiteKeyError(
            f"{source}: the site key needs at least {MIN_LENGTH} characters "
            "(e.g. `openssl rand -base64 32`)"
        )
    return SiteKey(value.encode(), source)


def _read_or_make(path: Path) -> str:
    """The file's key; made first when missing (linked into place, so of two processes
    making it at once one wins and both read the same key)."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    except OSError as exc:  # another user's file (mode 0600), a directory, ...
        raise SiteKeyError(
            f"cannot read the site key file {path} ({exc.strerror or exc}); run as the user "
            f"that owns it, or set {ENV} to its content"
        ) from None
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SiteKeyError(
            f"cannot make the site key file {path} ({exc.strerror or exc}); set {ENV} to at "
            f"least {MIN_LENGTH} random characters instead"
        ) from None


def configured(engine: Engine, env: Mapping[str, str] | None = None) -> SiteKey | None:
    """The site key for this database (see the module doc), without touching the database;
    None when there is none to be had (PostgreSQL without ``RTBRIDGE_SITE_KEY``)."""
    env = os.environ if env is None else env
    value = env.get(ENV)
    if value:
        return _valid(value, ENV)
    path = key_file(engine)
    return None if path is None else _valid(_read_or_make(path), str(path))


def resolve(engine: Engine, env: Mapping[str, str] | None = None) -> SiteKey:
    """:func:`configured`, or a refusal saying how to set one."""
    found = configured(engine, env)
    if found is None:
        raise SiteKeyError(
            f"{ENV} is not set: on {engine.dialect.name} every process of the site needs the "
            f"same site key (at least {MIN_LENGTH} random characters, e.g. "
            "`openssl rand -base64 32`); postback keys, admin tokens and console sessions are "
            "stored under it"
        )
    return found


# Adopted keys by the engine's pool (an engine with other execution options shares it)
_adopted: weakref.WeakKeyDictionary[Any, SiteKey] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def prepare(engine: Engine) -> None:
    """Adopt the site key now when there is one (``open_database`` calls this, outside any
    transaction); without one, only what needs it refuses later (:func:`for_engine`), so a
    SIP agent on PostgreSQL runs without it."""
    key = configured(engine)
    if key is not None:
        with _guard:
            _adopted[engine.pool] = adopt(engine, key)


def for_engine(engine: Engine) -> SiteKey:
    """This database's site key, adopted (:func:`adopt`) on first use by this engine.

    Adopting writes on first use ever, so the first call must come outside a write
    transaction: ``open_database`` makes it (:func:`prepare`); the services find it here."""
    found = _adopted.get(engine.pool)
    if found is not None:
        return found
    with _guard:
        found = _adopted.get(engine.pool)
        if found is None:
            found = adopt(engine, resolve(engine))
            _adopted[engine.pool] = found
        return found


def of(session: Session) -> SiteKey:
    """:func:`for_engine` of the session's engine."""
    bind = session.get_bind()
    return for_engine(bind if isinstance(bind, Engine) else bind.engine)


def adopt(engine: Engine, key: SiteKey) -> SiteKey:
    """Make ``key`` the database's site key: nothing to do when it already is; the first
    time, re-key every digest stored before it (:func:`_rekey`) and store its check value,
    in one transaction; refuse when the database was adopted under another key."""
    with engine.connect() as conn:
        stored = _stored_check(conn)
    if stored == key.check:
        return key
    if stored is not None:
        raise _mismatch(engine, key)
    with engine.connect().execution_options(**{IMMEDIATE: True}) as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw: Any = conn.connection.driver_connection  # a PRAGMA outside SQLAlchemy's transaction
        if sqlite:  # the old digests' bytes are zeroed, not left in freed space of the file
            raw.execute("PRAGMA secure_delete = ON")
        try:
            with conn.begin():
                if not sqlite:
                    conn.execute(text(f"SELECT pg_advisory_xact_lock({_ADOPT_LOCK})"))
                stored = _stored_check(conn)  # another process may have adopted meanwhile
                if stored is None:
                    _rekey(conn, key)
                    conn.execute(
                        text("INSERT INTO setting (name, value) VALUES (:n, :v)"),
                        {"n": CHECK_SETTING, "v": key.check},
                    )
        finally:
            if sqlite:  # a pooled connection: pings must not pay for it
                raw.execute("PRAGMA secure_delete = OFF")
    if stored not in (None, key.check):
        raise _mismatch(engine, key)
    return key


def _stored_check(conn: Connection) -> str | None:
    value = conn.execute(
        text("SELECT value FROM setting WHERE name = :n"), {"n": CHECK_SETTING}
    ).scalar()
    return None if value is None else str(value)


def _mismatch(engine: Engine, key: SiteKey) -> SiteKeyError:
    path = key_file(engine)
    hint = ""
    if path is not None and key.source == ENV and path.exists():
        hint = f' (made without {ENV}? then export {ENV}="$(cat {path})")'
    return SiteKeyError(
        f"site key: this database was set up with another site key than {key.source}'s; "
        f"start every process with the one it was set up with{hint}. Under another key no "
        "postback key, admin token or console session stored in it can be verified"
    )


def _table(model: type[SQLModel]) -> Table:
    return SQLModel.metadata.tables[str(model.__tablename__)]


def _rekey(conn: Connection, key: SiteKey) -> None:
    """Rows from before the site key hold SHA-256 digests: replace each by its digest under
    ``key``, wherever it is repeated — a key's id in its row, in the reservations made with
    it (deleted keys' too) and in the audit trail's key entries; token and session digests."""
    keys = _table(PostbackKey)
    for (old,) in conn.execute(select(keys.c.id)).all():
        conn.execute(update(keys).where(keys.c.id == old).values(id=key.rekey(KEY, old)))
    _rekey_reservations(conn, key)
    audit = _table(AuditEntry)
    entries = conn.execute(
        select(audit.c.id, audit.c.old, audit.c.new).where(audit.c.resource.like("key/%"))
    ).all()
    for entry_id, old, new in entries:
        # only what changes: writing an absent side back would store JSON null for SQL NULL
        values = {name: _rekey_view(key, v) for name, v in (("old", old), ("new", new))
                  if isinstance(v, dict) and isinstance(v.get("id"), str)}  # fmt: skip
        if values:
            conn.execute(update(audit).where(audit.c.id == entry_id).values(**values))
    tokens = _table(AdminToken)
    for token_id, digest in conn.execute(select(tokens.c.id, tokens.c.token_hash)).all():
        conn.execute(
            update(tokens).where(tokens.c.id == token_id)
            .values(token_hash=key.rekey(TOKEN, digest))
        )  # fmt: skip
    sessions = _table(ConsoleSession)
    for session_id, digest in conn.execute(select(sessions.c.id, sessions.c.session_hash)).all():
        conn.execute(
            update(sessions).where(sessions.c.id == session_id)
            .values(session_hash=key.rekey(SESSION, digest))
        )  # fmt: skip


def _rekey_reservations(conn: Connection, key: SiteKey) -> None:
    """One pass over the table per batch of ids (``key_id`` has no index: per id would be
    one pass per key)."""
    table = _table(Reservation)
    olds = [row[0] for row in conn.execute(select(table.c.key_id).distinct()).all()]
    for start in range(0, len(olds), _BATCH):
        batch = olds[start : start + _BATCH]
        params: dict[str, str] = {}
        cases = []
        for i, old in enumerate(batch):
            params[f"o{i}"], params[f"n{i}"] = old, key.rekey(KEY, old)
            cases.append(f"WHEN :o{i} THEN :n{i}")
        listed = ", ".join(f":o{i}" for i in range(len(batch)))
        conn.execute(
            text(
                f"UPDATE reservation SET key_id = CASE key_id {' '.join(cases)} END "
                f"WHERE key_id IN ({listed})"
            ),
            params,
        )


def _rekey_view(key: SiteKey, view: dict[str, Any]) -> dict[str, Any]:
    """An audit entry's key view (admin/offers.key_view, or an apply row) with its id
    re-keyed."""
    return {**view, "id": key.rekey(KEY, view["id"])}
