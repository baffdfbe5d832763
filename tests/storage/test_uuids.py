"""Reservation uuids (storage/uuids.py): version 7, and in creation order within a process
even inside one millisecond (the RTB log pages newest first by uuid)."""

from __future__ import annotations

import threading
import uuid as uuidlib

from rtbridge.storage.uuids import uuid7


def test_version_variant_and_strict_order_in_a_tight_loop() -> None:
    made = [uuid7() for _ in range(20_000)]  # many per millisecond
    assert made == sorted(made) and len(set(made)) == len(made)
    parsed = uuidlib.UUID(made[0])
    assert parsed.version == 7 and parsed.variant == uuidlib.RFC_4122


def test_order_holds_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(uuid7() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [u for out in made for u in out]
    assert len(set(every)) == len(every)
    assert all(out == sorted(out) for out in made)
