"""What the admin API answers, as pydantic models: the "Public" shapes beside the request
models of :mod:`rtbridge.config.schema` (SQLModel's "multiple models" pattern).

Handlers still build plain dicts (``admin/*.py`` views); these models describe them in
``/openapi/admin.json``, and ``tests/admin/test_admin_openapi.py`` validates real answers
against that description, so a view and its model cannot drift apart unnoticed. Request-only
shapes that no file section has (a password on its own, a DID, the dry-run check) are here
too."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from rtbridge.config import fields as f
from rtbridge.config.schema import (
    BuyerSpec,
    Campaign,
    IpSpec,
    KeySpec,
    PublisherSpec,
    TrunkSpec,
)


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid")


_MANAGED_BY = (
    '"file": rtbridge apply made or adopted it (a later apply restores or removes it); '
    '"admin": made through the admin API, CLI or console (apply keeps it unless --prune)'
)
_AS_READ = "as the resource shows it (ignored); any other value is refused: only apply changes it"


# -- requests ---------------------------------------------------------------------------------


class KeyCreate(KeySpec):
    """``POST /admin/keys``: ``[[keys]]``, where a key left out is made at random."""

    key: Annotated[str | None, f.Rule(f.string, minLength=16, maxLength=128)] = Field(  # type: ignore[assignment]
        default=None, description="optional; a random one is made when left out"
    )


def _patch_of(
    model: type[BaseModel], name: str, *, leave_out: tuple[str, ...] = (), managed: bool = False
) -> Any:
    """``PATCH`` bodies: the resource's own fields and rules, none required (the handler
    merges them over the stored resource and validates the whole again). A ``managed``
    resource's view shows ``managed_by``, which a body may send back as read."""
    optional: dict[str, Any] = {}
    for field, info in model.model_fields.items():
        if field not in leave_out:
            kind: Any = info.annotation | None  # type: ignore[operator]
            optional[field] = (Annotated[(kind, *info.metadata)] if info.metadata else kind, None)
    if managed:
        optional["managed_by"] = (str | None, Field(default=None, description=_AS_READ))
    return create_model(name, __base__=_Public, __doc__=f"Fields of {model.__name__} to change",
                        **optional)  # fmt: skip


PublisherPatch = _patch_of(PublisherSpec, "PublisherPatch", leave_out=("ips", "credentials"),
                           managed=True)  # fmt: skip
IpPatch = _patch_of(IpSpec, "IpPatch")
CampaignPatch = _patch_of(Campaign, "CampaignPatch", leave_out=("id", "numbers", "buyers"),
                          managed=True)  # fmt: skip
BuyerPatch = _patch_of(BuyerSpec, "BuyerPatch", managed=True)
KeyPatch = _patch_of(KeySpec, "KeyPatch", leave_out=("key",))
TrunkPatch = _patch_of(TrunkSpec, "TrunkPatch", managed=True)


class PasswordSet(_Public):
    """``PUT .../credentials/{username}``: set or rotate one SIP password."""

    password: Annotated[str, f.PASSWORD]


class DidCreate(_Public):
    """``POST /admin/dids``: one more number in a campaign's pool."""

    number: Annotated[str, f.E164]
    campaign: Annotated[str, f.IDENTIFIER]


class CheckQuery(_Public):
    """``POST /admin/check``: an IP, or a username and password (kept out of URLs)."""

    ip: str | None = None
    username: str | None = None
    password: Annotated[str | None, Field(json_schema_extra={"writeOnly": True})] = None


# -- answers ----------------------------------------------------------------------------------


class ErrorPublic(_Public):
    error: str


class PublisherPublic(_Public):
    """A publisher's own settings (its allowlist, credentials and keys live elsewhere)."""

    id: str
    name: str | None
    require_tls: bool
    require_srtp: bool
    media_networks: list[str] = Field(
        description="networks beside the allowlist where its calls' media may move"
    )
    managed_by: str = Field(description=_MANAGED_BY)


class IpPublic(_Public):
    """An allowlist entry; ``expired`` entries stay listed until removed."""

    id: int
    publisher: str
    cidr: str
    note: str | None
    expires_at: datetime | None
    expired: bool
    allow_overlap: bool
    managed_by: str = Field(description=_MANAGED_BY)
    overlaps: str | None = None  # a change that overlaps another publisher's entry says so


class CredentialPublic(_Public):
    """A SIP username and the realm its HA1 was computed for; never a password or a hash."""

    username: str
    publisher: str
    realm: str


