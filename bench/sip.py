"""Benchmark the SIP agent as deployed, with SIPp (Debian ``sip-tester``) on both sides.

``rtbridge sip`` runs on SQLite with its default options (only addresses and the RTP range
set), authenticating the publisher by allowlist and claiming real reservations made by
pings on a key whose campaign has a DID pool and a buyer with concurrency and daily caps.
The buyer is a SIPp UAS echoing RTP. In one run:

(a) set-up time, INVITE sent -> 200 received, through the agent against SIPp calling the
    buyer directly (the baseline), in alternating halves of the same run; p50/p99 and the
    difference (goal: <= +3 ms at p50);
(b) short calls at a ladder of rates for ``--seconds`` each: the highest with zero failed
    calls (goal: >= 300/s; the issue's goal is for 60 s trials); no baseline, the goal is
    absolute;
(c) simultaneous bridged calls with full-duplex G.711: SIPp streams a PCMU tone into every
    call, the buyer echoes it, and a sample of calls carries an RTP peer's tone that must come
    back; agent CPU and RSS while they are all up, against the same agent idle just before
    (goal: >= 500 calls, <= 1 core);
(d) soak: ``--soak`` short calls in 4 chunks or more; RSS after each, the first chunk being the
    warm-up (goal: the others within 10%);
(e) flood: ``--flood-rate`` INVITEs/s for 10 s of unknown uuids from another address while
    legitimate calls keep coming and a sample of calls carries a tone: crashes, legitimate
    calls lost (goal: none), what the flood got, audio during the flood, the next call.

Every part also checks its workload: each call answered as it should (200, or a refusal for
the flood), the sampled calls' tone back, the agent alive. Exit 0 when every goal and check
passed, 1 when one failed (the verdict block at the end names it), 2 when nothing could be
judged (SIPp missing). Goals are flags, ``--goal-...``, defaults the issue's.

    .venv/bin/python bench/sip.py [--seconds 60] [--rates 100,200,300,400] [--bridges 500]
                                  [--soak 50000] [--flood-rate 1000] [--only a,b,c,d,e]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tone_sample import ToneSample, judge  # noqa: E402
from bench.verdict import Verdict, refuse  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.domain.ping import PingRequest  # noqa: E402
from rtbridge.storage.catalog import CatalogCache  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.reservations import Reservations  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402

SCENARIOS = Path(__file__).with_name("scenarios")
FLOOD_SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "uac_failure.xml"
KEY = "sip-bench-key-000000000000"
_STAMP = re.compile(r"^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$")
TICK = os.sysconf("SC_CLK_TCK")


def config(buyer_port: int) -> str:
    """What a site runs: a DID pool, a buyer with caps, an allowlisted publisher."""
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "bench"
numbers = ["+18005550101", "+18005550102", "+18005550103", "+18005550104"]

[[campaigns.buyers]]
id = "buyer"
destination = "sip:buyer@127.0.0.1:{buyer_port}"
payout = 10.0
seconds = 30
concurrency = 100000
daily_cap = 10000000

[[publishers]]
id = "pub"
ips = ["127.0.0.1/32"]

[[keys]]
key = "{KEY}"
publisher = "pub"
campaign = "bench"
ttl_seconds = 3600
"""


def setup_times(message_file: Path) -> list[float]:
    """INVITE-sent to 200-received per Call-ID, in ms, from SIPp's -trace_msg file."""
    sent: dict[str, datetime] = {}
    times: list[float] = []
    stamp: datetime | None = None
    direction = first = ""
    for line in message_file.read_text(errors="replace").splitlines():
        m = _STAMP.match(line)
        if m:
            stamp = datetime.fromisoformat(m.group(1))
            direction, first = "", ""
            continue
        if line.startswith(("UDP message sent", "UDP message received")):
            direction = "sent" if "sent" in line else "received"
            continue
        if line and not first and direction:
            first = line
            continue
        if line.startswith("Call-ID:") and stamp is not None:
            call_id = line.split(":", 1)[1].strip()
            if direction == "sent" and first.startswith("INVITE") and call_id not in sent:
                sent[call_id] = stamp
            elif direction == "received" and first.startswith("SIP/2.0 200") and call_id in sent:
                times.append((stamp - sent.pop(call_id)).total_seconds() * 1000)
    return times


