"""For any purchases a till tells, in any order (a backlog sent late, a retry of the same
sale), a member's last purchase is the latest one recorded, and the dashboard's recency counts
read from it agree with days counted from the purchases themselves."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from store import reports
from store.database import Database
from store.loyalty import purchases
from store.loyalty.earning import Line
from store.models import Member, Program, Purchase
from tests.store.loyalty_helpers import at, club, fingerprint, member

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
                        purchases.record(
                            session,
                            program,
                            buyer.id,
                            transaction_id=transaction,
                            lines=[Line(qty=1, amount_minor=1000)],
                            occurred_at=when,
                            fingerprint=fingerprint(transaction),
                            now=NOW,
                        )
            kept = dict(
                session.execute(
                    select(Member.id, Member.last_purchase_at).where(Member.id.in_(ids))
                ).all()
            )
            latest = dict(
                session.execute(
                    select(Purchase.member_id, func.max(Purchase.occurred_at))
                    .where(Purchase.member_id.in_(ids))
                    .group_by(Purchase.member_id)
                ).all()
            )
            for member_id in ids:
                assert kept[member_id] == latest.get(member_id), member_id
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
