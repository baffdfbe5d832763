"""A dead agent's calls are closed by its peer (issue 21): Kamailio in front of two agents on
one PostgreSQL, SIPp as publisher (through Kamailio) and as buyer, both waiting for a BYE on
every call. Agents beat every 0.5 s and are taken over after 2 s of silence."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from tests.conftest import write_config
from tests.sip.sipp import Sipp
from tests.support.agents import AgentProcess, wait_until
from tests.support.cluster_site import Site, running_site, site_config
from tests.support.kamailio import kamailio_binary
from tests.support.server import serving

pytestmark = [pytest.mark.sip, pytest.mark.postgres, pytest.mark.live]

TAKEOVER = 2.0
OPTIONS = f"heartbeat_interval = 0.5\ntakeover_after = {TAKEOVER}\n"
CALLS = 8


@pytest.fixture
def buyer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sipp]:
    """Answers CALLS calls (or the test's indirect parameter) and waits for a BYE on each:
    exits 0 once every one came."""
    calls = int(getattr(request, "param", CALLS))
    uas = Sipp("uas_answer.xml", tmp_path, calls=calls, timeout=120)
    uas.wait_listening()
    yield uas
    uas.kill()


@pytest.fixture
def site(postgres_url: str, tmp_path: Path, buyer: Sipp) -> Iterator[Site]:
    if kamailio_binary() is None:
        pytest.fail("kamailio is missing: scripts/system-deps test installs Debian's kamailio")
    with running_site(postgres_url, tmp_path, buyer.uri(), options=OPTIONS) as running:
        yield running


def _long_calls(site: Site) -> Sipp:
    """CALLS calls through Kamailio (round robin over the agents), each waiting for a BYE."""
    publisher = site.calls_waiting_for_bye(CALLS, rate=20)
    assert wait_until(lambda: site.connected() == CALLS, timeout=20)
    return publisher


def _calls_of(site: Site, agent: AgentProcess) -> list[dict[str, object]]:
    return site.rows(
        "SELECT r.uuid, r.status, c.hangup_by, c.duration, c.end_at, c.dialogs FROM callrecord c "
        "JOIN reservation r ON r.uuid = c.reservation_uuid WHERE c.agent = :a ORDER BY r.uuid",
        a=agent.agent_id,
    )


def _byes_with_reason(messages: list[object], call_ids: set[str]) -> set[str]:
    """Call-IDs among ``call_ids`` whose BYE said a fault ended the call."""
    return {
        str(m.header("Call-ID"))  # type: ignore[attr-defined]
        for m in messages
        if m.header("Call-ID") in call_ids and "after a fault" in (m.header("Reason") or "")  # type: ignore[attr-defined]
    }


def _leg_call_ids(rows: list[dict[str, object]], leg: str) -> set[str]:
    return {str(r["dialogs"][leg]["call_id"]) for r in rows}  # type: ignore[index]


def test_a_killed_agent_never_restarted_has_its_calls_closed_by_its_peer(
    site: Site, buyer: Sipp
) -> None:
    victim, survivor = site.agents
    publisher = _long_calls(site)
    on_victim = _calls_of(site, victim)
    assert 0 < len(on_victim) < CALLS, "round robin puts calls on both agents"
    time.sleep(1.0)  # billed seconds to keep

    victim.kill()  # kill -9, and it never comes back
    killed_at = time.monotonic()
    closed = wait_until(lambda: {r["status"] for r in _calls_of(site, victim)} == {"completed"},
                        timeout=TAKEOVER + 10)  # fmt: skip
    took = time.monotonic() - killed_at
    assert closed and took <= TAKEOVER + 2, f"closed {took:.1f} s after the kill"
    victims = _calls_of(site, victim)
    assert {r["hangup_by"] for r in victims} == {"fault"}
    assert min(float(r["duration"]) for r in victims) >= 0.5  # type: ignore[arg-type]
    (lease,) = site.rows("SELECT holder, taken_by, taken_calls, epoch FROM sipagent "
                         "WHERE name = :n", n=victim.agent_id)  # fmt: skip
    assert lease == {"holder": None, "taken_by": survivor.agent_id,
                     "taken_calls": len(victims), "epoch": 2}  # fmt: skip
    # The victim's units are back; the survivor's calls are still up.
    assert site.connected() == CALLS - len(victims)
    assert check_counters(site.engine).differences == ()

    survivor.stop()  # its calls end the usual way: now every call of both SIPps got a BYE
    published, bought = publisher.wait(30), buyer.wait(30)
    assert published.returncode == 0, published.log
    assert bought.returncode == 0, bought.log
    # The victim's legs got theirs from the survivor: the publisher's through Kamailio.
    pub_ids, buy_ids = _leg_call_ids(victims, "publisher"), _leg_call_ids(victims, "buyer")
    assert _byes_with_reason(published.requests("BYE"), pub_ids) == pub_ids  # type: ignore[arg-type]
    assert _byes_with_reason(bought.requests("BYE"), buy_ids) == buy_ids  # type: ignore[arg-type]


@pytest.mark.parametrize("buyer", [CALLS + 2], indirect=True)
def test_a_paused_agent_is_taken_over_then_fences_itself_and_rejoins(
    site: Site, buyer: Sipp
) -> None:
    victim, survivor = site.agents
    publisher = _long_calls(site)
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGSTOP)  # a long GC, a stopped VM
    try:
        assert wait_until(lambda: {r["status"] for r in _calls_of(site, victim)} == {"completed"},
                          timeout=TAKEOVER + 10)  # fmt: skip
        taken = _calls_of(site, victim)
        time.sleep(0.5)
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    # It finds its lease taken at its next heartbeat, hangs up, rejoins under a new epoch.
    assert wait_until(lambda: victim.status().get("epoch") == 3, timeout=10), victim.status()
    assert victim.status()["fenced"] is False
    assert "fenced" in victim.log_text()
    assert _calls_of(site, victim) == taken  # nothing written twice
    ends = site.rows(
        "SELECT reservation_uuid, count(*) AS n FROM reservationevent WHERE status = 'completed' "
        "GROUP BY reservation_uuid"
    )
    assert {r["n"] for r in ends} == {1}
    assert check_counters(site.engine).differences == ()

    # ... and takes new calls: two straight to it, ended by the publisher.
    fresh = site.ping(2)
    again = site.calls(fresh, rate=10, hold_ms=200, to=victim.address, timeout=30).wait(30)
    assert again.invite_answers() == [200, 200], again.log

    def recorded() -> bool:
        mine = {r["uuid"]: r for r in _calls_of(site, victim)}
        return all(u in mine and mine[u]["status"] == "completed"
                   and mine[u]["hangup_by"] == "publisher" for u in fresh)  # fmt: skip

    assert wait_until(recorded, timeout=10)  # the end is written just after the BYE
    survivor.stop()
    victim.stop()
    publisher.wait(30)
    buyer.wait(30)
    assert check_counters(site.engine).differences == ()


def test_a_second_agent_under_a_live_agents_id_refuses_to_start(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = open_database(postgres_url)
    apply_file(engine, write_config(tmp_path, site_config("sip:buyer@127.0.0.1:5999")))
    engine.dispose()
    first = AgentProcess(postgres_url, tmp_path, 'agent_id = "edge-1"\n').start()
    try:
        second = AgentProcess(postgres_url, tmp_path, 'agent_id = "edge-1"\n')
        refused = subprocess.run(
            [sys.executable, "-m", "rtbridge", "sip", "--sip-config", str(second.config)],
            env={**first.env(), "RTBRIDGE_DB": postgres_url}, capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert "agent_id 'edge-1' is held by another agent" in refused.stderr
        assert "running on this machine" in refused.stderr
        assert first.status()["agent_id"] == "edge-1" and first.status()["epoch"] == 1
    finally:
        first.stop()
    # Stopped cleanly, the lease is free: the same id starts at once.
    again = AgentProcess(postgres_url, tmp_path, 'agent_id = "edge-1"\n').start()
    assert again.status()["epoch"] == 2
    again.stop()


@pytest.mark.parametrize("buyer", [1], indirect=True)
def test_the_api_process_closes_the_calls_of_a_sites_only_agent(
    postgres_url: str, tmp_path: Path, buyer: Sipp
) -> None:
    """A site with one agent and the API in its own process (``serve --sip off``): the agent
    dies for good; the API takes its lease over, closes its call, and both legs get BYE."""
    with (
        running_site(postgres_url, tmp_path, buyer.uri(), options=OPTIONS, agents=1) as site,
        serving(postgres_url) as api,
    ):
        (agent,) = site.agents
        (uuid,) = site.ping()
        publisher = Sipp("uac_remote_bye.xml", tmp_path, remote=agent.address, service=uuid,
                         timeout=60)  # fmt: skip
        assert wait_until(lambda: site.status(uuid) == "connected", timeout=15)
        agent.kill()
        killed_at = time.monotonic()
        assert wait_until(lambda: site.status(uuid) == "completed", timeout=TAKEOVER + 10)
        took = time.monotonic() - killed_at
        assert took <= TAKEOVER + 2, f"closed {took:.1f} s after the kill"
        (lease,) = site.rows("SELECT taken_by, taken_calls FROM sipagent")
        assert str(lease["taken_by"]).startswith("api ") and lease["taken_calls"] == 1
        published, bought = publisher.wait(15), buyer.wait(15)
        assert published.returncode == 0 and bought.returncode == 0, (
            f"{published.log}\n{bought.log}"
        )
        metrics = httpx2.get(f"{api.base}/metrics").text
        assert "rtbridge_agent_takeovers_total 1.0" in metrics, metrics
        assert "rtbridge_agent_takeover_calls_total 1.0" in metrics
