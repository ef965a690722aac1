"""The points ledger: append-only entries, lots spent oldest first, expiry exact at any instant."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url

from store.database import Database
from store.errors import NotEnoughPoints
from store.loyalty import cheques, ledger
from store.models import LedgerEntry, Program
from tests.store.loyalty_helpers import at, club, error_of, member

OSLO_END_OF = {
    # The instant a month ends in Oslo (CET in winter, CEST in summer), in UTC.
    (2027, 1): dt.datetime(2027, 1, 31, 23, tzinfo=dt.UTC),
    (2027, 2): dt.datetime(2027, 2, 28, 23, tzinfo=dt.UTC),
    (2027, 3): dt.datetime(2027, 3, 31, 22, tzinfo=dt.UTC),
    (2028, 1): dt.datetime(2028, 1, 31, 23, tzinfo=dt.UTC),
}


def test_months_are_added_across_years() -> None:
    assert ledger.add_months(dt.date(2026, 11, 30), 1) == dt.date(2026, 12, 1)
    assert ledger.add_months(dt.date(2026, 11, 30), 2) == dt.date(2027, 1, 1)
    assert ledger.add_months(dt.date(2026, 1, 31), 25) == dt.date(2028, 2, 1)


def test_a_lot_ends_when_its_month_ends_a_lifetime_later() -> None:
    """Points earned in January 2026 with a 24-month lifetime expire when January 2028 ends."""
    program = Program(timezone="Europe/Oslo", points_lifetime_months=24)
    assert ledger.lot_end(program, at(2026, 1, 1, 0)) == OSLO_END_OF[2028, 1]
    assert ledger.lot_end(program, at(2026, 1, 31, 22)) == OSLO_END_OF[2028, 1]


def test_a_lots_month_is_the_clubs_month() -> None:
    """23:30 UTC on 31 January is already February in Oslo: the lot ends a month later."""
    oslo = Program(timezone="Europe/Oslo", points_lifetime_months=12)
    assert ledger.lot_end(oslo, at(2026, 1, 31, 22, 59)) == OSLO_END_OF[2027, 1]
    assert ledger.lot_end(oslo, at(2026, 1, 31, 23, 30)) == OSLO_END_OF[2027, 2]
    # Summer time is respected when the lot ends.
    assert ledger.lot_end(oslo, at(2026, 3, 15)) == OSLO_END_OF[2027, 3]


async def test_a_credit_opens_a_lot_and_the_balance_is_derived(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        entry = ledger.credit(session, program, m.id, 250, ledger.ADJUST, at(2026, 1, 10))
        ledger.credit(session, program, m.id, 50, ledger.BONUS, at(2026, 2, 10), reason="x")
        return (
            entry,
            ledger.balance(session, m.id, at(2026, 3, 1)),
            ledger.totals(session, m.id),
            [(e.kind, e.points) for e in ledger.history(session, m.id)],
        )

    entry, balance, totals, history = await loyalty_db.run(work)
    assert entry > 0
    assert balance == 300
    assert totals == (300, 300)
    assert history == [("bonus", 50), ("adjust", 250)]  # newest first


async def test_credits_and_debits_refuse_the_wrong_kind_or_sign(loyalty_db: Database) -> None:
    def work(session) -> list:
        program = club(session)
        m = member(session, program)
        return [
            error_of(call)
            for call in (
                lambda: ledger.credit(session, program, m.id, 0, ledger.ADJUST, at(2026, 1, 1)),
                lambda: ledger.credit(session, program, m.id, 10, ledger.SPEND, at(2026, 1, 1)),
                lambda: ledger.debit(session, program.id, m.id, -5, ledger.SPEND, at(2026, 1, 1)),
                lambda: ledger.debit(session, program.id, m.id, 5, ledger.EARN, at(2026, 1, 1)),
            )
        ] + [ledger.totals(session, m.id)]

    *refused, totals = await loyalty_db.run(work)
    assert [type(e) for e in refused] == [ValueError] * 4
    assert totals == (0, 0)


async def test_spending_takes_the_oldest_lots_first(loyalty_db: Database) -> None:
    """100 points from January, 100 from March, 100 from May; spending 150 empties January and
    half of March, so what expires next is March's remaining 50."""

    def work(session) -> tuple:
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        for month in (1, 3, 5):
            ledger.credit(session, program, m.id, 100, ledger.EARN, at(2026, month, 10))
        spent = ledger.debit(session, program.id, m.id, 150, ledger.SPEND, at(2026, 6, 1))
        now = at(2026, 6, 2)
        return spent, ledger.balance(session, m.id, now), ledger.next_expiry(session, m.id, now)

    spent, balance, expiry = await loyalty_db.run(work)
    assert spent == 150
    assert balance == 150
    assert expiry == ledger.Expiry(50, OSLO_END_OF[2027, 3])


