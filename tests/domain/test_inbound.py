"""Which ``inbound_number`` a reservation returns (SPEC §3.3) and its SIP address."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rtbridge.domain.inbound import choose_inbound, sip_address

UUID = "01a234aa-b5c4-7a9d-8c7f-9e2b00000000"  # offset 0 into any pool (the tail counts)
DOMAIN = "sip.rtb.example.com"
POOL = ("+18339510260", "+18334583385", "+18005550001")


def choose(**overrides: Any) -> str | None:
    args: dict[str, Any] = {
        "uuid": UUID,
        "sip_domain": DOMAIN,
        "caller_number": None,
        "pool": (),
        "taken_for_caller": (),
        "requested": None,
        "key_inbound": None,
    }
    args.update(overrides)
    return choose_inbound(**args)


def test_sip_address() -> None:
    assert sip_address(UUID, DOMAIN) == f"{UUID}@{DOMAIN}"


def test_caller_given_takes_a_pool_did() -> None:
    assert choose(caller_number="+12025550102", pool=POOL) == POOL[0]


def test_pool_beats_requested_and_key_number_when_caller_known() -> None:
    got = choose(
        caller_number="+12025550102",
        pool=POOL,
        requested="+18885550000",
        key_inbound="+18775550000",
    )
    assert got == POOL[0]


def test_caller_given_without_pool_falls_back_to_the_missing_caller_order() -> None:
    assert choose(caller_number="+12025550102", requested="+18885550000") == "+18885550000"
    assert choose(caller_number="+12025550102", key_inbound="+18775550000") == "+18775550000"
    assert choose(caller_number="+12025550102") == f"sip:{UUID}@{DOMAIN}"


def test_missing_caller_1_requested_number() -> None:
    got = choose(pool=POOL, requested="+18885550000", key_inbound="+18775550000")
    assert got == "+18885550000"


def test_missing_caller_2_key_number() -> None:
    assert choose(pool=POOL, key_inbound="+18775550000") == "+18775550000"


def test_missing_caller_3_dynamic_sip_uri() -> None:
    assert choose(pool=POOL) == f"sip:{UUID}@{DOMAIN}"


def test_pool_skips_dids_taken_for_the_caller() -> None:
    got = choose(caller_number="+12025550102", pool=POOL, taken_for_caller={POOL[0]})
    assert got == POOL[1]
    got = choose(caller_number="+12025550102", pool=POOL, taken_for_caller={POOL[0], POOL[1]})
    assert got == POOL[2]


def test_pool_wraps_around_after_the_offset() -> None:
    uuid = "01a234aa-b5c4-7000-8000-000000000002"  # offset 2 of 3
    assert choose(uuid=uuid, caller_number="+12025550102", pool=POOL) == POOL[2]
    got = choose(uuid=uuid, caller_number="+12025550102", pool=POOL, taken_for_caller=[POOL[2]])
    assert got == POOL[0]


def test_none_when_the_caller_holds_every_did() -> None:
    got = choose(
        caller_number="+12025550102",
        pool=POOL,
        taken_for_caller=set(POOL),
        requested="+18885550000",
        key_inbound="+18775550000",
    )
    assert got is None


def test_spread_over_the_pool_by_uuid() -> None:
    counts: Counter[str | None] = Counter()
    for i in range(300):
        uuid = f"01a234aa-b5c4-7000-8000-0000{i * 0x01000193 % 0xFFFFFFFF:08x}"
        counts[choose(uuid=uuid, caller_number="+12025550102", pool=POOL)] += 1
    assert set(counts) == set(POOL)
    assert min(counts.values()) > 60, counts


def test_offset_follows_the_uuid_tail() -> None:
    """The tail is random in every uuid version; a version 7 head is the clock, the same for
    every ping of one minute."""
    for offset in range(len(POOL)):
        uuid = f"01a234aa-b5c4-7000-8000-0000{offset:08x}"
        assert choose(uuid=uuid, caller_number="+1", pool=POOL) == POOL[offset]
