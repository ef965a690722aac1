"""The admin's date fields: what a field shows is read back as the same date, for every date
and language, and a time typed after it as the same moment (bot.admin.render)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from bot.admin.render import DATE_FIELD, date_value, read_date, read_local_time

days = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31))
languages = st.sampled_from(sorted(DATE_FIELD))


@given(days, languages)
def test_a_date_field_reads_back_the_date_it_shows(day: dt.date, language: str) -> None:
    assert read_date(date_value(day, language)) == day
    assert read_date(day.isoformat()) == day  # links and older forms send ISO


@given(days, languages, st.integers(0, 23), st.integers(0, 59))
def test_a_time_typed_after_the_date_is_that_moment(
    day: dt.date, language: str, hour: int, minute: int
) -> None:
    typed = f"{date_value(day, language)} {hour:02d}:{minute:02d}"
    assert read_local_time(typed) == dt.datetime.combine(day, dt.time(hour, minute))


@given(st.text(max_size=30))
def test_anything_else_is_no_date_or_a_real_one(raw: str) -> None:
    """Never an exception: a date the field can take, or None."""
    day = read_date(raw)
    assert day is None or isinstance(day, dt.date)
    moment = read_local_time(raw)
    assert moment is None or moment.tzinfo is None
