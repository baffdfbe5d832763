"""x5u chains by URL (sip/stir/chain_cache.py): a chain fetched once, a failure remembered,
concurrent look-ups sharing one fetch, the cache bounded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rtbridge.sip.stir.attestation import Failed
from rtbridge.sip.stir.chain_cache import Chain, ChainCache
from tests.support.stir import DEST, ORIG, Sti


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_chain_is_fetched_once(world: Sti) -> None:
    verifier = world.verifier()
    for _ in range(3):
        assert verifier.verify([world.signer.sign()], orig=ORIG, dest=DEST).level == "A"
    assert world.server.fetches["/sti/chain.pem"] == 1


def test_a_failure_is_remembered_for_a_minute(world: Sti) -> None:
    clock = Clock()
    verifier = world.verifier(clock=clock)
    signer = world.publish("/flaky.pem", world.leaf)
    world.server.serve("/flaky.pem", status=503)
    identity = lambda: signer.sign(iat=clock.now)  # noqa: E731
    assert verifier.verify([identity()], orig=ORIG, dest=DEST).why == "x5u answered 503"
    world.server.serve("/flaky.pem", world.ca.chain_pem(world.leaf))
    clock.now += 59
    assert verifier.verify([identity()], orig=ORIG, dest=DEST).why == "x5u answered 503"
    assert world.server.fetches["/flaky.pem"] == 1
    clock.now += 2
    assert verifier.verify([identity()], orig=ORIG, dest=DEST).level == "A"
    assert world.server.fetches["/flaky.pem"] == 2


def test_a_hanging_url_costs_one_timeout_per_minute(world: Sti) -> None:
    signer = world.publish("/hang.pem", world.leaf)
    world.server.serve("/hang.pem", hang=True)
    verifier = world.verifier(fetch_timeout=0.3)
    started = time.monotonic()
    for _ in range(3):
        assert (
            verifier.verify([signer.sign()], orig=ORIG, dest=DEST).why
            == "x5u unreachable: timed out after 0.3 s"
        )
    assert time.monotonic() - started < 0.3 + 0.5
    assert world.server.fetches["/hang.pem"] == 1


def test_a_good_chain_is_kept_an_hour_at_most(world: Sti) -> None:
    fetches: list[str] = []
    clock = Clock()
    chain = [world.leaf.cert, world.ca.intermediate.cert]
    cache = ChainCache(lambda url: fetches.append(url) or chain, clock=clock, wait=1)
    cache.get("u")
    clock.now += 3599
    cache.get("u")
    clock.now += 2
    cache.get("u")
    assert fetches == ["u", "u"]


def test_a_chain_is_kept_no_longer_than_its_leaf(world: Sti) -> None:
    fetches: list[str] = []
    leaf = world.ca.leaf(days=(-1, 600 / 86400))  # expires in 10 minutes
    clock = Clock()
    cache = ChainCache(lambda url: fetches.append(url) or [leaf.cert], clock=clock, wait=1)
    cache.get("u")
    clock.now += 590
    cache.get("u")
    clock.now += 20
    cache.get("u")
    assert fetches == ["u", "u"]


def test_concurrent_verifies_share_one_fetch(world: Sti) -> None:
    signer = world.publish("/slow.pem", world.leaf)
    world.server.serve(
        "/slow.pem", world.ca.chain_pem(world.leaf), delay=0.3
    )  # all 16 ask meanwhile
    verifier = world.verifier()
    start = threading.Barrier(16)

    def one(_: int) -> str:
        start.wait()
        return verifier.verify([signer.sign()], orig=ORIG, dest=DEST).level

    with ThreadPoolExecutor(16) as pool:
        levels = list(pool.map(one, range(16)))
    assert levels == ["A"] * 16
    assert world.server.fetches["/slow.pem"] == 1


def test_waiters_share_the_fetchers_failure() -> None:
    release = threading.Event()
    calls: list[str] = []

    def fetch(url: str) -> Chain:
        calls.append(url)
        release.wait(2)
        raise Failed("x5u answered 500")

    cache = ChainCache(fetch, clock=time.time, wait=3)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get, "u") for _ in range(8)]
        time.sleep(0.1)
        release.set()
        for future in futures:
            with pytest.raises(Failed, match="x5u answered 500"):
                future.result()
    assert calls == ["u"]


def test_a_bug_in_the_fetch_does_not_strand_the_waiters() -> None:
    def fetch(url: str) -> Chain:
        raise RuntimeError("bug")

    cache = ChainCache(fetch, clock=time.time, wait=1)
    with pytest.raises(RuntimeError):
        cache.get("u")
    with pytest.raises(RuntimeError):  # not remembered: the next look-up tries again
        cache.get("u")


def test_the_cache_keeps_the_most_recently_used(world: Sti) -> None:
    fetches: list[str] = []
    chain = [world.leaf.cert]
    cache = ChainCache(lambda url: fetches.append(url) or chain, clock=time.time, wait=1, size=3)
    for url in ("a", "b", "c", "a", "d"):  # d pushes out b, the least recently used
        cache.get(url)
    cache.get("a")
    cache.get("b")
    assert fetches == ["a", "b", "c", "d", "b"]


def test_a_chains_verdict_is_kept_until_its_leaf_expires(world: Sti) -> None:
    """Path building runs once per chain (it costs more than the rest of a verification),
    and its verdict lasts no longer than the chain's first certificate: a leaf that expired
    since is refused although the chain was good."""
    leaf = world.ca.leaf(days=(-1, 600 / 86400))  # expires in 10 minutes
    clock = Clock()
    verifier = world.verifier(clock=clock)
    signer = world.publish("/short-lived.pem", leaf)
    checks = []
    build = verifier.roots._leaf_key
    verifier.roots._leaf_key = lambda chain, now: checks.append(now) or build(chain, now)  # type: ignore[method-assign]
    for _ in range(3):
        assert verifier.verify([signer.sign(iat=clock.now)], orig=ORIG, dest=DEST).level == "A"
    assert len(checks) == 1
    clock.now += 610
    found = verifier.verify([signer.sign(iat=clock.now)], orig=ORIG, dest=DEST)
    assert (found.level, found.why) == ("failed", "leaf certificate expired")
    assert len(checks) == 2
