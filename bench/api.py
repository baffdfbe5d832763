"""Benchmark: ``POST /rtbs.json`` on rtbridge against a bare Starlette endpoint returning the
same JSON, in one run, loaded by ``wrk`` (one uvicorn worker each, uvloop, httptools).

The configuration is what users run: one key, a campaign with a 4-number DID pool and two
buyers, every request a new caller number (so no ping is a shield hit). Each group loads
its servers in alternating trials, so drift of the machine hits them alike, and every ratio
is between figures of the same group: ``main`` and ``postgres`` load the bare endpoint among
their servers, ``sizes`` compares its three table sizes with one another.

- ``main`` (SQLite): buyers with concurrency and daily caps out of reach (every ping
  reserves: "capped"), the same file without caps ("uncapped"), buyers whose concurrency
  cap of 1 is reached by the first pings ("at cap": every later ping is refused, no-target
  ``concurrency-cap-reached`` — the refuse-at-cap path), and the bare endpoint.
- ``postgres``: the capped configuration on a throwaway PostgreSQL cluster, the same on
  SQLite, and the bare endpoint; then ``serve --workers 2`` against one worker, on
  PostgreSQL (each on a database of its own in the cluster) and on SQLite.
- ``sizes``: the capped configuration on SQLite with 10^2, 10^4 and 10^6 reservations
  already in the table (1% live, the rest history over 30 days), written by bulk SQL.
- ``duplicates``: the capped configuration on SQLite with a duplicate-caller rule on both
  buyers and 10^6 callers already seen (issue 23), against the same without the rule.
- ``lists``: the capped configuration on SQLite with a global block list of 10^6 entries
  (numbers and prefixes, none of wrk's callers) against the same without lists (issue 23).
- ``rollups``: the capped configuration on SQLite, this tree against the code of
  ``--rollups-baseline`` (the last revision without the business rollups of issue 20, its
  ``src`` unpacked by ``git archive``), each on a database made by its own code.

    .venv/bin/python bench/api.py [--seconds 6] [--connections 16] [--trials 3]
                                  [--groups main,postgres,sizes,rollups] [--goal-... N]

Goals (issues 8 and 22, at 16 connections): capped >= 0.9x uncapped; capped >= 0.5x bare
with p99 <= 10 ms; the same rate within 10% across table sizes. The at-cap server is held
to the capped bar (>= 0.5x bare, p99 <= 10 ms). PostgreSQL >= 0.8x SQLite with p99 <= 10
ms; 2 workers on PostgreSQL >= 1.7x one, judged on 4 cores or more only (on fewer, the
workers, PostgreSQL and wrk share them: the figure is printed and noted). Issue 20: with
rollups >= 0.95x without, and the rollups equal their recount afterwards. Issue 23: with a
duplicate-caller rule and 10^6 callers seen >= 0.95x without the rule (``duplicates``, not
in the default groups); with a 10^6-entry block list >= 0.95x without (``lists``, not in the
default groups either).

Checks of the workload: no wrk error or non-2xx answer on any server; every request
counted by wrk wrote its row (reserved, or no-target at cap, nothing else); the buyer
counters equal their recount. Exit 0 all met, 1 a goal or check failed (the verdict
block says which), 2 not judged (``wrk`` missing). Needs ``wrk`` (Debian package ``wrk``)
and, for ``postgres``, Debian's ``postgresql``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.verdict import NOT_JUDGED, Verdict, refuse  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.recount import check_counters  # noqa: E402
from rtbridge.storage.rollup_recount import check_rollups  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.keys import key_id  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402

KEY = "bench-key-0000000000000000"
POOL = ("+18339510260", "+18334583385", "+18334583386", "+18334583387")
# Caps the load cannot reach in a run: every ping still reserves, so capped and uncapped
# runs do the same work apart from what the caps themselves cost.
CAPS = "concurrency = 1000000\ndaily_cap = 10000000"
# Caps the first pings reach: each buyer holds one reservation (for the key's 60 s TTL), so
# every later ping is refused at the cap (no-target, concurrency-cap-reached).
AT_CAP = "concurrency = 1\ndaily_cap = 10000000"


def config(caps: str) -> str:
    numbers = ", ".join(f'"{n}"' for n in POOL)
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "bench"
numbers = [{numbers}]

[[campaigns.buyers]]
id = "buyer-a"
destination = "sip:queue@127.0.0.1:5070"
payout = 90.0
seconds = 120
priority = 1
weight = 3
{caps}

[[campaigns.buyers]]
id = "buyer-b"
destination = "sip:queue@127.0.0.1:5071"
payout = 80.0
seconds = 120
priority = 1
weight = 1
{caps}

[[publishers]]
id = "pub"

[[keys]]
key = "{KEY}"
publisher = "pub"
campaign = "bench"
"""


