"""``stop()`` with a call not yet connected (sip/b2bua/agent.py): the publisher gets ``503``
+ ``Retry-After`` (try another agent), and a reservation the router claimed gets its
"ended" record (SPEC §7: no claimed call without one) — from the bridge when it was dialing,
from the router's worker (``abandoned_event``) when the router answered only after the agent
was gone."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.sip.b2bua.support import (
    UUID,
    AgentFactory,
    ScriptedRouter,
    assert_ok,
    bridge_to,
    start_uac,
    start_uas,
)

pytestmark = pytest.mark.sip


def test_stop_while_routing(make_agent: AgentFactory, tmp_path: Path) -> None:
    """The router claims the reservation but answers only after the agent stopped: nobody
    can dial any more, and the claim is closed all the same."""
    buyer = start_uas(tmp_path, "uas_answer.xml")
    router = ScriptedRouter(bridge_to(buyer.uri()), gate=threading.Event())
    agent, _ = make_agent(router)
    publisher = start_uac(tmp_path, agent, "uac_failure.xml")
    router.wait_for(lambda: len(router.invites) == 1)
    agent.stop()
    assert router.events == []  # nothing was claimed as far as the agent knew
    assert router.gate is not None
    router.gate.set()  # the router's answer comes back to an agent that is gone
    ended = router.ended()
    assert (ended.reservation_uuid, ended.kind, ended.hangup_by) == (UUID, "ended", "agent")
    assert ended.publisher_code == 503 and ended.answer_at is None
    pub = publisher.wait()
    assert_ok(pub)
    assert pub.invite_answers() == [503]
    assert pub.response(503).header("Retry-After") == "5"
    assert buyer.proc.poll() is None, "the buyer was never dialled"


def test_stop_while_dialing(make_agent: AgentFactory, tmp_path: Path) -> None:
    buyer = start_uas(tmp_path, "uas_noanswer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(buyer.uri())))
    publisher = start_uac(tmp_path, agent, "uac_failure.xml")
    router.wait_for(lambda: any(e.kind == "ringing" for e in router.events))
    agent.stop()
    ended = router.ended(timeout=1.0)  # delivered before stop() returned
    assert (ended.publisher_code, ended.hangup_by) == (503, "agent")
    pub, called = publisher.wait(), buyer.wait()
    assert_ok(pub, called)
    assert pub.invite_answers() == [503]
    assert pub.response(503).header("Retry-After") == "5"
    assert called.requests("CANCEL"), "the buyer leg is cancelled"
