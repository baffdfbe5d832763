"""Benchmark a site beyond one process: Kamailio (deploy/kamailio/kamailio.cfg) in front of
two ``rtbridge sip`` agents on one PostgreSQL, SIPp as publisher and buyer. In one run:

(a) set-up time, INVITE -> 200 at the publisher: SIPp -> buyer directly, -> one agent
    directly, -> Kamailio -> agent, the three in two rounds of the same run (the second in
    the reverse order); what Kamailio adds at p50 over the agent alone (goal: <= 1 ms);
(b) short calls through Kamailio at a ladder of rates for ``--seconds`` each: the highest
    with zero failed calls (goal: >= 500/s; no baseline, the goal is absolute), and CPU per
    component at each rate;
(c) simultaneous bridged calls through Kamailio with full-duplex G.711 (SIPp streams a PCMU
    tone, the buyer echoes it), a sample of them carrying an RTP peer's tone that must come
    back: how many are up at once by the agents' own count (goal: >= 1,000; no baseline),
    CPU per component.

Every part also checks its workload: each call answered 200, the sampled calls' tone back,
both agents alive. Exit 0 when every goal and check passed, 1 when one failed (the verdict
block at the end names it), 2 when nothing could be judged (a tool missing). Goals are flags,
``--goal-...``, defaults the issue's.

    .venv/bin/python bench/cluster.py [--seconds 30] [--rates 200,300,400,500] [--bridges 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sip import (  # noqa: E402
    KEY,
    SCENARIOS,
    Proc,
    answered_all,
    config,
    final_codes,
    pct,
    setup_times,
    write_tone,
)
from bench.tone_sample import ToneSample, judge  # noqa: E402
from bench.verdict import Verdict, refuse  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.domain.ping import PingRequest  # noqa: E402
from rtbridge.storage.catalog import CatalogCache  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.reservations import Reservations  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.agents import AgentProcess  # noqa: E402
from tests.support.kamailio import kamailio  # noqa: E402
from tests.support.net import free_port  # noqa: E402

PROXY = "127.0.0.10"


class Cpu:
    """CPU seconds of groups of processes (Kamailio runs a dozen)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = {name: [Proc(pid) for pid in pids] for name, pids in groups.items()}

    def sample(self) -> dict[str, float]:
        out = {}
        for name, procs in self.groups.items():
            total = 0.0
            for proc in procs:
                with contextlib.suppress(FileNotFoundError):  # a worker that has exited
                    total += proc.cpu()
            out[name] = total
        return out


def kamailio_pids(work: Path) -> list[int]:
    """This run's Kamailio: the main process (its pid file) and the workers it forked."""
    main = int((work / "kamailio" / "pid").read_text().split()[0])
    found = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True)
    return [main, *(int(pid) for pid in found.stdout.split())]


