"""Bonus cheques: a club's automatic reward, issued once the balance covers it, spent from the
ledger exactly as a CLAIM, announced once, and never twice for the same points."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

import locales
from locales import LANGUAGES
from locales.sms import is_gsm7, segments
from store.clubs import programs
from store.database import Database
from store.errors import InvalidSetting
from store.loyalty import cheques, coupons, ledger
from store.members import members
from store.models import Coupon, CouponTemplate, LedgerEntry, OutboxMessage, Program
from tests.locales.test_one_segment import worst
from tests.store.loyalty_helpers import T0, buy, club, coupons_of, error_of, give_back, member

KR = 100  # minor units: the demo club earns 1 point per krone


def cheque(session, program: Program, cost: int = 2500, key: str = "cheque", **extra):
    """A reward of 50 kr for `cost` points, made a bonus cheque."""
    made = coupons.create_template(
        session,
        program,
        key=key,
        kind=coupons.REWARD,
        benefit={"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"},
        discount_minor=extra.pop("discount_minor", 5000),
        points_cost=cost,
        valid_days=90,
    )
    return cheques.set_automatic(session, program.id, made.id, automatic=True)


def spends(session, member_id: int) -> list[tuple[int, str | None]]:
    return [
        (e.points, e.reason)
        for e in session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.member_id == member_id, LedgerEntry.kind == ledger.SPEND)
            .order_by(LedgerEntry.id)
        )
    ]


def announced(session, member_id: int) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.member_id == member_id)
            .order_by(OutboxMessage.id)
        )
    )


async def test_a_purchase_past_the_level_issues_one_cheque_and_spends_its_points(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        cheque(session, program)
        m = member(session, program)
        m.language = "nb"
        below = buy(session, program, m.id, 2000 * KR, T0)
        past = buy(session, program, m.id, 800 * KR, T0)
        return (
            m.id,
            below,
            past,
            spends(session, m.id),
            ledger.totals(session, m.id),
            [c.source for c in coupons_of(session, m.id)],
            [(o.kind, o.status, o.body, o.dedupe_key) for o in announced(session, m.id)],
        )

    member_id, below, past, spent, totals, sources, sms = await loyalty_db.run(work)
    assert (below.balance, below.coupons) == (2000, [])
    # 2,800 earned, 2,500 spent on the cheque: the till's answer lists it with the balance left.
    assert past.balance == 300
    [held] = past.coupons
    assert held.template.key == "cheque"
    assert held.coupon.purchase_id == past.purchase.id
    assert spent == [(-2500, "cheque:cheque")]
    assert totals == (300, 300)
    assert sources == [f"cheque:{member_id}:1"]
    [(kind, status, body, key)] = sms
    assert (kind, status, key) == ("system", "queued", f"cheque:{held.coupon.id}")
    code = coupons.display(held.coupon.code)
    assert body == (
        f"Torshov Sport: 2 500 poeng ble en bonussjekk: 50 kr rabatt. Kode {code}, "
        "gjelder t.o.m. 08.06.2026."
    )


async def test_a_balance_that_covers_two_gets_two_cheques(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        cheque(session, program)
        m = member(session, program)
        recorded = buy(session, program, m.id, 5100 * KR, T0)
        return m.id, recorded, spends(session, m.id), len(announced(session, m.id))

    member_id, recorded, spent, sms = await loyalty_db.run(work)
    assert recorded.balance == 100
    assert [h.coupon.source for h in recorded.coupons] == [
        f"cheque:{member_id}:1",
        f"cheque:{member_id}:2",
    ]
    assert spent == [(-2500, "cheque:cheque")] * 2
    assert sms == 2


async def test_with_several_levels_the_largest_the_balance_covers_comes_first(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        cheque(session, program, 1000, key="small", discount_minor=1000)
        cheque(session, program, 5000, key="large", discount_minor=7500)
        m = member(session, program)
        recorded = buy(session, program, m.id, 6500 * KR, T0)
        return [h.template.key for h in recorded.coupons], recorded.balance

    assert await loyalty_db.run(work) == (["large", "small"], 500)


async def test_a_reward_not_automatic_or_retired_is_left_to_claim(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        claimable = coupons.create_template(
            session,
            program,
            key="claim-me",
            kind=coupons.REWARD,
            benefit={"en": "a mug"},
            points_cost=100,
            valid_days=30,
        )
        retired = cheque(session, program, 200, key="retired")
        coupons.set_template_active(session, program.id, retired.id, active=False)
        m = member(session, program)
        recorded = buy(session, program, m.id, 3000 * KR, T0)
        assert cheques.is_cheque(claimable) is False
        return recorded.coupons, recorded.balance, cheques.levels(session, program.id)

    assert await loyalty_db.run(work) == ([], 3000, [])


async def test_only_a_reward_for_points_can_be_a_cheque(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        welcome = coupons.create_template(
            session,
            program,
            key="welcome",
            kind=coupons.WELCOME,
            benefit={"en": "hello"},
            valid_days=30,
        )
        refused = error_of(
            lambda: cheques.set_automatic(session, program.id, welcome.id, automatic=True)
        )
        other = club(session)
        elsewhere = error_of(
            lambda: cheques.set_automatic(session, other.id, welcome.id, automatic=True)
        )
        made = cheque(session, program)
        off = cheques.set_automatic(session, program.id, made.id, automatic=False)
        return refused, type(elsewhere).__name__, welcome.automatic, off.automatic

    refused, elsewhere, welcome_automatic, off = await loyalty_db.run(work)
    assert isinstance(refused, InvalidSetting)
    assert refused.field == "automatic"
    assert elsewhere == "NotFound"
    assert (welcome_automatic, off) == (False, False)


async def test_a_stopped_member_gets_the_cheque_without_an_sms_and_a_pending_one_nothing(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        cheque(session, program)
        stopped = member(session, program)
        stopped.status = members.STOPPED
        pending = member(session, program, status=members.PENDING)
        got = buy(session, program, stopped.id, 2600 * KR, T0)
        none = buy(session, program, pending.id, 2600 * KR, T0)
        return (
            len(got.coupons),
            announced(session, stopped.id),
            none.coupons,
            none.balance,
        )

    assert await loyalty_db.run(work) == (1, [], [], 2600)


async def test_a_refund_after_the_cheque_takes_back_what_is_left_and_issues_nothing(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        cheque(session, program)
        m = member(session, program)
        first = buy(session, program, m.id, 2600 * KR, T0)
        refunded = give_back(session, program, first.purchase.transaction_id, T0)
        later = buy(session, program, m.id, 2500 * KR, T0 + dt.timedelta(days=1))
        return m.id, refunded, later, [c.source for c in coupons_of(session, m.id)]

    member_id, refunded, later, sources = await loyalty_db.run(work)
    # 100 points were left after the cheque: the refund takes those, the balance stays at 0.
    assert (refunded.refund.points, refunded.refund.points_taken, refunded.balance) == (
        2600,
        100,
        0,
    )
    # The cheque stays (it was bought with points earned then); the next one is number 2.
    assert later.balance == 0
    assert sources == [f"cheque:{member_id}:1", f"cheque:{member_id}:2"]


async def test_candidates_are_the_members_whose_balance_covers_the_cheapest_cheque(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        rich, poor, expired = (member(session, program) for _ in range(3))
        # Points given by staff: no purchase checked them.
        ledger.credit(session, program, rich.id, 3000, ledger.ADJUST, T0)
        ledger.credit(session, program, poor.id, 2499, ledger.ADJUST, T0)
        ledger.credit(
            session, program, expired.id, 9000, ledger.ADJUST, T0 - dt.timedelta(days=900)
        )
        none_yet = cheques.candidates(session, program.id, T0)
        cheque(session, program)
        found = cheques.candidates(session, program.id, T0)
        first = cheques.candidates(session, program.id, T0, limit=1, after=0)
        return rich.id, none_yet, found, first

    rich, none_yet, found, first = await loyalty_db.run(work)
    assert none_yet == []
    assert found == [rich]
    assert first == [rich]


async def test_two_purchases_at_once_never_pay_one_cheque_twice(loyalty_db: Database) -> None:
    """2,000 points, then two sales of 600 at the same moment: 3,200 in all buys one cheque,
    whichever commits first (PostgreSQL locks the member; SQLite's writer serialises)."""

    def setup(session) -> tuple[int, int]:
        program = club(session)
        cheque(session, program)
        m = member(session, program)
        buy(session, program, m.id, 2000 * KR, T0)
        return program.id, m.id

    program_id, member_id = await loyalty_db.run(setup)

    def sale(session) -> int:
        program = session.get(Program, program_id)
        return len(buy(session, program, member_id, 600 * KR, T0).coupons)

    issued = await asyncio.gather(loyalty_db.run(sale), loyalty_db.run(sale))
    assert sorted(issued) == [0, 1]

    def read(session) -> tuple:
        return (
            ledger.balance(session, member_id, T0),
            len(coupons_of(session, member_id)),
            spends(session, member_id),
        )

    assert await loyalty_db.run(read) == (700, 1, [(-2500, "cheque:cheque")])


async def test_a_cheque_is_counted_among_the_members_coupons(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        made = cheque(session, program)
        m = member(session, program)
        buy(session, program, m.id, 2500 * KR, T0)
        valid = coupons.valid_for(session, m.id, T0)
        row = session.scalar(select(Coupon).where(Coupon.member_id == m.id))
        template = session.get(CouponTemplate, row.template_id)
        return [h.template.id for h in valid], made.id, template.automatic

    ids, made, automatic = await loyalty_db.run(work)
    assert ids == [made]
    assert automatic is True


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_announcement_is_one_sms_with_a_60_character_club_name(language: str) -> None:
    """The worst values of tests/locales/test_one_segment.py, the longest club name allowed
    and a 7-digit cost: still one GSM-7 SMS, the code in it."""
    values = {**worst(language), "club": "x" * programs.MAX_NAME, "points": 1_234_567}
    text = locales.render(cheques.ANNOUNCEMENT, language, **values)
    assert values["code"] in text
    assert is_gsm7(text), text
    assert segments(text).segments == 1, (len(text), text)
