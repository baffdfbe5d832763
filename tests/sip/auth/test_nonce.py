"""Signed stateless nonces and the nonce-count replay tracker."""

from __future__ import annotations

import re

import pytest

from rtbridge.sip.auth.nonce import NonceCheck, NonceCounter, NonceSigner, NonceState

SECRET = b"0123456789abcdef-shared-secret"
SOURCE = "198.51.100.20"  # a throttle.source_key


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _signer(clock: Clock, *, secret: bytes = SECRET, realm: str = "sip.example.com") -> NonceSigner:
    return NonceSigner(secret, realm=realm, ttl=300.0, clock=clock)


def test_fresh_nonce_checks_and_is_quoted_string_safe() -> None:
    clock = Clock()
    signer = _signer(clock)
    nonce = signer.issue(source=SOURCE)
    assert re.fullmatch(r"[0-9A-Za-z._-]+", nonce)
    assert len(nonce) < 64
    assert signer.check(nonce, source=SOURCE) == NonceCheck(NonceState.FRESH, 1_700_000_300.0)


def test_nonces_are_unique() -> None:
    signer = _signer(Clock())
    assert len({signer.issue(source=SOURCE) for _ in range(1000)}) == 1000


def test_nonce_goes_stale_at_ttl() -> None:
    clock = Clock()
    signer = _signer(clock)
    nonce = signer.issue(source=SOURCE)
    clock.now += 299.5
    assert signer.check(nonce, source=SOURCE).state is NonceState.FRESH
    clock.now += 0.5
    assert signer.check(nonce, source=SOURCE).state is NonceState.STALE
    clock.now += 10_000
    assert signer.check(nonce, source=SOURCE).state is NonceState.STALE


def test_nonce_is_bound_to_its_source() -> None:
    """SPEC §4.6: a nonce fetched from one source is worthless from another — even to the
    process that issued it — and forging the binding needs the secret."""
    clock = Clock()
    signer = _signer(clock)
    nonce = signer.issue(source=SOURCE)
    for other in ("198.51.100.21", "2001:db8:1:2::/64", "", SOURCE + " ", "198.51.100.2"):
        assert signer.check(nonce, source=other) == NonceCheck(NonceState.INVALID, 0.0), other
    assert signer.check(nonce, source=SOURCE).state is NonceState.FRESH
    assert _signer(clock).check(nonce, source=SOURCE).state is NonceState.FRESH  # shared secret


def test_other_process_with_same_secret_accepts_it() -> None:
    clock = Clock()
    nonce = _signer(clock).issue(source=SOURCE)
    assert _signer(clock).check(nonce, source=SOURCE).state is NonceState.FRESH


@pytest.mark.parametrize(
    ("secret", "realm"),
    [(b"another-secret-of-enough-length", "sip.example.com"), (SECRET, "other.example.com")],
)
def test_other_secret_or_realm_rejects_it(secret: bytes, realm: str) -> None:
    clock = Clock()
    nonce = _signer(clock).issue(source=SOURCE)
    assert (
        _signer(clock, secret=secret, realm=realm).check(nonce, source=SOURCE).state
        is NonceState.INVALID
    )


def test_forged_nonces_are_invalid() -> None:
    clock = Clock()
    signer = _signer(clock)
    issued, random_part, mac = signer.issue(source=SOURCE).split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    forgeries = [
        f"{issued}.{random_part}.{flipped}",  # bad MAC
        f"{int(issued) + 100}.{random_part}.{mac}",  # extended lifetime
        f"{issued}.{random_part[::-1]}.{mac}",
        f"{issued}.{random_part}",
        f"{issued}.{random_part}.{mac}.x",
        "",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "x" * 10_000,
        f" {issued}.{random_part}.{mac}",
    ]
    for forged in forgeries:
        assert signer.check(forged, source=SOURCE) == NonceCheck(NonceState.INVALID, 0.0), forged


def test_far_future_nonce_is_invalid_small_skew_is_fine() -> None:
    clock = Clock()
    signer = _signer(clock)
    clock.now += 20
    ahead = signer.issue(source=SOURCE)
    clock.now += 60
    far_ahead = signer.issue(source=SOURCE)
    clock.now -= 80
    assert signer.check(ahead, source=SOURCE).state is NonceState.FRESH
    assert signer.check(far_ahead, source=SOURCE).state is NonceState.INVALID


def test_refuses_short_secret_and_bad_ttl() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        NonceSigner(b"short", realm="r")
    with pytest.raises(ValueError, match="ttl"):
        NonceSigner(SECRET, realm="r", ttl=0)


def test_counter_requires_strictly_increasing_nc() -> None:
    counter = NonceCounter()
    assert counter.accept("n1", 1, expires_at=100.0, now=0.0)
    assert not counter.accept("n1", 1, expires_at=100.0, now=1.0)  # replay
    assert counter.accept("n1", 2, expires_at=100.0, now=2.0)
    assert counter.accept("n1", 7, expires_at=100.0, now=3.0)  # gaps are fine
    assert not counter.accept("n1", 5, expires_at=100.0, now=4.0)  # going back is not
    assert counter.accept("n2", 1, expires_at=100.0, now=5.0)  # per nonce
    assert not counter.accept("n3", 0, expires_at=100.0, now=5.0)  # counts start at 1


def test_counter_forgets_expired_nonces() -> None:
    counter = NonceCounter()
    for i in range(100):
        assert counter.accept(f"n{i}", 1, expires_at=10.0 + i, now=0.0)
    assert len(counter) == 100
    assert counter.accept("late", 1, expires_at=500.0, now=60.0)
    assert len(counter) == 1 + 100 - 51  # n0..n50 expired at or before 60
    assert not counter.accept("n0", 2, expires_at=10.0, now=60.0)  # expired: never accepted


def test_counter_is_bounded_and_never_accepts_a_forgotten_replay() -> None:
    counter = NonceCounter(max_entries=10)
    for i in range(50):
        assert counter.accept(f"n{i}", 1, expires_at=1000.0 + i, now=0.0)
        assert len(counter) <= 10
    # Every nonce used once; none may be accepted again with nc=1, remembered or not.
    for i in range(50):
        assert not counter.accept(f"n{i}", 1, expires_at=1000.0 + i, now=1.0), i
    # The remembered ones still take the next count; the forgotten ones must re-challenge.
    assert counter.accept("n49", 2, expires_at=1049.0, now=1.0)
    assert not counter.accept("n0", 2, expires_at=1000.0, now=1.0)
    # A nonce issued after the evicted ones is still welcome.
    assert counter.accept("new", 1, expires_at=2000.0, now=1.0)


def test_counter_refuses_bad_size() -> None:
    with pytest.raises(ValueError):
        NonceCounter(max_entries=0)
