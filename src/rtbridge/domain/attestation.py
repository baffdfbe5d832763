"""STIR/SHAKEN attestation levels (RFC 8588) and a campaign's minimum (SPEC §4.9)."""

from __future__ import annotations

LEVELS = ("A", "B", "C")  # full, partial, gateway: strongest first
UNVERIFIED = ("none", "failed")  # no Identity header; one that did not verify
ATTESTATION_LEVELS = (*LEVELS, *UNVERIFIED)  # every value a call's attestation takes
REFUSED = "attestation"  # the reason of a reservation refused below its campaign's minimum


def meets(level: str, minimum: str | None) -> bool:
    """Is a call attested ``level`` admitted by a campaign whose minimum is ``minimum``
    (None: every call, unsigned and failed ones included)?"""
    if minimum is None:
        return True
    return level in LEVELS and LEVELS.index(level) <= LEVELS.index(minimum)
