"""A site beyond one process (issue 9): Debian's Kamailio with deploy/kamailio/kamailio.cfg in
front of two ``rtbridge sip`` agents sharing one PostgreSQL, SIPp as publisher and buyer
(tests/support/cluster_site.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sip.sipp import Sipp, SippResult, echo_uas
from tests.support.agents import AgentProcess, wait_until
from tests.support.cluster_site import KEY2, Site, running_site
from tests.support.kamailio import kamailio_binary
from tests.support.net import free_port

pytestmark = [pytest.mark.sip, pytest.mark.postgres, pytest.mark.live]


@pytest.fixture
def site(postgres_url: str, tmp_path: Path) -> Iterator[Site]:
    if kamailio_binary() is None:
        pytest.fail("kamailio is missing: scripts/system-deps test installs Debian's kamailio")
    buyer_port = free_port()
    buyer = echo_uas(buyer_port)
    try:
        with running_site(postgres_url, tmp_path, f"sip:buyer@127.0.0.1:{buyer_port}") as running:
            yield running
    finally:
        buyer.kill()
        buyer.wait()


def _ok(result: SippResult, site: Site) -> None:
    assert result.returncode == 0, f"{result.log}\n--- kamailio:\n{site.proxy.log_text()}"


def _invites(agent: AgentProcess) -> int:
    return int(agent.status()["invites"])  # type: ignore[call-overload]


def test_calls_spread_over_the_agents_and_digest_spans_them(site: Site) -> None:
    """Round robin puts calls on both agents; a digest challenge answered by one agent is
    accepted by the other (one nonce secret per site)."""
    result = site.calls(site.ping(8), rate=20, hold_ms=200).wait(60)
    _ok(result, site)
    assert result.statuses().count(200) >= 8
    per_agent = {r["agent"]: r["n"] for r in site.rows(
        "SELECT agent, count(*) AS n FROM callrecord GROUP BY agent")}  # fmt: skip
    assert set(per_agent) == {a.agent_id for a in site.agents}, per_agent
    assert sum(per_agent.values()) == 8

    before = [_invites(a) for a in site.agents]
    (uuid,) = site.ping(key=KEY2)
    digest = Sipp("uac_digest_call.xml", site.workdir, host="127.0.0.2", remote=site.proxy.address,
                  service=uuid, duration_ms=200,
                  rewrite={"USERNAME": "pub2", "PASSWORD": "s3cret-Pass-456"})  # fmt: skip
    answered = digest.wait(30)
    _ok(answered, site)
    assert 401 in answered.statuses() and answered.statuses()[-1] == 200
    # The challenge came from one agent, the authenticated INVITE went to the other.
    assert [_invites(a) - b for a, b in zip(site.agents, before, strict=True)] == [1, 1]
    assert wait_until(lambda: site.status(uuid) == "completed")


def test_a_spoofed_source_header_gets_no_allowlist_access(site: Site) -> None:
    """127.0.0.3 claims to be the allowlisted 127.0.0.1: straight at an agent (not a trusted
    proxy) the header is ignored; through Kamailio it is replaced by the real source."""
    spoof = {"Max-Forwards: 70": "Max-Forwards: 70\n      X-RTB-Source: 127.0.0.1:5060"}
    for to in (site.agents[0].address, site.proxy.address):
        (uuid,) = site.ping()
        result = Sipp("uac_failure.xml", site.workdir, host="127.0.0.3", remote=to, service=uuid,
                      rewrite=spoof).wait(30)  # fmt: skip
        _ok(result, site)
        assert result.statuses()[-1] == 401, (to, result.statuses())
        assert site.status(uuid) == "reserved"


def test_kill_9_one_agent_mid_traffic(site: Site) -> None:
    """Calls up on both agents and new ones arriving; one agent is killed -9. New calls all
    complete on the survivor (Kamailio fails over, then probing takes the dead one out);
    the killed agent's calls are closed with their records (``hangup_by = "fault"``, billed
    up to its last heartbeat) — by the survivor taking its lease over, or by its restart,
    whichever comes first; no reservation was claimed twice."""
    victim, survivor = site.agents
    long_calls = site.calls(site.ping(6), rate=20, hold_ms=15_000, timeout=40)
    assert wait_until(lambda: len(site.rows(
        "SELECT 1 FROM reservation WHERE status = 'connected'")) == 6, timeout=15)  # fmt: skip
    stream = site.calls(site.ping(60), rate=5, hold_ms=300, timeout=30)
    time.sleep(3)
    victim.kill()
    killed_at = time.monotonic()
    streamed = stream.wait(60)
    # Every call of the stream answered 200, the ones sent after the kill included. (A call
    # of the stream that was up on the victim at that moment loses its BYE: that is the
    # victim's call, counted below.)
    answers = streamed.invite_answers()
    assert answers.count(200) >= 60 and set(answers) == {200}, f"{answers}\n{site.proxy.log_text()}"
    assert time.monotonic() - killed_at < 30
    long_calls.wait(60)  # the victim's calls lose their far end; the survivor's end normally

    victim.start()  # a restarted agent closes what its previous run left open
    on_victim = (
        "SELECT r.status FROM reservation r JOIN callrecord c ON c.reservation_uuid = r.uuid "
        "WHERE c.agent = :agent"
    )

    def victim_statuses() -> set[object]:
        return {r["status"] for r in site.rows(on_victim, agent=victim.agent_id)}

    assert wait_until(lambda: victim_statuses() <= {"failed", "completed"}, timeout=15)
    faults = site.rows("SELECT c.duration FROM callrecord c JOIN reservation r ON "
                       "r.uuid = c.reservation_uuid WHERE c.agent = :agent AND c.hangup_by = 'fault' "
                       "AND r.status = 'completed'", agent=victim.agent_id)  # fmt: skip
    assert faults, "the victim's connected calls end as completed, by a fault"
    durations = [row["duration"] for row in faults]
    # The long calls were up for seconds before the kill; a short one answered after the
    # victim's last heartbeat is billed 0 s, never less.
    assert min(durations) >= 0 and max(durations) >= 1.0, durations
    unended = site.rows("SELECT reservation_uuid FROM callrecord WHERE end_at IS NULL")
    assert unended == []
    twice = site.rows(
        "SELECT reservation_uuid FROM callrecord GROUP BY reservation_uuid HAVING count(*) > 1"
    )
    assert twice == []
    streamed_by_survivor = site.rows(
        "SELECT count(*) AS n FROM callrecord WHERE agent = :agent", agent=survivor.agent_id
    )[0]["n"]
    assert streamed_by_survivor >= 30  # most of the stream, all of it after the kill


def test_recovery_byes_to_silent_far_ends_never_delay_new_calls(site: Site) -> None:
    """Issue 21: an agent killed with a call up restarts; the BYE to the publisher's leg is
    never answered (that SIPp is gone), and the restarted agent bridges a new call within
    1 s of listening all the same: the BYEs go out in the background."""
    victim = site.agents[0]
    (old,) = site.ping()
    publisher = Sipp("uac_remote_bye.xml", site.workdir, remote=victim.address, service=old,
                     timeout=60)  # fmt: skip
    assert wait_until(lambda: site.status(old) == "connected", timeout=15)
    publisher.kill()  # silent from now on
    victim.kill()
    (fresh,) = site.ping()
    spawned = time.monotonic()
    victim.start()
    listening = time.monotonic()
    call = Sipp("uac_call.xml", site.workdir, remote=victim.address, service=fresh,
                duration_ms=3000, timeout=30)  # fmt: skip
    assert wait_until(lambda: site.status(fresh) == "connected", timeout=10, step=0.02)
    connected = time.monotonic()
    assert connected - listening <= 1.0, f"new call up {connected - listening:.2f} s after start"
    assert site.status(old) == "completed"  # closed by the restart, its BYEs still going
    log = victim.log_text()
    assert "sending BYE on the legs" in log
    _ok(call.wait(30), site)
    print(f"spawn -> listening {listening - spawned:.2f} s, listening -> bridged "
          f"{connected - listening:.2f} s")  # fmt: skip
