"""The points ledger: append-only entries, and the lots they leave, spent and expired oldest first.

Every change is a `LedgerEntry` (earn, refund, spend, expire, adjust, bonus) and is never edited.
Each positive entry opens a lot (`PointLot`) that ends when the club's points lifetime is up; a
negative entry takes from the open lots oldest first. The lots are the ledger allocated, so
SUM(entries) == SUM(lots.remaining) always holds (a property test checks it), and the balance at
any instant is the sum of the open lots that have not reached their end, read from the few open
lots rather than the whole history.

Each member's row keeps what its open lots (remaining > 0) hold, `open_points`, and their
earliest end, `open_points_until`, written in the statements' transaction by the three writers of
lots here (credit, debit, _expire): `held(now)` reads a balance from the row alone, unless one of
those lots has ended and the daily job has not settled it yet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from store.database import plain_rows
from store.errors import Conflict, InvalidInput, NotEnoughPoints
from store.models import LedgerEntry, Member, PointLot, Program, Refund, UTCDateTime

EARN = "earn"
REFUND = "refund"
SPEND = "spend"
EXPIRE = "expire"
ADJUST = "adjust"
BONUS = "bonus"
KINDS = frozenset({EARN, REFUND, SPEND, EXPIRE, ADJUST, BONUS})
# A manual adjustment: points fit a 32-bit INTEGER with room to spare; the reason is shown in
# the member's history (the column's length), the actor is who made it (its column's length).
MAX_ADJUSTMENT = 10_000_000
MAX_REASON = 200
MAX_ACTOR = 60

_ENTRIES = LedgerEntry.__table__
_LOTS = PointLot.__table__
_MEMBERS = Member.__table__
_REFUNDS = Refund.__table__
# A lot with points left, written as the partial indexes on lots say it (a literal, not a
# parameter): a statement PostgreSQL has prepared can then use them in its generic plan, and
# is not planned again at each execution.
OPEN_LOT = _LOTS.c.remaining > literal_column("0")
_INSERT_ENTRY = insert(_ENTRIES).returning(_ENTRIES.c.id)
_INSERT_LOT = insert(_LOTS)
_INSTANT = UTCDateTime()
# A lot opened: its points join the member's, and its end may be the earliest.
_OPENED = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id == bindparam("who"))
    .values(
        open_points=_MEMBERS.c.open_points + bindparam("points"),
        open_points_until=case(
            (
                or_(
                    _MEMBERS.c.open_points_until.is_(None),
                    _MEMBERS.c.open_points_until > bindparam("ends", type_=_INSTANT),
                ),
                bindparam("ends", type_=_INSTANT),
            ),
            else_=_MEMBERS.c.open_points_until,
        ),
    )
)
# Lots taken from (a debit, which has read all of them): what they hold now, set outright.
_TAKEN = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id == bindparam("who"))
    .values(open_points=bindparam("points"), open_points_until=bindparam("until", type_=_INSTANT))
)
# Lots settled by expiry: their points go, and the earliest end is read again from the member's
# open lots (the covering index of open lots, a few entries).
_SETTLED = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id == bindparam("who"))
    .values(
        open_points=_MEMBERS.c.open_points - bindparam("points"),
        open_points_until=select(func.min(_LOTS.c.expires_at))
        .where(_LOTS.c.member_id == bindparam("who"), OPEN_LOT)
        .scalar_subquery(),
    )
)


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def lot_end(program: Program, earned_at: dt.datetime) -> dt.datetime:
    """When points earned at `earned_at` expire: at the end of the month, `lifetime` months on
    (points earned in January 2026 with a 24-month lifetime expire when January 2028 ends), so a
    member's points expire on a few dates a year rather than one a purchase."""
    zone = ZoneInfo(program.timezone)
    local = earned_at.astimezone(zone).date()
    end = add_months(local, program.points_lifetime_months + 1)
    return dt.datetime(end.year, end.month, end.day, tzinfo=zone).astimezone(dt.UTC)


