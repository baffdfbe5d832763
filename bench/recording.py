"""What call recording costs the SIP agent: the same bridged calls recorded and not, one run.

One ``rtbridge sip`` as deployed (SQLite, default options, only addresses and the RTP range
set, the recordings directory its default beside the database file), the publisher
authenticated by allowlist, every call claiming a real reservation. The configuration has
two campaigns alike in everything but ``record``: ``plain`` (not recorded) and ``recorded``
(``record = true``), each with its own DID pool, its buyer with caps out of reach (both
buyers are the same SIPp UAS echoing RTP) and its own key. A trial pings the key of its
kind, so its calls claim reservations of that campaign; the agent carries both kinds with
the same process, threads, pools and database, and the only difference is the flag the
router puts in each call's plan (``BridgeTo.record``). Nothing is re-applied between trials,
so no trial depends on when the agent sees a change of the catalog.

Trials alternate, off, on, on, off (``--trials`` of each kind, in that pattern), so drift of
the shared machine falls on both kinds alike; a warm-up trial (recorded, not judged) comes
first, so neither kind pays for pjsua's pools growing to the size of the run. Each trial:

- ``--bridges`` (500) calls placed at ``--rate`` (50/s), each held until every one is up
  and then ``--hold`` (20) s more: SIPp streams a PCMU tone into each, the buyer echoes it,
  so both legs carry audio both ways; ``--sampled`` (4) of them carry an RTP peer's tone
  that must come back (``bench/tone_sample.py``);
- the window (``--hold`` s with every call up): agent CPU in cores (``/proc/<pid>/stat``
  utime + stime; also its threads ``clock``, the conference bridge's, which feeds the
  recorders, and ``media``, RTP in and out; and the machine's other processes', since it is
  shared), and disk writes in bytes/s, two ways: ``write_bytes`` of
  ``/proc/<pid>/io`` (bytes the agent sent towards the disk: the recorders' parts, SQLite's
  heartbeats, its log) and the growth of the recorders' part files in the recordings
  directory (the part of it that is the recordings);
- the hang-up, from just before the first BYE to the moment every call of the trial has its
  end in the database and no recording of them still says ``recording`` (the end record
  waits for the join, or, were it written first, the join's outcome follows it: either way
  "until every recording is joined"): the agent's CPU seconds, and those of its join worker
  thread alone (``rtbridge-recording``, found as the one thread the agent starts during the
  warm-up's hang-up: the join cost itself);
- INVITE -> 200 set-up times of the trial's bulk calls at the publisher (SIPp's message
  trace), p50/p99, while the trial's earlier calls already carry audio (and recorders).

Goals: window CPU, recorded / not, <= 1.30 (``--goal-cpu-ratio``, the issue's); set-up p50
of all recorded trials' calls minus that of all unrecorded ones <= +1 ms
(``--goal-setup-ms``): the recorders are made after the 200 is sent, so a call's own set-up
never waits for them; what could slow set-ups is the agent thread busy making other calls'
recorders or the disk writes competing for the cores. The agent adds ~2-3 ms to a set-up at
p50 (bench/sip.py (a)): +1 ms is a third of that, and above the spread of p50 between trials
of one kind; and every trial's calls bridged at once by the agent's metric >= 500
(``--goal-bridges``).

Checks: every call answered 200; the sampled calls' tone back while all were up; the
agent's recordings-in-progress gauge equal to the calls up in a recorded trial, 0 in the
other; after a recorded trial every call record says ``completed`` and its file exists, its
size is ``recording_bytes`` and its length (read from the WAV) is within 0.5 s of the call's
talk time (``duration``), as is ``recording_seconds``; after an unrecorded one no call record
has a recording and no part or file was made; no recording failure counted; the agent
alive. A recorded trial's files are deleted once checked (a default recorded trial writes
~1.2 GB: 0.6 GB of parts, then 0.6 GB of stereo files).

    .venv/bin/python bench/recording.py [--bridges 500] [--trials 2] [--hold 20] [--rate 50]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import bindparam, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sip import Bench, Proc, answered_all, final_codes, pct, setup_times  # noqa: E402
from bench.tone_sample import Heard, ToneSample, judge  # noqa: E402
from bench.verdict import Verdict, refuse  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402

BENCH = "bench/recording.py"
KEYS = {"off": "rec-bench-plain-00000000000", "on": "rec-bench-recorded-00000000"}
ABBA = ("off", "on", "on", "off")
LENGTH_SLACK = 0.5  # seconds a recording's length may differ from its call's talk time
BRIDGES = 'rtbridge_sip_bridges{phase="connected"}'
DISTURBED = 0.2  # cores of other processes in a window worth a note: the machine is shared


def config(buyer_port: int) -> str:
    """bench/sip.py's site, twice: one campaign recorded, one not, each with its key."""
    blocks = []
    for kind, campaign, record, dids in (("off", "plain", "false", "01"),
                                         ("on", "recorded", "true", "02")):  # fmt: skip
        numbers = ", ".join(f'"+1800555{dids}0{n}"' for n in range(1, 5))
        blocks.append(f"""
[[campaigns]]
id = "{campaign}"
record = {record}
numbers = [{numbers}]

[[campaigns.buyers]]
id = "buyer-{campaign}"
destination = "sip:buyer@127.0.0.1:{buyer_port}"
payout = 10.0
seconds = 30
concurrency = 100000
daily_cap = 10000000

[[keys]]
key = "{KEYS[kind]}"
publisher = "pub"
campaign = "{campaign}"
ttl_seconds = 3600
""")
    return (
        '\n[sip]\ndomain = "sip.rtb.example.com"\n\n[[publishers]]\nid = "pub"\n'
        'ips = ["127.0.0.1/32"]\n' + "".join(blocks)
    )


