"""Benchmark what a site does when an agent dies with calls up (issue 21): Kamailio in front
of two ``rtbridge sip`` agents on one PostgreSQL, with their default heartbeat (2 s) and
``takeover_after`` (3 heartbeats), ``--calls`` (400) long calls through Kamailio, SIPp as
publisher (waiting for a BYE on each call) and buyer. In one run:

(a) takeover: one agent is killed -9 and never restarted; time from the kill until every
    one of its calls is closed in the database by its peer (goal: <= takeover_after + 2 s),
    and what the BYEs to the publishers (through Kamailio) came to;
(b) baseline, the same site: the agent restarts at once after a second kill -9 (a crash under
    systemd); time from the kill until its calls are closed by its own restart.

Checks: every call answered and up before the kill; every killed agent's call closed with
``hangup_by = "fault"``; each call written once; the buyer counters equal their recount; the
publisher SIPp got a BYE on every call of the killed agent. Exit 0 when every goal and check
passed, 1 when one failed, 2 when nothing could be judged (a tool missing).

    flock /tmp/rtbridge-bench.lock .venv/bin/python bench/takeover.py [--calls 400]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.verdict import Verdict, refuse  # noqa: E402

from rtbridge.storage.recount import check_counters  # noqa: E402
from tests.sip.sipp import Sipp  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.agents import AgentProcess, wait_until  # noqa: E402
from tests.support.cluster_site import Site, running_site  # noqa: E402
from tests.support.net import free_port  # noqa: E402

HEARTBEAT, TAKEOVER = 2.0, 6.0  # the agent's defaults (sip_config/agent.toml)


def long_calls(site: Site, calls: int, rate: float) -> Sipp:
    """``calls`` calls through Kamailio, each waiting for a BYE; returns once all are up."""
    publisher = site.calls_waiting_for_bye(calls, rate=rate, timeout=600)
    wait_until(lambda: site.connected() >= calls, timeout=calls / rate + 30, step=0.2)
    return publisher


def open_calls(site: Site, agent: AgentProcess) -> int:
    rows = site.rows("SELECT count(*) AS n FROM callrecord WHERE agent = :a AND end_at IS NULL",
                     a=agent.agent_id)  # fmt: skip
    return int(rows[0]["n"])  # type: ignore[call-overload]


def kill_and_time(site: Site, victim: AgentProcess, *, restart: bool) -> tuple[int, float]:
    """Kill ``victim`` -9 (and start it again at once when ``restart``): its open calls, and
    the seconds from the kill until none is left open."""
    carried = open_calls(site, victim)
    victim.kill()
    killed = time.monotonic()
    if restart:
        victim.start()
    wait_until(lambda: open_calls(site, victim) == 0, timeout=TAKEOVER + 60, step=0.05)
    return carried, time.monotonic() - killed


def bye_summary(log: str) -> str:
    """The last BYE summary the dialogs module logged (answered/unanswered per transport;
    logged at WARNING only when some leg went unanswered)."""
    for line in reversed(log.splitlines()):
        if "sent BYE on legs" in line:
            with contextlib.suppress(ValueError):
                return json.dumps(json.loads(line)["legs"])
    return "all answered (no warning logged)"


def publisher_call_ids(site: Site, agent: AgentProcess) -> set[str]:
    rows = site.rows("SELECT dialogs FROM callrecord WHERE agent = :a AND dialogs IS NOT NULL",
                     a=agent.agent_id)  # fmt: skip
    return {str(r["dialogs"]["publisher"]["call_id"]) for r in rows}  # type: ignore[index]


def faults_once(site: Site, agent: AgentProcess) -> tuple[bool, str]:
    rows = site.rows(
        "SELECT c.hangup_by, count(*) AS n FROM callrecord c WHERE c.agent = :a GROUP BY c.hangup_by",
        a=agent.agent_id,
    )
    twice = site.rows("SELECT reservation_uuid FROM reservationevent WHERE status = 'completed' "
                      "GROUP BY reservation_uuid HAVING count(*) > 1")  # fmt: skip
    by = {r["hangup_by"]: r["n"] for r in rows}
    return set(by) == {"fault"} and not twice, f"hangup_by {by}, closed twice: {len(twice)}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400, help="long calls up at the kill")
    parser.add_argument("--rate", type=float, default=100, help="calls per second to set up")
    goals = parser.add_argument_group("goals")
    goals.add_argument("--goal-extra", type=float, default=2.0, metavar="S",
                       help="(a) kill -> calls closed, at most takeover_after + this")  # fmt: skip
    args = parser.parse_args()
    bench = "bench/takeover.py"
    for tool in ("sipp", "kamailio"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return refuse(bench, f"{tool} is missing: scripts/system-deps test")
    verdict = Verdict(bench)
    verdict.goals_from(parser, args)
    work = Path(tempfile.mkdtemp(prefix="rtbridge-takeover-"))
    buyer_port = free_port()
    buyer = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(buyer_port), "-nostdin",
         "-l", "100000", "-mp", str(free_port(count=2, step=2)), "-rtp_echo"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    print(f"Kamailio + 2 agents on PostgreSQL, {os.cpu_count()} CPUs, {args.calls} calls; "
          f"heartbeat {HEARTBEAT:g} s, takeover_after {TAKEOVER:g} s")  # fmt: skip
    try:
        with postgres.cluster() as db_url:
            os.environ.setdefault("RTBRIDGE_SITE_KEY", "bench-site-key-0123456789abcdefghijkl")
            with running_site(db_url, work, f"sip:buyer@127.0.0.1:{buyer_port}",
                              max_calls=0, rtp_ports=5000, rtp_bases=(20000, 25000)) as site:  # fmt: skip
                victim, survivor = site.agents
                # (a) killed for good: its peer closes its calls
                publisher = long_calls(site, args.calls, args.rate)
                verdict.check("(a) every call up before the kill", site.connected() == args.calls,
                              f"{site.connected()}/{args.calls} connected")  # fmt: skip
                carried, took = kill_and_time(site, victim, restart=False)
                goal = TAKEOVER + args.goal_extra
                print(f"(a) takeover: {carried} calls of the killed agent closed by its peer "
                      f"{took:.2f} s after the kill")  # fmt: skip
                wait_until(lambda: "sent BYE on legs" in survivor.log_text(), timeout=10)
                print(f"    BYEs on its {2 * carried} legs, as the peer logged them 4 s later: "
                      f"{bye_summary(survivor.log_text())} (SIPp's built-in UAS, the buyer, "
                      "answers to the dead agent's port, not to the Via)")  # fmt: skip
                verdict.goal(f"(a) kill -> {carried} calls closed by the peer <= {goal:g} s",
                             took <= goal, f"{took:.2f} s")  # fmt: skip
                ok, found = faults_once(site, victim)
                verdict.check("(a) the killed agent's calls closed once, by a fault", ok, found)
                victim_legs = publisher_call_ids(site, victim)
                survivor.stop()  # its calls end: the publisher SIPp has had every BYE
                pub = publisher.wait(60)
                byes = {m.header("Call-ID") for m in pub.requests("BYE")}
                verdict.check("(a) the publisher got a BYE on each call of the killed agent",
                              victim_legs <= byes,
                              f"{len(victim_legs & byes)} of {len(victim_legs)}")  # fmt: skip
                verdict.check("(a) ... and on each call the survivor stopped with",
                              len(byes - victim_legs) >= args.calls - len(victim_legs),
                              f"{len(byes - victim_legs)} of {args.calls - len(victim_legs)}")  # fmt: skip

                # (b) baseline: a crash and an immediate restart of the same agent
                survivor.start()
                victim.start()
                publisher = long_calls(site, args.calls, args.rate)
                carried_b, restart_took = kill_and_time(site, victim, restart=True)
                print(f"(b) restart: {carried_b} calls closed by the agent's own restart "
                      f"{restart_took:.2f} s after the kill (process start included)")  # fmt: skip
                print(f"    takeover / restart: {took / restart_took:.2f}x")
                ok, found = faults_once(site, victim)
                verdict.check("(b) the restarted agent's calls closed once, by a fault", ok, found)
                report = check_counters(site.engine)
                verdict.check("counters equal their recount", report.differences == (),
                              f"{len(report.differences)} differences")  # fmt: skip
                publisher.kill()
    finally:
        buyer.kill()
        buyer.wait()
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
