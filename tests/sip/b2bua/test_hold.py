"""A call put on hold mid-call (SPEC §4.4): the publisher's re-INVITE says ``a=sendonly``, or
the older ``c=0.0.0.0``, and its party falls silent. The call stays up, the held leg is not
timed for RTP inactivity (``rtp_timeout``), and once taken off hold audio flows both ways
again — the tones of tests/support/tone.py, each side hearing the other's.

The proof that the timeout had its chance: a second call through the same agent carries
audio for longer than the timeout after the held call fell silent, then its publisher falls
silent without any hold and the call ends with "media-timeout"; only then is the held call,
silent for over twice the timeout by then, looked at."""

from __future__ import annotations

import pytest

from tests.sip.b2bua.support import AgentFactory
from tests.sip.rawsip import sdp, sdp_media, wait_until
from tests.sip.security.calls import BUYER_HZ, Call, bridged

pytestmark = pytest.mark.sip

TIMEOUT = 2.0  # rtp_timeout


def _reinvite(call: Call, body: str) -> str:
    """A re-INVITE from the publisher with ``body``; the agent's SDP answer."""
    answer = call.publisher.request(call.dialog, "INVITE", body=body)
    assert answer is not None and answer.status == 200, answer
    call.publisher.request(call.dialog, "ACK")
    return answer.body


@pytest.mark.parametrize("hold", ["sendonly", "0.0.0.0"])
def test_a_held_call_outlives_the_rtp_timeout_and_resumes(
    make_agent: AgentFactory, hold: str
) -> None:
    agent, router = make_agent(rtp_timeout=TIMEOUT)
    held = bridged(make_agent, agent=agent, router=router, reservation_uuid="held-call")
    control = bridged(make_agent, agent=agent, router=router, reservation_uuid="control-call")
    try:
        peer = held.publisher
        version = held.dialog.cseq + 1
        if hold == "sendonly":
            answer = _reinvite(held, sdp(peer.host, peer.rtp_port, direction="sendonly",
                                         version=version))  # fmt: skip
            assert "a=recvonly" in answer, answer
        else:
            answer = _reinvite(held, sdp("0.0.0.0", peer.rtp_port, version=version))
        # the holder goes on sending a while (music on hold), so the re-negotiated stream,
        # which counts from zero, has received: one that never did is not timed anyway...
        sent = peer.rtp_sent
        assert wait_until(lambda: peer.rtp_sent >= sent + 25)
        peer.rtp_to = None  # ...then the held party is silent
        # the control call carries audio for longer than the timeout meanwhile (heard, not
        # slept: the audio itself is the clock), then its publisher falls silent, no hold
        since = control.publisher.ear.mark()
        assert wait_until(
            lambda: control.publisher.ear.seconds_of(BUYER_HZ, since) >= TIMEOUT + 0.5, 20
        )
        control.publisher.rtp_to = None

        timed_out = router.ended()
        assert (timed_out.reservation_uuid, timed_out.hangup_by) == ("control-call",
                                                                      "media-timeout")  # fmt: skip
        assert [e.reservation_uuid for e in router.events if e.kind == "ended"] == ["control-call"]
        assert agent.status().bridges["connected"] == 1  # the held call, silent for longer

        answer = _reinvite(held, sdp(peer.host, peer.rtp_port, version=version + 1))
        peer.rtp_to = sdp_media(answer)
        assert "a=sendrecv" in answer, answer
        assert held.media_flows(), "audio did not come back after the hold"
        bye = peer.request(held.dialog, "BYE")
        assert bye is not None and bye.status == 200
        router.wait_for(lambda: len([e for e in router.events if e.kind == "ended"]) == 2)
        ended = [e for e in router.events if e.kind == "ended"][-1]
        assert (ended.reservation_uuid, ended.hangup_by) == ("held-call", "publisher")
        assert agent.status().media_refused == {}
    finally:
        held.close()
        control.close()
