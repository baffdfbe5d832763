"""Issue 17 rows 1, 1c, 3, 3b and 9: the agent answers only what a B2BUA for RTB needs.

A REFER from either leg, SUBSCRIBE, MESSAGE, PUBLISH and REGISTER from anyone, odd requests in
a dialog, an INVITE that would replace a live call: each is refused with the code the screen
gives (sip/screen.py), never 500, and nothing is dialled — a socket listening where the
attacker points hears nothing, and pjsua holds no call but the bridge's two legs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rtbridge.sip.screen import ALLOW
from tests.sip.b2bua.support import UUID, AgentFactory, bridge_to, options
from tests.sip.rawsip import Dialog, SipPeer, Trap, wait_until
from tests.sip.security.calls import Call, bridged

pytestmark = pytest.mark.sip

ALLOWED = ", ".join(ALLOW)


@pytest.fixture
def call(make_agent: AgentFactory) -> Iterator[Call]:
    call = bridged(make_agent)
    yield call
    call.close()


def _refer(trap: Trap) -> list[str]:
    return [f"Refer-To: <sip:+442079460000@{trap.host}:{trap.port}>",
            "Referred-By: <sip:attacker@127.0.0.1>"]  # fmt: skip


def _pjsua_calls(call: Call) -> int:
    return len(call.agent.pjsua_calls())


def test_refer_from_the_publisher_is_refused_and_nothing_dialled(call: Call) -> None:
    trap = call.trap()
    for _ in range(5):
        answer = call.publisher.request(call.dialog, "REFER", headers=_refer(trap))
        assert answer is not None and answer.status == 403, answer
        assert answer.header("allow") == ALLOWED
    assert call.media_flows()  # the call is as it was, and the agent has moved on since
    assert trap.drained() == []  # no INVITE, no RTP
    assert _pjsua_calls(call) == 2  # the bridge's two legs, nothing else
    assert call.publisher.request(call.dialog, "BYE").status == 200  # type: ignore[union-attr]
    ended = call.router.ended()
    assert ended.hangup_by == "publisher"
    status = call.agent.status()
    assert status.screened == {("method", "REFER"): 5} and status.stray_calls == 0


def test_refer_from_the_buyer_is_refused_and_nothing_dialled(call: Call) -> None:
    trap = call.trap()
    answer = call.buyer.request(call.buyer_dialog, "REFER", headers=_refer(trap))
    assert answer is not None and answer.status == 403
    assert call.media_flows()
    assert trap.drained() == [] and _pjsua_calls(call) == 2


def test_twenty_refers_to_a_busy_target_leave_the_agent_running(make_agent: AgentFactory) -> None:
    """Row 1c: a REFER whose target answers 486 crashed pjsua's event loop in 5 of 10 runs."""
    busy = SipPeer("127.0.0.9", answer=486)
    agent, router = make_agent()
    try:
        for run in range(20):
            call = bridged(make_agent, agent=agent, router=router)
            refer = [f"Refer-To: <sip:+442079460000@127.0.0.9:{busy.port}>"]
            answer = call.publisher.request(call.dialog, "REFER", headers=refer)
            assert answer is not None and answer.status == 403, run
            assert call.publisher.request(call.dialog, "BYE").status == 200  # type: ignore[union-attr]
            router.wait_for(lambda n=run: sum(e.kind == "ended" for e in router.events) == n + 1)
            call.close()
        assert busy.requests == []  # the busy target never heard from the agent
        assert agent.running
    finally:
        busy.close()


@pytest.mark.parametrize("method", ["SUBSCRIBE", "MESSAGE", "PUBLISH", "REGISTER", "NOTIFY",
                                    "UPDATE", "INFO", "FOO"])  # fmt: skip
def test_out_of_dialog_requests_are_405_from_anyone(make_agent: AgentFactory, method: str) -> None:
    """Rows 3 and 3b: SUBSCRIBE was 200 then NOTIFYs to whatever Contact said (23x
    reflection); MESSAGE was 200 with no authentication at all."""
    agent, _ = make_agent()
    peer, trap = SipPeer("127.0.0.5", answer=None), Trap("127.0.0.9")
    try:
        stranger = Dialog(call_id=f"stranger-{method}", local_uri="sip:x@127.0.0.5",
                          local_tag="t1", remote_uri=f"sip:{UUID}@sip.rtb.example.com",
                          remote_tag="", peer=("127.0.0.1", agent.port))  # fmt: skip
        headers = ["Event: presence", "Expires: 600",
                   f"Contact: <sip:victim@{trap.host}:{trap.port}>"]  # fmt: skip
        answer = peer.request(
            stranger, method, headers=headers, body="hello" if method == "MESSAGE" else ""
        )
        assert answer is not None and answer.status == 405, answer
        assert answer.header("allow") == ALLOWED
        # the agent answered a later request: whatever this one made it send has left
        assert options(agent.port).startswith("SIP/2.0 200")
        assert trap.drained() == []
        assert agent.status().screened  # counted
    finally:
        peer.close()
        trap.close()


