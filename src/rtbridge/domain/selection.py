"""Buyer selection (SPEC §3.5): eligibility, then priority, then weighted random."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from rtbridge.domain.hours import Hours

# Checked in this order; when nobody is eligible the reason reported is the one of the buyer
# that got furthest, because that is the actionable one ("the buyer is there but full").
REASON_NO_BUYERS = "no-buyers"
REASON_FILTERED = "filters-not-matched"
REASON_OUTSIDE_HOURS = "outside-hours"
REASON_BLOCKED = "blocked-caller"  # a block list, or allow lists the caller is not on
REASON_DUPLICATE = "duplicate-caller"
REASON_DAILY_CAP = "daily-cap-reached"
REASON_CONCURRENCY = "concurrency-cap-reached"
# The caller's lists come before its duplicates: a standing rule before a passing one.
_STAGES = (REASON_FILTERED, REASON_OUTSIDE_HOURS, REASON_BLOCKED, REASON_DUPLICATE,
           REASON_DAILY_CAP, REASON_CONCURRENCY)  # fmt: skip
# A verdict on each buyer (a reservation's story): the reason it was not eligible, or one of
VERDICT_CHOSEN = "chosen"
VERDICT_LOWER_PRIORITY = "lower-priority"  # eligible, but a buyer of a lower number was too
VERDICT_NOT_DRAWN = "not-drawn"  # eligible in the chosen tier; the weighted draw took another


@dataclass(frozen=True)
class BuyerRule:
    """What selection needs to know about one buyer."""

    id: str
    priority: int = 1
    weight: int = 1
    concurrency: int | None = None
    daily_cap: int | None = None
    hours: Hours | None = None
    filters: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Duplicate callers: a caller who reached ``duplicate_after`` ("ping", "connected",
    # "converted") with this buyer less than ``duplicate_window`` seconds ago is skipped.
    duplicate_window: int = 0
    duplicate_after: str = "connected"


class Usage(NamedTuple):
    """Units a buyer holds now (live reservations + calls in progress) and used today, when
    this ping's caller last reached its ``duplicate_after`` point, and whether the buyer's
    own caller lists refuse the caller. A tuple: every ping makes one per capped buyer, at a
    third of a frozen dataclass's cost."""

    live: int = 0
    today: int = 0
    last: datetime | None = None
    blocked: bool = False


_UNUSED = Usage()


def ineligibility(
    buyer: BuyerRule, usage: Usage, tags: Mapping[str, str], now: datetime
) -> str | None:
    """The reason ``buyer`` cannot take this call now, or None when it can."""
    for name, allowed in buyer.filters.items():
        value = tags.get(name)
        if value is None or value.casefold() not in allowed:
            return REASON_FILTERED
    if buyer.hours is not None and not buyer.hours.is_open(now):
        return REASON_OUTSIDE_HOURS
    if usage.blocked:
        return REASON_BLOCKED
    if is_duplicate(buyer, usage.last, now):
        return REASON_DUPLICATE
    if buyer.daily_cap is not None and usage.today >= buyer.daily_cap:
        return REASON_DAILY_CAP
    if buyer.concurrency is not None and usage.live >= buyer.concurrency:
        return REASON_CONCURRENCY
    return None


def is_duplicate(buyer: BuyerRule, last: datetime | None, now: datetime) -> bool:
    """Did the caller reach ``buyer``'s duplicate point (``last``) within its window?"""
    return (
        last is not None
        and bool(buyer.duplicate_window)
        and (now - last).total_seconds() < buyer.duplicate_window
    )


@dataclass(frozen=True)
class Chosen:
    buyer: BuyerRule


@dataclass(frozen=True)
class NoTarget:
    reason: str


def choose_buyer(
    buyers: Sequence[BuyerRule],
    usage: Mapping[str, Usage],
    tags: Mapping[str, str],
    now: datetime,
    rng: random.Random | None = None,
    verdicts: dict[str, str] | None = None,
) -> Chosen | NoTarget:
    """Pick among eligible buyers: lowest ``priority`` number first, then by ``weight``.
    ``verdicts``, when given, receives each buyer's verdict by its id."""
    if not buyers:
        return NoTarget(REASON_NO_BUYERS)
    choice = _choose(buyers, usage, tags, now, rng, verdicts)
    if verdicts is not None and isinstance(choice, Chosen):
        top = choice.buyer.priority
        for buyer in buyers:
            if buyer.id not in verdicts:
                verdicts[buyer.id] = (
                    VERDICT_CHOSEN if buyer is choice.buyer
                    else VERDICT_NOT_DRAWN if buyer.priority == top
                    else VERDICT_LOWER_PRIORITY
                )  # fmt: skip
    return choice


