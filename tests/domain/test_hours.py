"""Buyer hours grammar and ``Hours.is_open`` (SPEC §3.5: hours with a time zone)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from rtbridge.domain.hours import HoursError, parse_hours

NY = ZoneInfo("America/New_York")


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# 2026-06-15 is a Monday; 2026-06-20 a Saturday, 2026-06-21 a Sunday.
MON, TUE, WED, THU, FRI, SAT, SUN = WEEK = (15, 16, 17, 18, 19, 20, 21)


def test_weekday_range_in_utc_by_default() -> None:
    h = parse_hours("Mon-Fri 09:00-17:00")
    assert h.zone == ZoneInfo("UTC")
    assert h.is_open(utc(2026, 6, MON, 9, 0))
    assert h.is_open(utc(2026, 6, FRI, 16, 59))
    assert not h.is_open(utc(2026, 6, FRI, 17, 0))  # end is exclusive
    assert not h.is_open(utc(2026, 6, MON, 8, 59))
    assert not h.is_open(utc(2026, 6, SAT, 12, 0))
    assert not h.is_open(utc(2026, 6, SUN, 12, 0))


def test_naive_time_is_read_as_utc() -> None:
    h = parse_hours("Mon 09:00-10:00")
    assert h.is_open(datetime(2026, 6, MON, 9, 30))
    assert not h.is_open(datetime(2026, 6, MON, 10, 30))


def test_day_list_and_case_insensitive_names() -> None:
    h = parse_hours("mon,WED,Fri 10:00-11:00")
    open_days = {d for d in WEEK if h.is_open(utc(2026, 6, d, 10, 30))}
    assert open_days == {MON, WED, FRI}


def test_list_mixing_ranges_and_days() -> None:
    h = parse_hours("Mon-Tue,Thu 10:00-11:00")
    open_days = {d for d in WEEK if h.is_open(utc(2026, 6, d, 10, 30))}
    assert open_days == {MON, TUE, THU}


def test_range_wraps_around_the_week() -> None:
    h = parse_hours("Sat-Mon 10:00-11:00")
    open_days = {d for d in WEEK if h.is_open(utc(2026, 6, d, 10, 30))}
    assert open_days == {SAT, SUN, MON}


def test_daily_and_whole_day() -> None:
    h = parse_hours("daily 00:00-24:00")
    for d in (MON, TUE, WED, THU, FRI, SAT, SUN):
        assert h.is_open(utc(2026, 6, d, 0, 0))
        assert h.is_open(utc(2026, 6, d, 23, 59))


def test_several_windows() -> None:
    h = parse_hours("Mon-Fri 09:00-17:00; Sat 10:00-14:00 UTC")
    assert h.is_open(utc(2026, 6, SAT, 10, 0))
    assert not h.is_open(utc(2026, 6, SAT, 14, 0))
    assert not h.is_open(utc(2026, 6, SAT, 9, 0))
    assert h.is_open(utc(2026, 6, WED, 9, 0))
    assert not h.is_open(utc(2026, 6, SUN, 11, 0))


def test_overnight_window_belongs_to_its_start_day() -> None:
    h = parse_hours("Fri 22:00-02:00")
    assert h.is_open(utc(2026, 6, FRI, 22, 0))
    assert h.is_open(utc(2026, 6, FRI, 23, 59))
    assert h.is_open(utc(2026, 6, SAT, 0, 0))
    assert h.is_open(utc(2026, 6, SAT, 1, 59))
    assert not h.is_open(utc(2026, 6, SAT, 2, 0))
    assert not h.is_open(utc(2026, 6, FRI, 21, 59))
    assert not h.is_open(utc(2026, 6, FRI, 1, 0))  # Thursday night was not listed
    assert not h.is_open(utc(2026, 6, SAT, 22, 30))  # Saturday is not a start day


def test_overnight_window_from_sunday_spills_into_monday() -> None:
    h = parse_hours("Sun 23:00-01:00")
    assert h.is_open(utc(2026, 6, SUN, 23, 30))
    assert h.is_open(utc(2026, 6, 22, 0, 30))  # Monday
    assert not h.is_open(utc(2026, 6, 22, 1, 0))
    assert not h.is_open(utc(2026, 6, TUE, 0, 30))  # Monday is not a start day
    assert not h.is_open(utc(2026, 6, SUN, 22, 59))


def test_window_ending_at_midnight() -> None:
    h = parse_hours("Mon 22:00-00:00")
    assert h.is_open(utc(2026, 6, MON, 23, 59))
    assert not h.is_open(utc(2026, 6, TUE, 0, 0))
    assert not h.is_open(utc(2026, 6, MON, 21, 59))


def test_window_ending_at_24() -> None:
    h = parse_hours("Mon 22:00-24:00")
    assert h.is_open(utc(2026, 6, MON, 23, 59))
    assert not h.is_open(utc(2026, 6, TUE, 0, 0))


def test_time_zone_follows_daylight_saving() -> None:
    h = parse_hours("Mon-Fri 09:00-17:00 America/New_York")
    assert h.zone == NY
    # June: EDT, UTC-4 → open 13:00-21:00 UTC.
    assert not h.is_open(utc(2026, 6, MON, 12, 59))
    assert h.is_open(utc(2026, 6, MON, 13, 0))
    assert h.is_open(utc(2026, 6, MON, 20, 59))
    assert not h.is_open(utc(2026, 6, MON, 21, 0))
    # January: EST, UTC-5 → open 14:00-22:00 UTC. 2026-01-12 is a Monday.
    assert not h.is_open(utc(2026, 1, 12, 13, 30))
    assert h.is_open(utc(2026, 1, 12, 14, 0))
    assert h.is_open(utc(2026, 1, 12, 21, 30))
    assert not h.is_open(utc(2026, 1, 12, 22, 0))


def test_time_zone_moves_the_day_too() -> None:
    # 02:00 UTC Saturday is still Friday 22:00 in New York (EDT).
    h = parse_hours("Fri 20:00-23:00 America/New_York")
    assert h.is_open(utc(2026, 6, SAT, 2, 0))
    assert not h.is_open(utc(2026, 6, FRI, 22, 0))  # Friday 18:00 local


def test_dst_transition_day() -> None:
    # 2026-03-08 (Sunday): New York jumps from 02:00 EST to 03:00 EDT.
    h = parse_hours("Sun 09:00-10:00 America/New_York")
    assert h.is_open(utc(2026, 3, 8, 13, 0))  # 09:00 EDT
    assert not h.is_open(utc(2026, 3, 8, 14, 0))  # 09:00 EST would have been this


def test_aware_non_utc_input() -> None:
    h = parse_hours("Mon 09:00-10:00 America/New_York")
    assert h.is_open(datetime(2026, 6, MON, 9, 30, tzinfo=NY))
    assert not h.is_open(datetime(2026, 6, MON, 9, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Mon-Fri 09:00-17:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("Mon-Fri 09:00-17:00 ../../etc/passwd", "unknown time zone"),
        ("Mon-Fri 09:00-17:00 EST", "cannot read"),
        ("Mon-Fri 9:00-17:00", "cannot read"),
        ("Mon-Fri 09:00 17:00", "cannot read"),
        ("09:00-17:00", "cannot read"),
        ("Mon-Fri", "cannot read"),
        ("", "empty window"),
        ("Mon 09:00-17:00;", "empty window"),
        ("Mon 09:00-17:00;; Tue 09:00-17:00", "empty window"),
        ("Mon 25:00-26:00", "bad time '25:00'"),
        ("Mon 09:60-17:00", "bad time '09:60'"),
        ("Mon 09:00-17:75", "bad time '17:75'"),
        ("Mon 24:00-02:00", "bad time '24:00'"),  # 24:00 only as an end
        ("Mon 22:00-24:01", "bad time '24:01'"),
        ("Mon 09:00-09:00", "start equals end"),
        ("Funday 09:00-17:00", "unknown day"),
        ("Mo 09:00-17:00", "unknown day"),
        ("Mon-Xyz 09:00-17:00", "unknown day"),
        ("Mon,,Fri 09:00-17:00", "unknown day"),
        ("Mon- 09:00-17:00", "unknown day"),
    ],
)
def test_refused(text: str, fragment: str) -> None:
    with pytest.raises(HoursError) as info:
        parse_hours(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("days", ["Monday", "mond", "TUESDAY", "Wed-Fri"])
def test_full_and_prefixed_day_names(days: str) -> None:
    assert parse_hours(f"{days} 09:00-17:00").windows


@pytest.mark.parametrize("days", ["Monkey", "Mo", "Tuesdays", "Frisday"])
def test_words_that_only_start_like_a_day_are_refused(days: str) -> None:
    with pytest.raises(HoursError, match="unknown day"):
        parse_hours(f"{days} 09:00-17:00")
