"""Benchmark the SIP agent with SIPp (Debian ``sip-tester``), in one run:

(a) call set-up time, INVITE sent -> 200 received at the publisher, through the agent
    (``rtbridge sip`` on SQLite: authenticate by allowlist, claim, dial the buyer, relay)
    against SIPp calling the same SIPp buyer directly; p50/p99 and the difference;
(b) the highest rate of short calls the agent carries for ``--seconds`` (60 by default) with
    zero failed calls, searched over a ladder of rates;
(c) how many bridged calls one agent process holds at once (long calls, counting 200s).

    .venv/bin/python bench/sip.py [--calls 200] [--seconds 60] [--max-bridges 0]

Goals (issue 3): set-up <= direct + 5 ms at p50; >= 100 calls/s; report (c).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtbridge.config.apply import apply_file  # noqa: E402
from rtbridge.domain.ping import PingRequest  # noqa: E402
from rtbridge.storage.catalog import CatalogCache  # noqa: E402
from rtbridge.storage.engine import open_database  # noqa: E402
from rtbridge.storage.reservations import Reservations  # noqa: E402
from tests.support.net import free_port  # noqa: E402

SCENARIO = Path(__file__).with_name("scenarios") / "uac_bench.xml"
KEY = "sip-bench-key-000000000000"
_STAMP = re.compile(r"^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$")


def config(buyer_port: int) -> str:
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "bench"

[[campaigns.buyers]]
id = "buyer"
destination = "sip:buyer@127.0.0.1:{buyer_port}"
payout = 10.0
seconds = 30

[[publishers]]
id = "pub"
ips = ["127.0.0.1/32"]

[[keys]]
key = "{KEY}"
publisher = "pub"
campaign = "bench"
allow_missing_caller_number = true
ttl_seconds = 3600
"""


def setup_times(message_file: Path) -> list[float]:
    """INVITE-sent to 200-received per Call-ID, in ms, from SIPp's -trace_msg file."""
    sent: dict[str, datetime] = {}
    times: list[float] = []
    stamp: datetime | None = None
    direction = ""
    first = ""
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


