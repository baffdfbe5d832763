"""What the publisher hears when the buyer leg fails in a way that describes *our* leg to the
buyer, not the buyer (SPEC §4.5, ``relay_code`` in sip/b2bua/bridge.py): an auth challenge
the plan has no credentials for, or no final failure code at all (a redirect, which is never
followed). The publisher gets ``480 Temporarily Unavailable``, never the buyer's 401 or 407
(which would ask the publisher for credentials it cannot have) nor a 3xx (which would send
it to the buyer's destination); the record keeps the buyer's own code."""

from __future__ import annotations

import pytest

from tests.sip.b2bua.support import UUID, AgentFactory, ScriptedRouter, bridge_to
from tests.sip.rawsip import SipPeer

pytestmark = pytest.mark.sip

CHALLENGES = {
    401: 'WWW-Authenticate: Digest realm="buyer.example.net", nonce="n0nce", algorithm=MD5',
    407: 'Proxy-Authenticate: Digest realm="buyer.example.net", nonce="n0nce", algorithm=MD5',
}


@pytest.mark.parametrize("code", [401, 407, 302], ids=["401", "407", "redirect"])
def test_a_failure_of_our_leg_is_480_to_the_publisher(make_agent: AgentFactory, code: int) -> None:
    buyer = SipPeer("127.0.0.1", answer=code, answer_headers=(CHALLENGES.get(code, ""),))
    publisher = SipPeer("127.0.0.1", answer=None)
    try:
        agent, router = make_agent(ScriptedRouter(bridge_to(f"sip:buyer@127.0.0.1:{buyer.port}")))
        _, final = publisher.invite(("127.0.0.1", agent.port), UUID)
        assert (final.status, final.reason) == (480, "Temporarily Unavailable"), final.first_line
        ended = router.ended()
        assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (480, code, "buyer")
        invites = [r for r in buyer.requests if r.method == "INVITE"]
        assert len(invites) == 1, "no credentials: the challenge is not answered"
        assert agent.status().answers == {480: 1}
    finally:
        buyer.close()
        publisher.close()
