"""The guard rails every marketing SMS passes, when planned and again when sent: the per-member
cap, quiet hours in the member's zone, and the member's own time zone (consent, the first rail,
is store.members.consent's: may_receive there)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_zones
from sqlalchemy import ColumnElement, Connection, bindparam, func, select

from store.models import Member, OutboxMessage, Program
from store.states import OutboxStatus

# The cap counts marketing messages within this rolling window.
CAP_WINDOW = dt.timedelta(days=30)
# Rows that are, or will be, an SMS in the member's phone (held_out and skipped are not).
COUNTED = (OutboxStatus.QUEUED, OutboxStatus.SENDING, OutboxStatus.SENT)
MARKETING = "marketing"

_MEMBERS = Member.__table__
_OUTBOX = OutboxMessage.__table__


def under_cap(
    program: Program, moment: dt.datetime, *, per_member: bool = False
) -> ColumnElement[bool]:
    """The cap as SQL over `members`, for a message planned to go at `moment`.

    Counts the member's marketing messages planned or sent within 30 days either side of it:
    any 30-day window that holds the new message then holds at most `cap` of them.

    For a whole club (a preview) one uncorrelated subquery over the club-led index, read once.
    `per_member` counts each member's own rows instead, from the member-led index: a planning
    chunk of 5,000 members reads their rows only, not the whole club's window every chunk."""
    window = (
        _OUTBOX.c.kind == MARKETING,
        _OUTBOX.c.send_after > moment - CAP_WINDOW,
        _OUTBOX.c.send_after < moment + CAP_WINDOW,
        _OUTBOX.c.status.in_(COUNTED),
    )
    if per_member:
        count = (
            select(func.count())
            .where(_OUTBOX.c.member_id == _MEMBERS.c.id, *window)
            .scalar_subquery()
        )
        return count < program.marketing_per_month
    crowded = (
        select(_OUTBOX.c.member_id)
        .where(_OUTBOX.c.program_id == program.id, _OUTBOX.c.member_id.is_not(None), *window)
        .group_by(_OUTBOX.c.member_id)
        .having(func.count() >= program.marketing_per_month)
    )
    return _MEMBERS.c.id.not_in(crowded)


_SENT_RECENTLY = (
    select(_OUTBOX.c.member_id, func.count())
    .where(
        # By member only (the ids are the club's), and the status wrapped so it can't lead:
        # offered program_id or status, SQLite's planner walks every row of the 30-day window
        # (all of a running campaign's sent rows) for each batch instead of 500 members' own.
        _OUTBOX.c.kind == MARKETING,
        _OUTBOX.c.member_id.in_(bindparam("member_ids", expanding=True)),
        func.coalesce(_OUTBOX.c.status, "").in_((OutboxStatus.SENDING, OutboxStatus.SENT)),
        # When it reached the member, not when it was planned: a message of a backlog sent an
        # hour late counts from then (the member's 30 days), one being sent counts as now. The
        # planned time only bounds the index's range (a row planned before that and sent
        # within the window would have waited a whole window in the queue).
        _OUTBOX.c.send_after > bindparam("planned_since"),
        func.coalesce(_OUTBOX.c.sent_at, bindparam("now")) > bindparam("since"),
        _OUTBOX.c.id.not_in(bindparam("claiming", expanding=True)),
    )
    .group_by(_OUTBOX.c.member_id)
)


def sent_recently(
    connection: Connection,
    member_ids: list[int],
    claiming: list[int],
    now: dt.datetime,
) -> dict[int, int]:
    """Marketing messages each member was sent (by the time it was sent) or is being sent in
    the last 30 days, not counting the rows being claimed now: the cap's second check, right
    before sending, which keeps the cap by what members receive."""
    if not member_ids:
        return {}
    rows = connection.execute(
        _SENT_RECENTLY,
        {
            "member_ids": member_ids,
            "claiming": claiming or [-1],
            "since": now - CAP_WINDOW,
            "planned_since": now - 2 * CAP_WINDOW,
            "now": now,
        },
    )
    return {member_id: count for member_id, count in rows.all()}  # noqa: C416


def _zone_name(phone: str, fallback: str) -> str:
    try:
        parsed = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return fallback
    zones = [z for z in phone_zones.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    # A country spanning zones (+1) gives several: the club's own wins if it is one of them.
    if not zones or fallback in zones:
        return fallback
    return zones[0]


def zone_of(phone: str | None, club_zone: str) -> ZoneInfo:
    """The member's time zone, from the number's country (a Swede in a Norwegian club is still
    in Stockholm); the club's zone when the number says nothing more precise."""
    if not phone:
        return ZoneInfo(club_zone)
    # Cached by the number's first digits (the country code and, for +1, the area code):
    # parsing every number of a campaign costs more than sending it. Prefixes are few.
    key = (phone[:6], club_zone)
    name = _ZONES.get(key)
    if name is None:
        name = _ZONES[key] = _zone_name(phone, club_zone)
    return ZoneInfo(name)


_ZONES: dict[tuple[str, str], str] = {}


def quiet_until(moment: dt.datetime, zone: ZoneInfo, start: int, end: int) -> dt.datetime | None:
    """When the quiet hours that hold `moment` end (an instant), or None if it is not quiet.

    Quiet from `start`:00 to `end`:00 local time (20 and 9 by default; start == end means never
    quiet). Computed with the zone's rules, so a night across a DST change still ends at 09:00.
    """
    if start == end:
        return None
    local = moment.astimezone(zone)
    hour = local.hour
    overnight = start > end
    quiet = (hour >= start or hour < end) if overnight else (start <= hour < end)
    if not quiet:
        return None
    day = local.date()
    if overnight and hour >= start:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(end), tzinfo=zone).astimezone(dt.UTC)


def first_moment(moment: dt.datetime, zone: ZoneInfo, start: int, end: int) -> dt.datetime:
    """`moment`, or the end of the quiet hours it falls in."""
    return quiet_until(moment, zone, start, end) or moment
