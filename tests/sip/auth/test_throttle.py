"""Per-source failure throttle, driven by an injected clock."""

from __future__ import annotations

import pytest

from rtbridge.sip.auth.throttle import FailureThrottle, source_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock, **limits: int) -> FailureThrottle:
    return FailureThrottle(
        max_failures=limits.get("max_failures", 3),
        window=60.0,
        cooldown=30.0,
        max_sources=limits.get("max_sources", 1000),
        clock=clock,
    )


def test_blocks_after_n_failures_in_window_then_recovers() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    assert not throttle.record_failure("a")
    clock.now += 10
    assert not throttle.record_failure("a")
    assert not throttle.blocked("a")
    clock.now += 10
    assert throttle.record_failure("a")
    assert throttle.blocked("a")
    assert not throttle.blocked("b")  # per source
    clock.now += 29.9
    assert throttle.blocked("a")
    assert throttle.record_failure("a")  # failing while blocked does not extend or recount
    clock.now += 0.1
    assert not throttle.blocked("a")
    # After the cooldown the count starts from zero.
    assert not throttle.record_failure("a")
    assert not throttle.record_failure("a")
    assert throttle.record_failure("a")


def test_failures_spread_beyond_the_window_do_not_block() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(20):
        assert not throttle.record_failure("a")
        clock.now += 31  # at most two failures inside any 60 s
    assert not throttle.blocked("a")


def test_success_forgets_failures() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    throttle.record_failure("a")
    throttle.record_failure("a")
    throttle.record_success("a")
    assert len(throttle) == 0
    assert not throttle.record_failure("a")
    throttle.record_success("never-failed")


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_sources=100)
    for i in range(10_000):
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100


def test_most_recently_failing_sources_are_kept() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_sources=2, max_failures=2)
    throttle.record_failure("old")
    throttle.record_failure("kept")
    throttle.record_failure("kept")  # blocked, and now the most recent
    throttle.record_failure("new")  # evicts "old"
    assert throttle.blocked("kept")
    assert len(throttle) == 2


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:5060", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2:ffff::9]:5060", "2001:db8:1:2::/64"),
        ("garbage", "?garbage"),
        ("g" * 500, "?" + "g" * 64),
    ],
)
def test_source_key(source: str, key: str) -> None:
    assert source_key(source) == key


def test_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        FailureThrottle(max_failures=0)
    with pytest.raises(ValueError):
        FailureThrottle(window=0)
