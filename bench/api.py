"""Benchmark: ``POST /rtbs.json`` on rtbridge against a bare Starlette endpoint returning the
same JSON, in one run, loaded by ``wrk`` (one uvicorn worker each, uvloop, httptools).

The configuration is what users run: one key, a campaign with a 4-number DID pool and two
buyers, every request a new caller number (so every ping is a real reservation, never a
shield hit). Servers under comparison are loaded in alternating trials, so drift of the
machine hits them alike.

- ``main``: buyers with concurrency and daily caps (never reached: every ping reserves),
  the same file without caps, and the bare endpoint — SQLite.
- ``postgres``: the capped configuration on a throwaway PostgreSQL cluster.
- ``sizes``: the capped configuration on SQLite with 10^2, 10^4 and 10^6 reservations
  already in the table (1% live, the rest history over 30 days), written by bulk SQL.

    .venv/bin/python bench/api.py [--seconds 6] [--connections 16] [--trials 3]
                                  [--groups main,postgres,sizes]

Goals (issue 8): capped >= 0.9x uncapped; capped >= 0.5x bare with p99 <= 10 ms at 16
connections on SQLite; the same rate within 10% across table sizes. Needs ``wrk``
(Debian package ``wrk``) and, for ``postgres``, Debian's ``postgresql``.
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

from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.storage.catalog import hash_key  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.recount import check_counters  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402

KEY = "bench-key-0000000000000000"
POOL = ("+18339510260", "+18334583385", "+18334583386", "+18334583387")
# Caps the load cannot reach in a run: every ping still reserves, so capped and uncapped
# runs do the same work apart from what the caps themselves cost.
CAPS = "concurrency = 1000000\ndaily_cap = 10000000"


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
        wait_for_port("127.0.0.1", port)
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


def rtbridge_server(db_url: str) -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "rtbridge", "serve", "--sip", "off", "--log-level", "warning",
            "--http"]  # fmt: skip
    return argv, {**os.environ, "RTBRIDGE_DB": db_url}


def bare_server() -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "uvicorn", "baseline_app:app", *UVICORN, "--port"]
    return argv, {**os.environ, "PYTHONPATH": str(ROOT / "bench")}


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
        conn.execute(text(reservations), {"count": count, "key_id": hash_key(KEY)})
        conn.execute(text("""
            INSERT INTO reservationevent (reservation_uuid, status, at, detail, webhook_pending)
            SELECT uuid, status, updated_at, 'prefill', false FROM reservation"""))  # fmt: skip
    check_counters(engine, repair=True)
    return time.monotonic() - started


def measure(wrk: Wrk, urls: dict[str, str], seconds: int, trials: int) -> dict[str, list[Result]]:
    for name, url in urls.items():
        wrk.run(f"{name} warm-up", url, 2)
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


def count_reservations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM reservation WHERE buyer_id IS NOT NULL")
            ).scalar_one()
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--trials", type=int, default=3, help="alternating runs of each server")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--groups", default="main,postgres,sizes")
    args = parser.parse_args()
    groups = set(args.groups.split(","))
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rtbridge-bench-"))
    wrk = Wrk(work, args.connections, args.wrk_threads)
    print(
        f"POST /rtbs.json, {args.connections} connections, {args.seconds} s x {args.trials} "
        f"alternating trials, wrk -t{args.wrk_threads} on the same machine ({os.cpu_count()} cores)"
    )
    failures: list[str] = []
    bare: list[Result] = []
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(server(*bare_server()))

        if "main" in groups:
            capped = database(f"sqlite:///{work / 'capped.db'}", CAPS, work)
            uncapped = database(f"sqlite:///{work / 'uncapped.db'}", "", work)
            urls = {
                "bare Starlette": base,
                "rtbridge capped": stack.enter_context(server(*rtbridge_server(str(capped.url)))),
                "rtbridge uncapped": stack.enter_context(
                    server(*rtbridge_server(str(uncapped.url)))
                ),
            }
            before = count_reservations(capped)
            results = measure(wrk, urls, args.seconds, args.trials)
            bare = results["bare Starlette"]
            show("SQLite, capped vs uncapped vs bare", results)
            c, u = results["rtbridge capped"], results["rtbridge uncapped"]
            vs_uncapped = median_rps(c) / median_rps(u)
            vs_bare = median_rps(c) / median_rps(bare)
            print(f"capped / uncapped = {vs_uncapped:.2f}  (goal >= 0.90)")
            print(f"capped / bare     = {vs_bare:.2f}  (goal >= 0.50)")
            print(f"capped p99        = {median_p99(c):.2f} ms  (goal <= 10 ms)")
            print(f"uncapped / bare   = {median_rps(u) / median_rps(bare):.2f}")
            written = count_reservations(capped) - before
            requests = sum(r.requests for r in c)
            print(f"reservations written by the capped runs: {written} (wrk counted {requests})")
            if written < requests - args.connections * (args.trials + 1):
                failures.append("fewer reservations than requests: not every ping reserved")
            if not check_counters(capped).ok:
                failures.append("capped database: counters differ from the recount")

        if "postgres" in groups:
            url = stack.enter_context(postgres.cluster())
            # PostgreSQL has no key file: the site key comes from the environment (README)
            os.environ.setdefault("RTBRIDGE_SITE_KEY", "bench-site-key-0123456789abcdefghijkl")
            pg = database(url, CAPS, work)
            urls = {"rtbridge capped (PG)": stack.enter_context(server(*rtbridge_server(url)))}
            if not bare:
                urls = {"bare Starlette": base, **urls}
            results = measure(wrk, urls, args.seconds, max(1, args.trials - 1))
            bare = bare or results["bare Starlette"]
            show("PostgreSQL, capped", results)
            pgr = results["rtbridge capped (PG)"]
            print(f"PostgreSQL capped / bare = {median_rps(pgr) / median_rps(bare):.2f}, "
                  f"p99 {median_p99(pgr):.2f} ms")  # fmt: skip
            pg.dispose()

        if "sizes" in groups:
            urls = {}
            for exponent in (2, 4, 6):
                engine = database(f"sqlite:///{work / f'size{exponent}.db'}", CAPS, work)
                took = prefill(engine, 10**exponent)
                print(f"pre-filled 10^{exponent} reservations in {took:.1f} s")
                engine.dispose()
                urls[f"rtbridge 10^{exponent} rows"] = stack.enter_context(
                    server(*rtbridge_server(str(engine.url)))
                )
            results = measure(wrk, urls, args.seconds, args.trials)
            show("SQLite, capped, by rows already in the table", results)
            rates = [median_rps(r) for r in results.values()]
            spread = max(rates) / min(rates) - 1
            print(f"spread of req/s across table sizes = {spread:.1%}  (goal <= 10%)")
    shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"WARNING: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
