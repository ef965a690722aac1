"""Segments: a saved filter over a club's members, kept as JSON data and compiled to one query.

A filter is a tree of dicts. Combinators: {"all": [f, ...]}, {"any": [f, ...]} and {"not": f};
{"all": []} is everyone and {"any": []} no one. A leaf is {"field": ..., "op": ..., "value": ...}
with, for some fields, an extra key:

    consent              is true|false        status is active (consent as the log has it now)
    language             in ["nb", "sv", "en"]
    country              in ["NO", "SE", ...] the phone's calling code (countries that share
                                              one, like NO and SJ or US and CA, are one)
    age                  gte|lte|between      whole years in the club's time zone today
    birthday_month       in [1..12]
    answer  + question   in [choice keys]     answered any of them
                         answered true|false
    store                in ["Torshov", ...]  joined there or bought there
    tier                 in [positions]       0 is the bottom of the ladder (tier_id NULL)
    points               gte|lte|between      the balance now: open lots not yet ended
    purchase_count       gte|lte|between      + optional "days": only the last N days
    purchase_amount      gte|lte|between      minor units, sum of purchase totals; + "days"
    days_since_purchase  gte|lte|between      members who never bought never match
    category             in ["shoes", ...]    bought a line of the category; + "days"
    joined_days          gte|lte|between      members who never joined never match
    member               in [ids]             these members (at most 1,000 ids; another
                                              club's ids select no one)

"between" takes [low, high], both included. Day counts are whole days elapsed since the instant
(a purchase 36 hours ago is 1 day ago; one in the future is 0), and "days": N means the
purchases made less than N days before `now`. A leaf on a member without the value (no
birthday, no purchase, never joined) is false, and {"not": f} is exactly the members f does
not select: {"not": age gte 18} includes the members without a birthday. An erased member is in
no segment at all: only a row kept for the figures, not someone the member list shows.

Compiled, the member's own columns are plain comparisons (an age is a birthday range), and every
condition on another table is a set of member ids, `SELECT member_id FROM ... WHERE program_id =
... GROUP BY member_id [HAVING ...]`, read in member order from an index and computed once per
statement: `members.id [NOT] IN (set)` on SQLite, `[NOT] EXISTS (SELECT FROM (set) WHERE
member_id = members.id)` on PostgreSQL, whose planner makes that one hash or merge (anti-)join
(see _members_in for why not NOT IN there). A condition that a member without rows meets (0
purchases, a balance of 0) selects the complement of the set of those who don't, so members
without rows are in. Negations are pushed down to the leaves, so every leaf has a NULL-safe form
of its own and no NOT ever sits above an unknown.

Whether and when a member last bought (days since the last purchase, bought at all or within N
days) is their own column, members.last_purchase_at, which purchases.record keeps (see
_last_purchase), and so is whether they bought twice (ever or within N days: the purchase
before the last, members.previous_purchase_at), so a purchase count up to two is told by the
member's row (_purchase_count); so are how many purchases they made and for how much in all
(members.purchase_count and purchase_total_minor: a count or amount without "days"). Where a
member joined and bought (a store) and what (a category, with the latest such purchase for
"days") are rows of member_marks that enrolment and purchases.record keep, and an answer's
choices rows of answer_choices that profile.save_answer keeps: each name is one range of a
key in member order. Under an OR, PostgreSQL would look a set up per member: count(), reach()
and a broadcast's preview join each such set once instead (compile_joined), and points there
look the members whose lot has ended unsettled up in one hashed set (_held_within).

One exception: behind conditions on the members' own columns that keep few of
them (a birthday month: about 8 %), each member's rows are probed instead of building the sets
(see _compile). tests/bench/segments.py times every shape over a million members and prints its
plan.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import case as when
from sqlalchemy.orm import Session, object_session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.visitors import replacement_traverse

from store.errors import InvalidInput, NotFound
from store.loyalty import ledger, marks
from store.members import consent, members
from store.models import (
    AnswerChoice,
    Campaign,
    Member,
    MemberMark,
    PointLot,
    ProfileAnswer,
    ProfileQuestion,
    Program,
    Purchase,
    Segment,
    Tier,
    UTCDateTime,
)
from store.outreach import guard_rails
from store.states import CampaignStatus
from store.text import check_text

MAX_DEPTH = 8
MAX_LEAVES = 50
MAX_LIST = 100
MAX_MEMBERS = 1000  # ids in one member condition: a hand-picked list, not a segment
MAX_ID = 2**63 - 1
MAX_NAME = 60
LANGUAGES = ("nb", "sv", "en")
RANGE_OPS = ("gte", "lte", "between")
COMBINATORS = ("all", "any", "not")
DAY = dt.timedelta(days=1)
# SQLite: related-table conditions are probed per member behind member conditions keeping
# at most this share of the members (an estimate: see _share).
NARROW = 0.1
# PostgreSQL: member_marks' ranges read one by one and appended up to this many (see _marked).
MAX_RANGES = 8

_MEMBERS = Member.__table__
_ANSWERS = ProfileAnswer.__table__
_QUESTIONS = ProfileQuestion.__table__
_PURCHASES = Purchase.__table__
_LOTS = PointLot.__table__
_CHOICES = AnswerChoice.__table__
_MARKS = MemberMark.__table__
_TIERS = Tier.__table__
_INSTANT = UTCDateTime()

Filter = dict[str, Any]


# --- the segments of a club -------------------------------------------------------------------


def save(
    session: Session, program: Program, name: str, filter: Mapping[str, Any], now: dt.datetime
) -> Segment:
    """Create the segment `name`, or replace its filter; the filter is validated first, and
    its profile questions checked against the club's (InvalidInput naming the path)."""
    name = _segment_name(name)
    normal = check(session, program.id, filter)
    segment = session.scalar(
        select(Segment).where(Segment.program_id == program.id, Segment.name == name)
    )
    if segment is None:
        segment = Segment(
            program_id=program.id, name=name, filter=normal, created_at=now, updated_at=now
        )
        session.add(segment)
    else:
        segment.filter = normal
        segment.updated_at = now
    session.flush()
    return segment


def get(session: Session, program_id: int, name: str) -> Segment:
    """The club's segment `name`; raises NotFound."""
    segment = session.scalar(
        select(Segment).where(Segment.program_id == program_id, Segment.name == name.strip())
    )
    if segment is None:
        raise NotFound("segment", name)
    return segment


def all_of(session: Session, program_id: int) -> list[Segment]:
    """The club's segments by name."""
    return list(
        session.scalars(
            select(Segment).where(Segment.program_id == program_id).order_by(Segment.name)
        )
    )


