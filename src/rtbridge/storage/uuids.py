"""Reservation uuids that sort by creation time (RFC 9562 version 7).

A random (version 4) uuid sends every insert to a random leaf of the primary key's B-tree and
of the status history's index on it: once those outgrow the page cache, each ping reads and
dirties pages all over the file, and a ping costs more the longer the history (issue 8: a
quarter slower with 10^6 rows). Leading with the millisecond clock keeps inserts at the
right-hand edge, as with an integer key. The 74 random bits still make a uuid unguessable;
what it reveals, the creation time, the look-up answers anyway."""

from __future__ import annotations

import os
import time

_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1


def uuid7() -> str:
    """``xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx``: 48 bits of Unix milliseconds, version,
    12 random bits, variant, 62 random bits."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (rand >> 62 & _RAND_A) << 64
        | 0b10 << 62
        | rand & _RAND_B
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
