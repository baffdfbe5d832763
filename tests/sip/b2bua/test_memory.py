"""When the agent gives its heap back (sip/b2bua/memory.py): once the load has stayed below
half its peak long enough for a burst's transactions to end, again while that is worth it,
never during a steady load or a load back up; and glibc's malloc_trim really returns freed
memory."""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable

import pytest

from rtbridge.sip.b2bua import memory
from rtbridge.sip.b2bua.memory import MemoryTrim, glibc_malloc_trim, rss_bytes


class Trims:
    """A MemoryTrim whose trims run at once, each giving back ``gives`` MB of a fake RSS;
    ``feed`` drives it a period (5 s) at a time at ``rate`` calls started per second."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, gives: list[int] | None = None) -> None:
        self.done = 0
        self.started = 0
        self.now = 1000.0
        self.rss = 10_000 * 2**20
        self.gives = gives or [300]
        monkeypatch.setattr(memory, "rss_bytes", lambda: self.rss)
        self.memory = MemoryTrim(self.run, trim=self.trim)

    def run(self, job: Callable[[], None]) -> None:
        job()

    def trim(self) -> int:
        self.rss -= self.gives[min(self.done, len(self.gives) - 1)] * 2**20
        self.done += 1
        return 1

    def feed(self, rate: float, seconds: float, active: int = 0) -> None:
        for _ in range(int(seconds / 5)):
            self.started += int(rate * 5)
            self.now += 5
            self.memory.tick(self.now, active, self.started)


def test_a_steady_load_is_never_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    trims = Trims(monkeypatch)
    trims.feed(50, 600)
    trims.feed(55, 600, active=400)
    assert trims.done == 0


def test_the_first_trim_waits_for_the_burst_to_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    trims = Trims(monkeypatch, gives=[300, 5])
    trims.feed(50, 60)
    trims.feed(300, 25)
    trims.feed(50, 40)  # fallen, but its transactions still hold its memory
    assert trims.done == 0
    trims.feed(50, 5)
    assert trims.done == 1  # settle (40 s) after the fall
    trims.feed(50, 40)
    assert trims.done == 2  # the first gave back 300 MB: once more
    trims.feed(50, 600)
    assert trims.done == 2  # the second gave back 5 MB: the series ends
    assert trims.memory.trims == 2
    assert trims.memory.returned == 305 * 2**20


def test_a_load_back_up_ends_the_series(monkeypatch: pytest.MonkeyPatch) -> None:
    trims = Trims(monkeypatch)
    trims.feed(300, 30)
    trims.feed(50, 45)
    assert trims.done == 1
    trims.feed(300, 120)  # the next trim is not run while the load is up
    assert trims.done == 1
    trims.feed(50, 40)
    assert trims.done == 1
    trims.feed(50, 5)
    assert trims.done == 2  # a new fall, settled


def test_calls_ending_count_as_load_falling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long calls: a few started per period, hundreds up; they end, and that is a fall."""
    trims = Trims(monkeypatch)
    trims.feed(2, 120, active=500)
    trims.feed(0, 45, active=20)
    assert trims.done == 1


def test_a_small_peak_is_not_worth_a_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    trims = Trims(monkeypatch)
    trims.feed(15, 60)  # 75 calls a period: under the floor (100)
    trims.feed(0, 120)
    assert trims.done == 0


def test_off_never_trims() -> None:
    jobs: list[Callable[[], None]] = []
    memory = MemoryTrim(jobs.append, enabled=False)
    assert not memory.enabled
    for step in range(100):
        memory.tick(step * 5.0, 0, (10_000 if step < 10 else 10_010) * step)
    assert jobs == []


def test_glibc_malloc_trim_gives_freed_memory_back(caplog: pytest.LogCaptureFixture) -> None:
    """The real call: 200 MB malloc'd by a thread (its own arena, as pjsip's on the agent
    thread) in 4 kB chunks, all but every 50th freed: the pages stay resident until the
    trim, which runs on another thread, as the agent's does on the event thread."""
    trim = glibc_malloc_trim()
    assert trim is not None, "this C library has no malloc_trim (glibc expected)"
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    kept: list[int] = []

    def churn() -> None:
        for _ in range(50_000):
            p = libc.malloc(4000)
            libc.memset(p, 1, 4000)
            kept.append(p)
        for i, p in enumerate(kept):
            if i % 50:
                libc.free(p)

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    before = rss_bytes()
    jobs: list[Callable[[], None]] = []
    trimmer = MemoryTrim(jobs.append, period=1, settle=0)
    for now, started in enumerate((0, 1000, 1010, 1020)):
        trimmer.tick(now, 0, started)
    assert len(jobs) == 1
    with caplog.at_level(logging.INFO, "rtbridge.sip.b2bua.memory"):
        runner = threading.Thread(target=jobs[0])
        runner.start()
        runner.join()
    try:
        assert trimmer.returned > 100 * 2**20, (before, trimmer.returned)
        assert any("to the OS" in r.getMessage() for r in caplog.records)
    finally:
        for i, p in enumerate(kept):
            if not i % 50:
                libc.free(p)
