"""What an INVITE's caller is attested as (STIR/SHAKEN, SPEC §4.9), and who is believed.

Three sources, in order:

1. an ``Identity`` header (RFC 8224): its PASSporT verified here (``sip/stir/``), whoever
   sent it — a signature proves itself, the sender does not matter;
2. without one, a ``verstat`` parameter (RFC 8588 §5: an upstream SBC verified the call)
   in P-Asserted-Identity, else From — believed only from a carrier trunk or a source in
   ``stir_verstat_sources``: anyone else could write it;
3. otherwise ``none``.

A plain ``TN-Validation-Passed`` says the signature held, not at what level: the level comes
from the carrier's ``Attestation-Info`` or ``P-Attestation-Indicator`` header when there is
one, else it counts as ``C`` (never more than the carrier vouched for).

The router asks after authentication only, so an unknown sender never makes the agent
fetch a certificate."""

from __future__ import annotations

from rtbridge.sip.proxy import Networks, in_networks
from rtbridge.sip.router import IncomingInvite
from rtbridge.sip.stir import Attestation, Verifier, from_verstat

UNSIGNED = Attestation("none")


class Attester:
    """Thread-safe (the verifier's caches are); one per agent."""

    def __init__(self, verifier: Verifier, *, verstat_sources: Networks = ()) -> None:
        self.verifier = verifier
        self.verstat_sources = verstat_sources

    def attest(
        self,
        invite: IncomingInvite,
        *,
        orig: str | None,
        dest: str | None,
        trunk: bool = False,
    ) -> Attestation:
        """``orig``: the caller (E.164) the INVITE names; ``dest``: the number called;
        ``trunk``: the INVITE came from a carrier trunk, whose verstat is believed."""
        if invite.identities:
            return self.verifier.verify(invite.identities, orig=orig, dest=dest)
        if trunk or in_networks(invite.source_ip, self.verstat_sources):
            hint = invite.headers.get("attestation-info") or invite.headers.get(
                "p-attestation-indicator"
            )
            for name in ("p-asserted-identity", "from"):
                found = from_verstat(invite.headers.get(name), attest=hint)
                if found is not None:
                    return found
        return UNSIGNED


def describe(attestation: Attestation) -> str:
    """One phrase for logs and the reservation's story: ``B``, ``failed (bad signature)``."""
    if attestation.why:
        return f"{attestation.level} ({attestation.why})"
    return attestation.level