def lock_member(session: Session, member_id: int) -> None:
    """Serialise changes to one member's points (PostgreSQL; SQLite's single writer already
    does). Every writer of the ledger takes this lock first, so a spend reads a balance no
    concurrent purchase or claim can change under it."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            select(_MEMBERS.c.id).where(_MEMBERS.c.id == member_id).with_for_update()
        )


def credit(
    session: Session,
    program: Program,
    member_id: int,
    points: int,
    kind: str,
    now: dt.datetime,
    *,
    purchase_id: int | None = None,
    coupon_id: int | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> int:
    """Add points as a new lot; returns the entry id."""
    if points <= 0:
        raise ValueError("a credit adds a positive number of points")
    if kind not in (EARN, ADJUST, BONUS):
        raise ValueError(f"{kind!r} does not add points")
    expires_at = lot_end(program, now)
    conn = session.connection()
    entry_id: int = conn.execute(
        _INSERT_ENTRY,
        {
            "program_id": program.id,
            "member_id": member_id,
            "kind": kind,
            "points": points,
            "tier_points": points if kind == EARN else 0,
            "purchase_id": purchase_id,
            "refund_id": None,
            "coupon_id": coupon_id,
            "lot_id": None,
            "reason": reason,
            "actor": actor,
            "expires_at": expires_at,
            "created_at": now,
        },
    ).scalar_one()
    conn.execute(
        _INSERT_LOT,
        {
            "entry_id": entry_id,
            "program_id": program.id,
            "member_id": member_id,
            "points": points,
            "remaining": points,
            "expires_at": expires_at,
        },
    )
    conn.execute(_OPENED, {"who": member_id, "points": points, "ends": expires_at})
    return entry_id


def debit(
    session: Session,
    program_id: int,
    member_id: int,
    points: int,
    kind: str,
    now: dt.datetime,
    *,
    partial: bool = False,
    purchase_id: int | None = None,
    refund_id: int | None = None,
    coupon_id: int | None = None,
    reason: str | None = None,
    actor: str | None = None,
    tier_points: int = 0,
) -> int:
    """Take points from the oldest open lots; returns the points taken.

    More than the balance raises NotEnoughPoints, unless `partial` (a refund takes back what is
    left when the points were already spent: the balance never goes below zero)."""
    if points <= 0:
        raise ValueError("a debit takes a positive number of points")
    if kind not in (REFUND, SPEND, ADJUST):
        raise ValueError(f"{kind!r} does not take points")
    # The member lock makes two spends of one balance run one after the other; the lots are
    # locked too, so a daily expiry closing one of them at the same time is waited for.
    lock_member(session, member_id)
    settle_expiry(session, program_id, member_id, now)
    conn = session.connection()
    lots = conn.execute(
        select(_LOTS.c.entry_id, _LOTS.c.remaining, _LOTS.c.expires_at)
        .where(_LOTS.c.member_id == member_id, OPEN_LOT)
        .order_by(_LOTS.c.expires_at, _LOTS.c.entry_id)
        .with_for_update()
    ).all()
    available = sum(lot.remaining for lot in lots)
    if available < points and not partial:
        raise NotEnoughPoints(available, points)
    wanted = min(points, available)
    left = wanted
    until = None  # the end of the first lot left open (they are read soonest end first)
    for lot in lots:
        if left == 0:
            until = lot.expires_at
            break
        take = min(left, lot.remaining)
        conn.execute(
            update(_LOTS)
            .where(_LOTS.c.entry_id == lot.entry_id)
            .values(remaining=_LOTS.c.remaining - take)
        )
        left -= take
        if take < lot.remaining:
            until = lot.expires_at
            break
    if wanted:
        conn.execute(_TAKEN, {"who": member_id, "points": available - wanted, "until": until})
    if wanted or kind == REFUND:
        conn.execute(
            _INSERT_ENTRY,
            {
                "program_id": program_id,
                "member_id": member_id,
                "kind": kind,
                "points": -wanted,
                "tier_points": tier_points,
                "purchase_id": purchase_id,
                "refund_id": refund_id,
                "coupon_id": coupon_id,
                "lot_id": None,
                "reason": reason,
                "actor": actor,
                "expires_at": None,
                "created_at": now,
            },
        )
    return wanted


def adjust(
    session: Session,
    program: Program,
    member: Member,
    points: int,
    now: dt.datetime,
    *,
    reason: str,
    actor: str,
) -> int:
    """Staff add (points > 0) or take (points < 0) points with a reason; returns the new balance.

    The one rule for the API and the admin: a reason is required, points are for members who
    have joined, and taking more than the balance raises NotEnoughPoints (nothing is taken)."""
    why = reason.strip()
    if not why:
        raise InvalidInput("reason", "say why")
    if len(why) > MAX_REASON:
        raise InvalidInput("reason", f"at most {MAX_REASON} characters")
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise InvalidInput("points", f"non-zero, between -{MAX_ADJUSTMENT} and {MAX_ADJUSTMENT}")
    if member.joined_at is None:
        raise Conflict(
            "not_joined", f"member {member.id} has not joined the club: enrol them first"
        )
    lock_member(session, member.id)
    # An admin's email may be longer than the column; its start still says who it was.
    who = {"reason": why, "actor": actor[:MAX_ACTOR]}
    if points > 0:
        credit(session, program, member.id, points, ADJUST, now, **who)
    else:
        debit(session, program.id, member.id, -points, ADJUST, now, **who)
    return balance(session, member.id, now)


def settle_expiry(session: Session, program_id: int, member_id: int, now: dt.datetime) -> int:
    """Write the expire entries of this member's lots that have reached their end."""
    due = session.connection().execute(
        select(_LOTS.c.entry_id, _LOTS.c.remaining, _LOTS.c.expires_at).where(
            _LOTS.c.member_id == member_id, OPEN_LOT, _LOTS.c.expires_at <= now
        )
    )
    return _expire(session, [(program_id, member_id, *lot) for lot in due])


