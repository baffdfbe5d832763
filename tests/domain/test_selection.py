"""Buyer selection (SPEC §3.5): eligibility, priority, weighted random, and the reason given
when nobody is eligible."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from rtbridge.domain.hours import parse_hours
from rtbridge.domain.selection import (
    REASON_CONCURRENCY,
    REASON_DAILY_CAP,
    REASON_FILTERED,
    REASON_NO_BUYERS,
    REASON_OUTSIDE_HOURS,
    BuyerRule,
    Chosen,
    NoTarget,
    Usage,
    choose_buyer,
    ineligibility,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
CLOSED = parse_hours("Sat 00:00-01:00")  # not open at NOW
OPEN = parse_hours("Mon 11:00-13:00")


def pick(
    buyers: list[BuyerRule],
    usage: dict[str, Usage] | None = None,
    tags: dict[str, str] | None = None,
    seed: int = 0,
) -> Chosen | NoTarget:
    return choose_buyer(buyers, usage or {}, tags or {}, NOW, random.Random(seed))


def chosen_id(result: Chosen | NoTarget) -> str:
    assert isinstance(result, Chosen), result
    return result.buyer.id


def reason(result: Chosen | NoTarget) -> str:
    assert isinstance(result, NoTarget), result
    return result.reason


# --- eligibility, one rule at a time ---------------------------------------------------------


def test_plain_buyer_is_eligible() -> None:
    assert ineligibility(BuyerRule("a"), Usage(), {}, NOW) is None


def test_concurrency_cap() -> None:
    b = BuyerRule("a", concurrency=2)
    assert ineligibility(b, Usage(live=1), {}, NOW) is None
    assert ineligibility(b, Usage(live=2), {}, NOW) == REASON_CONCURRENCY
    assert ineligibility(b, Usage(live=3), {}, NOW) == REASON_CONCURRENCY


def test_daily_cap() -> None:
    b = BuyerRule("a", daily_cap=10)
    assert ineligibility(b, Usage(today=9), {}, NOW) is None
    assert ineligibility(b, Usage(today=10), {}, NOW) == REASON_DAILY_CAP


def test_no_caps_means_unlimited() -> None:
    assert ineligibility(BuyerRule("a"), Usage(live=10**6, today=10**6), {}, NOW) is None


def test_hours() -> None:
    assert ineligibility(BuyerRule("a", hours=OPEN), Usage(), {}, NOW) is None
    assert ineligibility(BuyerRule("a", hours=CLOSED), Usage(), {}, NOW) == REASON_OUTSIDE_HOURS


def test_filters_match_case_insensitively() -> None:
    # Allowed values are stored casefolded (storage.catalog does it); the tag value is folded here.
    b = BuyerRule("a", filters={"caller_state": frozenset({"ca", "ny"})})
    assert ineligibility(b, Usage(), {"caller_state": "CA"}, NOW) is None
    assert ineligibility(b, Usage(), {"caller_state": "ny"}, NOW) is None
    assert ineligibility(b, Usage(), {"caller_state": "Ny"}, NOW) is None
    assert ineligibility(b, Usage(), {"caller_state": "TX"}, NOW) == REASON_FILTERED


def test_missing_tag_fails_a_filter() -> None:
    b = BuyerRule("a", filters={"caller_state": frozenset({"ca"})})
    assert ineligibility(b, Usage(), {}, NOW) == REASON_FILTERED
    assert ineligibility(b, Usage(), {"caller_zip": "90210"}, NOW) == REASON_FILTERED


def test_every_filter_must_match() -> None:
    b = BuyerRule("a", filters={"caller_state": frozenset({"ca"}), "vertical": frozenset({"auto"})})
    assert ineligibility(b, Usage(), {"caller_state": "CA", "vertical": "Auto"}, NOW) is None
    assert ineligibility(b, Usage(), {"caller_state": "CA", "vertical": "home"}, NOW) == (
        REASON_FILTERED
    )


def test_first_failing_stage_is_reported() -> None:
    # Filters, then hours, then daily cap, then concurrency.
    full = Usage(live=5, today=5)
    b = BuyerRule("a", concurrency=1, daily_cap=1, hours=CLOSED, filters={"s": frozenset({"x"})})
    assert ineligibility(b, full, {}, NOW) == REASON_FILTERED
    assert ineligibility(b, full, {"s": "x"}, NOW) == REASON_OUTSIDE_HOURS
    b2 = BuyerRule("a", concurrency=1, daily_cap=1, hours=OPEN)
    assert ineligibility(b2, full, {}, NOW) == REASON_DAILY_CAP
    assert ineligibility(b2, Usage(live=5, today=0), {}, NOW) == REASON_CONCURRENCY


# --- choose_buyer ----------------------------------------------------------------------------


def test_zero_buyers() -> None:
    assert reason(pick([])) == REASON_NO_BUYERS


def test_single_eligible_buyer() -> None:
    assert (
        chosen_id(
            pick(
                [BuyerRule("a", concurrency=1), BuyerRule("b", concurrency=1)], {"a": Usage(live=1)}
            )
        )
        == "b"
    )


def test_lower_priority_number_wins_before_weight() -> None:
    buyers = [BuyerRule("heavy", priority=2, weight=1000), BuyerRule("first", priority=1, weight=1)]
    for seed in range(50):
        assert chosen_id(pick(buyers, seed=seed)) == "first"


def test_falls_back_to_next_priority_when_top_is_full() -> None:
    buyers = [BuyerRule("first", priority=1, concurrency=1), BuyerRule("second", priority=2)]
    assert chosen_id(pick(buyers, {"first": Usage(live=1)})) == "second"
    assert chosen_id(pick(buyers, {"first": Usage(live=0)})) == "first"


def test_priority_zero_beats_one() -> None:
    buyers = [BuyerRule("one", priority=1), BuyerRule("zero", priority=0)]
    assert chosen_id(pick(buyers)) == "zero"


def test_verdicts_say_what_selection_made_of_every_buyer() -> None:
    buyers = [
        BuyerRule("full", priority=0, concurrency=1),
        BuyerRule("closed", priority=0, hours=CLOSED),
        BuyerRule("a", priority=1),
        BuyerRule("b", priority=1),
        BuyerRule("later", priority=2),
    ]
    verdicts: dict[str, str] = {}
    got = choose_buyer(buyers, {"full": Usage(live=1)}, {}, NOW, random.Random(0), verdicts)
    other = "b" if chosen_id(got) == "a" else "a"
    assert verdicts == {
        "full": REASON_CONCURRENCY,
        "closed": REASON_OUTSIDE_HOURS,
        chosen_id(got): "chosen",
        other: "not-drawn",
        "later": "lower-priority",
    }
    nobody: dict[str, str] = {}
    assert reason(choose_buyer(buyers[:2], {"full": Usage(live=1)}, {}, NOW, None, nobody))
    assert nobody == {"full": REASON_CONCURRENCY, "closed": REASON_OUTSIDE_HOURS}


def test_weighted_distribution() -> None:
    buyers = [
        BuyerRule("a", weight=1),
        BuyerRule("b", weight=3),
        BuyerRule("c", weight=6),
        BuyerRule("low", priority=5, weight=100),
    ]
    rng = random.Random(20260615)
    draws = 20_000
    counts = Counter(chosen_id(choose_buyer(buyers, {}, {}, NOW, rng)) for _ in range(draws))
    assert counts["low"] == 0
    for name, share in (("a", 0.1), ("b", 0.3), ("c", 0.6)):
        assert abs(counts[name] / draws - share) < 0.02, counts


def test_weighted_choice_is_reproducible_with_a_seed() -> None:
    buyers = [BuyerRule("a"), BuyerRule("b"), BuyerRule("c")]
    first = [chosen_id(pick(buyers, seed=s)) for s in range(30)]
    again = [chosen_id(pick(buyers, seed=s)) for s in range(30)]
    assert first == again
    assert set(first) == {"a", "b", "c"}


def test_ineligible_buyers_are_excluded_from_the_draw() -> None:
    buyers = [BuyerRule("a", weight=1), BuyerRule("b", weight=1000, daily_cap=1)]
    rng = random.Random(1)
    for _ in range(200):
        assert chosen_id(choose_buyer(buyers, {"b": Usage(today=1)}, {}, NOW, rng)) == "a"


def test_default_rng_works() -> None:
    result = choose_buyer([BuyerRule("a"), BuyerRule("b")], {}, {}, NOW)
    assert chosen_id(result) in {"a", "b"}


@pytest.mark.parametrize(
    ("buyers", "usage", "expected"),
    [
        ([BuyerRule("f", filters={"s": frozenset({"x"})})], {}, REASON_FILTERED),
        ([BuyerRule("h", hours=CLOSED)], {}, REASON_OUTSIDE_HOURS),
        ([BuyerRule("d", daily_cap=1)], {"d": Usage(today=1)}, REASON_DAILY_CAP),
        ([BuyerRule("c", concurrency=1)], {"c": Usage(live=1)}, REASON_CONCURRENCY),
    ],
)
def test_each_reason(buyers: list[BuyerRule], usage: dict[str, Usage], expected: str) -> None:
    assert reason(pick(buyers, usage)) == expected


def test_reason_is_the_furthest_stage_reached() -> None:
    filtered = BuyerRule("f", filters={"s": frozenset({"x"})})
    closed = BuyerRule("h", hours=CLOSED)
    capped = BuyerRule("d", daily_cap=1)
    busy = BuyerRule("c", concurrency=1)
    usage = {"d": Usage(today=1), "c": Usage(live=1)}
    # Whatever the order, the buyer that got furthest names the reason.
    assert reason(pick([filtered, closed], usage)) == REASON_OUTSIDE_HOURS
    assert reason(pick([closed, filtered], usage)) == REASON_OUTSIDE_HOURS
    assert reason(pick([busy, filtered, closed, capped], usage)) == REASON_CONCURRENCY
    assert reason(pick([filtered, capped, closed], usage)) == REASON_DAILY_CAP
    assert reason(pick([capped, busy], usage)) == REASON_CONCURRENCY


def test_usage_of_other_buyers_does_not_leak() -> None:
    buyers = [BuyerRule("a", concurrency=1)]
    assert chosen_id(pick(buyers, {"b": Usage(live=99)})) == "a"
