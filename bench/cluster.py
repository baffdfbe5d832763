"""Benchmark a site beyond one process: Kamailio (deploy/kamailio/kamailio.cfg) in front of
two ``rtbridge sip`` agents on one PostgreSQL, SIPp as publisher and buyer. In one run:

(a) set-up time, INVITE -> 200 at the publisher: SIPp -> buyer directly, -> one agent
    directly, -> Kamailio -> agent; what Kamailio adds at p50 (goal: <= 1 ms);
(b) short calls through Kamailio at a ladder of rates for ``--seconds`` each: the highest
    with zero failed calls (goal: >= 500/s), and CPU per component at each rate;
(c) simultaneous bridged calls through Kamailio with full-duplex G.711 (the publisher
    streams a PCMU tone, the buyer echoes it): how many are up at once (goal: >= 1,000),
    CPU per component.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sip import (  # noqa: E402
    KEY,
    SCENARIOS,
    Proc,
    config,
    final_codes,
    pct,
    setup_times,
    write_tone,
)

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


def kamailio_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "kamailio -DD -E"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


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

    def reservations(self, n: int) -> Path:
        rows = []
        for start in range(0, n, 500):
            reqs = []
            for _ in range(min(500, n - start)):
                self.callers += 1
                reqs.append(PingRequest(key=KEY, caller_number=f"+1202{self.callers:07d}",
                                        inbound_number=None))  # fmt: skip
            for outcome in self.ops.ping_many(reqs):
                rows.append(f"{outcome.uuid};+12025550100;\n")  # type: ignore[union-attr]
        path = self.work / f"calls-{time.monotonic_ns()}.csv"
        path.write_text("SEQUENTIAL\n" + "".join(rows))
        return path

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


def bench_setup(site: Site, proxy: str, calls: int) -> None:
    direct_csv = site.work / "direct.csv"
    direct_csv.write_text("SEQUENTIAL\n" + "buyer;+12025550100;\n" * calls)
    paths = [
        ("SIPp -> buyer (baseline)", f"127.0.0.1:{site.buyer_port}", direct_csv),
        ("SIPp -> agent -> buyer", site.agents[0].address, None),
        ("SIPp -> Kamailio -> agent", proxy, None),
    ]
    print(f"\n(a) call set-up, INVITE -> 200 at the publisher, {calls} calls at 20/s")
    print(f"    {'path':<28}{'answered':>9}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    p50 = []
    for name, target, inf in paths:
        _, msg = site.sipp(target, calls, rate=20, limit=1, inf=inf)
        times = setup_times(msg)
        p50.append(pct(times, 0.5))
        print(f"    {name:<28}{len(times):>9}{pct(times, 0.5):>9.2f}{pct(times, 0.99):>9.2f}"
              f"{statistics.fmean(times):>9.2f}")  # fmt: skip
    print(f"    added by Kamailio at p50: {p50[2] - p50[1]:+.2f} ms (goal <= 1 ms)")


def bench_rate(site: Site, proxy: str, cpu: Cpu, rates: list[float], seconds: int) -> None:
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
        setup = setup_times(msg)
        print(f"    {rate:>5.0f}/s: {answered} of {n} answered "
              f"{ {c: k for c, k in sorted(codes.items()) if c != 200} }, set-up p50 "
              f"{pct(setup, 0.5):.1f} ms p99 {pct(setup, 0.99):.1f} ms; CPU "
              + ", ".join(f"{k} {v:.0%}" for k, v in use.items()))  # fmt: skip
        if answered != n:
            break
        best = rate
    print(f"    highest rate with zero failed calls: {best:.0f}/s (goal >= 500/s)")


def bench_bridges(site: Site, proxy: str, cpu: Cpu, bridges: int) -> None:
    print(f"\n(c) {bridges} simultaneous calls through Kamailio, PCMU both ways")
    ramp = 50.0
    hold = int((bridges / ramp + 20) * 1000)
    proc, msg = site.sipp(proxy, bridges, rate=ramp, limit=bridges, hold_ms=hold, media=True,
                          wait=False)  # fmt: skip
    deadline = time.monotonic() + bridges / ramp + 15
    up = 0
    while time.monotonic() < deadline:
        up = sum(int(a.status()["bridges_by_phase"]["connected"]) for a in site.agents)  # type: ignore[index]
        if up >= bridges:
            break
        time.sleep(0.5)
    time.sleep(2)
    before, started = cpu.sample(), time.monotonic()
    time.sleep(10)
    after = cpu.sample()
    use = {k: (after[k] - before[k]) / (time.monotonic() - started) for k in after}
    per_agent = [int(a.status()["bridges_by_phase"]["connected"]) for a in site.agents]  # type: ignore[index]
    rss = [Proc(a.proc.pid).rss_mb() for a in site.agents if a.proc is not None]
    proc.wait()
    codes = final_codes(msg)
    print(f"    bridged at once: {sum(per_agent)} ({' + '.join(map(str, per_agent))}) of {bridges} "
          f"(answered {codes.get(200, 0)}; refused { {c: k for c, k in codes.items() if c != 200} }) "
          "(goal >= 1,000)")  # fmt: skip
    print("    CPU: " + ", ".join(f"{k} {v:.0%}" for k, v in use.items())
          + f"; agent RSS {', '.join(f'{r:.0f} MB' for r in rss)}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rates", default="200,300,400,500")
    parser.add_argument("--bridges", type=int, default=1000)
    parser.add_argument("--only", default="a,b,c")
    args = parser.parse_args()
    for tool in ("sipp", "kamailio"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is missing: scripts/system-deps test", file=sys.stderr)
            return 2
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="rtbridge-cluster-"))
    with postgres.cluster() as db_url:
        # PostgreSQL has no key file: the site key comes from the environment (README)
        os.environ.setdefault("RTBRIDGE_SITE_KEY", "bench-site-key-0123456789abcdefghijkl")
        site = Site(work, db_url)
        try:
            for agent in site.agents:
                agent.start()
            with kamailio(work, [a.address for a in site.agents], host=PROXY) as proxy:
                cpu = Cpu({"kamailio": kamailio_pids(),
                           **{f"agent{i + 1}": [a.proc.pid] for i, a in enumerate(site.agents)
                              if a.proc is not None},
                           "buyer SIPp": [site.buyer.pid]})  # fmt: skip
                print(f"Kamailio + 2 agents on PostgreSQL, {os.cpu_count()} CPUs")
                if "a" in only:
                    bench_setup(site, proxy.address, args.calls)
                if "b" in only:
                    bench_rate(site, proxy.address, cpu, [float(r) for r in args.rates.split(",")],
                               args.seconds)  # fmt: skip
                if "c" in only:
                    bench_bridges(site, proxy.address, cpu, args.bridges)
        finally:
            site.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
