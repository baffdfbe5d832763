"""Giving the heap back to the OS once load falls (``memory_trim``).

Why the agent keeps an overload's memory: pjsua keeps no pools of its own — its caching pool
retains nothing (``pj_caching_pool_init(&cp, NULL, 0)`` in pjsua_core.c: max_capacity 0), so
every transaction, dialog and call pool goes back to ``malloc`` when it is released, and
pool sizes change only the size of the blocks. glibc keeps freed chunks in the arena of the
thread that allocated them (the agent thread's, for all of pjsip) and hands memory back to
the OS only from the top of a heap: one live chunk high up pins every free page below it.
After 300 calls/s for 25 s the agent thread's arena held 512 MB from the OS with 15 MB in
use (``malloc_stats``), and RSS stayed at its high-water mark for good. ``malloc_trim(0)``
walks every arena and gives the free pages in the middle back (MADV_DONTNEED): 669 -> 207
MB (and 355 MB in 50 ms in bench/memory.py). ``MALLOC_ARENA_MAX=2`` changes nothing there
(669 MB either way): the free pages are all in one arena.

When: a trim costs about 100 ms per GB given back, holding each arena's lock while it walks
it; memory given back while the load goes on is taken again at once, page fault by page
fault. And pjsip frees a burst's calls only when their last transactions end (a BYE's lasts
32 s over UDP, Timer J): a trim as soon as the load falls finds most of it still in use, and
the frees after it fault the given-back pages in again (one run: set-up p99 after the
overload 6 -> 28 ms). So the first trim runs once the load has stayed below half its peak
for ``settle`` s, and another every ``settle`` s while the load stays down and the last trim
gave back at least ``worth`` bytes: the steady load's allocations spread over the pages of
the overload's heap and take some of them back (about 1 MB/s at 50 calls/s). Not on the
agent thread (``run``: the event thread): ctypes releases the GIL for the call, so the agent
thread waits only if it mallocs from its arena while that arena is being walked.

The load is the calls up now plus the calls started in the last ``period`` s: pjsip holds a
call's transactions up to 32 s after it ends, so short calls at a high rate hold memory as
long calls do, and a count of calls up alone (near 0 for short calls) would miss them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("rtbridge.sip.b2bua.memory")
# A trim that gives back less than this is not worth an INFO line.
_LOG_MB = 50.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def glibc_malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS)."""
    try:  # the symbols the process has loaded: no find_library (it runs ldconfig)
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: int(fn(0))


def rss_bytes() -> int:
    """This process's resident set (0 where /proc is absent)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class MemoryTrim:
    """Decides, on the agent thread, when to hand the heap back; ``run`` runs the trim.

    ``tick`` is called every poll and costs a comparison until a ``period`` has passed.
    ``floor``: a peak load below it (calls in a period) leaves too little to give back.
    """

    def __init__(
        self,
        run: Callable[[Callable[[], None]], None],
        *,
        enabled: bool = True,
        period: float = 5.0,
        settle: float = 40.0,
        floor: int = 100,
        worth: int = 32 * 2**20,
        trim: Callable[[], int] | None = None,
    ) -> None:
        self._run = run
        self._trim = (trim or glibc_malloc_trim()) if enabled else None
        self._period = period
        self._settle = settle
        self._floor = floor
        self._worth = worth
        self._next_sample = 0.0
        self._started = -1  # calls started at the last sample (-1: none yet)
        self._peak = 0  # highest load since the last series of trims
        self._due: float | None = None  # the next trim, while the load is down
        self._last_returned = worth  # what the last trim gave back (event thread writes)
        self.trims = 0  # trims handed to ``run``
        self.returned = 0  # bytes they gave back (RSS before - after)

    @property
    def enabled(self) -> bool:
        return self._trim is not None

    def tick(self, now: float, active_calls: int, started_calls: int) -> None:
        """Agent thread, once per poll: ``active_calls`` up now (pjsua call slots taken),
        ``started_calls`` since the agent started (a counter)."""
        if self._trim is None or now < self._next_sample:
            return
        self._next_sample = now + self._period
        if self._started < 0:
            self._started = started_calls
            return
        load = active_calls + started_calls - self._started
        self._started = started_calls
        self._peak = max(self._peak, load)
        if self._peak < self._floor or 2 * load >= self._peak:
            self._due = None  # not down (or never up): a series ends, or none begins
            return
        if self._due is None:
            self._due, self._last_returned = now + self._settle, self._worth
        elif now >= self._due:
            if self._last_returned < self._worth:
                self._peak, self._due = load, None  # nothing more to give back
                return
            self._due = now + self._settle
            self.trims += 1
            self._run(self._trim_now)

    def _trim_now(self) -> None:
        """Whichever thread ``run`` uses (not the agent thread)."""
        trim = self._trim
        assert trim is not None
        before, started = rss_bytes(), time.perf_counter()
        with contextlib.suppress(OSError):
            trim()
        took, after = time.perf_counter() - started, rss_bytes()
        returned = max(0, before - after)
        self.returned += returned
        self._last_returned = returned
        mb = returned / 2**20
        log.log(
            logging.INFO if mb > _LOG_MB else logging.DEBUG,
            "returned %.0f MB to the OS",
            mb,
            extra={"malloc_trim_ms": round(took * 1000, 1), "rss_mb": round(after / 2**20)},
        )
