"""Soak the SIP agent with mixed traffic for ``--minutes`` and check that nothing is lost.

``rtbridge sip`` (default options, SQLite) carries, every minute, calls of every kind a site
sees, each on a real reservation from a ping (one campaign and buyer with caps per kind):

    answered      publisher hangs up after 3 s          buyer answers, echoes RTP
    buyer-bye     buyer hangs up after 2 s              publisher waits for the BYE
    bye-race      both hang up at the same moment       (BYEs cross)
    busy          buyer refuses 486
    cancel        publisher CANCELs while it rings
    no-answer     buyer rings past ring_timeout (3 s)   agent CANCELs, publisher gets 408
    re-invite     publisher re-INVITEs mid-call, then hangs up

Then the agent is stopped (SIGTERM: drain), unused reservations expire, and the run passes
only if every reservation is terminal, every buyer counter equals its recount, every claimed
reservation has a call record with an end, and the agent's RSS after warm-up stayed within
10%. SIPp's own view (answers per kind) is printed too: a crossed BYE is a "failed" call for
SIPp and a fine one for us.

    .venv/bin/python bench/soak.py [--minutes 30] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sip import Proc, final_codes  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.domain.ping import PingRequest  # noqa: E402
from rtbridge.storage.catalog import CatalogCache  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.recount import check_counters  # noqa: E402
from rtbridge.storage.reservations import Reservations  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402

SCENARIOS = ROOT / "tests" / "sip" / "scenarios"
TTL = 120  # longer than a minute of calls made from one batch of pings


@dataclass(frozen=True)
class Kind:
    name: str
    publisher: str  # scenario in tests/sip/scenarios (or bench/scenarios)
    buyer: str  # which buyer SIPp
    rate: float  # calls/s
    hold_ms: int = 0  # the publisher's -d


KINDS = (
    Kind("answered", "uac_call.xml", "answer", 6, 3000),
    Kind("buyer-bye", "uac_remote_bye.xml", "hangup", 3),
    Kind("bye-race", "uac_call.xml", "hangup", 2, 2000),
    Kind("busy", "uac_failure.xml", "busy", 3),
    Kind("cancel", "uac_cancel.xml", "noanswer", 3),
    Kind("no-answer", "uac_failure.xml", "noanswer", 1),
    Kind("re-invite", "uac_reinvite.xml", "answer", 2),
)
BUYERS = {  # buyer SIPp: scenario, -d (its hold before hanging up)
    "answer": ("uas_answer.xml", 0),
    "hangup": ("uas_hangup.xml", 2000),
    "busy": ("uas_reject.xml", 0),
    "noanswer": ("uas_noanswer.xml", 0),
}


def config(ports: dict[str, int]) -> str:
    parts = ['[sip]\ndomain = "sip.rtb.example.com"\n\n[[publishers]]\nid = "pub"\n'
             'ips = ["127.0.0.1/32"]\n']  # fmt: skip
    for n, kind in enumerate(KINDS):
        parts.append(f"""
[[campaigns]]
id = "{kind.name}"
numbers = ["+1800555{n:02d}01", "+1800555{n:02d}02"]

[[campaigns.buyers]]
id = "{kind.name}"
destination = "sip:buyer@127.0.0.1:{ports[kind.buyer]}"
payout = 10.0
seconds = 2
concurrency = 5000
daily_cap = 10000000