class Site:
    def __init__(self, work: Path, db_url: str) -> None:
        self.work = work
        self.buyer_port = free_port()
        self.engine = open_database(db_url)
        (work / "site.toml").write_text(config(self.buyer_port))
        apply_file(self.engine, work / "site.toml")
        self.ops = Reservations(self.engine, CatalogCache(self.engine))
        self.callers = 0
        write_tone(work / "tone.pcmu")
        # As deployed: every call slot of the build, a full-size RTP range each.
        options = f'trusted_proxies = ["{PROXY}/32"]\n'
        self.agents = [
            AgentProcess(db_url, work, options, max_calls=0, rtp_ports=5000, rtp_min=base)
            for base in (20000, 25000)
        ]
        self.buyer = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(self.buyer_port), "-nostdin",
             "-l", "100000", "-mp", str(free_port(count=2, step=2)), "-rtp_echo"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def reserve(self, n: int) -> list[str]:
        uuids = []
        for start in range(0, n, 500):
            reqs = []
            for _ in range(min(500, n - start)):
                self.callers += 1
                reqs.append(PingRequest(key=KEY, caller_number=f"+1202{self.callers:07d}",
                                        inbound_number=None))  # fmt: skip
            for outcome in self.ops.ping_many(reqs):
                if getattr(outcome, "status", "") != "reserved":
                    raise RuntimeError(f"ping did not reserve: {outcome}")
                uuids.append(outcome.uuid)  # type: ignore[union-attr]
        return uuids

    def reservations(self, n: int) -> Path:
        path = self.work / f"calls-{time.monotonic_ns()}.csv"
        path.write_text("SEQUENTIAL\n" + "".join(f"{u};+12025550100;\n" for u in self.reserve(n)))
        return path

    def alive(self) -> list[bool]:
        return [a.proc is not None and a.proc.poll() is None for a in self.agents]

    def sipp(self, target: str, n: int, *, rate: float, limit: int, hold_ms: int = 0,
             media: bool = False, inf: Path | None = None,
             wait: bool = True) -> tuple[subprocess.Popen[str], Path]:  # fmt: skip
        msg = self.work / f"uac-{time.monotonic_ns()}.msg"
        scenario = SCENARIOS / ("uac_media.xml" if media else "uac_bench.xml")
        args = ["sipp", target, "-sf", str(scenario), "-inf", str(inf or self.reservations(n)),
                "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(n), "-l", str(limit),
                "-r", str(rate), "-d", str(hold_ms), "-nostdin", "-trace_msg", "-message_file",
                str(msg), "-mi", "127.0.0.1", "-mp", str(free_port(count=4)), "-timeout", "300s",
                "-timeout_error", "-max_recv_loops", "1000"]  # fmt: skip
        proc = subprocess.Popen(args, cwd=self.work, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        if wait:
            proc.wait()
        return proc, msg

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        self.buyer.kill()
        self.engine.dispose()


def bench_setup(site: Site, verdict: Verdict, proxy: str, calls: int, goal_ms: float) -> None:
    """The three paths in two rounds, the second in the reverse order, so drift of the
    machine falls on all alike."""
    direct_csv = site.work / "direct.csv"
    direct_csv.write_text("SEQUENTIAL\n" + "buyer;+12025550100;\n" * calls)
    paths = [
        ("SIPp -> buyer (baseline)", f"127.0.0.1:{site.buyer_port}", direct_csv),
        ("SIPp -> agent -> buyer", site.agents[0].address, None),
        ("SIPp -> Kamailio -> agent", proxy, None),
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    codes: dict[str, Counter[int]] = {name: Counter() for name, _, _ in paths}
    for n, order in ((calls - calls // 2, paths), (calls // 2, paths[::-1])):
        for name, target, inf in order:
            _, msg = site.sipp(target, n, rate=20, limit=1, inf=inf)
            times[name] += setup_times(msg)
            codes[name].update(final_codes(msg))
    print(f"\n(a) call set-up, INVITE -> 200 at the publisher, {calls} calls at 20/s on each path")
    print(f"    {'path':<28}{'answered':>9}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    p50 = []
    for name, _, _ in paths:
        values = times[name] or [float("nan")]
        p50.append(pct(values, 0.5))
        print(f"    {name:<28}{len(times[name]):>9}{pct(values, 0.5):>9.2f}"
              f"{pct(values, 0.99):>9.2f}{statistics.fmean(values):>9.2f}")  # fmt: skip
        answered_all(verdict, f"(a) {name}", dict(codes[name]), calls)
    added = p50[2] - p50[1]
    print(f"    added by Kamailio at p50: {added:+.2f} ms (goal <= {goal_ms:g} ms)")
    verdict.goal("(a) set-up added by Kamailio at p50", added <= goal_ms,
                 f"{added:+.2f} ms (goal <= +{goal_ms:g} ms)")  # fmt: skip


def bench_rate(site: Site, verdict: Verdict, proxy: str, cpu: Cpu, rates: list[float],
               seconds: int, goal: float) -> None:  # fmt: skip
    print(f"\n(b) short calls through Kamailio for {seconds} s at each rate")
    best = 0.0
    for rate in rates:
        n = int(rate * seconds)
        inf = site.reservations(n)
        before, started = cpu.sample(), time.monotonic()
        proc, msg = site.sipp(proxy, n, rate=rate, limit=int(rate * 2), inf=inf, wait=False)
        proc.wait()
        elapsed = time.monotonic() - started
        after = cpu.sample()
        use = {k: (after[k] - before[k]) / elapsed for k in after}
        codes = final_codes(msg)
        answered = codes.get(200, 0)
        setup = setup_times(msg) or [float("nan")]
        print(f"    {rate:>5.0f}/s: {answered} of {n} answered "
              f"{ {c: k for c, k in sorted(codes.items()) if c != 200} }, set-up p50 "
              f"{pct(setup, 0.5):.1f} ms p99 {pct(setup, 0.99):.1f} ms; CPU "
              + ", ".join(f"{k} {v:.0%}" for k, v in use.items()))  # fmt: skip
        if answered != n or not all(site.alive()):
            break
        best = rate
    print(f"    highest rate with zero failed calls: {best:.0f}/s (goal >= {goal:g}/s)")
    verdict.goal(f"(b) highest rate with zero failed calls, {seconds} s at each", best >= goal,
                 f"{best:.0f}/s of the ladder {rates} (goal >= {goal:g}/s)")  # fmt: skip


def bench_bridges(site: Site, verdict: Verdict, proxy: str, cpu: Cpu, bridges: int,
                  sampled: int, goal: int) -> None:  # fmt: skip
    print(f"\n(c) {bridges} simultaneous calls through Kamailio, PCMU both ways; {sampled} of "
          "them with an RTP peer's tone")  # fmt: skip
    ramp = 50.0
    hold = int((bridges / ramp + 20) * 1000)
    sample = ToneSample(site.work, proxy, site.reserve(sampled), hold)
    bulk = bridges - sampled
    proc, msg = site.sipp(proxy, bulk, rate=ramp, limit=bulk, hold_ms=hold, media=True,
                          wait=False)  # fmt: skip
    deadline = time.monotonic() + bridges / ramp + 15
    up = 0
    while time.monotonic() < deadline:
        up = sum(int(a.status()["bridges_by_phase"]["connected"]) for a in site.agents)  # type: ignore[index]
        if up >= bridges:
            break
        time.sleep(0.5)
    time.sleep(2)
    sample.mark()
    before, started = cpu.sample(), time.monotonic()
    time.sleep(10)
    after = cpu.sample()
    sample.close_window()
    use = {k: (after[k] - before[k]) / (time.monotonic() - started) for k in after}
    per_agent = [int(a.status()["bridges_by_phase"]["connected"]) for a in site.agents]  # type: ignore[index]
    rss = [Proc(a.proc.pid).rss_mb() for a in site.agents if a.proc is not None]
    proc.wait()
    heard = sample.finish()
    codes = final_codes(msg)
    print(f"    bridged at once: {sum(per_agent)} ({' + '.join(map(str, per_agent))}) of {bridges} "
          f"(bulk answered {codes.get(200, 0)} of {bulk}; refused "
          f"{ {c: k for c, k in codes.items() if c != 200} }) (goal >= {goal})")  # fmt: skip
    print("    CPU: " + ", ".join(f"{k} {v:.0%}" for k, v in use.items())
          + f"; agent RSS {', '.join(f'{r:.0f} MB' for r in rss)}")  # fmt: skip
    print(f"    tone back on the sampled calls over {heard.window:.1f} s while all were up: "
          f"{', '.join(f'{s:.1f} s' for s in heard.seconds)}")  # fmt: skip
    answered_all(verdict, "(c) bulk calls", codes, bulk)
    judge(verdict, "(c) while all were up", heard)
    verdict.goal("(c) calls bridged at once (the agents' count)", sum(per_agent) >= goal,
                 f"{sum(per_agent)} of {bridges} placed (goal >= {goal})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rates", default="200,300,400,500")
    parser.add_argument("--bridges", type=int, default=1000)
    parser.add_argument("--sampled", type=int, default=4,
                        help="calls of (c) whose tone must come back")  # fmt: skip
    parser.add_argument("--only", default="a,b,c")
    goals = parser.add_argument_group("goals")
    goals.add_argument("--goal-proxy-ms", type=float, default=1.0, metavar="MS",
                       help="(a) set-up added by Kamailio at p50, at most")  # fmt: skip
    goals.add_argument("--goal-rate", type=float, default=500, metavar="CALLS_PER_S",
                       help="(b) highest rate with no failed call, at least")  # fmt: skip
    goals.add_argument("--goal-bridges", type=int, default=1000, metavar="N",
                       help="(c) calls bridged at once, at least")  # fmt: skip
    args = parser.parse_args()
    bench = "bench/cluster.py"
    for tool in ("sipp", "kamailio"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return refuse(bench, f"{tool} is missing: scripts/system-deps test")
    only = set(args.only.split(","))
    if "c" in only and not 0 < args.sampled < args.bridges:
        return refuse(bench, f"--sampled {args.sampled} must be 1..{args.bridges - 1}")
    verdict = Verdict(bench)
    verdict.goals_from(parser, args)
    work = Path(tempfile.mkdtemp(prefix="rtbridge-cluster-"))
    with postgres.cluster() as db_url:
        # PostgreSQL has no key file: the site key comes from the environment (docs/operations.md)
        os.environ.setdefault("RTBRIDGE_SITE_KEY", "bench-site-key-0123456789abcdefghijkl")
        site = Site(work, db_url)
        try:
            for agent in site.agents:
                agent.start()
            with kamailio(work, [a.address for a in site.agents], host=PROXY) as proxy:
                cpu = Cpu({"kamailio": kamailio_pids(work),
                           **{f"agent{i + 1}": [a.proc.pid] for i, a in enumerate(site.agents)
                              if a.proc is not None},
                           "buyer SIPp": [site.buyer.pid]})  # fmt: skip
                print(f"Kamailio + 2 agents on PostgreSQL, {os.cpu_count()} CPUs")
                if "a" in only:
                    bench_setup(site, verdict, proxy.address, args.calls, args.goal_proxy_ms)
                if "b" in only:
                    bench_rate(site, verdict, proxy.address, cpu,
                               [float(r) for r in args.rates.split(",")], args.seconds,
                               args.goal_rate)  # fmt: skip
                if "c" in only:
                    bench_bridges(site, verdict, proxy.address, cpu, args.bridges, args.sampled,
                                  args.goal_bridges)  # fmt: skip
            alive = site.alive()
            verdict.check("both agents alive at the end", all(alive), f"alive: {alive}")
        finally:
            site.close()
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
