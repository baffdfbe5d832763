"""Which ``inbound_number`` a reservation returns (SPEC §3.3) and its SIP address."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def sip_address(uuid: str, domain: str) -> str:
    """The per-reservation SIP address publishers dial: ``<uuid>@<sip-domain>``."""
    return f"{uuid}@{domain}"


def choose_inbound(
    *,
    uuid: str,
    sip_domain: str,
    caller_number: str | None,
    pool: Sequence[str],
    taken_for_caller: Collection[str],
    requested: str | None,
    key_inbound: str | None,
) -> str | None:
    """Return the inbound number, or None when the caller already holds every pool DID.

    With a caller number we hand out a pool DID that no other live reservation of the same
    caller holds, so an arriving PSTN call is matched unambiguously by (DID, caller id) (§4.3).
    Without one (or without a pool) the order is: the request's ``inbound_number``, the key's,
    then the dynamic SIP URI.
    """
    if caller_number is not None and pool:
        # Start at an offset from the uuid's random tail (its head is a clock: version 7) so
        # traffic spreads over the whole pool.
        start = int(uuid[-8:], 16) % len(pool)
        for did in (*pool[start:], *pool[:start]):
            if did not in taken_for_caller:
                return did
        return None
    if requested:
        return requested
    if key_inbound:
        return key_inbound
    return f"sip:{sip_address(uuid, sip_domain)}"