class KeyHint(_Public):
    id: str
    hint: str
    campaign: str


class PublisherDetail(PublisherPublic):
    ips: list[IpPublic]
    credentials: list[CredentialPublic]
    keys: list[KeyHint]


class CredentialSetPublic(_Public):
    username: str
    publisher: str
    created: bool


class IpVerdict(_Public):
    """One item of a bulk add: added, or refused with the status it would have had alone."""

    item: Any
    added: IpPublic | None = None
    error: str | None = None
    status: int | None = None


class IpBulkPublic(_Public):
    added: int
    refused: int
    results: list[IpVerdict]


class CampaignPublic(_Public):
    id: str
    failover: list[str] = Field(
        description="the buyer failures that move a call on to the next buyer (no-answer, "
        "busy, rejected, unreachable); [] is off"
    )
    max_attempts: int = Field(description="buyers tried for one call, the reservation's own "
                              "included")  # fmt: skip
    bid_deadline_ms: int = Field(description="how long a ping waits for its RTB buyers' bids")
    publisher_share: float = Field(description="the publisher's payout is the winning bid "
                                   "times this, rounded down to the cent")  # fmt: skip
    min_bid: float = Field(description="bids below this are not taken")
    duplicate_window: int = Field(description="seconds during which a caller who reached a "
                                  "buyer is a duplicate for it (its buyers' default); 0: off")  # fmt: skip
    duplicate_after: str = Field(description="what the earlier call must have reached: ping, "
                                 "connected or converted (its buyers' default)")  # fmt: skip
    min_attestation: str | None = Field(description="the least STIR/SHAKEN attestation a call "
                                        "needs (A, B or C); null: every call")  # fmt: skip
    record: bool = Field(description="its answered calls are recorded, stereo: publisher left, "
                         "buyer right (its buyers' default)")  # fmt: skip
    record_announcement: str | None = Field(
        description="the notice its recorded calls play to both parties from the answer before "
        "they are bridged: an absolute path to a mono PCM16 WAV of at most 30 s, checked when "
        "set (else 422); its buyers' default; null: none"
    )
    numbers: list[str]
    buyers: list[str] = Field(description="buyer ids")
    managed_by: str = Field(description=_MANAGED_BY)


class BuyerPublic(_Public):
    """A static buyer (destination and payout), or an RTB one (bid_url: each bid brings them)."""

    id: str
    campaign: str
    destination: str | None = Field(description="null for an RTB buyer: each bid brings it")
    payout: float | None = Field(
        description="paid to the publisher per converted call; null for an RTB buyer (its "
        "campaign's publisher_share of the winning bid)"
    )
    revenue: float | None = Field(
        description="paid by the buyer per converted call; null: the same as payout"
    )
    seconds: int
    concurrency: int | None
    daily_cap: int | None
    priority: int
    weight: int
    hours: str | None
    filters: dict[str, list[str]]
    trunk: str | None
    srtp: str
    media_networks: list[str] = Field(
        description="networks beside its destination where its media may move"
    )
    ring_timeout: float | None = Field(
        description="seconds it may ring; null: the SIP agent's ring_timeout"
    )
    connect_timeout: float | None = Field(
        description="seconds to its first answer before it counts as unreachable; null: 2"
    )
    bid_url: str | None = Field(description="where its bids are asked; null: a static buyer")
    bid_format: str = Field(description="rtbridge, ringba or retreaver")
    bid_headers: dict[str, str] = Field(
        description='sent with its bid requests; write-only: names with values shown as "***" '
        '(sent back as read, "***" keeps the stored value)'
    )
    hide_caller: bool = Field(description="the caller's number is withheld from its bid requests")
    duplicate_window: int | None = Field(description="its own duplicate-caller window in "
                                         "seconds; null: the campaign's")  # fmt: skip
    duplicate_after: str | None = Field(description="its own duplicate point (ping, connected, "
                                        "converted); null: the campaign's")  # fmt: skip
    record: bool | None = Field(description="whether its answered calls are recorded; null: "
                                "the campaign's")  # fmt: skip
    record_announcement: str | None = Field(
        description="its own notice for its recorded calls (an absolute path to a mono PCM16 "
        "WAV of at most 30 s, checked when set, else 422); null: the campaign's"
    )
    managed_by: str = Field(description=_MANAGED_BY)


class DidPublic(_Public):
    number: str
    campaign: str
    managed_by: str = Field(description=_MANAGED_BY)