# Each wrk thread numbers its own callers: +1 <200+run> <7-digit counter>, all distinct, so
# the ping shield never short-cuts a request.
LUA = """
local threads = 0
function setup(thread) thread:set("tid", RUN + threads); threads = threads + 1 end
local n = 0
function request()
  n = n + 1
  local body = string.format("key=%s&caller_number=%%2B1%d%07d&caller_state=CA", "KEY", 200 + tid, n)
  return wrk.format("POST", "/rtbs.json", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
""".replace("KEY", KEY)


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


class Wrk:
    def __init__(self, work: Path, connections: int, threads: int) -> None:
        self.script = work / "ping.lua"
        self.connections, self.threads = connections, threads
        self.runs = 0

    def run(self, name: str, url: str, seconds: int) -> Result:
        """One wrk run; each run numbers its callers from a new area code."""
        self.runs += 1
        self.script.write_text(LUA.replace("RUN", str(self.runs * self.threads)))
        out = subprocess.run(
            ["wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds}s", "--latency",
             "-s", str(self.script), url],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        socket_errors = re.search(r"Socket errors: (.*)", out)
        if socket_errors:
            errors += sum(int(x) for x in re.findall(r"\d+", socket_errors.group(1)))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        return Result(name, rps, _ms(latency["50"]), _ms(latency["99"]), requests, errors)


UVICORN = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    # the bare endpoint takes --port N, rtbridge --http HOST:PORT
    argv = [*argv, str(port) if argv[-1] == "--port" else f"127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            wait_for_port("127.0.0.1", port)
        except TimeoutError:  # say why: a server that died told its stderr
            proc.kill()
            told = proc.communicate()[1].decode(errors="replace")[-1500:]
            raise TimeoutError(f"{' '.join(argv[-6:])} did not listen:\n{told}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def rtbridge_server(db_url: str, workers: int = 1) -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "rtbridge", "serve", "--sip", "off", "--log-level", "warning",
            "--workers", str(workers), "--http"]  # fmt: skip
    return argv, {**os.environ, "RTBRIDGE_DB": db_url}


def bare_server() -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "uvicorn", "baseline_app:app", *UVICORN, "--port"]
    return argv, {**os.environ, "PYTHONPATH": str(ROOT / "bench")}


def tree_at(rev: str, work: Path) -> Path:
    """The project's ``src`` as it was at git revision ``rev``, unpacked under ``work``: a
    server of that revision is the baseline of a change (``rollups`` group)."""
    tree = work / f"tree-{rev}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree / "src"


def database_at(src: Path, url: str, caps: str, work: Path) -> Engine:
    """Like :func:`database`, by the code in ``src`` (its schema, not this tree's)."""
    path = work / f"bench-{abs(hash((url, caps, str(src))))}.toml"
    path.write_text(config(caps))
    subprocess.run([sys.executable, "-m", "rtbridge", "apply", "--db", url, str(path)],
                   env={**os.environ, "PYTHONPATH": str(src)}, check=True, capture_output=True)  # fmt: skip
    return create_engine(url)


def another_database(url: str, name: str = "rtbridge_second") -> str:
    """Another, empty database ``name`` in the cluster of ``url``: its URL."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def database(url: str, caps: str, work: Path) -> Engine:
    engine = open_database(url)
    path = work / f"bench-{abs(hash((url, caps)))}.toml"
    path.write_text(config(caps))
    apply_file(engine, path)
    return engine


def prefill(engine: Engine, count: int) -> float:
    """``count`` reservations of the bench key, written by one bulk statement per table: 1%
    live (reserved for an hour, claimed, connected), the rest history spread over 30 days
    (expired, completed, failed, cancelled, no-target). Counters repaired to match. History is
    not webhook news: its rows are written already dispatched (``webhook_pending`` false)."""
    started = time.monotonic()
    uuid = (
        "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || "
        "substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2) || '-' || "
        "hex(randomblob(6)))"
    )
    status = (
        "CASE WHEN i % 100 = 0 THEN (CASE i % 300 WHEN 0 THEN 'reserved' WHEN 100 THEN "
        "'claimed' ELSE 'connected' END) ELSE (CASE i % 20 WHEN 0 THEN 'no-target' WHEN 1 THEN "
        "'cancelled' WHEN 2 THEN 'failed' WHEN 3 THEN 'completed' WHEN 4 THEN 'completed' "
        "WHEN 5 THEN 'completed' WHEN 6 THEN 'completed' ELSE 'expired' END) END"
    )
    created = (
        "strftime('%Y-%m-%d %H:%M:%f000', 'now', CASE WHEN i % 100 = 0 THEN '-10 seconds' "
        "ELSE '-' || (i % 2592000) || ' seconds' END)"
    )
    reservations = f"""
            INSERT INTO reservation (uuid, key_id, publisher_id, campaign_id, buyer_id, status,
                reason, caller_number, inbound_number, tags, payout, seconds, created_at,
                expires_at, updated_at, webhook_pending)
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count),
            rows AS (SELECT i, {uuid} AS uuid, {status} AS status, {created} AS created FROM n)
            SELECT uuid, :key_id, 'pub', 'bench',
                CASE WHEN status = 'no-target' THEN NULL WHEN (i / 100) % 4 = 0 THEN 'buyer-b'
                     ELSE 'buyer-a' END,
                status, CASE WHEN status = 'no-target' THEN 'concurrency-cap-reached' END,
                '+1900' || printf('%07d', i),
                CASE WHEN status = 'no-target' THEN NULL ELSE '{POOL[0]}' END,
                '{{"caller_state":"CA"}}', 90.0, 120, created,
                CASE WHEN status = 'no-target' THEN NULL WHEN status = 'reserved'
                     THEN strftime('%Y-%m-%d %H:%M:%f000', 'now', '+1 hour')
                     ELSE strftime('%Y-%m-%d %H:%M:%f000', created, '+60 seconds') END,
                created, false
            FROM rows"""  # noqa: S608  (module constants only; values are bound)
    with engine.begin() as conn:
        conn.execute(text(reservations), {"count": count, "key_id": key_id(engine, KEY)})
        conn.execute(text("""
            INSERT INTO reservationevent (reservation_uuid, status, at, detail, webhook_pending)
            SELECT uuid, status, updated_at, 'prefill', false FROM reservation"""))  # fmt: skip
    check_counters(engine, repair=True)
    return time.monotonic() - started


def prefill_seen(engine: Engine, count: int) -> float:
    """``count`` callers seen by the bench's buyers within the window, connected 1 s to 30
    days ago (what a busy month leaves; storage/callers.py), none of them wrk's."""
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO callerseen (caller_number, buyer_id, pinged_at, connected_at)
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
            SELECT '+1999' || printf('%07d', i), CASE WHEN i % 4 = 0 THEN 'buyer-b' ELSE 'buyer-a' END,
                strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || (i % 2592000) || ' seconds'),
                strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || (i % 2592000) || ' seconds')
            FROM n"""), {"count": count})  # fmt: skip
    return time.monotonic() - started


def prefill_block_list(engine: Engine, count: int) -> float:
    """A global block list of ``count`` entries: 9 in 10 numbers (+1999...), 1 in 10
    prefixes (+1997...*), none of them matching wrk's callers (+12..)."""
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO callerlist (id, kind, managed_by) "
                          "VALUES ('bench-block', 'block', 'admin')"))  # fmt: skip
        conn.execute(text("""
            INSERT INTO callerlistentry (list_id, value, source, created_at)
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
            SELECT 'bench-block', CASE WHEN i % 10 = 0 THEN '+1997' || printf('%06d', i / 10) || '*'
                ELSE '+1999' || printf('%07d', i) END, 'admin', strftime('%Y-%m-%d %H:%M:%f000', 'now')
            FROM n"""), {"count": count})  # fmt: skip
    return time.monotonic() - started


