"""Bonus cheques through the API: a sale that takes the balance past the club's cheque gets it
in the till's answer, the points are spent, and the member is told by SMS once; a refund after
it takes back what is left and issues nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scheduler import sender
from store.database import Database
from store.loyalty import cheques, coupons
from store.models import Coupon, Program
from tests.api.conftest import Till
from tests.scheduler.campaign_helpers import RecordingGateway


async def make_cheque(db: Database, club: int) -> None:
    """Every 2,500 points give 50 kr off."""

    def work(session: Session) -> None:
        template = coupons.create_template(
            session,
            session.get(Program, club),
            key="bonus",
            kind=coupons.REWARD,
            benefit={"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"},
            discount_minor=5000,
            points_cost=2500,
            valid_days=60,
        )
        cheques.set_automatic(session, club, template.id, automatic=True)

    await db.run(work)


async def cheques_of(db: Database, member_id: int) -> int:
    return await db.run(
        lambda s: s.scalar(
            select(func.count()).select_from(Coupon).where(Coupon.member_id == member_id)
        )
    )


async def test_a_sale_past_the_cheque_issues_it_and_the_member_is_told(
    till: Till, db: Database, club: int, member: dict[str, Any]
) -> None:
    await make_cheque(db, club)
    first = await till.buy(member["id"], "T-1", 200_000)
    assert (first.status, first.body["balance"], first.body["coupons"]) == (201, 2000, [])
    second = await till.buy(member["id"], "T-2", 80_000)
    assert second.status == 201, second.body
    assert second.body["points"] == 800
    assert second.body["balance"] == 300
    [cheque] = second.body["coupons"]
    assert (cheque["kind"], cheque["benefit"], cheque["state"]) == (
        "reward",
        "50 kr rabatt",
        "valid",
    )
    # A till retrying the sale gets the same answer, and no second cheque.
    again = await till.buy(member["id"], "T-2", 80_000)
    assert (again.status, again.body["coupons"], again.body["balance"]) == (
        200,
        second.body["coupons"],
        300,
    )
    assert await cheques_of(db, member["id"]) == 1
    gateway = RecordingGateway()
    noon = dt.datetime.now(dt.UTC).replace(hour=11, minute=0) + dt.timedelta(days=1)
    await sender.drain(db, gateway, lambda: noon)
    [text] = [t for t in gateway.to(member["phone"]) if "bonussjekk" in t]
    assert text.startswith("Torshov Sport: 2 500 poeng ble en bonussjekk: 50 kr rabatt. ")
    assert f"Kode {cheque['code']}, gjelder t.o.m. " in text


async def test_a_balance_covering_two_gets_two(
    till: Till, db: Database, club: int, member: dict[str, Any]
) -> None:
    await make_cheque(db, club)
    answer = await till.buy(member["id"], "T-1", 520_000)
    assert answer.body["balance"] == 200
    assert len(answer.body["coupons"]) == 2


async def test_a_refund_after_the_cheque_does_not_issue_it_again(
    till: Till, db: Database, club: int, member: dict[str, Any]
) -> None:
    await make_cheque(db, club)
    await till.buy(member["id"], "T-1", 260_000)
    refund = await till.post("/purchases/T-1/refunds", {"refund_id": "R-1"})
    assert refund.status == 201, refund.body
    assert refund.body["balance"] == 0
    assert await cheques_of(db, member["id"]) == 1
    # The next 2,500 points buy the next cheque, not the first again.
    later = await till.buy(member["id"], "T-2", 250_000)
    assert (later.body["balance"], len(later.body["coupons"])) == (0, 1)
    assert await cheques_of(db, member["id"]) == 2
