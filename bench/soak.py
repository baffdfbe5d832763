"""Soak the SIP agent with mixed traffic for ``--minutes`` and check that nothing is lost.

``rtbridge sip`` (default options, SQLite) carries, every minute, calls of every kind a site
sees, each on a real reservation from a ping (one campaign and buyer with caps per kind),
and what the publisher must get back:

    answered      publisher hangs up after 3 s          buyer answers, echoes RTP    200
    buyer-bye     buyer hangs up after 2 s              publisher waits for the BYE  200
    bye-race      both hang up at the same moment       (BYEs cross)                 200
    busy          buyer refuses 486                                                  486
    cancel        publisher CANCELs while it rings                                   487
    no-answer     buyer rings past ring_timeout (3 s)   agent CANCELs the buyer      408
    re-invite     publisher re-INVITEs mid-call, then hangs up                       200

and ``--tone-calls`` answered calls a minute (2) whose publisher is an RTP peer sending a
440 Hz tone: the buyer echoes it, so it must come back (both directions of both legs).

Then the agent is stopped (SIGTERM: drain), unused reservations expire, and the run passes
only if every call of every kind got its answer (per call, from SIPp's message trace: a
crossed BYE is a "failed" call for SIPp and a fine one for us), every sampled call heard its
tone back for at least half of its hold, every reservation is terminal, every buyer counter
equals its recount, every claimed reservation has a call record with an end, and the agent's
RSS at the end of each minute after warm-up (the first sixth of the run, at least a minute)
stayed within 10% (``--goal-rss-spread``). That needs at least 3 minutes after warm-up: a run
shorter than 4 minutes is refused (exit 2) before it starts. Exit 0 all passed, 1 a check
or the goal failed (the verdict block names it).

    .venv/bin/python bench/soak.py [--minutes 30] [--scale 1.0] [--tone-calls 2]
"""

from __future__ import annotations

import argparse
import math
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
from bench.tone_sample import Heard, ToneSample, judge  # noqa: E402
from bench.verdict import Verdict, refuse  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.domain.ping import PingRequest  # noqa: E402
from rtbridge.storage.catalog import CatalogCache  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.recount import check_counters  # noqa: E402
from rtbridge.storage.reservations import Reservations  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402

SCENARIOS = ROOT / "tests" / "sip" / "scenarios"
TTL = 120  # longer than a minute of calls made from one batch of pings
MIN_AFTER_WARM_UP = 3  # RSS samples (minutes) the flatness check needs after warm-up
TONE_HOLD_MS = 4000


@dataclass(frozen=True)
class Kind:
    name: str
    publisher: str  # scenario in tests/sip/scenarios (or bench/scenarios)
    buyer: str  # which buyer SIPp
    rate: float  # calls/s
    answer: int  # the final answer the publisher must get to its INVITE
    hold_ms: int = 0  # the publisher's -d