def _choose(
    buyers: Sequence[BuyerRule],
    usage: Mapping[str, Usage],
    tags: Mapping[str, str],
    now: datetime,
    rng: random.Random | None,
    verdicts: dict[str, str] | None,
) -> Chosen | NoTarget:
    # One pass: the eligible buyers of the lowest priority number seen so far, and their
    # total weight (a ping's hot path: no intermediate lists beyond that tier).
    tier: list[BuyerRule] = []
    top = 0
    total = 0
    furthest = -1
    for buyer in buyers:
        reason = ineligibility(buyer, usage.get(buyer.id, _UNUSED), tags, now)
        if reason is not None:
            furthest = max(furthest, _STAGES.index(reason))
            if verdicts is not None:
                verdicts[buyer.id] = reason
        elif not tier or buyer.priority < top:
            tier, top, total = [buyer], buyer.priority, buyer.weight
        elif buyer.priority == top:
            tier.append(buyer)
            total += buyer.weight
    if not tier:
        return NoTarget(_STAGES[furthest])
    if len(tier) == 1:
        return Chosen(tier[0])
    # Weights are validated >= 1 when configured, so the total is positive. This is what
    # random.choices(tier, weights) draws (one random() scaled by the total, the first
    # cumulative weight above it), without building its lists on every ping.
    point = (rng or random).random() * total
    for buyer in tier:
        point -= buyer.weight
        if point < 0:
            return Chosen(buyer)
    return Chosen(tier[-1])  # only if rounding left point at exactly 0


# -- auctions (a campaign with RTB buyers) -----------------------------------------------------

REASON_NO_BIDS = "no-bids"  # eligible buyers there were, but none priced the call
VERDICT_WON = "won"
VERDICT_OUTBID = "outbid"
VERDICT_BELOW_MIN = "below-min-bid"


def choose_by_price(
    buyers: Sequence[BuyerRule],
    usage: Mapping[str, Usage],
    tags: Mapping[str, str],
    now: datetime,
    rng: random.Random | None,
    *,
    prices: Mapping[str, float],
    min_price: float,
    verdicts: dict[str, str],
) -> Chosen | NoTarget:
    """The auction (SPEC §3.5): among eligible buyers with a price (a static buyer's
    revenue, an RTB buyer's bid) of at least ``min_price``, the highest price wins; ties go
    to the lowest ``priority`` number, then to the weighted draw. ``verdicts`` receives each
    buyer's; an RTB buyer without a price should already have its own there (``no-bid``,
    ``timeout``…) and keeps it."""
    if not buyers:
        return NoTarget(REASON_NO_BUYERS)
    furthest = -1
    eligible = 0
    best: list[BuyerRule] = []
    top_price = 0.0
    for buyer in buyers:
        reason = ineligibility(buyer, usage.get(buyer.id, _UNUSED), tags, now)
        if reason is not None:
            furthest = max(furthest, _STAGES.index(reason))
            verdicts[buyer.id] = reason
            continue
        eligible += 1
        price = prices.get(buyer.id)
        if price is None:
            verdicts.setdefault(buyer.id, "no-bid")
        elif price < min_price:
            verdicts[buyer.id] = VERDICT_BELOW_MIN
        elif not best or price > top_price:
            best, top_price = [buyer], price
        elif price == top_price:
            best.append(buyer)
    if not best:
        return NoTarget(REASON_NO_BIDS if eligible else _STAGES[furthest])
    first = min(b.priority for b in best)
    tier = [b for b in best if b.priority == first]
    total = sum(b.weight for b in tier)
    point = (rng or random).random() * total
    winner = tier[-1]
    for buyer in tier:
        point -= buyer.weight
        if point < 0:
            winner = buyer
            break
    for buyer in buyers:
        if buyer.id in prices and verdicts.get(buyer.id) is None:
            verdicts[buyer.id] = VERDICT_WON if buyer is winner else VERDICT_OUTBID
    return Chosen(winner)
