"""Issue 17 row 4: a re-INVITE or UPDATE may move a party's media only to where that party
is — its signalling address, its set-up media, its configured networks (sip/media_home.py).
Anywhere else is refused with 488 and the call stays as it was: the agent sends no RTP to
the address the peer named (a socket listening there hears nothing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sip.b2bua.support import UUID, AgentFactory, bridge_to
from tests.sip.rawsip import SipPeer, Trap, sdp, wait_until
from tests.sip.security.calls import BUYER_HZ, PUBLISHER_HZ, Call, both_hear, bridged

pytestmark = pytest.mark.sip


@pytest.fixture
def call(make_agent: AgentFactory) -> Iterator[Call]:
    call = bridged(make_agent, publisher_media=("127.0.0.10/32",), buyer_media=("127.0.0.11/32",))
    yield call
    call.close()


def _move(call: Call, method: str, host: str, port: int, *, buyer: bool = False,
          rtcp: tuple[str, int] | None = None) -> int | None:  # fmt: skip
    peer = call.buyer if buyer else call.publisher
    dialog = call.buyer_dialog if buyer else call.dialog
    answer = peer.request(dialog, method, body=sdp(host, port, rtcp=rtcp, version=dialog.cseq + 1))
    if answer is not None and method == "INVITE":
        peer.request(dialog, "ACK")
    return answer.status if answer is not None else None


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_moving_the_publishers_media_to_a_third_party_is_488(call: Call, method: str) -> None:
    trap = call.trap("127.0.0.9")
    assert _move(call, method, trap.host, trap.port) == 488
    assert call.media_flows()  # still where it was: what the agent sent since went there
    assert trap.drained() == []
    assert call.agent.status().media_refused == {"publisher": 1}


def test_moving_only_rtcp_or_to_a_name_is_488(call: Call) -> None:
    trap = call.trap("127.0.0.9")
    assert _move(call, "INVITE", "127.0.0.1", call.publisher.rtp_port,
                 rtcp=(trap.host, trap.port)) == 488  # fmt: skip
    assert _move(call, "INVITE", "media.attacker.example", 4000) == 488
    assert call.media_flows()
    assert trap.drained() == []


def test_moving_the_buyers_media_to_a_third_party_is_488(call: Call) -> None:
    trap = call.trap("127.0.0.9")
    assert _move(call, "INVITE", trap.host, trap.port, buyer=True) == 488
    assert call.media_flows()
    assert trap.drained() == []
    assert call.agent.status().media_refused == {"buyer": 1}


def test_media_may_move_within_the_partys_home(call: Call) -> None:
    """Its own signalling address (another port) and its media_networks are its home. (The
    peers stop sending from their old RTP sockets: pjmedia latches onto where RTP comes
    from, and would follow them back there.)"""
    call.publisher.rtp_to = call.buyer.rtp_to = None
    own = call.trap("127.0.0.1")  # the publisher's address, another port
    assert _move(call, "INVITE", own.host, own.port) == 200
    assert wait_until(lambda: len(own.received) > 10)
    network = call.trap("127.0.0.10")  # publisher_media
    assert _move(call, "UPDATE", network.host, network.port) == 200
    assert wait_until(lambda: len(network.received) > 10)
    buyer_net = call.trap("127.0.0.11")  # buyer_media
    assert _move(call, "INVITE", buyer_net.host, buyer_net.port, buyer=True) == 200
    assert wait_until(lambda: len(buyer_net.received) > 10)
    # hold is allowed anywhere: it sends nothing
    assert _move(call, "INVITE", "0.0.0.0", 4000) == 200
    assert call.agent.status().media_refused == {}


def test_an_answer_that_moves_media_ends_the_call(call: Call) -> None:
    """A re-INVITE without SDP gets the agent's offer; the answer comes in the ACK and
    cannot be refused: the call is ended instead of streaming to the named address."""
    trap = call.trap("127.0.0.9")
    dialog = call.dialog
    answer = call.publisher.request(dialog, "INVITE")
    assert answer is not None and answer.status == 200 and "m=audio" in answer.body
    call.publisher.request(dialog, "ACK", body=sdp(trap.host, trap.port, version=9))
    ended = call.router.ended()  # both legs gone, their media with them
    assert ended.hangup_by == "agent"
    assert len(trap.drained()) <= 2  # at most what left before the BYE
    assert call.agent.status().media_refused == {"publisher": 1}


def test_a_delayed_offer_publisher_keeps_its_call(make_agent: AgentFactory) -> None:
    """An INVITE without SDP (a carrier's delayed offer): the publisher's media is first
    known from its answer in the ACK, after the call is connected — that is its home, not
    a move; a later answer that moves it still ends the call."""
    buyer = SipPeer("127.0.0.1", tone=BUYER_HZ)
    publisher = SipPeer("127.0.0.1", answer=None, tone=PUBLISHER_HZ)
    trap = Trap("127.0.0.9")
    agent, router = make_agent()
    try:
        router.decide = bridge_to(f"sip:buyer@127.0.0.1:{buyer.port}")
        dialog, final = publisher.invite(("127.0.0.1", agent.port), UUID, offer=False)
        assert final.status == 200 and "m=audio" in final.body
        assert both_hear(publisher, buyer), "no audio across the bridge"
        assert agent.status().media_refused == {}
        assert not any(e.kind == "ended" for e in router.events)
        answer = publisher.request(dialog, "INVITE")
        assert answer is not None and answer.status == 200
        publisher.request(dialog, "ACK", body=sdp(trap.host, trap.port, version=9))
        assert router.ended().hangup_by == "agent"
    finally:
        for peer in (buyer, publisher):
            peer.close()
        trap.close()
