"""The dry-run "would this IP / this credential be accepted, as which publisher?" (SPEC §5).

It builds the same :class:`~rtbridge.sip.auth.access.AccessSnapshot` the SIP agent builds
(:func:`~rtbridge.sip.reservation_router.load_access`) and asks the agent's own
:class:`~rtbridge.sip.auth.authenticator.Authenticator`, so the answer cannot drift from what a
real INVITE gets."""

from __future__ import annotations

import ipaddress
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from rtbridge.config.overlaps import Claim, shadow_warnings, trunk_claims
from rtbridge.domain.errors import InvalidInput
from rtbridge.sip.auth.authenticator import UNKNOWN_USER, Accepted, Authenticator, Refused
from rtbridge.sip.reservation_router import load_access
from rtbridge.storage.catalog import Catalog
from rtbridge.storage.models import AllowlistEntry


def _authenticator(catalog: Catalog) -> Authenticator:
    # The secret only signs nonces, which a dry run never issues to anyone.
    return Authenticator(realm=catalog.sip_domain, secret=secrets.token_bytes(32))


def check(
    engine: Engine,
    catalog: Catalog,
    *,
    ip: str | None = None,
    username: str | None = None,
    password: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """``{"accepted": true, "publisher", "rule", "warnings"}`` or ``{"accepted": false,
    "reason"}``. ``warnings`` names the other publishers' entries that also contain the IP
    and lose to the matching rule by longest prefix (accepted with ``allow_overlap``), and the
    trunks whose networks contain it (its calls to a number would be the carrier's)."""
    if (ip is None) == (username is None):
        raise InvalidInput("give ip, or username and password (one of the two)")
    access = load_access(engine, catalog)
    authenticator = _authenticator(catalog)
    if ip is not None:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            raise InvalidInput(f"ip: not an IP address: {ip!r}") from None
        when = time.time() if now is None else now
        rule = access.directory.match_ip(str(address), when)
        if rule is not None:
            winner = Claim(rule.publisher_id, str(rule.network))
            with Session(engine) as session:
                stored = [Claim(e.publisher_id, e.cidr, e.expires_at)
                          for e in session.exec(select(AllowlistEntry))]  # fmt: skip
            stored += trunk_claims((t.id, t.ips, t.allow_overlap) for t in catalog.trunks.values())
            warnings = shadow_warnings(address, winner, stored, datetime.fromtimestamp(when, UTC))
            return {"accepted": True, "publisher": rule.publisher_id, "rule": rule.describe(),
                    "warnings": warnings}  # fmt: skip
        answer: dict[str, Any] = {
            "accepted": False,
            "reason": f"{address} is on no publisher's allowlist (or its entry expired): the "
            "agent answers 401 and asks for digest credentials",
        }
        trunk = access.trunks.match_ip(str(address), when)
        if trunk is not None:
            answer["trunk"] = trunk.publisher_id
            answer["reason"] += (
                f"; it is trunk {trunk.publisher_id!r}, trusted for PSTN calls to pool DIDs"
            )
        return answer
    if password is None:
        raise InvalidInput("password: required with username")
    assert username is not None
    decision = authenticator.check_password(
        username=username, password=password, directory=access.directory
    )
    if isinstance(decision, Accepted):
        return {"accepted": True, "publisher": decision.publisher_id, "rule": decision.rule}
    assert isinstance(decision, Refused)  # a dry run sends no challenge
    if decision.cause == UNKNOWN_USER:
        # The agent gives no hint that a username does not exist (SPEC §4.5); the admin may know.
        return {
            "accepted": False,
            "reason": f"unknown SIP username {username!r}: the agent answers {decision.code} "
            f"{decision.reason}, as for a wrong password",
        }
    return {
        "accepted": False,
        "reason": f"wrong password for {username!r}: the agent answers {decision.code} {decision.reason}",
    }
