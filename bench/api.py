"""Benchmark: ``POST /rtbs.json`` on rtbridge (SQLite, every ping a real reservation) against
a bare Starlette endpoint returning the same JSON, in the same run, loaded by ``wrk``.

    .venv/bin/python bench/api.py [--seconds 10] [--connections 16]

Goal (issue 2): rtbridge >= 0.5x the bare endpoint's requests/s, p99 <= 20 ms at 16
connections. Needs ``wrk`` (Debian package ``wrk``).
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
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtbridge.config.apply import apply_file  # noqa: E402
from rtbridge.storage.engine import open_database  # noqa: E402
from rtbridge.storage.models import Reservation  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402

KEY = "bench-key-0000000000000000"
CONFIG = f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "bench"
numbers = ["+18339510260", "+18334583385", "+18334583386", "+18334583387"]

[[campaigns.buyers]]
id = "buyer-a"
destination = "sip:queue@127.0.0.1:5070"
payout = 90.0
seconds = 120
priority = 1
weight = 3

[[campaigns.buyers]]
id = "buyer-b"
destination = "sip:queue@127.0.0.1:5071"
payout = 80.0
seconds = 120
priority = 1
weight = 1

[[publishers]]
id = "pub"

[[keys]]
key = "{KEY}"
publisher = "pub"
campaign = "bench"
"""

# Each wrk thread numbers its own callers: +1 <200+thread> <7-digit counter>, all distinct,
# so the ping shield never short-cuts a request.
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


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


_runs = 0


def run_wrk(name: str, url: str, seconds: int, connections: int, script: Path) -> Result:
    """One wrk run; each run numbers its callers from a new area code (+1 2xx, 3xx, ...)."""
    global _runs
    _runs += 1
    script.write_text(LUA.replace("RUN", str(_runs * 2)))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        errors += sum(int(x) for x in re.findall(r"\d+", socket_errors.group(1)))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(name, rps, _ms(latency["50"]), _ms(latency["99"]), requests, errors)


def start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port("127.0.0.1", port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--trials", type=int, default=3, help="alternating runs of each server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rtbridge-bench-"))
    script = work / "ping.lua"
    (work / "bench.toml").write_text(CONFIG)
    db_url = f"sqlite:///{work / 'bench.db'}"
    engine = open_database(db_url)
    apply_file(engine, work / "bench.toml")
    env = {**os.environ, "RTBRIDGE_DB": db_url, "PYTHONPATH": str(ROOT / "bench")}
    uvicorn_flags = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    servers = {
        "bare Starlette": [sys.executable, "-m", "uvicorn", "baseline_app:app", *uvicorn_flags,
                           "--log-level", "warning", "--port"],
        "rtbridge": [sys.executable, "-m", "rtbridge", "serve", "--sip", "off", "--log-level",
                     "warning", "--http"],
    }  # fmt: skip
    urls: dict[str, str] = {}
    procs = []
    try:
        for name, argv in servers.items():
            port = free_port()
            target = str(port) if name == "bare Starlette" else f"127.0.0.1:{port}"
            procs.append(start([*argv, target], env, port))
            urls[name] = f"http://127.0.0.1:{port}"
            run_wrk("warm-up", urls[name], 2, args.connections, script)
        with engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(Reservation)).scalar_one()
        # Alternate the two servers so that drift of the machine hits both alike.
        results: dict[str, list[Result]] = {name: [] for name in servers}
        for _ in range(args.trials):
            for name in servers:
                results[name].append(
                    run_wrk(name, urls[name], args.seconds, args.connections, script)
                )
        time.sleep(0.5)
        with engine.connect() as conn:
            reserved = (
                conn.execute(
                    select(func.count())
                    .select_from(Reservation)
                    # the sweeper expires the first ones during a long run
                    .where(Reservation.status.in_(("reserved", "expired")))  # type: ignore[attr-defined]
                ).scalar_one()
                - before
            )
    finally:
        for proc in procs:
            stop(proc)

    print(
        f"\nPOST /rtbs.json, {args.connections} connections, {args.seconds} s x {args.trials} "
        "alternating trials, wrk -t2 on the same 2 cores"
    )
    print(f"{'server':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
    for runs in results.values():
        for r in runs:
            print(f"{r.name:<16}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.errors:>9}")
    base, rtb = results["bare Starlette"], results["rtbridge"]
    ratio = statistics.median(r.rps for r in rtb) / statistics.median(r.rps for r in base)
    p99 = statistics.median(r.p99_ms for r in rtb)
    print(f"\nmedian throughput ratio rtbridge / bare = {ratio:.2f}  (goal >= 0.50)")
    print(f"median rtbridge p99 = {p99:.2f} ms  (goal <= 20 ms)")
    requests = sum(r.requests for r in rtb)
    print(
        f"reservations written by the measured runs: {reserved} (wrk counted {requests} requests)"
    )
    if reserved < requests - args.connections * args.trials:
        print("WARNING: fewer reservations than requests: not every ping reserved", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
