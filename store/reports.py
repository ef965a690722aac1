"""Reporting: the figures of the admin's dashboard and `klubb report`, for a club and a period.

A period is a range of whole days in the club's time zone, [start, end): `end` is the first day
not included. Every figure is counted in SQL, a few statements per figure whatever the number
of members, and the same statements run on SQLite and PostgreSQL: days, weeks and months are
cut at the club's local midnights, worked out here and compared with the stored instants (no
time zone arithmetic in SQL, which SQLite lacks). Money is in minor units (øre, öre, cents) of
the club's currency, which every purchase of the club is recorded in.

What the words mean, once for all of them:

- A *member* is a number whose status is active: they joined and have marketing consent now. A
  number that texted STOP (stopped), one asked to confirm joining (pending) and an erased member
  are counted apart, never as members. *Known numbers* are every number the club holds that is
  not erased (active, stopped, pending), and the *consent share* is members / known numbers.
- *New* members are the numbers that first joined in the period (members.joined_at; coming back
  after a STOP is not joining again), whatever their status now; `still_members` says how many
  of them are members now. Their store is the one they joined at (members.store).
- *Purchases* and *revenue* are the purchases recorded in the period (by when they happened at
  the till) and their totals, refunds not deducted; refunds made in the period are counted
  apart. Erased members' purchases stay in every total, as anonymous figures.
- Klubb records only members' purchases: the till gets 404 for a number that is not a member and
  sends nothing. So the share of sales made by members and the average purchase of non-members
  are not known, and are given as None (see PurchaseFigures), never estimated.

What it costs (a club of 1,000,000 members with 743,000 purchases, 118,000 of them in a 30-day
period and 465,000 in 12 months; SQLite, ms of CPU for 30 days / 12 months,
tests/bench/dashboard.py): member_figures 53 / 138 ms, given an index on members (program_id,
status, joined_at, store) that the per-status counts and each week's or month's joined_at range
read alone (the new members by store counted by filter, not grouped); purchase_figures 115 /
178 ms, each week or month a range of the covering index purchases (program_id, occurred_at,
member_id, total_minor), a whole month's buyers the month's rows in purchase_months (kept by
purchases.record); top_customers 103 / 149 ms; recency 39 ms, as range counts of members
(program_id, status, last_purchase_at), which purchases.record keeps; the whole report 279 /
400 ms (a long period's buyers and top customers from one read). campaign_results about 0.2 s
per 100,000 messages when counted, which is why the dashboard reads them as the scheduler
stored them (store_results) while they are fresh.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Interval,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select, operators
from sqlalchemy.sql.elements import UnaryExpression

from store.errors import InvalidInput
from store.loyalty import purchases
from store.members import consent, members
from store.models import (
    Campaign,
    ClickLink,
    ConsentEvent,
    Coupon,
    InboundMessage,
    LinkClick,
    Member,
    OutboxMessage,
    Program,
    Purchase,
    PurchaseMonth,
    Refund,
    UTCDateTime,
)
from store.outreach import campaigns, inbox
from store.states import OutboxStatus

WEEK, MONTH, AUTO = "week", "month", "auto"
GRAINS = (WEEK, MONTH)
# `auto` counts by ISO week up to this many days, by month beyond.
WEEKS_UP_TO_DAYS = 92
MAX_DAYS = 3660  # ten years: 120 months, or 523 weeks when asked for
# The days a period may reach: far beyond any club's data, far within date arithmetic's (a day
# after 9999-12-31, or a midnight in UTC before 0001-01-01, is an OverflowError).
FIRST_DAY = dt.date(2000, 1, 1)
LAST_DAY = dt.date(2100, 12, 31)
TOP = 10
# A campaign's effect: its recipients' purchases in the days after it, against its control
# group's; a STOP within OPT_OUT_DAYS of the message is an opt-out from it.
REVENUE_DAYS = 30
OPT_OUT_DAYS = 7
# A click's effect: what the member bought in the days after their first tap on the campaign's
# links (the "purchases and revenue from clickers within 7 days").
CLICK_DAYS = 7
# Days since the last purchase: (label, lowest day, highest day or None).
RECENCY = (
    ("0-30", 0, 30),
    ("31-90", 31, 90),
    ("91-180", 91, 180),
    ("181-365", 181, 365),
    (">365", 366, None),
)
NEVER = "never"

_MEMBERS = Member.__table__
_PURCHASES = Purchase.__table__
_MONTHS = PurchaseMonth.__table__
_REFUNDS = Refund.__table__
_OUTBOX = OutboxMessage.__table__
_CONSENT = ConsentEvent.__table__
_COUPONS = Coupon.__table__
_INBOUND = InboundMessage.__table__
_LINKS = ClickLink.__table__
_CLICKS = LinkClick.__table__
_INSTANT = UTCDateTime()
_DAY = dt.timedelta(days=1)
# The outbox statuses of a campaign's rows that a report compares: the message left Klubb, or
# the member was held out as the control group.
_SENT, _HELD_OUT = OutboxStatus.SENT, OutboxStatus.HELD_OUT


# --- the period -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in the club's zone: from `start` up to, not including, `end`."""

    start: dt.date
    end: dt.date
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> dt.date:
        return self.end - _DAY

    @property
    def since(self) -> dt.datetime:
        """The period's first instant (local midnight of `start`)."""
        return midnight(self.start, self.zone)

    @property
    def until(self) -> dt.datetime:
        """The first instant after the period (local midnight of `end`)."""
        return midnight(self.end, self.zone)


def period(program: Program, start: dt.date, end: dt.date) -> Period:
    """The club's period [start, end); InvalidInput naming `from` or `to` when it is empty or
    longer than MAX_DAYS."""
    if end <= start:
        raise InvalidInput("to", f"must be after the first day ({start.isoformat()})")
    if (end - start).days > MAX_DAYS:
        raise InvalidInput("from", f"a report covers at most {MAX_DAYS:,} days")
    return Period(start, end, ZoneInfo(program.timezone))


def in_range(day: dt.date) -> bool:
    """Whether a period may start or end on `day` (FIRST_DAY to LAST_DAY)."""
    return FIRST_DAY <= day <= LAST_DAY


def last_days(program: Program, now: dt.datetime, days: int = 30) -> Period:
    """The `days` days up to and including today in the club's zone."""
    today = now.astimezone(ZoneInfo(program.timezone)).date()
    return period(program, today - (days - 1) * _DAY, today + _DAY)


def midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class Slice:
    """One week or month of a period, cut to the period: [start, end) in the club's zone."""

    label: str  # 2026-W48 (ISO week) or 2026-11
    start: dt.date
    end: dt.date
    whole: bool  # False when the period cuts the week or month short


def grain_for(per: Period, grain: str = AUTO) -> str:
    """`week` or `month`: as asked, or for `auto` weeks up to WEEKS_UP_TO_DAYS days."""
    if grain == AUTO:
        return WEEK if per.days <= WEEKS_UP_TO_DAYS else MONTH
    if grain not in GRAINS:
        raise InvalidInput("by", "must be week, month or auto")
    return grain


def slices(per: Period, grain: str) -> list[Slice]:
    """The period's ISO weeks (Monday to Sunday) or calendar months, the first and last cut to
    the period."""
    cuts = [per.start]
    while cuts[-1] < per.end:
        day = cuts[-1]
        if grain == WEEK:
            following = day + (7 - day.weekday()) * _DAY
        else:
            following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        cuts.append(min(following, per.end))
    out = []
    for first, after in itertools.pairwise(cuts):
        if grain == WEEK:
            year, week, _ = first.isocalendar()
            label = f"{year}-W{week:02d}"
            whole = first.weekday() == 0 and (after - first).days == 7
        else:
            label = f"{first:%Y-%m}"
            whole = first.day == 1 and after.day == 1
        out.append(Slice(label, first, after, whole))
    return out