def delete(session: Session, program_id: int, name: str) -> None:
    """Remove the segment `name` (a campaign keeps the filter it was planned with); NotFound
    if there is none."""
    session.delete(get(session, program_id, name))
    session.flush()


def rename(session: Session, program_id: int, old: str, new: str) -> Segment:
    """Give the segment `old` the name `new`; NotFound if there is no `old`, InvalidInput on
    "name" if another segment of the club has the new name already."""
    segment = get(session, program_id, old)
    name = _segment_name(new)
    if name != segment.name:
        clash = session.scalar(
            select(Segment.id).where(Segment.program_id == program_id, Segment.name == name)
        )
        if clash is not None:
            raise InvalidInput("name", f"the club has a segment named {name!r} already")
        segment.name = name
    session.flush()
    return segment


def get_by_id(session: Session, program_id: int, segment_id: int) -> Segment:
    """The club's segment with this id; NotFound for another club's or none."""
    segment = session.get(Segment, segment_id)
    if segment is None or segment.program_id != program_id:
        raise NotFound("segment", str(segment_id))
    return segment


def campaigns_using(session: Session, segment: Segment) -> list[Campaign]:
    """The broadcasts made with the segment that have not been sent yet, soonest first: each
    holds a copy of the filter it was made with, so renaming, editing or deleting the segment
    does not change who they reach."""
    return list(
        session.scalars(
            select(Campaign)
            .where(
                Campaign.program_id == segment.program_id,
                Campaign.segment_id == segment.id,
                Campaign.status.in_(
                    (CampaignStatus.SCHEDULED, CampaignStatus.PLANNING, CampaignStatus.SENDING)
                ),
            )
            .order_by(Campaign.send_at, Campaign.id)
        )
    )


def check(session: Session, program_id: int, filter: Any) -> Filter:
    """The filter in its normal form, with its profile questions checked against the club's
    (InvalidInput naming the path): what save() accepts, for a count shown before saving."""
    normal = validate(filter)
    _check_questions(session, program_id, normal)
    return normal


def count(session: Session, program: Program, filter: Mapping[str, Any], now: dt.datetime) -> int:
    """How many of the club's members the filter selects at `now` (the admin's live count)."""
    dialect = session.get_bind().dialect.name
    for_counting(session)
    query = count_query(program, filter, now, dialect)
    return int(session.connection().execute(query).scalar_one())


def for_counting(session: Session) -> None:
    """The planner settings count() runs under, for the rest of the transaction (PostgreSQL;
    tests/bench/segments.py explains its statements under them too)."""
    without_jit(session)
    if session.get_bind().dialect.name != "postgresql":
        return
    # One parallel worker at most. A worker can't share a set that is grouped in member
    # order (purchases by member, answers, categories): each process builds it again for its
    # part of the members, and with two workers on the 2 cores of the machine the bench runs
    # on, the workers only queued for them (tests/bench/segments.py, 1M members, after
    # ANALYZE, two workers -> none: purchase_count gte 3 566 -> 403 ms, purchase amount 570 ->
    # 361). One worker beside the leader halves a read of every member and costs a grouped
    # set little (none -> one: a tier 217 -> 120 ms, birthday month 191 -> 103, store 363 ->
    # 295, purchase amount 316 -> 264, an answer 155 -> 182). Planned without statistics a
    # club looks too small to share out: no worker then.
    session.connection().exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 1")
    # No nested loop: a count reads the whole club, and a set PostgreSQL takes for one
    # row (a table it has no statistics of yet, such as one a migration has just filled)
    # was joined to a million members by scanning it for each (the store shape of
    # tests/bench/segments.py without statistics, unvacuumed: over 5 minutes, cancelled;
    # vacuumed: store 759 -> 235 ms, an answer's choices 419 -> 160). With statistics it
    # costs some shapes a little (campaign 157 -> 267 ms, store 390 -> 458): the worst case
    # is what it bounds. Only the probes the compiler asks for (correlated subqueries,
    # which are no join) still go member by member.
    session.connection().exec_driver_sql("SET LOCAL enable_nestloop = off")


