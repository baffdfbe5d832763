"""Refusals by authentication summarised per source and interval (issue 17 row 12), driven by
an injected clock and a real logger."""

from __future__ import annotations

import logging
import threading

import pytest

from rtbridge.sip.refusal_log import RefusalLog

LOGGER = "rtbridge.test.refusals"


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Lines:
    """The summary lines written so far (caplog's list is per test phase: read it late)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __call__(self) -> list[logging.LogRecord]:
        return [r for r in self._caplog.records if r.name == LOGGER]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return Lines(caplog)


def _log(clock: Clock, **limits: int) -> RefusalLog:
    return RefusalLog(logging.getLogger(LOGGER), every=10.0, clock=clock, **limits)


def test_first_of_each_code_and_cause_per_source_is_logged_in_full(clock: Clock) -> None:
    log = _log(clock)
    assert log.note("192.0.2.1:5060", 401, "missing-credentials")
    assert log.note("192.0.2.1:5070", 403, "wrong-password", "pub1")  # another cause
    assert not log.note("192.0.2.1", 403, "wrong-password", "pub2")  # same source (port aside)
    assert not log.note("192.0.2.1", 401, "missing-credentials")
    assert log.note("192.0.2.2", 403, "wrong-password", "pub1")  # another source
    assert log.note("192.0.2.1", 403, "throttled", "pub1")
    # IPv6 by /64, like the throttle: rotating addresses inside it changes nothing.
    assert log.note("[2001:db8:0:1::1]:5060", 403, "wrong-password", "a")
    assert not log.note("2001:db8:0:1::2", 403, "wrong-password", "b")
    clock.now += 10  # a new interval: full lines again
    assert log.note("192.0.2.1", 403, "wrong-password", "pub1")


def test_a_burst_is_one_summary_line_with_the_counts(clock: Clock, lines: Lines) -> None:
    log = _log(clock, max_usernames=3)
    full = 0
    for i in range(1000):
        full += log.note("192.0.2.1", 401, "missing-credentials")
        full += log.note("192.0.2.1", 403, "wrong-password" if i < 4 else "throttled", f"u{i % 5}")
    assert full == 3
    log.flush()
    assert lines() == []  # the interval is not over
    clock.now += 10
    log.flush()
    log.flush()
    (line,) = lines()
    assert line.getMessage() == "INVITE refusals summarised"
    assert line.levelno == logging.INFO
    fields = line.__dict__
    assert fields["source"] == "192.0.2.1" and fields["seconds"] == 10.0
    assert (fields["refused"], fields["logged"]) == (2000, 3)
    assert fields["causes"] == {"401 missing-credentials": 1000, "403 throttled": 996,
                                "403 wrong-password": 4}  # fmt: skip
    # the first three usernames tried, and how many attempts named another
    assert fields["usernames"] == {"u0": 200, "u1": 200, "u2": 200}
    assert fields["other_usernames"] == 400
    assert len(log) == 0


def test_a_source_with_only_full_lines_gets_no_summary(clock: Clock, lines: Lines) -> None:
    log = _log(clock)
    log.note("192.0.2.1", 401, "missing-credentials")
    log.note("192.0.2.1", 403, "wrong-password", "pub1")
    clock.now += 11
    log.flush()
    assert lines() == []


def test_the_next_refusal_writes_summaries_that_are_due(clock: Clock, lines: Lines) -> None:
    log = _log(clock)
    for _ in range(3):
        log.note("192.0.2.1", 401, "missing-credentials")
    clock.now += 4
    for _ in range(3):
        log.note("192.0.2.2", 401, "missing-credentials")
    clock.now += 6  # the first source's interval is over, not the second's
    assert log.note("192.0.2.3", 401, "missing-credentials")
    assert [(r.source, r.refused) for r in lines()] == [("192.0.2.1", 3)]  # type: ignore[attr-defined]
    clock.now += 4
    assert log.note("192.0.2.2", 401, "missing-credentials")  # its new interval
    assert [(r.source, r.refused) for r in lines()] == [("192.0.2.1", 3), ("192.0.2.2", 3)]  # type: ignore[attr-defined]


def test_memory_is_bounded(clock: Clock, lines: Lines) -> None:
    log = _log(clock, max_sources=100, max_usernames=2)
    for i in range(5000):
        log.note(f"10.0.{i // 256}.{i % 256}", 403, "wrong-password", f"user-{i}" * 50)
        log.note(f"10.0.{i // 256}.{i % 256}", 403, "wrong-password", "x")
    assert len(log) == 100
    # An evicted source's summary is written early rather than lost.
    assert len(lines()) == 4900
    assert all(len(name) <= 64 for r in lines() for name in r.usernames)  # type: ignore[attr-defined]


def test_thread_safe_counts(clock: Clock, lines: Lines) -> None:
    log = _log(clock)
    full: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = [log.note("192.0.2.1", 403, "wrong-password", "pub1") for _ in range(2000)]
        with lock:
            full.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert full.count(True) == 1
    clock.now += 10
    log.flush()
    (line,) = lines()
    assert line.refused == 16_000 and line.usernames == {"pub1": 16_000}  # type: ignore[attr-defined]


def test_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        RefusalLog(logging.getLogger(LOGGER), every=0)
    with pytest.raises(ValueError):
        RefusalLog(logging.getLogger(LOGGER), max_sources=0)
