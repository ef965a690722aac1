"""For any purchases a till tells, in any order (a backlog sent late, a retry of the same
sale), a member's last purchase is the latest one recorded and the one before it the second
latest, their count and sum on the row are the purchases' own, and the dashboard's recency
counts read from it agree with days counted from the purchases themselves."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select

from store import migrate, reports
from store.database import Database, open_database
from store.models import Member, Program, Purchase
from tests.store.loyalty_helpers import at, buy, club, member
from tests.store.test_migrations import on_connection, own_database

NOW = at(2026, 11, 1)
EXAMPLES = {"sqlite": 40, "postgresql": 25}
_SALES = itertools.count()

# Each sale: how many days before NOW it happened (told in this order), and whether the till
# sends it twice (a retry: the same transaction id again).
SALES = st.lists(
    st.tuples(st.integers(0, 800), st.booleans()),
    min_size=0,
    max_size=8,
)


def sell(
    session,
    program: Program,
    member_id: int,
    transaction: str,
    when: dt.datetime,
    amount: int = 1000,
) -> None:
    """A sale of `amount` (10 kr) made at `when`, told now."""
    buy(session, program, member_id, amount, when, transaction_id=transaction, told=NOW)


def test_the_last_purchase_is_the_latest_told_and_recency_agrees(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    loop, db = loop_and_db
    program_id = loop.run_until_complete(db.run(lambda s: club(s).id))

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(SALES, min_size=1, max_size=4))
    def check(members_sales: list[list[tuple[int, bool]]]) -> None:
        def work(session) -> tuple[dict[int, dt.datetime | None], list[int]]:
            program = session.get(Program, program_id)
            assert program is not None
            ids = []
            for sales in members_sales:
                buyer = member(session, program, now=NOW - dt.timedelta(days=900))
                ids.append(buyer.id)
                for days, twice in sales:
                    transaction = f"L{next(_SALES)}"
                    when = NOW - dt.timedelta(days=days, hours=days % 7)
                    for _ in range(2 if twice else 1):
                        sell(session, program, buyer.id, transaction, when, 1000 + days)
            rows = session.execute(
                select(
                    Member.id,
                    Member.last_purchase_at,
                    Member.previous_purchase_at,
                    Member.purchase_count,
                    Member.purchase_total_minor,
                ).where(Member.id.in_(ids))
            ).all()
            kept = {row.id: row.last_purchase_at for row in rows}
            before_last = {row.id: row.previous_purchase_at for row in rows}
            in_all = {row.id: (row.purchase_count, row.purchase_total_minor) for row in rows}
            told = {
                row.member_id: (row.n, row.total)
                for row in session.execute(
                    select(
                        Purchase.member_id,
                        func.count().label("n"),
                        func.sum(Purchase.total_minor).label("total"),
                    )
                    .where(Purchase.member_id.in_(ids))
                    .group_by(Purchase.member_id)
                )
            }
            latest = dict(
                session.execute(
                    select(Purchase.member_id, func.max(Purchase.occurred_at))
                    .where(Purchase.member_id.in_(ids))
                    .group_by(Purchase.member_id)
                ).all()
            )
            for member_id in ids:
                assert kept[member_id] == latest.get(member_id), member_id
                # The one before it: the second latest of the member's purchases (the same
                # instant when two were made at once), None with fewer than two.
                times = sorted(
                    session.scalars(
                        select(Purchase.occurred_at).where(Purchase.member_id == member_id)
                    ),
                    reverse=True,
                )
                second = times[1] if len(times) > 1 else None
                assert before_last[member_id] == second, member_id
                # A retry counts once: the purchases as stored, counted and summed.
                assert in_all[member_id] == told.get(member_id, (0, 0)), member_id
            return kept, ids

        kept, ids = loop.run_until_complete(db.run(work))

        # The recency buckets, counted the slow way from each member's latest purchase.
        def bucket(last: dt.datetime | None) -> str:
            if last is None:
                return reports.NEVER
            days = (NOW - last).days
            for label, low, high in reports.RECENCY:
                if days >= low and (high is None or days <= high):
                    return label
            raise AssertionError(days)

        def counted(session) -> dict[str, int]:
            return {
                r.label: r.members
                for r in reports.recency(session, session.get(Program, program_id), NOW)
            }

        before = loop.run_until_complete(db.run(counted))
        # Everyone else in the club (earlier examples) is counted too: compare the difference
        # these members make by taking them out and in again (their status decides).
        loop.run_until_complete(
            db.run(
                lambda s: s.execute(
                    Member.__table__.update().where(Member.id.in_(ids)).values(status="stopped")
                )
            )
        )
        without = loop.run_until_complete(db.run(counted))
        expected: dict[str, int] = {}
        for member_id in ids:
            label = bucket(kept[member_id])
            expected[label] = expected.get(label, 0) + 1
        for label, _, _ in [*reports.RECENCY, (reports.NEVER, 0, None)]:
            assert before[label] - without[label] == expected.get(label, 0), label

    check()


async def test_0015_fills_the_purchase_before_the_last_as_record_keeps_it(
    database_url: str, tmp_path: Path
) -> None:
    """Sales made before migration 0015 (none, one, two at the same instant, several told late)
    leave each member's purchase before the last as purchases.record keeps it from then on."""
    url = await own_database(database_url, tmp_path)
    db = open_database(url)
    try:

        def work(session) -> None:
            program = club(session)
            for days_ago in ([], [3], [5, 5], [1, 9, 4], [30, 2, 60, 2, 7]):
                buyer = member(session, program, now=NOW - dt.timedelta(days=900))
                for days in days_ago:
                    when = NOW - dt.timedelta(days=days)
                    sell(session, program, buyer.id, f"M{next(_SALES)}", when)

        await db.run(work)
    finally:
        await db.close()

    columns = (Member.id, Member.last_purchase_at, Member.previous_purchase_at)
    before = await filled_again(url, columns, "0014")
    assert sum(previous is not None for _, _, previous in before) >= 3


