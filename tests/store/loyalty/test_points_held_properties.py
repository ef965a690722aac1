"""The points each member's row keeps (open_points, open_points_until) are what their lots say,
after any sequence of point operations, on SQLite and PostgreSQL; and ledger.held is the balance.

As in test_loyalty_properties.py, Hypothesis runs many examples against one database, each on
members of its own (a club per test, a few members per example).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from scheduler import cheques as job
from store.database import Database
from store.errors import Conflict, NotEnoughPoints
from store.loyalty import coupons, ledger, rewards
from store.models import Member, PointLot, Program
from tests.store.loyalty.test_cheques import KR, cheque
from tests.store.loyalty_helpers import at, buy, club, error_of, give_back, member

START = at(2026, 1, 15)
LIFETIME_MONTHS = 12
MEMBERS = 3
EXAMPLES = {"sqlite": 80, "postgresql": 40}
# Besides now, the instants held() is compared with balance() at: a lot lives 12 to 13 months,
# so some of the member's open lots have ended at the later ones (the sum from the lots).
LATER = (dt.timedelta(days=100), dt.timedelta(days=380), dt.timedelta(days=800))
_IDS = itertools.count()

WHO = st.integers(0, MEMBERS - 1)
BUY = st.tuples(st.just("buy"), WHO, st.integers(1, 4000))  # kroner: as many points
OPERATIONS = st.lists(
    st.one_of(
        BUY,
        st.tuples(st.just("refund"), WHO, st.integers(0, 9)),  # which of their purchases
        st.tuples(st.just("claim"), WHO),  # a reward of 300 points
        st.tuples(st.just("adjust"), WHO, st.one_of(st.integers(1, 500), st.integers(-800, -1))),
        st.tuples(st.just("spend"), WHO, st.integers(1, 3000)),
        st.tuples(st.just("wait"), st.sampled_from([1, 30, 200, 400])),
        st.tuples(st.just("expire"), st.sampled_from([1, 2, 5000])),  # lots closed a call
        st.tuples(st.just("cheques")),  # the daily bonus cheques (2,500 points)
    ),
    min_size=3,
    max_size=20,
)
# A few purchases first, so there is something to spend, refund and expire.
SEQUENCES = st.tuples(st.lists(BUY, min_size=1, max_size=4), OPERATIONS).map(
    lambda parts: parts[0] + parts[1]
)


class Run:
    """One example: its own members, a clock, and a check of every member after every step."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, db: Database, program_id: int, reward_id: int
    ) -> None:
        self.loop, self.db = loop, db
        self.program_id, self.reward_id = program_id, reward_id
        self.now = START
        self.bought: list[list[str]] = [[] for _ in range(MEMBERS)]

        def make(session) -> list[int]:
            program = self.program(session)
            return [member(session, program, now=START).id for _ in range(MEMBERS)]

        self.ids = self.run(make)

    def program(self, session) -> Program:
        found = session.get(Program, self.program_id)
        assert found is not None
        return found

    def run(self, work: Callable[[Any], Any]) -> Any:
        return self.loop.run_until_complete(self.db.run(work))

    def attempt(self, work: Callable[[Any], Any]) -> None:
        """Run `work` in a unit of work that commits even when it is refused (as a CLAIM by SMS
        does): a spend refused for want of points has written the expiry of ended lots."""
        refused = self.run(lambda s: error_of(lambda: work(s)))
        assert refused is None or isinstance(refused, NotEnoughPoints | Conflict), refused

    def step(self, operation: tuple) -> None:
        kind, now = operation[0], self.now
        if kind == "wait":
            self.now += dt.timedelta(days=operation[1])
        elif kind == "buy":
            who, kroner = operation[1], operation[2]
            transaction_id = f"H{next(_IDS)}"
            self.run(
                lambda s: buy(
                    s, self.program(s), self.ids[who], kroner * KR, now,
                    transaction_id=transaction_id,
                )
            )  # fmt: skip
            self.bought[who].append(transaction_id)
        elif kind == "refund":
            mine = self.bought[operation[1]]
            if mine:
                transaction_id = mine[operation[2] % len(mine)]
                self.attempt(lambda s: give_back(s, self.program(s), transaction_id, now))
        elif kind == "claim":
            member_id = self.ids[operation[1]]
            self.attempt(
                lambda s: rewards.claim(s, self.program(s), member_id, self.reward_id, now)
            )
        elif kind == "adjust":
            member_id, points = self.ids[operation[1]], operation[2]
            self.attempt(
                lambda s: ledger.adjust(
                    s, self.program(s), s.get(Member, member_id), points, now,
                    reason="property", actor="test",
                )
            )  # fmt: skip
        elif kind == "spend":
            member_id, points = self.ids[operation[1]], operation[2]
            self.attempt(
                lambda s: ledger.debit(s, self.program_id, member_id, points, ledger.SPEND, now)
            )
        elif kind == "expire":
            limit = operation[1]
            while self.run(lambda s: ledger.expire_due(s, now, limit)):
                pass
        else:
            self.loop.run_until_complete(job.run(self.db, lambda: now))
        self.check()

    def check(self) -> None:
        now = self.now
        instants = [now, *(now + later for later in LATER)]

        def read(session) -> tuple[list[tuple], list[tuple], list[list[int]], list[list[int]]]:
            kept = session.execute(
                select(Member.id, Member.open_points, Member.open_points_until)
                .where(Member.id.in_(self.ids))
                .order_by(Member.id)
            ).all()
            open_lot = (PointLot.member_id == Member.id, PointLot.remaining > 0)
            lots = session.execute(
                select(
                    Member.id,
                    select(func.coalesce(func.sum(PointLot.remaining), 0))
                    .where(*open_lot)
                    .scalar_subquery(),
                    select(func.min(PointLot.expires_at)).where(*open_lot).scalar_subquery(),
                )
                .where(Member.id.in_(self.ids))
                .order_by(Member.id)
            ).all()
            held = [
                list(
                    session.scalars(
                        select(ledger.held(t)).where(Member.id.in_(self.ids)).order_by(Member.id)
                    )
                )
                for t in instants
            ]
            balances = [
                [ledger.balance(session, member_id, t) for member_id in sorted(self.ids)]
                for t in instants
            ]
            return kept, lots, held, balances

        kept, lots, held, balances = self.run(read)
        assert [tuple(row) for row in kept] == [tuple(row) for row in lots]
        assert held == balances


def test_the_points_on_a_members_row_are_what_their_lots_say(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """For any purchases, refunds, reward claims, spends, adjustments up and down, bonus
    cheques, time passing across lots' ends and expiry runs in batches of any size: every
    member's open_points is the sum of their open lots and open_points_until the earliest end
    among them (NULL without one); and ledger.held is ledger.balance at now and at later
    instants (when some of those lots have ended and are not settled yet)."""
    loop, db = loop_and_db

    def setup(session) -> tuple[int, int]:
        program = club(session, points_lifetime_months=LIFETIME_MONTHS)
        cheque(session, program)
        reward = coupons.create_template(
            session,
            program,
            key="coffee",
            kind=coupons.REWARD,
            benefit={"nb": "kaffe", "en": "coffee"},
            points_cost=300,
            valid_days=30,
        )
        return program.id, reward.id

    program_id, reward_id = loop.run_until_complete(db.run(setup))

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(SEQUENCES)
    def check(operations: list[tuple]) -> None:
        run = Run(loop, db, program_id, reward_id)
        run.check()
        for operation in operations:
            run.step(operation)

    check()
