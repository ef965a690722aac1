"""The demo club's coupons the till can compute (bot.cli.demo, what `make run` seeds): the
README's evaluate call on the demo applies the welcome coupon, and each demo coupon with an
offer takes money off a basket it fits, while a free item stays text for the cashier."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from bot.cli.demo import DEMO_COUPONS, set_up_loyalty
from store.database import Database
from store.loyalty import coupons, offers
from store.models import Program
from tests.api.conftest import PHONE, Till
from tests.conftest import now

# The README's example basket (The till: the REST API): the shoes of its sale.
SHOES = {"sku": "A1", "category": "shoes", "qty": 1, "amount_minor": 129900}
RUNNING = {"sku": "GEL", "category": "running", "qty": 3, "amount_minor": 15000}
# A basket each demo offer fits (birthday: shoes; three-for-two: three running items).
FITS = [SHOES, RUNNING]


@pytest.fixture
async def demo(db: Database, club: int) -> int:
    """The demo club with its coupons, punch card and journeys (klubb init --demo)."""

    def work(session: Session) -> int:
        set_up_loyalty(session, session.get(Program, club))
        return club

    return await db.run(work)


async def give(db: Database, club: int, member_id: int, key: str) -> str:
    """A coupon of the demo template `key` for the member; its code as printed."""

    def work(session: Session) -> str:
        template = next(t for t in coupons.templates(session, club) if t.key == key)
        issued = coupons.issue(session, club, member_id, template, f"test:{key}", now())
        return coupons.display(issued.code)

    return await db.run(work)


def test_every_demo_offer_is_one_the_till_parses() -> None:
    """Each demo template's offer as offers.parse reads it; the free items carry none."""
    with_offer = {t["key"] for t in DEMO_COUPONS if offers.parse(t.get("offer")) is not None}
    assert with_offer == {"welcome", "birthday", "reward-100", "referral", "three-for-two"}


async def test_the_readme_example_applies_the_welcome_coupon(demo: int, till: Till) -> None:
    """Enrolled at the till, the member holds the welcome coupon (10 % off the basket); the
    README's evaluate call prices the shoes: Bronse's 5 %, then 10 % of what is left."""
    enrolled = await till.enrol("912 34 567")
    assert enrolled.status == 201, enrolled.body
    held = await till.get(f"/members/{enrolled.body['id']}/coupons")
    [welcome] = [c for c in held.body["coupons"] if c["kind"] == "welcome"]
    body = {"phone": "+47 912 34 567", "coupon_codes": [welcome["code"]], "lines": [SHOES]}
    answer = await till.post("/baskets/evaluate", body)
    assert answer.status == 200, answer.body
    priced = answer.body
    assert priced["tier"] == {"name": "Bronse", "discount_percent": 5, "discount_minor": 6495}
    assert [(a["template"], a["discount_minor"]) for a in priced["applied"]] == [("welcome", 12341)]
    assert (priced["discount_minor"], priced["to_pay_minor"]) == (18836, 111064)
    assert priced["refused"] == []


@pytest.mark.parametrize(
    ("template", "discount"),
    [
        ("welcome", 12990 + 1500),  # 10 % of the basket
        ("birthday", 25980),  # 20 % of the shoes
        ("reward-100", 10000),
        ("referral", 5000),
        ("three-for-two", 5000),  # one of three running items free
    ],
)
async def test_each_demo_coupon_takes_its_offer_off(
    demo: int, db: Database, till: Till, template: str, discount: int
) -> None:
    """Without a member (no tier), each demo coupon's own discount on a basket it fits."""
    enrolled = await till.enrol(PHONE)
    assert enrolled.status == 201, enrolled.body
    code = await give(db, demo, enrolled.body["id"], template)
    answer = await till.post("/baskets/evaluate", {"lines": FITS, "coupon_codes": [code]})
    assert answer.status == 200, answer.body
    assert [(a["template"], a["discount_minor"]) for a in answer.body["applied"]] == [
        (template, discount)
    ]
    assert answer.body["discount_minor"] == discount


async def test_a_free_item_is_for_the_cashier(demo: int, db: Database, till: Till) -> None:
    enrolled = await till.enrol(PHONE)
    code = await give(db, demo, enrolled.body["id"], "reward-bottle")
    answer = await till.post("/baskets/evaluate", {"lines": FITS, "coupon_codes": [code]})
    assert [r["reason"] for r in answer.body["refused"]] == ["no_offer"]
