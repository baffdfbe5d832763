"""An agent whose lease was taken over (it was paused past ``takeover_after`` and a peer
closed its calls) is fenced: it hangs up every call, records none of them, refuses new ones
while it rejoins, then takes calls again (issue 21). The lease itself is tested on both
databases in tests/storage/test_leases.py; here the router only says "fenced"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sip.b2bua.support import (
    UUID,
    AgentFactory,
    ScriptedRouter,
    assert_ok,
    bridge_to,
    options,
    start_uac,
    start_uas,
)
from tests.sip.rawsip import wait_until


@pytest.mark.allow_agent_errors("fenced")
def test_a_fenced_agent_hangs_up_unrecorded_refuses_then_rejoins(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())), heartbeat_interval=0.3)
    pub = start_uac(tmp_path, agent, "uac_remote_bye.xml")
    router.wait_for(lambda: any(e.kind == "answered" for e in router.events))
    events_before = len(router.events)

    router.lease_taken = True  # the next heartbeat finds the lease taken over
    published, bought = pub.wait(15), uas.wait(15)
    assert_ok(published, bought)  # both far ends got a BYE and answered it
    assert published.requests("BYE") and bought.requests("BYE")
    router.wait_for(lambda: router.rejoins == 1)
    assert len(router.events) == events_before  # nothing recorded for the hung-up call
    assert agent.status().agent_id == "" and not agent.status().fenced

    # Rejoined: a new call is bridged and recorded again.
    uas2 = start_uas(tmp_path, "uas_hangup.xml", duration_ms=300)
    router.decide = bridge_to(uas2.uri())
    again = start_uac(tmp_path, agent, "uac_remote_bye.xml", service=UUID.replace("0c4d", "1c4d"))
    assert_ok(again.wait(15), uas2.wait(15))
    ended = router.ended()
    assert ended.reservation_uuid.startswith("1c4d") and ended.hangup_by == "buyer"


@pytest.mark.allow_agent_errors("fenced")
def test_while_fenced_invites_and_probes_get_503(make_agent: AgentFactory, tmp_path: Path) -> None:
    agent, router = make_agent(ScriptedRouter(), heartbeat_interval=0.3)
    gate_rejoin = router.rejoin

    def unavailable() -> None:
        raise ConnectionError("database unavailable")  # the agent tries again, still fenced

    router.rejoin = unavailable  # type: ignore[method-assign]
    router.lease_taken = True
    assert wait_until(lambda: agent.status().fenced, 5)
    assert options(agent.port).startswith("SIP/2.0 503")
    refused = start_uac(tmp_path, agent, "uac_failure.xml").wait(15)
    assert_ok(refused)
    assert refused.statuses()[-1] == 503 and router.invites == []
    router.rejoin = gate_rejoin  # type: ignore[method-assign]
    assert wait_until(lambda: not agent.status().fenced, 5)
    assert options(agent.port).startswith("SIP/2.0 200")


def test_a_call_an_admin_asked_to_hang_up_ends_on_both_legs(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    """The next heartbeat finds the request (admin/calls.py): BYE to both far ends, the
    call recorded as hung up by the admin; a request for a call it does not carry, and the
    same request again, change nothing."""
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())), heartbeat_interval=0.3)
    pub = start_uac(tmp_path, agent, "uac_remote_bye.xml")
    router.wait_for(lambda: any(e.kind == "answered" for e in router.events))
    with router._cond:
        router.hangups.update({UUID, "00000000-0000-7000-8000-000000000000"})
    published, bought = pub.wait(15), uas.wait(15)
    assert_ok(published, bought)
    assert published.requests("BYE") and bought.requests("BYE")
    ended = router.ended()
    assert (ended.hangup_by, ended.publisher_code, ended.buyer_code) == ("admin", 200, 200)
    assert wait_until(lambda: agent.active_bridges == 0, 5)
    assert len([e for e in router.events if e.kind == "ended"]) == 1
