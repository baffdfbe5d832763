"""STIR/SHAKEN: what a call's caller ID is worth. :class:`Verifier` checks a call's
``Identity`` header (RFC 8224, RFC 8225 PASSporT, RFC 8588 SHAKEN, ATIS-1000074) against the
configured STI-CA roots; :func:`from_verstat` reads the verdict a carrier that verified it
for us put in the caller's URI. Both answer an :class:`Attestation`."""

from rtbridge.domain.attestation import LEVELS
from rtbridge.sip.stir.attestation import Attestation
from rtbridge.sip.stir.verifier import Verifier
from rtbridge.sip.stir.verstat import from_verstat

__all__ = ["LEVELS", "Attestation", "Verifier", "from_verstat"]