def expire_due(session: Session, now: dt.datetime, limit: int = 5000) -> int:
    """The daily job: close every lot that has reached its end, `limit` at a time; returns how
    many were closed (the job calls again until none are left)."""
    due = session.connection().execute(
        select(
            _LOTS.c.program_id,
            _LOTS.c.member_id,
            _LOTS.c.entry_id,
            _LOTS.c.remaining,
            _LOTS.c.expires_at,
        )
        .where(OPEN_LOT, _LOTS.c.expires_at <= now)
        .order_by(_LOTS.c.expires_at)
        .limit(limit)
    )
    return _expire(session, list(due))


def _expire(session: Session, lots: list[tuple[int, int, int, int, dt.datetime]]) -> int:
    conn = session.connection()
    if lots and session.get_bind().dialect.name == "postgresql":
        # The members first, in id order, as every writer of lots locks its member first: a
        # spend holding a member's row and waiting for their lot would otherwise deadlock with
        # this batch holding the lot and waiting for the row (to write open_points).
        conn.execute(
            select(_MEMBERS.c.id)
            .where(_MEMBERS.c.id.in_(sorted({lot[1] for lot in lots})))
            .order_by(_MEMBERS.c.id)
            .with_for_update()
        )
    closed = 0
    settled: dict[int, int] = {}  # member -> points of their lots closed here
    for program_id, member_id, entry_id, remaining, expires_at in lots:
        # Only if the lot still holds what was read: a concurrent run of the job (or a spend
        # that settled it first) has written its expire entry already, and it must not be
        # written twice.
        changed = conn.execute(
            update(_LOTS)
            .where(_LOTS.c.entry_id == entry_id, _LOTS.c.remaining == remaining)
            .values(remaining=0)
        ).rowcount
        if changed != 1:
            continue
        closed += 1
        settled[member_id] = settled.get(member_id, 0) + remaining
        conn.execute(
            _INSERT_ENTRY,
            {
                "program_id": program_id,
                "member_id": member_id,
                "kind": EXPIRE,
                "points": -remaining,
                "tier_points": 0,
                "purchase_id": None,
                "refund_id": None,
                "coupon_id": None,
                "lot_id": entry_id,
                "reason": None,
                "actor": None,
                "expires_at": None,
                # Dated when the lot ended, not when the job ran: the history reads true.
                "created_at": expires_at,
            },
        )
    if settled:
        conn.execute(_SETTLED, [{"who": m, "points": p} for m, p in settled.items()])
    return closed


def balance(session: Session, member_id: int, now: dt.datetime) -> int:
    """The points a member can spend at `now` (lots past their end count as expired, whether or
    not the daily job has written that yet)."""
    total = session.connection().execute(_BALANCE, {"member_id": member_id, "now": now})
    return int(total.scalar_one())


_BALANCE = select(func.coalesce(func.sum(_LOTS.c.remaining), 0)).where(
    _LOTS.c.member_id == bindparam("member_id"),
    OPEN_LOT,
    _LOTS.c.expires_at > bindparam("now"),
)


def held(now: dt.datetime | ColumnElement[Any]) -> ColumnElement[int]:
    """balance() at `now` of the member of the statement's `members` row, as one SQL expression
    (never NULL): `open_points` while none of their open lots has reached its end (NULL: no
    open lot), which is nearly every member, since the daily job settles ended lots; else
    summed from the member's lots not yet ended, as balance() does."""
    at = literal(now, _INSTANT) if isinstance(now, dt.datetime) else now
    until = _MEMBERS.c.open_points_until
    summed = lots_held(_MEMBERS.c.id, at).correlate(_MEMBERS)
    return case((or_(until.is_(None), until > at), _MEMBERS.c.open_points), else_=summed)