KINDS = (
    Kind("answered", "uac_call.xml", "answer", 6, 200, 3000),
    Kind("buyer-bye", "uac_remote_bye.xml", "hangup", 3, 200),
    Kind("bye-race", "uac_call.xml", "hangup", 2, 200, 2000),
    Kind("busy", "uac_failure.xml", "busy", 3, 486),
    Kind("cancel", "uac_cancel.xml", "noanswer", 3, 487),
    Kind("no-answer", "uac_failure.xml", "noanswer", 1, 408),
    Kind("re-invite", "uac_reinvite.xml", "answer", 2, 200),
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

    def reserve(self, kind: Kind, n: int) -> list[str]:
        """Up to ``n`` reservations on ``kind``'s key (fewer if a ping did not reserve)."""
        reqs = []
        for _ in range(n):
            self.callers += 1
            reqs.append(PingRequest(key=f"soak-{kind.name}-key-0000000000",
                                    caller_number=f"+1303{self.callers:07d}", inbound_number=None))  # fmt: skip
        return [o.uuid for o in self.ops.ping_many(reqs) if getattr(o, "uuid", None)]  # type: ignore[union-attr]

    def minute(self, scale: float, tone_calls: int) -> tuple[Counter[str], Heard]:
        """One minute of every kind at once, and the calls with a tone. SIPp's final answers
        per kind and code (``"<kind> <code>"``; ``"<kind> placed"``: calls placed, ``"<kind>
        unreserved"``: pings that reserved nothing), and what the tone calls heard."""
        seen: Counter[str] = Counter()
        running = []
        for kind in KINDS:
            n = max(1, int(kind.rate * scale * 60))
            uuids = self.reserve(kind, n)
            seen[f"{kind.name} placed"] += len(uuids)
            seen[f"{kind.name} unreserved"] += n - len(uuids)
            if not uuids:
                continue
            csv = self.work / f"{kind.name}-{time.monotonic_ns()}.csv"
            csv.write_text("SEQUENTIAL\n" + "".join(f"{u};\n" for u in uuids))
            msg = self.work / f"{kind.name}-{time.monotonic_ns()}.msg"
            proc = subprocess.Popen(
                ["sipp", f"127.0.0.1:{self.agent_port}", "-sf", str(self.scenarios[kind.publisher]),
                 "-i", "127.0.0.1", "-p", str(free_port("127.0.0.1")), "-inf", str(csv),
                 "-m", str(len(uuids)), "-l", str(len(uuids)), "-r", str(kind.rate * scale),
                 "-d", str(kind.hold_ms),
                 "-nostdin", "-trace_msg", "-message_file", str(msg), "-mi", "127.0.0.1",
                 "-mp", str(free_port("127.0.0.1", count=4)), "-timeout", "120s", "-timeout_error",
                 "-max_recv_loops", "1000", "-key", "caller", "+12025550100", "-key", "display",
                 "soak", "-key", "rtp_port", "9"],
                cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            running.append((kind, proc, msg, csv))
        answered = next(k for k in KINDS if k.name == "answered")
        tones = ToneSample(self.work, f"127.0.0.1:{self.agent_port}",
                           self.reserve(answered, tone_calls), TONE_HOLD_MS)  # fmt: skip
        for kind, proc, msg, csv in running:
            proc.wait()
            for code, count in final_codes(msg).items():
                seen[f"{kind.name} {code}"] += count
            msg.unlink(missing_ok=True)
            csv.unlink(missing_ok=True)
        return seen, tones.finish()

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


def unused(soak: Soak) -> int:
    with soak.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM reservation WHERE status IN ('reserved', 'confirmed')")).scalar_one())  # fmt: skip


def database_checks(soak: Soak) -> list[tuple[str, bool, str]]:
    """Nothing lost: the checks the database must pass once the agent has stopped and the
    reservations no call used have expired (each within its TTL: waited for, up to TTL + 10 s)."""
    deadline = time.monotonic() + TTL + 10
    while True:
        while soak.ops.expire_due():
            pass
        if not unused(soak) or time.monotonic() > deadline:
            break
        time.sleep(1)
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
        ("every reservation terminal", not live,
         f"{sum(live.values())} of {sum(statuses.values())} not terminal {live}"),
        ("every counter equals its recount", not report.differences,
         f"{len(report.differences)} differ {list(report.differences)[:3]}"),
        ("every call record has an end", open_records == 0, f"{open_records} open"),
        ("every ended call has a record", unrecorded == 0, f"{unrecorded} without"),
    ]  # fmt: skip


def answers(verdict: Verdict, seen: Counter[str]) -> None:
    """One check per kind: every call placed got the answer its kind must get, and every
    ping reserved (or the calls would not be the kind's)."""
    for kind in KINDS:
        placed, unreserved = seen[f"{kind.name} placed"], seen[f"{kind.name} unreserved"]
        got = seen[f"{kind.name} {kind.answer}"]
        others = {
            name.split()[1]: n
            for name, n in sorted(seen.items())
            if name.startswith(f"{kind.name} ")
            and name.split()[1] not in ("placed", "unreserved", str(kind.answer))
        }
        verdict.check(
            f"{kind.name}: every call answered {kind.answer}",
            placed > 0 and got == placed and not unreserved,
            f"{got} of {placed} placed; other answers {others}, {placed - got - sum(others.values())}"
            f" without a final answer, {unreserved} pings reserved nothing",
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every kind's rate")
    parser.add_argument("--tone-calls", type=int, default=2,
                        help="answered calls a minute whose tone must come back")  # fmt: skip
    parser.add_argument("--goal-rss-spread", type=float, default=0.10, metavar="SHARE",
                        help="agent RSS spread after warm-up, at most")  # fmt: skip
    args = parser.parse_args()
    bench = "bench/soak.py"
    if shutil.which("sipp") is None:
        return refuse(bench, "sipp is missing: apt-get install sip-tester")
    warm_up = max(1, math.ceil(args.minutes / 6))
    if args.minutes - warm_up < MIN_AFTER_WARM_UP:
        return refuse(bench, f"--minutes {args.minutes} is too short to judge the agent's RSS: "
                      f"{warm_up} minute(s) of warm-up, then {MIN_AFTER_WARM_UP} samples (minutes)"
                      f" needed; run --minutes {warm_up + MIN_AFTER_WARM_UP} or more")  # fmt: skip
    if args.tone_calls < 1:
        return refuse(bench, "--tone-calls must be 1 or more: audio is part of the verdict")
    verdict = Verdict(bench)
    verdict.goals_from(parser, args)
    soak = Soak(Path(tempfile.mkdtemp(prefix="rtbridge-soak-")))
    rate = sum(k.rate for k in KINDS) * args.scale
    print(
        f"soak: {args.minutes} min of mixed calls at {rate:.0f}/s and {args.tone_calls} calls a "
        f"minute with a tone, {os.cpu_count()} CPUs, work dir {soak.work}"
    )
    rss: list[float] = []
    seen: Counter[str] = Counter()
    heard = Heard([], [], TONE_HOLD_MS / 1000)
    started = time.monotonic()
    died = False
    try:
        agent = soak.start()
        for minute in range(1, args.minutes + 1):
            cpu0, t0 = agent.cpu(), time.monotonic()
            counts, tones = soak.minute(args.scale, args.tone_calls)
            seen.update(counts)
            heard.answers.extend(tones.answers)
            heard.seconds.extend(tones.seconds)
            cpu = (agent.cpu() - cpu0) / (time.monotonic() - t0)
            if soak.agent is None or soak.agent.poll() is not None:
                print("  !! the agent died")
                died = True
                break
            rss.append(agent.rss_mb())
            calls = sum(n for name, n in seen.items() if name.endswith(" placed"))
            print(f"    minute {minute:>3}: RSS {rss[-1]:.0f} MB, agent CPU {cpu:.0%}, "
                  f"calls so far {calls}", flush=True)  # fmt: skip
    finally:
        soak.stop()
    print(f"\n    {sum(n for k, n in seen.items() if k.endswith(' placed'))} calls in "
          f"{(time.monotonic() - started) / 60:.1f} min; final answers per kind (SIPp's trace):")  # fmt: skip
    for kind in KINDS:
        codes = {
            int(code): n
            for name, n in seen.items()
            if name.startswith(f"{kind.name} ") and (code := name.split()[1]).isdigit()
        }
        print(f"      {kind.name:<10} {seen[f'{kind.name} placed']:>6} placed, answers "
              f"{dict(sorted(codes.items()))} (expected {kind.answer})")  # fmt: skip
    verdict.check("the agent alive to the end", not died,
                  "died" if died else f"alive, {len(rss)} minutes")  # fmt: skip
    answers(verdict, seen)
    judge(verdict, "answered calls with a tone", heard)
    for name, ok, found in database_checks(soak):
        verdict.check(name, ok, found)
    warm = rss[warm_up:]
    if len(warm) >= MIN_AFTER_WARM_UP:
        spread = (max(warm) - min(warm)) / min(warm)
        verdict.goal("agent RSS flat after warm-up", spread <= args.goal_rss_spread,
                     f"{min(warm):.0f}..{max(warm):.0f} MB over minutes {warm_up + 1}.."
                     f"{len(rss)}, {spread:.1%} (goal <= {args.goal_rss_spread:.0%})")  # fmt: skip
    else:
        verdict.goal("agent RSS flat after warm-up", False,
                     f"{len(warm)} samples after warm-up, {MIN_AFTER_WARM_UP} needed")  # fmt: skip
    soak.engine.dispose()
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