async def test_lots_ending_together_expire_together(loyalty_db: Database) -> None:
    def work(session):
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        ledger.credit(session, program, m.id, 30, ledger.EARN, at(2026, 1, 2))
        ledger.credit(session, program, m.id, 40, ledger.ADJUST, at(2026, 1, 28))
        ledger.credit(session, program, m.id, 50, ledger.EARN, at(2026, 2, 2))
        return ledger.next_expiry(session, m.id, at(2026, 3, 1))

    assert await loyalty_db.run(work) == ledger.Expiry(70, OSLO_END_OF[2027, 1])


async def test_spending_more_than_the_balance_changes_nothing(loyalty_db: Database) -> None:
    def setup(session) -> tuple[int, int]:
        program = club(session)
        m = member(session, program)
        ledger.credit(session, program, m.id, 100, ledger.EARN, at(2026, 1, 10))
        return program.id, m.id

    program_id, member_id = await loyalty_db.run(setup)
    with pytest.raises(NotEnoughPoints) as raised:
        await loyalty_db.run(
            lambda s: ledger.debit(s, program_id, member_id, 101, ledger.SPEND, at(2026, 2, 1))
        )
    assert (raised.value.balance, raised.value.wanted, raised.value.reason) == (
        100,
        101,
        "not_enough_points",
    )

    def read(session) -> tuple:
        return ledger.balance(session, member_id, at(2026, 2, 1)), ledger.totals(session, member_id)

    assert await loyalty_db.run(read) == (100, (100, 100))


async def test_a_partial_debit_takes_what_is_left_and_never_goes_below_zero(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        ledger.credit(session, program, m.id, 40, ledger.EARN, at(2026, 1, 10))
        taken = ledger.debit(
            session, program.id, m.id, 100, ledger.REFUND, at(2026, 1, 11), partial=True
        )
        again = ledger.debit(
            session, program.id, m.id, 100, ledger.REFUND, at(2026, 1, 12), partial=True
        )
        return (
            taken,
            again,
            ledger.balance(session, m.id, at(2026, 1, 12)),
            ledger.totals(session, m.id),
            [(e.kind, e.points) for e in ledger.history(session, m.id)],
        )

    taken, again, balance, totals, history = await loyalty_db.run(work)
    assert (taken, again, balance, totals) == (40, 0, 0, (0, 0))
    # A refund is recorded even when there was nothing left to take.
    assert history == [("refund", 0), ("refund", -40), ("earn", 40)]


async def test_a_lot_past_its_end_never_counts_even_before_the_job_ran(
    loyalty_db: Database,
) -> None:
    """The lot of January 2026 (12 months) ends at the end of January 2027: one second before
    it counts, at that instant it does not, and the next expiry moves on, with no job run."""

    def work(session) -> tuple:
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        ledger.credit(session, program, m.id, 100, ledger.EARN, at(2026, 1, 10))
        ledger.credit(session, program, m.id, 20, ledger.EARN, at(2026, 2, 10))
        end = OSLO_END_OF[2027, 1]
        before = end - dt.timedelta(seconds=1)
        return (
            ledger.balance(session, m.id, before),
            ledger.next_expiry(session, m.id, before),
            ledger.balance(session, m.id, end),
            ledger.next_expiry(session, m.id, end),
            ledger.totals(session, m.id),
        )

    before, next_before, after, next_after, totals = await loyalty_db.run(work)
    assert before == 120
    assert next_before == ledger.Expiry(100, OSLO_END_OF[2027, 1])
    assert after == 20
    assert next_after == ledger.Expiry(20, OSLO_END_OF[2027, 2])
    assert totals == (120, 120)  # nothing written yet


async def test_nothing_left_to_expire_means_no_next_expiry(loyalty_db: Database) -> None:
    def work(session):
        program = club(session)
        m = member(session, program)
        ledger.credit(session, program, m.id, 10, ledger.EARN, at(2026, 1, 10))
        ledger.debit(session, program.id, m.id, 10, ledger.SPEND, at(2026, 1, 11))
        return ledger.next_expiry(session, m.id, at(2026, 1, 12))

    assert await loyalty_db.run(work) is None


async def test_the_daily_job_writes_expire_entries_dated_at_the_lots_end(db: Database) -> None:
    def setup(session) -> int:
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        ledger.credit(session, program, m.id, 100, ledger.EARN, at(2026, 1, 10))
        ledger.credit(session, program, m.id, 60, ledger.EARN, at(2026, 2, 10))
        ledger.debit(session, program.id, m.id, 30, ledger.SPEND, at(2026, 3, 1))
        return m.id

    member_id = await db.run(setup)
    job_at = at(2027, 2, 15)  # January's lot has ended, February's has not
    closed = await db.run(lambda s: ledger.expire_due(s, job_at))
    again = await db.run(lambda s: ledger.expire_due(s, job_at))

    def read(session) -> tuple:
        expired = session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.member_id == member_id, LedgerEntry.kind == ledger.EXPIRE
            )
        ).all()
        return (
            [(e.points, e.created_at) for e in expired],
            ledger.balance(session, member_id, job_at),
            ledger.totals(session, member_id),
        )

    expired, balance, totals = await db.run(read)
    assert (closed, again) == (1, 0)
    assert expired == [(-70, OSLO_END_OF[2027, 1])]  # what was left of January's 100
    assert balance == 60
    assert totals == (60, 60)  # after the job, the entries add up to the balance


