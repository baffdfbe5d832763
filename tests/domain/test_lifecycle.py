"""Reservation statuses (SPEC §3.7) and which ones hold a buyer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rtbridge.domain import lifecycle as lc

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
EARLIER = NOW - timedelta(seconds=1)


def test_status_sets_partition_all_statuses() -> None:
    every = {
        lc.RESERVED,
        lc.CONFIRMED,
        lc.CLAIMED,
        lc.CONNECTED,
        lc.COMPLETED,
        lc.EXPIRED,
        lc.CANCELLED,
        lc.FAILED,
        lc.NO_TARGET,
    }
    groups = [set(lc.UNCLAIMED), set(lc.IN_CALL), set(lc.TERMINAL)]
    assert set().union(*groups) == every
    assert sum(len(g) for g in groups) == len(every)
    assert lc.NO_TARGET == "no-target"


def test_daily_cap_counts() -> None:
    assert set(lc.COUNTS_TODAY) == {
        lc.RESERVED,
        lc.CONFIRMED,
        lc.CLAIMED,
        lc.CONNECTED,
        lc.COMPLETED,
        lc.FAILED,
    }


@pytest.mark.parametrize("status", [lc.RESERVED, lc.CONFIRMED])
def test_unclaimed_expires_at_ttl(status: str) -> None:
    assert lc.effective_status(status, LATER, NOW) == status
    assert lc.effective_status(status, NOW, NOW) == lc.EXPIRED  # expires_at is exclusive
    assert lc.effective_status(status, EARLIER, NOW) == lc.EXPIRED
    assert lc.holds_buyer(status, LATER, NOW)
    assert not lc.holds_buyer(status, NOW, NOW)


@pytest.mark.parametrize("status", [lc.CLAIMED, lc.CONNECTED])
def test_calls_in_progress_hold_past_ttl(status: str) -> None:
    assert lc.effective_status(status, EARLIER, NOW) == status
    assert lc.holds_buyer(status, EARLIER, NOW)
    assert lc.holds_buyer(status, None, NOW)


@pytest.mark.parametrize("status", list(lc.TERMINAL))
def test_terminal_never_holds(status: str) -> None:
    assert lc.effective_status(status, LATER, NOW) == status
    assert not lc.holds_buyer(status, LATER, NOW)


def test_no_expiry_means_still_live() -> None:
    assert lc.effective_status(lc.RESERVED, None, NOW) == lc.RESERVED
    assert lc.holds_buyer(lc.RESERVED, None, NOW)
