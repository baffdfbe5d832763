"""Benchmark failover (issue 19): a call whose first buyer fails goes to the next buyer.

``rtbridge sip`` runs as deployed (SQLite, default options; only addresses and the RTP range
set), the publisher authenticated by allowlist, every call claiming a real reservation made
by a ping. Three campaigns, each with a DID pool and buyers with caps out of reach:

- ``fo``: buyer ``busy`` (priority 1, SIPp ringing 200 ms then answering 486) and buyer
  ``good`` (priority 2, SIPp answering 200 and echoing RTP); failover on all four kinds;
- ``plain``: ``failover = []``, one buyer ``direct``, the same answering SIPp: the ordinary
  call with no failover;
- ``dead``: buyer ``closed`` (priority 1, a UDP port nothing listens on, ``connect_timeout``
  ``--connect-timeout``) and buyer ``rescue`` (priority 2, the answering SIPp).

Every SIPp writes its message trace (-trace_msg: a time stamp to the microsecond on each
message, the machine's clock for all of them); buyer INVITEs are matched to calls by their
X-RTB-UUID header, publisher INVITEs by their request URI (the reservation's uuid).

(a) failover gap: the busy buyer's 486 leaving its SIPp -> the INVITE reaching the next
    buyer, p50/p99 over ``--calls`` calls at ``--rate``/s (goal: <= 5 ms at p50); baseline,
    on the same calls: the agent's set-up to the first buyer, the publisher's INVITE leaving
    its SIPp -> the INVITE reaching the busy buyer. Also printed: the part of the gap spent
    inside the agent (callattempt: attempt 1's end -> attempt 2's start). ``--sampled`` calls
    carry an RTP peer's tone, which must come back through the second buyer.
(b) closed-port detection: the publisher's INVITE -> the INVITE reaching ``rescue``, minus
    the set-up to a first buyer measured in the same part on ``plain`` calls to the same
    SIPp (alternating halves); p50/p99 (goal: <= connect_timeout + 50 ms at p50).
(c) short calls with every first buyer answering 486, at each rate of ``--rates`` for
    ``--seconds`` each, stopping at the first failed call: the highest rate with zero failed
    calls; baseline: the same ladder on ``plain`` (the first buyer answering 200), in the
    same run, the two alternating (goal: failover rate >= 0.5 x no-failover rate). The gap
    is printed per rate too. A failed rate's calls answered 200 after the agent refused
    their INVITE (503) are counted: such a call is a bridge the publisher has left.

Checks: every publisher call answered 200; the busy buyer dialled once per call and sending
its 486, the next buyer dialled once; every call's attempts rows as expected (busy 486, then
good 200); the sampled calls' tone back; no bridge left after each rate passed; at the end
(waited for up to 70 s) no bridge left, every reservation terminal (a failed
rate's unclaimed ones aside), the buyer counters equal to their recount, the agent alive.
Exit 0 when every goal and check passed, 1 when one failed (the verdict block names it), 2
when nothing could be judged.

    .venv/bin/python bench/failover.py [--calls 200] [--seconds 10] [--connect-timeout 0.5]
                                       [--rates 100,150,200,250,300,350,400,450,500]
                                       [--only a,b,c]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sip import Bench, Proc, final_codes, pct, setup_times  # noqa: E402
from bench.tone_sample import ToneSample, judge  # noqa: E402
from bench.verdict import Verdict, refuse  # noqa: E402
from sqlalchemy import text  # noqa: E402

from rtbridge.admin.apply import apply_file  # noqa: E402
from rtbridge.domain.failover import FAILOVER_KINDS  # noqa: E402
from rtbridge.storage.recount import check_counters  # noqa: E402
from tests.support.net import free_port  # noqa: E402

BUSY_SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "uas_reject.xml"  # 180, 200 ms, 486
KEYS = {
    "fo": "failover-bench-key-fo-00000",
    "plain": "failover-bench-key-plain-00",
    "dead": "failover-bench-key-dead-000",
}
# what each campaign's calls must leave in callattempt: (n, buyer, final code, kind)
EXPECTED = {
    "fo": [(1, "busy", 486, "busy"), (2, "good", 200, "answered")],
    "plain": [(1, "direct", 200, "answered")],
    "dead": [(1, "closed", 408, "unreachable"), (2, "rescue", 200, "answered")],
}
CAPS = "seconds = 30\nconcurrency = 100000\ndaily_cap = 10000000\n"


def config(busy: int, good: int, closed: int, *, connect_timeout: float, max_attempts: int) -> str:
    """Three campaigns, each with a DID pool; buyers with caps; an allowlisted publisher."""

    def buyer(id: str, port: int, priority: int, extra: str = "") -> str:
        return (f'[[campaigns.buyers]]\nid = "{id}"\ndestination = "sip:{id}@127.0.0.1:{port}"\n'
                f"payout = 10.0\npriority = {priority}\n{CAPS}\n{extra}")  # fmt: skip

    def campaign(id: str, did: int, failover: str, buyers: str) -> tuple[str, str]:
        numbers = ", ".join(f'"+1800555{did}{n:02d}"' for n in range(1, 5))
        key = (f'[[keys]]\nkey = "{KEYS[id]}"\npublisher = "pub"\ncampaign = "{id}"\n'
               "ttl_seconds = 3600\n")  # fmt: skip
        return (f'[[campaigns]]\nid = "{id}"\nnumbers = [{numbers}]\nfailover = {failover}\n'
                f"max_attempts = {max_attempts}\n\n{buyers}", key)  # fmt: skip

    every = json.dumps(list(FAILOVER_KINDS))
    closed_buyer = buyer("closed", closed, 1, f"connect_timeout = {connect_timeout}\n")
    parts = [
        campaign("fo", 1, every, buyer("busy", busy, 1) + buyer("good", good, 2)),
        campaign("plain", 2, "[]", buyer("direct", good, 1)),
        campaign("dead", 3, every, closed_buyer + buyer("rescue", good, 2)),
    ]
    return (
        '[sip]\ndomain = "sip.rtb.example.com"\n\n'
        + "".join(c for c, _ in parts)
        + '[[publishers]]\nid = "pub"\nips = ["127.0.0.1/32"]\n\n'
        + "\n".join(k for _, k in parts)
    )


def closed_port() -> int:
    """A UDP port nothing listens on, below the range free_port() hands out (20000-32767,
    SIPp's and the agent's RTP ports), so that nothing binds it during the run."""
    for _ in range(200):
        port = random.randrange(10000, 20000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port below 20000")


# -- SIPp's message traces -------------------------------------------------------------------

_SEP = re.compile(r"^-{40,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n", re.M)
_CALL_ID = re.compile(r"^Call-ID:[ \t]*(\S+)", re.M | re.I)
_UUID = re.compile(r"^X-RTB-UUID:[ \t]*(\S+)", re.M | re.I)
_CSEQ = re.compile(r"^CSeq:[ \t]*\d+[ \t]+(\w+)", re.M | re.I)
_RURI_USER = re.compile(r"^INVITE sips?:([^@;>\s]+)@")


@dataclass(frozen=True)
class Msg:
    at: float  # seconds, SIPp's time stamp (the machine's wall clock, to the microsecond)
    sent: bool
    first: str  # request or status line
    call_id: str
    uuid: str  # X-RTB-UUID, else an INVITE's request-URI user (the publisher's: the uuid)
    code: int  # a response's status, 0 for a request
    method: str  # CSeq's method


def messages(trace: str) -> Iterator[Msg]:
    parts = _SEP.split(trace.replace("\r", ""))
    for stamp, block in zip(parts[1::2], parts[2::2], strict=True):
        head, _, message = block.partition("\n\n")
        headers = message.split("\n\n", 1)[0]
        first = headers.split("\n", 1)[0]
        call_id, uuid, cseq = (_CALL_ID.search(headers), _UUID.search(headers),
                               _CSEQ.search(headers))  # fmt: skip
        ruri = _RURI_USER.match(first)
        words = first.split(" ", 2)
        yield Msg(
            at=datetime.fromisoformat(stamp).timestamp(),
            sent=" sent " in head,
            first=first,
            call_id=call_id.group(1) if call_id else "",
            uuid=uuid.group(1) if uuid else ruri.group(1) if ruri else "",
            code=int(words[1]) if words[0] == "SIP/2.0" and words[1:2] and words[1].isdigit()
            else 0,
            method=cseq.group(1).upper() if cseq else "",
        )  # fmt: skip


class Trace:
    """A SIPp message file that keeps growing, read on from where it was last read (SIPp
    flushes each message as it writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[Msg]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return list(messages(data.decode(errors="replace")))


@dataclass
class BuyerView:
    """What one buyer SIPp saw of each call (by reservation uuid)."""

    invited: dict[str, float] = field(default_factory=dict)  # first INVITE received
    dialogs: dict[str, set[str]] = field(default_factory=dict)  # Call-IDs of its INVITEs
    invites: Counter[str] = field(default_factory=Counter)  # INVITEs, retransmissions too
    final: dict[str, tuple[int, float]] = field(default_factory=dict)  # first final it sent

    def once(self, uuid: str) -> bool:
        return len(self.dialogs.get(uuid, ())) == 1


def buyer_view(msgs: Iterable[Msg]) -> BuyerView:
    view = BuyerView()
    call_uuid: dict[str, str] = {}
    for m in msgs:
        if not m.sent and m.first.startswith("INVITE ") and m.uuid:
            call_uuid[m.call_id] = m.uuid
            view.invited.setdefault(m.uuid, m.at)
            view.dialogs.setdefault(m.uuid, set()).add(m.call_id)
            view.invites[m.uuid] += 1
        elif m.sent and m.code >= 200 and m.method == "INVITE":
            uuid = call_uuid.get(m.call_id)
            if uuid is not None:
                view.final.setdefault(uuid, (m.code, m.at))
    return view


def publisher_invites(msgs: Iterable[Msg]) -> dict[str, float]:
    """When each call's INVITE left the publisher, by uuid."""
    sent: dict[str, float] = {}
    for m in msgs:
        if m.sent and m.first.startswith("INVITE ") and m.uuid:
            sent.setdefault(m.uuid, m.at)
    return sent


def answered_after_refusal(msgs: Iterable[Msg]) -> int:
    """Publisher INVITEs answered 2xx after a final refusal (a 503 the publisher ACKed and
    gave up on): the agent took a retransmission of a refused INVITE for a new call."""
    refused: set[str] = set()
    both: set[str] = set()
    for m in msgs:
        if not m.sent and m.method == "INVITE" and m.code >= 300:
            refused.add(m.call_id)
        elif not m.sent and m.method == "INVITE" and 200 <= m.code < 300 and m.call_id in refused:
            both.add(m.call_id)
    return len(both)


def spread(values: list[float]) -> str:
    if not values:
        return "no value"
    return (f"p50 {pct(values, 0.5):.2f} ms, p99 {pct(values, 0.99):.2f} ms, "
            f"mean {statistics.fmean(values):.2f} ms, max {max(values):.2f} ms "
            f"({len(values)} calls)")  # fmt: skip


def between(
    later: dict[str, float], earlier: dict[str, float], uuids: Iterable[str]
) -> list[float]:
    """``later - earlier`` in ms for each uuid in both."""
    return [(later[u] - earlier[u]) * 1000 for u in uuids if u in later and u in earlier]


# -- the bench ---------------------------------------------------------------------------------


class FailoverBench(Bench):
    """bench/sip.py's agent and publisher, with the three campaigns and two buyer SIPps."""

    def __init__(self, work: Path, *, connect_timeout: float, max_attempts: int,
                 agent_options: list[str]) -> None:  # fmt: skip
        self.busy_port = free_port("127.0.0.1")
        self.closed_port = closed_port()
        self.connect_timeout = connect_timeout
        self.max_attempts = max_attempts
        self.busy: subprocess.Popen[bytes] | None = None
        super().__init__(work, agent_options)  # the answering buyer is bench/sip.py's buyer
        self.busy_trace = Trace(work / "busy.msg")
        self.good_trace = Trace(work / "good.msg")
        self.made: dict[str, list[str]] = {kind: [] for kind in KEYS}

    def configure(self) -> None:
        path = self.work / "failover.toml"
        path.write_text(config(self.busy_port, self.buyer_port, self.closed_port,
                               connect_timeout=self.connect_timeout,
                               max_attempts=self.max_attempts))  # fmt: skip
        apply_file(self.engine, path)

    def start_buyers(self) -> None:
        """The busy buyer (tests' uas_reject.xml) and the answering one, both tracing."""
        common = ["-i", "127.0.0.1", "-nostdin", "-max_recv_loops", "1000", "-l", "100000",
                  "-trace_msg"]  # fmt: skip
        self.busy = subprocess.Popen(
            ["sipp", "-sf", str(BUSY_SCENARIO), "-p", str(self.busy_port), *common,
             "-message_file", str(self.busy_trace.path), "-mp", str(free_port("127.0.0.1"))],
            cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.buyer = subprocess.Popen(
            ["sipp", "-sn", "uas", "-p", str(self.buyer_port), *common,
             "-message_file", str(self.good_trace.path), "-mp", str(free_port("127.0.0.1")),
             "-rtp_echo"],
            cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)

    def buyers_alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.busy, self.buyer))

    def batch(self, kind: str, n: int) -> tuple[Path, list[str]]:
        """``n`` reservations on campaign ``kind`` as SIPp's CSV, and their uuids."""
        path = self.reservations(n, KEYS[kind])
        uuids = [line.split(";", 1)[0] for line in path.read_text().splitlines()[1:]]
        self.made[kind] += uuids
        return path, uuids

    def place(self, kind: str, n: int, rate: float) -> tuple[list[str], dict[int, int], Path]:
        """``n`` calls on new reservations of ``kind``, waited for: their uuids, the final
        answers the publisher got, its trace."""
        csv, uuids = self.batch(kind, n)
        _, msg = self.calls(n, rate=rate, inf=csv)
        return uuids, final_codes(msg), msg

    def views(self) -> tuple[BuyerView, BuyerView]:
        """What the busy and the answering buyer saw since the last look."""
        time.sleep(0.5)  # the last calls' ACKs and BYEs
        return buyer_view(self.busy_trace.read()), buyer_view(self.good_trace.read())

    def attempts(self, uuids: list[str], kind: str, timeout: float = 15) -> tuple[int, str]:
        """How many of ``uuids`` have exactly the attempts rows ``kind``'s calls must have
        (the last row is written when the call's end is: waited for), and an example of one
        that has not."""
        want = EXPECTED[kind]
        deadline = time.monotonic() + timeout
        while True:
            rows: dict[str, list[tuple[int, str, int | None, str]]] = {}
            with self.engine.connect() as conn:
                for u, n, buyer, code, what in conn.execute(text(
                        "SELECT reservation_uuid, n, buyer_id, final_code, kind FROM callattempt "
                        "ORDER BY reservation_uuid, n")):  # fmt: skip
                    rows.setdefault(u, []).append((n, buyer, code, what))
            wrong = [u for u in uuids if rows.get(u) != want]
            if not wrong or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        example = f"; e.g. {wrong[0][:8]}: {rows.get(wrong[0])}" if wrong else ""
        return len(uuids) - len(wrong), example

    def agent_gaps(self, uuids: list[str]) -> list[float]:
        """The agent's own view of the gap, from callattempt: attempt 1's end (the 486 seen)
        -> attempt 2's start (about to dial), in ms: what the gap spends inside the agent."""
        wanted = set(uuids)
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT a.reservation_uuid, a.ended_at, b.started_at FROM callattempt a "
                "JOIN callattempt b ON b.reservation_uuid = a.reservation_uuid AND b.n = 2 "
                "WHERE a.n = 1")).all()  # fmt: skip
        return [
            (datetime.fromisoformat(str(started)) - datetime.fromisoformat(str(ended)))
            .total_seconds() * 1000
            for u, ended, started in rows if u in wanted and ended and started
        ]  # fmt: skip

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/metrics", timeout=5) as r:
            body: bytes = r.read()
        return body.decode()

    def bridges(self, within: float = 0.0) -> float:
        """Bridges alive in the agent (every phase), once 0 or after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            alive = sum(float(v) for v in re.findall(r"^rtbridge_sip_bridges\{[^}]*\} (\S+)$",
                                                     self.metrics(), re.M))  # fmt: skip
            if alive == 0 or time.monotonic() >= deadline:
                return alive
            time.sleep(0.5)

    def stop(self) -> None:
        if self.busy is not None and self.busy.poll() is None:
            self.busy.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.busy.wait(timeout=10)
        super().stop()


def attempts_check(fb: FailoverBench, verdict: Verdict, label: str, kind: str,
                   uuids: list[str]) -> None:  # fmt: skip
    good, example = fb.attempts(uuids, kind)
    want = ", ".join(f"n={n} {b} {c} {k}" for n, b, c, k in EXPECTED[kind])
    verdict.check(f"{label}: every call's attempts rows are {want}",
                  bool(uuids) and good == len(uuids),
                  f"{good} of {len(uuids)} as expected{example}")  # fmt: skip


def answered_check(verdict: Verdict, label: str, codes: dict[int, int], n: int) -> bool:
    others = {c: k for c, k in sorted(codes.items()) if c != 200}
    return verdict.check(f"{label}: every publisher call answered 200", codes.get(200, 0) == n,
                         f"{codes.get(200, 0)} of {n} answered 200, others {others}")  # fmt: skip


def dialled_check(verdict: Verdict, label: str, uuids: list[str], busy: BuyerView,
                  good: BuyerView) -> None:  # fmt: skip
    """The busy buyer dialled once per call and sending 486; the next buyer dialled once."""
    refused = sum(1 for u in uuids if busy.once(u) and busy.final.get(u, (0,))[0] == 486)
    again = sum(busy.invites[u] - 1 for u in uuids if busy.invites[u] > 1)
    verdict.check(f"{label}: the first buyer got one INVITE per call and sent its 486",
                  refused == len(uuids),
                  f"{refused} of {len(uuids)}; {again} INVITE retransmissions "
                  "to it")  # fmt: skip
    second = sum(1 for u in uuids if good.once(u))
    verdict.check(f"{label}: the next buyer got one INVITE per call", second == len(uuids),
                  f"{second} of {len(uuids)}")  # fmt: skip


# -- the three measurements --------------------------------------------------------------------


def bench_gap(fb: FailoverBench, verdict: Verdict, calls: int, rate: float, sampled: int,
              goal_ms: float) -> None:  # fmt: skip
    print(f"\n(a) failover gap: {calls} calls at {rate:g}/s, every first buyer answering 486; "
          f"{sampled} more with an RTP peer's tone")  # fmt: skip
    fb.views()  # forget what the buyers saw before
    hold_ms = int((calls / rate + 4) * 1000)
    tones = fb.reserve(sampled, KEYS["fo"])
    fb.made["fo"] += [u for u, _ in tones]
    sample = ToneSample(fb.work, f"127.0.0.1:{fb.agent_port}", [u for u, _ in tones], hold_ms)
    uuids, codes, msg = fb.place("fo", calls, rate)
    heard = sample.finish()
    busy, good = fb.views()
    sent = publisher_invites(messages(msg.read_text(errors="replace")))
    setup = between(busy.invited, sent, uuids)
    refused_at = {u: at for u, (code, at) in busy.final.items() if code == 486}
    gap = between(good.invited, refused_at, uuids)
    print(f"    set-up to the first buyer (publisher's INVITE -> INVITE at the busy buyer): "
          f"{spread(setup)}")  # fmt: skip
    print(f"    failover gap (486 leaving the busy buyer -> INVITE at the next buyer):      "
          f"{spread(gap)}")  # fmt: skip
    print(f"    of which inside the agent (attempt 1 ended -> attempt 2 started):           "
          f"{spread(fb.agent_gaps(uuids))}")  # fmt: skip
    answered_check(verdict, "(a) failover calls", codes, calls)
    dialled_check(verdict, "(a) failover calls", uuids, busy, good)
    attempts_check(verdict=verdict, fb=fb, label="(a) failover calls and sampled calls",
                   kind="fo", uuids=uuids + [u for u, _ in tones])  # fmt: skip
    judge(verdict, "(a) audio through the second buyer", heard)
    if not gap or not setup:
        verdict.goal("(a) failover gap at p50", False, "no call failed over")
        return
    p50, base = pct(gap, 0.5), pct(setup, 0.5)
    print(f"    gap / set-up to a first buyer at p50: {p50:.2f} / {base:.2f} ms = "
          f"{p50 / base:.2f} (goal: gap <= {goal_ms:g} ms)")  # fmt: skip
    verdict.goal("(a) failover gap at p50", p50 <= goal_ms,
                 f"{p50:.2f} ms, p99 {pct(gap, 0.99):.2f} ms; set-up to a first buyer "
                 f"{base:.2f} ms at p50 (goal <= {goal_ms:g} ms)")  # fmt: skip


def bench_detect(fb: FailoverBench, verdict: Verdict, calls: int, rate: float,
                 connect_timeout: float, goal_slack_ms: float) -> None:  # fmt: skip
    print(f"\n(b) closed port: {calls} calls at {rate:g}/s whose first buyer is a closed UDP "
          f"port (connect_timeout {connect_timeout:g} s), then one answering; baseline: "
          f"{calls} calls to the answering buyer first")  # fmt: skip
    fb.views()
    totals: dict[str, list[float]] = {"plain": [], "dead": []}
    uuids: dict[str, list[str]] = {"plain": [], "dead": []}
    codes: dict[str, Counter[int]] = {"plain": Counter(), "dead": Counter()}
    once = 0
    halves = (calls - calls // 2, calls // 2)
    for kind, n in (("plain", halves[0]), ("dead", halves[0]), ("dead", halves[1]),
                    ("plain", halves[1])):  # fmt: skip
        placed, answers, msg = fb.place(kind, n, rate)
        _, good = fb.views()
        sent = publisher_invites(messages(msg.read_text(errors="replace")))
        totals[kind] += between(good.invited, sent, placed)
        uuids[kind] += placed
        codes[kind].update(answers)
        once += sum(1 for u in placed if good.once(u))
    base = totals["plain"]
    print(f"    set-up to a first buyer (publisher's INVITE -> INVITE at it): {spread(base)}")
    print(f"    publisher's INVITE -> INVITE at the buyer after the closed one: "
          f"{spread(totals['dead'])}")  # fmt: skip
    answered_check(verdict, "(b) closed port first", dict(codes["dead"]), calls)
    answered_check(verdict, "(b) baseline (no failover)", dict(codes["plain"]), calls)
    verdict.check("(b) the answering buyer got one INVITE per call", once == 2 * calls,
                  f"{once} of {2 * calls}")  # fmt: skip
    attempts_check(fb, verdict, "(b) closed port first", "dead", uuids["dead"])
    attempts_check(fb, verdict, "(b) baseline (no failover)", "plain", uuids["plain"])
    goal = connect_timeout * 1000 + goal_slack_ms
    if not base or not totals["dead"]:
        verdict.goal("(b) closed port detected and the next buyer dialled, at p50", False,
                     "no call measured")  # fmt: skip
        return
    detect = [t - pct(base, 0.5) for t in totals["dead"]]
    p50, p99 = pct(detect, 0.5), pct(detect, 0.99)
    print(f"    minus the set-up to a first buyer (p50): {spread(detect)}; beyond the connect "
          f"timeout at p50 {p50 - connect_timeout * 1000:+.1f} ms (goal <= {goal:g} ms)")  # fmt: skip
    verdict.goal("(b) closed port detected and the next buyer dialled, at p50", p50 <= goal,
                 f"{p50:.1f} ms, p99 {p99:.1f} ms (goal <= connect_timeout "
                 f"{connect_timeout * 1000:g} + {goal_slack_ms:g} ms)")  # fmt: skip


@dataclass
class Ladder:
    kind: str
    best: float = 0.0
    stopped: bool = False
    passed: list[str] = field(default_factory=list)  # uuids of the calls of the rates passed
    dialled_ok: int = 0  # of those, calls the busy buyer refused once and the next got once
    left: list[float] = field(default_factory=list)  # bridges alive after each rate passed
    first_rate: bool | None = None  # the ladder's first rate: every call answered 200


def bench_rate(fb: FailoverBench, verdict: Verdict, agent: Proc, rates: list[float],
               seconds: int, goal_ratio: float) -> tuple[list[str], int]:  # fmt: skip
    """(c); returns the uuids of the calls of the rates failed (some may be unclaimed) and
    how many of them were answered 200 after a refusal."""
    print(f"\n(c) short calls for {seconds} s at each rate, failover (every first buyer "
          "answering 486) and no failover (the first buyer answering 200) alternating; each "
          "stops at its first failed call")  # fmt: skip
    ladders = {kind: Ladder(kind) for kind in ("fo", "plain")}
    failed: list[str] = []
    late_total = 0
    fb.views()
    for i, rate in enumerate(rates):
        for kind in ("fo", "plain") if i % 2 == 0 else ("plain", "fo"):
            ladder = ladders[kind]
            if ladder.stopped:
                continue
            n = int(rate * seconds)
            csv, uuids = fb.batch(kind, n)
            before = fb.bridges()  # a failed rate's bridges may still be up
            proc, msg = fb.calls(n, rate=rate, inf=csv, wait=False)
            started, cpu0 = time.monotonic(), agent.cpu()
            proc.wait()
            elapsed = time.monotonic() - started
            cpu = (agent.cpu() - cpu0) / elapsed
            codes = final_codes(msg)  # the last final answer of each call
            late = answered_after_refusal(messages(msg.read_text(errors="replace")))
            late_total += late
            answered = codes.get(200, 0) - late
            setup = setup_times(msg) or [float("nan")]
            busy, good = fb.views()
            line = (f"    {'failover' if kind == 'fo' else 'no failover':<12}{rate:>5.0f}/s: "
                    f"{answered} answered, {n - answered} failed "
                    f"{ {c: k for c, k in sorted(codes.items()) if c != 200} }, "
                    f"{answered / elapsed:.0f}/s achieved, set-up p50 {pct(setup, 0.5):.1f} ms "
                    f"p99 {pct(setup, 0.99):.1f} ms, agent CPU {cpu:.0%}")  # fmt: skip
            if kind == "fo":
                refused_at = {u: at for u, (code, at) in busy.final.items() if code == 486}
                gap = between(good.invited, refused_at, uuids) or [float("nan")]
                inside = fb.agent_gaps(uuids) or [float("nan")]
                line += (f", gap p50 {pct(gap, 0.5):.1f} ms p99 {pct(gap, 0.99):.1f} ms (in "
                         f"the agent {pct(inside, 0.5):.1f}, {pct(inside, 0.99):.1f})")  # fmt: skip
            print(line, flush=True)
            ok = answered == n and fb.agent_alive() and fb.buyers_alive()
            if ladder.first_rate is None:
                ladder.first_rate = ok
            if not ok:
                ladder.stopped = True
                failed += uuids
                print(f"    {'':<12}failed: {late} calls answered 200 after their INVITE was "
                      f"refused (503) are counted failed; {fb.bridges():.0f} bridges alive "
                      "after it")  # fmt: skip
                continue
            ladder.left.append(max(0.0, fb.bridges(within=10) - before))
            ladder.best = rate
            ladder.passed += uuids
            if kind == "fo":
                ladder.dialled_ok += sum(
                    1 for u in uuids
                    if busy.once(u) and busy.final.get(u, (0,))[0] == 486 and good.once(u)
                )  # fmt: skip
        if all(ladder.stopped for ladder in ladders.values()):
            break
    fo, plain = ladders["fo"], ladders["plain"]
    verdict.check("(c) no INVITE answered 200 after the agent refused it (every rate, failed "
                  "ones too)", late_total == 0,
                  f"{late_total} calls: the publisher got 503 and ACKed it, then 100, 180 and "
                  "200 to a retransmission of its INVITE; the agent bridged them to the buyer")  # fmt: skip
    for ladder in (fo, plain):
        name = "failover" if ladder.kind == "fo" else "no failover"
        verdict.check(f"(c) {name}: every call answered 200 at the ladder's first rate",
                      bool(ladder.first_rate),
                      f"first rate {rates[0]:g}/s {'passed' if ladder.first_rate else 'failed'}")  # fmt: skip
    for ladder in (fo, plain):
        name = "failover" if ladder.kind == "fo" else "no failover"
        verdict.check(f"(c) {name}, rates passed: no bridge left after each",
                      not any(ladder.left),
                      "bridges alive after each (waited up to 10 s) beyond those alive before "
                      f"it: {[int(n) for n in ladder.left]}")  # fmt: skip
    verdict.check("(c) failover, rates passed: the busy buyer got one INVITE per call and "
                  "sent its 486, the next buyer one", fo.dialled_ok == len(fo.passed),
                  f"{fo.dialled_ok} of {len(fo.passed)}")  # fmt: skip
    if fo.passed:
        attempts_check(fb, verdict, "(c) failover, rates passed", "fo", fo.passed)
    if plain.passed:
        attempts_check(fb, verdict, "(c) no failover, rates passed", "plain", plain.passed)
    top = " (the ladder's top: it may go higher)" if plain.best == rates[-1] else ""
    print(f"    highest rate with zero failed calls: failover {fo.best:.0f}/s, no failover "
          f"{plain.best:.0f}/s{top}")  # fmt: skip
    if plain.best <= 0:
        verdict.goal("(c) failover rate / no-failover rate", False,
                     "the no-failover ladder failed at its first rate")  # fmt: skip
        return failed, late_total
    ratio = fo.best / plain.best
    # No failover passing the ladder's top: its rate is that or more, the ratio this or less;
    # a ratio that would pass is not proven then.
    unproven = bool(top) and ratio >= goal_ratio
    print(f"    failover / no failover: {ratio:.2f}{' or less' if top else ''} "
          f"(goal >= {goal_ratio:g}){': not proven, give --rates past the top' if unproven else ''}")  # fmt: skip
    verdict.goal("(c) failover rate / no-failover rate", ratio >= goal_ratio and not unproven,
                 f"{fo.best:.0f} / {plain.best:.0f} calls/s = {ratio:.2f}{top} "
                 f"(goal >= {goal_ratio:g})"
                 + ("; not proven: no failover passed the ladder's top, give --rates past it"
                    if unproven else ""))  # fmt: skip
    return failed, late_total


def final_checks(fb: FailoverBench, verdict: Verdict, failed: list[str], late: int) -> None:
    """No bridge left, every reservation terminal (those of a failed rate that no call
    claimed aside: they expire), the counters equal to their recount."""
    print("\nafter the calls", flush=True)
    # up to 70 s: the agent ends a call whose 200 the publisher never ACKed after 64 s
    alive = fb.bridges(within=70)
    time.sleep(1)  # the last ends written
    with fb.engine.connect() as conn:
        in_call = conn.execute(text(
            "SELECT count(*) FROM reservation WHERE status IN ('claimed', 'connected')")).scalar_one()  # fmt: skip
    stray = re.search(r"^rtbridge_sip_stray_calls(?:_total)? (\S+)$", fb.metrics(), re.M)
    verdict.check("no bridge left (the agent's rtbridge_sip_bridges, waited up to 70 s)",
                  alive == 0,
                  f"{alive:.0f} alive; stray calls {stray.group(1) if stray else '?'}; "
                  f"{late} calls answered 200 after their INVITE was "
                  "refused")  # fmt: skip
    with fb.engine.connect() as conn:
        statuses: dict[str, int] = dict(conn.execute(text(
            "SELECT status, count(*) FROM reservation GROUP BY status")).all())  # fmt: skip
        unclaimed = {u for (u,) in conn.execute(text(
            "SELECT uuid FROM reservation WHERE status IN ('reserved', 'confirmed')"))}  # fmt: skip
    made = sum(len(v) for v in fb.made.values())
    unused = unclaimed & set(failed)
    live = in_call + len(unclaimed - unused)
    print(f"    reservations by status: {dict(sorted(statuses.items()))} ({made} made); "
          f"{len(unused)} of a failed rate never claimed")  # fmt: skip
    verdict.check("every reservation terminal (a failed rate's unclaimed ones aside)", live == 0,
                  f"{in_call} in a call, {len(unclaimed - unused)} unclaimed of calls placed; "
                  f"{dict(sorted(statuses.items()))}")  # fmt: skip
    report = check_counters(fb.engine)
    verdict.check("every buyer counter equals its recount", not report.differences,
                  f"{len(report.differences)} differ {list(report.differences)[:3]}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="(a) calls failed over")
    parser.add_argument("--rate", type=float, default=20, help="(a) calls per second")
    parser.add_argument("--sampled", type=int, default=2, help="(a) calls with a tone")
    parser.add_argument("--detect-calls", type=int, default=50,
                        help="(b) calls with a closed port first, and as many baseline calls")  # fmt: skip
    parser.add_argument("--detect-rate", type=float, default=10, help="(b) calls per second")
    parser.add_argument("--connect-timeout", type=float, default=0.5, metavar="SECONDS",
                        help="(b) the closed-port buyer's connect_timeout")  # fmt: skip
    parser.add_argument(
        "--rates", default="100,150,200,250,300,350,400,450,500", help="(c) calls/s ladder"
    )
    parser.add_argument("--seconds", type=int, default=10, help="(c) length of each trial")
    parser.add_argument("--max-attempts", type=int, default=3, help="campaigns' max_attempts")
    parser.add_argument("--only", default="a,b,c", help="which measurements to run")
    parser.add_argument("--agent", action="append", default=[], metavar="'KEY = VALUE'",
                        help="an extra [agent] line for the agent's options (repeatable)")  # fmt: skip
    goals = parser.add_argument_group("goals")
    goals.add_argument("--goal-gap-ms", type=float, default=5.0, metavar="MS",
                       help="(a) 486 at the first buyer -> INVITE at the next, p50, at most")  # fmt: skip
    goals.add_argument("--goal-detect-slack-ms", type=float, default=50.0, metavar="MS",
                       help="(b) closed port detected within connect_timeout + this, p50")  # fmt: skip
    goals.add_argument("--goal-rate-ratio", type=float, default=0.5, metavar="SHARE",
                       help="(c) failover rate / no-failover rate, at least")  # fmt: skip
    args = parser.parse_args()
    bench = "bench/failover.py"
    if shutil.which("sipp") is None:
        return refuse(bench, "sipp is missing: apt-get install sip-tester")
    only = set(args.only.split(","))
    if "a" in only and not (args.calls > 0 and args.sampled > 0):
        return refuse(bench, "--calls and --sampled must be at least 1")
    if "b" in only and not (args.detect_calls >= 2 and 0 < args.connect_timeout < 10):
        return refuse(bench, "--detect-calls must be >= 2, --connect-timeout in (0, 10) s")
    if args.max_attempts < 2:
        return refuse(bench, "--max-attempts must be >= 2: the next buyer is the point")
    rates = [float(r) for r in args.rates.split(",")]
    verdict = Verdict(bench)
    verdict.goals_from(parser, args)
    fb = FailoverBench(Path(tempfile.mkdtemp(prefix="rtbridge-failoverbench-")),
                       connect_timeout=args.connect_timeout, max_attempts=args.max_attempts,
                       agent_options=args.agent)  # fmt: skip
    failed: list[str] = []
    late = 0
    try:
        fb.start_buyers()
        agent = fb.start_agent()
        build = urllib.request.urlopen(f"http://127.0.0.1:{fb.status_port}/health").read()
        print(f"rtbridge sip on SQLite, {fb.work}, {len(rates)} rates; agent: "
              f"{build.decode()[:300]}")  # fmt: skip
        if "a" in only:
            bench_gap(fb, verdict, args.calls, args.rate, args.sampled, args.goal_gap_ms)
        if "b" in only and fb.agent_alive():
            bench_detect(fb, verdict, args.detect_calls, args.detect_rate, args.connect_timeout,
                         args.goal_detect_slack_ms)  # fmt: skip
        if "c" in only and fb.agent_alive():
            failed, late = bench_rate(fb, verdict, agent, rates, args.seconds,
                                      args.goal_rate_ratio)  # fmt: skip
        if fb.agent_alive():
            final_checks(fb, verdict, failed, late)
        alive = fb.agent_alive()
        verdict.check("the agent alive at the end", alive, "alive" if alive else "died")
    finally:
        fb.stop()
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
