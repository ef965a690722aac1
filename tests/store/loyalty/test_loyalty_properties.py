"""Rules that hold for any sequence of point operations, and for any burst of redemptions, on
SQLite and PostgreSQL.

Hypothesis runs many examples against one database (a fresh one per example would be far too
slow), so the test is a plain function that opens the database in a loop of its own, and each
example works on a member of its own, as tests/flows/test_conversation_properties.py does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from store.database import Database
from store.errors import Conflict, NotEnoughPoints
from store.loyalty import coupons, ledger, purchases, tiers
from store.loyalty.earning import Line, taken_back
from store.loyalty.purchases import RefundLineIn
from store.models import Program, PurchaseLine
from tests.store.loyalty_helpers import at, club, fingerprint, member, template

START = at(2026, 1, 15)
LIFETIME_MONTHS = 12
EXAMPLES = {"sqlite": 40, "postgresql": 30}
_IDS = itertools.count()

LINES = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.one_of(st.integers(0, 999), st.integers(1000, 100_000)),
        st.sampled_from([False, False, True]),  # discounted
    ),
    min_size=1,
    max_size=3,
)
BUY = st.tuples(st.just("buy"), LINES)
OPERATIONS = st.lists(
    st.one_of(
        BUY,
        st.tuples(
            st.just("refund"),
            st.integers(0, 9),  # which purchase
            st.sampled_from(["whole", "qty", "amount"]),
            st.integers(0, 2),  # which line
            st.floats(0, 1),  # how much of what is left
        ),
        # Spend a share of the balance (more than all of it now and then).
        st.tuples(st.just("spend"), st.floats(0, 1.2)),
        # Staff adjust up by points, or down by a share of the balance.
        st.tuples(st.just("adjust"), st.one_of(st.integers(1, 300), st.floats(-1.2, 0))),
        # Days: a lot lives 12 to 13 months, so a long wait or two crosses its end.
        st.tuples(st.just("wait"), st.sampled_from([1, 30, 200, 400])),
        st.tuples(st.just("expire")),
    ),
    min_size=3,
    max_size=18,
)
# A few purchases first, so there is something to spend, refund and expire.
SEQUENCES = st.tuples(st.lists(BUY, min_size=1, max_size=3), OPERATIONS).map(
    lambda parts: parts[0] + parts[1]
)


@dataclass
class Lot:
    seq: int
    end: dt.datetime
    remaining: int


@dataclass
class BoughtLine:
    qty: int
    amount: int
    points: int
    qty_left: int = 0
    amount_left: int = 0
    refunded_points: int = 0

    def __post_init__(self) -> None:
        self.qty_left, self.amount_left = self.qty, self.amount


@dataclass
class Model:
    """What the member's points should be: lots spent oldest first, ended lots worth nothing
    from their end on, and written off (settled) only when the store writes the expiry."""

    program: Program
    lots: list[Lot] = field(default_factory=list)
    bought: list[tuple[str, list[BoughtLine]]] = field(default_factory=list)

    def balance(self, now: dt.datetime) -> int:
        return sum(lot.remaining for lot in self.lots if lot.end > now)

    def total(self) -> int:
        return sum(lot.remaining for lot in self.lots)

    def next_expiry(self, now: dt.datetime) -> ledger.Expiry | None:
        open_lots = [lot for lot in self.lots if lot.remaining > 0 and lot.end > now]
        if not open_lots:
            return None
        first = min(lot.end for lot in open_lots)
        return ledger.Expiry(sum(lot.remaining for lot in open_lots if lot.end == first), first)

    def credit(self, points: int, now: dt.datetime) -> None:
        self.lots.append(Lot(len(self.lots), ledger.lot_end(self.program, now), points))

    def settle(self, now: dt.datetime) -> None:
        for lot in self.lots:
            if lot.end <= now:
                lot.remaining = 0

    def debit(self, points: int, now: dt.datetime) -> int:
        self.settle(now)
        left = wanted = min(points, self.balance(now))
        for lot in sorted(self.lots, key=lambda lot: (lot.end, lot.seq)):
            take = min(left, lot.remaining)
            lot.remaining -= take
            left -= take
        return wanted


def refund_request(
    lines: list[BoughtLine], mode: str, which: int, share: float
) -> tuple[list[RefundLineIn] | None, list[tuple[BoughtLine, int, int]]] | None:
    """The refund to ask for and what it should return of each line (qty, amount); None when
    this refund can't be asked for (nothing of the line is left)."""
    if mode == "whole":
        plan = [
            (line, line.qty_left, line.amount_left)
            for line in lines
            if line.qty_left or line.amount_left
        ]
        return None, plan
    no = which % len(lines)
    line = lines[no]
    if mode == "qty":
        if line.qty_left == 0:
            return None
        qty = 1 + int(share * (line.qty_left - 1))
        whole = qty == line.qty_left
        amount = line.amount_left if whole else min(line.amount * qty // line.qty, line.amount_left)
        return [RefundLineIn(no + 1, qty=qty)], [(line, qty, amount)]
    if line.amount_left == 0:
        return None
    amount = 1 + int(share * (line.amount_left - 1))
    return [RefundLineIn(no + 1, amount_minor=amount)], [(line, 0, amount)]


class Run:
    """One example: a member of its own, a clock, the model, and a check after every step."""

    def __init__(self, loop: asyncio.AbstractEventLoop, db: Database, program: Program) -> None:
        self.loop = loop
        self.db = db
        self.program = program
        self.now = START
        self.model = Model(program)
        self.member_id = self.run(lambda s: member(s, self.in_session(s), now=START).id)

    def in_session(self, session) -> Program:
        found = session.get(Program, self.program.id)
        assert found is not None
        return found

    def run(self, work: Callable[[Any], Any]) -> Any:
        return self.loop.run_until_complete(self.db.run(work))

    def step(self, operation: tuple) -> None:
        kind = operation[0]
        if kind == "wait":
            self.now += dt.timedelta(days=operation[1])
        elif kind == "buy":
            self.buy(operation[1])
        elif kind == "refund":
            self.refund(*operation[1:])
        elif kind == "spend":
            self.take(self.share(operation[1]), ledger.SPEND)
        elif kind == "adjust" and isinstance(operation[1], int):
            now = self.now
            self.run(
                lambda s: ledger.credit(
                    s, self.in_session(s), self.member_id, operation[1], ledger.ADJUST, now
                )
            )
            self.model.credit(operation[1], now)
        elif kind == "adjust":
            self.take(self.share(-operation[1]), ledger.ADJUST)
        else:
            self.expire()
        self.check()

    def share(self, of_balance: float) -> int:
        return max(1, round(of_balance * self.model.balance(self.now)))

    def buy(self, lines: list[tuple[int, int, bool]]) -> None:
        transaction_id = f"P{next(_IDS)}"
        wanted = [Line(qty=q, amount_minor=a, discounted=d) for q, a, d in lines]
        now = self.now

        def work(session) -> tuple[int, list[tuple[int, int, int]]]:
            recorded = purchases.record(
                session,
                self.in_session(session),
                self.member_id,
                transaction_id=transaction_id,
                lines=wanted,
                occurred_at=now,
                fingerprint=fingerprint(transaction_id),
                now=now,
            )
            rows = session.execute(
                select(PurchaseLine.qty, PurchaseLine.amount_minor, PurchaseLine.points)
                .where(PurchaseLine.purchase_id == recorded.purchase.id)
                .order_by(PurchaseLine.line_no)
            ).all()
            return recorded.purchase.points, [tuple(row) for row in rows]

        points, rows = self.run(work)
        assert points == sum(p for _, _, p in rows)
        if points:
            self.model.credit(points, now)
        self.model.bought.append((transaction_id, [BoughtLine(*row) for row in rows]))

    def refund(self, purchase: int, mode: str, which: int, share: float) -> None:
        if not self.model.bought:
            return
        transaction_id, lines = self.model.bought[purchase % len(self.model.bought)]
        request = refund_request(lines, mode, which, share)
        if request is None:
            return
        wanted, plan = request
        refund_id = f"R{next(_IDS)}"
        now = self.now

        def work(session) -> purchases.Refunded:
            return purchases.refund(
                session,
                self.in_session(session),
                transaction_id=transaction_id,
                refund_id=refund_id,
                lines=wanted,
                fingerprint=fingerprint(refund_id),
                now=now,
            )

        if not plan:
            with pytest.raises(Conflict, match="already refunded"):
                self.run(work)
            return
        refunded = self.run(work).refund
        points = sum(
            taken_back(line.points, line.amount, line.amount - line.amount_left, amount)
            for line, _, amount in plan
        )
        assert refunded.points == points
        assert refunded.amount_minor == sum(amount for _, _, amount in plan)
        taken = self.model.debit(points, now) if points else 0
        assert refunded.points_taken == taken
        for line, qty, amount in plan:
            line.refunded_points += taken_back(
                line.points, line.amount, line.amount - line.amount_left, amount
            )
            line.qty_left -= qty
            line.amount_left -= amount
            assert line.qty_left >= 0
            assert line.amount_left >= 0
            # Cumulatively exact: never more than the line earned, all of it once all is back.
            assert line.refunded_points <= line.points
            if line.amount_left == 0:
                assert line.refunded_points == line.points

    def take(self, points: int, kind: str) -> None:
        now = self.now

        def work(session) -> int:
            return ledger.debit(session, self.program.id, self.member_id, points, kind, now)

        if points > self.model.balance(now):
            with pytest.raises(NotEnoughPoints):
                self.run(work)
            return
        assert self.run(work) == points
        self.model.debit(points, now)

    def expire(self) -> None:
        now = self.now
        self.run(lambda s: ledger.expire_due(s, now))
        self.model.settle(now)
        entries, _ = self.run(lambda s: ledger.totals(s, self.member_id))
        # After the job, the ledger's entries add up to the balance.
        assert entries == self.run(lambda s: ledger.balance(s, self.member_id, now))

    def check(self) -> None:
        now = self.now

        def read(session) -> tuple:
            since = tiers.qualification_start(self.program, now)
            return (
                ledger.balance(session, self.member_id, now),
                ledger.totals(session, self.member_id),
                ledger.next_expiry(session, self.member_id, now),
                # POINTS reads the open lots and the tier's points in one statement.
                ledger.open_lots_and_earned(session, self.member_id, now, since),
                (
                    ledger.open_lots(session, self.member_id, now),
                    ledger.earned_since(session, self.member_id, since),
                ),
            )

        balance, (entries, lots), expiry, together, apart = self.run(read)
        assert together == apart
        assert balance >= 0
        assert entries == lots
        assert balance == self.model.balance(now)
        assert entries == self.model.total()
        assert expiry == self.model.next_expiry(now)


def test_any_sequence_of_point_operations_keeps_the_ledger_whole(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """For any purchases, whole and partial refunds, spends, adjustments, time passing across
    expiry and runs of the daily job: the balance is never negative and is what the lots say;
    the entries add up to the lots; refunds take back exactly what their lines earned, capped
    at the balance; the next expiry is exact; after the job the entries add up to the balance."""
    loop, db = loop_and_db
    program = loop.run_until_complete(
        db.run(lambda s: club(s, points_lifetime_months=LIFETIME_MONTHS))
    )

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(SEQUENCES)
    def check(operations: list[tuple]) -> None:
        run = Run(loop, db, program)
        for operation in operations:
            run.step(operation)

    check()


def test_a_burst_of_redemptions_redeems_each_code_exactly_once(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """For any few codes, each tried by several tills at once in any order: every code is
    redeemed by exactly one of them; every other attempt gets Conflict."""
    loop, db = loop_and_db

    def setup(session) -> tuple[int, int]:
        program = club(session)
        return program.id, template(session, program, coupons.CAMPAIGN).id

    program_id, template_id = loop.run_until_complete(db.run(setup))
    now = at(2026, 6, 1)

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(2, 5), min_size=1, max_size=4), st.randoms(use_true_random=False))
    def check(attempts: list[int], random: Any) -> None:
        def issue(session) -> list[str]:
            program = session.get(Program, program_id)
            m = member(session, program)
            kind = session.get(coupons.CouponTemplate, template_id)
            return [
                coupons.issue(session, program_id, m.id, kind, f"burst:{next(_IDS)}", now).code
                for _ in attempts
            ]

        codes = loop.run_until_complete(db.run(issue))
        tries = [code for code, n in zip(codes, attempts, strict=True) for _ in range(n)]
        random.shuffle(tries)

        async def burst() -> list[Any]:
            return await asyncio.gather(
                *(
                    db.run(lambda s, code=code: coupons.redeem(s, program_id, code, now, by="till"))
                    for code in tries
                ),
                return_exceptions=True,
            )

        results = loop.run_until_complete(burst())
        for code, n in zip(codes, attempts, strict=True):
            mine = [r for t, r in zip(tries, results, strict=True) if t == code]
            assert len(mine) == n
            assert sum(isinstance(r, coupons.Held) for r in mine) == 1, (code, mine)
            lost = [r for r in mine if not isinstance(r, coupons.Held)]
            assert all(isinstance(r, Conflict) and r.reason == "coupon_redeemed" for r in lost)

    check()
