"""The agent's pjsua2 accounts: its identities toward publishers and buyers.

pjsua2 needs an account for every call. The agent keeps one per (outbound credentials, IPv6
transport kind, SRTP mode): a buyer or trunk that challenges needs its credentials on the
account that dials it, an IPv6 target must be dialled from an account bound to an IPv6
transport, and the SRTP mode is an account setting (``endpoint.account_config``). The
default account (the first created) answers IPv4 INVITEs; the accounts bound to the IPv6
transports answer IPv6 ones (:meth:`Accounts.select`). None of them registers anywhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.b2bua.endpoint import Endpoint, Transport, account_config
from rtbridge.sip.b2bua.library import Library
from rtbridge.sip.messages import parse_request, split_host_port, via_transport
from rtbridge.sip.router import OutboundAuth, SrtpMode

log = logging.getLogger("rtbridge.sip.b2bua.accounts")

IncomingHandler = Callable[["SipAccount", Any], None]


class SipAccount(pj.Account):  # type: ignore[misc]
    """One identity of the agent; hands incoming INVITEs to the agent's intake."""

    def __init__(self, on_incoming: IncomingHandler) -> None:
        super().__init__()
        self._on_incoming = on_incoming

    def onIncomingCall(self, prm: Any) -> None:
        try:
            self._on_incoming(self, prm)
        except Exception:
            log.exception("onIncomingCall failed")


class Accounts:
    """Every account the agent made, created on first need; agent thread only."""

    def __init__(self, config: AgentConfig, library: Library, on_incoming: IncomingHandler) -> None:
        self._config = config
        self._ipv6_media = library.ipv6
        self._on_incoming = on_incoming
        self._made: dict[tuple[OutboundAuth | None, str | None, SrtpMode], SipAccount] = {}

    @property
    def inbound_srtp(self) -> SrtpMode:
        """What publishers' offers are answered with (the agent's ``srtp``)."""
        return "optional" if self._config.srtp == "optional" else "off"

    def open(self, endpoint: Endpoint) -> None:
        """The accounts that answer: the default one, and one per IPv6 transport."""
        self.for_target(endpoint, None, srtp=self.inbound_srtp)
        for transport in endpoint.transports:
            if transport.ipv6:
                self.for_target(endpoint, None, _bound_uri(transport), srtp=self.inbound_srtp)

    def for_target(
        self, endpoint: Endpoint, auth: OutboundAuth | None, target_uri: str = "",
        srtp: SrtpMode = "off",
    ) -> SipAccount:  # fmt: skip
        """The account to dial ``target_uri`` with (made on first need)."""
        ipv6_kind = _ipv6_transport_kind(target_uri)
        key = (auth, ipv6_kind, srtp)
        account = self._made.get(key)
        if account is None:
            bound = None
            if ipv6_kind is not None:
                bound = endpoint.ipv6_transport(ipv6_kind)
                if bound is None:
                    raise ValueError(f"no IPv6 {ipv6_kind} listener to reach {target_uri}")
            account = SipAccount(self._on_incoming)
            acfg = account_config(self._config, auth=auth, bound=bound, srtp=srtp,
                                  ipv6_media=self._ipv6_media)  # fmt: skip
            account.create(acfg, not self._made)
            self._made[key] = account
        return account

    def select(self, prm: Any) -> None:
        """pjsua2's account selection hook: an IPv6 request must be handled by the account
        bound to its IPv6 transport."""
        host, _ = split_host_port(prm.rdata.srcAddress)
        if ":" not in host:
            return
        transport = via_transport(parse_request(prm.rdata.wholeMsg).first("via"))
        account = self._made.get((None, transport, self.inbound_srtp))
        if account is not None:
            prm.accountIndex = account.getId()

    def shutdown(self) -> None:
        """Before libDestroy, after every Call is gone."""
        for account in self._made.values():
            with contextlib.suppress(pj.Error):
                account.shutdown()
        self._made.clear()


def _ipv6_transport_kind(uri: str) -> str | None:
    """Transport ("UDP"/"TCP"/"TLS") when ``uri``'s host is an IPv6 literal, else None."""
    _, _, rest = uri.partition("@")
    if not rest.startswith("["):
        rest = uri.partition(":")[2]
        if not rest.startswith("["):
            return None
    lowered = uri.lower()
    if ";transport=tls" in lowered or lowered.startswith("sips:"):
        return "TLS"
    return "TCP" if ";transport=tcp" in lowered else "UDP"


def _bound_uri(transport: Transport) -> str:
    """A URI that selects ``transport``'s account in :meth:`Accounts.for_target`."""
    return f"sip:x@[{transport.host}]:{transport.port};transport={transport.kind.lower()}"