# --- members ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Joined:
    """Numbers that first joined in a week or month of the period."""

    slice: Slice
    joined: int
    still_members: int  # of them, members (active) now


@dataclass(frozen=True, slots=True)
class JoinedAt:
    """Numbers that first joined in the period at a store."""

    store: str | None  # None: joined by SMS, not at a till
    joined: int
    still_members: int


@dataclass(frozen=True, slots=True)
class MemberFigures:
    members: int  # active: joined, with marketing consent now
    left: int  # stopped after joining
    stopped_never_joined: int  # texted STOP without ever joining (kept so nothing is sent)
    pending: int  # asked to confirm joining, not confirmed
    erased: int  # personal data removed on request
    new: int  # first joined in the period
    new_by_slice: list[Joined]  # one per week or month of the period, zeros included
    new_by_store: list[JoinedAt]  # stores with someone joining, most first

    @property
    def known(self) -> int:
        """Numbers the club holds: every status but erased."""
        return self.members + self.left + self.stopped_never_joined + self.pending

    @property
    def consent_share(self) -> float | None:
        """Members / known numbers (None when the club knows no number)."""
        return self.members / self.known if self.known else None


def member_figures(
    session: Session, program: Program, per: Period, grain: str = AUTO
) -> MemberFigures:
    """Members now by status, and the numbers that joined in the period by week (or month) and
    by store."""
    club = _MEMBERS.c.program_id == program.id
    statuses = sorted(members.STATUSES)

    def count(*where: ColumnElement[bool]) -> Any:
        return select(func.count()).where(club, *where).scalar_subquery()

    # One count per status, each a range of an index on (program_id, status, ...) when there
    # is one: grouping a million members by status reads every entry.
    counts = session.execute(
        select(
            *(count(_MEMBERS.c.status == status) for status in statuses),
            count(_MEMBERS.c.status == members.STOPPED, _MEMBERS.c.joined_at.is_(None)),
        )
    ).one()
    by_status = {status: int(n) for status, n in zip(statuses, counts, strict=False)}
    never_joined = int(counts[-1])

    in_period = and_(
        club,
        # Every status: the range on joined_at then follows the status in such an index.
        _MEMBERS.c.status.in_(statuses),
        _MEMBERS.c.joined_at >= literal(per.since, _INSTANT),
        _MEMBERS.c.joined_at < literal(per.until, _INSTANT),
    )
    cut = slices(per, grain_for(per, grain))

    def joined(since: Any, until: Any) -> Select[Any]:
        # Two range counts of the (program_id, status, joined_at) index a slice, instead of
        # grouping the period's members by slice (a sort of each of them).
        def of(*status: ColumnElement[bool]) -> Any:
            return count(*status, _MEMBERS.c.joined_at >= since, _MEMBERS.c.joined_at < until)

        return select(of(_MEMBERS.c.status.in_(statuses)), of(_MEMBERS.c.status == members.ACTIVE))

    rows = _each_slice(session, cut, per.zone, lambda _, since, until: joined(since, until))
    new_by_slice = [Joined(s, *(int(v) for v in rows[i])) for i, s in enumerate(cut)]
    joined_in_period = and_(
        club,
        _MEMBERS.c.joined_at >= literal(per.since, _INSTANT),
        _MEMBERS.c.joined_at < literal(per.until, _INSTANT),
    )
    new_by_store = sorted(
        (
            JoinedAt(store, n, active)
            for store, n, active in _by_store(session, in_period, joined_in_period, statuses)
        ),
        key=lambda row: (-row.joined, row.store is None, row.store or ""),
    )
    return MemberFigures(
        members=by_status[members.ACTIVE],
        left=by_status[members.STOPPED] - never_joined,
        stopped_never_joined=never_joined,
        pending=by_status[members.PENDING],
        erased=by_status[members.ERASED],
        new=sum(row.joined for row in new_by_slice),
        new_by_slice=new_by_slice,
        new_by_store=new_by_store,
    )


# Stores counted with a filter each in one read (SQLite) up to this many; more are grouped.
_STORES_FILTERED = 16


def _by_store(
    session: Session,
    joined: ColumnElement[bool],
    joined_any_status: ColumnElement[bool],
    statuses: Sequence[str],
) -> list[tuple[str | None, int, int]]:
    """(store, joined, of them members now) for each store someone in `joined` joined at
    (`joined_any_status`: the same without its condition on the status).

    On SQLite, the stores first (made distinct: a handful of entries), then each store's
    count filtered in one read of the members' range and one of the others' (joined is their
    sum): grouping by store sorted every new member (12 months of a 1M club, 192,000: about
    95 -> 50 ms of CPU)."""
    active = _MEMBERS.c.status == members.ACTIVE
    stores = None
    if session.get_bind().dialect.name == "sqlite":
        stores = session.scalars(
            select(_MEMBERS.c.store).where(joined).distinct().limit(_STORES_FILTERED + 1)
        ).all()
    if stores is None or len(stores) > _STORES_FILTERED:
        still = func.sum(case((active, 1), else_=0))
        rows = session.execute(
            select(_MEMBERS.c.store, func.count(), still).where(joined).group_by(_MEMBERS.c.store)
        ).all()
        return [(store, int(n), int(members_now or 0)) for store, n, members_now in rows]
    if not stores:
        return []
    counts = [
        func.count().filter(
            _MEMBERS.c.store.is_(None) if store is None else _MEMBERS.c.store == store
        )
        for store in stores
    ]
    others = [status for status in statuses if status != members.ACTIVE]
    # Each a range of the (program_id, status, joined_at, store) index: members now, and the
    # few others (stopped, pending, erased) apart, each store's count one comparison a row.
    now_members = session.execute(select(*counts).where(joined_any_status, active)).one()
    rest = session.execute(
        select(*counts).where(joined_any_status, _MEMBERS.c.status.in_(others))
    ).one()
    return [
        (store, int(now_members[i]) + int(rest[i]), int(now_members[i]))
        for i, store in enumerate(stores)
    ]


# --- purchases --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sales:
    """Members' purchases in a week or month of the period."""

    slice: Slice
    purchases: int
    revenue_minor: int
    buyers: int  # members who bought in the slice


@dataclass(frozen=True, slots=True)
class PurchaseFigures:
    """Members' purchases in the period.

    `non_member_purchases` and `non_member_revenue_minor` are None: Klubb records only
    members' purchases (a till's sale for a number that is not a member gets 404), so what
    non-members bought is not known, nor the share of sales made by members
    (`member_share`) or the average purchase of a non-member. A dashboard shows them as
    unknown; they are fields so that a club whose till one day reports its totals has a place
    for them."""

    currency: str
    purchases: int
    revenue_minor: int  # sum of purchase totals, refunds not deducted
    buyers: int  # distinct members who bought
    refunds: int  # refunds made in the period (of purchases of any time)
    refunded_minor: int
    by_slice: list[Sales]  # one per week or month, zeros included
    grain: str  # week or month
    non_member_purchases: int | None = None
    non_member_revenue_minor: int | None = None

    @property
    def average_minor(self) -> int | None:
        """The average member purchase, to the nearest minor unit (None without purchases)."""
        return _rounded(Fraction(self.revenue_minor, self.purchases)) if self.purchases else None

    @property
    def per_buyer_minor(self) -> int | None:
        """Revenue per member who bought, to the nearest minor unit."""
        return _rounded(Fraction(self.revenue_minor, self.buyers)) if self.buyers else None

    @property
    def member_share(self) -> float | None:
        """Share of all purchases made by members: unknown (None) unless non-members' are."""
        if self.non_member_purchases is None:
            return None
        total = self.purchases + self.non_member_purchases
        return self.purchases / total if total else None


