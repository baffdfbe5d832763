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


def uuid7() -> str:
    """``xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx``: 48 bits of Unix milliseconds, version,
    12 bits of sub-millisecond time (monotonic within the process), variant, 62 random bits."""
    global _last
    ns = time.time_ns()
    stamp = (ns // 1_000_000) << 12 | (ns % 1_000_000) * 4096 // 1_000_000
    with _lock:
        if stamp <= _last:
            stamp = _last + 1  # a clock step back or the same instant: still after the last
        _last = stamp
    value = (
        (stamp >> 12) << 80
        | 0x7 << 76
        | (stamp & 0xFFF) << 64
        | 0b10 << 62
        | int.from_bytes(os.urandom(8), "big") & _RAND_B
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