def test_options_and_bye_out_of_dialog(make_agent: AgentFactory) -> None:
    agent, _ = make_agent()
    peer = SipPeer("127.0.0.5", answer=None)
    try:
        probe = Dialog(call_id="probe", local_uri="sip:x@127.0.0.5", local_tag="t1",
                       remote_uri="sip:ping@sip.rtb.example.com", remote_tag="",
                       peer=("127.0.0.1", agent.port))  # fmt: skip
        options = peer.request(probe, "OPTIONS")
        assert options is not None and options.status == 200
        assert options.header("allow") == ALLOWED
        assert options.header("allow-events") is None  # no event package is served
        supported = options.header("supported") or ""
        assert "replaces" not in supported and "norefersub" not in supported
        bye = peer.request(probe, "BYE")
        assert bye is not None and bye.status == 481
    finally:
        peer.close()


def test_odd_requests_in_a_dialog_are_never_500(call: Call) -> None:
    """Row 9: INFO (not DTMF), NOTIFY, SUBSCRIBE and OPTIONS in a dialog were answered
    500 Unhandled by dialog usages."""
    seen = {}
    for method, headers, body in [
        ("INFO", ["Content-Type: application/x-broadsoft"], "junk"),
        ("INFO", [], ""),
        ("NOTIFY", ["Event: talk", "Subscription-State: active"], ""),
        ("SUBSCRIBE", ["Event: dialog", "Expires: 600"], ""),
        ("MESSAGE", ["Content-Type: text/plain"], "hi"),
        ("OPTIONS", [], ""),
    ]:
        answer = call.publisher.request(call.dialog, method, headers=headers, body=body)
        assert answer is not None, method
        seen[(method, body)] = answer.status
        if answer.status == 415:
            assert "application/dtmf-relay" in (answer.header("accept") or "")
    assert seen == {("INFO", "junk"): 415, ("INFO", ""): 415, ("NOTIFY", ""): 405,
                    ("SUBSCRIBE", ""): 405, ("MESSAGE", "hi"): 405, ("OPTIONS", ""): 200}  # fmt: skip
    dtmf = call.publisher.request(
        call.dialog, "INFO", headers=["Content-Type: application/dtmf-relay"],
        body="Signal=5\r\nDuration=160\r\n",
    )  # fmt: skip
    assert dtmf is not None and dtmf.status == 200
    assert wait_until(lambda: call.agent.status().dtmf_relayed == 1)
    # a dialog that does not exist: 481 whatever the method
    ghost = Dialog(call.dialog.call_id, call.dialog.local_uri, call.dialog.local_tag,
                   call.dialog.remote_uri, "no-such-tag", call.dialog.peer, cseq=50)  # fmt: skip
    for method in ("REFER", "OPTIONS", "BYE"):
        answer = call.publisher.request(ghost, method)
        assert answer is not None and answer.status == 481, method
    assert call.media_flows()


def test_an_invite_replacing_a_live_call_is_refused(call: Call) -> None:
    """RFC 3891 Replaces would let whoever knows a dialog's identifiers take the call over."""
    intruder = SipPeer("127.0.0.1", answer=None)
    try:
        d = call.dialog
        replaces = f"Replaces: {d.call_id};to-tag={d.remote_tag};from-tag={d.local_tag}"
        _, final = intruder.invite(("127.0.0.1", call.agent.port), UUID, headers=[replaces])
        assert final.status == 403
        assert call.media_flows() and _pjsua_calls(call) == 2
    finally:
        intruder.close()


def test_a_buyer_redirect_is_not_followed(make_agent: AgentFactory) -> None:
    """A 3xx from the buyer names a destination the catalog did not: never dialled."""
    agent, router = make_agent()
    trap = Trap("127.0.0.9")
    redirector = SipPeer("127.0.0.1", answer=302)
    redirector.contact = f"sip:+442079460000@{trap.host}:{trap.port}"
    publisher = SipPeer("127.0.0.1", answer=None)
    try:
        router.decide = bridge_to(f"sip:buyer@127.0.0.1:{redirector.port}")
        _, final = publisher.invite(("127.0.0.1", agent.port), UUID)
        assert final.status is not None and final.status >= 400
        ended = router.ended()
        assert ended.buyer_code == 302 and ended.hangup_by == "buyer"
        assert options(agent.port).startswith("SIP/2.0 200")  # the agent has moved on
        assert trap.drained() == []
    finally:
        for peer in (redirector, publisher):
            peer.close()
        trap.close()