def purchase_figures(
    session: Session,
    program: Program,
    per: Period,
    grain: str = AUTO,
    *,
    spent: Spent | None = None,
) -> PurchaseFigures:
    """Purchases, revenue and buyers in the period and per week (or month); refunds apart.
    `spent`: the period's buyers as _spent counted them, when the caller has them."""
    in_period = and_(
        _PURCHASES.c.program_id == program.id,
        _PURCHASES.c.occurred_at >= literal(per.since, _INSTANT),
        _PURCHASES.c.occurred_at < literal(per.until, _INSTANT),
    )
    buyers = spent.buyers if spent else session.scalar(_buyers(session, program, per, in_period))
    refunds, refunded = session.execute(
        select(func.count(), func.coalesce(func.sum(_REFUNDS.c.amount_minor), 0)).where(
            _REFUNDS.c.program_id == program.id,
            _REFUNDS.c.created_at >= literal(per.since, _INSTANT),
            _REFUNDS.c.created_at < literal(per.until, _INSTANT),
        )
    ).one()
    chosen = grain_for(per, grain)
    cut = slices(per, chosen)

    def sales(since: Any, until: Any) -> Select[Any]:
        # A range of the (program_id, occurred_at, member_id, total_minor) index a slice, its
        # buyers made distinct apart: grouping the period's purchases by slice sorted them all
        # (12 months of a 1M club, 465,000 purchases: 420 -> 230 ms of CPU on SQLite).
        return select(
            func.count(),
            func.coalesce(func.sum(_PURCHASES.c.total_minor), 0),
            func.count(_PURCHASES.c.member_id.distinct()),
        ).where(
            _PURCHASES.c.program_id == program.id,
            _PURCHASES.c.occurred_at >= since,
            _PURCHASES.c.occurred_at < until,
        )

    # PostgreSQL makes a month's buyers distinct about as fast as it reads the month's rows
    # (a sort of 58,000 integers in memory; the rows' figures are not in their index): the
    # rows are read on SQLite only.
    sqlite = session.get_bind().dialect.name == "sqlite"
    kept = _months_kept(cut, per.zone) if chosen == MONTH and sqlite else {}

    def figures(i: int, since: Any, until: Any) -> Select[Any]:
        if i not in kept:
            return sales(since, until).add_columns(*_NO_MONTH)
        return _from_months(program, since, until, *kept[i])

    rows = _each_slice(session, cut, per.zone, figures)
    counted: dict[int, tuple[int, int, int]] = {}
    for i, (n, revenue, bought, *month) in enumerate(rows):
        if i not in kept:
            counted[i] = (int(n or 0), int(revenue or 0), int(bought or 0))
        elif (int(month[0]), int(month[1])) == (int(n), int(revenue)):
            # The month's rows hold every purchase the month's range of purchases does (the
            # same count and sum): one row per member who bought in it.
            counted[i] = (int(n), int(revenue), int(bought))
    wanting = [i for i in range(len(cut)) if i not in counted]
    if wanting:
        # Months whose rows don't add up (the zone changed; purchases written without
        # purchases.record): counted from the purchases, as any other slice.
        pieces = [cut[i] for i in wanting]
        again = _each_slice(session, pieces, per.zone, lambda _, since, until: sales(since, until))
        for i, (n, revenue, bought) in zip(wanting, again, strict=True):
            counted[i] = (int(n or 0), int(revenue or 0), int(bought or 0))
    by_slice = [Sales(s, *counted[i]) for i, s in enumerate(cut)]
    return PurchaseFigures(
        currency=program.currency,
        purchases=sum(s.purchases for s in by_slice),
        revenue_minor=sum(s.revenue_minor for s in by_slice),
        buyers=int(buyers or 0),
        refunds=int(refunds),
        refunded_minor=int(refunded),
        by_slice=by_slice,
        grain=chosen,
    )


# A slice not read from purchase_months: its select's two columns more.
_NO_MONTH = (literal(None, Integer), literal(None, Integer))


def _months_kept(cut: Sequence[Slice], zone: ZoneInfo) -> dict[int, tuple[int, int]]:
    """The slices that are whole months of the zone: {index: purchase_months' key}."""
    kept = {}
    for i, piece in enumerate(cut):
        since, until = midnight(piece.start, zone), midnight(piece.end, zone)
        key = purchases.month_of(since, zone)
        if piece.whole and key == (int(since.timestamp()), int(until.timestamp())):
            kept[i] = key
    return kept


def _from_months(
    program: Program, since: Any, until: Any, month_start: int, month_end: int
) -> Select[Any]:
    """A whole month's purchases and revenue from the purchases index, its buyers as the rows
    of purchase_months (a range of that table, clustered by month on SQLite), and what those
    rows hold, to check them against the purchases: (purchases, revenue, buyers, the rows'
    purchases, the rows' revenue)."""
    live = (
        select(
            func.count().label("n"),
            func.coalesce(func.sum(_PURCHASES.c.total_minor), 0).label("revenue"),
        )
        .where(
            _PURCHASES.c.program_id == program.id,
            _PURCHASES.c.occurred_at >= since,
            _PURCHASES.c.occurred_at < until,
        )
        .subquery()
    )
    rows = (
        select(
            func.count().label("buyers"),
            func.coalesce(func.sum(_MONTHS.c.purchases), 0).label("n"),
            func.coalesce(func.sum(_MONTHS.c.revenue_minor), 0).label("revenue"),
        )
        .where(
            _MONTHS.c.program_id == program.id,
            _MONTHS.c.month_start == literal(month_start, BigInteger),
            _MONTHS.c.month_end == literal(month_end, BigInteger),
        )
        .subquery()
    )
    return select(live.c.n, live.c.revenue, rows.c.buyers, rows.c.n, rows.c.revenue).select_from(
        live.join(rows, true())
    )


def _buyers(session: Session, program: Program, per: Period, in_period: Any) -> Any:
    """The statement counting the members who bought in the period.

    Only the members: from the (program_id, occurred_at, member_id) index alone, made
    distinct by sorting them. On SQLite a period longer than WEEKS_UP_TO_DAYS reads the
    (program_id, member_id, occurred_at) index instead, already in member order, with the
    period's bounds tested on each entry (`+occurred_at`, which no index serves): 12 months
    of a 1M club, 465,000 purchases of 743,000, 250 -> 75 ms of CPU."""
    if session.get_bind().dialect.name == "postgresql" and per.days > WEEKS_UP_TO_DAYS:
        # Grouped, not count(DISTINCT) (which sorts every entry inside the aggregate): over a
        # long period PostgreSQL then reads the (program_id, member_id, occurred_at) index in
        # member order (12 months at 1M, load 4: 365-425 -> 186-231 ms; over 30 or 90 days it
        # reads more than it saves, 78-191 -> 170-341 ms, so those keep count(DISTINCT)).
        grouped = select(_PURCHASES.c.member_id).where(in_period).group_by(_PURCHASES.c.member_id)
        return select(func.count()).select_from(grouped.subquery())
    if not _member_ordered(session, per):
        return select(func.count(_PURCHASES.c.member_id.distinct())).where(in_period)
    members_of = (
        select(_PURCHASES.c.member_id).where(_by_member(program, per)).distinct().subquery()
    )
    return select(func.count()).select_from(members_of)


def _member_ordered(session: Session, per: Period) -> bool:
    """Whether the period's purchases are read in member order (see _buyers): on SQLite, for
    a period longer than WEEKS_UP_TO_DAYS."""
    return session.get_bind().dialect.name == "sqlite" and per.days > WEEKS_UP_TO_DAYS


