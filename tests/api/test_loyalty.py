"""The club's loyalty rules through the API: welcome, referral, punch card, brand bonus."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.cli.demo import set_up_loyalty
from store.database import Database
from store.models import Member, Program, PunchCard
from tests.api.conftest import PHONE, Till, create_key
from tests.conftest import Phone


@pytest.fixture
async def loyal_till(client: TestClient, db: Database, club: int) -> Till:
    """A till of the demo club with its coupons, punch card (every 5th service) and bonus."""

    def work(session: Session) -> None:
        program = session.get(Program, club)
        assert program is not None
        set_up_loyalty(session, program)

    await db.run(work)
    return Till(client, await create_key(db, club))


async def kinds(till: Till, member_id: int) -> list[str]:
    answer = await till.get(f"/members/{member_id}/coupons")
    return sorted(coupon["kind"] for coupon in answer.body["coupons"])


async def test_enrolment_gives_the_welcome_coupon(loyal_till: Till) -> None:
    member = (await loyal_till.enrol()).body
    assert await kinds(loyal_till, member["id"]) == ["welcome"]


async def test_a_friends_code_at_enrolment_rewards_both(
    loyal_till: Till, db: Database, client: TestClient
) -> None:
    """Once the new member is through the age check: the demo club asks the birthday by SMS
    after the till's enrolment, and an answer under its minimum age erases them instead."""
    friend = (await loyal_till.enrol("+4791111111")).body
    member = (await loyal_till.enrol(referral_code=friend["referral_code"].lower())).body
    assert await kinds(loyal_till, member["id"]) == ["welcome"]
    assert await kinds(loyal_till, friend["id"]) == ["welcome"]
    phone = Phone(client, PHONE)
    await phone.text("Kari")
    await phone.text("12.03.1990")
    assert await kinds(loyal_till, member["id"]) == ["referral", "welcome"]
    assert await kinds(loyal_till, friend["id"]) == ["referral", "welcome"]
    referred_by = await db.run(lambda s: s.get(Member, member["id"]).referred_by_id)
    assert referred_by == friend["id"]


async def test_without_a_birthday_question_the_referral_is_rewarded_at_the_till(
    client: TestClient, db: Database, quiet_club: int
) -> None:
    """Nothing can turn the new member away later: both are rewarded at once."""

    def work(session: Session) -> None:
        set_up_loyalty(session, session.get(Program, quiet_club))

    await db.run(work)
    till = Till(client, await create_key(db, quiet_club))
    friend = (await till.enrol("+4791111111")).body
    member = (await till.enrol(referral_code=friend["referral_code"])).body
    assert await kinds(till, member["id"]) == ["referral", "welcome"]
    assert await kinds(till, friend["id"]) == ["referral", "welcome"]


async def test_an_unknown_referral_code_is_ignored(loyal_till: Till) -> None:
    answer = await loyal_till.enrol(referral_code="NOSUCH")
    assert answer.status == 201
    assert await kinds(loyal_till, answer.body["id"]) == ["welcome"]


async def test_every_fifth_service_returns_the_free_item_coupon(loyal_till: Till) -> None:
    """The purchase that fills the punch card answers with the coupon, its code as printed."""
    member = (await loyal_till.enrol()).body
    line = {"category": "Service", "qty": 1, "amount_minor": 39900}
    answers = [
        await loyal_till.post(
            "/purchases", {"transaction_id": f"S-{i}", "member_id": member["id"], "lines": [line]}
        )
        for i in range(5)
    ]
    assert [len(a.body["coupons"]) for a in answers] == [0, 0, 0, 0, 1]
    [free] = answers[-1].body["coupons"]
    assert free["kind"] == "punch"
    assert free["benefit"] == "gratis skismøring"
    assert free["code"][4] == "-"
    again = await loyal_till.post(
        "/purchases", {"transaction_id": "S-4", "member_id": member["id"], "lines": [line]}
    )
    assert again.status == 200
    assert again.body["coupons"] == answers[-1].body["coupons"]


async def test_the_clubs_own_brand_earns_bonus_points(loyal_till: Till) -> None:
    member: dict[str, Any] = (await loyal_till.enrol()).body
    lines = [
        {"brand": "Torshov", "qty": 1, "amount_minor": 10000},
        {"brand": "Other", "qty": 1, "amount_minor": 10000},
    ]
    answer = await loyal_till.post(
        "/purchases", {"transaction_id": "B-1", "member_id": member["id"], "lines": lines}
    )
    assert answer.body["points"] == 200 + 100


async def test_a_sale_that_fills_a_punch_card_also_rewards_the_referral(
    loyal_till: Till, db: Database, club: int
) -> None:
    """With referrals rewarded at the first purchase, that purchase filling a punch card gives
    both: the free item and the referral reward (to the buyer and to their friend)."""

    def every_service_and_referral_on_purchase(session: Session) -> None:
        program = session.get(Program, club)
        assert program is not None
        program.referral_trigger = "purchase"
        session.execute(update(PunchCard).where(PunchCard.program_id == club).values(every=1))

    await db.run(every_service_and_referral_on_purchase)
    friend = (await loyal_till.enrol("+4791111111")).body
    member = (await loyal_till.enrol(referral_code=friend["referral_code"])).body
    assert await kinds(loyal_till, friend["id"]) == ["welcome"]
    line = {"category": "Service", "qty": 1, "amount_minor": 39900}
    sale = await loyal_till.post(
        "/purchases", {"transaction_id": "S-1", "member_id": member["id"], "lines": [line]}
    )
    assert sale.status == 201, sale.body
    assert sorted(coupon["kind"] for coupon in sale.body["coupons"]) == ["punch", "referral"]
    assert await kinds(loyal_till, member["id"]) == ["punch", "referral", "welcome"]
    assert await kinds(loyal_till, friend["id"]) == ["referral", "welcome"]
