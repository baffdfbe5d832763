"""Benchmark the SIP agent's memory after an overload (issue 21, item 4): does RSS come back?

One ``rtbridge sip`` per variant, started as bench/sip.py starts it (SQLite, default options,
the buyer a SIPp UAS echoing RTP, every call on a real reservation), in the same run:

- **trim on**: the defaults (``memory_trim = true``);
- **trim off**, the baseline: ``memory_trim = false``;
- with ``--arena-max N``, also **arena max N**: trim off, ``MALLOC_ARENA_MAX=N`` (glibc's
  limit on malloc arenas).

Each variant carries short calls at ``--steady-rate`` for ``--steady-seconds`` (RSS steady:
the mean over its last 10 s), then ``--overload-rate`` in all for ``--overload-seconds`` (the
steady caller goes on, a second SIPp adds the rest), then the steady rate again for
``--after`` s: RSS at the peak and ``--after`` s after the overload ended (its SIPp done).

Goal: RSS(after) / RSS(steady) <= 1.5 with trim on (``--goal-ratio``); set-up p99 of the
calls after the overload no more than ``--goal-slower-ms`` above the baseline's. Checks:
every call of the steady phases answered 200 (before and after the overload, each
variant); the agent alive. The overload's answers are printed, not judged: it is an
overload. Exit 0 when every goal and check passed, 1 when one failed, 2 when nothing could
be judged (SIPp missing).

    .venv/bin/python bench/memory.py [--steady-rate 50] [--overload-rate 300]
                                     [--overload-seconds 25] [--after 60] [--arena-max 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sip import Bench, Proc, final_codes, pct, setup_times  # noqa: E402
from bench.verdict import Verdict, refuse  # noqa: E402


@dataclass
class Phase:
    """One phase's calls: answers, set-up times, the agent's CPU."""

    name: str
    codes: dict[int, int] = field(default_factory=dict)
    setup: list[float] = field(default_factory=list)
    placed: int = 0
    cpu: float = 0.0

    def add(self, placed: int, msg: Path) -> None:
        self.placed += placed
        for code, n in final_codes(msg).items():
            self.codes[code] = self.codes.get(code, 0) + n
        self.setup += setup_times(msg)

    def line(self) -> str:
        answered = self.codes.get(200, 0)
        others = {c: n for c, n in sorted(self.codes.items()) if c != 200}
        times = self.setup or [float("nan")]
        return (f"{self.name:<9}{answered:>6} of {self.placed:<6} answered {others or ''}, set-up "
                f"p50 {pct(times, 0.5):.1f} p99 {pct(times, 0.99):.1f} max {max(times):.0f} ms, "
                f"agent CPU {self.cpu:.0%}")  # fmt: skip


@dataclass
class Run:
    """One variant's figures."""

    name: str
    steady: float = 0.0
    peak: float = 0.0
    after: float = 0.0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since start, MB)
    phases: dict[str, Phase] = field(default_factory=dict)
    trims: list[dict[str, object]] = field(default_factory=list)
    alive: bool = True

    @property
    def ratio(self) -> float:
        return self.after / self.steady if self.steady else float("nan")


def watch(agent: Proc, run: Run, t0: float, procs: list[subprocess.Popen[str]]) -> None:
    """Sample the agent's RSS every 0.5 s until every SIPp of ``procs`` has exited."""
    while True:
        run.rss.append((time.monotonic() - t0, agent.rss_mb()))
        if all(p.poll() is not None for p in procs):
            return
        time.sleep(0.5)


Load = tuple[str, float, int, Path]  # phase name, calls/s, calls, their reservations (CSV)


def load(bench: Bench, name: str, rate: float, seconds: float) -> Load:
    """Reservations made beforehand, so that one phase follows another without a gap."""
    n = max(1, int(rate * seconds))
    return name, rate, n, bench.reservations(n)


def phase(bench: Bench, agent: Proc, run: Run, t0: float, planned: list[Load]) -> None:
    """The calls of each of ``planned`` at once."""
    cpu0, started = agent.cpu(), time.monotonic()
    procs = [(name, n, *bench.calls(n, rate=rate, inf=csv, wait=False))
             for name, rate, n, csv in planned]  # fmt: skip
    watch(agent, run, t0, [p for _, _, p, _ in procs])
    cpu = (agent.cpu() - cpu0) / (time.monotonic() - started)
    for name, n, _, msg in procs:
        part = run.phases.setdefault(name, Phase(name))
        part.add(n, msg)
        part.cpu = cpu