[[keys]]
key = "soak-{kind.name}-key-0000000000"
publisher = "pub"
campaign = "{kind.name}"
ttl_seconds = {TTL}
""")
    return "".join(parts)


class Soak:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.buyer_ports = {name: free_port("127.0.0.1") for name in BUYERS}
        self.agent_port = free_port("127.0.0.1")
        self.status_port = free_port("127.0.0.1")
        self.db_url = f"sqlite:///{work / 'soak.db'}"
        self.engine = open_database(self.db_url)
        (work / "soak.toml").write_text(config(self.buyer_ports))
        apply_file(self.engine, work / "soak.toml")
        self.ops = Reservations(self.engine, CatalogCache(self.engine))
        (work / "agent.toml").write_text(
            f'[agent]\nhosts = ["127.0.0.1"]\nport = {self.agent_port}\n'
            'media_address = "127.0.0.1"\nrtp_port_min = 20000\nrtp_port_max = 32000\n'
            "ring_timeout = 3.0\nlog_level = 0\n"
        )
        self.scenarios = {}
        for name in {k.publisher for k in KINDS} | {s for s, _ in BUYERS.values()}:
            source = SCENARIOS / name
            if not source.exists():
                source = ROOT / "bench" / "scenarios" / name
            path = work / name  # calls take their reservation uuid from -inf's [field0]
            path.write_text(source.read_text().replace("[service]", "[field0]"))
            self.scenarios[name] = path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.agent: subprocess.Popen[bytes] | None = None
        self.callers = 0

    def start(self) -> Proc:
        for name, (scenario, hold) in BUYERS.items():
            self.procs.append(subprocess.Popen(
                ["sipp", "-sf", str(self.scenarios[scenario]), "-i", "127.0.0.1",
                 "-p", str(self.buyer_ports[name]), "-mp", str(free_port("127.0.0.1", count=4)),
                 "-nostdin", "-rtp_echo", "-d", str(hold), "-max_recv_loops", "1000",
                 "-l", "100000", "-key", "caller", "+12025550100", "-key", "display", "soak",
                 "-key", "rtp_port", "9"],
                cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        log = (self.work / "agent.log").open("ab")
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "rtbridge", "sip", "--sip-config", str(self.work / "agent.toml"),
             "--http", f"127.0.0.1:{self.status_port}", "--log-level", "warning"],
            env={**os.environ, "RTBRIDGE_DB": self.db_url}, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        wait_for_port("127.0.0.1", self.status_port, timeout=30)
        time.sleep(0.5)
        return Proc(self.agent.pid)

    def reservations(self, kind: Kind, n: int) -> Path:
        reqs = []
        for _ in range(n):
            self.callers += 1
            reqs.append(PingRequest(key=f"soak-{kind.name}-key-0000000000",
                                    caller_number=f"+1303{self.callers:07d}", inbound_number=None))  # fmt: skip
        rows = [f"{o.uuid};\n" for o in self.ops.ping_many(reqs) if getattr(o, "uuid", None)]
        path = self.work / f"{kind.name}-{time.monotonic_ns()}.csv"
        path.write_text("SEQUENTIAL\n" + "".join(rows))
        return path

    def minute(self, scale: float) -> Counter[str]:
        """One minute of every kind at once; SIPp's final answers, per kind and code."""
        running = []
        for kind in KINDS:
            n = max(1, int(kind.rate * scale * 60))
            csv = self.reservations(kind, n)
            msg = self.work / f"{kind.name}-{time.monotonic_ns()}.msg"
            proc = subprocess.Popen(
                ["sipp", f"127.0.0.1:{self.agent_port}", "-sf", str(self.scenarios[kind.publisher]),
                 "-i", "127.0.0.1", "-p", str(free_port("127.0.0.1")), "-inf", str(csv),
                 "-m", str(n), "-l", str(n), "-r", str(kind.rate * scale), "-d", str(kind.hold_ms),
                 "-nostdin", "-trace_msg", "-message_file", str(msg), "-mi", "127.0.0.1",
                 "-mp", str(free_port("127.0.0.1", count=4)), "-timeout", "120s", "-timeout_error",
                 "-max_recv_loops", "1000", "-key", "caller", "+12025550100", "-key", "display",
                 "soak", "-key", "rtp_port", "9"],
                cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            running.append((kind, proc, msg, csv))
        seen: Counter[str] = Counter()
        for kind, proc, msg, csv in running:
            proc.wait()
            for code, count in final_codes(msg).items():
                seen[f"{kind.name} {code}"] += count
            msg.unlink(missing_ok=True)
            csv.unlink(missing_ok=True)
        return seen

    def stop(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.agent.kill()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()


def verdicts(soak: Soak) -> list[tuple[str, bool, str]]:
    """Nothing lost: the checks the run must pass, each with what was found."""
    deadline = time.monotonic() + TTL + 10
    while time.monotonic() < deadline and soak.ops.expire_due():
        pass
    time.sleep(max(0.0, TTL + 1))
    while soak.ops.expire_due():
        pass
    with soak.engine.connect() as conn:
        statuses = dict(
            conn.execute(text("SELECT status, count(*) FROM reservation GROUP BY status")).all()
        )
        open_records = conn.execute(
            text("SELECT count(*) FROM callrecord WHERE end_at IS NULL")
        ).scalar()
        unrecorded = conn.execute(text(
            "SELECT count(*) FROM reservation r LEFT JOIN callrecord c ON c.reservation_uuid = r.uuid "
            "WHERE r.status IN ('completed', 'failed') AND c.id IS NULL")).scalar()  # fmt: skip
        hangups = dict(conn.execute(text(
            "SELECT coalesce(hangup_by, '-'), count(*) FROM callrecord GROUP BY hangup_by")).all())  # fmt: skip
    live = {
        s: n for s, n in statuses.items() if s in ("reserved", "confirmed", "claimed", "connected")
    }
    report = check_counters(soak.engine)
    print(f"    reservations by status: {dict(sorted(statuses.items()))}")
    print(f"    call records by hangup_by: {dict(sorted(hangups.items()))}")
    return [
        ("every reservation terminal", not live, f"not terminal: {live}"),
        ("every counter equals its recount", not report.differences, f"{report.differences}"),
        ("every call record has an end", open_records == 0, f"{open_records} open"),
        ("every ended call has a record", unrecorded == 0, f"{unrecorded} without"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every kind's rate")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is missing: apt-get install sip-tester", file=sys.stderr)
        return 2
    soak = Soak(Path(tempfile.mkdtemp(prefix="rtbridge-soak-")))
    rate = sum(k.rate for k in KINDS) * args.scale
    print(
        f"soak: {args.minutes} min of mixed calls at {rate:.0f}/s, {os.cpu_count()} CPUs, "
        f"work dir {soak.work}"
    )
    rss: list[float] = []
    seen: Counter[str] = Counter()
    started = time.monotonic()
    try:
        agent = soak.start()
        for minute in range(1, args.minutes + 1):
            cpu0, t0 = agent.cpu(), time.monotonic()
            seen.update(soak.minute(args.scale))
            cpu = (agent.cpu() - cpu0) / (time.monotonic() - t0)
            rss.append(agent.rss_mb())
            print(f"    minute {minute:>3}: RSS {rss[-1]:.0f} MB, agent CPU {cpu:.0%}, "
                  f"calls so far {sum(seen.values())}", flush=True)  # fmt: skip
            if soak.agent is None or soak.agent.poll() is not None:
                print("  !! the agent died")
                return 1
    finally:
        soak.stop()
    print(
        f"\n    {sum(seen.values())} calls in {(time.monotonic() - started) / 60:.1f} min; "
        "SIPp's final answers per kind:"
    )
    for name in sorted(seen):
        print(f"      {name}: {seen[name]}")
    checks = verdicts(soak)
    warm = rss[len(rss) // 6 :] or rss
    spread = (max(warm) - min(warm)) / min(warm) if warm else 0.0
    checks.append(("agent RSS flat after warm-up (within 10%)", spread <= 0.10,
                   f"{min(warm):.0f}..{max(warm):.0f} MB, {spread:.1%}"))  # fmt: skip
    for name, ok, found in checks:
        print(f"    {'PASS' if ok else 'FAIL'}  {name}" + ("" if ok else f": {found}"))
    if all(ok for _, ok, _ in checks):
        print(f"    RSS {min(warm):.0f}..{max(warm):.0f} MB after warm-up ({spread:.1%})")
    soak.engine.dispose()
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