def without_jit(session: Session) -> None:
    """On PostgreSQL, no JIT compilation for the rest of the transaction. A count over a
    million members is costed past `jit_above_cost`, and compiling its expressions took longer
    than it saved (tests/bench/segments.py, after ANALYZE: the campaign shape 402 -> 168 ms)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql("SET LOCAL jit = off")


def count_query(
    program: Program, filter: Mapping[str, Any], now: dt.datetime, dialect: str
) -> Select[tuple[int]]:
    """The statement count() runs (tests/bench/segments.py prints its plan)."""
    members_of, clause = compile_joined(
        filter, program_id=program.id, zone=program.timezone, now=now, dialect=dialect
    )
    return select(func.count()).select_from(members_of).where(in_club(program.id, dialect), clause)


def members_query(
    filter: Mapping[str, Any], *, program: Program, now: dt.datetime, dialect: str | None = None
) -> Select[tuple[int]]:
    """The ids of the club's members the filter selects, in id order. `dialect` defaults to
    that of the session `program` was loaded in."""
    if dialect is None:
        session = object_session(program)
        if session is None:
            raise ValueError("program is detached: pass dialect")
        dialect = session.get_bind().dialect.name
    members_of, clause = compile_joined(
        filter, program_id=program.id, zone=program.timezone, now=now, dialect=dialect
    )
    return (
        select(_MEMBERS.c.id)
        .select_from(members_of)
        .where(in_club(program.id, dialect), clause)
        .order_by(_MEMBERS.c.id)
    )


@dataclass(frozen=True, slots=True)
class Reach:
    """Who a filter selects, and who of them a marketing message could reach if sent now."""

    matching: int  # the filter's members: count()
    reachable: int  # of them: consent given, not stopped, a number that works
    under_cap: int  # of those: under the club's monthly cap of marketing messages


def reach(session: Session, program: Program, filter: Mapping[str, Any], now: dt.datetime) -> Reach:
    """count() with the guard rails a broadcast sent now meets when it is planned (consent as
    members.consent writes it, the cap as outreach.guard_rails does, at the first moment outside
    quiet hours): what the campaign form shows beside its audience before any preview. One read
    of the members."""
    dialect = session.get_bind().dialect.name
    moment = guard_rails.first_moment(
        now, ZoneInfo(program.timezone), program.quiet_start, program.quiet_end
    )
    may = consent.may_receive()
    sendable = and_(may, guard_rails.under_cap(program, moment))
    members_of, clause = compile_joined(
        filter, program_id=program.id, zone=program.timezone, now=now, dialect=dialect
    )
    query = (
        select(
            func.count(),
            func.coalesce(func.sum(when((may, 1), else_=0)), 0),
            func.coalesce(func.sum(when((sendable, 1), else_=0)), 0),
        )
        .select_from(members_of)
        .where(in_club(program.id, dialect), clause)
    )
    row = session.connection().execute(query).one()
    return Reach(int(row[0]), int(row[1]), int(row[2]))


def in_club(program_id: int, dialect: str) -> ColumnElement[bool]:
    """The club's members, as the outer condition of count() and members_query().

    On SQLite `program_id + 0`, which no index can serve: without ANALYZE statistics (Klubb
    never runs ANALYZE) SQLite takes any index on program_id for a selective one and visits a
    million members through it, out of table order, at twice the cost of reading the table
    (tests/bench/segments.py: 1.4 s against 0.9 s for a broad filter). Reading the table, or the ids
    of a set by rowid, is what it should do for a club of any size that matters."""
    if dialect == "sqlite":
        return (_MEMBERS.c.program_id + 0) == program_id
    return _MEMBERS.c.program_id == program_id


# --- compiling --------------------------------------------------------------------------------


def compile_filter(
    filter: Mapping[str, Any],
    *,
    program_id: int,
    zone: ZoneInfo | str,
    now: dt.datetime,
    dialect: str,
    id_range: tuple[Any, Any] | None = None,
    joins: list[Any] | None = None,
) -> ColumnElement[bool]:
    """The filter (validated here) as a WHERE clause over `members`, for
    `select(members.c.id).where(members.c.program_id == program_id, clause)`.

    Nothing outside SQL is read, so the clause can be embedded in any statement over `members`
    and combined with more conditions. `id_range` (low, high), values or bound parameters,
    keeps only members with low < id <= high and pushes that range into every subquery, so a
    planner going through the members a chunk at a time reads only the chunk's own rows
    instead of materialising the whole club's for every chunk.

    `joins` (PostgreSQL, a list the clause's statement must join: see compile_joined) takes
    the sets under an OR as subqueries to join once, instead of a lookup per member."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported dialect {dialect!r}")
    place = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    scope = _Scope(program_id, now, now.astimezone(place).date(), dialect, id_range, joins)
    normal = validate(filter)
    clause = _compile(normal, scope, negate=False)
    if not _shuts_out_erased(normal, negate=False):
        # An erased member is a row kept only for the figures: no one, in no segment (not
        # even "no consent"), so a count agrees with the member list and planning never
        # meets one.
        clause = and_(_MEMBERS.c.status != members.ERASED, clause)
    if id_range is None:
        return clause
    low, high = id_range
    return and_(_MEMBERS.c.id > low, _MEMBERS.c.id <= high, clause)


def compile_joined(
    filter: Mapping[str, Any],
    *,
    program_id: int,
    zone: ZoneInfo | str,
    now: dt.datetime,
    dialect: str,
) -> tuple[Any, ColumnElement[bool]]:
    """compile_filter as (FROM, WHERE): `members`, on PostgreSQL left-joined to each set the
    filter reads under an OR, for `select(...).select_from(from_).where(club, where)`.

    Under an OR, PostgreSQL cannot make EXISTS a semi-join: it runs it as a lookup per member
    (the broad shape of tests/bench/segments.py: points looked up for 510,000 members, 1.5
    million buffer hits, 1.4 s). Each set is one row per member, so joining it once (a merge
    or hash join) keeps every member once, and the OR reads `set.member_id IS [NOT] NULL`."""
    joins: list[Any] = []
    clause = compile_filter(
        filter, program_id=program_id, zone=zone, now=now, dialect=dialect, joins=joins
    )
    members_of: Any = _MEMBERS
    for found in joins:
        members_of = members_of.outerjoin(found, found.c.member_id == _MEMBERS.c.id)
    return members_of, clause


@dataclass(frozen=True, slots=True)
class _Scope:
    program_id: int
    now: dt.datetime
    today: dt.date  # in the club's time zone
    dialect: str
    id_range: tuple[Any, Any] | None
    # PostgreSQL: where the sets read under an OR go, to be joined (see compile_joined).
    joins: list[Any] | None = None
    # SQLite: probe each member's rows instead of building the whole set (see _compile).
    correlate: bool = False
    # Under an OR (after pushing negations down).
    disjunct: bool = False

    def of(self, table: Any, *more: ColumnElement[bool]) -> list[ColumnElement[bool]]:
        """The club's rows of a related table (in the id range, when there is one)."""
        where = [table.c.program_id == self.program_id, *more]
        if self.id_range is not None:
            low, high = self.id_range
            where += [table.c.member_id > low, table.c.member_id <= high]
        return where

    def instant(self, days_before: int) -> ColumnElement[Any]:
        return literal(self.now - days_before * DAY, _INSTANT)


def _compile(node: Filter, scope: _Scope, *, negate: bool) -> ColumnElement[bool]:
    """NOT is pushed down to the leaves (De Morgan), each of which has a negated form that is
    never NULL: under AND and OR alone an unknown acts as false, so nothing is lost."""
    if "all" in node or "any" in node:
        conjunction = ("all" in node) != negate
        children = node["all" if "all" in node else "any"]
        if conjunction and not scope.correlate and _share(node, negate) <= NARROW:
            # The members' own conditions keep few members (a birthday month and a language:
            # 3 %): probing those few members' rows beats building each whole set (campaign
            # shape, 1M members: 0.4 s against 0.9 s of CPU). Both databases evaluate
            # correlated subqueries after every other condition of the row, so only they are
            # probed. On PostgreSQL it also keeps a plan sane without statistics: estimating
            # one member, it ran the whole grouped set of open lots again for each of
            # thousands (over 10 minutes for the campaign shape).
            scope = replace(scope, correlate=True)
        if not conjunction and not scope.disjunct:
            scope = replace(scope, disjunct=True)
        # The members' own columns first: SQLite tests the terms of a row, and the branches of
        # an OR, in the order written, and a row that fails them needs no set looked up.
        ordered = sorted(children, key=_reads_other_tables)
        parts = [_compile(child, scope, negate=negate) for child in ordered]
        if conjunction:
            return and_(*parts) if parts else true()
        return or_(*parts) if parts else false()
    if "not" in node:
        return _compile(node["not"], scope, negate=not negate)
    return _LEAVES[node["field"]](node, scope, negate)


# Fields whose every positive condition is false for an erased member: their number,
# language and birthday are gone (members.erase).
_GONE_WHEN_ERASED = frozenset({"language", "country", "age", "birthday_month"})