def refusals(message_file: Path) -> dict[int, int]:
    """Calls answered with a final error, by code (one per Call-ID, retransmissions aside)."""
    text = message_file.read_text(errors="replace")
    seen: dict[str, int] = {}
    for block in text.split("\n-----"):
        m = re.search(r"^SIP/2.0 ([3-6]\d\d) .*?^Call-ID: *(\S+)", block, re.M | re.S)
        if m:
            seen[m.group(2)] = int(m.group(1))
    counts: dict[int, int] = {}
    for code in seen.values():
        counts[code] = counts.get(code, 0) + 1
    return counts


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, work: Path, max_bridges: int) -> None:
        self.work = work
        self.buyer_port = free_port("127.0.0.1")
        self.agent_port = free_port("127.0.0.1")
        self.db_url = f"sqlite:///{work / 'bench.db'}"
        self.engine = open_database(self.db_url)
        (work / "bench.toml").write_text(config(self.buyer_port))
        apply_file(self.engine, work / "bench.toml")
        self.ops = Reservations(self.engine, CatalogCache(self.engine))
        rtp = free_port("127.0.0.1")
        (work / "agent.toml").write_text(
            f'[agent]\nhosts = ["127.0.0.1"]\nport = {self.agent_port}\nmedia_address = "127.0.0.1"\n'
            f"rtp_port_min = {rtp}\nrtp_port_max = {rtp + 200}\nmax_bridges = {max_bridges}\nlog_level = 0\n"
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_buyer(self) -> None:
        proc = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(self.buyer_port), "-nostdin", "-mp",
             str(free_port("127.0.0.1")), "-max_recv_loops", "1000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        time.sleep(0.3)

    def start_agent(self) -> None:
        env = {**os.environ, "RTBRIDGE_DB": self.db_url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtbridge", "sip", "--sip-config", str(self.work / "agent.toml"),
             "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.procs.append(proc)
        time.sleep(1.5)
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "agent exited")

    def reservations(self, n: int) -> Path:
        reqs = [PingRequest(key=KEY, caller_number=None, inbound_number=None) for _ in range(n)]
        uuids: list[str] = []
        for i in range(0, n, 500):
            uuids += [o.uuid for o in self.ops.ping_many(reqs[i : i + 500])]  # type: ignore[union-attr]
        path = self.work / f"calls-{time.monotonic_ns()}.csv"
        path.write_text("SEQUENTIAL\n" + "".join(f"{u};\n" for u in uuids))
        return path

    def uac(self, target_port: int, calls: Path, n: int, *, rate: float, limit: int, hold_ms: int = 0,
            timeout: float = 120) -> tuple[int, Path, str]:  # fmt: skip
        msg = self.work / f"uac-{time.monotonic_ns()}.msg"
        args = ["sipp", f"127.0.0.1:{target_port}", "-sf", str(SCENARIO), "-inf", str(calls),
                "-i", "127.0.0.1", "-p", str(free_port("127.0.0.1")), "-m", str(n), "-l", str(limit),
                "-r", str(rate), "-d", str(hold_ms), "-nostdin", "-trace_msg", "-message_file", str(msg),
                "-mp", str(free_port("127.0.0.1")), "-timeout", f"{timeout}s", "-timeout_error",
                "-max_recv_loops", "1000", "-trace_stat", "-stf", str(self.work / "stat.csv")]  # fmt: skip
        done = subprocess.run(args, cwd=self.work, capture_output=True, text=True, check=False)
        return done.returncode, msg, done.stdout[-2000:]

    def agent_alive(self) -> bool:
        """False (and says why) when the agent process has died, e.g. pjsip's assertion when
        its 64-handle ioqueue runs out under an INVITE burst."""
        agent = self.procs[-1]
        if agent.poll() is None:
            return True
        tail = agent.stderr.read().decode(errors="replace")[-600:] if agent.stderr else ""
        print(f"  !! the agent process died (exit {agent.returncode}):\n{tail}")
        return False

    def close(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="calls for the set-up comparison")
    parser.add_argument(
        "--seconds", type=int, default=60, help="duration of each sustained-rate trial"
    )
    parser.add_argument("--max-bridges", type=int, default=0, help="agent max_bridges (0: default)")
    parser.add_argument("--rates", default="25,50,75,100,150,200", help="calls/s ladder for (b)")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is missing: apt-get install sip-tester", file=sys.stderr)
        return 2
    bench = Bench(Path(tempfile.mkdtemp(prefix="rtbridge-sipbench-")), args.max_bridges)
    try:
        bench.start_buyer()
        bench.start_agent()
        # (a) set-up time, sequential calls, direct then through the agent
        direct_csv = bench.work / "direct.csv"
        direct_csv.write_text("SEQUENTIAL\n" + "buyer;\n" * args.calls)
        rc, msg, _ = bench.uac(bench.buyer_port, direct_csv, args.calls, rate=20, limit=1)
        direct = setup_times(msg)
        rc2, msg2, out2 = bench.uac(
            bench.agent_port, bench.reservations(args.calls), args.calls, rate=20, limit=1
        )
        agent = setup_times(msg2)
        if rc or rc2 or len(agent) != args.calls:
            print(
                f"set-up runs failed (direct rc={rc}, agent rc={rc2}, {len(agent)} answered)\n{out2}"
            )
            return 1
        print(f"\n(a) call set-up INVITE -> 200 at the publisher, {args.calls} sequential calls")
        print(f"{'path':<22}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
        for name, values in (("SIPp -> SIPp direct", direct), ("SIPp -> agent -> SIPp", agent)):
            print(
                f"{name:<22}{pct(values, 0.5):>10.2f}{pct(values, 0.99):>10.2f}{statistics.fmean(values):>10.2f}"
            )
        print(f"difference at p50: {pct(agent, 0.5) - pct(direct, 0.5):+.2f} ms (goal <= +5 ms)")

        # (b) sustained short calls: the highest rung with zero failures
        print(
            f"\n(b) short calls (no hold) for {args.seconds} s at each rate, stop at the first failure"
        )
        best = 0.0
        for rate in (float(r) for r in args.rates.split(",")):
            n = int(rate * args.seconds)
            calls = bench.reservations(n)
            started = time.monotonic()
            rc, msg, _ = bench.uac(bench.agent_port, calls, n, rate=rate, limit=max(1, int(rate)),
                                   timeout=args.seconds * 3)  # fmt: skip
            elapsed = time.monotonic() - started
            answered = len(setup_times(msg))
            failed = n - answered
            print(f"  {rate:>6.0f} calls/s offered: {answered} answered, {failed} failed "
                  f"{dict(sorted(refusals(msg).items()))}, {answered / elapsed:.1f} calls/s achieved "
                  f"over {elapsed:.1f} s")  # fmt: skip
            if failed or rc or not bench.agent_alive():
                break
            best = rate
        print(f"highest rate with zero failed calls: {best:.0f} calls/s (goal >= 100)")

        # (c) simultaneous bridged calls held by one process
        if not bench.agent_alive():
            bench.start_agent()
        k = 6
        _, msg, _ = bench.uac(
            bench.agent_port, bench.reservations(k), k, rate=100, limit=k, hold_ms=3000
        )
        held = len(setup_times(msg))
        finals = refusals(msg)
        print(f"\n(c) {k} long calls at once: {held} bridged; refused: "
              + (", ".join(f"{n} with {code}" for code, n in sorted(finals.items())) or "none"))  # fmt: skip
        return 0
    finally:
        bench.close()


if __name__ == "__main__":
    raise SystemExit(main())
