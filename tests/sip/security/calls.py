"""A bridged call between two hostile-capable peers (tests/sip/rawsip.py), for the security
suite: the publisher and the buyer are bare UDP user agents that can send anything in their
dialogs, the agent in between runs with the scripted router of tests/sip/b2bua."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rtbridge.sip.b2bua.agent import Agent
from tests.sip.b2bua.support import UUID, AgentFactory, ScriptedRouter, bridge_to
from tests.sip.rawsip import Dialog, SipPeer, Trap, wait_until


@dataclass
class Call:
    agent: Agent
    router: ScriptedRouter
    publisher: SipPeer
    buyer: SipPeer
    dialog: Dialog  # the publisher's
    traps: list[Trap] = field(default_factory=list)

    @property
    def buyer_dialog(self) -> Dialog:
        return self.buyer.dialogs[-1]

    def media_flows(self, timeout: float = 5.0) -> bool:
        """Each side hears the other's tone (again) within ``timeout``: audio crossed the
        agent both ways."""
        return both_hear(self.publisher, self.buyer, timeout)

    def trap(self, host: str = "127.0.0.9") -> Trap:
        trap = Trap(host)
        self.traps.append(trap)
        return trap

    def close(self) -> None:
        for peer in (self.publisher, self.buyer):
            peer.close()
        for trap in self.traps:
            trap.close()


PUBLISHER_HZ, BUYER_HZ = 440, 1000
HEARD_FOR = 0.3  # seconds of the other side's tone that prove audio crossed


def both_hear(publisher: SipPeer, buyer: SipPeer, timeout: float = 5.0) -> bool:
    """Within ``timeout``, from now on, the publisher hears the buyer's tone and the buyer
    the publisher's."""
    pub, buy = publisher.ear.mark(), buyer.ear.mark()
    return wait_until(
        lambda: publisher.ear.seconds_of(buyer.tone, pub) >= HEARD_FOR
        and buyer.ear.seconds_of(publisher.tone, buy) >= HEARD_FOR,
        timeout, step=0.1,
    )  # fmt: skip


def bridged(make_agent: AgentFactory, *, agent: Agent | None = None,
            router: ScriptedRouter | None = None, buyer_answer: int = 200,
            **plan: object) -> Call:  # fmt: skip
    """A connected call, audio flowing both ways. ``plan``: fields of the router's BridgeTo
    (e.g. ``publisher_media=("127.0.0.10/32",)``)."""
    buyer = SipPeer("127.0.0.1", answer=buyer_answer, tone=BUYER_HZ)
    if agent is None or router is None:
        agent, router = make_agent()
    decide = bridge_to(f"sip:buyer@127.0.0.1:{buyer.port}")
    router.decide = lambda invite: dataclasses.replace(decide(invite), **plan)  # type: ignore[arg-type]
    publisher = SipPeer("127.0.0.1", answer=None, tone=PUBLISHER_HZ)
    dialog, final = publisher.invite(("127.0.0.1", agent.port), UUID)
    call = Call(agent, router, publisher, buyer, dialog)
    if buyer_answer == 200:
        assert final.status == 200, final.first_line
        assert call.media_flows(), "no audio across the bridge"
    return call
