"""Purchases and refunds from the till: recorded once, points earned and taken back by line, and
punch cards."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from store.database import Database
from store.errors import Conflict, InvalidInput, NotFound
from store.loyalty import coupons, ledger, purchases
from store.loyalty.earning import Line
from store.loyalty.purchases import RefundLineIn
from store.models import BonusRule, PointMultiplier, Program, PunchCard, PurchaseLine, RefundLine
from tests.store.loyalty_helpers import (
    at,
    buy,
    club,
    coupons_of,
    error_of,
    fingerprint,
    give_back,
    member,
    template,
)


def line_points(session, purchase_id: int) -> list[int]:
    return list(
        session.scalars(
            select(PurchaseLine.points)
            .where(PurchaseLine.purchase_id == purchase_id)
            .order_by(PurchaseLine.line_no)
        )
    )


async def test_a_purchase_earns_points_by_the_clubs_rules(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session, earn_points=2, earn_per_minor=100)
        m = member(session, program)
        lines = [
            Line(qty=2, amount_minor=49900, category="sko", sku="A1"),
            Line(qty=1, amount_minor=9950, discounted=True),
            Line(qty=1, amount_minor=1050),
        ]
        recorded = buy(session, program, m.id, lines, at(2026, 1, 10))
        return (
            recorded.purchase.points,
            recorded.purchase.total_minor,
            recorded.purchase.currency,
            recorded.replayed,
            recorded.balance,
            line_points(session, recorded.purchase.id),
            [(e.kind, e.points, e.purchase_id) for e in ledger.history(session, m.id)],
            recorded.purchase.id,
        )

    (
        points,
        total,
        currency,
        replayed,
        balance,
        per_line,
        history,
        purchase_id,
    ) = await loyalty_db.run(work)
    assert points == 1019  # 998 + 0 (discounted) + 21
    assert per_line == [998, 0, 21]
    assert (total, currency, replayed, balance) == (60900, "NOK", False, 1019)
    assert history == [("earn", 1019, purchase_id)]


async def test_the_same_transaction_again_is_recorded_once(loyalty_db: Database) -> None:
    """A till retrying gets what was recorded the first time; the same transaction id with
    other contents is a conflict."""

    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        lines = [Line(qty=1, amount_minor=10000)]
        args = {
            "transaction_id": "T-1",
            "lines": lines,
            "occurred_at": at(2026, 1, 10),
            "fingerprint": fingerprint("T-1", lines),
        }
        first = purchases.record(session, program, m.id, now=at(2026, 1, 10), **args)
        again = purchases.record(session, program, m.id, now=at(2026, 1, 11), **args)
        reused = error_of(
            lambda: purchases.record(
                session, program, m.id, now=at(2026, 1, 11), **{**args, "fingerprint": "other"}
            )
        )
        return (
            first.purchase.id,
            again.purchase.id,
            again.replayed,
            again.balance,
            reused,
            ledger.totals(session, m.id),
        )

    first, again, replayed, balance, reused, totals = await loyalty_db.run(work)
    assert again == first
    assert replayed is True
    assert balance == 100
    assert isinstance(reused, Conflict)
    assert reused.reason == "transaction_id_reused"
    assert totals == (100, 100)


async def test_a_retried_purchase_at_the_same_moment_is_recorded_once(loyalty_db: Database) -> None:
    """Two requests with one transaction id at once (a till's retry overtaking the first):
    one records, the other replays it (PostgreSQL retries the unique-key race)."""

    def setup(session) -> tuple[int, int]:
        program = club(session)
        return program.id, member(session, program).id

    program_id, member_id = await loyalty_db.run(setup)
    lines = [Line(qty=1, amount_minor=10000)]

    def record(session) -> bool:
        program = session.get(Program, program_id)
        return purchases.record(
            session,
            program,
            member_id,
            transaction_id="T-race",
            lines=lines,
            occurred_at=at(2026, 1, 10),
            fingerprint="same",
            now=at(2026, 1, 10),
        ).replayed

    replayed = await asyncio.gather(loyalty_db.run(record), loyalty_db.run(record))
    assert sorted(replayed) == [False, True]
    assert await loyalty_db.run(lambda s: ledger.totals(s, member_id)) == (100, 100)


async def test_a_purchase_needs_lines_that_are_not_negative(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        refused = [
            error_of(lambda lines=lines: buy(session, program, m.id, lines, at(2026, 1, 10)))
            for lines in ([], [Line(qty=1, amount_minor=-500)], [Line(qty=-1, amount_minor=500)])
        ]
        return refused, ledger.totals(session, m.id)

    refused, totals = await loyalty_db.run(work)
    assert [(type(e), e.field) for e in refused] == [
        (InvalidInput, "lines"),
        (InvalidInput, "lines[0].amount_minor"),
        (InvalidInput, "lines[0].qty"),
    ]
    assert totals == (0, 0)


async def test_a_multiplier_applies_between_its_dates_in_the_clubs_time_zone(
    loyalty_db: Database,
) -> None:
    """Double points 1-7 March in Oslo: 23:30 UTC on 28 February is already 1 March there, and
    23:30 UTC on 7 March is already the 8th. The larger of two overlapping multipliers wins."""

    def work(session) -> list[int]:
        program = club(session)
        session.add_all(
            [
                PointMultiplier(
                    program_id=program.id,
                    name="double week",
                    starts_on=dt.date(2026, 3, 1),
                    ends_on=dt.date(2026, 3, 7),
                    multiplier=2,
                ),
                PointMultiplier(
                    program_id=program.id,
                    name="triple day",
                    starts_on=dt.date(2026, 3, 5),
                    ends_on=dt.date(2026, 3, 5),
                    multiplier=3,
                ),
            ]
        )
        m = member(session, program)
        instants = [
            at(2026, 2, 28, 22, 30),  # 23:30 on the 28th in Oslo
            at(2026, 2, 28, 23, 30),  # 00:30 on 1 March in Oslo
            at(2026, 3, 5, 12),
            at(2026, 3, 7, 22, 30),
            at(2026, 3, 7, 23, 30),  # 00:30 on the 8th
        ]
        return [buy(session, program, m.id, 1000, t).purchase.points for t in instants]

    assert await loyalty_db.run(work) == [10, 20, 30, 20, 10]


async def test_bonus_rules_add_points_on_a_category_or_brand_in_any_case(
    loyalty_db: Database,
) -> None:
    def work(session) -> list[int]:
        program = club(session)
        session.add_all(
            [
                BonusRule(program_id=program.id, field="category", value="Løpesko", extra_points=2),
                BonusRule(program_id=program.id, field="brand", value="ASICS", extra_points=1),
            ]
        )
        m = member(session, program)
        lines = [
            Line(qty=1, amount_minor=1000, category="LØPESKO"),
            Line(qty=1, amount_minor=1000, brand="asics"),
            Line(qty=1, amount_minor=1000, category="løpesko", brand="Asics"),
            Line(qty=1, amount_minor=1000, category="løpesko", discounted=True),
        ]
        recorded = buy(session, program, m.id, lines, at(2026, 1, 10))
        return line_points(session, recorded.purchase.id)

    assert await loyalty_db.run(work) == [30, 20, 40, 0]


async def test_below_the_clubs_minimum_nothing_is_earned_or_written(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session, min_purchase_minor=20000)
        m = member(session, program)
        small = buy(session, program, m.id, 19999, at(2026, 1, 10))
        large = buy(session, program, m.id, 20000, at(2026, 1, 10))
        return small.purchase.points, large.purchase.points, ledger.totals(session, m.id)

    assert await loyalty_db.run(work) == (0, 200, (200, 200))


async def test_a_whole_refund_takes_back_exactly_what_the_purchase_earned(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        buy(session, program, m.id, 5000, at(2026, 1, 5))
        recorded = buy(
            session,
            program,
            m.id,
            [Line(qty=1, amount_minor=12345), Line(qty=3, amount_minor=2999)],
            at(2026, 1, 10),
            transaction_id="T-2",
        )
        refunded = give_back(session, program, "T-2", at(2026, 1, 12))
        twice = error_of(lambda: give_back(session, program, "T-2", at(2026, 1, 13)))
        return (
            recorded.purchase.points,
            refunded.refund.points,
            refunded.refund.points_taken,
            refunded.refund.amount_minor,
            refunded.balance,
            twice,
            ledger.totals(session, m.id),
        )

    earned, points, taken, amount, balance, twice, totals = await loyalty_db.run(work)
    assert earned == 153
    assert (points, taken, amount) == (153, 153, 15344)
    assert balance == 50
    assert isinstance(twice, Conflict)
    assert twice.reason == "already_refunded"
    assert totals == (50, 50)


async def test_partial_refunds_by_quantity_add_up_to_the_line(loyalty_db: Database) -> None:
    """Three units for 10 kr earn 10 points; refunding them one at a time takes back 3, 3 and
    the rest, 4, and the amounts add up to the line's 1000."""

    def work(session) -> list[tuple[int, int]]:
        program = club(session)
        m = member(session, program)
        buy(
            session,
            program,
            m.id,
            [Line(qty=3, amount_minor=1000)],
            at(2026, 1, 10),
            transaction_id="T",
        )
        steps = []
        for day in (11, 12, 13):
            refunded = give_back(session, program, "T", at(2026, 1, day), [RefundLineIn(1, qty=1)])
            steps.append((refunded.refund.amount_minor, refunded.refund.points))
        return steps

    steps = await loyalty_db.run(work)
    assert steps == [(333, 3), (333, 3), (334, 4)]


async def test_partial_refunds_by_amount_add_up_to_the_line(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        buy(
            session,
            program,
            m.id,
            [Line(qty=1, amount_minor=999), Line(qty=1, amount_minor=5000)],
            at(2026, 1, 10),
            transaction_id="T",
        )
        taken = [
            give_back(
                session, program, "T", at(2026, 1, 11), [RefundLineIn(1, amount_minor=a)]
            ).refund.points
            for a in (400, 400, 199)
        ]
        too_much = error_of(
            lambda: give_back(
                session, program, "T", at(2026, 1, 12), [RefundLineIn(2, amount_minor=5001)]
            )
        )
        rest = give_back(session, program, "T", at(2026, 1, 12))
        return (
            taken,
            too_much,
            rest.refund.points,
            ledger.balance(session, m.id, at(2026, 1, 12)),
        )

    taken, too_much, rest, balance = await loyalty_db.run(work)
    assert sum(taken) == 9  # line 1 earned 9 (9.99 kr rounded down)
    assert isinstance(too_much, InvalidInput)
    assert too_much.field == "lines[0].amount_minor"
    assert rest == 50
    assert balance == 0


async def test_a_refund_by_amount_then_by_quantity_never_returns_more_than_the_line(
    loyalty_db: Database,
) -> None:
    """Two units for 20 kr: 15 kr refunded by amount, then one unit by quantity returns only
    the 5 kr left (not half the line, 10 kr), and the points add up to the line's 20."""

    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        buy(
            session,
            program,
            m.id,
            [Line(qty=2, amount_minor=2000)],
            at(2026, 1, 10),
            transaction_id="T",
        )
        first = give_back(
            session, program, "T", at(2026, 1, 11), [RefundLineIn(1, amount_minor=1500)]
        )
        second = give_back(session, program, "T", at(2026, 1, 11), [RefundLineIn(1, qty=1)])
        return [(r.refund.amount_minor, r.refund.points) for r in (first, second)], ledger.balance(
            session, m.id, at(2026, 1, 12)
        )

    steps, balance = await loyalty_db.run(work)
    assert steps == [(1500, 15), (500, 5)]
    assert balance == 0


async def test_refund_lines_are_checked(loyalty_db: Database) -> None:
    def work(session) -> list[str]:
        program = club(session)
        m = member(session, program)
        buy(
            session,
            program,
            m.id,
            [Line(qty=2, amount_minor=2000)],
            at(2026, 1, 10),
            transaction_id="T",
        )
        refused = [
            error_of(lambda lines=lines: give_back(session, program, "T", at(2026, 1, 11), lines))
            for lines in (
                [RefundLineIn(2)],
                [RefundLineIn(1, qty=1), RefundLineIn(1, qty=1)],
                [RefundLineIn(1, qty=3)],
                [RefundLineIn(1, qty=-1)],
                [RefundLineIn(1, amount_minor=-100)],
                [RefundLineIn(1, qty=3, amount_minor=100)],
            )
        ]
        unknown = error_of(lambda: give_back(session, program, "NO-SUCH", at(2026, 1, 11)))
        return refused, unknown, ledger.balance(session, m.id, at(2026, 1, 11))

    refused, unknown, balance = await loyalty_db.run(work)
    assert [(type(e), e.field) for e in refused] == [
        (InvalidInput, "lines[0].line"),
        (InvalidInput, "lines[1].line"),
        (InvalidInput, "lines[0].qty"),
        (InvalidInput, "lines[0]"),
        (InvalidInput, "lines[0]"),
        (InvalidInput, "lines[0].qty"),
    ]
    assert isinstance(unknown, NotFound)
    assert balance == 20  # nothing was taken back


async def test_a_refund_id_is_recorded_once(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        buy(
            session,
            program,
            m.id,
            [Line(qty=2, amount_minor=2000)],
            at(2026, 1, 10),
            transaction_id="T",
        )
        lines = [RefundLineIn(1, qty=1)]
        first = give_back(session, program, "T", at(2026, 1, 11), lines, refund_id="R-1")
        again = give_back(session, program, "T", at(2026, 1, 12), lines, refund_id="R-1")
        reused = error_of(
            lambda: give_back(
                session, program, "T", at(2026, 1, 12), [RefundLineIn(1)], refund_id="R-1"
            )
        )
        return first.refund.id, again.refund.id, again.replayed, again.balance, reused

    first, again, replayed, balance, reused = await loyalty_db.run(work)
    assert again == first
    assert replayed is True
    assert balance == 10
    assert isinstance(reused, Conflict)
    assert reused.reason == "refund_id_reused"


async def test_a_refund_of_spent_points_stops_at_zero(loyalty_db: Database) -> None:
    """100 points earned and 80 spent: the refund takes back the 20 left, says so, and the
    balance is 0, never below."""

    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        buy(session, program, m.id, 10000, at(2026, 1, 10), transaction_id="T")
        ledger.debit(session, program.id, m.id, 80, ledger.SPEND, at(2026, 1, 11))
        refunded = give_back(session, program, "T", at(2026, 1, 12))
        refund_lines = session.scalars(
            select(RefundLine.points).where(RefundLine.refund_id == refunded.refund.id)
        ).all()
        return (
            refunded.refund.points,
            refunded.refund.points_taken,
            list(refund_lines),
            refunded.balance,
            ledger.totals(session, m.id),
        )

    points, taken, refund_lines, balance, totals = await loyalty_db.run(work)
    assert (points, taken, refund_lines) == (100, 20, [100])
    assert balance == 0
    assert totals == (0, 0)


async def test_a_refund_after_the_points_expired_takes_nothing(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session, points_lifetime_months=12)
        m = member(session, program)
        buy(session, program, m.id, 10000, at(2026, 1, 10), transaction_id="T")
        refunded = give_back(session, program, "T", at(2027, 3, 1))
        return refunded.refund.points, refunded.refund.points_taken, ledger.totals(session, m.id)

    assert await loyalty_db.run(work) == (100, 0, (0, 0))


async def test_every_nth_purchase_in_the_category_issues_the_punch_coupon(
    loyalty_db: Database,
) -> None:
    """Every 3rd purchase with a line of "Øl" (any case, also beyond ASCII) is free; several
    such lines in one purchase are one punch; other purchases do not punch."""

    def work(session) -> tuple:
        program = club(session)
        free = template(session, program, coupons.PUNCH, key="free-beer")
        card = PunchCard(program_id=program.id, category="Øl", every=3, template_id=free.id)
        session.add(card)
        m = member(session, program)
        purchase_lines = [
            [
                Line(qty=1, amount_minor=3000, category="ØL"),
                Line(qty=1, amount_minor=3000, category="øl"),
            ],
            [Line(qty=1, amount_minor=3000, category="Brød")],
            [Line(qty=1, amount_minor=3000, category="øl")],
            [Line(qty=1, amount_minor=3000, category="Øl")],
            [Line(qty=1, amount_minor=3000, category="øL")],
        ]
        seen = []
        for i, lines in enumerate(purchase_lines):
            recorded = buy(session, program, m.id, lines, at(2026, 1, 10 + i))
            cards = purchases.active_cards(session, program.id)
            (on_card,) = purchases.punches(session, cards, m.id)
            seen.append(
                ([h.template.key for h in recorded.coupons], on_card.count, recorded.purchase.id)
            )
        issued = coupons_of(session, m.id)
        return seen, [(c.purchase_id, c.source) for c in issued], card.id, m.id

    seen, issued, card_id, member_id = await loyalty_db.run(work)
    assert [(keys, punches) for keys, punches, _ in seen] == [
        ([], 1),
        ([], 1),
        ([], 2),
        (["free-beer"], 0),
        ([], 1),
    ]
    assert issued == [(seen[3][2], f"punch:{card_id}:{member_id}:3")]


async def test_a_card_made_longer_still_issues_when_it_fills_again(loyalty_db: Database) -> None:
    """Every 2nd punch, then every 3rd: the 6th punch fills a card of three and issues a coupon
    of its own (the 2nd, 4th and 6th punches filled cards of two; nothing is handed out twice,
    nothing is withheld)."""

    def work(session) -> list[str]:
        program = club(session)
        free = template(session, program, coupons.PUNCH, key="free-coffee")
        card = PunchCard(program_id=program.id, category="kaffe", every=2, template_id=free.id)
        session.add(card)
        m = member(session, program)
        for day in range(1, 5):  # punches 1-4: coupons at 2 and 4
            buy(session, program, m.id, [Line(qty=1, amount_minor=4000, category="kaffe")],
                at(2026, 2, day))  # fmt: skip
        card.every = 3
        session.flush()
        for day in range(5, 8):  # punches 5-7: a coupon at 6
            buy(session, program, m.id, [Line(qty=1, amount_minor=4000, category="kaffe")],
                at(2026, 2, day))  # fmt: skip
        return [c.source.rsplit(":", 1)[1] for c in coupons_of(session, m.id)]

    assert sorted(await loyalty_db.run(work), key=int) == ["2", "4", "6"]


async def test_a_replayed_purchase_shows_the_punch_coupon_it_issued(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        free = template(session, program, coupons.PUNCH)
        session.add(
            PunchCard(program_id=program.id, category="kaffe", every=1, template_id=free.id)
        )
        m = member(session, program)
        lines = [Line(qty=1, amount_minor=3500, category="Kaffe")]
        first = buy(session, program, m.id, lines, at(2026, 1, 10), transaction_id="T")
        again = buy(session, program, m.id, lines, at(2026, 1, 10), transaction_id="T")
        return (
            [h.coupon.code for h in first.coupons],
            [h.coupon.code for h in again.coupons],
            len(coupons_of(session, m.id)),
        )

    first, again, held = await loyalty_db.run(work)
    assert len(first) == 1
    assert again == first
    assert held == 1


async def test_an_inactive_punch_card_does_not_punch(loyalty_db: Database) -> None:
    def work(session) -> int:
        program = club(session)
        free = template(session, program, coupons.PUNCH)
        session.add(
            PunchCard(
                program_id=program.id, category="kaffe", every=1, template_id=free.id, active=False
            )
        )
        m = member(session, program)
        buy(
            session,
            program,
            m.id,
            [Line(qty=1, amount_minor=3500, category="kaffe")],
            at(2026, 1, 10),
        )
        return len(coupons_of(session, m.id))

    assert await loyalty_db.run(work) == 0