def _by_member(program: Program, per: Period) -> ColumnElement[bool]:
    """The club's purchases in the period, the bounds tested on each entry of the
    (program_id, member_id, occurred_at) index (`+occurred_at`, which no index serves, so
    SQLite reads that index in member order instead of the period's range of another)."""
    occurred = _PURCHASES.c.occurred_at
    unindexed = UnaryExpression(occurred, operator=operators.custom_op("+"), type_=occurred.type)
    return and_(
        _PURCHASES.c.program_id == program.id,
        unindexed >= literal(per.since, _INSTANT),
        unindexed < literal(per.until, _INSTANT),
    )


@dataclass(frozen=True, slots=True)
class Recency:
    label: str  # 0-30, 31-90, 91-180, 181-365, >365, never
    members: int


def recency(
    session: Session, program: Program, now: dt.datetime, *, members_now: int | None = None
) -> list[Recency]:
    """Members (active) by whole days since their last purchase at `now`, as segments count
    days (a purchase 36 hours ago is 1 day ago), in RECENCY's buckets and `never`: a range
    count each of the members' (program_id, status, last_purchase_at) index.

    `members_now`: the club's members (active) counted in the same snapshot, when the caller
    has them; `never` is then them less the buckets (which part the members who bought)
    instead of a range count of its own, the longest of them (600,000 of 850,000 members)."""
    active = and_(_MEMBERS.c.program_id == program.id, _MEMBERS.c.status == members.ACTIVE)
    last = _MEMBERS.c.last_purchase_at

    def after(days: int) -> ColumnElement[bool]:
        # days since <= n  <=>  the last purchase is after the instant n + 1 days before now.
        return last > literal(now - (days + 1) * _DAY, _INSTANT)

    counts = []
    for _, low, high in RECENCY:
        where = [active]
        if low > 0:
            where.append(~after(low - 1))
        where.append(after(high) if high is not None else last.is_not(None))
        counts.append(select(func.count()).where(*where).scalar_subquery())
    if members_now is None:
        counts.append(select(func.count()).where(active, last.is_(None)).scalar_subquery())
    row = list(session.execute(select(*counts)).one())
    if members_now is not None:
        row.append(members_now - sum(int(n) for n in row))
    labels = [label for label, _, _ in RECENCY] + [NEVER]
    return [Recency(label, int(n)) for label, n in zip(labels, row, strict=True)]


def not_understood(session: Session, program: Program, per: Period) -> int:
    """The texts received in the period that Klubb could not tell the meaning of (it answered
    with what a member can text): a range count of the inbound messages' (program_id,
    not_understood, received_at) index."""
    return int(
        session.execute(
            select(func.count()).where(
                _INBOUND.c.program_id == program.id,
                _INBOUND.c.not_understood == true(),
                _INBOUND.c.received_at >= literal(per.since, _INSTANT),
                _INBOUND.c.received_at < literal(per.until, _INSTANT),
            )
        ).scalar_one()
    )


@dataclass(frozen=True, slots=True)
class InboxFigures:
    """The period's texts and how staff answered them (the inbox, issue 16)."""

    received: int  # every text from a number to the club, understood or not
    not_understood: int  # of them, the ones Klubb could not answer (they go to the inbox)
    answered: int  # conversations (numbers) that got a staff reply in the period
    replies: int  # staff replies in the period that answered a waiting text (the median's set)
    median_wait: dt.timedelta | None  # None: no staff reply answered a waiting text


def inbox_figures(session: Session, program: Program, per: Period) -> InboxFigures:
    """Texts received and not understood in the period, conversations answered by staff in it,
    and the median time to a staff answer.

    A staff reply's wait runs from the text it answered, the number's earliest text not
    understood since the previous staff reply to that number (before the period too) and
    within the 7 days a reply may answer (inbox.WINDOW: an older one was never answerable), to
    the moment staff sent it; a reply with no such text (a second reply in a row) answered
    nothing new and is left out of the median. "Done" is not an answer: only its latest time
    is kept, so it can't be told apart later. An erased number's replies no longer name it and
    drop out, as its conversation does from the inbox. The median is taken in SQL: the replies
    ordered by their wait, the middle one or two read (a period holds as many replies as staff
    wrote)."""
    since, until = literal(per.since, _INSTANT), literal(per.until, _INSTANT)
    club = _INBOUND.c.program_id == program.id

    def texts(understood: bool) -> Any:
        # Two range counts of the (program_id, not_understood, received_at) index.
        return (
            select(func.count())
            .where(
                club,
                _INBOUND.c.not_understood == literal(not understood),
                _INBOUND.c.received_at >= since,
                _INBOUND.c.received_at < until,
            )
            .scalar_subquery()
        )

    understood, lost = session.execute(select(texts(True), texts(False))).one()
    waits = _waits(session, program, since, until).subquery()
    answered, replies = session.execute(
        select(
            func.count(waits.c.number.distinct()),
            func.count(waits.c.asked_at),
        )
    ).one()
    return InboxFigures(
        received=int(understood) + int(lost),
        not_understood=int(lost),
        answered=int(answered),
        replies=int(replies),
        median_wait=_median_wait(session, waits, int(replies)),
    )


def _waits(session: Session, program: Program, since: Any, until: Any) -> Any:
    """One row per staff reply of the club sent in [since, until) to a number still known:
    the number, when staff sent it (answered_at) and when the text it answered came
    (asked_at; None when it answered nothing new). Found from the outbox's (program_id, kind,
    send_after) index; each reply's texts on the inbox's partial index."""
    dialect = session.get_bind().dialect.name
    reply = _OUTBOX.alias("reply")
    earlier = _OUTBOX.alias("earlier")
    previous = (
        select(func.max(earlier.c.created_at))
        .where(
            earlier.c.program_id == reply.c.program_id,
            earlier.c.to_number == reply.c.to_number,
            earlier.c.kind == literal(inbox.STAFF),
            or_(
                earlier.c.created_at < reply.c.created_at,
                and_(earlier.c.created_at == reply.c.created_at, earlier.c.id < reply.c.id),
            ),
        )
        # Two levels down: said, or it would read an outbox of its own.
        .correlate(reply)
        .scalar_subquery()
    )
    asked = (
        select(func.min(_INBOUND.c.received_at))
        .where(
            _INBOUND.c.program_id == reply.c.program_id,
            _INBOUND.c.not_understood == true(),
            _INBOUND.c.from_number == reply.c.to_number,
            # received_at <= the reply < received_at + 7 days: only a text it could answer.
            _within(reply.c.created_at, _INBOUND.c.received_at, inbox.WINDOW.days, dialect),
            or_(previous.is_(None), _INBOUND.c.received_at > previous),
        )
        .scalar_subquery()
    )
    return select(
        reply.c.id,
        reply.c.to_number.label("number"),
        reply.c.created_at.label("answered_at"),
        asked.label("asked_at"),
    ).where(
        reply.c.program_id == program.id,
        reply.c.kind == literal(inbox.STAFF),
        # A staff reply is queued to go at once: send_after is when staff sent it.
        reply.c.send_after >= since,
        reply.c.send_after < until,
        reply.c.to_number.is_not(None),
    )


