"""Who may send calls, as of one configuration version (SPEC §4.2): the publishers'
allowlists and credentials, the carrier trunks trusted by IP, and each publisher's policy.
Pure data and rules; :func:`rtbridge.sip.reservation_router.load_access` builds it from
the database."""

from __future__ import annotations

from dataclasses import dataclass, field

from rtbridge.sip.auth.allowlist import Directory
from rtbridge.sip.auth.authenticator import Refused

# Authentication failures decided by policy rather than by the authenticator (the refusal's
# cause, like authenticator.CAUSES: one name in the decision log and in
# rtbridge_sip_auth_failures_total): the publisher's TLS/SRTP policy, and a source header
# from a sender that is not a trusted proxy (named instead of missing-credentials: a proxy
# missing from trusted_proxies is the likelier story than a publisher without credentials).
TLS_REQUIRED = "tls-required"
SRTP_REQUIRED = "srtp-required"
UNTRUSTED_PROXY_HEADER = "untrusted-proxy-header"
POLICY_CAUSES = (TLS_REQUIRED, SRTP_REQUIRED, UNTRUSTED_PROXY_HEADER)


@dataclass(frozen=True)
class Policy:
    """What a publisher's calls must use (SPEC §4.1: TLS and SRTP per publisher)."""

    require_tls: bool = False
    require_srtp: bool = False

    def refusal(self, transport: str, offer_srtp: bool) -> Refused | None:
        """Checked after authentication and before the claim, so a refused INVITE leaves
        the reservation usable for a retry that meets the policy."""
        if self.require_tls and transport != "TLS":
            return Refused(403, "Forbidden (this publisher must call over TLS)",
                           cause=TLS_REQUIRED)  # fmt: skip
        if self.require_srtp and not offer_srtp:
            return Refused(488, "Not Acceptable Here (this publisher must offer SRTP)",
                           cause=SRTP_REQUIRED)  # fmt: skip
        return None


@dataclass(frozen=True)
class AccessSnapshot:
    """Who may send calls, as of one configuration version: publishers' allowlists and
    credentials, and carrier trunks (trusted by IP for the PSTN path)."""

    version: int
    directory: Directory
    trunks: Directory  # rule publisher_id = trunk id
    policies: dict[str, Policy] = field(default_factory=dict)  # per publisher, when not default
    # Where each publisher's media may move in a call (sip/media_home.py): its allowlisted
    # CIDRs and media_networks
    media: dict[str, tuple[str, ...]] = field(default_factory=dict)
