"""Buyer hours: ``"Mon-Fri 09:00-17:00 America/New_York"``.

Grammar (windows separated by ``;``, an optional IANA time zone at the very end, UTC if absent)::

    hours   := window (";" window)* [zone]
    window  := days " " HH:MM "-" HH:MM
    days    := day | day "-" day | day ("," day)* | "daily"

A window whose end is before its start runs past midnight and belongs to its start day
(``Fri 22:00-02:00`` takes Saturday 01:00). ``00:00-24:00`` is the whole day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW = re.compile(r"^(?P<days>[A-Za-z,\-]+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")


class HoursError(ValueError):
    """The hours text does not follow the grammar; the message says where."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: int  # minutes after midnight
    end: int  # minutes after midnight, 1..1440; < start means "past midnight"


@dataclass(frozen=True)
class Hours:
    windows: tuple[Window, ...]
    zone: ZoneInfo

    def is_open(self, when_utc: datetime) -> bool:
        """Whether ``when_utc`` (aware, or naive UTC) falls inside any window."""
        if when_utc.tzinfo is None:
            when_utc = when_utc.replace(tzinfo=ZoneInfo("UTC"))
        local = when_utc.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        today = local.weekday()
        yesterday = (local - timedelta(days=1)).weekday()
        for w in self.windows:
            if w.start < w.end:
                if today in w.days and w.start <= minute < w.end:
                    return True
            else:  # overnight window: the part after midnight belongs to the previous day
                if today in w.days and minute >= w.start:
                    return True
                if yesterday in w.days and minute < w.end:
                    return True
        return False


def _parse_days(text: str) -> frozenset[int]:
    text = text.lower()
    if text == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _day(first), _day(last)
            span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
            days.update(span)
        else:
            days.add(_day(part))
    return frozenset(days)


def _day(text: str) -> int:
    key = text.strip()
    # "Mon", "Mond", "Monday" — a prefix of the day's name, at least three letters.
    for index, name in enumerate(_DAY_NAMES):
        if len(key) >= 3 and name.startswith(key):
            return index
    raise HoursError(f"unknown day {key!r} (use Mon..Sun)")


def _minutes(text: str, *, allow_24: bool) -> int:
    hh, mm = (int(x) for x in text.split(":"))
    if mm > 59 or hh > 24 or (hh == 24 and (mm or not allow_24)):
        raise HoursError(f"bad time {text!r}")
    return hh * 60 + mm


def parse_hours(text: str) -> Hours:
    """Parse the buyer hours text, raising :class:`HoursError` with a precise message."""
    parts = [p.strip() for p in text.split(";")]
    zone = ZoneInfo("UTC")
    last_tokens = parts[-1].split()
    if last_tokens and ("/" in last_tokens[-1] or last_tokens[-1] == "UTC"):
        try:
            zone = ZoneInfo(last_tokens[-1])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise HoursError(f"unknown time zone {last_tokens[-1]!r}") from exc
        parts[-1] = " ".join(last_tokens[:-1])
    windows: list[Window] = []
    for part in parts:
        if not part:
            raise HoursError("empty window (expected e.g. 'Mon-Fri 09:00-17:00')")
        m = _WINDOW.match(part)
        if not m:
            raise HoursError(f"cannot read {part!r} (expected e.g. 'Mon-Fri 09:00-17:00')")
        start = _minutes(m["start"], allow_24=False)
        end = _minutes(m["end"], allow_24=True)
        if start == end:
            raise HoursError(f"window {part!r} is empty (start equals end)")
        windows.append(Window(_parse_days(m["days"]), start, end))
    return Hours(tuple(windows), zone)