def _shuts_out_erased(node: Filter, *, negate: bool) -> bool:
    """True when no erased member can meet the filter anyway (a language, an age, consent, an
    answer required): then it needs no status check of its own, which would cost the index
    that serves it (tests/bench/segments.py: a language list read 3x the CPU with one)."""
    if "all" in node or "any" in node:
        conjunction = ("all" in node) != negate
        found = [
            _shuts_out_erased(c, negate=negate) for c in node["all" if "all" in node else "any"]
        ]
        return any(found) if conjunction else all(found)
    if "not" in node:
        return _shuts_out_erased(node["not"], negate=not negate)
    field, op, value = node["field"], node["op"], node.get("value")
    if field == "consent":  # active only
        return (value is True) != negate
    if negate:
        return False
    if field == "answer":  # their answers are gone
        return op != "answered" or value is True
    return field in _GONE_WHEN_ERASED


def _reads_other_tables(node: Filter) -> bool:
    if "not" in node:
        return _reads_other_tables(node["not"])
    if "all" in node or "any" in node:
        return any(_reads_other_tables(child) for child in node.get("all", node.get("any", [])))
    if _lifetime_leaf(node):
        return False
    if node["field"] == "purchase_count":
        # Up to two purchases (in a window) are told by the member's own row.
        return not _count_on_row(node)
    return node["field"] in _RELATED


def _share(node: Filter, negate: bool) -> float:
    """A rough share of the members a filter keeps, from what can be told without statistics:
    birthday months, age spans, languages and join windows; 1 for everything else."""
    if "not" in node:
        return _share(node["not"], not negate)
    if "all" in node or "any" in node:
        shares = [_share(child, negate) for child in node.get("all", node.get("any", []))]
        if ("all" in node) != negate:
            return math.prod(shares)
        return min(1.0, sum(shares))
    guess = _guess(node)
    if guess is None:
        return 1.0
    return 1.0 - guess if negate else guess


def _guess(leaf: Filter) -> float | None:
    field, value = leaf["field"], leaf["value"]
    if field == "birthday_month":
        return len(value) / 12
    if field == "language":
        return len(value) / len(LANGUAGES)
    if field == "age" and leaf["op"] == "between":
        return min(1.0, (value[1] - value[0] + 1) / 60)
    if field == "joined_days" and leaf["op"] != "gte":
        low, high = _bounds(value, leaf["op"])
        return min(1.0, (high - (low or 0) + 1) / 365)
    return None


def _members_in(
    scope: _Scope, rows: Select[Any], negate: bool, *, unique: bool = True
) -> ColumnElement[bool]:
    """The members in (or, negated, not in) a set of member ids.

    SQLite: `members.id [NOT] IN (rows)`, a list built once per statement (member_id is NOT
    NULL everywhere, so NOT IN is exact). Either: probed per member when `scope.correlate`.
    PostgreSQL: `[NOT] EXISTS (SELECT FROM (rows) WHERE member_id = members.id)`, which its
    planner makes one hash or merge semi- or anti-join (under an OR, a hashed subplan or an
    index probe per member). NOT IN is never made an anti-join: it is a hashed subplan only
    while the planner expects the set to fit in work_mem (4 MB: about 250,000 ids), and past
    that it scans the whole set for every member: 48 s for 2,000 members against a set of
    290,000, where NOT EXISTS takes 2 ms (measured at work_mem 1 MB, as a bigger club would
    be at 4 MB). Under an OR, with `scope.joins`, the set is joined instead (compile_joined);
    `unique` says `rows` holds each member once (else it is made distinct to be joined)."""
    if scope.correlate:
        # The member's own rows, through an index that starts with member_id.
        member_id = rows.selected_columns[0]
        probe = rows.where(member_id == _MEMBERS.c.id).correlate(_MEMBERS).exists()
        return ~probe if negate else probe
    if scope.dialect == "postgresql" and scope.disjunct and scope.joins is not None:
        joined = (rows if unique else rows.distinct()).subquery()
        scope.joins.append(joined)
        return joined.c.member_id.is_(None) if negate else joined.c.member_id.is_not(None)
    if scope.dialect == "postgresql":
        found = rows.subquery()
        match = (
            select(literal(1))
            .select_from(found)
            .where(found.c.member_id == _MEMBERS.c.id)
            .correlate(_MEMBERS)
        )
        return ~match.exists() if negate else match.exists()
    return _MEMBERS.c.id.not_in(rows) if negate else _MEMBERS.c.id.in_(rows)


def _nullable(column: Any, positive: ColumnElement[bool], negate: bool) -> ColumnElement[bool]:
    """A condition on a column that may be NULL: a NULL never matches, and its negation is
    the complement (so a member without the value matches it)."""
    if not negate:
        return positive
    return or_(column.is_(None), not_(positive))


def _bounds(value: Any, op: str) -> tuple[int | None, int | None]:
    if op == "gte":
        return value, None
    if op == "lte":
        return None, value
    return value[0], value[1]


def _within(expression: Any, low: int | None, high: int | None) -> ColumnElement[bool]:
    parts = []
    if low is not None:
        parts.append(expression >= low)
    if high is not None:
        parts.append(expression <= high)
    return and_(*parts) if parts else true()


def _aggregate(
    scope: _Scope,
    table: Any,
    where: list[ColumnElement[bool]],
    total: Any,
    low: int | None,
    high: int | None,
    negate: bool,
) -> ColumnElement[bool]:
    """Members whose `total` over their rows is within [low, high], where a member without rows
    has 0. If 0 is within, the members selected are those NOT IN the set of members whose total
    is outside: the members without rows are then in."""
    if (low or 0) <= 0 and high is None:
        return false() if negate else true()
    in_range = _within(total, low, high)
    grouped = select(table.c.member_id).where(*where).group_by(table.c.member_id)
    if (low or 0) <= 0:
        return _members_in(scope, grouped.having(not_(in_range)), not negate)
    return _members_in(scope, grouped.having(in_range), negate)


# --- the leaves: (leaf, scope, negate) -> clause ----------------------------------------------


def _consent(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    # The planner's own question (members.consent.may_market_clause), never NULL: negated, it
    # is exactly the members without marketing consent.
    given = consent.may_market_clause()
    if scope.dialect == "sqlite":
        given = _unindexed(given, _MEMBERS.c.status)
    return not_(given) if leaf["value"] is negate else given


def _unindexed(clause: ColumnElement[bool], column: Any) -> ColumnElement[bool]:
    """SQLite: the clause with `+column` for the column, which no index serves.

    A status holds 85 % of the members: after ANALYZE (or PRAGMA optimize) SQLite's skip-scan
    takes the active-status term through (program_id, status, last_purchase_at), visiting 850,000
    rows out of table order for one table scan's work (tests/bench/segments.py, broad shape:
    0.62 s of CPU against 0.43 s without statistics)."""
    plus = UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)
    return replacement_traverse(clause, {}, lambda e: plus if e is column else None)