def lots_held(member_id: ColumnElement[Any], at: ColumnElement[Any]) -> ScalarSelect[Any]:
    """The points of the member's lots not yet ended at `at` (0 for none, never NULL), summed
    in a subquery correlated to the statement `member_id` is a column of."""
    return (
        select(func.coalesce(func.sum(_LOTS.c.remaining), 0))
        .where(_LOTS.c.member_id == member_id, OPEN_LOT, _LOTS.c.expires_at > at)
        .scalar_subquery()
    )


@dataclass(frozen=True, slots=True)
class Expiry:
    points: int
    at: dt.datetime  # the instant they expire


def next_expiry(session: Session, member_id: int, now: dt.datetime) -> Expiry | None:
    """The next points to expire: the earliest end among open lots, and all points ending then."""
    lots = open_lots(session, member_id, now)
    return Expiry(lots[0][1], lots[0][0]) if lots else None


def earned_since(session: Session, member_id: int, since: dt.datetime) -> int:
    """Points earned from purchases since `since`, less the points of the lines refunded since
    (for tiers). A refund counts in full here even when the points were spent and the ledger
    could take back less: a returned purchase earned nothing towards a tier."""
    total = session.connection().execute(_EARNED_SINCE, {"member_id": member_id, "since": since})
    return max(0, int(total.scalar_one()))


_EARNED_SINCE = select(func.coalesce(func.sum(_ENTRIES.c.tier_points), 0)).where(
    _ENTRIES.c.member_id == bindparam("member_id"), _ENTRIES.c.created_at >= bindparam("since")
)


def history(
    session: Session, member_id: int, limit: int = 100, *, offset: int = 0
) -> list[LedgerEntry]:
    """The member's entries, newest first: `limit` of them from `offset`."""
    return list(
        session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.member_id == member_id)
            .order_by(LedgerEntry.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )


def totals(session: Session, member_id: int) -> tuple[int, int]:
    """(sum of every entry, sum of every lot's remainder): always equal."""
    conn = session.connection()
    entries = conn.execute(
        select(func.coalesce(func.sum(_ENTRIES.c.points), 0)).where(
            _ENTRIES.c.member_id == member_id
        )
    ).scalar_one()
    lots = conn.execute(
        select(func.coalesce(func.sum(_LOTS.c.remaining), 0)).where(_LOTS.c.member_id == member_id)
    ).scalar_one()
    return int(entries), int(lots)


def open_lots(session: Session, member_id: int, now: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """(end, points) of the member's spendable points, soonest end first: one read that gives
    both the balance (their sum) and the next expiry (the first). Lots end on month ends, so
    there are at most a few dozen groups however long the ledger."""
    rows = plain_rows(session.connection(), _OPEN_LOTS, {"member_id": member_id, "now": now})
    return [(at, int(points)) for at, points in rows]


_OPEN_LOTS = (
    select(_LOTS.c.expires_at, func.sum(_LOTS.c.remaining))
    .where(
        _LOTS.c.member_id == bindparam("member_id"),
        OPEN_LOT,
        _LOTS.c.expires_at > bindparam("now"),
    )
    .group_by(_LOTS.c.expires_at)
    .order_by(_LOTS.c.expires_at)
)


def open_lots_and_earned(
    session: Session, member_id: int, now: dt.datetime, since: dt.datetime
) -> tuple[list[tuple[dt.datetime, int]], int]:
    """open_lots(now) and earned_since(since) in one statement: POINTS, a third of all texts,
    needs both (balance and expiry; the tier), and on SQLite each statement costs the single
    writer more than the index lookups it runs."""
    rows = plain_rows(
        session.connection(),
        _LOTS_AND_EARNED,
        {"member_id": member_id, "now": now, "since": since},
    )
    lots: list[tuple[dt.datetime, int]] = []
    earned = 0
    for at, points in rows:
        if at is None:  # the second SELECT's one row: its `at` is NULL
            earned = max(0, int(points))
        else:
            lots.append((at, int(points)))
    return lots, earned


_LOTS_AND_EARNED = union_all(
    select(_LOTS.c.expires_at.label("at"), func.sum(_LOTS.c.remaining).label("points"))
    .where(
        _LOTS.c.member_id == bindparam("member_id"),
        OPEN_LOT,
        _LOTS.c.expires_at > bindparam("now"),
    )
    .group_by(_LOTS.c.expires_at),
    select(null(), func.coalesce(func.sum(_ENTRIES.c.tier_points), 0)).where(
        _ENTRIES.c.member_id == bindparam("member_id"),
        _ENTRIES.c.created_at >= bindparam("since"),
    ),
).order_by("at")  # where the NULL row sorts differs by database; it is told apart by its NULL
