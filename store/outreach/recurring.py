"""The club's year of offers: recurring broadcasts (every month on a day, every year on a date)
and broadcasts timed before a sale. A series never sends itself: the planner makes each of its
occurrences a broadcast of its own, planned, capped and reported like any other."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from store import states
from store.errors import Conflict
from store.models import Campaign, Program, Segment
from store.outreach import campaigns
from store.outreach.campaigns import ACTIVE, BROADCAST, PAUSED, BadBroadcast

MONTH, YEAR = "month", "year"
LAST = "last"  # a monthly series on the month's last day
MAX_DAY = 28  # a day every month has: "last" covers the 29th to the 31st
# An occurrence the planner missed (no scheduler running at its time) is still made this late;
# later than that, it is skipped: a sale's offer a day late is worse than none.
GRACE = dt.timedelta(hours=6)
MAX_DAYS_BEFORE = 90
_TABLE = Campaign.__table__
_CLOCK = re.compile(r"^([01]?\d|2[0-3])[:.]([0-5]\d)$")
_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})$")  # 12-01: December 1st (ISO order)
_DAY_MONTH = re.compile(r"^(\d{1,2})\.(\d{1,2})\.?$")  # 01.12: December 1st (nb, sv)

INSERT_OCCURRENCE = {
    "sqlite": sqlite.insert(_TABLE).on_conflict_do_nothing(
        index_elements=["parent_id", "occurrence"]
    ),
    "postgresql": postgresql.insert(_TABLE).on_conflict_do_nothing(
        index_elements=["parent_id", "occurrence"]
    ),
}


@dataclass(frozen=True, slots=True)
class Recurrence:
    """When a series makes an occurrence: `every` month on `day` (1-28 or "last"), or every
    year on `month`/`day` (29 Feb falls on 28 Feb in other years); at `at`, the club's time."""

    every: str
    day: int | str
    at: dt.time
    month: int | None = None

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"every": self.every, "day": self.day, "at": f"{self.at:%H:%M}"}
        if self.month is not None:
            shown["month"] = self.month
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recurrence:
        hour, minute = (int(part) for part in str(data.get("at", "10:00")).split(":"))
        month = data.get("month")
        return cls(
            every=str(data["every"]),
            day=data["day"] if data["day"] == LAST else int(data["day"]),
            at=dt.time(hour, minute),
            month=None if month is None else int(month),
        )

    def date_in(self, year: int, month: int) -> dt.date:
        """Its day in a month (monthly) or in a year (yearly; `month` is then ignored)."""
        if self.every == YEAR:
            assert self.month is not None
            assert isinstance(self.day, int)
            last = calendar.monthrange(year, self.month)[1]
            return dt.date(year, self.month, min(self.day, last))
        last = calendar.monthrange(year, month)[1]
        return dt.date(year, month, last if self.day == LAST else min(int(self.day), last))

    def moment(self, day: dt.date, zone: ZoneInfo) -> dt.datetime:
        """An occurrence's send time: its day at `at` in the club's zone, as UTC."""
        return dt.datetime.combine(day, self.at, tzinfo=zone).astimezone(dt.UTC)

    def dates_around(self, day: dt.date) -> list[dt.date]:
        """Its dates from the period before `day`'s to two after, in order."""
        if self.every == YEAR:
            return [self.date_in(day.year + step, 1) for step in (-1, 0, 1, 2)]
        found = []
        for step in (-1, 0, 1, 2):
            index = day.year * 12 + day.month - 1 + step
            found.append(self.date_in(index // 12, index % 12 + 1))
        return found


def recurrence(
    every: str, *, day: str | int | None = None, date: str | None = None, at: str = "10:00"
) -> Recurrence:
    """A recurrence from what an owner typed: every "month" on `day` (1-28 or "last") or
    every "year" on `date` ("12-01" or "01.12"), at `at` ("10:00"). BadBroadcast names the
    field (every, day, date, at) otherwise."""
    clock = _CLOCK.match(str(at).strip())
    if clock is None:
        raise BadBroadcast("at", "a time of day, e.g. 10:00", "recurrence_at")
    when = dt.time(int(clock[1]), int(clock[2]))
    if every == MONTH:
        raw = str(day if day is not None else "").strip().lower()
        if raw == LAST:
            return Recurrence(MONTH, LAST, when)
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAY:
            raise BadBroadcast("day", f"a day 1-{MAX_DAY} or 'last'", "recurrence_day", max=MAX_DAY)
        return Recurrence(MONTH, int(raw), when)
    if every == YEAR:
        raw = str(date or "").strip()
        iso, local = _MONTH_DAY.match(raw), _DAY_MONTH.match(raw)
        month, day_of = (
            (int(iso[1]), int(iso[2]))
            if iso
            else (int(local[2]), int(local[1]))
            if local
            else (0, 0)
        )
        # 2024 is a leap year: 29 Feb is a date a yearly series may have.
        if not 1 <= month <= 12 or not 1 <= day_of <= calendar.monthrange(2024, month)[1]:
            raise BadBroadcast(
                "date", "a day of the year, e.g. 12-01 (1 December)", "recurrence_date"
            )
        return Recurrence(YEAR, day_of, when, month=month)
    raise BadBroadcast("every", "'month' or 'year'", "recurrence_every")


def series_of(campaign: Campaign) -> Recurrence | None:
    """The campaign's recurrence when it is a series (None for a plain broadcast)."""
    return Recurrence.from_json(campaign.recurrence) if campaign.recurrence else None


def due_date(
    rule: Recurrence, zone: ZoneInfo, now: dt.datetime, since: dt.datetime
) -> dt.date | None:
    """The occurrence to make now: the latest whose time, less PLAN_AHEAD, has come, if it is
    not before `since` (the series' creation) nor more than GRACE ago."""
    local = now.astimezone(zone).date()
    chosen = None
    for day in rule.dates_around(local):
        if rule.moment(day, zone) - campaigns.PLAN_AHEAD <= now:
            chosen = day
    if chosen is None:
        return None
    moment = rule.moment(chosen, zone)
    if moment < since or now - moment > GRACE:
        return None
    return chosen


def next_moment(
    campaign: Campaign, zone: ZoneInfo, now: dt.datetime, last: str | None = None
) -> dt.datetime | None:
    """When the series' next occurrence goes (None unless it is active): the first of its
    dates after `last` (the latest made) that the planner will still make."""
    rule = series_of(campaign)
    if rule is None or campaign.status != ACTIVE:
        return None
    local = now.astimezone(zone).date()
    for day in rule.dates_around(local):
        moment = rule.moment(day, zone)
        if last is not None and day.isoformat() <= last:
            continue
        if moment >= campaign.created_at and now - moment <= GRACE:
            return moment
    return None


def create_series(
    session: Session,
    program: Program,
    *,
    rule: Recurrence,
    now: dt.datetime,
    **options: Any,
) -> Campaign:
    """A series: create_broadcast's checks and options (no send_at: each occurrence has its
    own), made active. Raises as create_broadcast does."""
    options.pop("send_at", None)
    campaign = campaigns.create_broadcast(session, program, now=now, **options)
    # Born a series in the transaction that makes it: the row is never committed as a
    # scheduled broadcast. No send_at: the reports list broadcasts by it, and a series sends
    # nothing of its own (each occurrence has its send_at and its report).
    campaign.status = ACTIVE
    campaign.send_at = None
    campaign.recurrence = rule.to_json()
    session.flush()
    return campaign


def first_moment(rule: Recurrence, program: Program, now: dt.datetime) -> dt.datetime:
    """When a series made now would send its first occurrence (what its preview shows)."""
    zone = ZoneInfo(program.timezone)
    for day in rule.dates_around(now.astimezone(zone).date()):
        moment = rule.moment(day, zone)
        if moment >= now:
            return moment
    raise AssertionError("a recurrence has a date in every two periods")  # pragma: no cover


def make_due(session: Session, now: dt.datetime) -> list[int]:
    """Make every active series' occurrence that is due (see due_date) a scheduled broadcast:
    its parent, its date, its send_at, and the series' texts, audience, coupon and control
    group. One query finds the series and the latest occurrence each has made; an occurrence
    made twice (two planners, a rerun) is one row (the unique (parent_id, occurrence))."""
    child = aliased(Campaign)
    latest = (
        select(func.max(child.occurrence)).where(child.parent_id == Campaign.id).scalar_subquery()
    )
    found = session.execute(
        select(Campaign, Program.timezone, latest)
        .join(Program, Program.id == Campaign.program_id)
        .where(Campaign.kind == BROADCAST, Campaign.status == ACTIVE)
    ).all()
    made: list[int] = []
    for series, timezone, last in found:
        rule = series_of(series)
        if rule is None:
            continue
        zone = ZoneInfo(timezone)
        day = due_date(rule, zone, now, series.created_at)
        if day is None or (last is not None and day.isoformat() <= last):
            continue
        new_id = make_occurrence(session, series, day, zone, now)
        if new_id is not None:
            made.append(new_id)
    return made


def make_occurrence(
    session: Session, series: Campaign, day: dt.date, zone: ZoneInfo, now: dt.datetime
) -> int | None:
    """The series' occurrence of `day` as a scheduled broadcast: its id, or None when it was
    made already (by another planner too: ON CONFLICT on (parent_id, occurrence), no error)."""
    rule = series_of(series)
    assert rule is not None
    insert = INSERT_OCCURRENCE[session.get_bind().dialect.name]
    filter = series.filter
    segment = session.get(Segment, series.segment_id) if series.segment_id else None
    if segment is not None:
        # A saved segment as it is now: the owner who edits "VIP" edits next month's list.
        filter = dict(segment.filter)
    new_id = session.scalar(
        insert.values(
            program_id=series.program_id,
            name=series.name,
            kind=BROADCAST,
            texts=series.texts,
            # A JSON None would be stored as 'null', not as no settings.
            **({"settings": series.settings} if series.settings else {}),
            segment_id=series.segment_id,
            filter=filter,
            coupon_template_id=series.coupon_template_id,
            control_percent=series.control_percent,
            status=campaigns.SCHEDULED,
            send_at=rule.moment(day, zone),
            planned_through=0,
            created_by=series.created_by,
            created_at=now,
            parent_id=series.id,
            occurrence=day.isoformat(),
        ).returning(_TABLE.c.id)
    )
    return None if new_id is None else int(new_id)


def occurrences(session: Session, series_id: int, limit: int = 24) -> list[Campaign]:
    """A series' latest occurrences, newest first."""
    return list(
        session.scalars(
            select(Campaign)
            .where(Campaign.parent_id == series_id)
            .order_by(Campaign.occurrence.desc())
            .limit(limit)
        )
    )


def latest_made(session: Session, series_ids: list[int]) -> dict[int, str]:
    """Each series' latest occurrence made (its date), in one query."""
    if not series_ids:
        return {}
    rows = session.execute(
        select(Campaign.parent_id, func.max(Campaign.occurrence))
        .where(Campaign.parent_id.in_(series_ids))
        .group_by(Campaign.parent_id)
    )
    return {int(parent): str(day) for parent, day in rows if parent is not None}


def pause(session: Session, program_id: int, series_id: int) -> Campaign:
    """Stop making occurrences until resumed (Conflict: not a series, or cancelled)."""
    return _move(session, program_id, series_id, PAUSED)


def resume(session: Session, program_id: int, series_id: int) -> Campaign:
    """Make occurrences again, from the next date on (one missed while paused is not made
    unless its time was less than GRACE ago)."""
    return _move(session, program_id, series_id, ACTIVE)


def _move(session: Session, program_id: int, series_id: int, status: str) -> Campaign:
    series = campaigns.get(session, program_id, series_id)
    if series_of(series) is None:
        raise Conflict("not_a_series", "only a recurring broadcast is paused or resumed")
    if not states.allowed("series", series.status, status):
        raise Conflict(f"series_{series.status}", f"the series is {series.status}")
    series.status = states.move("series", series.status, status, what=series.id)
    return series


# --- before a sale ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BeforeSale:
    """A broadcast timed `days` and `hours` before a sale starting at `sale_starts_at`."""

    sale_starts_at: dt.datetime
    days: int
    hours: int = 0

    @property
    def send_at(self) -> dt.datetime:
        return self.sale_starts_at - dt.timedelta(days=self.days, hours=self.hours)

    def to_json(self) -> dict[str, Any]:
        return {
            "sale_starts_at": self.sale_starts_at.astimezone(dt.UTC).isoformat(),
            "days_before": self.days,
            "hours_before": self.hours,
        }


def before_sale(
    sale_starts_at: dt.datetime, *, days: int, hours: int = 0, now: dt.datetime
) -> BeforeSale:
    """The send time `days` and `hours` before the sale: BadBroadcast naming the field when
    the sale has no zone, the gap is out of range or nothing, or the time is already past."""
    if sale_starts_at.tzinfo is None:
        raise BadBroadcast("sale_at", "needs a time zone", "zone")
    if not 0 <= days <= MAX_DAYS_BEFORE:
        raise BadBroadcast(
            "days_before", f"0 to {MAX_DAYS_BEFORE} days", "days_before", max=MAX_DAYS_BEFORE
        )
    if not 0 <= hours <= 23:
        raise BadBroadcast("hours_before", "0 to 23 hours", "hours_before")
    if days == 0 and hours == 0:
        raise BadBroadcast("days_before", "at least an hour before the sale", "days_before_none")
    timed = BeforeSale(sale_starts_at, days, hours)
    if timed.send_at < now:
        raise BadBroadcast(
            "sale_at",
            f"{days} days and {hours} hours before it is in the past",
            "sale_past",
        )
    return timed


def create_before_sale(
    session: Session, program: Program, *, timed: BeforeSale, now: dt.datetime, **options: Any
) -> Campaign:
    """A broadcast sent at `timed.send_at`, the sale kept in its settings so its page says
    "2 days before the sale on 20 Dec 09:00". Raises as create_broadcast does."""
    options["send_at"] = timed.send_at
    campaign = campaigns.create_broadcast(session, program, now=now, **options)
    # Beside what else its settings hold (a favourite category offer's coupons).
    campaign.settings = {**(campaign.settings or {}), **timed.to_json()}
    session.flush()
    return campaign


def sale_of(campaign: Campaign) -> BeforeSale | None:
    """The sale a broadcast was timed before, as it was stored (None for any other)."""
    settings = campaign.settings or {}
    raw = settings.get("sale_starts_at")
    if not raw:
        return None
    return BeforeSale(
        dt.datetime.fromisoformat(str(raw)),
        int(settings.get("days_before", 0)),
        int(settings.get("hours_before", 0)),
    )
