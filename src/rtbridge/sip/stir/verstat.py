"""A carrier's verdict instead of the token: the ``verstat`` parameter (RFC 8224 §6.2.2,
3GPP TS 24.229, ATIS-1000074) a terminating carrier that verified the Identity header adds
to the caller's URI in P-Asserted-Identity or From, for the next hop that cannot verify:
``<sip:+13125550100@host;user=phone;verstat=TN-Validation-Passed>`` or
``<tel:+13125550100;verstat=No-TN-Validation>``.

The mapping, its values compared without regard to case:

- ``TN-Validation-Passed-A`` / ``-B`` / ``-C`` (some carriers' extension): that level.
- ``TN-Validation-Passed``: the level an ``attest`` hint names (a carrier's separate header,
  read by the caller of :func:`from_verstat`), else ``C``. The standard value says the
  signature held, not what the signer attested; reading it as ``A`` would let a gateway-
  attested call meet a minimum of A on the carrier's silence. ``C`` is what is known.
- ``TN-Validation-Failed``: failed. ``No-TN-Validation``: none.
- anything else: failed (a verdict we cannot read vouches for nothing).

Only the URI counts: a display name, even one quoting ``verstat=…``, is the caller's text."""

from __future__ import annotations

import re

from rtbridge.domain.attestation import LEVELS
from rtbridge.sip.stir.attestation import Attestation

MAX_HEADER = 8 * 1024

_QUOTED = re.compile(r'\s*"(?:[^"\\]|\\.)*"\s*')
_VERSTAT = re.compile(r";\s*verstat\s*=\s*([^;>?\s,]*)", re.IGNORECASE)


def from_verstat(header_value: str | None, *, attest: str | None = None) -> Attestation | None:
    """The carrier's attestation in a P-Asserted-Identity or From value; None when it
    carries no ``verstat`` parameter. ``attest``: a level the carrier stated elsewhere,
    used for a plain ``TN-Validation-Passed``."""
    if not header_value or len(header_value) > MAX_HEADER:
        return None
    match = _VERSTAT.search(_uri(header_value))
    if match is None:
        return None
    value = match.group(1).lower()
    if value == "tn-validation-passed":
        hint = (attest or "").strip().upper()
        return Attestation(hint if hint in LEVELS else "C", source="verstat")
    for level in LEVELS:
        if value == f"tn-validation-passed-{level.lower()}":
            return Attestation(level, source="verstat")
    if value == "no-tn-validation":
        return Attestation("none", source="verstat")
    if value == "tn-validation-failed":
        return Attestation("failed", why="carrier verstat TN-Validation-Failed", source="verstat")
    return Attestation("failed", why="unknown verstat value", source="verstat")


def _uri(value: str) -> str:
    """The URI of a name-addr (inside ``<…>``, after any quoted display name) or the
    addr-spec itself."""
    quoted = _QUOTED.match(value)
    rest = value[quoted.end() :] if quoted else value
    if "<" in rest:
        return rest.split("<", 1)[1].split(">", 1)[0]
    return rest
