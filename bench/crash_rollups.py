"""Benchmark: the business rollups and the buyer counters after a long run with crashes in it
(issue 20: "rollups equal a recount after a 10,000-ping, 500-call run with crashes in the
middle (kill -9 of ``serve``)").

``tests/storage/test_crash.py`` proves the same on a few hundred pings and a dozen calls;
this runs it at the issue's volume, where a crash is more likely to land between an event
and its figure. Two ``rtbridge serve --sip off`` processes share one database (SQLite in a
temporary directory, or ``--database-url``) with two campaigns of capped buyers (caps that
are reached, so pings are refused as well as reserved; one buyer's daily cap fills during the
run). A paced storm of pings with distinct callers hits both servers, and ``--drivers``
stand-in agents (``tests/support/call_driver.py``: claim, answer or not, end, through the
storage functions the SIP router uses) carry calls on the reservations, converted and not
(one buyer of each campaign converts at once, the other needs a second, which the driver's
calls rarely last). ``--kills`` times, at random moments of the run, every serve and
every driver is killed with SIGKILL, in random order, and started again: each restarted
driver closes the calls its dead run left open (``calls.recover``), but one with calls open,
left dead for 12 s, has them closed by a serve instead, which takes its lease over (the
API's watch over silent agents, ``sip/lease.py``; the drivers beat a heartbeat, so a live
one is never taken over: ``bench/crash_driver.py``). Straight after each kill, before
anything restarts, the rollups and counters the crash left are compared with their
recount; so again at the end, once everything stopped cleanly.

    .venv/bin/python bench/crash_rollups.py [--pings 10000] [--calls 500] [--kills 3]
                                            [--database-url URL | postgres] [--seed N]

``--database-url postgres`` runs on a throwaway PostgreSQL cluster (Debian's
``postgresql``). No goal: it checks. Checks: the rollups and counters equal their recount
after each kill and at the end; at least ``--pings`` pings written and ``--calls`` calls
answered and ended, converted and not; every kill landed while the storm ran, and the kills
left calls open; every call closed as a fault accounted for by a recovery or a takeover,
and a takeover of a driver left dead with calls open; no call left open; no HTTP error,
every ping answered written; every process stopped cleanly.
Exit 0 all passed, 1 not (the targets not reached within ``--timeout`` included), 2 nothing
judged (PostgreSQL asked for and missing, a count below 1)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.verdict import Verdict, refuse  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.recount import check_counters  # noqa: E402
from rtbridge.storage.rollup_recount import check_rollups  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402

BENCH = "bench/crash_rollups.py"
TTL = 1
# campaign -> {buyer: (seconds to convert, concurrency, daily cap, payout, revenue or None)}
CAMPAIGNS = {
    "crash-c1": {"c1-now": (0, 6, 100_000, 10.0, 12.5), "c1-late": (1, 6, 100_000, 7.5, None)},
    "crash-c2": {"c2-now": (0, 5, 100_000, 10.0, 12.5), "c2-late": (1, 5, 150, 7.5, None)},
}
PUBLISHERS = ("crash-p1", "crash-p2")
# every publisher has a key on every campaign: key -> (publisher, campaign)
KEYS = {
    f"crash-bench-key-{p}{c}-0000000000": (publisher, campaign)
    for p, publisher in enumerate(PUBLISHERS)
    for c, campaign in enumerate(CAMPAIGNS)
}
SERVERS = 2
# seconds a driver runs before it ends cleanly and is started again; 2 s more for each
# next driver, so that they do not all start again at once
SEGMENT = 15.0
LEFT_DEAD = 12.0  # seconds one driver stays dead after a kill: past a serve's takeover (6 s)
REFUSED, CUT = "refused", "cut"  # a ping to a server down; one it died answering


def config() -> str:
    """The campaigns of capped buyers, the publishers, a key for each pair."""
    out = '[sip]\ndomain = "sip.rtb.example.com"\n'
    for n, (campaign, buyers) in enumerate(CAMPAIGNS.items()):
        out += f'\n[[campaigns]]\nid = "{campaign}"\nnumbers = ["+1833951026{n}"]\n'
        for buyer, (seconds, concurrency, daily, payout, revenue) in buyers.items():
            out += (
                f'\n[[campaigns.buyers]]\nid = "{buyer}"\n'
                f'destination = "sip:{buyer}@127.0.0.1:5999"\npayout = {payout}\n'
                f"seconds = {seconds}\nconcurrency = {concurrency}\ndaily_cap = {daily}\n"
                + ("" if revenue is None else f"revenue = {revenue}\n")
            )
    for n, publisher in enumerate(PUBLISHERS):
        out += f'\n[[publishers]]\nid = "{publisher}"\nips = ["127.0.0.{n + 1}/32"]\n'
    for key, (publisher, campaign) in KEYS.items():
        out += (
            f'\n[[keys]]\nkey = "{key}"\npublisher = "{publisher}"\ncampaign = "{campaign}"\n'
            f"ttl_seconds = {TTL}\n"
        )
    return out


@dataclass
class Child:
    """A process this run starts, may SIGKILL, and starts again; its output in ``log``."""

    name: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    killed: int = 0

    def spawn(self, args: list[str], env: dict[str, str]) -> None:
        self.runs += 1
        with self.log.open("ab") as out:
            out.write(f"--- run {self.runs}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL; the process is forgotten (None: dead, to be started again)."""
        if self.proc is not None and self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.killed += 1
            self.proc = None