def _language(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    column = _MEMBERS.c.language
    return _nullable(column, column.in_(leaf["value"]), negate)


def _country(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    column = _MEMBERS.c.phone
    prefixes = sorted({f"+{phonenumbers.country_code_for_region(c)}" for c in leaf["value"]})
    # A range rather than LIKE: both databases can use the (program_id, phone) index with it,
    # and it means the same under any collation (only '+' and digits are compared).
    ranges = []
    for prefix in prefixes:
        upper = _prefix_end(prefix)
        ranges.append(and_(column >= prefix, column < upper) if upper else column >= prefix)
    return _nullable(column, or_(*ranges), negate)


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (digits after a '+')."""
    digits = prefix.rstrip("9")
    if digits == "+":
        return None
    return digits[:-1] + str(int(digits[-1]) + 1)


def _age(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    # Age a or more <=> born on or before the day `a` years before today; at most b <=> born
    # after the day b + 1 years before: a date range, which plain comparisons can use.
    low, high = _bounds(leaf["value"], leaf["op"])
    column = _MEMBERS.c.birthday
    parts = []
    if low is not None:
        parts.append(column <= _years_before(scope.today, low))
    if high is not None:
        parts.append(column > _years_before(scope.today, high + 1))
    return _nullable(column, and_(*parts), negate)


def _years_before(today: dt.date, years: int) -> dt.date:
    """The same day `years` years earlier; 29 February becomes the 28th (whoever was born on
    the 28th that year turns a year older on the 28th of a leap year's February)."""
    year = today.year - years
    if year < 1:
        return dt.date.min
    if today.month == 2 and today.day == 29:
        try:
            return today.replace(year=year)
        except ValueError:
            return dt.date(year, 2, 28)
    return today.replace(year=year)


def _birthday_month(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    column = _MEMBERS.c.birthday
    if scope.dialect == "postgresql":
        # date_part gives a float; EXTRACT a numeric, built for every member (1M members:
        # 265-346 ms against 202-250, and 140-166 reading the birthday alone).
        month: Any = func.date_part("month", column)
    else:
        # SQLite keeps a date as 'YYYY-MM-DD'.
        month = cast(func.substr(column, 6, 2), Integer)
    return _nullable(column, month.in_(leaf["value"]), negate)


def _answer(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    question = select(_QUESTIONS.c.id).where(
        _QUESTIONS.c.program_id == scope.program_id, _QUESTIONS.c.key == leaf["question"]
    )
    # The question belongs to the club, so its answers need no program_id of their own: on
    # (question_id, member_id) the answers come in member order, one per member, and
    # "answered" is read from the index alone; a choice is one range of answer_choices' key
    # (question_id, choice, member_id), kept beside each answer by profile.save_answer, where
    # the JSON text of every answer to the question was searched (tests/bench/segments.py,
    # 1M members, skiing: 446 -> 237 ms of SQLite CPU, 777 -> 150 on PostgreSQL). On PostgreSQL
    # the question is `= (SELECT ...)` (the key is unique in the club): with IN it joined the
    # question to the rows and lost their member order, hashing 340,000 answers in batches
    # against the members where a merge join reads both indexes once (370-510 -> 100-150 ms).
    table, unique = _ANSWERS, True
    if leaf["op"] == "answered":
        negate = negate is leaf["value"]
        more = []
    else:
        table, unique = _CHOICES, len(leaf["value"]) == 1
        more = [_CHOICES.c.choice.in_(leaf["value"])]
    if scope.dialect == "postgresql":
        asked = table.c.question_id == question.scalar_subquery()
    else:
        asked = table.c.question_id.in_(question)
    rows = select(table.c.member_id).where(asked, *more)
    if scope.id_range is not None:
        low, high = scope.id_range
        member_id = rows.selected_columns[0]
        rows = rows.where(member_id > low, member_id <= high)
    return _members_in(scope, rows, negate, unique=unique)


def _store(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    # Joined there (the member's store) or bought there: one set of member_marks. With the
    # members' store column beside the buyers' set, SQLite probed that set for each of a
    # million members (tests/bench/segments.py, SQLite CPU: 507 -> 235 ms).
    stores = leaf["value"]
    rows = _marked(scope, (marks.JOINED, marks.STORE), stores)
    return _members_in(scope, rows, negate, unique=False)


def _marked(
    scope: _Scope, kinds: Sequence[str], names: Sequence[str], *more: ColumnElement[bool]
) -> Select[Any]:
    """The members with member_marks of these kinds and names (the store they joined at, the
    stores and categories they bought at and of), which enrolment and purchases.record keep:
    one range of its key in member order per kind and name, where the club's purchases (lines)
    were grouped by member for every count (tests/bench/segments.py, 1M members)."""
    ranges = [(kind, name) for kind in kinds for name in names]
    if scope.dialect == "postgresql" and not scope.correlate and 1 < len(ranges) <= MAX_RANGES:
        # Each range read from the index alone (with last_at for a window: migration 0016)
        # and the ranges appended, which PostgreSQL planned better than one scan with IN
        # (tests/bench/segments.py, store in Sandvika, joined or bought, after ANALYZE: 437
        # -> 357 ms). Without statistics it read every category's marks for IN, the names a
        # filter of the scan (category in skiing, service in 90 days: 312-470 -> 165-255 ms).
        each = [
            select(_MARKS.c.member_id).where(
                *scope.of(_MARKS, _MARKS.c.kind == kind, _MARKS.c.name == name, *more)
            )
            for kind, name in ranges
        ]
        found = union_all(*each).subquery()
        return select(found.c.member_id)
    where = scope.of(_MARKS, _MARKS.c.kind.in_(kinds), _MARKS.c.name.in_(names), *more)
    return select(_MARKS.c.member_id).where(*where)


def _tier(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    positions = leaf["value"]
    column = _MEMBERS.c.tier_id
    held = column.in_(
        select(_TIERS.c.id).where(
            _TIERS.c.program_id == scope.program_id, _TIERS.c.position.in_(positions)
        )
    )
    if 0 not in positions:
        return _nullable(column, held, negate)
    # The bottom tier is kept as NULL (loyalty.tiers): a member without a tier holds position 0,
    # if the club has a ladder at all.
    ladder = exists(select(_TIERS.c.id).where(_TIERS.c.program_id == scope.program_id))
    positive = or_(and_(column.is_not(None), held), and_(column.is_(None), ladder))
    return not_(positive) if negate else positive


# The fields read from another table than members (joined-or-bought store among them; not
# points, read from the member's row: ledger.held).
_RELATED = frozenset(
    {
        "answer",
        "store",
        "purchase_count",  # but without days or up to two: see _reads_other_tables
        "purchase_amount",  # but without days
        "category",
    }
)


def _points(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    # store.loyalty.ledger.held: the balance at `now` from the member's row (open_points), summed
    # from their lots only for the few whose lot has ended before the daily job settled it. No
    # set of open lots grouped by member (633,000 lots at 1M members), under AND, OR or NOT;
    # never NULL, so its negation is exactly the other members.
    low, high = _bounds(leaf["value"], leaf["op"])
    if (low or 0) <= 0 and high is None:
        return false() if negate else true()
    # held is never above open_points (it leaves out ended lots), so open_points decides most
    # members before held is read: below `low`, out; at most `high`, in.
    kept = _MEMBERS.c.open_points
    # Not for a planner's chunk of ids (id_range), whose few members each probe their lots.
    whole = scope.id_range is None and not scope.correlate
    if scope.dialect == "postgresql" and scope.disjunct and whole:
        positive = _held_within(scope, low, high)
        return not_(positive) if negate else positive
    held = ledger.held(literal(scope.now, _INSTANT))
    parts = []
    if low is not None:
        parts += [kept >= low, held >= low]
    if high is not None:
        parts.append(or_(kept <= high, held <= high))
    positive = and_(*parts)
    return not_(positive) if negate else positive


def _held_within(scope: _Scope, low: int | None, high: int | None) -> ColumnElement[bool]:
    """PostgreSQL: ledger.held(now) within [low, high] (never NULL), with the members whose lot
    has ended unsettled found in one set instead of summed one by one.

    held() sums such a member's lots in a correlated SubPlan, which PostgreSQL prices for
    every member and never runs in parallel: beside the consent term (active members) it read them
    through the status index, out of table order (the broad shape of tests/bench/segments.py,
    where 13 % of a million members hold a lot ended unsettled: 1.0-1.3 s, and as long without
    statistics). Here those members are found once (the covering index of open lots), each
    one's balance summed from their own lots (a probe per such member: grouping every open lot
    to merge them with the few took 147 of the broad shape's ms without statistics, now 19),
    and their ids that pass are a hashed set each member is looked up in (an
    uncorrelated IN: hashed while the planner expects it under hash_mem, 260,000 members at
    the defaults; a left join was as fast with statistics but, without, a nested loop over a
    million members). The set is read without program_id, which is the member's own: the
    lookup keeps the club's. A club whose daily job settles its lots has few in it."""
    at = literal(scope.now, _INSTANT)
    until = _MEMBERS.c.open_points_until
    kept = _MEMBERS.c.open_points
    lots = _LOTS.alias("ended")
    ended = (
        select(lots.c.member_id)
        # A literal, as the partial index of open lots says it (see ledger.OPEN_LOT).
        .where(lots.c.remaining > literal_column("0"), lots.c.expires_at <= at)
        .distinct()
        .subquery()
    )
    balance = ledger.lots_held(ended.c.member_id, at)
    passing = select(ended.c.member_id).where(_within(balance, low, high))
    found = _MEMBERS.c.id.in_(passing)
    settled = or_(until.is_(None), until > at)  # held is open_points
    unsettled = and_(until.is_not(None), until <= at)
    if low is None:
        # held is never above open_points: at most `high`, in without the lookup.
        return or_(kept <= high, and_(unsettled, found))
    # Below `low`, out before either branch is read.
    return and_(kept >= low, or_(and_(settled, _within(kept, None, high)), and_(unsettled, found)))


def _in_window(leaf: Filter, scope: _Scope) -> list[ColumnElement[bool]]:
    days = leaf.get("days")
    return [] if days is None else [_PURCHASES.c.occurred_at > scope.instant(days)]


# A member's latest purchase and the one before it, kept on their row by purchases.record.
_LATEST = (_MEMBERS.c.last_purchase_at, _MEMBERS.c.previous_purchase_at)


def _count_on_row(leaf: Filter) -> bool:
    """Whether a purchase count's bounds are told by the latest purchases the row keeps."""
    low, high = _bounds(leaf["value"], leaf["op"])
    return (low or 0) <= len(_LATEST) and (high is None or high < len(_LATEST))


def _purchase_count(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    low, high = _bounds(leaf["value"], leaf["op"])
    if not _count_on_row(leaf):
        if _lifetime_leaf(leaf):
            return _lifetime(_MEMBERS.c.purchase_count, low, high, negate)
        return _purchases_total(leaf, scope, func.count(), low, high, negate)
    # At least k purchases (in the window) <=> the member's k-th latest purchase is (in it),
    # for the two the member's row keeps: "at most one in a year" (a one-time buyer) or "two
    # or more" is a comparison on the row, not a count of a million members' purchases
    # (tests/bench/segments.py, the same filled club, old and new code: SQLite 268 -> 195 ms
    # of CPU; PostgreSQL without statistics 321 -> 263 ms, after ANALYZE 215 -> 192).
    days = leaf.get("days")

    def at_least(k: int) -> ColumnElement[bool]:
        column = _LATEST[k - 1]
        if days is None:
            return column.is_not(None)
        return and_(column.is_not(None), column > scope.instant(days))

    parts = []
    if low:
        parts.append(at_least(low))
    if high is not None:
        parts.append(not_(at_least(high + 1)))
    positive = and_(true(), *parts)
    return not_(positive) if negate else positive


def _purchases_total(
    leaf: Filter, scope: _Scope, total: Any, low: int | None, high: int | None, negate: bool
) -> ColumnElement[bool]:
    """A count or sum of the member's purchases (in the window) within [low, high].

    On SQLite the member's last purchase is tested first: one who bought nothing in the window
    has 0 without the set being probed (SQLite tests an AND's and an OR's terms in the order
    written). "At most two purchases in a year" probes the set only for those who bought in it
    ("at most one" probed it for a million members: tests/bench/segments.py, 523 -> 378 ms of
    CPU; it is now told by the member's row, _purchase_count)."""
    where = scope.of(_PURCHASES, *_in_window(leaf, scope))
    counted = _aggregate(scope, _PURCHASES, where, total, low, high, negate)
    if scope.dialect != "sqlite" or scope.correlate:
        return counted
    days = leaf.get("days")
    column = _MEMBERS.c.last_purchase_at
    idle = column.is_(None)
    if days is not None:
        idle = or_(idle, column <= scope.instant(days))
    # A member with 0 is in exactly when 0 is within [low, high], negated or not.
    if ((low or 0) <= 0) != negate:
        return or_(idle, counted)
    return and_(not_(idle), counted)


def _last_purchase(
    scope: _Scope, low: int | None, high: int | None, *, negate: bool
) -> ColumnElement[bool]:
    """Days since the member's last purchase in [low, high] (no bound for None; neither: bought
    at all), from members.last_purchase_at.

    That column is the latest occurred_at of the member's purchases: store.loyalty.purchases.
    record, the only way a purchase is written, moves it forward and never back (a purchase
    told late), a refund leaves the purchase and the column as they were, and no purchase is
    ever deleted but with its member. So "some purchase after the cut" is "the last one is
    after the cut": a comparison on the member's row, where the set of the club's buyers
    (228,000 of 1M for a year) was built and probed for every count."""
    column = _MEMBERS.c.last_purchase_at
    parts = []
    if low:
        parts.append(column <= scope.instant(low))
    if high is not None:
        parts.append(column > scope.instant(high + 1))
    if not parts:
        return column.is_(None) if negate else column.is_not(None)
    return _nullable(column, and_(*parts), negate)


def _purchase_amount(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    low, high = _bounds(leaf["value"], leaf["op"])
    if _lifetime_leaf(leaf):
        return _lifetime(_MEMBERS.c.purchase_total_minor, low, high, negate)
    total = func.sum(_PURCHASES.c.total_minor)
    return _purchases_total(leaf, scope, total, low, high, negate)


def _lifetime_leaf(leaf: Filter) -> bool:
    """A purchase count or amount over all the member's purchases (no "days"): counted and
    summed on their row."""
    return leaf["field"] in ("purchase_count", "purchase_amount") and leaf.get("days") is None


def _lifetime(column: Any, low: int | None, high: int | None, negate: bool) -> ColumnElement[bool]:
    """A count or sum of all the member's purchases within [low, high], from their row
    (purchase_count, purchase_total_minor: kept by purchases.record, 0 for a member who never
    bought, never NULL): where the club's purchases were grouped by member for every count
    (tests/bench/segments.py, 1M members, purchase amount of 5,000 kr on PostgreSQL: after
    ANALYZE 336-427 -> 121-204 ms, without statistics 327 -> 165-232)."""
    positive = _within(column, low, high)
    return not_(positive) if negate else positive


def _days_since_purchase(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    # Days since the last purchase in [low, high] <=> the last purchase is after the instant
    # high + 1 days before now, and on or before the one low days before (0 has no bound).
    low, high = _bounds(leaf["value"], leaf["op"])
    return _last_purchase(scope, low, high, negate=negate)


def _category(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    # With "days", the latest purchase of the category is in the window.
    categories = leaf["value"]
    days = leaf.get("days")
    recent = [] if days is None else [_MARKS.c.last_at > scope.instant(days)]
    rows = _marked(scope, (marks.CATEGORY,), categories, *recent)
    return _members_in(scope, rows, negate, unique=len(categories) == 1)


def _joined_days(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    low, high = _bounds(leaf["value"], leaf["op"])
    column = _MEMBERS.c.joined_at
    parts = []
    if low:
        parts.append(column <= scope.instant(low))
    if high is not None:
        parts.append(column > scope.instant(high + 1))
    positive = and_(*parts) if parts else column.is_not(None)
    return _nullable(column, positive, negate)


def _member(leaf: Filter, scope: _Scope, negate: bool) -> ColumnElement[bool]:
    # The ids written into the statement (validated whole numbers): up to 1,000 of them in
    # each of 50 conditions would pass SQLite's limit of bound parameters.
    ids = bindparam(None, leaf["value"], expanding=True, literal_execute=True)
    column = _MEMBERS.c.id
    return column.not_in(ids) if negate else column.in_(ids)


_LEAVES: dict[str, Callable[[Filter, _Scope, bool], ColumnElement[bool]]] = {
    "consent": _consent,
    "language": _language,
    "country": _country,
    "age": _age,
    "birthday_month": _birthday_month,
    "answer": _answer,
    "store": _store,
    "tier": _tier,
    "points": _points,
    "purchase_count": _purchase_count,
    "purchase_amount": _purchase_amount,
    "days_since_purchase": _days_since_purchase,
    "category": _category,
    "joined_days": _joined_days,
    "member": _member,
}


# --- validating -------------------------------------------------------------------------------


def validate(filter: Any) -> Filter:
    """The filter in its normal form (lists without repeats, codes in their usual case), or
    InvalidInput naming the path of what is wrong and why."""
    leaves = [0]
    normal = _node(filter, "", 1, leaves)
    if leaves[0] > MAX_LEAVES:
        raise InvalidInput("filter", f"a filter has at most {MAX_LEAVES} conditions")
    return normal


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _node(node: Any, path: str, depth: int, leaves: list[int]) -> Filter:
    where = path or "filter"
    if not isinstance(node, Mapping):
        raise InvalidInput(where, "must be an object")
    if depth > MAX_DEPTH:
        raise InvalidInput(where, f"filters nest at most {MAX_DEPTH} deep")
    combinators = [key for key in COMBINATORS if key in node]
    if combinators:
        key = combinators[0]
        if len(node) != 1:
            raise InvalidInput(where, f"{key} must be the only key of its object")
        if key == "not":
            return {"not": _node(node["not"], _at(path, "not"), depth + 1, leaves)}
        children = node[key]
        if not isinstance(children, list):
            raise InvalidInput(_at(path, key), "must be a list of filters")
        return {
            key: [
                _node(child, f"{_at(path, key)}[{i}]", depth + 1, leaves)
                for i, child in enumerate(children)
            ]
        }
    leaves[0] += 1
    if leaves[0] > MAX_LEAVES:
        raise InvalidInput("filter", f"a filter has at most {MAX_LEAVES} conditions")
    return _leaf(node, path)


def _leaf(node: Mapping[str, Any], path: str) -> Filter:
    field = node.get("field")
    if field is None:
        raise InvalidInput(path or "filter", "must be all, any, not or a condition with a field")
    if not isinstance(field, str) or field not in _FIELDS:
        raise InvalidInput(_at(path, "field"), f"unknown field {field!r}")
    spec = _FIELDS[field]
    unknown = sorted(set(node) - {"field", "op", "value", *spec.extras})
    if unknown:
        raise InvalidInput(_at(path, unknown[0]), f"{field} takes no {unknown[0]!r}")
    op = node.get("op")
    if op not in spec.ops:
        raise InvalidInput(_at(path, "op"), f"{field} takes op {_one_of(spec.ops)}")
    if "value" not in node:
        raise InvalidInput(_at(path, "value"), "is missing")
    leaf: Filter = {
        "field": field,
        "op": op,
        "value": spec.check(_at(path, "value"), field, op, node["value"]),
    }
    for extra in spec.extras:
        if extra in node and node[extra] is not None:
            leaf[extra] = _EXTRAS[extra](_at(path, extra), field, node[extra])
        elif extra == "question":
            raise InvalidInput(_at(path, "question"), "is missing: the key of a profile question")
    return leaf


def _one_of(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _boolean(path: str, field: str, op: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(path, f"{field} {op} takes true or false")
    return value


def _whole(low: int, high: int, unit: str = "") -> Callable[[str, str, Any], int]:
    def check(path: str, field: str, value: Any) -> int:
        if not _is_int(value):
            raise InvalidInput(path, f"{field} takes whole numbers{unit}")
        if not low <= value <= high:
            raise InvalidInput(path, f"{field} must be between {low:,} and {high:,}{unit}")
        return int(value)

    return check


def _ranged(low: int, high: int) -> Callable[[str, str, str, Any], Any]:
    whole = _whole(low, high)

    def check(path: str, field: str, op: str, value: Any) -> Any:
        if op != "between":
            return whole(path, field, value)
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise InvalidInput(path, f"{field} between takes [low, high]")
        first, last = (whole(f"{path}[{i}]", field, v) for i, v in enumerate(value))
        if first > last:
            raise InvalidInput(path, f"{field} between takes [low, high] with low <= high")
        return [first, last]

    return check


def _listed(
    item: Callable[[str, str, Any], Any], most: int = MAX_LIST
) -> Callable[[str, str, str, Any], list[Any]]:
    def check(path: str, field: str, op: str, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple) or not value:
            raise InvalidInput(path, f"{field} in takes a list of at least one value")
        if len(value) > most:
            raise InvalidInput(path, f"{field} in takes at most {most:,} values")
        seen: dict[Any, None] = {}
        for i, one in enumerate(value):
            seen.setdefault(item(f"{path}[{i}]", field, one), None)
        return list(seen)

    return check


def _text(max_length: int) -> Callable[[str, str, Any], str]:
    def check(path: str, field: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(path, f"{field} takes non-empty text")
        check_text(path, value)
        if len(value) > max_length:
            raise InvalidInput(path, f"{field} takes text of at most {max_length} characters")
        return value.strip()

    return check


def _language_code(path: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in LANGUAGES:
        raise InvalidInput(path, f"language must be {_one_of(LANGUAGES)}")
    return value.lower()


def _country_code(path: str, field: str, value: Any) -> str:
    code = value.upper() if isinstance(value, str) else None
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            path, f"country must be an ISO 3166 code such as NO or SE, not {value!r}"
        )
    return code


def _answer_value(path: str, field: str, op: str, value: Any) -> Any:
    if op == "answered":
        return _boolean(path, field, op, value)
    return _listed(_text(100))(path, field, op, value)


@dataclass(frozen=True, slots=True)
class _Field:
    ops: tuple[str, ...]
    check: Callable[[str, str, str, Any], Any]  # (path, field, op, value) -> normal value
    extras: tuple[str, ...] = ()


_DAYS = _whole(1, 36_500, " of days")
_EXTRAS: dict[str, Callable[[str, str, Any], Any]] = {
    "question": _text(40),
    "days": _DAYS,
}
_FIELDS: dict[str, _Field] = {
    "consent": _Field(("is",), _boolean),
    "language": _Field(("in",), _listed(_language_code)),
    "country": _Field(("in",), _listed(_country_code)),
    "age": _Field(RANGE_OPS, _ranged(0, 150)),
    "birthday_month": _Field(("in",), _listed(_whole(1, 12))),
    "answer": _Field(("in", "answered"), _answer_value, ("question",)),
    "store": _Field(("in",), _listed(_text(40))),
    "tier": _Field(("in",), _listed(_whole(0, 99))),
    "points": _Field(RANGE_OPS, _ranged(0, 10**12)),
    "purchase_count": _Field(RANGE_OPS, _ranged(0, 10**9), ("days",)),
    "purchase_amount": _Field(RANGE_OPS, _ranged(0, 10**15), ("days",)),
    "days_since_purchase": _Field(RANGE_OPS, _ranged(0, 36_500)),
    "category": _Field(("in",), _listed(_text(60)), ("days",)),
    "joined_days": _Field(RANGE_OPS, _ranged(0, 36_500)),
    "member": _Field(("in",), _listed(_whole(1, MAX_ID, " (member ids)"), MAX_MEMBERS)),
}
FIELDS = tuple(_FIELDS)


def _segment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name", "a segment needs a name")
    check_text("name", name)
    if len(name.strip()) > MAX_NAME:
        raise InvalidInput("name", f"at most {MAX_NAME} characters")
    return name.strip()


def _leaves(node: Filter, path: str = "") -> Iterator[tuple[str, Filter]]:
    """Every leaf of a valid filter with its path."""
    for key in ("all", "any"):
        if key in node:
            for i, child in enumerate(node[key]):
                yield from _leaves(child, f"{_at(path, key)}[{i}]")
            return
    if "not" in node:
        yield from _leaves(node["not"], _at(path, "not"))
        return
    yield path, node


def _check_questions(session: Session, program_id: int, normal: Filter) -> None:
    """A saved segment names questions the club has, and choices those questions offer."""
    asked = [(path, leaf) for path, leaf in _leaves(normal) if leaf["field"] == "answer"]
    if not asked:
        return
    questions = {
        q.key: q
        for q in session.scalars(
            select(ProfileQuestion).where(ProfileQuestion.program_id == program_id)
        )
    }
    for path, leaf in asked:
        question = questions.get(leaf["question"])
        if question is None:
            raise InvalidInput(
                _at(path, "question"), f"the club has no question {leaf['question']!r}"
            )
        if question.kind in ("first_name", "birthday"):
            raise InvalidInput(
                _at(path, "question"),
                f"{question.kind} is kept on the member, not as an answer"
                + (": use age or birthday_month" if question.kind == "birthday" else ""),
            )
        if leaf["op"] != "in":
            continue
        if question.kind == "text":
            raise InvalidInput(_at(path, "op"), "a text question can only be filtered on answered")
        offered = [choice["key"] for choice in question.choices or ()]
        for i, choice in enumerate(leaf["value"]):
            if choice not in offered:
                raise InvalidInput(
                    f"{_at(path, 'value')}[{i}]",
                    f"{choice!r} is not a choice of {question.key} ({', '.join(offered)})",
                )
