"""Tiers: a ladder reached by points earned within the qualification period, only ever promoted
by earning, and reviewed when the period a tier was held for has run."""

from __future__ import annotations

import datetime as dt

import pytest

from store.database import Database
from store.errors import InvalidSetting
from store.loyalty import ledger, perks, tiers
from store.loyalty.earning import Line
from store.loyalty.purchases import RefundLineIn
from store.models import Member, Program
from tests.store.loyalty_helpers import at, buy, club, error_of, give_back, member


def ladder_club(session, **rules) -> Program:
    program = club(session, **rules)
    tiers.set_ladder(session, program, tiers.DEFAULT_LADDER)
    return program


def held(session, member_id: int) -> tuple[str | None, dt.date | None]:
    """The member's tier (English name, None for the bottom) and until when it is held."""
    row = session.get(Member, member_id, populate_existing=True)
    steps = {t.id: t for t in tiers.ladder(session, row.program_id)}
    tier = steps.get(row.tier_id)
    return (tiers.name(tier, "en") if tier else None), row.tier_until


def kroner(amount: int) -> list[Line]:
    """A purchase earning `amount` points at the default 1 point per krone."""
    return [Line(qty=1, amount_minor=amount * 100)]


async def test_the_ladder_is_checked(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = ladder_club(session)
        refused = [
            error_of(lambda steps=steps: tiers.set_ladder(session, program, steps))
            for steps in (
                [],
                [({"en": "A"}, 100, 0)],
                [({"en": "A"}, 0, 0), ({"en": "B"}, 0, 5)],
                [({"en": "A"}, 0, 0), ({"en": "B"}, 500, 5), ({"en": "C"}, 400, 10)],
                [({"en": "A"}, 0, 0), ({"en": "B"}, 500, 101)],
            )
        ]
        return refused, [t.threshold for t in tiers.ladder(session, program.id)]

    refused, kept = await loyalty_db.run(work)
    assert all(isinstance(e, InvalidSetting) for e in refused)
    reasons = [e.reason for e in refused]
    assert kept == [0, 2000, 5000]  # the ladder in place is untouched
    assert reasons[:2] == ["the first tier starts at 0 points"] * 2
    assert reasons[2:4] == ["each tier needs more points than the one below"] * 2
    assert reasons[4] == "a discount is between 0 and 100 %"


async def test_a_new_ladder_replaces_the_old_and_every_member_starts_again(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = ladder_club(session)
        m = member(session, program)
        buy(session, program, m.id, kroner(2500), at(2026, 3, 10))
        before = held(session, m.id)
        steps = tiers.set_ladder(
            session,
            program,
            [({"en": "Member"}, 0, 0), ({"en": "VIP", "nb": "VIP-kunde"}, 10000, 20)],
            benefits=[None, {"en": "free coffee"}],
        )
        return (
            before,
            held(session, m.id),
            [(tiers.name(t, "nb"), t.threshold, t.discount_percent, t.benefit) for t in steps],
            [t.id for t in tiers.ladder(session, program.id)] == [t.id for t in steps],
        )

    before, after, steps, same = await loyalty_db.run(work)
    assert before == ("Silver", dt.date(2027, 3, 10))
    assert after == (None, None)
    assert steps == [("Member", 0, 0, None), ("VIP-kunde", 10000, 20, {"en": "free coffee"})]
    assert same


async def test_earning_promotes_up_the_ladder(loyalty_db: Database) -> None:
    """Bronze 0 / Silver 2000 / Gold 5000: 1999 points is Bronze, 2000 Silver, 5000 Gold; the
    tier is held for the period from the day it was reached in the club's time zone."""

    def work(session) -> list[tuple]:
        program = ladder_club(session)
        m = member(session, program)
        seen = []
        # 23:30 UTC on 28 February 2026 is 1 March in Oslo.
        for points, now in (
            (1999, at(2026, 2, 1)),
            (1, at(2026, 2, 28, 23, 30)),
            (3000, at(2026, 4, 2)),
        ):
            buy(session, program, m.id, kroner(points), now)
            standing = tiers.standing(session, program, m.id, perks.tier_id_of(session, m.id), now)
            seen.append(
                (
                    held(session, m.id),
                    tiers.name(standing.tier, "en"),
                    standing.next and tiers.name(standing.next, "en"),
                    standing.to_next,
                    standing.qualifying,
                )
            )
        return seen

    assert await loyalty_db.run(work) == [
        ((None, None), "Bronze", "Silver", 1, 1999),
        (("Silver", dt.date(2027, 3, 1)), "Silver", "Gold", 3000, 2000),
        (("Gold", dt.date(2027, 4, 2)), "Gold", None, 0, 5000),
    ]


async def test_promotion_never_moves_down(loyalty_db: Database) -> None:
    """A Gold member whose qualifying points have left the period stays Gold after earning a
    little (the review, not earning, moves members down), and a refund does not demote."""

    def work(session) -> tuple:
        program = ladder_club(session)
        m = member(session, program)
        buy(session, program, m.id, kroner(5000), at(2025, 3, 10), transaction_id="BIG")
        gold = held(session, m.id)
        later = at(2026, 6, 1)
        buy(session, program, m.id, kroner(100), later)
        promoted = tiers.promote(session, program, m.id, perks.tier_id_of(session, m.id), later)
        give_back(session, program, "BIG", later)
        standing = tiers.standing(session, program, m.id, perks.tier_id_of(session, m.id), later)
        return gold, promoted, held(session, m.id), tiers.name(standing.tier, "en")

    gold, promoted, after, standing = await loyalty_db.run(work)
    assert gold == ("Gold", dt.date(2026, 3, 10))
    assert promoted is None
    assert after == gold
    assert standing == "Gold"


async def test_only_points_earned_within_the_period_qualify(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = ladder_club(session, tier_period_months=12)
        m = member(session, program)
        ledger.credit(session, program, m.id, 1500, ledger.EARN, at(2025, 3, 9, 22))
        ledger.credit(session, program, m.id, 1500, ledger.EARN, at(2025, 3, 10, 8))
        now = at(2026, 3, 10, 12)
        return (
            tiers.qualification_start(program, now),
            tiers.standing(session, program, m.id, None, now).qualifying,
        )

    start, qualifying = await loyalty_db.run(work)
    assert start == at(2025, 3, 9, 23)  # midnight in Oslo, a year back
    assert qualifying == 1500


async def test_bonus_and_staff_points_do_not_qualify(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = ladder_club(session)
        m = member(session, program)
        ledger.credit(session, program, m.id, 5000, ledger.BONUS, at(2026, 3, 1), reason="r")
        ledger.credit(session, program, m.id, 5000, ledger.ADJUST, at(2026, 3, 1), reason="r")
        buy(session, program, m.id, kroner(10), at(2026, 3, 2))
        return held(session, m.id), ledger.balance(session, m.id, at(2026, 3, 2))

    assert await loyalty_db.run(work) == ((None, None), 10010)


async def test_refunded_points_do_not_qualify_even_when_they_were_spent(
    loyalty_db: Database,
) -> None:
    """2000 points earned and spent, then the purchase returned: the ledger can take nothing
    back, but the returned purchase earned nothing towards a tier (earn minus refunds)."""

    def work(session) -> tuple:
        program = ladder_club(session)
        m = member(session, program)
        buy(session, program, m.id, kroner(2000), at(2026, 3, 10), transaction_id="T")
        buy(session, program, m.id, kroner(300), at(2026, 3, 11))
        ledger.debit(session, program.id, m.id, 2300, ledger.SPEND, at(2026, 3, 12))
        refunded = give_back(session, program, "T", at(2026, 3, 13))
        now = at(2026, 3, 14)
        standing = tiers.standing(session, program, m.id, None, now)
        return refunded.refund.points_taken, standing.qualifying, tiers.name(standing.tier, "en")

    assert await loyalty_db.run(work) == (0, 300, "Bronze")


async def test_the_review_keeps_or_drops_each_tier_by_what_qualifies_now(db: Database) -> None:
    """On the day a tier's period has run: a member who earned enough again keeps it for
    another period; one who earned less drops to what they earned; one not yet due is left."""

    def setup(session) -> tuple[int, dict[str, int]]:
        program = ladder_club(session)
        who = {name: member(session, program).id for name in ("keeps", "drops", "bronze", "later")}
        buy(session, program, who["keeps"], kroner(5000), at(2026, 3, 10))
        buy(session, program, who["keeps"], kroner(5000), at(2026, 9, 1))
        buy(session, program, who["drops"], kroner(2500), at(2026, 3, 5))
        buy(session, program, who["drops"], kroner(2500), at(2026, 3, 10))
        buy(session, program, who["bronze"], [Line(2, 200000)], at(2026, 3, 10), transaction_id="B")
        give_back(session, program, "B", at(2026, 4, 1), [RefundLineIn(1, qty=1)])
        buy(session, program, who["later"], kroner(2000), at(2026, 3, 11))
        return program.id, who

    _, who = await db.run(setup)
    before = await db.run(lambda s: {name: held(s, m) for name, m in who.items()})
    review = at(2027, 3, 10, 3)
    checked = await db.run(lambda s: tiers.review_due(s, review))
    again = await db.run(lambda s: tiers.review_due(s, review))
    after = await db.run(lambda s: {name: held(s, m) for name, m in who.items()})
    assert before == {
        "keeps": ("Gold", dt.date(2027, 3, 10)),
        "drops": ("Gold", dt.date(2027, 3, 10)),
        "bronze": ("Silver", dt.date(2027, 3, 10)),
        "later": ("Silver", dt.date(2027, 3, 11)),
    }
    assert (checked, again) == (3, 0)
    assert after == {
        "keeps": ("Gold", dt.date(2028, 3, 10)),
        "drops": ("Silver", dt.date(2028, 3, 10)),
        "bronze": (None, None),
        "later": ("Silver", dt.date(2027, 3, 11)),
    }


@pytest.mark.parametrize(
    ("zone", "promoted", "not_yet", "due"),
    [
        # New York is behind UTC: 02:00 UTC on 10 March is still the 9th there.
        ("America/New_York", at(2026, 3, 10, 17), at(2027, 3, 10, 2), at(2027, 3, 10, 6)),
        # Auckland is ahead: 12:00 UTC on 9 March is already the 10th there.
        ("Pacific/Auckland", at(2026, 3, 10, 0), at(2027, 3, 9, 10), at(2027, 3, 9, 12)),
    ],
)
async def test_the_review_is_due_on_the_clubs_own_date(
    db: Database, zone: str, promoted: dt.datetime, not_yet: dt.datetime, due: dt.datetime
) -> None:
    def setup(session) -> int:
        program = ladder_club(session, timezone=zone)
        m = member(session, program)
        buy(session, program, m.id, kroner(2000), promoted, transaction_id="T")
        give_back(session, program, "T", promoted + dt.timedelta(days=1))
        return m.id

    member_id = await db.run(setup)
    held_before = await db.run(lambda s: held(s, member_id))
    early = await db.run(lambda s: tiers.review_due(s, not_yet))
    held_early = await db.run(lambda s: held(s, member_id))
    on_time = await db.run(lambda s: tiers.review_due(s, due))
    assert held_before == ("Silver", dt.date(2027, 3, 10))
    assert (early, held_early) == (0, held_before)
    assert on_time == 1
    assert await db.run(lambda s: held(s, member_id)) == (None, None)
