"""Data retention: message bodies older than the club's retention period are emptied (GDPR data
minimisation); the rows, and so every count, stay, as do consent events and the ledger."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, literal, select, update
from sqlalchemy.orm import Session

from store.loyalty.tiers import months_back
from store.models import InboundMessage, OutboxMessage, Program
from store.states import OutboxStatus

# Ids looked at per table by one call: a window of the primary key, so one call holds the
# SQLite writer for a bounded time whatever the backlog (PERFORMANCE.md: about 0.1 s to write
# 5,000 rows; a window with nothing left to empty is read in about 1 ms).
SPAN = 5000
# An outbox row whose sending is over; a queued or sending row keeps its body (it is still to go).
FINISHED = (
    OutboxStatus.SENT,
    OutboxStatus.SENT_INLINE,
    OutboxStatus.FAILED,
    OutboxStatus.SKIPPED,
    OutboxStatus.HELD_OUT,
)

_IN = InboundMessage.__table__
_OUT = OutboxMessage.__table__


def cut(program: Program, now: dt.datetime) -> dt.datetime:
    """The moment before which the club's texts lose their bodies: the start of the same
    calendar day `retention_months` ago in the club's time zone (the month's last day when
    that month is shorter), in UTC. The day as the club lives it: a text from 5 March 2025
    is emptied on 5 April 2026 with 13 months, whatever the hour."""
    zone = ZoneInfo(program.timezone)
    day = months_back(now.astimezone(zone).date(), program.retention_months)
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(dt.UTC)


def empty_old_bodies(
    session: Session,
    now: dt.datetime,
    *,
    start: int = 0,
    span: int = SPAN,
) -> int:
    """Empty (NULL, as erasure does) the bodies of every club's texts older than its cut among
    the ids [start, start + span) of each table: inbound texts (with the reply stored for a
    retry) and finished outbox rows (a queued or sending row is never touched). Returns how
    many rows were emptied; a row already empty is not counted again (idempotent).

    One window per call keeps the transaction short; `last_id` says where the windows end.
    The clubs' settings are read by each call, so a change made during a run applies."""
    cuts = {program.id: cut(program, now) for program in _all(session)}
    if not cuts:
        return 0
    end = start + span
    inbound = session.execute(
        update(_IN)
        .where(
            _IN.c.id >= start,
            _IN.c.id < end,
            (_IN.c.body.is_not(None)) | (_IN.c.reply.is_not(None)),
            _IN.c.received_at < _cut_of(_IN.c.program_id, _IN.c.received_at, cuts),
        )
        .values(body=None, reply=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    outbound = session.execute(
        update(_OUT)
        .where(
            _OUT.c.id >= start,
            _OUT.c.id < end,
            _OUT.c.body.is_not(None),
            _OUT.c.status.in_([str(s) for s in FINISHED]),
            _OUT.c.created_at < _cut_of(_OUT.c.program_id, _OUT.c.created_at, cuts),
        )
        .values(body=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return int(inbound or 0) + int(outbound or 0)


def last_id(session: Session) -> int:
    """The highest id of either message table (0: none): where `empty_old_bodies`'s windows
    end. Read once at the start of a run; texts that arrive during it are too new anyway."""
    highest = [session.scalar(select(func.max(table.c.id))) for table in (_IN, _OUT)]
    return max((h or 0) for h in highest)


def removed(program: Program, now: dt.datetime, at: dt.datetime | None, status: str | None) -> bool:
    """Whether a text with no body lost it to the retention rule (what the admin, the CLI and
    the exports then say): it is older than the club's cut, and (an outbox row) was sent or
    tried. A control group's row (held_out) never had a body; a row in the outbox still to
    go has none yet."""
    if at is None or at >= cut(program, now):
        return False
    return status is None or (status in FINISHED and status != OutboxStatus.HELD_OUT)


def _cut_of(
    club: ColumnElement[int], at: ColumnElement[dt.datetime], cuts: dict[int, dt.datetime]
) -> ColumnElement[dt.datetime]:
    """Each row's club's cut, in one statement for every club (a club not named: no cut, so
    NULL, and `<` keeps the row)."""
    return case(
        {program_id: literal(moment, type_=at.type) for program_id, moment in cuts.items()},
        value=club,
    )


def _all(session: Session) -> list[Program]:
    return list(session.scalars(select(Program).order_by(Program.id)))
