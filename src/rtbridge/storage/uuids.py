"""Reservation uuids that sort by creation time (RFC 9562 version 7).

A random (version 4) uuid sends every insert to a random leaf of the primary key's B-tree and
of the status history's index on it: once those outgrow the page cache, each ping reads and
dirties pages all over the file, and a ping costs more the longer the history (issue 8: a
quarter slower with 10^6 rows). Leading with the millisecond clock keeps inserts at the
right-hand edge, as with an integer key. The 62 random bits still make a uuid unguessable;
what it reveals, the creation time, the look-up answers anyway.

Within a millisecond, uuids of one process still come out in the order they were made: the
12 bits after the milliseconds hold the sub-millisecond time (RFC 9562 §6.2, method 3), and
a uuid that would not sort after the last one made here takes the next value instead — the
RTB log pages newest first by uuid, and two pings of one millisecond must not swap places.
"""

from __future__ import annotations

import os
import threading
import time

_RAND_B = (1 << 62) - 1
_lock = threading.Lock()
_last = 0  # (milliseconds << 12 | sub-millisecond fraction) of the last uuid made here
# os.urandom read 4 KiB at a time and handed out 8 bytes per uuid: one getrandom() call per
# 512 uuids instead of one each (a ping's dearest step after the database, ~0.5 us).
_POOL = 4096
_random = b""
_used = _POOL


def _forget_pool() -> None:
    """A forked worker (``serve --workers``) must not hand out its parent's bytes again."""
    global _used
    _used = _POOL


os.register_at_fork(after_in_child=_forget_pool)


def uuid7() -> str:
    """``xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx``: 48 bits of Unix milliseconds, version,
    12 bits of sub-millisecond time (monotonic within the process), variant, 62 random bits."""
    global _last, _random, _used
    ns = time.time_ns()
    stamp = (ns // 1_000_000) << 12 | (ns % 1_000_000) * 4096 // 1_000_000
    with _lock:
        if stamp <= _last:
            stamp = _last + 1  # a clock step back or the same instant: still after the last
        _last = stamp
        if _used == _POOL:
            _random, _used = os.urandom(_POOL), 0
        rand = _random[_used : _used + 8]
        _used += 8
    value = (
        (stamp >> 12) << 80
        | 0x7 << 76
        | (stamp & 0xFFF) << 64
        | 0b10 << 62
        | int.from_bytes(rand, "big") & _RAND_B
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