def _median_wait(session: Session, waits: Any, replies: int) -> dt.timedelta | None:
    """The median of answered_at - asked_at over the rows that answered a text: the middle
    row (or the mean of the middle two) in the order of their wait."""
    if not replies:
        return None
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        wait: Any = waits.c.answered_at - waits.c.asked_at
    else:  # SQLite has no interval: Julian days (fractions of a day, well under a second)
        wait = func.julianday(waits.c.answered_at) - func.julianday(waits.c.asked_at)
    middle = session.execute(
        select(waits.c.answered_at, waits.c.asked_at)
        .where(waits.c.asked_at.is_not(None))
        .order_by(wait, waits.c.id)
        .offset((replies - 1) // 2)
        .limit(1 if replies % 2 else 2)
    ).all()
    spans = [answered - asked for answered, asked in middle]
    return sum(spans, dt.timedelta()) / len(spans)


@dataclass(frozen=True, slots=True)
class Customer:
    member_id: int  # what a campaign to them is made from
    first_name: str | None
    phone_masked: str | None  # +47*****567
    status: str  # active, stopped or pending: only active members can be sent marketing
    purchases: int
    revenue_minor: int


def top_customers(
    session: Session,
    program: Program,
    per: Period,
    limit: int = TOP,
    *,
    spent: Spent | None = None,
) -> list[Customer]:
    """The members with the highest revenue in the period (ties: more purchases, then the
    older member first). Erased members are left out: their purchases stay in the totals, but
    a ranked row of one person is not an anonymous figure. `spent`: the period's buyers as
    _spent counted them, when the caller has them (the report)."""
    # The best few buyers first, then their member rows: joining every buyer of a year to
    # the members before ranking them took PostgreSQL a second. A few more than asked are
    # taken, as some may be erased; if too many are, more are taken.
    taken = limit * 2 + 5
    in_period = (
        _by_member(program, per)
        if _member_ordered(session, per)
        else and_(
            _PURCHASES.c.program_id == program.id,
            _PURCHASES.c.occurred_at >= literal(per.since, _INSTANT),
            _PURCHASES.c.occurred_at < literal(per.until, _INSTANT),
        )
    )
    while True:
        if spent is not None and spent.best is not None and len(spent.best) >= taken:
            # Every member who spent at least the bound is in hand, and at least `taken` did:
            # the best `taken` of them are the period's best.
            rows: Sequence[Any] = _ranked(session, spent.best[:taken])
            kept = [row for row in rows if row.status != members.ERASED]
            if len(kept) >= limit:
                break
            taken *= 4
            continue
        bought = _per_member(in_period)
        order = (
            bought.selected_columns.revenue.desc(),
            bought.selected_columns.purchases.desc(),
            bought.selected_columns.member_id,
        )
        best = bought.order_by(*order).limit(taken).subquery()
        rows = session.execute(
            select(
                _MEMBERS.c.id,
                _MEMBERS.c.first_name,
                _MEMBERS.c.phone,
                _MEMBERS.c.status,
                best.c.purchases,
                best.c.revenue,
            )
            .select_from(best.join(_MEMBERS, _MEMBERS.c.id == best.c.member_id))
            .order_by(best.c.revenue.desc(), best.c.purchases.desc(), _MEMBERS.c.id)
        ).all()
        kept = [row for row in rows if row.status != members.ERASED]
        if len(kept) >= limit or len(rows) < taken:
            break
        taken *= 4
    return [
        Customer(
            member_id=int(row.id),
            first_name=row.first_name,
            phone_masked=mask(row.phone),
            status=row.status,
            purchases=int(row.purchases),
            revenue_minor=int(row.revenue),
        )
        for row in kept[:limit]
    ]


@dataclass(frozen=True, slots=True)
class Spent:
    """The period's buyers, and those of them who spent at least a bound that `TOP * 2 + 5`
    of them reached, best first: (member id, purchases, revenue). `best` is None when no bound
    was known (top_customers ranks them all then)."""

    buyers: int
    best: list[tuple[int, int, int]] | None


def _spent(session: Session, program: Program, per: Period) -> Spent | None:
    """One read of a long period's purchases (over WEEKS_UP_TO_DAYS) for both its buyers and
    the top customers' candidates, instead of one read each: each member's purchases and
    revenue, grouped in member order (an index in that order on both databases), counted, and
    kept when the revenue reaches a bound. None for a shorter period.

    The bound is the revenue of the TOP * 2 + 5th member of a whole month of the period in
    purchase_months: at least that many spent that much in the period. Exact whatever the
    bound (rows of a club whose zone changed, say): top_customers uses the candidates only when
    at least as many as it takes reached it, so no better one was left out."""
    if per.days <= WEEKS_UP_TO_DAYS:
        return None
    sqlite = session.get_bind().dialect.name == "sqlite"
    in_period = (
        _by_member(program, per)
        if sqlite
        else and_(
            _PURCHASES.c.program_id == program.id,
            _PURCHASES.c.occurred_at >= literal(per.since, _INSTANT),
            _PURCHASES.c.occurred_at < literal(per.until, _INSTANT),
        )
    )
    taken = TOP * 2 + 5
    months = _months_kept(slices(per, MONTH), per.zone)
    bound = None
    if months:
        month_start, month_end = months[max(months)]
        bound = session.scalar(
            select(_MONTHS.c.revenue_minor)
            .where(
                _MONTHS.c.program_id == program.id,
                _MONTHS.c.month_start == literal(month_start, BigInteger),
                _MONTHS.c.month_end == literal(month_end, BigInteger),
            )
            .order_by(_MONTHS.c.revenue_minor.desc())
            .offset(taken - 1)
            .limit(1)
        )
    if bound is None:
        return Spent(int(session.scalar(_buyers(session, program, per, in_period)) or 0), None)
    each = _per_member(in_period).subquery()
    columns = (each.c.member_id, each.c.purchases, each.c.revenue)
    kept = (
        func.json_group_array(func.json_array(*columns))
        if sqlite
        else func.json_agg(func.json_build_array(*columns))
    )
    buyers, best = session.execute(
        select(func.count(), kept.filter(each.c.revenue >= literal(int(bound))))
    ).one()
    # SQLite's JSON is text; a PostgreSQL driver may give it parsed (psycopg) or as text.
    found = json.loads(best) if isinstance(best, str) else (best or [])
    ranked = sorted(
        ((int(m), int(n), int(r)) for m, n, r in found),
        key=lambda row: (-row[2], -row[1], row[0]),
    )
    return Spent(int(buyers), ranked)


def _ranked(session: Session, best: list[tuple[int, int, int]]) -> list[Any]:
    """These buyers' member rows, in their order, with their purchases and revenue."""
    found = {
        row.id: row
        for row in session.execute(
            select(_MEMBERS.c.id, _MEMBERS.c.first_name, _MEMBERS.c.phone, _MEMBERS.c.status).where(
                _MEMBERS.c.id.in_([member_id for member_id, _, _ in best])
            )
        )
    }
    return [
        _Ranked(member_id, found[member_id].first_name, found[member_id].phone,
                found[member_id].status, n, revenue)
        for member_id, n, revenue in best
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Ranked:
    id: int
    first_name: str | None
    phone: str | None
    status: str
    purchases: int
    revenue: int


def _per_member(in_period: ColumnElement[bool]) -> Select[Any]:
    """Each buyer's purchases and revenue among the purchases `in_period`."""
    return (
        select(
            _PURCHASES.c.member_id.label("member_id"),
            func.count().label("purchases"),
            func.sum(_PURCHASES.c.total_minor).label("revenue"),
        )
        .where(in_period)
        .group_by(_PURCHASES.c.member_id)
    )


def mask(phone: str | None) -> str | None:
    """A number with all but its country code's first digits and its last three hidden."""
    if phone is None:
        return None
    if len(phone) <= 6:
        return phone[:1] + "*" * (len(phone) - 1)
    return phone[:3] + "*" * (len(phone) - 6) + phone[-3:]


# --- campaigns --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """One side of a campaign's comparison: its members and what they bought in the
    REVENUE_DAYS days from the moment the campaign was planned to go out."""

    members: int
    buyers: int  # of them, who bought in those days
    revenue_minor: int
    opt_outs: int  # of them, who withdrew consent within OPT_OUT_DAYS of that moment

    @property
    def average(self) -> Fraction | None:
        """Revenue per member of the group, exact (None for an empty group)."""
        return Fraction(self.revenue_minor, self.members) if self.members else None

    @property
    def average_minor(self) -> int | None:
        average = self.average
        return None if average is None else _rounded(average)


@dataclass(frozen=True, slots=True)
class Clicked:
    """Taps on a campaign's short links (store.outreach.clicks), and what the members who
    tapped bought in the CLICK_DAYS days from their first tap.

    clicks: every counted tap (a person's GET; previews and HEAD are not counted); clickers:
    the messages whose links were tapped, one recipient each (an erased member's still count);
    buyers, purchases, revenue: of the clickers not erased since."""

    clicks: int = 0
    clickers: int = 0
    buyers: int = 0
    purchases: int = 0
    revenue_minor: int = 0


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """What a broadcast did.

    sent: handed to the gateway (outbox status sent); delivered and undelivered: as the
    carrier reported; failed: the gateway refused it or the carrier reported it failed (as
    store.outreach.campaigns.outcome counts); skipped: held back at sending by a guard rail or a
    cancel; held_out: the control group, recorded and not sent.

    recipients: the members it was sent to (whether or not the carrier delivered it); control:
    the members held out. Each side's purchases are summed over the REVENUE_DAYS days from the
    moment the message was planned to go (the same moment for both sides); opt-outs are the
    members who withdrew marketing consent (STOP or any stop word, or DELETE) within
    OPT_OUT_DAYS of the message's sending (the planned moment for the control group, whose
    opt-outs are the baseline). A STOP counts for every campaign sent to the member in the 7
    days before it. A STOP the carrier took itself (error 21610) is logged as a withdrawal when
    a send to the member is refused with it (store.outreach.delivery.opted_out_at_carrier), and
    counts from that moment."""

    id: int
    name: str
    status: str
    send_at: dt.datetime | None
    control_percent: int
    sent: int
    delivered: int
    undelivered: int
    failed: int
    skipped: int
    held_out: int
    coupons_issued: int
    coupons_redeemed: int  # of the coupons the campaign issued, redeemed by now
    recipients: Group
    control: Group
    clicked: Clicked
    # Whether the campaign's texts had links to count (False: the click figures mean nothing).
    has_links: bool
    window_ends: dt.datetime | None  # the last planned moment + REVENUE_DAYS; None: not sent
    complete: bool  # the window has passed: the revenue figures are final
    # When these figures were counted (the moment asked for, unless they were stored), and
    # from when on a count can't change any more: the window has passed and every coupon the
    # campaign issued has expired (None: the campaign is not sent yet).
    counted_at: dt.datetime
    settles_at: dt.datetime | None

    @property
    def settled(self) -> bool:
        """Counted after the last moment anything could change them."""
        return self.settles_at is not None and self.counted_at >= self.settles_at

    @property
    def opt_outs(self) -> int:
        return self.recipients.opt_outs

    @property
    def click_rate(self) -> float | None:
        """Clickers per message sent (0.12: 12 %); None when nothing was sent or no link."""
        if not self.has_links or not self.sent:
            return None
        return self.clicked.clickers / self.sent

    @property
    def uplift_minor(self) -> int | None:
        """Revenue per recipient minus revenue per control member, to the nearest minor unit;
        None without both groups."""
        treated, held = self.recipients.average, self.control.average
        return None if treated is None or held is None else _rounded(treated - held)

    @property
    def uplift_relative(self) -> float | None:
        """The uplift as a share of the control group's revenue per member (0.25: +25 %);
        None without both groups or when the control group bought nothing."""
        treated, held = self.recipients.average, self.control.average
        if treated is None or held is None or held == 0:
            return None
        return float((treated - held) / held)


# A broadcast whose stored results are younger than this is shown as stored (the scheduler
# counts them again every RESULTS_EVERY_MINUTES until they settle).
RESULTS_FRESH = dt.timedelta(minutes=15)
RESULTS_EVERY_MINUTES = 10
# The figures of CampaignResult kept in campaigns.results.
_COUNTS = (
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "skipped",
    "held_out",
    "coupons_issued",
    "coupons_redeemed",
)
_GROUP = ("members", "buyers", "revenue_minor", "opt_outs")
_CLICKED = ("clicks", "clickers", "buyers", "purchases", "revenue_minor")
_RESULT_COLUMNS = (
    Campaign.id,
    Campaign.name,
    Campaign.status,
    Campaign.send_at,
    Campaign.control_percent,
    Campaign.results,
    Campaign.results_at,
)


def campaign_results(
    session: Session,
    program: Program,
    per: Period,
    now: dt.datetime,
    *,
    stored: dt.timedelta | None = None,
) -> list[CampaignResult]:
    """Every broadcast of the club whose send time is in the period, in send order.

    Counted at `now`, unless `stored` is given: then a broadcast's results as last stored
    (store_results) are taken when they are younger than that or settled, and only the others
    are counted (about 0.3 s per 100,000 messages on SQLite)."""
    chosen = session.execute(
        select(*_RESULT_COLUMNS)
        .where(
            Campaign.program_id == program.id,
            Campaign.kind == campaigns.BROADCAST,
            Campaign.send_at >= per.since,
            Campaign.send_at < per.until,
        )
        .order_by(Campaign.send_at, Campaign.id)
    ).all()
    kept = {}
    if stored is not None:
        for row in chosen:
            result = _stored(row, now)
            if result is not None and (_settled(result) or now - result.counted_at < stored):
                kept[row.id] = result
    counted = _count_results(session, program, [r for r in chosen if r.id not in kept], now)
    return [kept.get(row.id) or counted[row.id] for row in chosen]


def result_of(
    session: Session, program: Program, campaign_id: int, now: dt.datetime
) -> CampaignResult | None:
    """One broadcast's results counted now (None: not a broadcast of the club, or not sent)."""
    row = session.execute(
        select(*_RESULT_COLUMNS).where(
            Campaign.id == campaign_id,
            Campaign.program_id == program.id,
            Campaign.kind == campaigns.BROADCAST,
            Campaign.send_at.is_not(None),
        )
    ).one_or_none()
    return None if row is None else _count_results(session, program, [row], now)[campaign_id]


def unsettled_results(session: Session, now: dt.datetime) -> list[int]:
    """The sent broadcasts (of every club) whose stored results have not settled: what the
    scheduler counts again (store_results), so the dashboard reads them."""
    rows = session.execute(
        select(*_RESULT_COLUMNS).where(
            Campaign.kind == campaigns.BROADCAST,
            Campaign.status.in_((campaigns.SENDING, campaigns.DONE, campaigns.CANCELLED)),
            Campaign.send_at.is_not(None),
        )
    ).all()
    return sorted(row.id for row in rows if not _settled(_stored(row, now)))


def store_results(session: Session, campaign_id: int, now: dt.datetime) -> CampaignResult | None:
    """Count a broadcast's results now and keep them in the campaign (None: no such sent
    broadcast)."""
    row = session.execute(
        select(*_RESULT_COLUMNS, Campaign.program_id).where(
            Campaign.id == campaign_id,
            Campaign.kind == campaigns.BROADCAST,
            Campaign.send_at.is_not(None),
        )
    ).one_or_none()
    program = session.get(Program, row.program_id) if row is not None else None
    if row is None or program is None:
        return None
    result = _count_results(session, program, [row], now)[campaign_id]
    session.execute(
        Campaign.__table__.update()
        .where(Campaign.__table__.c.id == campaign_id)
        .values(results=_to_json(result), results_at=now)
    )
    return result


def _settled(result: CampaignResult | None) -> bool:
    return result is not None and result.settled


def _to_json(result: CampaignResult) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(result, name) for name in _COUNTS}
    for side in ("recipients", "control"):
        group = getattr(result, side)
        out[side] = [getattr(group, name) for name in _GROUP]
    out["clicked"] = [getattr(result.clicked, name) for name in _CLICKED]
    out["has_links"] = result.has_links
    for name in ("window_ends", "settles_at"):
        moment = getattr(result, name)
        out[name] = None if moment is None else moment.isoformat()
    return out


def _stored(row: Any, now: dt.datetime) -> CampaignResult | None:
    """A campaign's stored results, with its name and status as they are now; None when
    there are none, or they are of a form this code doesn't read."""
    data, counted_at = row.results, row.results_at
    if not data or counted_at is None:
        return None
    try:
        moments = {
            name: None if data[name] is None else dt.datetime.fromisoformat(data[name])
            for name in ("window_ends", "settles_at")
        }
        counts = {name: int(data[name]) for name in _COUNTS}
        groups = {side: Group(*(int(v) for v in data[side])) for side in ("recipients", "control")}
        clicked = Clicked(*(int(v) for v in data["clicked"]))
        has_links = bool(data["has_links"])
    except (KeyError, TypeError, ValueError):
        return None
    ends = moments["window_ends"]
    return CampaignResult(
        id=row.id,
        name=row.name,
        status=row.status,
        send_at=row.send_at,
        control_percent=row.control_percent,
        **counts,
        **groups,
        clicked=clicked,
        has_links=has_links,
        window_ends=ends,
        complete=ends is not None and ends <= now,
        counted_at=counted_at,
        settles_at=moments["settles_at"],
    )


def _count_results(
    session: Session, program: Program, chosen: Sequence[Any], now: dt.datetime
) -> dict[int, CampaignResult]:
    """The results of these broadcasts of the club, counted now: {campaign id: result}."""
    if not chosen:
        return {}
    ids = [row.id for row in chosen]
    dialect = session.get_bind().dialect.name
    of_them = _OUTBOX.c.campaign_id.in_(ids)
    counts, last_moment = _tallies(session, ids, of_them)
    compared = and_(
        of_them, _OUTBOX.c.status.in_((_SENT, _HELD_OUT)), _OUTBOX.c.member_id.is_not(None)
    )
    revenue = _bought(session, compared, dialect)
    opt_outs = _opted_out(session, compared, dialect)
    issued = _coupons_issued(session, program, of_them)
    taps = _clicked(session, ids, dialect)

    def group(campaign_id: int, status: str) -> Group:
        n, buyers, total = revenue.get((campaign_id, status), (0, 0, 0))
        return Group(n, buyers, total, opt_outs.get((campaign_id, status), 0))

    results = {}
    for row in chosen:
        tally = counts[row.id]
        last = last_moment.get(row.id)
        ends = None if last is None else last + REVENUE_DAYS * _DAY
        coupons_issued, coupons_redeemed, valid_until = issued.get(row.id, (0, 0, None))
        clicked, links_until = taps.get(row.id, (Clicked(), None))
        settles = None
        if ends is not None and row.status in (campaigns.DONE, campaigns.CANCELLED):
            # Nothing changes after the window, the last coupon's expiry and the last link's
            # (plus the days a tap's purchases are counted).
            later = [ends, valid_until, links_until and links_until + CLICK_DAYS * _DAY]
            settles = max(moment for moment in later if moment is not None)
        results[row.id] = CampaignResult(
            id=row.id,
            name=row.name,
            status=row.status,
            send_at=row.send_at,
            control_percent=row.control_percent,
            sent=tally.get(_SENT, 0),
            delivered=tally.get("delivery:delivered", 0),
            undelivered=tally.get("delivery:undelivered", 0),
            failed=tally.get(OutboxStatus.FAILED, 0) + tally.get("delivery:failed", 0),
            skipped=tally.get(OutboxStatus.SKIPPED, 0),
            held_out=tally.get(_HELD_OUT, 0),
            coupons_issued=coupons_issued,
            coupons_redeemed=coupons_redeemed,
            recipients=group(row.id, _SENT),
            control=group(row.id, _HELD_OUT),
            clicked=clicked,
            has_links=links_until is not None,
            window_ends=ends,
            complete=ends is not None and ends <= now,
            counted_at=now,
            settles_at=settles,
        )
    return results


def _tallies(
    session: Session, ids: list[int], of_them: ColumnElement[bool]
) -> tuple[dict[int, dict[str, int]], dict[int, dt.datetime]]:
    """Each campaign's outbox rows by status and by delivery ("delivery:<receipt>"), and its
    last planned moment."""
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    last_moment: dict[int, dt.datetime] = {}
    for campaign_id, status, delivered, n, latest in session.execute(
        select(
            _OUTBOX.c.campaign_id,
            _OUTBOX.c.status,
            _OUTBOX.c.delivery,
            func.count(),
            func.max(_OUTBOX.c.send_after),
        )
        .where(of_them)
        .group_by(_OUTBOX.c.campaign_id, _OUTBOX.c.status, _OUTBOX.c.delivery)
    ):
        tally = counts[campaign_id]
        tally[status] = tally.get(status, 0) + int(n)
        if delivered is not None:
            tally[f"delivery:{delivered}"] = tally.get(f"delivery:{delivered}", 0) + int(n)
        if latest is not None and (
            campaign_id not in last_moment or latest > last_moment[campaign_id]
        ):
            last_moment[campaign_id] = latest
    return counts, last_moment


def _bought(
    session: Session, compared: ColumnElement[bool], dialect: str
) -> dict[tuple[int, str], tuple[int, int, int]]:
    """What each side bought in the days after the planned moment: {(campaign id, status):
    (members, buyers, revenue)}.

    One row per (campaign, member) in the outbox, joined to that member's purchases in its
    window, found on the (member_id, occurred_at) index. (No program_id: the member is the
    club's; offered it, SQLite walks the club's (program_id, occurred_at) index from the moment
    on instead, for every row: 30 s for 100,000 recipients.)"""
    bought = _OUTBOX.outerjoin(
        _PURCHASES,
        and_(
            _PURCHASES.c.member_id == _OUTBOX.c.member_id,
            _within(_PURCHASES.c.occurred_at, _OUTBOX.c.send_after, REVENUE_DAYS, dialect),
        ),
    )
    return {
        (campaign_id, status): (int(n), int(buyers), int(total))
        for campaign_id, status, n, buyers, total in session.execute(
            select(
                _OUTBOX.c.campaign_id,
                _OUTBOX.c.status,
                func.count(_OUTBOX.c.id.distinct()),
                func.count(_PURCHASES.c.member_id.distinct()),
                func.coalesce(func.sum(_PURCHASES.c.total_minor), 0),
            )
            .select_from(bought)
            .where(compared)
            .group_by(_OUTBOX.c.campaign_id, _OUTBOX.c.status)
        )
    }


def _clicked(
    session: Session, ids: list[int], dialect: str
) -> dict[int, tuple[Clicked, dt.datetime | None]]:
    """Each campaign's taps and clickers' purchases, and when its last link expires:
    {campaign id: (Clicked, last expiry)}; a campaign without links is absent."""
    tapped = _LINKS.outerjoin(_CLICKS, _CLICKS.c.link_id == _LINKS.c.id)
    # A recipient is a message (an erased member's link has no member but still its message).
    recipient = func.coalesce(_LINKS.c.message_id, -_LINKS.c.id)
    counts = session.execute(
        select(
            _LINKS.c.campaign_id,
            func.count(_CLICKS.c.id),
            func.count(case((_CLICKS.c.id.is_not(None), recipient)).distinct()),
            func.max(_LINKS.c.expires_at),
        )
        .select_from(tapped)
        .where(_LINKS.c.campaign_id.in_(ids))
        .group_by(_LINKS.c.campaign_id)
    ).all()
    first = (
        select(
            _LINKS.c.campaign_id.label("campaign_id"),
            _LINKS.c.member_id.label("member_id"),
            func.min(_CLICKS.c.clicked_at).label("first"),
        )
        .select_from(_LINKS.join(_CLICKS, _CLICKS.c.link_id == _LINKS.c.id))
        .where(_LINKS.c.campaign_id.in_(ids), _LINKS.c.member_id.is_not(None))
        .group_by(_LINKS.c.campaign_id, _LINKS.c.member_id)
        .subquery()
    )
    bought = {
        campaign_id: (int(buyers), int(n), int(total))
        for campaign_id, buyers, n, total in session.execute(
            select(
                first.c.campaign_id,
                func.count(_PURCHASES.c.member_id.distinct()),
                func.count(_PURCHASES.c.id),
                func.coalesce(func.sum(_PURCHASES.c.total_minor), 0),
            )
            .select_from(
                first.join(
                    _PURCHASES,
                    and_(
                        _PURCHASES.c.member_id == first.c.member_id,
                        _within(_PURCHASES.c.occurred_at, first.c.first, CLICK_DAYS, dialect),
                    ),
                )
            )
            .group_by(first.c.campaign_id)
        )
    }
    found = {}
    for campaign_id, clicks, clickers, until in counts:
        buyers, purchases, revenue = bought.get(campaign_id, (0, 0, 0))
        found[campaign_id] = (
            Clicked(int(clicks), int(clickers), buyers, purchases, revenue),
            until,
        )
    return found


def _opted_out(
    session: Session, compared: ColumnElement[bool], dialect: str
) -> dict[tuple[int, str], int]:
    """Opt-outs of each side: a withdrawal of marketing consent within OPT_OUT_DAYS of the
    message (of the planned moment for the control group). {(campaign id, status): members}"""
    moment = func.coalesce(_OUTBOX.c.sent_at, _OUTBOX.c.send_after)
    withdrew = exists(
        select(_CONSENT.c.id).where(
            _CONSENT.c.member_id == _OUTBOX.c.member_id,
            _CONSENT.c.purpose == consent.MARKETING_SMS,
            _CONSENT.c.action == consent.WITHDRAW,
            _within(_CONSENT.c.created_at, moment, OPT_OUT_DAYS, dialect),
        )
    )
    return {
        (campaign_id, status): int(n)
        for campaign_id, status, n in session.execute(
            select(_OUTBOX.c.campaign_id, _OUTBOX.c.status, func.count())
            .where(compared, withdrew)
            .group_by(_OUTBOX.c.campaign_id, _OUTBOX.c.status)
        )
    }


def _coupons_issued(
    session: Session, program: Program, of_them: ColumnElement[bool]
) -> dict[int, tuple[int, int, dt.datetime | None]]:
    """The coupons each campaign issued (source campaign:{id}:{member}), found by the club's
    unique (program_id, source) key from the campaign's rows: {campaign id: (issued,
    redeemed, the last valid_until)}."""
    source = (
        literal("campaign:")
        + cast(_OUTBOX.c.campaign_id, String)
        + literal(":")
        + cast(_OUTBOX.c.member_id, String)
    )
    return {
        campaign_id: (int(n), int(redeemed or 0), until)
        for campaign_id, n, redeemed, until in session.execute(
            select(
                _OUTBOX.c.campaign_id,
                func.count(_COUPONS.c.id),
                func.sum(case((_COUPONS.c.redeemed_at.is_not(None), 1), else_=0)),
                func.max(_COUPONS.c.valid_until),
            )
            .select_from(
                _OUTBOX.join(
                    _COUPONS,
                    and_(_COUPONS.c.program_id == program.id, _COUPONS.c.source == source),
                )
            )
            .where(of_them, _OUTBOX.c.member_id.is_not(None))
            .group_by(_OUTBOX.c.campaign_id)
        )
    }


# --- everything at once -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    program_id: int
    club: str
    period: Period
    now: dt.datetime
    members: MemberFigures
    purchases: PurchaseFigures
    recency: list[Recency]  # at `now`
    top_customers: list[Customer]
    campaigns: list[CampaignResult]
    not_understood: int  # texts in the period Klubb could not answer
    inbox: InboxFigures  # texts received, not understood, answered by staff and how soon


def report(
    session: Session,
    program: Program,
    per: Period,
    now: dt.datetime,
    grain: str = AUTO,
    *,
    stored: dt.timedelta | None = None,
) -> Report:
    """Every figure of the dashboard for the period; the figures "now" are at `now`, and the
    campaigns' results as campaign_results takes them with `stored`."""
    texts = inbox_figures(session, program, per)
    figures = member_figures(session, program, per, grain)
    # On SQLite a read is one transaction, one snapshot: the members just counted are the
    # ones recency's buckets part. (PostgreSQL's reads see each statement's own.)
    snapshot = session.get_bind().dialect.name == "sqlite"
    spent = _spent(session, program, per)
    return Report(
        program_id=program.id,
        club=program.name,
        period=per,
        now=now,
        members=figures,
        purchases=purchase_figures(session, program, per, grain, spent=spent),
        recency=recency(session, program, now, members_now=figures.members if snapshot else None),
        top_customers=top_customers(session, program, per, spent=spent),
        campaigns=campaign_results(session, program, per, now, stored=stored),
        not_understood=texts.not_understood,
        inbox=texts,
    )


# --- helpers ----------------------------------------------------------------------------------


def _rounded(value: Fraction) -> int:
    """To the nearest whole number, halves away from zero (as money is usually rounded)."""
    whole, rest = divmod(abs(value), 1)
    out = int(whole) + (1 if rest >= Fraction(1, 2) else 0)
    return out if value >= 0 else -out


def _within(later: Any, earlier: Any, days: int, dialect: str) -> ColumnElement[bool]:
    """`earlier <= later < earlier + days`, two stored instants compared row by row: SQLite
    has no interval type, so there both are read as Julian days (fractional days since
    4714 BC, exact to well under a millisecond)."""
    if dialect == "postgresql":
        span = literal_column(f"INTERVAL '{int(days)} days'", Interval)
        return and_(later >= earlier, later < earlier + span)
    return and_(later >= earlier, func.julianday(later) < func.julianday(earlier) + int(days))


# Slices per statement in _each_slice (SQLite allows 500 selects in a compound).
_SLICES_AT_ONCE = 100


def _each_slice(
    session: Session,
    cut: Sequence[Slice],
    zone: ZoneInfo,
    figures: Callable[[int, Any, Any], Select[Any]],
) -> list[tuple[Any, ...]]:
    """The same figures for each slice, one row each in order: `figures(i, since, until)` is
    the select of slice i's row from its first instant and the next slice's, each slice a
    range of an index. A UNION ALL of one select a slice (a chunk of them at a time), instead
    of one statement sorting every row of the period by its slice."""
    bounds = [literal(midnight(s.start, zone), _INSTANT) for s in cut]
    bounds.append(literal(midnight(cut[-1].end, zone), _INSTANT))
    found: dict[int, tuple[Any, ...]] = {}
    for first in range(0, len(cut), _SLICES_AT_ONCE):
        parts = [
            figures(i, bounds[i], bounds[i + 1]).add_columns(literal_column(str(i), Integer))
            for i in range(first, min(first + _SLICES_AT_ONCE, len(cut)))
        ]
        statement = parts[0] if len(parts) == 1 else union_all(*parts)
        for *values, index in session.execute(statement):
            found[int(index)] = tuple(values)
    return [found[i] for i in range(len(cut))]