def warm_up(wrk: Wrk, urls: dict[str, str]) -> None:
    for name, url in urls.items():
        wrk.run(f"{name} warm-up", url, 2)


def measure(wrk: Wrk, urls: dict[str, str], seconds: int, trials: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {name: [] for name in urls}
    names = list(urls)
    for trial in range(trials):
        # Each round starts with another server: the load a run leaves behind (expiries
        # after the 60 s TTL, the WAL) must not always fall on the same one.
        for name in names[trial % len(names) :] + names[: trial % len(names)]:
            results[name].append(wrk.run(name, urls[name], seconds))
    return results


def median_rps(results: list[Result]) -> float:
    return statistics.median(r.rps for r in results)


def median_p99(results: list[Result]) -> float:
    return statistics.median(r.p99_ms for r in results)


def show(title: str, results: dict[str, list[Result]]) -> None:
    print(f"\n{title}")
    print(f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
    for runs in results.values():
        for r in runs:
            print(f"{r.name:<22}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.errors:>9}")


@dataclass
class Site:
    """One rtbridge server's database, and what its pings must write: a reservation each, or
    (``refuses``) a no-target ``concurrency-cap-reached`` each."""

    name: str
    engine: Engine
    refuses: bool = False
    workers: int = 1  # rtbridge serve --workers
    src: Path | None = None  # the code it runs, when not this tree's (a baseline revision)
    before: tuple[int, int, int] = (0, 0, 0)
    started: float = 0.0

    def rows(self) -> tuple[int, int, int]:
        """Reservations, no-targets, no-targets for another reason than the cap."""
        with self.engine.connect() as conn:
            reserved, refused, other = conn.execute(text("""
                SELECT count(buyer_id), count(*) - count(buyer_id),
                       sum(CASE WHEN buyer_id IS NULL AND coalesce(reason, '')
                                <> 'concurrency-cap-reached' THEN 1 ELSE 0 END)
                FROM reservation""")).one()  # fmt: skip
        return int(reserved), int(refused), int(other or 0)

    def start(self) -> None:
        self.before = self.rows()
        self.started = time.monotonic()

    def judge(self, verdict: Verdict, group: str, results: list[Result], connections: int) -> None:
        """Every request wrk counted wrote its row, of the kind it should; no error; the
        counters equal their recount. A server may finish up to one request per connection
        and run that wrk stopped waiting for (the warm-up's too: its last requests may land
        after :meth:`start` counted), so rows may exceed wrk's count by that much."""
        now = self.rows()
        reserved, refused, other = (a - b for a, b in zip(now, self.before, strict=True))
        requests = sum(r.requests for r in results)
        errors = sum(r.errors for r in results)
        name = f"{group}: {self.name}"
        verdict.check(f"{name}: no wrk error, every answer 2xx", errors == 0,
                      f"{errors} errors in {requests} requests")  # fmt: skip
        slack = connections * (len(results) + 1)  # + 1: the warm-up
        written = reserved + refused
        unexpected = reserved if self.refuses else refused
        kind = "no-target at the cap" if self.refuses else "reserved"
        # at cap, a buyer's one unit comes free when its reservation expires (60 s TTL)
        allowed = 2 * (1 + int(time.monotonic() - self.started) // 60) if self.refuses else 0
        verdict.check(
            f"{name}: every ping {kind}",
            requests <= written <= requests + slack and unexpected <= allowed and not other,
            f"wrk counted {requests} answers, {written} rows written: {reserved} reserved, "
            f"{refused} no-target ({other} for another reason than the cap)",
        )
        report = check_counters(self.engine)
        verdict.check(f"{name}: buyer counters equal their recount", report.ok,
                      f"{len(report.differences)} differ")  # fmt: skip


def ratio_goal(verdict: Verdict, name: str, value: float, goal: float) -> None:
    print(f"{name:<34}= {value:.2f}  (goal >= {goal:.2f})")
    verdict.goal(name, value >= goal, f"{value:.2f} (goal >= {goal:.2f})")


def p99_goal(verdict: Verdict, name: str, results: list[Result], goal: float) -> None:
    value = median_p99(results)
    print(f"{name:<34}= {value:.2f} ms  (goal <= {goal:g} ms)")
    verdict.goal(name, value <= goal, f"{value:.2f} ms (goal <= {goal:g} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--trials", type=int, default=3, help="alternating runs of each server")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--groups", default="main,postgres,sizes,rollups")
    parser.add_argument("--duplicate-after", default="connected",
                        choices=["ping", "connected", "converted"],
                        help="the duplicates group's rule (ping: every ping writes its mark)")  # fmt: skip
    parser.add_argument("--rollups-baseline", default="6ec0b35", metavar="REV",
                        help="the git revision without rollups the rollups group compares with")  # fmt: skip
    goals = parser.add_argument_group("goals (issues 8 and 22)")
    goals.add_argument("--goal-vs-uncapped", type=float, default=0.9, metavar="RATIO",
                       help="capped / uncapped req/s, at least")  # fmt: skip
    goals.add_argument("--goal-vs-bare", type=float, default=0.5, metavar="RATIO",
                       help="capped / bare and at cap / bare req/s, at least")  # fmt: skip
    goals.add_argument("--goal-p99-ms", type=float, default=10.0, metavar="MS",
                       help="p99 of capped and at cap (median of trials), at most")  # fmt: skip
    goals.add_argument("--goal-pg-vs-sqlite", type=float, default=0.8, metavar="RATIO",
                       help="PostgreSQL / SQLite req/s (capped, one worker each), at least")  # fmt: skip
    goals.add_argument("--goal-workers", type=float, default=1.7, metavar="RATIO",
                       help="PostgreSQL with 2 workers / 1 worker req/s, at least (judged on "
                       ">= 4 cores)")  # fmt: skip
    goals.add_argument("--goal-rollups", type=float, default=0.95, metavar="RATIO",
                       help="with rollups / without (issue 20) req/s, at least")  # fmt: skip
    goals.add_argument(
        "--goal-lists",
        type=float,
        default=0.95,
        metavar="RATIO",
        help="lists: with a 10^6-entry block list / without",
    )
    goals.add_argument("--goal-duplicates", type=float, default=0.95, metavar="RATIO",
                       help="buyers with a duplicate-caller rule and 10^6 callers seen / no "
                       "rule (issue 23) req/s, at least")  # fmt: skip
    goals.add_argument("--goal-size-spread", type=float, default=0.10, metavar="SHARE",
                       help="spread of req/s across table sizes, at most")  # fmt: skip
    args = parser.parse_args()
    groups = set(args.groups.split(","))
    if shutil.which("wrk") is None:
        return refuse("bench/api.py", "wrk is missing: apt-get install wrk")
    verdict = Verdict("bench/api.py")
    verdict.goals_from(parser, args)
    work = Path(tempfile.mkdtemp(prefix="rtbridge-bench-"))
    wrk = Wrk(work, args.connections, args.wrk_threads)
    print(
        f"POST /rtbs.json, {args.connections} connections, {args.seconds} s x {args.trials} "
        f"alternating trials, wrk -t{args.wrk_threads} on the same machine ({os.cpu_count()} cores)"
    )
    bare_name = "bare Starlette"

    def run_group(group: str, title: str, sites: list[Site], trials: int,
                  *, bare: bool = True) -> dict[str, list[Result]]:  # fmt: skip
        """Every site (and the bare endpoint), warmed up, then in alternating trials. The
        group's servers stop when it ends: an idle server left running would go on expiring
        its reservations (60 s TTL) through the next groups' trials."""
        with contextlib.ExitStack() as servers:
            urls = {bare_name: base} if bare else {}
            for site in sites:
                url = site.engine.url.render_as_string(hide_password=False)
                argv, env = rtbridge_server(url, site.workers)
                if site.src is not None:
                    env["PYTHONPATH"] = str(site.src)
                urls[site.name] = servers.enter_context(server(argv, env))
            warm_up(wrk, urls)
            for site in sites:
                site.start()
            results = measure(wrk, urls, args.seconds, trials)
        show(title, results)
        if bare:
            errors = sum(r.errors for r in results[bare_name])
            verdict.check(f"{group}: bare: no wrk error", errors == 0, f"{errors} errors")
        for site in sites:
            site.judge(verdict, group, results[site.name], args.connections)
        return results

    with contextlib.ExitStack() as stack:
        base = stack.enter_context(server(*bare_server()))

        if "main" in groups:
            capped = Site("capped", database(f"sqlite:///{work / 'capped.db'}", CAPS, work))
            uncapped = Site("uncapped", database(f"sqlite:///{work / 'uncapped.db'}", "", work))
            at_cap = Site("at cap", database(f"sqlite:///{work / 'at-cap.db'}", AT_CAP, work),
                          refuses=True)  # fmt: skip
            results = run_group("main", "SQLite: capped, uncapped, at cap, bare",
                                [capped, uncapped, at_cap], args.trials)  # fmt: skip
            bare = results[bare_name]
            c, u, full = results["capped"], results["uncapped"], results["at cap"]
            ratio_goal(verdict, "main: capped / uncapped", median_rps(c) / median_rps(u),
                       args.goal_vs_uncapped)  # fmt: skip
            ratio_goal(
                verdict, "main: capped / bare", median_rps(c) / median_rps(bare), args.goal_vs_bare
            )
            p99_goal(verdict, "main: capped p99", c, args.goal_p99_ms)
            ratio_goal(verdict, "main: at cap / bare", median_rps(full) / median_rps(bare),
                       args.goal_vs_bare)  # fmt: skip
            p99_goal(verdict, "main: at cap p99", full, args.goal_p99_ms)
            print(f"{'uncapped / bare':<34}= {median_rps(u) / median_rps(bare):.2f}")
            print(f"{'at cap / capped':<34}= {median_rps(full) / median_rps(c):.2f}")

        if "postgres" in groups:
            url = stack.enter_context(postgres.cluster())
            # PostgreSQL has no key file: the site key comes from the environment (docs/operations.md)
            os.environ.setdefault("RTBRIDGE_SITE_KEY", "bench-site-key-0123456789abcdefghijkl")
            lite = Site("capped (SQLite)", database(f"sqlite:///{work / 'pg-lite.db'}", CAPS, work))
            pg = Site("capped (PG)", database(url, CAPS, work))
            results = run_group("postgres", "PostgreSQL: capped; SQLite: capped; bare",
                                [lite, pg], args.trials)  # fmt: skip
            pgr, lr, bare = results["capped (PG)"], results["capped (SQLite)"], results[bare_name]
            ratio_goal(verdict, "postgres: PG / SQLite", median_rps(pgr) / median_rps(lr),
                       args.goal_pg_vs_sqlite)  # fmt: skip
            p99_goal(verdict, "postgres: PG p99", pgr, args.goal_p99_ms)
            print(f"{'PG / bare':<34}= {median_rps(pgr) / median_rps(bare):.2f}")
            # 2 workers against 1, alternating in one group, each on a database of its own
            # in the same cluster (a site's checks count its own rows).
            pg2 = Site("capped (PG) x2", database(another_database(url), CAPS, work), workers=2)
            lite2 = Site("capped (SQLite) x2",
                         database(f"sqlite:///{work / 'pg-lite2.db'}", CAPS, work), workers=2)  # fmt: skip
            results = run_group("workers", "2 workers and 1: PostgreSQL, SQLite",
                                [pg2, pg, lite2, lite], args.trials, bare=False)  # fmt: skip
            gain = median_rps(results[pg2.name]) / median_rps(results[pg.name])
            lite_gain = median_rps(results[lite2.name]) / median_rps(results[lite.name])
            cores = os.cpu_count() or 1
            print(f"{'PG 2 workers / 1 worker':<34}= {gain:.2f}  (goal >= {args.goal_workers:.2f} "
                  f"on >= 4 cores; {cores} here)")  # fmt: skip
            print(f"{'SQLite 2 workers / 1 worker':<34}= {lite_gain:.2f}  (no goal)")
            if cores >= 4:
                verdict.goal("workers: PG 2 workers / 1 worker", gain >= args.goal_workers,
                             f"{gain:.2f} (goal >= {args.goal_workers:.2f})")  # fmt: skip
            else:
                verdict.note(
                    f"PG 2 workers / 1 worker = {gain:.2f}, not judged: here {cores} cores run "
                    "the workers, PostgreSQL and wrk (the goal needs >= 4)"
                )
            pg2.engine.dispose()
            pg.engine.dispose()

        if "sizes" in groups:
            sites = []
            for exponent in (2, 4, 6):
                engine = database(f"sqlite:///{work / f'size{exponent}.db'}", CAPS, work)
                took = prefill(engine, 10**exponent)
                print(f"pre-filled 10^{exponent} reservations in {took:.1f} s")
                sites.append(Site(f"10^{exponent} rows", engine))
            results = run_group("sizes", "SQLite, capped, by rows already in the table", sites,
                                args.trials, bare=False)  # fmt: skip
            rates = [median_rps(results[site.name]) for site in sites]
            spread = max(rates) / min(rates) - 1
            print(f"spread of req/s across table sizes = {spread:.1%}  "
                  f"(goal <= {args.goal_size_spread:.0%})")  # fmt: skip
            verdict.goal("sizes: spread of req/s across 10^2, 10^4, 10^6 rows",
                         spread <= args.goal_size_spread,
                         f"{spread:.1%} (goal <= {args.goal_size_spread:.0%})")  # fmt: skip
        if "duplicates" in groups:
            rule = f'duplicate_window = 2592000\nduplicate_after = "{args.duplicate_after}"'
            ruled = Site("duplicate rule, 10^6 seen",
                         database(f"sqlite:///{work / 'dup.db'}", f"{CAPS}\n{rule}", work))  # fmt: skip
            took = prefill_seen(ruled.engine, 10**6)
            print(f"pre-filled 10^6 callers seen in {took:.1f} s")
            plain = Site(
                "no duplicate rule", database(f"sqlite:///{work / 'nodup.db'}", CAPS, work)
            )
            results = run_group("duplicates", "SQLite, capped: duplicate rule with 10^6 callers "
                                "seen, and none", [ruled, plain], args.trials, bare=False)  # fmt: skip
            ratio_goal(verdict, "duplicates: with the rule / without",
                       median_rps(results[ruled.name]) / median_rps(results[plain.name]),
                       args.goal_duplicates)  # fmt: skip
        if "lists" in groups:
            listed = Site(
                "block list of 10^6", database(f"sqlite:///{work / 'lists.db'}", CAPS, work)
            )
            took = prefill_block_list(listed.engine, 10**6)
            print(f"pre-filled a block list of 10^6 entries in {took:.1f} s")
            plain = Site("no lists", database(f"sqlite:///{work / 'nolists.db'}", CAPS, work))
            results = run_group("lists", "SQLite, capped: a 10^6-entry block list, and none",
                                [listed, plain], args.trials, bare=False)  # fmt: skip
            ratio_goal(verdict, "lists: with a 10^6-entry block list / without",
                       median_rps(results[listed.name]) / median_rps(results[plain.name]),
                       args.goal_lists)  # fmt: skip
        if "rollups" in groups:
            pg_here = postgres.find_bin() is not None
            if pg_here:  # before any database of the group: every process has the same key
                os.environ.setdefault("RTBRIDGE_SITE_KEY", "bench-site-key-0123456789abcdefghijkl")
            src = tree_at(args.rollups_baseline, work)
            now = Site("with rollups", database(f"sqlite:///{work / 'rollups.db'}", CAPS, work))
            before = Site(f"without ({args.rollups_baseline})",
                          database_at(src, f"sqlite:///{work / 'no-rollups.db'}", CAPS, work),
                          src=src)  # fmt: skip
            sites = [now, before]
            if pg_here:  # the same on PostgreSQL, each on its own database
                url = stack.enter_context(postgres.cluster())
                sites += [
                    Site("with rollups (PG)", database(another_database(url, "r_with"), CAPS, work)),
                    Site(f"without ({args.rollups_baseline}, PG)",
                         database_at(src, another_database(url, "r_without"), CAPS, work), src=src),
                ]  # fmt: skip
            results = run_group("rollups", "capped: with rollups and without (SQLite, PostgreSQL)",
                                sites, args.trials, bare=False)  # fmt: skip
            for with_, without in zip(sites[::2], sites[1::2], strict=True):
                db = "PostgreSQL" if "PG" in with_.name else "SQLite"
                ratio_goal(verdict, f"rollups: with / without, {db}",
                           median_rps(results[with_.name]) / median_rps(results[without.name]),
                           args.goal_rollups)  # fmt: skip
                report = check_rollups(with_.engine)
                verdict.check(f"rollups: {db}: the figures equal their recount",
                              report.differences == (), f"{len(report.differences)} differ")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    code = verdict.report()
    return code if groups & {"main", "postgres", "sizes", "rollups"} else NOT_JUDGED


if __name__ == "__main__":
    raise SystemExit(main())
