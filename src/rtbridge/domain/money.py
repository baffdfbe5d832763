"""The two prices of a call (SPEC §3.8): ``payout``, paid to the publisher, and ``revenue``,
paid by the buyer; the network keeps the margin between them. Both are fixed on the
reservation when it is made and earned only when the call converts.

A revenue of None is the payout: buyers without one in the file, and rows written before
revenue existed, so that nothing changes for them (margin 0)."""

from __future__ import annotations


def revenue_or_payout(revenue: float | None, payout: float | None) -> float | None:
    return payout if revenue is None else revenue


def margin(revenue: float | None, payout: float | None) -> float | None:
    """Revenue less payout, in cents (None when neither is known: a no-target ping)."""
    if payout is None and revenue is None:
        return None
    return round((revenue_or_payout(revenue, payout) or 0.0) - (payout or 0.0), 2)