async def test_a_spend_after_a_lots_end_settles_it_first(loyalty_db: Database) -> None:
    """A spend after January's lot ended writes its expiry before spending; the spend comes
    out of the next lot, and the history reads in order."""

    def work(session) -> tuple:
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        ledger.credit(session, program, m.id, 100, ledger.EARN, at(2026, 1, 10))
        ledger.credit(session, program, m.id, 50, ledger.EARN, at(2026, 6, 10))
        refused = error_of(
            lambda: ledger.debit(session, program.id, m.id, 60, ledger.SPEND, at(2027, 3, 1))
        )
        ledger.debit(session, program.id, m.id, 50, ledger.SPEND, at(2027, 3, 1))
        return (
            refused,
            [(e.kind, e.points) for e in reversed(ledger.history(session, m.id))],
            (ledger.totals(session, m.id)),
        )

    refused, history, totals = await loyalty_db.run(work)
    assert isinstance(refused, NotEnoughPoints)
    assert (refused.balance, refused.wanted) == (50, 60)
    assert history == [("earn", 100), ("earn", 50), ("expire", -100), ("spend", -50)]
    assert totals == (0, 0)


async def test_concurrent_spends_of_one_balance_never_overdraw(loyalty_db: Database) -> None:
    """Eight tills spend 100 of a 300 balance at once: exactly three succeed, the rest are
    refused, and the ledger still adds up (on PostgreSQL each spend is its own transaction)."""

    def setup(session) -> tuple[int, int]:
        program = club(session)
        m = member(session, program)
        ledger.credit(session, program, m.id, 300, ledger.EARN, at(2026, 1, 10))
        return program.id, m.id

    program_id, member_id = await loyalty_db.run(setup)
    now = at(2026, 2, 1)
    results = await asyncio.gather(
        *(
            loyalty_db.run(lambda s: ledger.debit(s, program_id, member_id, 100, ledger.SPEND, now))
            for _ in range(8)
        ),
        return_exceptions=True,
    )
    assert sorted(r for r in results if isinstance(r, int)) == [100, 100, 100]
    assert sum(isinstance(r, NotEnoughPoints) for r in results) == 5

    def read(session) -> tuple:
        return ledger.balance(session, member_id, now), ledger.totals(session, member_id)

    assert await loyalty_db.run(read) == (0, (0, 0))


