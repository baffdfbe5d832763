"""What a call's caller ID is worth: the attestation its signer vouched for, or why none
counts. ``A`` (full: the signer knows the caller and that it may use the number), ``B``
(partial: knows the caller, not the number), ``C`` (gateway: knows only where the call came
in); ``none`` when the call carried no claim, ``failed`` when its claim did not hold."""

from __future__ import annotations

from dataclasses import dataclass

from rtbridge.domain.attestation import LEVELS, UNVERIFIED, meets


@dataclass(frozen=True)
class Attestation:
    level: str  # "A" | "B" | "C" | "none" (nothing to verify) | "failed"
    why: str | None = None  # for "failed": short and human, never a secret
    origid: str | None = None  # the PASSporT's origination identifier (a UUID)
    source: str = "none"  # "identity" (verified here) | "verstat" (a carrier's word) | "none"

    def at_least(self, minimum: str) -> bool:
        """True when this level is ``minimum`` or better (A > B > C > none/failed): every
        Attestation is at least ``none``. An unknown ``minimum`` (a configuration's typo)
        raises ValueError rather than letting every call through or none."""
        if minimum not in LEVELS and minimum not in UNVERIFIED:
            raise ValueError(f"unknown attestation level {minimum!r}")
        return meets(self.level, minimum if minimum in LEVELS else None)


class Failed(Exception):
    """A claim that does not hold, with its short, human reason (the Attestation's ``why``)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def failed(why: str) -> Attestation:
    return Attestation("failed", why=why)
