"""`klubb campaign send --every month|year` makes a series, `--before-sale` times a broadcast
before a sale; `klubb campaign list` shows a series' rule and next time, `cancel` stops it."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

# The fixtures imported are the tests' arguments (F811 each time otherwise).
# ruff: noqa: F811
from tests.cli.test_campaigns import campaigns_in, klubb, url  # noqa: F401 (fixtures)

OSLO = ZoneInfo("Europe/Oslo")


def in_days(days: int, clock: str = "09:00") -> str:
    day = dt.datetime.now(OSLO).date() + dt.timedelta(days=days)
    return f"{day.isoformat()}T{clock}"


def test_a_monthly_series_is_made_listed_and_cancelled(klubb: Any, url: str) -> None:
    sent = klubb(
        "campaign", "send", "--text", "Hei {first_name}!", "--every", "month", "--day", "15",
        "--at", "10:00", "--name", "Månedens", "--yes",
    )  # fmt: skip
    assert sent.code == 0, sent.err
    assert "repeats" in sent.out
    assert "every month on day 15 at 10:00" in sent.out
    (series,) = campaigns_in(url)
    assert (series.status, series.send_at) == ("active", None)
    assert series.recurrence == {"every": "month", "day": 15, "at": "10:00"}

    listed = klubb("campaign", "list")
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if "Månedens" in line)
    assert "series active" in row
    assert "every month on day 15 at 10:00, next" in row

    cancelled = klubb("campaign", "cancel", str(series.id))
    assert cancelled.code == 0, cancelled.err
    assert "cancelled series" in cancelled.out
    assert campaigns_in(url)[0].status == "cancelled"


def test_a_yearly_series(klubb: Any, url: str) -> None:
    sent = klubb(
        "campaign", "send", "--text", "God jul!", "--every", "year", "--date", "12-01", "--yes",
    )  # fmt: skip
    assert sent.code == 0, sent.err
    assert campaigns_in(url)[0].recurrence == {
        "every": "year",
        "day": 1,
        "month": 12,
        "at": "10:00",
    }


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("--every", "month", "--day", "31"), "--day: a day 1-28 or 'last'"),
        (("--every", "year", "--date", "02-30"), "--date: a day of the year"),
        (("--every", "month", "--day", "1", "--at", "noon"), "--at: a time of day"),
        (("--before-sale", in_days(1), "--days-before", "3"), "--before-sale: 3 days"),
        (("--before-sale", in_days(5)), "--days-before: at least an hour"),
        (("--before-sale", "soon", "--days-before", "1"), "--before-sale: 'soon' is not"),
        (("--every", "month", "--before-sale", in_days(5)), "don't go together"),
    ],
)
def test_bad_timing_is_one_line_naming_the_flag(
    klubb: Any, url: str, flags: tuple[str, ...], named: str
) -> None:
    refused = klubb("campaign", "send", "--text", "Hei!", *flags, "--yes")
    assert refused.code == 2
    assert named in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    assert campaigns_in(url) == []


def test_before_a_sale(klubb: Any, url: str) -> None:
    sent = klubb(
        "campaign", "send", "--text", "Gjør deg klar!", "--before-sale", in_days(10),
        "--days-before", "2", "--hours-before", "1", "--yes",
    )  # fmt: skip
    assert sent.code == 0, sent.err
    assert "2 days 1 hours before the sale on" in sent.out
    (made,) = campaigns_in(url)
    sale = dt.datetime.fromisoformat(in_days(10)).replace(tzinfo=OSLO)
    assert made.send_at == sale - dt.timedelta(days=2, hours=1)
    assert made.settings["days_before"] == 2