class KeyPublic(_Public):
    """A key by its id (its digest under the site key) and hint; the key itself is shown once,
    when created."""

    id: str
    hint: str
    publisher: str
    campaign: str
    allow_missing_caller_number: bool
    inbound_number: str | None
    ttl_seconds: int
    auto_confirm: bool
    response_root: str | None
    paused: bool
    recordings: bool = Field(
        description="GET /rtbs/<uuid>/recording works for its publisher's calls"
    )


class KeyCreated(KeyPublic):
    key: str = Field(description="the key in clear: this answer is the only place it appears")


class TrunkPublic(_Public):
    id: str
    ips: list[str]
    uri: str
    username: str | None
    realm: str | None
    has_password: bool
    allow_overlap: bool  # accepted although a network overlaps a publisher's allowlist
    managed_by: str = Field(description=_MANAGED_BY)


class CallerListPublic(_Public):
    id: str
    kind: str = Field(description="block: its callers are refused; allow: only its callers "
                      "are admitted in its scope")  # fmt: skip
    campaign: str | None = Field(description="its scope: this campaign's callers")
    buyer: str | None = Field(description="its scope: this buyer's callers")
    note: str | None
    auto_block_converted: int | None
    managed_by: str = Field(description=_MANAGED_BY)


class CallerListPatch(_Public):
    kind: str | None = None
    campaign: str | None = None
    buyer: str | None = None
    note: str | None = None
    auto_block_converted: int | None = None
    managed_by: str | None = Field(default=None, description=_AS_READ)


class ListEntryPublic(_Public):
    value: str = Field(description="an E.164 number, a prefix (+1900*) or anonymous")
    expires: datetime | None
    note: str | None
    source: str = Field(description='"file" (apply), "admin" (API, CSV, CLI, console) or '
                        '"auto" (a conversion\'s)')  # fmt: skip
    created_at: datetime


class ListEntryPage(_Public):
    entries: list[ListEntryPublic]
    next_after: str | None = Field(description="the next page: send it as after")


class ListEntryVerdict(_Public):
    line: int = Field(description="the CSV line (from 1) or the array index (from 0)")
    value: str | None = None
    verdict: str = Field(description="added, updated, unchanged; on a 422: valid or "
                         "invalid: why")  # fmt: skip


class ListEntryVerdicts(_Public):
    verdicts: list[ListEntryVerdict]


class CheckAnswer(_Public):
    """Would the agent accept this source or credential, and as which publisher?"""

    accepted: bool
    publisher: str | None = None
    rule: str | None = None
    warnings: list[str] | None = None
    reason: str | None = None
    trunk: str | None = None


class AuditEntryPublic(_Public):
    id: int
    at: datetime
    actor: str
    action: str
    resource: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


class WebhookPublic(_Public):
    """A subscription (webhooks/subscriptions.py ``webhook_view``): its owner is a publisher
    or a buyer, never both; its signing secret is never shown again."""

    id: int
    publisher: str | None = None
    buyer: str | None = None
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="whsec_...: the signing secret, shown this once")


class SecretRotated(_Public):
    id: int
    secret: str = Field(description="the new signing secret, shown this once")


class DeliveryPublic(_Public):
    """One POST of one event to one webhook, with its retry state."""

    id: str = Field(description="the webhook-id header: receivers dedupe by it")
    webhook: int
    type: str
    reservation: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_code: int | None
    last_error: str | None


def _listing(name: str, field: str, item: type[BaseModel]) -> Any:
    """``{"publishers": [...]}``: how every GET of a collection answers."""
    fields: dict[str, Any] = {field: (list[item], ...)}  # type: ignore[valid-type]
    return create_model(name, __base__=_Public, **fields)


PublisherList = _listing("PublisherList", "publishers", PublisherPublic)
IpList = _listing("IpList", "ips", IpPublic)
CredentialList = _listing("CredentialList", "credentials", CredentialPublic)
CampaignList = _listing("CampaignList", "campaigns", CampaignPublic)
BuyerList = _listing("BuyerList", "buyers", BuyerPublic)
DidList = _listing("DidList", "dids", DidPublic)
KeyList = _listing("KeyList", "keys", KeyPublic)
TrunkList = _listing("TrunkList", "trunks", TrunkPublic)
CallerListList = _listing("CallerListList", "caller_lists", CallerListPublic)
AuditList = _listing("AuditList", "entries", AuditEntryPublic)
WebhookList = _listing("WebhookList", "webhooks", WebhookPublic)
DeliveryList = _listing("DeliveryList", "deliveries", DeliveryPublic)
