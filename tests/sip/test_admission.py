"""Admission of new INVITEs: draining, per-source rate (token bucket), capacity."""

from __future__ import annotations

from rtbridge.sip.admission import Admission


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(clock: FakeClock, **kw: object) -> Admission:
    options: dict[str, object] = {
        "bridges": 10,
        "max_routing": 5,
        "rate": 10.0,
        "burst": 20,
        "clock": clock,
    }
    options.update(kw)
    return Admission(**options)  # type: ignore[arg-type]


def test_burst_then_rate_per_source() -> None:
    clock = FakeClock()
    gate = admission(clock)
    verdicts = [gate.check("192.0.2.1", active=0, draining=False) for _ in range(25)]
    assert verdicts[:20] == [None] * 20
    assert {v.reason for v in verdicts[20:] if v} == {"rate"}
    assert all(v is not None and (v.code, v.phrase) == (503, "Service Unavailable")
               for v in verdicts[20:])  # fmt: skip
    # another source is not affected
    assert gate.check("192.0.2.2", active=0, draining=False) is None
    # tokens come back at `rate` per second
    clock.now += 0.5
    assert [gate.check("192.0.2.1", active=0, draining=False) for _ in range(6)].count(None) == 5
    assert gate.refused["rate"] == 6


def test_ipv6_sources_share_their_64() -> None:
    clock = FakeClock()
    gate = admission(clock, burst=2, rate=1.0)
    assert gate.check("2001:db8::1", active=0, draining=False) is None
    assert gate.check("2001:db8::2", active=0, draining=False) is None
    refusal = gate.check("2001:db8::ffff", active=0, draining=False)
    assert refusal is not None and refusal.reason == "rate"
    assert gate.check("2001:db8:1::1", active=0, draining=False) is None  # another /64


def test_exempt_and_off() -> None:
    clock = FakeClock()
    gate = admission(clock, burst=1, rate=1.0, exempt=("10.0.0.0/8",))
    assert all(gate.check("10.1.2.3", active=0, draining=False) is None for _ in range(50))
    off = admission(clock, rate=0.0, burst=0)
    assert all(off.check("192.0.2.9", active=0, draining=False) is None for _ in range(5000))


def test_capacity_and_draining() -> None:
    clock = FakeClock()
    gate = admission(clock, bridges=2)
    assert gate.check("192.0.2.1", active=1, draining=False) is None
    full = gate.check("192.0.2.1", active=2, draining=False)
    assert full is not None and full.reason == "capacity"
    draining = gate.check("192.0.2.1", active=0, draining=True)
    assert draining is not None and draining.reason == "draining"
    assert gate.refused == {"draining": 1, "capacity": 1, "backlog": 0, "rate": 0}


def test_a_router_backlog_is_refused_before_it_grows() -> None:
    """The database slower than the arrivals: INVITEs beyond max_routing waiting for the
    router get 503 at once; room in the backlog admits again."""
    gate = admission(FakeClock(), rate=0.0)
    assert gate.check("192.0.2.1", active=5, draining=False, routing=4) is None
    refusal = gate.check("192.0.2.1", active=5, draining=False, routing=5)
    assert refusal is not None and refusal.reason == "backlog" and refusal.code == 503
    assert gate.refused["backlog"] == 1
    assert gate.check("192.0.2.1", active=5, draining=False, routing=3) is None


def test_no_call_slot_left_for_the_buyer_leg_is_capacity() -> None:
    """Legs that belong to no bridge (503s waiting for their ACK, BYEs to gone peers) hold
    call slots: with none left for the buyer leg the INVITE gets 503 at once instead of a
    bridge that cannot dial."""
    gate = admission(FakeClock(), rate=0.0)
    assert gate.check("192.0.2.1", active=1, draining=False, free_slots=1) is None
    refusal = gate.check("192.0.2.1", active=1, draining=False, free_slots=0)
    assert refusal is not None and refusal.reason == "capacity"
