"""BYE on the legs of calls whose agent is gone — left up by this agent's previous run, or
by a silent peer whose lease this agent took over — sent in the background.

The calls are already closed in the database when their dialogs arrive here; what is left is
telling both far ends, who would otherwise keep the call up until a session timer or their
own media timeout. A far end that never answers costs up to its BYE's retransmissions (about
32 s): that happens on this module's thread, while the agent takes calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.dialogs import Dialog, TlsClient, end_legs

log = logging.getLogger("rtbridge.sip.leftover_legs")


class LeftoverLegs:
    def __init__(self, hosts: Sequence[str] = (), tls: TlsClient | None = None) -> None:
        """BYEs from ``hosts`` (the agent's addresses; any when empty), TLS as ``tls``."""
        self._hosts = tuple(hosts)
        self._tls = tls
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rtbridge-leftover-byes")

    @classmethod
    def for_agent(cls, config: AgentConfig) -> LeftoverLegs:
        return cls(config.hosts, TlsClient.from_config(config))

    def end(self, calls: Iterable[Mapping[str, Any]], *, whose: str) -> None:
        """Send BYE on both legs of each call (``callrecord.dialogs`` values); ``whose``: the
        agent that left them, for the log."""
        legs = [Dialog.from_json(leg) for call in calls for leg in call.values()]
        if legs:
            self._pool.submit(self._end, legs, whose)

    def _end(self, legs: list[Dialog], whose: str) -> None:
        log.warning("sending BYE on the legs %s left up", whose, extra={"legs": len(legs)})
        try:
            end_legs(legs, hosts=self._hosts, tls=self._tls)  # logs what was answered
        except Exception:
            log.exception("BYEs on the legs %s left up failed", whose)
