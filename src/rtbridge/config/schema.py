"""Read and validate the whole configuration file before anything is written (SPEC §5).

Every problem is collected, each with its path (``keys[2].inbound_number: not an E.164
number``), so one run shows the admin everything to fix."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from rtbridge.config import fields as f
from rtbridge.domain.ping import TAG_NAME

T = TypeVar("T")


class ConfigError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class TrunkSpec:
    id: str
    ips: tuple[str, ...]
    uri: str
    username: str | None = None
    password: str | None = None
    realm: str | None = None


@dataclass(frozen=True)
class BuyerSpec:
    id: str
    campaign: str
    destination: str
    payout: float
    seconds: int
    concurrency: int | None
    daily_cap: int | None
    priority: int
    weight: int
    hours: str | None
    filters: dict[str, list[str]]
    trunk: str | None
    srtp: str = "off"


@dataclass(frozen=True)
class CampaignSpec:
    id: str
    numbers: tuple[str, ...]
    buyers: tuple[BuyerSpec, ...]


@dataclass(frozen=True)
class IpSpec:
    cidr: str
    note: str | None = None
    expires_at: datetime | None = None
    # Accept a network that overlaps another publisher's (issue 12): see config/overlaps.py.
    allow_overlap: bool = False


@dataclass(frozen=True)
class CredentialSpec:
    username: str
    password: str


@dataclass(frozen=True)
class PublisherSpec:
    id: str
    name: str | None
    ips: tuple[IpSpec, ...]
    credentials: tuple[CredentialSpec, ...]
    require_tls: bool = False
    require_srtp: bool = False


@dataclass(frozen=True)
class KeySpec:
    key: str
    publisher: str
    campaign: str
    allow_missing_caller_number: bool
    inbound_number: str | None
    ttl_seconds: int
    auto_confirm: bool
    response_root: str | None
    paused: bool


@dataclass(frozen=True)
class Document:
    """The validated file. A section left out of the file is None: that resource type is left
    as it is in the database; a section present (even empty) is the whole truth for it."""

    sip_domain: str | None = None
    trunks: tuple[TrunkSpec, ...] | None = None
    campaigns: tuple[CampaignSpec, ...] | None = None
    publishers: tuple[PublisherSpec, ...] | None = None
    keys: tuple[KeySpec, ...] | None = None
    buyers: tuple[BuyerSpec, ...] = field(default=())


def _at(path: str, name: str) -> str:
    """``keys[2].inbound_number`` in a file; just ``inbound_number`` for one API resource."""
    return f"{path}.{name}" if path else name


class _Reader:
    """Walks one table of the file, recording errors instead of stopping at the first."""

    def __init__(self, errors: list[str], path: str, table: Any) -> None:
        self.errors = errors
        self.path = path
        self.ok = isinstance(table, dict)
        self.table: Mapping[str, Any] = table if isinstance(table, dict) else {}
        if not self.ok:
            errors.append(f"{path or 'body'}: must be a table")
        self.seen: set[str] = set()

    def get(
        self,
        name: str,
        check: Callable[[Any], T],
        default: T | None = None,
        *,
        required: bool = False,
    ) -> T | None:
        self.seen.add(name)
        if name not in self.table:
            if required and self.ok:
                self.errors.append(f"{_at(self.path, name)}: required")
            return default
        try:
            return check(self.table[name])
        except f.FieldError as exc:
            self.errors.append(f"{_at(self.path, name)}: {exc}")
            return default

    def done(self, *extra_known: str) -> None:
        for name in self.table:
            if name not in self.seen and name not in extra_known:
                self.errors.append(f"{_at(self.path, name)}: unknown field")


def _array(errors: list[str], path: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(f"{path}: must be an array")
        return []
    return value


def _list_of(check: Callable[[Any], T]) -> Callable[[Any], tuple[T, ...]]:
    def run(value: Any) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise f.FieldError("must be an array")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(check(item))
            except f.FieldError as exc:
                raise f.FieldError(f"[{i}] {exc}") from None
        return tuple(out)

    return run


def _filters(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise f.FieldError('must be a table such as { caller_state = ["CA", "NY"] }')
    out: dict[str, list[str]] = {}
    for tag, allowed in value.items():
        if not TAG_NAME.fullmatch(tag):
            # Same names a ping may carry; any other name could never match.
            raise f.FieldError(f"{tag!r}: tag names are 1-64 of A-Z a-z 0-9 _ . -")
        if isinstance(allowed, str):
            allowed = [allowed]
        if (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(a, str) for a in allowed)
        ):
            raise f.FieldError(f"{tag}: must be a non-empty array of strings")
        out[tag] = list(allowed)
    return out


def _unique(errors: list[str], what: str, items: list[tuple[str, str]]) -> None:
    """``items`` are (path, value); report every value seen twice."""
    first: dict[str, str] = {}
    for path, value in items:
        if value in first:
            errors.append(f"{path}: duplicate {what} {value!r} (also {first[value]})")
        else:
            first[value] = path


def _trunk(errors: list[str], path: str, raw: Any) -> TrunkSpec | None:
    r = _Reader(errors, path, raw)
    tid = r.get("id", f.identifier, required=True)
    ips = r.get("ips", _list_of(f.cidr)) or ()
    uri = r.get("uri", f.string, required=True)
    if uri is not None and ("{number}" not in uri or not uri.startswith(("sip:", "sips:"))):
        errors.append(f"{_at(path, 'uri')}: must be a sip: URI template containing {{number}}")
    username = r.get("username", f.username)
    password = r.get("password", lambda v: f.string(v, max_len=256))
    realm = r.get("realm", f.string)
    if password is not None and (username is None or realm is None):
        errors.append(
            f"{path or 'trunk'}: username and realm are required with password "
            "(outbound digest is stored as HA1 for that realm)"
        )
    r.done()
    if tid is None or uri is None:
        return None
    return TrunkSpec(tid, ips or (), uri, username, password, realm)


def _buyer(errors: list[str], path: str, campaign: str, raw: Any) -> BuyerSpec | None:
    r = _Reader(errors, path, raw)
    bid = r.get("id", f.identifier, required=True)
    dest = r.get("destination", f.destination, required=True)
    payout = r.get("payout", lambda v: f.number(v, minimum=0), required=True)
    seconds = r.get("seconds", lambda v: f.integer(v, minimum=0, maximum=86400), required=True)
    concurrency = r.get("concurrency", lambda v: f.integer(v, minimum=1))
    daily_cap = r.get("daily_cap", lambda v: f.integer(v, minimum=1))
    priority = r.get("priority", lambda v: f.integer(v, minimum=0), 1)
    weight = r.get("weight", lambda v: f.integer(v, minimum=1), 1)
    hours = r.get("hours", f.hours)
    filters: dict[str, list[str]] = r.get("filters", _filters) or {}
    trunk = r.get("trunk", f.identifier)
    srtp = r.get("srtp", f.srtp_mode, "off")
    r.done()
    if bid is None or dest is None or payout is None or seconds is None:
        return None
    return BuyerSpec(
        bid,
        campaign,
        dest,
        payout,
        seconds,
        concurrency,
        daily_cap,
        priority or 0,
        weight or 1,
        hours,
        filters or {},
        trunk,
        srtp or "off",
    )


def _campaign(errors: list[str], path: str, raw: Any) -> CampaignSpec | None:
    r = _Reader(errors, path, raw)
    cid = r.get("id", f.identifier, required=True)
    numbers = r.get("numbers", _list_of(f.e164)) or ()
    buyers = [
        _buyer(errors, f"{_at(path, 'buyers')}[{j}]", cid or "?", b)
        for j, b in enumerate(_array(errors, _at(path, "buyers"), r.table.get("buyers")))
    ]
    r.done("buyers")
    if cid is None:
        return None
    return CampaignSpec(cid, numbers or (), tuple(b for b in buyers if b is not None))


def _ip(value: Any) -> IpSpec:
    if isinstance(value, str):
        return IpSpec(f.cidr(value))
    if isinstance(value, dict):
        unknown = set(value) - {"cidr", "note", "expires_at", "allow_overlap"}
        if unknown:
            raise f.FieldError(f"unknown field {sorted(unknown)[0]!r}")
        note = f.string(value["note"]) if "note" in value else None
        expires = f.timestamp(value["expires_at"]) if "expires_at" in value else None
        allow = f.boolean(value["allow_overlap"]) if "allow_overlap" in value else False
        return IpSpec(f.cidr(value.get("cidr")), note, expires, allow)
    raise f.FieldError(
        'must be a CIDR string or { cidr = "...", note = "...", expires_at = ..., '
        "allow_overlap = true }"
    )


def _credential(value: Any) -> CredentialSpec:
    if not isinstance(value, dict):
        raise f.FieldError('must be { username = "...", password = "..." }')
    unknown = set(value) - {"username", "password"}
    if unknown:
        raise f.FieldError(f"unknown field {sorted(unknown)[0]!r}")
    try:
        user = f.username(value.get("username"))
    except f.FieldError as exc:
        raise f.FieldError(f"username {exc}") from None
    try:
        pwd = f.password(value.get("password"))
    except f.FieldError as exc:
        raise f.FieldError(f"password {exc}") from None
    return CredentialSpec(user, pwd)


def _publisher(errors: list[str], path: str, raw: Any) -> PublisherSpec | None:
    r = _Reader(errors, path, raw)
    pid = r.get("id", f.identifier, required=True)
    name = r.get("name", f.string)
    ips = r.get("ips", _list_of(_ip)) or ()
    creds = r.get("credentials", _list_of(_credential)) or ()
    require_tls = r.get("require_tls", f.boolean, False)
    require_srtp = r.get("require_srtp", f.boolean, False)
    r.done()
    if pid is None:
        return None
    return PublisherSpec(pid, name, ips or (), creds or (), bool(require_tls), bool(require_srtp))


def _key(errors: list[str], path: str, raw: Any) -> KeySpec | None:
    r = _Reader(errors, path, raw)
    key = r.get("key", lambda v: f.string(v, max_len=128), required=True)
    if key is not None and len(key) < 16:
        errors.append(f"{_at(path, 'key')}: too short (at least 16 characters; it is a secret)")
    publisher = r.get("publisher", f.identifier, required=True)
    campaign = r.get("campaign", f.identifier, required=True)
    allow = r.get("allow_missing_caller_number", f.boolean, False)
    inbound = r.get("inbound_number", f.e164)
    ttl = r.get("ttl_seconds", lambda v: f.integer(v, minimum=1, maximum=86400), 60)
    auto = r.get("auto_confirm", f.boolean, False)
    root = r.get("response_root", f.response_root)
    paused = r.get("paused", f.boolean, False)
    r.done()
    if key is None or publisher is None or campaign is None:
        return None
    return KeySpec(
        key, publisher, campaign, bool(allow), inbound, ttl or 60, bool(auto), root, bool(paused)
    )


def _section(
    errors: list[str],
    data: Mapping[str, Any],
    name: str,
    read: Callable[[list[str], str, Any], T | None],
) -> tuple[T, ...] | None:
    """Every entry of an array-of-tables section, or None when the file leaves it out."""
    if name not in data:
        return None
    entries = (
        read(errors, f"{name}[{i}]", raw) for i, raw in enumerate(_array(errors, name, data[name]))
    )
    return tuple(e for e in entries if e is not None)


_SECTIONS = ("sip", "trunks", "campaigns", "publishers", "keys")


def parse_document(
    data: Mapping[str, Any], *, existing: Mapping[str, set[str]] | None = None
) -> Document:
    """Validate a parsed TOML document. ``existing`` holds ids already in the database
    (``publishers``, ``campaigns``, ``trunks``) for references to sections the file omits."""
    errors: list[str] = []
    existing = existing or {}
    for name in data:
        if name not in _SECTIONS:
            errors.append(f"{name}: unknown section (expected one of {', '.join(_SECTIONS)})")
    domain = None
    if "sip" in data:
        r = _Reader(errors, "sip", data["sip"])
        domain = r.get("domain", f.domain, required=True)
        r.done()
    trunks = _section(errors, data, "trunks", _trunk)
    campaigns = _section(errors, data, "campaigns", _campaign)
    publishers = _section(errors, data, "publishers", _publisher)
    keys = _section(errors, data, "keys", _key)

    _cross_check(errors, trunks, campaigns, publishers, keys, existing)
    if errors:
        raise ConfigError(errors)
    buyers = tuple(b for c in campaigns or () for b in c.buyers)
    return Document(domain, trunks, campaigns, publishers, keys, buyers)


def _cross_check(
    errors: list[str],
    trunks: tuple[TrunkSpec, ...] | None,
    campaigns: tuple[CampaignSpec, ...] | None,
    publishers: tuple[PublisherSpec, ...] | None,
    keys: tuple[KeySpec, ...] | None,
    existing: Mapping[str, set[str]],
) -> None:
    """Uniqueness and references between sections."""
    if trunks is not None:
        _unique(errors, "trunk id", [(f"trunks[{i}].id", t.id) for i, t in enumerate(trunks)])
    trunk_ids = {t.id for t in trunks} if trunks is not None else existing.get("trunks", set())
    if campaigns is not None:
        _unique(
            errors, "campaign id", [(f"campaigns[{i}].id", c.id) for i, c in enumerate(campaigns)]
        )
        _unique(
            errors,
            "DID",
            [(f"campaigns[{i}].numbers", n) for i, c in enumerate(campaigns) for n in c.numbers],
        )
        _unique(
            errors,
            "buyer id",
            [
                (f"campaigns[{i}].buyers[{j}].id", b.id)
                for i, c in enumerate(campaigns)
                for j, b in enumerate(c.buyers)
            ],
        )
        for i, c in enumerate(campaigns):
            for j, b in enumerate(c.buyers):
                path = f"campaigns[{i}].buyers[{j}]"
                if b.trunk is not None and b.trunk not in trunk_ids:
                    errors.append(f"{path}.trunk: no trunk {b.trunk!r}")
                if not b.destination.startswith("sip") and b.trunk is None and not trunk_ids:
                    errors.append(
                        f"{path}.destination: a phone number needs a trunk; add [[trunks]]"
                    )
    campaign_ids = (
        {c.id for c in campaigns} if campaigns is not None else existing.get("campaigns", set())
    )
    if publishers is not None:
        _unique(
            errors,
            "publisher id",
            [(f"publishers[{i}].id", p.id) for i, p in enumerate(publishers)],
        )
        _unique(
            errors,
            "SIP username",
            [
                (f"publishers[{i}].credentials", c.username)
                for i, p in enumerate(publishers)
                for c in p.credentials
            ],
        )
        # Across publishers too: one network on two publishers would make "which publisher
        # is this source?" a coin toss (the admin API refuses it with 409 as well).
        _unique(
            errors,
            "CIDR",
            [(f"publishers[{i}].ips", ip.cidr) for i, p in enumerate(publishers) for ip in p.ips],
        )
    publisher_ids = (
        {p.id for p in publishers} if publishers is not None else existing.get("publishers", set())
    )
    if keys is not None:
        _unique(errors, "key", [(f"keys[{i}].key", k.key) for i, k in enumerate(keys)])
        for i, k in enumerate(keys):
            if k.publisher not in publisher_ids:
                errors.append(f"keys[{i}].publisher: no publisher {k.publisher!r}")
            if k.campaign not in campaign_ids:
                errors.append(f"keys[{i}].campaign: no campaign {k.campaign!r}")


def load_file(path: Path, *, existing: Mapping[str, set[str]] | None = None) -> Document:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return parse_document(data, existing=existing)


# -- one resource at a time: the admin API and CLI validate with the readers above, so a
# value refused by `rtbridge apply` is refused with the same words everywhere. The path is
# the field name alone (``payout: must be >= 0``) instead of ``campaigns[0].buyers[1].payout``.


def _one(read: Callable[[list[str], str, Any], T | None], raw: Any) -> T:
    errors: list[str] = []
    spec = read(errors, "", raw)
    if errors or spec is None:
        raise ConfigError(errors or ["body: invalid"])
    return spec


def read_trunk(raw: Any) -> TrunkSpec:
    return _one(_trunk, raw)


def read_campaign(raw: Any) -> CampaignSpec:
    return _one(_campaign, raw)


def read_buyer(raw: Any, *, campaign: str) -> BuyerSpec:
    return _one(lambda errors, path, value: _buyer(errors, path, campaign, value), raw)


def read_publisher(raw: Any) -> PublisherSpec:
    return _one(_publisher, raw)


def read_key(raw: Any) -> KeySpec:
    return _one(_key, raw)


def read_field(name: str, check: Callable[[Any], T], raw: Any) -> T:
    """One value checked by a :mod:`fields` rule, the error prefixed with its name."""
    try:
        return check(raw)
    except f.FieldError as exc:
        raise ConfigError([f"{name}: {exc}"]) from None


def read_ip(raw: Any) -> IpSpec:
    """An allowlist entry: a CIDR string or ``{cidr, note, expires_at}``, as in ``ips``."""
    return read_field("ips", _ip, raw)


def read_credential(raw: Any) -> CredentialSpec:
    """``{username, password}`` with the password policy of ``credentials``."""
    return read_field("credentials", _credential, raw)
