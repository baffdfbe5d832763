"""Per-source token buckets (sip/rate.py): the INVITE and request limits share them."""

from __future__ import annotations

from rtbridge.sip.rate import SourceRate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate_per_source() -> None:
    clock = FakeClock()
    rate = SourceRate(rate=10.0, burst=20, clock=clock)
    assert [rate.take("192.0.2.1") for _ in range(25)].count(True) == 20
    assert rate.take("192.0.2.2")  # another source has its own bucket
    clock.now += 0.5  # 5 tokens back
    assert [rate.take("192.0.2.1") for _ in range(6)].count(True) == 5
    clock.now += 3600  # never more than the burst saved up
    assert [rate.take("192.0.2.1") for _ in range(25)].count(True) == 20


def test_ipv6_sources_share_their_64_and_exempt_networks_are_not_counted() -> None:
    clock = FakeClock()
    rate = SourceRate(rate=1.0, burst=2, exempt=("10.0.0.0/8",), clock=clock)
    assert rate.take("2001:db8::1") and rate.take("2001:db8::2")
    assert not rate.take("2001:db8::ffff")
    assert rate.take("2001:db8:1::1")  # another /64
    assert all(rate.take("10.1.2.3") for _ in range(50))
    assert all(SourceRate(rate=0.0, burst=0).take("192.0.2.9") for _ in range(5000))


def test_sources_bounded() -> None:
    rate = SourceRate(rate=1.0, burst=1, max_sources=100, clock=FakeClock())
    for n in range(1000):
        rate.take(f"198.51.{n // 256}.{n % 256}")
    assert len(rate) == 100
    assert not rate.take("198.51.3.231")  # the newest are remembered (its token is spent)...
    assert rate.take("198.51.0.0")  # ...the oldest forgotten: a full bucket again