def trims(log: Path) -> list[dict[str, object]]:
    """The agent's "returned N MB to the OS" lines (INFO: more than 50 MB)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if "to the OS" in line and line.startswith("{"):
            out.append(json.loads(line))
    return out


def measure(name: str, options: list[str], env: dict[str, str], args: argparse.Namespace) -> Run:
    run = Run(name)
    bench = Bench(Path(tempfile.mkdtemp(prefix="rtbridge-membench-")), options)
    bench.extra_env = env
    try:
        steady, seconds = args.steady_rate, args.overload_seconds
        before = [load(bench, "before", steady, args.steady_seconds)]
        overload = [load(bench, "steady", steady, seconds),
                    load(bench, "overload", args.overload_rate - steady, seconds)]  # fmt: skip
        after = [load(bench, "after", steady, args.after + 5)]
        bench.start_buyer()
        agent = bench.start_agent()
        t0 = time.monotonic()
        phase(bench, agent, run, t0, before)
        tail = [mb for t, mb in run.rss if t >= run.rss[-1][0] - 10]
        run.steady = statistics.fmean(tail)
        phase(bench, agent, run, t0, overload)
        ended = run.rss[-1][0]
        run.peak = max(mb for _, mb in run.rss)
        phase(bench, agent, run, t0, after)
        run.after = min(run.rss, key=lambda s: abs(s[0] - ended - args.after))[1]
        run.alive = bench.agent_alive()
        run.trims = trims(bench.work / "agent.log")
    finally:
        bench.stop()
    return run


def report(run: Run, after: int) -> None:
    print(f"\n  {run.name}: RSS steady {run.steady:.0f} MB, peak {run.peak:.0f} MB, "
          f"{after} s after the overload {run.after:.0f} MB: {run.ratio:.2f}x steady")  # fmt: skip
    trace = " ".join(f"{mb:.0f}" for t, mb in run.rss[:: max(1, len(run.rss) // 24)])
    print(f"    RSS MB over the run: {trace}")
    for part in run.phases.values():
        print(f"    {part.line()}")
    for line in run.trims:
        print(f"    trim: {line.get('msg')} in {line.get('malloc_trim_ms')} ms, "
              f"RSS then {line.get('rss_mb')} MB")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steady-rate", type=float, default=50, help="calls/s before and after")
    parser.add_argument("--steady-seconds", type=int, default=60, help="before the overload")
    parser.add_argument("--overload-rate", type=float, default=300, help="calls/s in all")
    parser.add_argument("--overload-seconds", type=int, default=25)
    parser.add_argument("--after", type=int, default=60, help="RSS this long after the overload")
    parser.add_argument("--arena-max", type=int, default=0,
                        help="also run trim off with MALLOC_ARENA_MAX=N (0: not)")  # fmt: skip
    goals = parser.add_argument_group("goals")
    goals.add_argument("--goal-ratio", type=float, default=1.5, metavar="X",
                       help="trim on: RSS after / RSS steady, at most")  # fmt: skip
    goals.add_argument("--goal-slower-ms", type=float, default=5.0, metavar="MS",
                       help="set-up p99 after the overload, trim on minus off, at most")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        return refuse("bench/memory.py", "sipp is missing: apt-get install sip-tester")
    if not args.steady_rate < args.overload_rate:
        return refuse("bench/memory.py", "--overload-rate must be above --steady-rate")
    verdict = Verdict("bench/memory.py")
    verdict.goals_from(parser, args)
    # The level users run at: the trims' INFO lines are how this benchmark sees them.
    os.environ.setdefault("RTB_AGENT_LOG", "info")
    print(f"rtbridge sip on SQLite, {os.cpu_count()} CPUs: {args.steady_rate:g}/s for "
          f"{args.steady_seconds} s, {args.overload_rate:g}/s for {args.overload_seconds} s, "
          f"{args.steady_rate:g}/s for {args.after} s; one agent per variant")  # fmt: skip
    variants: list[tuple[str, list[str], dict[str, str]]] = [
        ("trim off", ["memory_trim = false"], {}),
        ("trim on", [], {}),
    ]
    if args.arena_max:
        variants.append((f"arena max {args.arena_max}", ["memory_trim = false"],
                         {"MALLOC_ARENA_MAX": str(args.arena_max)}))  # fmt: skip
    runs = {}
    for name, options, env in variants:
        runs[name] = run = measure(name, options, env, args)
        report(run, args.after)
        for part in ("before", "after"):
            p = run.phases.get(part, Phase(part))
            verdict.check(f"{name}: every call {part} the overload answered 200",
                          p.codes.get(200, 0) == p.placed > 0,
                          f"{p.codes.get(200, 0)} of {p.placed}, answers {p.codes}")  # fmt: skip
        verdict.check(f"{name}: the agent alive at the end", run.alive,
                      "alive" if run.alive else "died")  # fmt: skip
    on, off = runs["trim on"], runs["trim off"]
    print(f"\n  RSS {args.after} s after / steady: trim on {on.ratio:.2f}x, "
          f"trim off {off.ratio:.2f}x (goal <= {args.goal_ratio:g}x with trim on)")  # fmt: skip
    verdict.goal(f"trim on: RSS {args.after} s after the overload / RSS steady", on.ratio <=
                 args.goal_ratio, f"{on.after:.0f} / {on.steady:.0f} MB = {on.ratio:.2f}x "
                 f"(trim off {off.after:.0f} / {off.steady:.0f} MB = {off.ratio:.2f}x; goal <= "
                 f"{args.goal_ratio:g}x)")  # fmt: skip
    p99 = {name: pct(r.phases["after"].setup or [float("nan")], 0.99) for name, r in runs.items()}
    slower = p99["trim on"] - p99["trim off"]
    verdict.goal("set-up p99 after the overload, trim on minus off", slower <= args.goal_slower_ms,
                 f"{slower:+.1f} ms ({p99['trim on']:.1f} vs {p99['trim off']:.1f} ms; goal <= "
                 f"+{args.goal_slower_ms:g} ms)")  # fmt: skip
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