def final_codes(message_file: Path) -> dict[int, int]:
    """Final answers to INVITEs, by code, one per Call-ID."""
    seen: dict[str, int] = {}
    for block in message_file.read_text(errors="replace").split("\n-----"):
        m = re.search(r"^SIP/2.0 ([2-6]\d\d) .*?^Call-ID: *(\S+).*?^CSeq: *\d+ INVITE", block,
                      re.M | re.S)  # fmt: skip
        if m:
            seen[m.group(2)] = int(m.group(1))
    counts: dict[int, int] = {}
    for code in seen.values():
        counts[code] = counts.get(code, 0) + 1
    return counts


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = max(0, sample.bit_length() - 8)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def write_tone(path: Path) -> None:
    """One second of a 440 Hz tone as raw PCMU, what uac_media.xml streams (looped)."""
    path.write_bytes(
        bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * n / 8000))) for n in range(8000))
    )


class Proc:
    """CPU seconds and RSS of a process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_over(self, seconds: float) -> float:
        """Share of one core used over the next ``seconds``."""
        before, started = self.cpu(), time.monotonic()
        time.sleep(seconds)
        return (self.cpu() - before) / (time.monotonic() - started)


class Bench:
    def __init__(self, work: Path, agent_options: list[str] | None = None) -> None:
        self.work = work
        self.buyer_port = free_port("127.0.0.1")
        self.agent_port = free_port("127.0.0.1")
        self.status_port = free_port("127.0.0.1")
        self.db_url = f"sqlite:///{work / 'bench.db'}"
        self.engine = open_database(self.db_url)
        self.configure()
        self.ops = Reservations(self.engine, CatalogCache(self.engine))
        self.callers = 0
        write_tone(work / "tone.pcmu")
        (work / "agent.toml").write_text(
            f'[agent]\nhosts = ["127.0.0.1"]\nport = {self.agent_port}\nmedia_address = "127.0.0.1"\n'
            "rtp_port_min = 20000\nrtp_port_max = 32000\nlog_level = 0\n"
            + "".join(f"{line}\n" for line in agent_options or ())
        )
        self.buyer: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.extra_env: dict[str, str] = {}

    def configure(self) -> None:
        """Write and apply the configuration file (before the catalog is read)."""
        (self.work / "bench.toml").write_text(config(self.buyer_port))
        apply_file(self.engine, self.work / "bench.toml")

    # -- processes --------------------------------------------------------------------------
    def start_buyer(self) -> None:
        self.buyer = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(self.buyer_port), "-nostdin",
             "-mp", str(free_port("127.0.0.1")), "-rtp_echo", "-max_recv_loops", "1000",
             "-l", "100000"],  # SIPp UAS defaults to a small open-call limit and drops INVITEs beyond it
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)

    def start_agent(self) -> Proc:
        env = {**os.environ, "RTBRIDGE_DB": self.db_url, **self.extra_env}
        log = (self.work / "agent.log").open("ab")
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "rtbridge", "sip", "--sip-config", str(self.work / "agent.toml"),
             "--http", f"127.0.0.1:{self.status_port}", "--log-level", os.environ.get("RTB_AGENT_LOG", "warning")],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        wait_for_port("127.0.0.1", self.status_port, timeout=30)
        return Proc(self.agent.pid)

    def agent_alive(self) -> bool:
        if self.agent is not None and self.agent.poll() is None:
            return True
        tail = (self.work / "agent.log").read_text(errors="replace")[-800:]
        print(f"  !! the agent process died:\n{tail}")
        return False

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else float("nan")

    def stop(self) -> None:
        for proc in (self.agent, self.buyer):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.engine.dispose()

    # -- traffic ----------------------------------------------------------------------------
    def reserve(self, n: int, key: str = KEY) -> list[tuple[str, str]]:
        """``n`` real reservations on ``key`` (distinct caller numbers, so each takes a DID):
        (uuid, caller number)."""
        rows: list[tuple[str, str]] = []
        for start in range(0, n, 500):
            reqs = []
            for _ in range(min(500, n - start)):
                self.callers += 1
                reqs.append(PingRequest(key=key, caller_number=f"+1202{self.callers:07d}",
                                        inbound_number=None))  # fmt: skip
            for req, outcome in zip(reqs, self.ops.ping_many(reqs), strict=True):
                uuid = getattr(outcome, "uuid", None)
                if getattr(outcome, "status", "") not in ("reserved", "confirmed") or not uuid:
                    raise RuntimeError(f"ping did not reserve: {outcome}")
                assert req.caller_number is not None  # set above
                rows.append((uuid, req.caller_number))
        return rows

    def reservations(self, n: int, key: str = KEY) -> Path:
        """``n`` real reservations as SIPp's CSV (-inf)."""
        path = self.work / f"calls-{time.monotonic_ns()}.csv"
        rows = self.reserve(n, key)
        path.write_text("SEQUENTIAL\n" + "".join(f"{u};{c};\n" for u, c in rows))
        return path

    def tone_sample(self, n: int, hold_ms: int, key: str = KEY) -> ToneSample:
        """``n`` calls through the agent, each with its own RTP peer's tone."""
        uuids = [uuid for uuid, _ in self.reserve(n, key)]
        return ToneSample(self.work, f"127.0.0.1:{self.agent_port}", uuids, hold_ms)

    def sipp(self, target: str, scenario: Path, n: int, *, rate: float, limit: int,
             hold_ms: int = 0, inf: Path | None = None, host: str = "127.0.0.1",
             service: str = "x", timeout: float = 300,
             wait: bool = True) -> tuple[subprocess.Popen[str], Path]:  # fmt: skip
        msg = self.work / f"uac-{time.monotonic_ns()}.msg"
        args = ["sipp", target, "-sf", str(scenario), "-i", host, "-p", str(free_port(host)),
                "-m", str(n), "-l", str(limit), "-r", str(rate), "-d", str(hold_ms), "-s", service,
                "-nostdin", "-trace_msg", "-message_file", str(msg), "-mi", host,
                "-mp", str(free_port(host, count=4)), "-timeout", f"{timeout}s", "-timeout_error",
                "-max_recv_loops", "1000", "-key", "caller", "+12025550100", "-key", "display",
                "bench", "-key", "rtp_port", "9"]  # fmt: skip
        if inf is not None:
            args += ["-inf", str(inf)]
        proc = subprocess.Popen(args, cwd=self.work, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        if wait:
            proc.wait()
        return proc, msg

    def calls(self, n: int, *, rate: float, hold_ms: int = 0, media: bool = False,
              wait: bool = True, key: str = KEY,
              inf: Path | None = None) -> tuple[subprocess.Popen[str], Path]:  # fmt: skip
        """``n`` calls through the agent, each on a new reservation of ``key`` (or on the
        rows of ``inf``, reservations made beforehand)."""
        scenario = SCENARIOS / ("uac_media.xml" if media else "uac_bench.xml")
        limit = n if hold_ms else max(10, int(rate * 2))
        return self.sipp(f"127.0.0.1:{self.agent_port}", scenario, n, rate=rate, limit=limit,
                         hold_ms=hold_ms, inf=inf or self.reservations(n, key),
                         wait=wait)  # fmt: skip


# -- the five measurements ---------------------------------------------------------------------


def answered_all(verdict: Verdict, name: str, codes: dict[int, int], n: int) -> bool:
    others = {c: k for c, k in sorted(codes.items()) if c != 200}
    return verdict.check(f"{name}: every call answered 200", codes.get(200, 0) == n,
                         f"{codes.get(200, 0)} of {n} answered 200, others {others}")  # fmt: skip


def bench_setup(bench: Bench, verdict: Verdict, calls: int, goal_ms: float) -> None:
    """Both paths in two alternating halves (direct, agent, agent, direct), so drift of the
    machine falls on both alike."""
    direct_csv = bench.work / "direct.csv"
    direct_csv.write_text("SEQUENTIAL\n" + "buyer;+12025550100;\n" * calls)
    times: dict[str, list[float]] = {"direct": [], "agent": []}
    codes: dict[str, Counter[int]] = {"direct": Counter(), "agent": Counter()}
    halves = (calls - calls // 2, calls // 2)
    for path, n in (("direct", halves[0]), ("agent", halves[0]), ("agent", halves[1]),
                    ("direct", halves[1])):  # fmt: skip
        if path == "direct":
            _, msg = bench.sipp(f"127.0.0.1:{bench.buyer_port}", SCENARIOS / "uac_bench.xml", n,
                                rate=20, limit=1, inf=direct_csv)  # fmt: skip
        else:
            _, msg = bench.calls(n, rate=20)
        times[path] += setup_times(msg)
        codes[path].update(final_codes(msg))
    direct, through = times["direct"], times["agent"]
    print(f"\n(a) call set-up, INVITE -> 200 at the publisher, {calls} calls at 20/s on each path")
    print(f"    {'path':<24}{'answered':>9}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for name, values in (("SIPp -> SIPp (baseline)", direct), ("SIPp -> agent -> SIPp", through)):
        if values:
            print(f"    {name:<24}{len(values):>9}{pct(values, 0.5):>9.2f}"
                  f"{pct(values, 0.99):>9.2f}{statistics.fmean(values):>9.2f}")  # fmt: skip
    answered_all(verdict, "(a) SIPp -> SIPp", dict(codes["direct"]), calls)
    answered_all(verdict, "(a) SIPp -> agent -> SIPp", dict(codes["agent"]), calls)
    if direct and through:
        added = pct(through, 0.5) - pct(direct, 0.5)
        print(f"    added by the agent at p50: {added:+.2f} ms (goal <= +{goal_ms:g} ms)")
        verdict.goal("(a) set-up added by the agent at p50", added <= goal_ms,
                     f"{added:+.2f} ms (goal <= +{goal_ms:g} ms)")  # fmt: skip
    else:
        verdict.goal("(a) set-up added by the agent at p50", False, "no call answered on a path")


def bench_rate(bench: Bench, verdict: Verdict, agent: Proc, rates: list[float], seconds: int,
               goal: float) -> None:  # fmt: skip
    print(f"\n(b) short calls (no hold) for {seconds} s at each rate; stop at the first failure")
    best = 0.0
    for rate in rates:
        n = int(rate * seconds)
        proc, msg = bench.calls(n, rate=rate, wait=False)
        started, cpu0 = time.monotonic(), agent.cpu()
        proc.wait()
        elapsed = time.monotonic() - started
        cpu = (agent.cpu() - cpu0) / elapsed
        codes = final_codes(msg)
        answered = codes.get(200, 0)
        setup = setup_times(msg) or [float("nan")]
        print(f"    {rate:>5.0f}/s offered: {answered} answered, {n - answered} failed "
              f"{ {c: k for c, k in sorted(codes.items()) if c != 200} }, "
              f"{answered / elapsed:.0f}/s achieved, set-up p50 {pct(setup, 0.5):.1f} ms "
              f"p99 {pct(setup, 0.99):.1f} ms, agent CPU {cpu:.0%}")  # fmt: skip
        if answered != n or not bench.agent_alive():
            break
        best = rate
    print(f"    highest rate with zero failed calls: {best:.0f}/s (goal >= {goal:g}/s)")
    verdict.goal(f"(b) highest rate with zero failed calls, {seconds} s at each", best >= goal,
                 f"{best:.0f}/s of the ladder {rates} (goal >= {goal:g}/s)")  # fmt: skip


def bench_bridges(bench: Bench, verdict: Verdict, agent: Proc, bridges: int, sampled: int,
                  goal: int, goal_cpu: float) -> None:  # fmt: skip
    print(f"\n(c) {bridges} simultaneous calls, the publisher streaming PCMU, the buyer echoing; "
          f"{sampled} of them with an RTP peer's tone")  # fmt: skip
    idle_cpu, idle_rss = agent.cpu_over(3), agent.rss_mb()
    ramp = 50.0
    hold_ms = int((bridges / ramp + 25) * 1000)
    sample = bench.tone_sample(sampled, hold_ms)
    bulk = bridges - sampled
    proc, msg = bench.calls(bulk, rate=ramp, hold_ms=hold_ms, media=True, wait=False)
    deadline = time.monotonic() + bridges / ramp + 20
    up = 0.0
    while time.monotonic() < deadline:
        up = bench.metric('rtbridge_sip_bridges{phase="connected"}')
        if up >= bridges:
            break
        time.sleep(0.5)
    time.sleep(2)
    sample.mark()
    cpu, rss = agent.cpu_over(10), agent.rss_mb()
    sample.close_window()
    up = bench.metric('rtbridge_sip_bridges{phase="connected"}')
    proc.wait()
    heard = sample.finish()
    codes = final_codes(msg)
    print(f"    bridged at once: {up:.0f} of {bridges} (bulk answered {codes.get(200, 0)} of "
          f"{bulk}, refused { {c: k for c, k in codes.items() if c != 200} }) "
          f"(goal >= {goal})")  # fmt: skip
    print(f"    agent CPU {cpu:.0%} of one core (idle {idle_cpu:.0%}; goal <= {goal_cpu:.0%}), "
          f"{(cpu - idle_cpu) * 100 / max(up, 1):.1%} per 100 calls")  # fmt: skip
    print(f"    agent RSS {rss:.0f} MB (idle {idle_rss:.0f} MB), "
          f"{(rss - idle_rss) / max(up, 1) * 1024:.0f} kB per call")  # fmt: skip
    print(f"    tone back on the sampled calls over {heard.window:.1f} s while all were up: "
          f"{', '.join(f'{s:.1f} s' for s in heard.seconds)}")  # fmt: skip
    answered_all(verdict, "(c) bulk calls", codes, bulk)
    judge(verdict, "(c) while all were up", heard)
    verdict.goal("(c) calls bridged at once (the agent's metric)", up >= goal,
                 f"{up:.0f} of {bridges} placed (goal >= {goal})")  # fmt: skip
    verdict.goal("(c) agent CPU with all of them up", cpu <= goal_cpu,
                 f"{cpu:.0%} of one core (goal <= {goal_cpu:.0%})")  # fmt: skip


def bench_soak(bench: Bench, verdict: Verdict, agent: Proc, total: int, rate: float,
               goal: float) -> None:  # fmt: skip
    chunk = 10_000 if total >= 40_000 else max(1, total // 4)
    print(f"\n(d) soak: {total} short calls at {rate:.0f}/s, RSS after each {chunk}")
    samples: list[tuple[int, float]] = []
    done = failed = 0
    while done < total:
        n = min(chunk, total - done)
        _, msg = bench.calls(n, rate=rate)
        done += n
        failed += n - final_codes(msg).get(200, 0)
        samples.append((done, agent.rss_mb()))
        print(f"    {done:>7} calls: RSS {samples[-1][1]:.0f} MB, failed so far {failed}")
        if not bench.agent_alive():
            break
    verdict.check("(d) every soak call answered 200", failed == 0 and done == total,
                  f"{failed} of {done} failed")  # fmt: skip
    warm = samples[1:]  # the first chunk warms pjsua's pools up
    if len(warm) < 3:
        verdict.goal("(d) RSS flat after warm-up", False,
                     f"{len(warm)} samples after warm-up, 3 needed: the agent died")  # fmt: skip
        return
    low, high = min(r for _, r in warm), max(r for _, r in warm)
    spread = (high - low) / low
    print(f"    after warm-up RSS {low:.0f}..{high:.0f} MB: {spread:.1%} (goal: within {goal:.0%})")
    verdict.goal("(d) RSS flat after warm-up", spread <= goal,
                 f"{low:.0f}..{high:.0f} MB over {len(warm)} samples, {spread:.1%} "
                 f"(goal <= {goal:.0%})")  # fmt: skip


def bench_flood(bench: Bench, verdict: Verdict, agent: Proc, rate: int, goal_lost: int,
                sampled: int, seconds: int = 10) -> None:  # fmt: skip
    print(f"\n(e) flood: {rate} INVITE/s for {seconds} s of unknown uuids from 127.0.0.2, with "
          f"legitimate calls at 20/s from 127.0.0.1 and {sampled} calls with a tone")  # fmt: skip
    sample = bench.tone_sample(sampled, (seconds + 8) * 1000)
    legit, legit_msg = bench.calls(20 * (seconds + 4), rate=20, hold_ms=2000, wait=False)
    time.sleep(2)
    cpu0 = agent.cpu()
    sample.mark()
    flood, flood_msg = bench.sipp(f"127.0.0.1:{bench.agent_port}", FLOOD_SCENARIO, rate * seconds,
                                  rate=rate, limit=rate * 2, host="127.0.0.2",
                                  service="flood", timeout=60, wait=False)  # fmt: skip
    flood.wait()
    sample.close_window()
    cpu = (agent.cpu() - cpu0) / seconds
    legit.wait()
    heard = sample.finish()
    alive = bench.agent_alive()
    codes, flood_codes = final_codes(legit_msg), final_codes(flood_msg)
    total = 20 * (seconds + 4)
    lost = total - codes.get(200, 0)
    print(f"    agent alive: {alive}; agent CPU during the flood {cpu:.0%}")
    print(f"    flood answered: {dict(sorted(flood_codes.items()))} "
          f"(of {rate * seconds} sent)")  # fmt: skip
    print(f"    legitimate calls: {codes.get(200, 0)} of {total} bridged, {lost} lost "
          f"{ {c: k for c, k in sorted(codes.items()) if c != 200} }")  # fmt: skip
    print(f"    tone back on the sampled calls during the flood ({heard.window:.1f} s): "
          f"{', '.join(f'{s:.1f} s' for s in heard.seconds)}")  # fmt: skip
    verdict.check("(e) the agent alive after the flood", alive, "alive" if alive else "died")
    bridged = sum(k for c, k in flood_codes.items() if 200 <= c < 300)
    verdict.check("(e) no flood INVITE bridged", bridged == 0,
                  f"{bridged} answered 2xx of {rate * seconds}; answers "
                  f"{dict(sorted(flood_codes.items()))}")  # fmt: skip
    judge(verdict, "(e) during the flood", heard)
    verdict.goal("(e) legitimate calls lost during the flood", lost <= goal_lost,
                 f"{lost} of {total} (goal <= {goal_lost})")  # fmt: skip
    if alive:
        _, msg = bench.calls(1, rate=1)
        after = final_codes(msg).get(200, 0) == 1
        print(f"    next call after the flood: {'bridged' if after else 'FAILED'}")
        verdict.check("(e) the next call after the flood bridged", after,
                      f"answers {final_codes(msg)}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="calls for the set-up comparison")
    parser.add_argument("--seconds", type=int, default=60, help="length of each rate trial")
    parser.add_argument("--rates", default="100,200,300,400", help="calls/s ladder for (b)")
    parser.add_argument("--bridges", type=int, default=500, help="simultaneous calls for (c)")
    parser.add_argument("--soak", type=int, default=50_000, help="short calls for (d)")
    parser.add_argument("--soak-rate", type=float, default=300)
    parser.add_argument("--flood-rate", type=int, default=1000)
    parser.add_argument("--sampled", type=int, default=4,
                        help="calls of (c) and (e) whose tone must come back")  # fmt: skip
    parser.add_argument("--only", default="a,b,c,d,e", help="which measurements to run")
    parser.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="'KEY = VALUE'",
        help="an extra [agent] line for the agent's options (repeatable)",
    )
    goals = parser.add_argument_group("goals")
    goals.add_argument("--goal-setup-ms", type=float, default=3.0, metavar="MS",
                       help="(a) set-up added at p50, at most")  # fmt: skip
    goals.add_argument("--goal-rate", type=float, default=300, metavar="CALLS_PER_S",
                       help="(b) highest rate with no failed call, at least")  # fmt: skip
    goals.add_argument("--goal-bridges", type=int, default=500, metavar="N",
                       help="(c) calls bridged at once, at least")  # fmt: skip
    goals.add_argument("--goal-cpu", type=float, default=1.0, metavar="CORES",
                       help="(c) agent CPU with them all up, at most")  # fmt: skip
    goals.add_argument("--goal-rss-spread", type=float, default=0.10, metavar="SHARE",
                       help="(d) RSS spread after warm-up, at most")  # fmt: skip
    goals.add_argument("--goal-flood-lost", type=int, default=0, metavar="N",
                       help="(e) legitimate calls lost during the flood, at most")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        return refuse("bench/sip.py", "sipp is missing: apt-get install sip-tester")
    only = set(args.only.split(","))
    if "c" in only and not 0 < args.sampled < args.bridges:
        return refuse("bench/sip.py", f"--sampled {args.sampled} must be 1..{args.bridges - 1}")
    verdict = Verdict("bench/sip.py")
    verdict.goals_from(parser, args)
    bench = Bench(Path(tempfile.mkdtemp(prefix="rtbridge-sipbench-")), args.agent)
    try:
        bench.start_buyer()
        agent = bench.start_agent()
        build = urllib.request.urlopen(f"http://127.0.0.1:{bench.status_port}/health").read()
        print(f"rtbridge sip on SQLite, {os.cpu_count()} CPUs; agent: {build.decode()[:400]}")
        if "a" in only:
            bench_setup(bench, verdict, args.calls, args.goal_setup_ms)
        if "b" in only and bench.agent_alive():
            bench_rate(bench, verdict, agent, [float(r) for r in args.rates.split(",")],
                       args.seconds, args.goal_rate)  # fmt: skip
        if "c" in only and bench.agent_alive():
            bench_bridges(bench, verdict, agent, args.bridges, args.sampled, args.goal_bridges,
                          args.goal_cpu)  # fmt: skip
        if "d" in only and bench.agent_alive():
            bench_soak(bench, verdict, agent, args.soak, args.soak_rate, args.goal_rss_spread)
        if "e" in only and bench.agent_alive():
            bench_flood(bench, verdict, agent, args.flood_rate, args.goal_flood_lost,
                        min(args.sampled, 2))  # fmt: skip
        alive = bench.agent_alive()
        verdict.check("the agent alive at the end", alive, "alive" if alive else "died")
    finally:
        bench.stop()
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
