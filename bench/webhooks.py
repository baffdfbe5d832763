"""Benchmark the webhook sender as users run it: ``rtbridge serve --sip off`` on SQLite with
the demo configuration and one webhook of the publisher for ``reserved`` and ``cancelled``,
pings arriving over HTTP at steady rates, a fast local receiver (``webhook_receiver.py``:
one uvicorn worker answering 200 and noting each ``webhook-id`` and its arrival time).

The demo buyer's caps (10 at once, 500 a day) are set out of reach, as ``bench/api.py``
does: with them nearly every ping would be a no-target, which the webhook does not ask for,
and there would be nothing to deliver. Every fourth reserved ping is then cancelled
(``PUT /rtbs/<uuid>.json status=cancelled``), so both kinds of event flow: a new
reservation row and a history row.

(a) steady load, for each rate in ``--rates`` for ``--seconds`` each, open loop (a ping is
    due at its time whatever the answers before it did), in three set-ups on fresh
    databases: the sender in the serving process (the default), ``serve --webhooks off``
    with ``rtbridge webhooks run`` as its own process, and ``serve --webhooks off`` alone
    (nothing sends: the pings' own cost). Per run: events and deliveries per second over
    the load, event-to-delivery latency p50/p99 (the body's ``at``, which for ``reserved`` is
    the reservation's ``created_at``, to the receiver's arrival), the backlog when the load
    stops and how long it takes to drain, ping latency p50/p99 counted from when each ping
    was due, duplicates, and the signatures of a sample checked with the code in docs/webhooks.md.
(b) the sender's ceiling against the transport's: a backlog made with the sender off,
    drained by ``rtbridge webhooks run`` (first to last arrival), beside the same receiver
    fed by plain POSTs (``transport.post``, signed alike) from a thread pool of the
    sender's POSTs in flight (8) — what the sender could do if the outbox cost nothing.
(c) ping throughput cost: ``wrk`` at ``--connections`` (closed loop, as fast as it goes)
    against ``serve`` with the sender on, off, and off beside ``webhooks run``, in
    alternating trials, each after the senders have drained the trials before it (up to
    60 s); ratios to ``off``.

    .venv/bin/python bench/webhooks.py [--seconds 20] [--rates 200,500] [--quick]
                                       [--only a,b,c]

``--quick`` is a smoke test in about 20 s (under 30 s): (a) 2 s at 100/s with the sender in
the serving process only, (b) a backlog of 400 pings and 1 s of baseline, (c) the sender on
and off for 1 s each; its figures are not measurements. Needs ``wrk``
(Debian package ``wrk``) for (c). Hold ``flock /tmp/rtbridge-bench.lock`` around a run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import uvloop
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import UVICORN, server  # noqa: E402
from bench.verdict import Verdict, refuse  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.webhooks import signing, subscriptions  # noqa: E402
from rtbridge.webhooks.sender import SenderOptions  # noqa: E402
from rtbridge.webhooks.transport import post  # noqa: E402

T0 = 0.0
DEMO = ROOT / "deploy" / "demo.toml"
KEY = "f38240dd-7f65-4e17-a4d7-2e09ccafad0e"  # the demo's key of the feature notes
PUBLISHER = "pub-1"
MASTER = "bench-webhook-site-key-0123456789abcdef"  # RTBRIDGE_WEBHOOK_KEY (>= 32 characters)
CANCEL_EVERY = 4
LOAD_CONNECTIONS = 64
BATCH = SenderOptions().posts  # POSTs in flight: the transport baseline's threads
SETUPS_ON, SETUPS_OFF = "serve (sender in process)", "serve --webhooks off"
SETUPS = {
    "serve (sender in process)": ("on", False),
    "serve + webhooks run": ("off", True),
    "serve --webhooks off": ("off", False),
}


def demo_config() -> str:
    """deploy/demo.toml with the buyer's caps out of reach (see the module's docstring)."""
    text = DEMO.read_text()
    capped = "concurrency = 10\ndaily_cap = 500"
    if capped not in text:
        raise SystemExit(f"{DEMO}: the buyer's caps changed; update bench/webhooks.py")
    return text.replace(capped, "concurrency = 1000000\ndaily_cap = 10000000")


def env(db_url: str) -> dict[str, str]:
    return {**os.environ, "RTBRIDGE_DB": db_url, "RTBRIDGE_WEBHOOK_KEY": MASTER}


def rtbridge(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtbridge", *args]


@dataclass
class Site:
    """A fresh SQLite database with the configuration applied and the webhook added."""

    path: Path
    secret: str

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def backlog(self) -> int:
        """Events not yet delivered, as the database has them: pending deliveries plus rows
        the outbox has not dispatched yet."""
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            return sum(
                db.execute(sql).fetchone()[0]
                for sql in (
                    "SELECT count(*) FROM webhookdelivery WHERE status = 'pending'",
                    "SELECT count(*) FROM reservation WHERE webhook_pending",
                    "SELECT count(*) FROM reservationevent WHERE webhook_pending",
                )
            )


def make_site(work: Path, name: str, hook_url: str) -> Site:
    path = work / f"{name}.db"
    config = work / "demo-uncapped.toml"
    config.write_text(demo_config())
    engine = open_database(f"sqlite:///{path}")
    apply_file(engine, config)
    with Session(engine) as session:  # what `rtbridge webhooks add` calls, without its start-up
        made = subscriptions.create_webhook(
            session, actor="cli:bench", master=MASTER,
            raw={"publisher": PUBLISHER, "url": hook_url, "events": ["reserved", "cancelled"]},
        )  # fmt: skip
    engine.dispose()
    return Site(path, made["secret"])


@contextlib.contextmanager
def process(argv: list[str], environ: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A process without a port (``rtbridge webhooks run``), stopped by SIGTERM."""
    proc = subprocess.Popen(argv, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def serve(site: Site, webhooks: str) -> tuple[list[str], dict[str, str]]:
    argv = rtbridge("serve", "--sip", "off", "--webhooks", webhooks, "--log-level", "warning",
                    "--http")  # fmt: skip
    return argv, env(site.url)


def sender_process() -> list[str]:
    return rtbridge("webhooks", "run", "--log-level", "warning")


# -- the receiver -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # time.time() at the receiver
    msg_id: str
    stamp: str
    signature: str
    body: str


class Receiver:
    """The receiver process seen from here: its URL, and what it got since a mark."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.hook = f"{base}/hook"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:  # noqa: S310
            data: bytes = response.read()
            return data

    def count(self) -> int:
        return int(self._get("/count"))

    def since(self, mark: int) -> list[Arrival]:
        return [Arrival(*r) for r in json.loads(self._get(f"/dump?from={mark}"))]


def receiver() -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "uvicorn", "webhook_receiver:app", *UVICORN, "--port"]
    return argv, {**os.environ, "PYTHONPATH": str(ROOT / "bench")}


def readme_verify(secret: str, a: Arrival) -> bool:
    """docs/webhooks.md's lines, verbatim in substance: not our signing module."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{a.msg_id}.{a.stamp}.".encode() + a.body.encode()
    mac = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return abs(time.time() - int(a.stamp)) < 300 and any(
        hmac.compare_digest(mac, s) for s in a.signature.split()
    )


def event_time(body: str) -> float:
    return datetime.fromisoformat(json.loads(body)["at"].replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the steady load ----------------------------------------------------------------------------


@dataclass
class Load:
    pings: int = 0
    reserved: int = 0
    cancelled: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms, from when each ping was due


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, body: str
) -> tuple[int, bytes]:
    data = body.encode()
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: "
        f"application/x-www-form-urlencoded\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    answer = await reader.readexactly(int(length.group(1))) if length else b""
    return int(head[9:12]), answer


async def _steady(base: str, rate: float, seconds: float, run: int, connections: int) -> Load:
    """``rate`` pings/s for ``seconds`` over ``connections`` keep-alive connections, each
    ping due at ``start + i / rate``; every CANCEL_EVERY-th reserved one is cancelled."""
    host, port = base.removeprefix("http://").split(":")
    total = int(rate * seconds)
    load = Load()
    start = time.monotonic() + 0.2

    async def worker(w: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for i in range(w, total, connections):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            caller = f"%2B1{200 + run}{i:07d}"
            try:
                code, answer = await _exchange(reader, writer, "POST", "/rtbs.json",
                                               f"key={KEY}&caller_number={caller}&caller_state=CA")  # fmt: skip
                load.latencies.append((time.monotonic() - due) * 1000)
                load.pings += 1
                found = json.loads(answer) if code == 200 else {}
                if found.get("status") != "reserved":
                    load.errors += 1
                    continue
                load.reserved += 1
                if i % CANCEL_EVERY == 0:
                    code, _ = await _exchange(reader, writer, "PUT", f"/rtbs/{found['uuid']}.json",
                                              f"key={KEY}&status=cancelled")  # fmt: skip
                    load.cancelled += code == 200
                    load.errors += code != 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                load.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
        writer.close()

    await asyncio.gather(*(worker(w) for w in range(connections)))
    load.seconds = time.monotonic() - start
    return load


def steady(base: str, rate: float, seconds: float, run: int) -> Load:
    """Open-loop pings; LOAD_CONNECTIONS bounds how late they can fall (a connection waits
    for its answer), so a server that answers in time never sees fewer than asked."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_steady(base, rate, seconds, run, LOAD_CONNECTIONS))


@dataclass
class Steady:
    setup: str
    rate: float
    load: Load
    events: int
    delivered_during: int  # unique webhook-ids that arrived while the load ran
    delivered: int  # unique, by the end of the drain
    duplicates: int
    latencies: list[float]  # s, event -> arrival
    backlog: int  # in the database when the load stopped
    drain: float | None  # s after the load until every event had arrived (None: not within)
    signatures: tuple[int, int]  # (checked, good)


def run_steady(
    work: Path, rx: Receiver, setup: str, rate: float, seconds: float, run: int, drain_max: float
) -> Steady:
    webhooks, separate = SETUPS[setup]
    site = make_site(work, f"steady-{run}", rx.hook)
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(server(*serve(site, webhooks)))
        if separate:
            stack.enter_context(process(sender_process(), env(site.url)))
        time.sleep(0.5)  # the sender's first round
        mark = rx.count()
        began = time.time()
        load = steady(base, rate, seconds, run)
        ended = time.time()
        backlog = site.backlog()
        events = load.reserved + load.cancelled
        drain: float | None = None
        sends = webhooks == "on" or separate
        while sends and time.time() - ended < drain_max:
            if rx.count() - mark >= events:
                drain = time.time() - ended
                break
            time.sleep(0.05)
    got = rx.since(mark)
    seen: dict[str, Arrival] = {}
    for a in got:
        seen.setdefault(a.msg_id, a)
    during = sum(1 for a in seen.values() if began <= a.at <= ended)
    latencies = [a.at - event_time(a.body) for a in seen.values()]
    sample = list(seen.values())[:: max(1, len(seen) // 200)]
    good = sum(readme_verify(site.secret, a) for a in sample)
    return Steady(setup, rate, load, events, during, len(seen), len(got) - len(seen), latencies,
                  backlog, drain, (len(sample), good))  # fmt: skip


# -- (b) the sender's ceiling and the transport's -----------------------------------------------


def wrk_pings(
    base: str, seconds: float, connections: int, run: int, work: Path
) -> tuple[float, int, int]:
    """(pings/s, pings, errors) from wrk, closed loop; callers distinct per run (no ping
    shield). Errors: non-2xx answers and socket errors."""
    script = work / "ping.lua"
    script.write_text(LUA.replace("RUN", str(run)))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s",
         str(script), base],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        errors += sum(int(x) for x in re.findall(r"\d+", socket_errors.group(1)))
    return rps, requests, errors


LUA = """
local n = 0
function request()
  n = n + 1
  local body = string.format("key=%s&caller_number=%%2B1%d%07d&caller_state=CA", "KEY", RUN, n)
  return wrk.format("POST", "/rtbs.json", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
""".replace("KEY", KEY)


@dataclass
class Ceiling:
    backlog: int
    delivered: int
    sender_rate: float  # deliveries/s, first to last arrival
    baseline_rate: float
    baseline_sent: int


def run_ceiling(work: Path, rx: Receiver, pings: int, baseline_seconds: float, timeout: float
                ) -> Ceiling:  # fmt: skip
    """``pings`` (and their cancels) made with the sender off, then ``webhooks run`` alone."""
    site = make_site(work, "ceiling", rx.hook)
    with server(*serve(site, "off")) as base:
        steady(base, 500, pings / 500, 90)
    backlog = site.backlog()
    mark = rx.count()
    with process(sender_process(), env(site.url)):
        deadline = time.time() + timeout
        while rx.count() - mark < backlog and time.time() < deadline:
            time.sleep(0.1)
    got = rx.since(mark)
    arrivals = sorted(a.at for a in got)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    sender_rate = (len(arrivals) - 1) / span

    # The transport alone: the receiver fed the same bodies, signed alike, by `BATCH` threads.
    sample = got[: BATCH * 4] or [Arrival(0, "x", "0", "", "{}")]
    secret = site.secret
    stop = time.monotonic() + baseline_seconds

    def feed(i: int) -> int:
        sent = 0
        while time.monotonic() < stop:
            a = sample[(i + sent) % len(sample)]
            body = a.body.encode()
            head = signing.headers(secret, f"{a.msg_id}-{i}-{sent}", int(time.time()), body)
            code, _ = post(rx.hook, body, head, 5.0)
            sent += code == 200
        return sent

    started = time.monotonic()
    with ThreadPoolExecutor(BATCH) as pool:
        sent = sum(pool.map(feed, range(BATCH)))
    baseline_rate = sent / (time.monotonic() - started)
    return Ceiling(backlog, len(arrivals), sender_rate, baseline_rate, sent)


# -- (c) the pings' throughput with and without the sender ---------------------------------------


def quiet(sites: list[Site], limit: float = 60.0) -> None:
    """Wait until the senders have drained the last trial's events: a sender still working
    through them would take the CPU from the next trial, whichever set-up it measures."""
    deadline = time.monotonic() + limit
    while any(site.backlog() for site in sites) and time.monotonic() < deadline:
        time.sleep(0.2)


def run_cost(
    work: Path, rx: Receiver, setups: list[str], seconds: float, trials: int, connections: int,
    warm_up: bool, errors: dict[str, int],
) -> dict[str, list[float]]:  # fmt: skip
    """Pings/s per set-up, trial by trial; wrk's errors per set-up added to ``errors``."""
    rates: dict[str, list[float]] = {name: [] for name in setups}
    with contextlib.ExitStack() as stack:
        bases, sending = {}, []
        for n, name in enumerate(setups):
            webhooks, separate = SETUPS[name]
            site = make_site(work, f"cost-{n}", rx.hook)
            if webhooks == "on" or separate:
                sending.append(site)
            bases[name] = stack.enter_context(server(*serve(site, webhooks)))
            if separate:
                stack.enter_context(process(sender_process(), env(site.url)))
        names, run = setups, 300
        for name in names if warm_up else ():
            run += 1
            wrk_pings(bases[name], 1, connections, run, work)
        for trial in range(trials):
            for name in names[trial % len(names) :] + names[: trial % len(names)]:
                run += 1
                quiet(sending)
                rps, _, failed = wrk_pings(bases[name], seconds, connections, run, work)
                rates[name].append(rps)
                errors[name] = errors.get(name, 0) + failed
    return rates


# -- the report ----------------------------------------------------------------------------------


def show_steady(results: list[Steady]) -> None:
    print("\n(a) steady pings, one webhook (reserved, cancelled); open loop over "
          f"{LOAD_CONNECTIONS} connections")  # fmt: skip
    print(f"{'set-up':<28}{'rate':>6}{'pings/s':>9}{'events/s':>9}{'deliv/s':>9}"
          f"{'lat p50':>9}{'lat p99':>9}{'backlog':>8}{'drain s':>8}{'ping p50':>9}"
          f"{'ping p99':>9}{'errors':>7}{'dups':>5}{'sigs ok':>9}")  # fmt: skip
    for r in results:
        secs = r.load.seconds
        sends = SETUPS[r.setup] != ("off", False)
        drain = f"{r.drain:.2f}" if r.drain is not None else ("-" if not sends else "never")
        lat50 = f"{pct(r.latencies, 0.5) * 1000:.0f}ms" if r.latencies else "-"
        lat99 = f"{pct(r.latencies, 0.99) * 1000:.0f}ms" if r.latencies else "-"
        print(f"{r.setup:<28}{r.rate:>6.0f}{r.load.pings / secs:>9.0f}{r.events / secs:>9.0f}"
              f"{r.delivered_during / secs:>9.0f}{lat50:>9}{lat99:>9}{r.backlog:>8}{drain:>8}"
              f"{pct(r.load.latencies, 0.5):>7.1f}ms{pct(r.load.latencies, 0.99):>7.1f}ms"
              f"{r.load.errors:>7}{r.duplicates:>5}{r.signatures[1]:>5}/{r.signatures[0]:<3}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20, help="per steady rate (a)")
    parser.add_argument("--rates", default="200,500", help="pings/s, comma-separated (a)")
    parser.add_argument("--connections", type=int, default=16, help="wrk's, for (b) and (c)")
    parser.add_argument("--trials", type=int, default=3, help="alternating wrk runs (c)")
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--quick", action="store_true", help="a smoke test in under 30 s")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    rates = [float(r) for r in args.rates.split(",")]
    setups = list(SETUPS)
    wrk_seconds, backlog_pings, baseline_seconds, drain_max = 6.0, 4000, 5.0, 30.0
    if args.quick:
        args.seconds, rates, args.trials = 2, [100.0], 1
        setups = setups[:1]
        wrk_seconds, backlog_pings, baseline_seconds, drain_max = 1.0, 400, 1.0, 5.0
    if "c" in parts and shutil.which("wrk") is None:
        return refuse("bench/webhooks.py", "wrk is missing: apt-get install wrk")
    global T0
    T0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rtbridge-bench-webhooks-"))
    print(f"rtbridge webhooks, SQLite, demo configuration (caps out of reach), sender POSTs "
          f"{BATCH} at a time; load, servers and receiver on the same machine ({os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the start)")  # fmt: skip
    verdict = Verdict("bench/webhooks.py")
    steady_results: list[Steady] = []
    ceiling: Ceiling | None = None
    cost: dict[str, list[float]] = {}
    cost_errors: dict[str, int] = {}
    with server(*receiver()) as rx_base:
        rx = Receiver(rx_base)
        print(f"  [{time.monotonic() - T0:.1f} s] a", flush=True)
        if "a" in parts:
            run = 0
            for rate in rates:
                for setup in setups:
                    run += 1
                    r = run_steady(work, rx, setup, rate, args.seconds, run, drain_max)
                    steady_results.append(r)
                    print(f"  {setup}, {rate:.0f}/s: {r.delivered}/{r.events} delivered",
                          flush=True)  # fmt: skip
                    verdict.check(f"(a) {setup} {rate:.0f}/s: every ping reserved, every cancel 200",
                                  r.load.errors == 0,
                                  f"{r.load.errors} errors in {r.load.pings} pings")  # fmt: skip
                    verdict.check(f"(a) {setup} {rate:.0f}/s: every sampled signature verifies",
                                  r.signatures[0] == r.signatures[1],
                                  f"{r.signatures[1]} of {r.signatures[0]} verified")  # fmt: skip
                    if SETUPS[setup] != ("off", False):
                        verdict.check(f"(a) {setup} {rate:.0f}/s: every event delivered within "
                                      f"{drain_max:.0f} s", r.delivered == r.events,
                                      f"{r.delivered} of {r.events}")  # fmt: skip
        print(f"  [{time.monotonic() - T0:.1f} s] b", flush=True)
        if "b" in parts:
            ceiling = run_ceiling(work, rx, backlog_pings, baseline_seconds, 120.0)
            verdict.check("(b) the backlog delivered", ceiling.delivered >= ceiling.backlog,
                          f"{ceiling.delivered} of {ceiling.backlog}")  # fmt: skip
        print(f"  [{time.monotonic() - T0:.1f} s] c", flush=True)
        if "c" in parts:
            cost_setups = [SETUPS_ON, SETUPS_OFF] if args.quick else list(SETUPS)
            cost = run_cost(work, rx, cost_setups, wrk_seconds, args.trials, args.connections,
                            warm_up=not args.quick, errors=cost_errors)  # fmt: skip

    print(f"  [{time.monotonic() - T0:.1f} s] end; load average {os.getloadavg()[0]:.1f}",
          flush=True)  # fmt: skip
    if steady_results:
        show_steady(steady_results)
        print("  rate: pings/s asked; deliv/s: unique deliveries that arrived during the load;"
              " lat: event's `at` -> arrival; backlog: undelivered events in the database when"
              " the load stopped; ping latency counted from when each ping was due (pings/s"
              " below the rate: the server answered too slowly for the load's connections)")  # fmt: skip
    if ceiling is not None:
        ratio = ceiling.sender_rate / ceiling.baseline_rate
        print(f"\n(b) ceiling: a backlog of {ceiling.backlog} deliveries drained by "
              f"`rtbridge webhooks run` against {BATCH} threads of plain POSTs to the same "
              "receiver")  # fmt: skip
        print(f"{'sender':<44}{'deliveries/s':>14}")
        print(f"{'rtbridge webhooks run (outbox + POSTs)':<44}{ceiling.sender_rate:>14.0f}")
        print(f"{f'transport.post, {BATCH} threads (the transport alone)':<44}"
              f"{ceiling.baseline_rate:>14.0f}")  # fmt: skip
        print(f"sender / transport = {ratio:.2f}")
    if cost:
        off = statistics.median(cost[SETUPS_OFF])
        print(f"\n(c) ping throughput, wrk -c{args.connections} closed loop, {wrk_seconds:.0f} s x "
              f"{args.trials} alternating trials (one webhook subscribed in every set-up)")  # fmt: skip
        print(f"{'set-up':<28}{'pings/s':>10}{'/ off':>8}")
        for name, values in cost.items():
            median = statistics.median(values)
            print(f"{name:<28}{median:>10.0f}{median / off:>8.2f}")
    shutil.rmtree(work, ignore_errors=True)
    if cost:
        for name, failed in cost_errors.items():
            verdict.check(f"(c) {name}: no wrk error, every answer 2xx", failed == 0,
                          f"{failed} errors")  # fmt: skip
        verdict.note("(c) prints ratios, with no goal")
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