async def test_0017_fills_each_members_purchases_in_all_as_record_keeps_them(
    database_url: str, tmp_path: Path
) -> None:
    """Sales made before migration 0017 (none, one, several, a retry) leave each member's count
    and sum of purchases as purchases.record keeps them from then on."""
    url = await own_database(database_url, tmp_path)
    db = open_database(url)
    try:

        def work(session) -> None:
            program = club(session)
            for amounts in ([], [2500], [100, 100], [999, 1, 50_000, 7]):
                buyer = member(session, program, now=NOW - dt.timedelta(days=900))
                for days, amount in enumerate(amounts):
                    when = NOW - dt.timedelta(days=days)
                    transaction = f"T{next(_SALES)}"
                    for _ in range(2):  # the till retries each: counted once
                        sell(session, program, buyer.id, transaction, when, amount)

        await db.run(work)
    finally:
        await db.close()

    columns = (Member.id, Member.purchase_count, Member.purchase_total_minor)
    before = await filled_again(url, columns, "0016")
    assert {(n, total) for _, n, total in before} >= {(0, 0), (1, 2500), (4, 51_007)}


async def filled_again(url: str, columns: tuple[Any, ...], below: str) -> set[tuple[Any, ...]]:
    """The members' `columns` as purchases.record left them, which the migrations after
    `below`, undone and run again, fill back alike (asserted); returned for the test's own
    checks."""

    def kept(conn: Connection) -> set[tuple[Any, ...]]:
        return {tuple(row) for row in conn.execute(select(*columns))}

    try:
        before = await on_connection(url, kept)
        await migrate.downgrade(url, below)
        await migrate.upgrade(url)
        assert await on_connection(url, kept) == before
    finally:
        await migrate.upgrade(url)
    return before
