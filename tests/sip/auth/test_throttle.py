"""Failure throttles — one table (FailureThrottle) and the per source / username / login
combination the authenticator uses (LoginThrottle) — driven by an injected clock."""

from __future__ import annotations

import pytest

from rtbridge.sip.auth.throttle import FailureThrottle, Limit, LoginThrottle, source_key


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
    with pytest.raises(ValueError):
        LoginThrottle(source_max_failures=0)
    with pytest.raises(ValueError):
        LoginThrottle(known_for=-1)


# --- LoginThrottle: 3 per (source, username), 6 per source, 6 per username -----------------


def _logins(clock: Clock, max_entries: int = 1000) -> LoginThrottle:
    return LoginThrottle(max_failures=3, source_max_failures=6, username_max_failures=6,
                         window=60.0, cooldown=30.0, known_for=3600.0, max_entries=max_entries,
                         clock=clock)  # fmt: skip


def _fail(throttle: LoginThrottle, source: str, username: str, times: int) -> list[Limit | None]:
    return [throttle.record_failure(source, username) for _ in range(times)]


def test_success_clears_only_its_own_login() -> None:
    """Issue 17 row 2: another username's success from the same source, or this username's
    from another source, does not reset anything."""
    clock = Clock()
    throttle = _logins(clock)
    assert _fail(throttle, "s", "pub1", 2) == [None, None]
    throttle.record_success("s", "pub2")
    throttle.record_success("t", "pub1")
    assert throttle.record_failure("s", "pub1") is Limit.LOGIN
    assert throttle.blocked("s", "pub1") is Limit.LOGIN
    assert throttle.blocked("s", "pub2") is None
    assert throttle.blocked("t", "pub1") is None
    throttle.record_success("s", "pub1")  # a block runs its cooldown
    assert throttle.blocked("s", "pub1") is Limit.LOGIN
    clock.now += 30
    assert throttle.blocked("s", "pub1") is None
    # Its own success does clear it: two more failures do not block.
    throttle.record_success("s", "pub1")
    assert _fail(throttle, "s", "pub1", 2) == [None, None]


def test_source_limit_counts_every_username_and_ignores_successes() -> None:
    clock = Clock()
    throttle = _logins(clock)
    results = []
    for name in ("a", "b", "c"):
        results += _fail(throttle, "s", name, 2)
        throttle.record_success("s", "pub2")
        throttle.record_success("s", name)
    assert results == [None] * 5 + [Limit.SOURCE]
    assert throttle.source_blocked("s")
    assert throttle.blocked("s", "anyone") is Limit.SOURCE
    assert not throttle.source_blocked("t")
    clock.now += 30
    assert not throttle.source_blocked("s")


def test_username_limit_spares_sources_known_for_it() -> None:
    clock = Clock()
    throttle = _logins(clock)
    throttle.record_success("home", "pub1")
    results = []
    for source in ("a", "b", "c"):
        results += _fail(throttle, source, "pub1", 2)
    assert results == [None] * 5 + [Limit.USERNAME]
    assert throttle.blocked("d", "pub1") is Limit.USERNAME
    assert throttle.blocked("home", "pub1") is None  # known
    assert throttle.blocked("d", "pub2") is None
    # A known source failing is not told "username" either: its own login limit applies.
    assert throttle.record_failure("home", "pub1") is None
    # Known lasts known_for after the last success.
    clock.now += 3600
    assert not throttle.known("home", "pub1")
    for source in ("e", "f", "g"):
        _fail(throttle, source, "pub1", 2)
    assert throttle.blocked("home", "pub1") is Limit.USERNAME


def test_the_widest_limit_is_named_when_several_are_reached() -> None:
    clock = Clock()
    throttle = _logins(clock)
    _fail(throttle, "s", "a", 3)
    _fail(throttle, "s", "b", 2)
    assert _fail(throttle, "s", "b", 1) == [Limit.SOURCE]  # b's third and the source's sixth


def test_login_throttle_memory_is_bounded_and_failures_cannot_evict_known_sources() -> None:
    clock = Clock()
    throttle = _logins(clock, max_entries=50)
    throttle.record_success("home", "pub1")
    for i in range(2000):
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}", f"user{i}")
    assert all(len(table) <= 50 for table in (
        throttle._logins, throttle._sources, throttle._usernames))  # fmt: skip
    assert throttle.known("home", "pub1")
    for i in range(2000):
        throttle.record_success(f"10.1.{i // 256}.{i % 256}", "pub1")
    assert len(throttle._known) == 50


def test_usernames_are_keys_up_to_a_bound() -> None:
    clock = Clock()
    throttle = _logins(clock)
    long = "u" * 10_000
    assert _fail(throttle, "s", long, 3)[-1] is Limit.LOGIN
    assert throttle.blocked("s", long + "x") is Limit.LOGIN  # same first 128 characters
    assert all(len(key[1]) <= 128 for key in throttle._logins._keys)  # type: ignore[index]