async def test_concurrent_expiry_runs_close_each_lot_once(db: Database) -> None:
    """Two app processes may run the daily job at the same moment: each lot gets one expire
    entry, not one per run."""

    def setup(session) -> int:
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        for day in range(1, 6):
            ledger.credit(session, program, m.id, 10 * day, ledger.EARN, at(2026, 1, day))
        return m.id

    member_id = await db.run(setup)
    job_at = at(2027, 6, 1)
    closed = await asyncio.gather(
        *(db.run(lambda s: ledger.expire_due(s, job_at)) for _ in range(3))
    )

    def read(session) -> tuple:
        expired = session.scalars(
            select(LedgerEntry.lot_id).where(
                LedgerEntry.member_id == member_id, LedgerEntry.kind == ledger.EXPIRE
            )
        ).all()
        return len(expired), len(set(expired)), ledger.totals(session, member_id)

    assert sum(closed) == 5
    assert await db.run(read) == (5, 5, (0, 0))


async def test_a_spend_and_the_job_at_the_same_time_keep_the_ledger_whole(
    loyalty_db: Database,
) -> None:
    """A spend that settles an ended lot while the daily job closes it: one expire entry."""

    def setup(session) -> tuple[int, int]:
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        ledger.credit(session, program, m.id, 100, ledger.EARN, at(2026, 1, 10))
        ledger.credit(session, program, m.id, 100, ledger.EARN, at(2026, 8, 10))
        return program.id, m.id

    program_id, member_id = await loyalty_db.run(setup)
    now = at(2027, 3, 1)
    await asyncio.gather(
        loyalty_db.run(lambda s: ledger.expire_due(s, now)),
        loyalty_db.run(lambda s: ledger.debit(s, program_id, member_id, 30, ledger.SPEND, now)),
        loyalty_db.run(lambda s: ledger.expire_due(s, now)),
    )

    def read(session) -> tuple:
        return ledger.balance(session, member_id, now), ledger.totals(session, member_id)

    assert await loyalty_db.run(read) == (70, (70, 70))


async def test_points_earned_count_earn_less_refunds_since_an_instant(loyalty_db: Database) -> None:
    def work(session) -> tuple[int, int]:
        program = club(session)
        m = member(session, program)
        ledger.credit(session, program, m.id, 500, ledger.EARN, at(2025, 1, 10))
        ledger.credit(session, program, m.id, 300, ledger.EARN, at(2026, 1, 10))
        ledger.credit(session, program, m.id, 900, ledger.BONUS, at(2026, 1, 11))
        ledger.credit(session, program, m.id, 900, ledger.ADJUST, at(2026, 1, 11))
        return (
            ledger.earned_since(session, m.id, at(2025, 6, 1)),
            ledger.earned_since(session, m.id, at(2024, 6, 1)),
        )

    # Bonus and staff adjustments are not earned from purchases.
    assert await loyalty_db.run(work) == (300, 800)


@pytest.mark.parametrize(
    "statement",
    [ledger._OPEN_LOTS, ledger._LOTS_AND_EARNED, cheques._AFFORDABLE],
    ids=["open lots", "lots and earned", "cheques affordable"],
)
def test_a_prepared_read_of_a_members_open_lots_keeps_to_their_index(
    postgres_schema: str, statement: Any
) -> None:
    """A statement PostgreSQL has prepared (asyncpg prepares each, psycopg after five runs) may
    run on a generic plan, made without the parameters' values: the reads of a member's open
    lots (a POINTS text, a sale's cheques) say "remaining > 0" as the partial index of open
    lots does, so that plan still takes the index. With the 0 a parameter, it scanned every
    lot of every club."""
    compiled = statement.compile(dialect=asyncpg_dialect())
    engine = create_engine(make_url(postgres_schema).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql(f"PREPARE lots_read AS {compiled}")
            nulls = ", ".join(["NULL"] * len(compiled.positiontup or ()))
            plan = "\n".join(
                row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE lots_read({nulls})")
            )
    finally:
        engine.dispose()
    assert "ix_point_lots_open" in plan, plan
