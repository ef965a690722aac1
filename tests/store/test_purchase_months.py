"""purchase_months, each member's purchases per month of the club's zone as purchases.record
keeps them, and the dashboard's figures read from them: for any purchases a till tells (late,
twice, at a local midnight, across summer time), the rows are what the purchases say, and
purchase_figures gives exactly what counting the purchases gives, with the rows, without them
(the statements before purchase_months), and after the club changes its zone; migration 0012
fills them as record would have; tills recording for one member at once lose no count."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from store import migrate, reports
from store.database import Database, open_database
from store.loyalty import purchases
from store.members import members
from store.models import Member, Program, Purchase, PurchaseMonth
from tests.store.loyalty_helpers import buy, club, member
from tests.store.test_migrations import on_connection, own_database

EXAMPLES = {"sqlite": 30, "postgresql": 15}
ZONES = ("Europe/Oslo", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "Pacific/Chatham")
FIRST_MONTH = dt.date(2025, 1, 1)
MONTHS = 24  # the purchases fall in 2025 and 2026, and a day or two either side
NOW = dt.datetime(2027, 1, 15, tzinfo=dt.UTC)
_SALES = itertools.count()
_MONTHS = PurchaseMonth.__table__


def month_start(index: int, zone: ZoneInfo) -> dt.datetime:
    year, month = divmod(FIRST_MONTH.month - 1 + index, 12)
    return reports.midnight(dt.date(FIRST_MONTH.year + year, month + 1, 1), zone)


# A sale: the buyer (of four), the month it falls near, seconds from that month's first local
# midnight (often right at it, or a day before or after it), its amount, and whether the till
# sends it twice (the same transaction id again).
AROUND_MIDNIGHT = st.sampled_from((-86400, -3601, -3600, -1, 0, 1, 3599, 3600, 86399))
SALE = st.tuples(
    st.integers(0, 3),
    st.integers(0, MONTHS - 1),
    st.one_of(AROUND_MIDNIGHT, st.integers(-2 * 86400, 32 * 86400)),
    st.integers(1, 100_000),
    st.booleans(),
)
# A period: its first day as days after 1 December 2024, and its length in days.
PERIOD = st.tuples(st.integers(0, 800), st.integers(1, reports.MAX_DAYS))


def by_hand(
    sales: list[tuple[int, dt.datetime, int]], per: reports.Period, grain: str
) -> list[tuple[str, int, int, int]]:
    """Each slice's purchases, revenue and distinct buyers, counted from the sales told."""
    out = []
    for piece in reports.slices(per, reports.grain_for(per, grain)):
        since, until = (
            reports.midnight(piece.start, per.zone),
            reports.midnight(piece.end, per.zone),
        )
        inside = [(buyer, amount) for buyer, when, amount in sales if since <= when < until]
        out.append(
            (
                piece.label,
                len(inside),
                sum(amount for _, amount in inside),
                len({buyer for buyer, _ in inside}),
            )
        )
    return out


def shown(figures: reports.PurchaseFigures) -> list[tuple[str, int, int, int]]:
    return [(s.slice.label, s.purchases, s.revenue_minor, s.buyers) for s in figures.by_slice]


def sell(
    session: Session,
    program: Program,
    member_id: int,
    amount: int,
    at: dt.datetime,
    *,
    now: dt.datetime = NOW,
    transaction: str | None = None,
) -> None:
    """One sale of one line through purchases.record (the roll-up's one writer); a transaction
    id of its own unless one is given (the same one again: a till's retry)."""
    transaction = transaction or f"S{next(_SALES)}"
    buy(session, program, member_id, amount, at, transaction_id=transaction, told=now)


def kept_rows(session: Session, program_id: int) -> dict[tuple[int, int, int], tuple[int, int]]:
    return {
        (row.month_start, row.month_end, row.member_id): (row.purchases, row.revenue_minor)
        for row in session.execute(select(_MONTHS).where(_MONTHS.c.program_id == program_id))
    }