@dataclass
class Serve(Child):
    """``rtbridge serve --sip off`` on a new free port each start."""

    url: str = ""
    base: str = ""
    port: int = 0

    def start(self) -> None:
        self.port = free_port()  # ``base`` stays the dead one's until ready: refused
        self.spawn([sys.executable, "-m", "rtbridge", "serve", "--sip", "off",
                    "--http", f"127.0.0.1:{self.port}", "--log-level", "warning"],
                   {**os.environ, "RTBRIDGE_DB": self.url})  # fmt: skip

    def ready(self) -> None:
        wait_for_port("127.0.0.1", self.port, timeout=30)
        self.base = f"http://127.0.0.1:{self.port}"

    def takeovers(self) -> list[int]:
        """This server's takeovers of silent agents' leases (its log): the calls each
        closed."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [int(json.loads(line).get("calls_closed", 0)) for line in lines
                if "took over a silent agent" in line]  # fmt: skip

    def stop(self) -> int | None:
        """SIGTERM; the exit code, or None when it had to be killed after 15 s."""
        if self.proc is None or not self.alive():
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


@dataclass
class Driver(Child):
    """A stand-in agent (``bench/crash_driver.py``) under one agent name, run in segments of
    :data:`SEGMENT` seconds: each run first recovers what the previous one left open, then
    carries calls, beating its heartbeat, then finishes its calls and exits 0. After a kill
    it may be left dead until ``down_until`` (monotonic)."""

    url: str = ""
    segment: float = SEGMENT
    down_until: float = 0.0
    bad_exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.spawn([sys.executable, "-m", "bench.crash_driver", self.url, self.name,
                    str(self.segment)], dict(os.environ))  # fmt: skip

    def tend(self) -> None:
        """Start it again when its run ended on its own (noting an exit other than 0), or
        when it was killed and is due."""
        if self.alive() or time.monotonic() < self.down_until:
            return
        if self.proc is not None and self.proc.returncode != 0:
            self.bad_exits.append(self.proc.returncode)
        self.start()

    def finish(self) -> None:
        """Wait for the run in progress to end on its own (one left dead is started)."""
        if self.proc is None:
            self.start()
        assert self.proc is not None
        code = self.proc.wait(timeout=self.segment + 60)
        if code != 0:
            self.bad_exits.append(code)

    def recovered(self) -> int:
        """Calls closed by the recoveries of all its runs (each run's "recovered N")."""
        lines = self.log.read_text(errors="replace").splitlines()
        return sum(int(line.split()[1]) for line in lines if line.startswith("recovered "))


class Storm:
    """Pings at ``rate`` a second from a background thread, each with a new caller, spread
    over the keys and over whatever servers are up; a connection refused or cut (a server
    just killed) is counted and the next ping goes on."""

    def __init__(self, servers: list[Serve], rate: float, connections: int = 8) -> None:
        self.servers, self.rate, self.connections = servers, rate, connections
        self.answers: Counter[str] = Counter()
        self.sent = 0
        self._next = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def _slot(self) -> int:
        """The next ping's number, once its time has come (a backlog after an outage is
        not sent in a burst: at most 0.2 s of it)."""
        now = time.monotonic()
        self._next = max(self._next + 1 / self.rate, now - 0.2)
        self.sent += 1
        return self.sent

    async def _one(self, client: httpx2.AsyncClient) -> None:
        while not self._stop.is_set():
            n = self._slot()
            await asyncio.sleep(max(0.0, self._next - time.monotonic()))
            base = self.servers[n % len(self.servers)].base
            key = list(KEYS)[(n // len(self.servers)) % len(KEYS)]
            caller = f"+1{300 + n // 10_000_000}{n % 10_000_000:07d}"
            try:
                r = await client.post(f"{base}/rtbs.json",
                                      data={"key": key, "caller_number": caller})  # fmt: skip
                body = r.json()
                self.answers[str(body.get("reason") or body.get("status") or r.status_code)] += 1
            except httpx2.ConnectError:
                self.answers[REFUSED] += 1
                await asyncio.sleep(0.02)
            except httpx2.HTTPError:
                self.answers[CUT] += 1
                await asyncio.sleep(0.02)
            except ValueError:
                self.answers["not JSON"] += 1

    async def _run(self) -> None:
        self._next = time.monotonic()
        async with httpx2.AsyncClient(timeout=5) as client:
            await asyncio.gather(*(self._one(client) for _ in range(self.connections)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


_FIGURES = {
    "pings": "SELECT count(*) FROM reservation",
    "reservations": "SELECT count(*) FROM reservation WHERE status <> 'no-target'",
    "calls": "SELECT count(*) FROM callrecord",
    "answered": "SELECT count(*) FROM callrecord WHERE answer_at IS NOT NULL",
    "done": "SELECT count(*) FROM callrecord WHERE answer_at IS NOT NULL AND end_at IS NOT NULL",
    "converted": "SELECT count(*) FROM callrecord WHERE converted",
    "faults": "SELECT count(*) FROM callrecord WHERE hangup_by = 'fault'",
    "open": "SELECT count(*) FROM callrecord WHERE end_at IS NULL",
    "open reservations": "SELECT count(*) FROM reservation WHERE status IN ('claimed', 'connected')",
}
_PROGRESS = ("pings", "done", "open")


def figures(engine: Engine, names: tuple[str, ...] = tuple(_FIGURES)) -> Counter[str]:
    with engine.connect() as conn:
        return Counter({n: int(conn.execute(text(_FIGURES[n])).scalar_one()) for n in names})


def reasons(engine: Engine) -> dict[str, int]:
    """The pings that reserved nothing, by why."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT reason, count(*) FROM reservation "
                                 "WHERE status = 'no-target' GROUP BY reason ORDER BY 2 DESC"))  # fmt: skip
        return {str(r): int(n) for r, n in rows}


def open_by_agent(engine: Engine) -> dict[str, int]:
    """The calls open, by the agent that claimed them."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT agent, count(*) FROM callrecord WHERE end_at IS NULL "
                                 "GROUP BY agent"))  # fmt: skip
        return {str(a): int(n) for a, n in rows}


def day_units(engine: Engine) -> dict[str, int]:
    """Each buyer's daily counter (the units of its days, added up)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT buyer_id, sum(units) FROM buyerday GROUP BY buyer_id"))
        return {str(b): int(n) for b, n in rows}


def recounts(verdict: Verdict, engine: Engine, when: str) -> int:
    """Check the rollups and the counters against their recount; the rollup rows compared.
    Differences are printed in full: each is a bug to report."""
    rollups, counters = check_rollups(engine), check_counters(engine)
    for d in rollups.differences:
        print(f"  rollup differs ({when}): {d.key} {d.measure}: stored {d.stored:g}, "
              f"recounted {d.recounted:g}")  # fmt: skip
    for c in counters.differences:
        print(f"  counter differs ({when}): buyer {c.buyer_id} day {c.day or 'live'}: "
              f"stored {c.counter}, recounted {c.recounted}")  # fmt: skip
    verdict.check(f"{when}: the rollups equal their recount",
                  rollups.differences == () and rollups.compared > 0,
                  f"{len(rollups.differences)} figures differ, {rollups.compared} rows compared")  # fmt: skip
    verdict.check(f"{when}: the counters equal their recount", counters.differences == (),
                  f"{len(counters.differences)} of {counters.compared} differ")  # fmt: skip
    return rollups.compared


@dataclass
class Run:
    """The processes of one run, and what the kills found."""

    engine: Engine
    servers: list[Serve]
    drivers: list[Driver]
    rng: random.Random
    left_open: list[int] = field(default_factory=list)  # calls open just after each kill
    outages: list[Counter[str]] = field(default_factory=list)  # pings refused, cut, each kill

    def start(self, children: list[Serve]) -> None:
        for server in children:
            server.start()
        for server in children:
            server.ready()

    def kill_round(self, verdict: Verdict, storm: Storm, n: int) -> None:
        """SIGKILL every serve and driver in random order, a few random ms apart; check
        what the crash left; after a random outage, start them all again, but one driver,
        left dead for :data:`LEFT_DEAD` seconds."""
        for driver in self.drivers:
            driver.tend()  # a run that just ended is started again, and may die at once
        victims: list[Child] = [*self.servers, *self.drivers]
        self.rng.shuffle(victims)
        before = Counter({k: storm.answers[k] for k in (REFUSED, CUT)})
        for child in victims:
            child.kill()
            time.sleep(self.rng.uniform(0, 0.15))
        self.left_open.append(figures(self.engine, ("open",))["open"])
        # left dead, one with calls open: a serve takes its lease over and closes them
        holding = open_by_agent(self.engine)
        dead = self.rng.choice([d for d in self.drivers if d.name in holding] or self.drivers)
        recounts(verdict, self.engine, f"after kill {n}, before the restart")
        time.sleep(self.rng.uniform(0.2, 1.0))
        self.outages.append(Counter({k: storm.answers[k] for k in (REFUSED, CUT)}) - before)
        print(f"  kill {n}: {', '.join(c.name for c in victims)}; "
              f"{self.left_open[-1]} calls left open; pings {dict(self.outages[-1])}; "
              f"{dead.name} left dead {LEFT_DEAD:g} s")  # fmt: skip
        self.start(self.servers)
        dead.down_until = time.monotonic() + LEFT_DEAD
        for driver in self.drivers:
            driver.tend()


def kill_points(rng: random.Random, kills: int) -> list[float]:
    """Where in the run (its progress, 0 to 1) each kill falls: at random, each within its
    own share of the middle (10% to 90%), so that they are spread over the run."""
    width = 0.8 / kills
    return [0.1 + width * (i + rng.uniform(0.1, 0.9)) for i in range(kills)]


def drive(run: Run, storm: Storm, verdict: Verdict, args: argparse.Namespace,
          base: Counter[str]) -> bool:  # fmt: skip
    """Run until both targets are reached and every kill done; False on ``--timeout``."""
    points = kill_points(run.rng, args.kills)
    started = up_since = time.monotonic()
    kills = 0
    last_print = started
    while time.monotonic() - started < args.timeout:
        now = figures(run.engine, _PROGRESS) - base
        progress = min(now["pings"] / args.pings, now["done"] / args.calls)
        if time.monotonic() - last_print >= 10:
            last_print = time.monotonic()
            print(f"  {time.monotonic() - started:5.0f} s: {now['pings']} pings, "
                  f"{now['done']} answered calls ended, {now['open']} open")  # fmt: skip
        due = kills < len(points) and progress >= points[kills]
        if due and time.monotonic() - up_since > LEFT_DEAD + 2:  # the last one's takeover done
            time.sleep(run.rng.uniform(0, 1.0))
            kills += 1
            run.kill_round(verdict, storm, kills)
            up_since = time.monotonic()
        elif kills == len(points) and progress >= 1:
            return True
        for driver in run.drivers:
            driver.tend()
        time.sleep(0.2)
    return False


@contextmanager
def database(url: str | None, work: Path) -> Iterator[str]:
    """The database URL: SQLite in ``work`` by default; ``postgres``: a throwaway cluster."""
    if url is not None and url.startswith("postgres"):  # every process needs the site key
        os.environ.setdefault("RTBRIDGE_SITE_KEY", "bench-site-key-0123456789abcdefghijkl")
    if url == "postgres":
        with postgres.cluster() as pg_url:
            yield pg_url
    else:
        yield url or f"sqlite:///{work / 'crash.db'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--pings", type=int, default=10_000, help="pings written, at least")
    parser.add_argument("--calls", type=int, default=500,
                        help="calls answered and ended, at least")  # fmt: skip
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL rounds")
    parser.add_argument("--database-url", default=None,
                        help="a postgresql:// URL, or 'postgres' for a throwaway cluster "
                             "(default: SQLite in a temporary directory)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=150.0, help="pings a second")
    parser.add_argument("--drivers", type=int, default=3, help="stand-in agents")
    parser.add_argument("--seed", type=int, default=None, help="of the kills' moments")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds the targets may take")  # fmt: skip
    args = parser.parse_args()
    if args.database_url == "postgres" and postgres.find_bin() is None:
        return refuse(BENCH, "PostgreSQL is not installed: run scripts/system-deps")
    if min(args.pings, args.calls, args.kills) < 1:
        return refuse(BENCH, "--pings, --calls and --kills must be 1 or more")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    work = Path(tempfile.mkdtemp(prefix="rtbridge-crash-"))
    with database(args.database_url, work) as url:
        return bench(args, url, work, seed)


def bench(args: argparse.Namespace, url: str, work: Path, seed: int) -> int:
    verdict = Verdict(BENCH)
    print(f"database {url.split('@')[-1]}, logs in {work}, seed {seed}")
    engine = open_database(url)
    (work / "site.toml").write_text(config())
    apply_file(engine, work / "site.toml")
    base = figures(engine)
    servers = [
        Serve(f"serve-{i + 1}", work / f"serve-{i + 1}.log", url=url) for i in range(SERVERS)
    ]
    drivers = [Driver(f"driver-{i + 1}", work / f"driver-{i + 1}.log", url=url,
                      segment=SEGMENT + 2 * i) for i in range(args.drivers)]  # fmt: skip
    run = Run(engine, servers, drivers, random.Random(seed))
    started = time.monotonic()
    storm = Storm(servers, args.rate)
    try:
        run.start(servers)
        storm.start()
        for driver in drivers:
            driver.start()
        reached = drive(run, storm, verdict, args, base)
        for driver in drivers:  # their runs in progress end their calls and exit
            driver.finish()
    finally:
        storm.stop()
        codes = [server.stop() for server in servers]
        for child in drivers:
            child.kill()
    wall = time.monotonic() - started
    return judge(verdict, run, storm, args, base, codes, reached, wall)


def judge(verdict: Verdict, run: Run, storm: Storm, args: argparse.Namespace,
          base: Counter[str], codes: list[int | None], reached: bool, wall: float) -> int:  # fmt: skip
    engine = run.engine
    got = figures(engine) - base
    compared = recounts(verdict, engine, "at the end")
    recovered = sum(d.recovered() for d in run.drivers)
    takeovers = [n for server in run.servers for n in server.takeovers()]
    taken_over = sum(takeovers)
    answers = dict(storm.answers.most_common())
    print(f"\npings {got['pings']} written ({sum(answers.values())} sent: {answers})")
    print(f"  no target: {reasons(engine)}")
    print(f"  buyers' units today: {day_units(engine)}")
    print(f"reservations {got['reservations']}; calls {got['calls']}, answered "
          f"{got['answered']}, converted {got['converted']}, closed as a fault {got['faults']}")  # fmt: skip
    print(f"kills {len(run.left_open)}: calls left open by each {run.left_open}; calls closed "
          f"as a fault by the drivers' recoveries {recovered}, by the serves' "
          f"{len(takeovers)} takeovers {taken_over}")  # fmt: skip
    print(f"rollup rows compared {compared}; wall time {wall:.0f} s")
    verdict.check(f"at least {args.pings} pings written", got["pings"] >= args.pings,
                  f"{got['pings']}")  # fmt: skip
    verdict.check(f"at least {args.calls} calls answered and ended", got["done"] >= args.calls,
                  f"{got['done']} (of {got['calls']} calls){'' if reached else ', timed out'}")  # fmt: skip
    unexpected = {k: n for k, n in answers.items() if k.isdigit() or k == "not JSON"}
    verdict.check("no HTTP error (every ping answered with a status)", not unexpected,
                  f"{unexpected or 'none'}")  # fmt: skip
    ok = sum(answers.values()) - answers.get(REFUSED, 0) - answers.get(CUT, 0)
    verdict.check("every ping answered wrote its row (a ping cut may have, or not)",
                  ok <= got["pings"] <= ok + answers.get(CUT, 0),
                  f"{got['pings']} rows, {ok} answered, {answers.get(CUT, 0)} cut")  # fmt: skip
    verdict.check("calls converted and not", 0 < got["converted"] < got["answered"],
                  f"{got['converted']} of {got['answered']} answered converted")  # fmt: skip
    verdict.check("pings reserved and refused", 0 < got["reservations"] < got["pings"],
                  f"{got['reservations']} of {got['pings']} reserved")  # fmt: skip
    outages = [dict(o) for o in run.outages]
    verdict.check(f"{args.kills} kills, each while the storm ran (pings refused or cut)",
                  len(run.outages) == args.kills and all(sum(o.values()) for o in run.outages),
                  f"{len(run.outages)} kills; pings refused or cut by each {outages}")  # fmt: skip
    verdict.check("the kills left calls open", sum(run.left_open) > 0,
                  f"{sum(run.left_open)} ({run.left_open})")  # fmt: skip
    verdict.check("every call closed as a fault was closed by a recovery or a takeover",
                  got["faults"] == recovered + taken_over,
                  f"{got['faults']} faults; {recovered} by the drivers' recoveries, "
                  f"{taken_over} by the serves' takeovers")  # fmt: skip
    verdict.check("a serve took a driver left dead over, with calls open", taken_over > 0,
                  f"{len(takeovers)} takeovers, calls each closed {takeovers}")  # fmt: skip
    verdict.check("no call left open at the end", got["open"] == 0 and got["open reservations"] == 0,
                  f"{got['open']} call records, {got['open reservations']} reservations")  # fmt: skip
    clean = (0, -signal.SIGTERM)  # uvicorn raises the signal again once it has shut down
    verdict.check("every serve stopped on SIGTERM within 15 s", all(c in clean for c in codes),
                  f"exit codes {codes}")  # fmt: skip
    bad = {d.name: d.bad_exits for d in run.drivers if d.bad_exits}
    verdict.check("every driver run not killed exited 0", not bad, f"{bad or 'all 0'}")
    engine.dispose()
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
