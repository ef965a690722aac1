"""Bonus cheques under any sequence of purchases, refunds, claims, points given by staff, time
passing and runs of the hourly job, on SQLite and PostgreSQL: the ledger never goes negative,
each cheque is paid by a spend of its own (never two for the same points), and a cheque is
issued exactly when the balance covers it after a purchase or a job run.

As in test_loyalty_properties.py, hypothesis runs many examples against one database, each on
a member of its own, and a model of the lots says what the balance should be.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from scheduler import cheques as job
from store.database import Database
from store.errors import NotEnoughPoints
from store.loyalty import cheques, ledger, rewards
from store.models import Coupon, LedgerEntry, Program
from tests.store.loyalty.test_cheques import KR, cheque
from tests.store.loyalty.test_loyalty_properties import Model
from tests.store.loyalty_helpers import at, buy, club, error_of, give_back, member

START = at(2026, 1, 15)
COST = 1000
EXAMPLES = {"sqlite": 40, "postgresql": 25}
_IDS = itertools.count()

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(0, 2600)),  # kroner: 0 to 2.6 cheques
        st.tuples(st.just("refund"), st.integers(0, 9)),  # which purchase, whole
        st.tuples(st.just("claim")),  # the member claims the cheque's reward by SMS
        st.tuples(st.just("adjust"), st.integers(1, 2500)),  # points given by staff
        st.tuples(st.just("job")),
        st.tuples(st.just("wait"), st.sampled_from([1, 30, 200, 400])),
    ),
    min_size=1,
    max_size=16,
)


class Run:
    """One example: a member of its own, a clock, the lots' model and the cheques expected."""

    def __init__(self, loop: asyncio.AbstractEventLoop, db: Database, ids: tuple[int, int]):
        self.loop, self.db = loop, db
        self.program_id, self.template_id = ids
        self.now = START
        self.model: Model | None = None
        self.member_id = self.run(lambda s: member(s, self.program(s), now=START).id)
        self.model = Model(self.run(lambda s: self.program(s)))
        self.bought: list[tuple[str, int]] = []
        self.refunded: set[str] = set()
        self.cheques = 0
        self.earned = 0

    def program(self, session) -> Program:
        found = session.get(Program, self.program_id)
        assert found is not None
        return found

    def run(self, work: Callable[[Any], Any]) -> Any:
        return self.loop.run_until_complete(self.db.run(work))

    def cash_in(self) -> None:
        """What a check does: as many cheques as the balance covers."""
        assert self.model is not None
        while self.model.balance(self.now) >= COST:
            self.model.debit(COST, self.now)
            self.cheques += 1

    def step(self, operation: tuple) -> None:
        assert self.model is not None
        kind, now = operation[0], self.now
        if kind == "wait":
            self.now += dt.timedelta(days=operation[1])
        elif kind == "buy":
            recorded = self.run(
                lambda s: buy(s, self.program(s), self.member_id, operation[1] * KR, now)
            )
            self.bought.append((recorded.purchase.transaction_id, operation[1]))
            self.earned += operation[1]
            if operation[1]:
                self.model.credit(operation[1], now)
                self.cash_in()
            assert recorded.balance == self.model.balance(now)
        elif kind == "refund" and self.bought:
            transaction_id, points = self.bought[operation[1] % len(self.bought)]
            if transaction_id in self.refunded or not points:
                return
            self.refunded.add(transaction_id)
            refunded = self.run(lambda s: give_back(s, self.program(s), transaction_id, now))
            assert refunded.refund.points_taken == self.model.debit(points, now)
        elif kind == "claim":
            outcome = self.run(
                lambda s: error_of(
                    lambda: rewards.claim(
                        s, self.program(s), self.member_id, self.template_id, now, actor="sms"
                    )
                )
            )
            if self.model.balance(now) >= COST:
                assert outcome is None
                self.model.debit(COST, now)
            else:
                assert isinstance(outcome, NotEnoughPoints)
                # Refused in a turn that commits (as a CLAIM by SMS is): the spend wrote the
                # expiry of lots past their end before it found the balance short.
                self.model.settle(now)
        elif kind == "adjust":
            self.run(
                lambda s: ledger.credit(
                    s, self.program(s), self.member_id, operation[1], ledger.ADJUST, now
                )
            )
            self.earned += operation[1]
            self.model.credit(operation[1], now)
        elif kind == "job":
            self.loop.run_until_complete(job.run(self.db, lambda: now))
            self.cash_in()
        self.check()

    def check(self) -> None:
        assert self.model is not None
        now, member_id = self.now, self.member_id

        def read(session) -> tuple:
            sources = session.scalars(
                select(Coupon.source)
                .where(Coupon.member_id == member_id, Coupon.source.startswith("cheque:"))
                .order_by(Coupon.id)
            ).all()
            paid = session.scalars(
                select(LedgerEntry.points).where(
                    LedgerEntry.member_id == member_id,
                    LedgerEntry.kind == ledger.SPEND,
                    LedgerEntry.reason.startswith(cheques.REASON),
                )
            ).all()
            return (
                ledger.balance(session, member_id, now),
                ledger.totals(session, member_id),
                (
                    list(sources),
                    list(paid),
                ),
            )

        balance, (entries, lots), (sources, paid) = self.run(read)
        assert balance >= 0
        assert entries == lots
        assert balance == self.model.balance(now)
        assert entries == self.model.total()
        # One spend of the cheque's cost per cheque, numbered 1..n: none twice for one spend.
        assert sources == [f"cheque:{member_id}:{n}" for n in range(1, len(sources) + 1)]
        assert paid == [-COST] * len(sources)
        assert len(sources) == self.cheques
        # Never more cheques than the points ever given could pay for.
        assert len(sources) * COST <= self.earned


def test_any_sequence_never_pays_a_cheque_twice_and_never_goes_negative(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    loop, db = loop_and_db

    def setup(session) -> tuple[int, int]:
        program = club(session, points_lifetime_months=12)
        return program.id, cheque(session, program, COST).id

    ids = loop.run_until_complete(db.run(setup))

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(OPERATIONS)
    def check(operations: list[tuple]) -> None:
        run = Run(loop, db, ids)
        for operation in operations:
            run.step(operation)

    check()