def rows_by_hand(
    session: Session, program_id: int, zone: ZoneInfo
) -> dict[tuple[int, int, int], tuple[int, int]]:
    """What purchase_months should hold: the club's purchases grouped by member and month."""
    counted: Counter[tuple[int, int, int]] = Counter()
    summed: Counter[tuple[int, int, int]] = Counter()
    for member_id, when, total in session.execute(
        select(Purchase.member_id, Purchase.occurred_at, Purchase.total_minor).where(
            Purchase.program_id == program_id
        )
    ):
        since = when.astimezone(zone).date().replace(day=1)
        following = dt.date(since.year + since.month // 12, since.month % 12 + 1, 1)
        key = (
            int(reports.midnight(since, zone).timestamp()),
            int(reports.midnight(following, zone).timestamp()),
            member_id,
        )
        assert reports.midnight(since, zone) <= when < reports.midnight(following, zone)
        counted[key] += 1
        summed[key] += total
    return {key: (n, summed[key]) for key, n in counted.items()}


def test_the_months_kept_give_the_figures_counted_from_the_purchases(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    loop, db = loop_and_db

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        st.sampled_from(ZONES),
        st.sampled_from(ZONES),
        st.lists(SALE, max_size=14),
        st.lists(PERIOD, min_size=1, max_size=3),
        st.sampled_from((reports.MONTH, reports.AUTO)),
    )
    def check(
        timezone: str,
        moved_to: str,
        told: list[tuple[int, int, int, int, bool]],
        periods: list[tuple[int, int]],
        grain: str,
    ) -> None:
        zone = ZoneInfo(timezone)

        def record(session: Session) -> tuple[int, list[tuple[int, dt.datetime, int]]]:
            program = club(session, timezone=timezone)
            buyers = [member(session, program).id for _ in range(4)]
            sales = []
            for buyer, month, seconds, amount, twice in told:
                when = month_start(month, zone) + dt.timedelta(seconds=seconds)
                transaction = f"M{next(_SALES)}"
                for _ in range(2 if twice else 1):
                    sell(session, program, buyers[buyer], amount, when, transaction=transaction)
                sales.append((buyers[buyer], when, amount))
            # Every row is what the purchases say.
            assert kept_rows(session, program.id) == rows_by_hand(session, program.id, zone)
            return program.id, sales

        program_id, sales = loop.run_until_complete(db.run(record))

        def figures(session: Session) -> list[list[tuple[str, int, int, int]]]:
            program = session.get(Program, program_id)
            assert program is not None
            out = []
            for first, days in periods:
                start = dt.date(2024, 12, 1) + dt.timedelta(days=first)
                per = reports.period(program, start, start + dt.timedelta(days=days))
                found = shown(reports.purchase_figures(session, program, per, grain))
                assert found == by_hand(sales, per, grain), (start, days)
                out.append(found)
            return out

        kept = loop.run_until_complete(db.run(figures))

        def recount(session: Session) -> None:
            program = session.get(Program, program_id)
            assert program is not None
            before = kept_rows(session, program_id)
            purchases.count_months(session, program)
            assert kept_rows(session, program_id) == before

        loop.run_until_complete(db.run(recount))

        def without_rows(session: Session) -> None:
            session.execute(delete(_MONTHS).where(_MONTHS.c.program_id == program_id))

        # Without the rows every month is counted from the purchases, as before them.
        loop.run_until_complete(db.run(without_rows))
        assert loop.run_until_complete(db.run(figures)) == kept

        def move(session: Session) -> None:
            program = session.get(Program, program_id)
            assert program is not None
            purchases.count_months(session, program)  # the old zone's months again
            program.timezone = moved_to

        # The club moves to another zone: its months are cut anew, the rows of the old zone's
        # months don't add up to the new ones (or are the same months), and recounted they do.
        loop.run_until_complete(db.run(move))
        zone = ZoneInfo(moved_to)
        loop.run_until_complete(db.run(figures))

        def recount_moved(session: Session) -> None:
            program = session.get(Program, program_id)
            assert program is not None
            purchases.count_months(session, program)
            assert kept_rows(session, program_id) == rows_by_hand(session, program_id, zone)

        loop.run_until_complete(db.run(recount_moved))
        loop.run_until_complete(db.run(figures))

    check()


async def test_tills_recording_for_one_member_at_once_lose_no_count(
    loyalty_db: Database,
) -> None:
    """Eight sales of one member in one month told at the same moment (on PostgreSQL, eight
    connections): the month's row counts and sums all eight."""
    db = loyalty_db
    program_id, buyer = await db.run(
        lambda s: (lambda p: (p.id, member(s, p).id))(club(s, timezone="Europe/Oslo"))
    )
    when = dt.datetime(2026, 5, 3, 10, tzinfo=dt.UTC)

    def sale(amount: int) -> Any:
        def work(session: Session) -> None:
            sell(session, session.get(Program, program_id), buyer, amount, when, now=when)

        return db.run(work)

    await asyncio.gather(*(sale(1000 + i) for i in range(8)))
    rows = await db.run(lambda s: kept_rows(s, program_id))
    assert list(rows.values()) == [(8, sum(1000 + i for i in range(8)))]


async def test_0012_fills_the_months_as_record_keeps_them(
    database_url: str, tmp_path: Path
) -> None:
    """Purchases recorded before purchase_months existed are in it after the migration, the
    same rows record would have written, each club in its own zone."""
    url = await own_database(database_url, tmp_path)
    db = open_database(url)
    try:

        def work(session: Session) -> None:
            for timezone in ("Europe/Oslo", "Australia/Sydney"):
                program = club(session, timezone=timezone)
                zone = ZoneInfo(timezone)
                buyers = [member(session, program).id for _ in range(3)]
                for i, (buyer, month, seconds) in enumerate(
                    itertools.product(range(3), (0, 5, 13), (-1, 0, 7200))
                ):
                    at = month_start(month, zone) + dt.timedelta(seconds=seconds)
                    sell(session, program, buyers[buyer], 100 * i + 1, at)

        await db.run(work)
    finally:
        await db.close()

    def every_row(conn: Connection) -> set[tuple[Any, ...]]:
        return {tuple(row) for row in conn.execute(select(_MONTHS))}

    try:
        recorded = await on_connection(url, every_row)
        assert len(recorded) > 20
        await migrate.downgrade(url, "0011")
        await migrate.upgrade(url)
        assert await on_connection(url, every_row) == recorded
    finally:
        await migrate.upgrade(url)


async def test_the_reports_buyers_and_top_customers_are_those_counted_by_hand(
    loyalty_db: Database,
) -> None:
    """A year's report (one read of the purchases in member order for its buyers and its top
    customers on SQLite, the candidates above a bound from purchase_months) ranks and counts
    as the purchases say, with ties, and with none, some or most of the best erased."""
    db = loyalty_db
    year = (dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    for seed, erased_of_best in ((1, 0), (2, 5), (3, 22)):
        rng = random.Random(seed)

        def work(
            session: Session, rng: random.Random = rng, erased_of_best: int = erased_of_best
        ) -> None:
            program = club(session, timezone="Europe/Oslo")
            zone = ZoneInfo(program.timezone)
            buyers = [member(session, program).id for _ in range(60)]
            sales: list[tuple[int, int]] = []
            for buyer in buyers:
                # Everyone buys in December (the bound's month); some more through the year.
                months = [12] + [rng.randint(1, 12) for _ in range(rng.randint(0, 4))]
                for month in months:
                    amount = rng.choice((1000, 2500, 5000, 5000, 12000))  # ties, often
                    day = reports.midnight(dt.date(2026, month, rng.randint(1, 28)), zone)
                    sell(
                        session,
                        program,
                        buyer,
                        amount,
                        day + dt.timedelta(hours=rng.randint(0, 23)),
                    )
                    sales.append((buyer, amount))
            spent: dict[int, tuple[int, int]] = {}
            for buyer, amount in sales:
                n, revenue = spent.get(buyer, (0, 0))
                spent[buyer] = (n + 1, revenue + amount)
            ranked = sorted(spent, key=lambda m: (-spent[m][1], -spent[m][0], m))
            erased = set(ranked[:erased_of_best])
            session.execute(
                Member.__table__.update().where(Member.id.in_(erased)).values(status=members.ERASED)
            )
            per = reports.period(program, *year)
            report = reports.report(session, program, per, NOW)
            expected = [(m, *spent[m]) for m in ranked if m not in erased][: reports.TOP]
            found = [(c.member_id, c.purchases, c.revenue_minor) for c in report.top_customers]
            assert found == expected, erased_of_best
            assert report.purchases.buyers == len(spent)
            assert report.top_customers == reports.top_customers(session, program, per)
            assert report.purchases == reports.purchase_figures(session, program, per)

        await db.run(work)