class RecordingBench(Bench):
    """bench/sip.py's bench on the two-campaign configuration."""

    def configure(self) -> None:
        (self.work / "bench.toml").write_text(config(self.buyer_port))
        apply_file(self.engine, self.work / "bench.toml")


# -- what is read from /proc and the recordings directory --------------------------------------


def write_bytes(pid: int) -> int:
    """Bytes the process caused to be sent to the storage layer (page cache dirtied)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Name and CPU seconds of each of the process's threads. pjsua's are named: ``clock``,
    the conference bridge's (mixing every port a tick, the recorders' writes included),
    ``media``, its ioqueue's (RTP in and out); Python's are all ``python``."""
    found: dict[int, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended
            continue
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        fields = rest.split()
        found[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
         tids: set[int] | None = None, name: str | None = None) -> float:  # fmt: skip
    """CPU seconds between two :func:`thread_cpu` of the threads ``tids``, or named ``name``
    (a thread started in between counts from 0; one that ended, not at all)."""
    total = 0.0
    for tid, (comm, cpu) in after.items():
        if (tids is None or tid in tids) and (name is None or comm == name):
            total += cpu - before.get(tid, (comm, 0.0))[1]
    return total


def parts_bytes(directory: Path) -> int:
    """Bytes of the recorders' part files (``<uuid>.left.wav``, ``.right.wav``) now."""
    total = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.endswith((".left.wav", ".right.wav")):
            with contextlib.suppress(OSError):  # joined and deleted meanwhile
                total += entry.stat().st_size
    return total


def stereo_files(directory: Path) -> Iterator[Path]:
    """The joined recordings (``<yyyy>/<mm>/<uuid>.wav``)."""
    return directory.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/*.wav")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the machine's cores have been busy since boot (user, nice, system, irq,
    softirq: this kernel charges the interrupts it serves in a process's context to that
    process too), and seconds stolen from them by the hypervisor."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return sum(fields[0:3] + fields[5:7]) / tick, fields[7] / tick


def processes_cpu(pids: list[int]) -> float:
    """CPU seconds of ``pids`` (and their threads), those still alive."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += Proc(pid).cpu()
    return total


# -- one trial ---------------------------------------------------------------------------------


@dataclass
class Trial:
    n: int  # 0: the warm-up
    kind: str  # "off" or "on"
    load_before: str = ""
    idle_cpu: float = 0.0  # cores, the 3 s before the calls
    up: float = 0.0  # bridges at once, the agent's metric, at the window's start
    recorders: float = 0.0  # recordings in progress then, the agent's gauge
    window: float = 0.0  # seconds
    cpu: float = 0.0  # cores over the window
    others: float = 0.0  # cores other processes than this run's used over the window
    machine: float = 0.0  # cores the machine's processes used in all (of os.cpu_count())
    sipp: float = 0.0  # cores of the publisher's and the buyer's SIPp
    steal: float = 0.0  # cores the hypervisor took from the machine (a VM's disturbance)
    clock: float = 0.0  # cores of the agent's conference clock thread over the window
    media: float = 0.0  # cores of its media (ioqueue) thread
    write_bps: float = 0.0  # /proc/<pid>/io write_bytes over the window, per s
    parts_bps: float = 0.0  # growth of the part files over the window, per s
    setup: list[float] = field(default_factory=list)  # ms, the bulk calls'
    codes: dict[int, int] = field(default_factory=dict)
    tail_cpu: float = 0.0  # CPU s, just before the first BYE -> every end recorded
    tail_seconds: float = 0.0
    after_last_bye: float = 0.0  # s from the publisher SIPp's end to every end recorded
    tail_write: int = 0  # write_bytes over the hang-up
    join_cpu: float = float("nan")  # CPU s of the join worker thread over the hang-up
    ended: int = 0  # call records with an end
    heard: Heard | None = None
    problems: list[str] = field(default_factory=list)  # what the database check found
    recorded_bytes: int = 0  # the trial's stereo files, in all
    failures: float = 0.0  # rtbridge_sip_recording_failures_total at the end


def settled(rows: list[dict[str, object]]) -> int:
    """Ended calls whose recording, if any, is no longer in progress (joined, or failed)."""
    return sum(1 for row in rows if row["recording_status"] != "recording")


def ended_records(bench: Bench, uuids: list[str]) -> list[dict[str, object]]:
    """The trial's call records that have an end, as dicts."""
    query = text(
        "SELECT reservation_uuid, duration, recording_status, recording_path, recording_error,"
        " recording_bytes, recording_seconds FROM callrecord"
        " WHERE end_at IS NOT NULL AND reservation_uuid IN :uuids"
    ).bindparams(bindparam("uuids", expanding=True))
    with bench.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query, {"uuids": uuids})]
    return rows


def check_records(trial: Trial, rows: list[dict[str, object]], directory: Path,
                  uuids: list[str]) -> None:  # fmt: skip
    """What the database and the directory say of the trial's recordings."""
    missing = len(uuids) - len(rows)
    if missing:
        trial.problems.append(f"{missing} calls without an ended record")
    bad: dict[str, int] = {}

    def bad_one(why: str) -> None:
        bad[why] = bad.get(why, 0) + 1

    for row in rows:
        status = row["recording_status"]
        if trial.kind == "off":
            if status is not None:
                bad_one(f"recording_status {status!r} on an unrecorded call")
            continue
        if status != "completed":
            bad_one(f"recording_status {status!r} ({row['recording_error']})")
            continue
        talk = float(row["duration"] or 0.0)  # type: ignore[arg-type]
        path = directory / str(row["recording_path"])
        if not path.is_file():
            bad_one("file missing")
            continue
        size = path.stat().st_size
        trial.recorded_bytes += size
        if size != row["recording_bytes"]:
            bad_one("file size != recording_bytes")
        with wave.open(str(path), "rb") as wav:
            length = wav.getnframes() / wav.getframerate()
            channels = wav.getnchannels()
        if channels != 2:
            bad_one(f"{channels} channels")
        if abs(length - talk) > LENGTH_SLACK:
            bad_one(f"length {length:.2f} s vs talk {talk:.2f} s")
        if abs(float(row["recording_seconds"] or 0.0) - talk) > LENGTH_SLACK:  # type: ignore[arg-type]
            bad_one("recording_seconds off the talk time")
    leftovers = parts_bytes(directory)
    if leftovers:
        bad_one(f"part files left: {leftovers} bytes")
    if trial.kind == "off" and any(stereo_files(directory)):
        bad_one("stereo files in the directory after an unrecorded trial")
    trial.problems += [f"{k} x{n}" if n > 1 else k for k, n in sorted(bad.items())]


def run_trial(bench: RecordingBench, agent: Proc, trial: Trial, args: argparse.Namespace,
              directory: Path, join_threads: set[int]) -> Trial:  # fmt: skip
    """One trial; ``join_threads``: the join worker's thread id(s), filled by the warm-up."""
    pid = agent.pid
    os.sync()  # the previous trial's pages written back before this one is measured
    time.sleep(2)
    trial.load_before = loadavg()
    trial.idle_cpu = agent.cpu_over(3)
    key = KEYS[trial.kind]
    ramp = args.bridges / args.rate
    hold = float(args.hold) if trial.n else min(args.hold, 5.0)  # a warm-up fills the pools
    hold_s = ramp + hold + 6  # placed over the ramp, then up together for hold s
    hold_ms = int(hold_s * 1000)
    bulk = args.bridges - args.sampled
    sampled = [u for u, _ in bench.reserve(args.sampled, key)]
    rows = bench.reserve(bulk, key)
    csv = bench.work / f"trial-{trial.n}.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(f"{u};{c};\n" for u, c in rows))
    uuids = sampled + [u for u, _ in rows]
    placed = time.monotonic()
    sample = ToneSample(bench.work, f"127.0.0.1:{bench.agent_port}", sampled, hold_ms)
    proc, msg = bench.calls(bulk, rate=args.rate, hold_ms=hold_ms, media=True, wait=False,
                            inf=csv)  # fmt: skip
    first_bye = placed + hold_s  # no call is hung up before it: each is held hold_s
    while time.monotonic() < placed + ramp + 4:
        if bench.metric(BRIDGES) >= args.bridges:
            break
        time.sleep(0.5)
    time.sleep(1)
    trial.up = bench.metric(BRIDGES)
    trial.recorders = bench.metric("rtbridge_sip_recordings")
    window = min(hold, first_bye - 1 - time.monotonic())
    assert bench.buyer is not None
    ours = [pid, bench.buyer.pid, proc.pid, os.getpid(), *(c.proc.pid for c in sample.calls)]
    sample.mark()
    sipps = [bench.buyer.pid, proc.pid]
    all0, ours0, threads0 = machine_cpu(), processes_cpu(ours), thread_cpu(pid)
    sipp0 = processes_cpu(sipps)
    cpu0, wb0, parts0, t0 = agent.cpu(), write_bytes(pid), parts_bytes(directory), time.monotonic()
    time.sleep(max(window, 0.5))
    cpu1, wb1, parts1, t1 = agent.cpu(), write_bytes(pid), parts_bytes(directory), time.monotonic()
    all1, ours1, threads1 = machine_cpu(), processes_cpu(ours), thread_cpu(pid)
    sipp1 = processes_cpu(sipps)
    sample.close_window()
    trial.window = t1 - t0
    trial.cpu = (cpu1 - cpu0) / trial.window
    trial.clock = used(threads0, threads1, name="clock") / trial.window
    trial.media = used(threads0, threads1, name="media") / trial.window
    trial.others = max(0.0, (all1[0] - all0[0]) - (ours1 - ours0)) / trial.window
    trial.machine = (all1[0] - all0[0]) / trial.window
    trial.steal = (all1[1] - all0[1]) / trial.window
    trial.sipp = (sipp1 - sipp0) / trial.window
    trial.write_bps = (wb1 - wb0) / trial.window
    trial.parts_bps = (parts1 - parts0) / trial.window
    # The hang-up: from just before the first BYE until every call's end is recorded.
    time.sleep(max(0.0, first_bye - 0.5 - time.monotonic()))
    threads0 = thread_cpu(pid)
    cpu0, wb0, t0 = agent.cpu(), write_bytes(pid), time.monotonic()
    proc.wait()
    last_bye = time.monotonic()
    deadline = last_bye + args.join_timeout
    while True:
        trial.ended = settled(ended_records(bench, uuids))
        if trial.ended >= len(uuids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    threads1, cpu1, wb1, t1 = thread_cpu(pid), agent.cpu(), write_bytes(pid), time.monotonic()
    trial.tail_cpu, trial.tail_seconds = cpu1 - cpu0, t1 - t0
    trial.after_last_bye = t1 - last_bye
    trial.tail_write = wb1 - wb0
    if trial.n == 0:  # the warm-up: the thread the agent started to join its recordings
        join_threads.update(t for t, (name, _) in threads1.items()
                            if name == "python" and t not in threads0)  # fmt: skip
    if join_threads:
        trial.join_cpu = used(threads0, threads1, tids=join_threads)
    trial.heard = sample.finish()
    trial.codes = final_codes(msg)
    trial.setup = setup_times(msg)
    trial.failures = bench.metric("rtbridge_sip_recording_failures_total")
    check_records(trial, ended_records(bench, uuids), directory, uuids)
    if trial.kind == "on":  # checked: ~0.5 GB a default trial, gone before the next
        for path in stereo_files(directory):
            path.unlink()
    return trial


# -- the run -----------------------------------------------------------------------------------


# (label, width) of each column of a trial's row; two header lines
COLUMNS = (
    ("trial", "", 5), ("rec", "", 4), ("bridged", "", 8), ("recs", "", 5),
    ("window", "s", 7), ("CPU", "cores", 6), ("clock", "cores", 6), ("media", "cores", 6),
    ("idle", "cores", 6), ("SIPp", "cores", 6), ("others", "cores", 6), ("all", "cores", 6),
    ("steal", "cores", 6),
    ("write", "MB/s", 7), ("parts", "MB/s", 7), ("set-up", "p50 ms", 7), ("set-up", "p99 ms", 7),
    ("hang-up", "CPU s", 8), ("join", "CPU s", 6), ("ended", "+s", 6), ("hang-up", "write MB", 9),
)  # fmt: skip
HEADER = "\n".join(
    "    " + " ".join(f"{label[i]:>{width}}" for *label, width in COLUMNS) + tail
    for i, tail in ((0, "  load"), (1, "  before"))
) + (
    "\n    (window: every call up. CPU: the agent's; clock, media: its threads so named (the"
    " conference bridge's clock, which\n     feeds the recorders; RTP in and out); idle: the"
    " agent's CPU in the 3 s before the calls; SIPp: the publisher's and the\n     buyer's;"
    " others: the machine's busy CPU but this run's processes' (a shared machine's"
    " disturbance); all: the\n     machine's; steal: taken by the hypervisor. write:"
    " /proc/<pid>/io write_bytes; parts: the part files' growth. hang-up:\n     just before"
    " the first BYE -> every call's end recorded; join: the join thread's share of it;"
    " ended +s: after the\n     publisher SIPp's last BYE)"
)


def row(t: Trial) -> str:
    setup = t.setup or [float("nan")]
    values = (
        str(t.n or "warm"), t.kind, f"{t.up:.0f}", f"{t.recorders:.0f}", f"{t.window:.1f}",
        f"{t.cpu:.3f}", f"{t.clock:.3f}", f"{t.media:.3f}", f"{t.idle_cpu:.3f}",
        f"{t.sipp:.2f}", f"{t.others:.2f}", f"{t.machine:.2f}", f"{t.steal:.2f}", f"{t.write_bps / 1e6:.2f}",
        f"{t.parts_bps / 1e6:.2f}", f"{pct(setup, 0.5):.2f}", f"{pct(setup, 0.99):.2f}",
        f"{t.tail_cpu:.2f}", "-" if t.join_cpu != t.join_cpu else f"{t.join_cpu:.2f}",
        f"{t.after_last_bye:.1f}", f"{t.tail_write / 1e6:.1f}",
    )  # fmt: skip
    cells = (f"{v:>{width}}" for v, (*_, width) in zip(values, COLUMNS, strict=True))
    return "    " + " ".join(cells) + f"  {t.load_before}"


def report(verdict: Verdict, trials: list[Trial], args: argparse.Namespace) -> None:
    judged = [t for t in trials if t.n]
    by = {k: [t for t in judged if t.kind == k] for k in ("off", "on")}
    print(f"\n{'-' * 100}\nall trials\n{HEADER}")
    for t in trials:
        print(row(t))

    def mean(kind: str, value: str) -> float:
        return statistics.fmean(getattr(t, value) for t in by[kind])

    cpu_off, cpu_on = mean("off", "cpu"), mean("on", "cpu")
    ratio = cpu_on / cpu_off if cpu_off else float("inf")
    setups = {k: [ms for t in by[k] for ms in t.setup] or [float("nan")] for k in by}
    p50 = {k: pct(v, 0.5) for k, v in setups.items()}
    p99 = {k: pct(v, 0.99) for k, v in setups.items()}
    # a trial's calls in the order they were answered: the first with few calls up, the last
    # with nearly all of them (and, recorded, their recorders)
    early = {k: pct([ms for t in by[k] for ms in t.setup[:100]] or [float("nan")], 0.5)
             for k in by}  # fmt: skip
    late = {k: pct([ms for t in by[k] for ms in t.setup[-100:]] or [float("nan")], 0.5)
            for k in by}  # fmt: skip
    up = min(t.up for t in judged)
    print(f"\n    {'':<34}{'off':>10}{'on':>10}{'on / off':>10}{'on - off':>10}")
    lines = [
        ("agent CPU, cores (mean)", cpu_off, cpu_on, "{:.3f}"),
        ("  its clock thread", mean("off", "clock"), mean("on", "clock"), "{:.3f}"),
        ("  its media thread", mean("off", "media"), mean("on", "media"), "{:.3f}"),
        ("SIPp, cores (mean)", mean("off", "sipp"), mean("on", "sipp"), "{:.3f}"),
        (f"the machine's {os.cpu_count()} CPUs, cores used", mean("off", "machine"),
         mean("on", "machine"), "{:.3f}"),
        ("write_bytes MB/s (mean)", mean("off", "write_bps") / 1e6,
         mean("on", "write_bps") / 1e6, "{:.2f}"),
        ("part files' growth MB/s (mean)", mean("off", "parts_bps") / 1e6,
         mean("on", "parts_bps") / 1e6, "{:.2f}"),
        ("set-up p50 ms (all calls)", p50["off"], p50["on"], "{:.2f}"),
        ("set-up p99 ms (all calls)", p99["off"], p99["on"], "{:.2f}"),
        ("set-up p50 ms, first 100 a trial", early["off"], early["on"], "{:.2f}"),
        ("set-up p50 ms, last 100 a trial", late["off"], late["on"], "{:.2f}"),
        ("hang-up CPU s (mean)", mean("off", "tail_cpu"), mean("on", "tail_cpu"), "{:.2f}"),
        ("hang-up s after the last BYE", mean("off", "after_last_bye"),
         mean("on", "after_last_bye"), "{:.2f}"),
    ]  # fmt: skip
    for name, off, on, fmt in lines:
        quotient = f"{on / off:.2f}" if off else "-"
        print(f"    {name:<34}{fmt.format(off):>10}{fmt.format(on):>10}{quotient:>10}"
              f"{on - off:>+10.3f}")  # fmt: skip
    calls = args.bridges
    join = [t.join_cpu for t in by["on"] if t.join_cpu == t.join_cpu]
    if join:
        per = statistics.fmean(join) / calls * 1000
        print(f"    join: the worker thread's CPU {statistics.fmean(join):.2f} s a trial of "
              f"{calls} recordings ({per:.1f} ms each); the agent's hang-up CPU on - off "
              f"{mean('on', 'tail_cpu') - mean('off', 'tail_cpu'):+.2f} s (it includes the "
              f"recorders of calls not yet hung up)")  # fmt: skip
    stereo = statistics.fmean(t.recorded_bytes for t in by["on"])
    print(f"    stereo files: {stereo / 1e6:.0f} MB a recorded trial, written by the joins "
          f"(each fsynced) during the hang-up")  # fmt: skip
    extra = cpu_on - cpu_off
    print(f"    recording {calls} calls costs {extra:+.3f} cores "
          f"({extra / calls * 1000:+.2f} millicores a call, two recorders)")  # fmt: skip
    for t in judged:
        if t.others > DISTURBED or t.steal > DISTURBED:
            verdict.note(f"trial {t.n} ({t.kind}) shared the machine: other processes used "
                         f"{t.others:.2f} cores in its window, the hypervisor "
                         f"{t.steal:.2f}")  # fmt: skip
    for t in trials:
        tag = f"trial {t.n}" if t.n else "warm-up"
        if t.problems:
            print(f"    {tag} ({t.kind}): {'; '.join(t.problems)}")
    # checks, per judged trial
    for t in judged:
        name = f"trial {t.n} ({t.kind})"
        answered_all(verdict, f"{name} bulk calls", t.codes, args.bridges - args.sampled)
        if t.heard is not None:
            judge(verdict, f"{name} while all were up", t.heard)
        want = t.up if t.kind == "on" else 0
        verdict.check(f"{name}: recordings in progress as the campaign says",
                      t.recorders == want and t.up > 0,
                      f"{t.recorders:.0f} with {t.up:.0f} calls up (want {want:.0f})")  # fmt: skip
        what = ("every call's recording completed, its file there, its length within "
                f"{LENGTH_SLACK} s of the talk time" if t.kind == "on"
                else "no recording, no file")  # fmt: skip
        verdict.check(
            f"{name}: {what}",
            not t.problems,
            "; ".join(t.problems) or f"{t.ended} call records ended, as they must",
        )
    failures = max(t.failures for t in trials)
    verdict.check("no recording failure counted (rtbridge_sip_recording_failures_total)",
                  failures == 0, f"{failures:.0f}")  # fmt: skip
    verdict.goal(
        "calls bridged at once in every trial (the agent's metric)",
        up >= args.goal_bridges,
        f"at least {up:.0f} of {args.bridges} placed (goal >= {args.goal_bridges})",
    )
    verdict.goal("agent CPU with every call up, recorded / not", ratio <= args.goal_cpu_ratio,
                 f"{cpu_on:.3f} / {cpu_off:.3f} cores = {ratio:.2f} "
                 f"(goal <= {args.goal_cpu_ratio:.2f})")  # fmt: skip
    added = p50["on"] - p50["off"]
    verdict.goal("set-up p50, recorded - not", added <= args.goal_setup_ms,
                 f"{p50['on']:.2f} - {p50['off']:.2f} = {added:+.2f} ms "
                 f"(goal <= +{args.goal_setup_ms:g} ms)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bridges", type=int, default=500, help="simultaneous calls a trial")
    parser.add_argument(
        "--trials",
        type=int,
        default=2,
        help="trials of each kind, in the order off, on, on, off, ...",
    )
    parser.add_argument(
        "--hold", type=float, default=20, help="seconds measured with every call up (the window)"
    )
    parser.add_argument("--rate", type=float, default=50, help="calls/s placing a trial's calls")
    parser.add_argument(
        "--sampled", type=int, default=4, help="calls a trial whose tone must come back"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the warm-up trial (the join thread's CPU is then unknown)",
    )
    parser.add_argument(
        "--join-timeout",
        type=float,
        default=180,
        help="seconds after the last BYE to wait for every call's end record",
    )
    parser.add_argument(
        "--agent", action="append", default=[], metavar="'KEY = VALUE'",
        help="an extra [agent] line for the agent's options (repeatable)",
    )  # fmt: skip
    goals = parser.add_argument_group("goals")
    goals.add_argument(
        "--goal-cpu-ratio",
        type=float,
        default=1.30,
        metavar="RATIO",
        help="agent CPU with every call up, recorded / not, at most",
    )
    goals.add_argument(
        "--goal-setup-ms",
        type=float,
        default=1.0,
        metavar="MS",
        help="set-up p50, recorded minus not, at most",
    )
    goals.add_argument(
        "--goal-bridges",
        type=int,
        default=500,
        metavar="N",
        help="calls bridged at once in every trial, at least",
    )
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        return refuse(BENCH, "sipp is missing: apt-get install sip-tester")
    if not 0 < args.sampled < args.bridges:
        return refuse(BENCH, f"--sampled {args.sampled} must be 1..{args.bridges - 1}")
    if args.trials < 1 or args.hold < 1:
        return refuse(BENCH, "--trials and --hold must be at least 1")
    verdict = Verdict(BENCH)
    verdict.goals_from(parser, args)
    kinds = [ABBA[i % 4] for i in range(2 * args.trials)]
    bench = RecordingBench(Path(tempfile.mkdtemp(prefix="rtbridge-recbench-")), args.agent)
    trials: list[Trial] = []
    try:
        bench.start_buyer()
        agent = bench.start_agent()
        with urllib.request.urlopen(f"http://127.0.0.1:{bench.status_port}/health") as r:
            health = r.read().decode()
        directory = bench.work / "recordings"
        print(f"rtbridge sip on SQLite, {os.cpu_count()} CPUs, ulimit -n "
              f"{_nofile(agent.pid)}; work {bench.work}; agent: {health[:300]}")  # fmt: skip
        print(f"{args.bridges} calls a trial at {args.rate:g}/s, {args.hold:g} s measured with "
              f"all up; trials {', '.join(kinds)}"
              f"{'' if args.no_warmup else ', after a recorded warm-up'}")  # fmt: skip
        print(HEADER)
        join_threads: set[int] = set()
        plan = ([] if args.no_warmup else [(0, "on")]) + list(enumerate(kinds, 1))
        for n, kind in plan:
            trial = run_trial(bench, agent, Trial(n, kind), args, directory, join_threads)
            trials.append(trial)
            print(row(trial), flush=True)
            if trial.n == 0:
                print(f"    (the warm-up started thread(s) {sorted(join_threads)}: the join "
                      f"worker)")  # fmt: skip
            if not bench.agent_alive():
                break
        if any(t.n for t in trials):
            report(verdict, trials, args)
        alive = bench.agent_alive()
        verdict.check("the agent alive at the end", alive, "alive" if alive else "died")
        log = (bench.work / "agent.log").read_text(errors="replace").strip().splitlines()
        if log:
            print(f"\n    the agent's log ({len(log)} lines at warning and above), the last:")
            for line in log[-10:]:
                print(f"      {line[:300]}")
    finally:
        bench.stop()
    return verdict.report()


def _nofile(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return "/".join(line.split()[3:5])
    return "?"


if __name__ == "__main__":
    raise SystemExit(main())
