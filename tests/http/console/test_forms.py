"""Reading the console's form values: times typed in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rtbridge.config.fields import FieldError
from rtbridge.http.console.forms import utc_time


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("2031-07-08 09:10", datetime(2031, 7, 8, 9, 10, tzinfo=UTC)),
        ("  2031-07-08T09:10  ", datetime(2031, 7, 8, 9, 10, tzinfo=UTC)),
        ("2031-07-08 09:10:30", datetime(2031, 7, 8, 9, 10, 30, tzinfo=UTC)),
        ("2031-07-08T09:10:30.250Z", datetime(2031, 7, 8, 9, 10, 30, 250000, tzinfo=UTC)),
        ("2031-07-08 09:10 UTC", datetime(2031, 7, 8, 9, 10, tzinfo=UTC)),
        ("2031-07-08T11:10+02:00", datetime(2031, 7, 8, 9, 10, tzinfo=UTC)),  # an offset: kept
        ("", None),
        (None, None),
    ],
)
def test_a_utc_time_is_read_as_utc(typed: str | None, read: datetime | None) -> None:
    assert utc_time(typed) == read


NOT_UTC = ["07/08/2031 9:10 AM", "2031-07-08", "2031-02-30 09:10", "2031-07-08 9:10", "soon",
           "\u0662031-07-08 09:10", "2031-07-08 09:10 CET"]  # fmt: skip


@pytest.mark.parametrize("typed", NOT_UTC)
def test_anything_else_says_how_to_write_it(typed: str) -> None:
    with pytest.raises(FieldError, match=r"write YYYY-MM-DD HH:MM, e\.g\. 2026-12-31 23:59"):
        utc_time(typed)
