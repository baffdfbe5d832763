"""What a call's caller ID is worth: the attestation its signer vouched for, or why none
counts. ``A`` (full: the signer knows the caller and that it may use the number), ``B``
(partial: knows the caller, not the number), ``C`` (gateway: knows only where the call came
in); ``none`` when the call carried no claim, ``failed`` when its claim did not hold."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attestation:
    level: str  # "A" | "B" | "C" | "none" (nothing to verify) | "failed"
    why: str | None = None  # for "failed": short and human, never a secret
    origid: str | None = None  # the PASSporT's origination identifier (a UUID)
    source: str = "none"  # "identity" (verified here) | "verstat" (a carrier's word) | "none"


class Failed(Exception):
    """A claim that does not hold, with its short, human reason (the Attestation's ``why``)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def failed(why: str) -> Attestation:
    return Attestation("failed", why=why)
