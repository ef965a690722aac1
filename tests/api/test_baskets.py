"""Baskets the till prices (POST /baskets/evaluate) and sales sent with coupon codes: each
line's discount, every refusal named, nothing redeemed by evaluating, and a sale's coupons
redeemed exactly once however often the till sends it."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.database import Database
from store.loyalty import coupons
from store.models import Coupon, Member, Program, Purchase, PurchaseLine
from tests.api.conftest import PHONE, Till, create_key
from tests.conftest import Phone, now

SHOES = {"sku": "SHOE-42", "category": "Shoes", "brand": "Asics", "qty": 1, "amount_minor": 60000}
SOCKS = {"sku": "SOCK", "category": "socks", "qty": 3, "amount_minor": 15000}
ON_SALE = {"sku": "OLD", "category": "shoes", "qty": 1, "amount_minor": 10000, "discounted": True}

TWENTY_OFF_SHOES = {
    "type": "percent",
    "value": 20,
    "scope": "categories",
    "items": ["shoes"],
    "min_basket_minor": 50000,
}
THREE_FOR_TWO_SOCKS = {
    "type": "buy_n_pay_m",
    "buy": 3,
    "pay": 2,
    "scope": "skus",
    "items": ["SOCK"],
}
REDEEMED = "the coupon has already been redeemed"
HUNDRED_OFF = {"type": "amount", "value": 10000, "scope": "basket"}


async def coupon(
    db: Database,
    program_id: int,
    member_id: int,
    offer: dict[str, Any] | None,
    *,
    valid_from: dt.datetime | None = None,
    valid_days: int = 30,
    redeemed: bool = False,
) -> str:
    """A coupon with this offer for the member (a template of its own); its code as printed."""

    def work(session: Session) -> str:
        program = session.get(Program, program_id)
        assert program is not None
        key = f"offer-{len(coupons.templates(session, program_id, retired=True))}"
        template = coupons.create_template(
            session,
            program,
            key=key,
            kind=coupons.CAMPAIGN,
            benefit={"en": "An offer", "nb": "Et tilbud"},
            valid_days=valid_days,
            offer=offer,
        )
        at = valid_from or now() - dt.timedelta(minutes=1)
        issued = coupons.issue(session, program_id, member_id, template, f"test:{key}", at)
        if redeemed:
            coupons.redeem(session, program_id, issued.code, now(), by="till-9")
        return coupons.display(issued.code)

    return await db.run(work)


async def state(db: Database, program_id: int, code: str) -> Coupon:
    def work(session: Session) -> Coupon:
        found = coupons.find(session, program_id, code)
        assert found is not None
        return found.coupon

    return await db.run(work)


async def enrol(till: Till, phone: str) -> int:
    answer = await till.enrol(phone)
    assert answer.status == 201, answer.body
    return int(answer.body["id"])


def basket(*lines: dict[str, Any], codes: list[str], **buyer: Any) -> dict[str, Any]:
    return {"lines": list(lines), "coupon_codes": codes, **buyer}


class TestEvaluate:
    async def test_tier_then_coupons_and_nothing_redeemed(
        self, db: Database, club: int, till: Till, member: dict[str, Any]
    ) -> None:
        """Bronze's 5 % first, then 20 % off shoes and 3-for-2 on socks on what is left; the
        coupons stay valid."""
        shoes = await coupon(db, club, member["id"], TWENTY_OFF_SHOES)
        socks = await coupon(db, club, member["id"], THREE_FOR_TWO_SOCKS)
        answer = await till.post(
            "/baskets/evaluate",
            basket(SHOES, SOCKS, ON_SALE, codes=[shoes.lower(), socks], phone=PHONE),
        )
        assert answer.status == 200, answer.body
        body = answer.body
        assert body["tier"] == {"name": "Bronse", "discount_percent": 5, "discount_minor": 3750}
        assert [line["tier_minor"] for line in body["lines"]] == [3000, 750, 0]
        # 20 % of 570 kr; one of three socks (142.50 kr / 3, half up) free.
        assert [line["coupon_minor"] for line in body["lines"]] == [11400, 4750, 0]
        assert [line["codes"] for line in body["lines"]] == [[shoes], [socks], []]
        assert body["total_minor"] == 85000
        assert body["discount_minor"] == 3750 + 11400 + 4750
        assert body["to_pay_minor"] == 85000 - body["discount_minor"]
        assert [(a["code"], a["discount_minor"], a["lines"]) for a in body["applied"]] == [
            (shoes, 11400, [1]),
            (socks, 4750, [2]),
        ]
        assert body["applied"][0]["offer"]["items"] == ["shoes"]
        assert body["applied"][0]["benefit"] == "Et tilbud"
        assert body["refused"] == []
        assert (await state(db, club, shoes)).redeemed_at is None
        again = await till.post(
            "/baskets/evaluate",
            basket(SHOES, SOCKS, ON_SALE, codes=[shoes.lower(), socks], phone=PHONE),
        )
        assert again.body == body

    async def test_every_refusal_named(
        self, db: Database, club: int, till: Till, member: dict[str, Any]
    ) -> None:
        me = member["id"]
        friend = await enrol(till, "+4791234568")
        later = now() + dt.timedelta(days=2)
        codes = {
            "unknown_code": "ZZZZ-2222",
            "other_member": await coupon(db, club, friend, HUNDRED_OFF),
            "redeemed": await coupon(db, club, me, HUNDRED_OFF, redeemed=True),
            "expired": await coupon(
                db, club, me, HUNDRED_OFF, valid_from=now() - dt.timedelta(days=3), valid_days=1
            ),
            "not_yet_valid": await coupon(db, club, me, HUNDRED_OFF, valid_from=later),
            "no_offer": await coupon(db, club, me, None),
            "not_in_scope": await coupon(
                db, club, me, {**TWENTY_OFF_SHOES, "items": ["ski"], "min_basket_minor": 0}
            ),
            "too_few_items": await coupon(db, club, me, {**THREE_FOR_TWO_SOCKS, "buy": 4}),
            "min_not_met": await coupon(
                db, club, me, {**HUNDRED_OFF, "min_basket_minor": 1_000_000}
            ),
        }
        applied = await coupon(db, club, me, TWENTY_OFF_SHOES)
        taken = await coupon(
            db, club, me, {**TWENTY_OFF_SHOES, "scope": "brands", "items": ["asics"]}
        )
        basket_wide = await coupon(db, club, me, HUNDRED_OFF)
        smaller = await coupon(db, club, me, {**HUNDRED_OFF, "value": 100})
        sent = [*codes.values(), applied, applied, taken, basket_wide, smaller]
        answer = await till.post(
            "/baskets/evaluate", basket(SHOES, SOCKS, codes=sent, member_id=me)
        )
        assert answer.status == 200, answer.body
        refused = [(r["code"], r["reason"]) for r in answer.body["refused"]]
        assert refused == [
            *((code, reason) for reason, code in codes.items()),
            (applied, "duplicate"),
            (taken, "not_combinable"),
            (smaller, "not_combinable"),
        ]
        assert all(r["error"] for r in answer.body["refused"])
        assert [a["code"] for a in answer.body["applied"]] == [applied, basket_wide]
        # Up to four codes are read with the member in one statement: the same reasons.
        few = ["unknown_code", "other_member", "redeemed", "expired"]
        for buyer in ({"member_id": me}, {"phone": PHONE}):
            answer = await till.post(
                "/baskets/evaluate", basket(SHOES, codes=[codes[r] for r in few], **buyer)
            )
            assert answer.status == 200, answer.body
            assert [r["reason"] for r in answer.body["refused"]] == few

    async def test_no_discount(
        self, db: Database, club: int, till: Till, member: dict[str, Any]
    ) -> None:
        free = {"sku": "GIFT", "qty": 1, "amount_minor": 0}
        code = await coupon(db, club, member["id"], HUNDRED_OFF)
        answer = await till.post("/baskets/evaluate", basket(free, codes=[code]))
        assert answer.body["refused"] == [
            {"code": code, "reason": "no_discount", "error": "it would take nothing off"}
        ]

    async def test_without_a_member_no_tier(
        self, db: Database, club: int, till: Till, member: dict[str, Any]
    ) -> None:
        code = await coupon(db, club, member["id"], HUNDRED_OFF)
        answer = await till.post("/baskets/evaluate", basket(SHOES, codes=[code]))
        assert answer.status == 200, answer.body
        assert answer.body["tier"] is None
        assert answer.body["member_id"] is None
        assert answer.body["discount_minor"] == 10000

    @pytest.mark.parametrize(
        ("change", "status", "field"),
        [
            ({"phone": PHONE, "member_id": 1}, 422, "member_id"),
            ({"coupon_codes": ["A"] * 21}, 422, "coupon_codes"),
            ({"coupon_codes": ["ÆØÅ"]}, 422, "coupon_codes[0]"),
            ({"lines": []}, 422, "lines"),
            ({"phone": "+4799999999"}, 404, "phone"),
            ({"member_id": 2**40}, 404, None),
        ],
    )
    async def test_bad_baskets_named(
        self,
        till: Till,
        member: dict[str, Any],
        change: dict[str, Any],
        status: int,
        field: str | None,
    ) -> None:
        answer = await till.post("/baskets/evaluate", {**basket(SHOES, codes=[]), **change})
        assert answer.status == status, answer.body
        assert answer.body.get("field") == field

    async def test_a_number_not_joined_is_a_409(self, till: Till, client: Any) -> None:
        await Phone(client, "+4798765432").text("JOIN")
        answer = await till.post("/baskets/evaluate", basket(SHOES, codes=[], phone="+4798765432"))
        assert answer.status == 409
        assert answer.body["reason"] == "not_joined"

    async def test_needs_coupons_read(self, db: Database, client: Any, club: int) -> None:
        key = await create_key(db, club, name="till-2", scopes=["purchases:write"])
        answer = await Till(client, key).post("/baskets/evaluate", basket(SHOES, codes=[]))
        assert answer.status == 403
        assert answer.body["scope"] == "coupons:read"

    async def test_another_clubs_coupon_is_unknown(
        self, db: Database, club: int, other_club: int, client: Any, member: dict[str, Any]
    ) -> None:
        code = await coupon(db, club, member["id"], HUNDRED_OFF)
        key = await create_key(db, other_club, name="kassa")
        answer = await Till(client, key).post("/baskets/evaluate", basket(SHOES, codes=[code]))
        assert answer.body["refused"][0]["reason"] == "unknown_code"


def sale(transaction_id: str, codes: list[str], *lines: dict[str, Any]) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "phone": PHONE,
        "lines": list(lines or (SHOES, SOCKS)),
        "coupon_codes": codes,
    }


async def paid_lines(db: Database, transaction_id: str) -> list[int]:
    def work(session: Session) -> list[int]:
        return list(
            session.scalars(
                select(PurchaseLine.amount_minor)
                .join(Purchase, Purchase.id == PurchaseLine.purchase_id)
                .where(Purchase.transaction_id == transaction_id)
                .order_by(PurchaseLine.line_no)
            )
        )

    return await db.run(work)


class TestPurchaseWithCodes:
    async def test_priced_recorded_at_what_was_paid_and_redeemed_once(
        self, db: Database, club: int, till: Till, member: dict[str, Any]
    ) -> None:
        shoes = await coupon(db, club, member["id"], TWENTY_OFF_SHOES)
        evaluated = await till.post(
            "/baskets/evaluate", basket(SHOES, SOCKS, codes=[shoes], phone=PHONE)
        )
        first = await till.post("/purchases", sale("T-1", [shoes]))
        assert first.status == 201, first.body
        assert first.body["basket"] == evaluated.body
        # Recorded (and earning points: 1 per krone) at what was paid.
        assert first.body["total_minor"] == evaluated.body["to_pay_minor"]
        assert first.body["points"] == evaluated.body["to_pay_minor"] // 100
        assert await paid_lines(db, "T-1") == [
            line["to_pay_minor"] for line in evaluated.body["lines"]
        ]
        used = await state(db, club, shoes)
        assert used.redeemed_at is not None
        assert (used.redeemed_ref, used.redeemed_by) == ("T-1", "till-1")

        again = await till.post("/purchases", sale("T-1", [shoes]))
        assert again.status == 200
        assert again.body == first.body
        assert (await state(db, club, shoes)).redeemed_at == used.redeemed_at

        # Another sale with the same code: recorded, the code refused.
        other = await till.post("/purchases", sale("T-2", [shoes]))
        assert other.status == 201, other.body
        assert other.body["basket"]["refused"] == [
            {"code": shoes, "reason": "redeemed", "error": REDEEMED}
        ]
        assert other.body["basket"]["applied"] == []

    async def test_a_retry_after_the_sale_promoted_the_member_answers_the_same(
        self, db: Database, club: int, till: Till, member: dict[str, Any]
    ) -> None:
        """3,000 kr takes Bronze (5 %) to Silver (10 %): the retry still says 5 %."""
        code = await coupon(db, club, member["id"], HUNDRED_OFF)
        big = {"sku": "BIKE", "category": "bikes", "qty": 1, "amount_minor": 300000}
        first = await till.post("/purchases", sale("T-9", [code], big))
        assert first.status == 201, first.body
        assert first.body["basket"]["tier"]["discount_percent"] == 5
        tier_id = await db.run(lambda s: s.get(Member, member["id"]).tier_id)
        assert tier_id is not None  # promoted
        again = await till.post("/purchases", sale("T-9", [code], big))
        assert again.status == 200
        assert again.body["basket"] == first.body["basket"]

    async def test_many_tills_one_code_applied_once(
        self, db: Database, club: int, till: Till, member: dict[str, Any]
    ) -> None:
        code = await coupon(db, club, member["id"], HUNDRED_OFF)
        answers = await asyncio.gather(
            *(till.post("/purchases", sale(f"T-{n}", [code])) for n in range(6))
        )
        assert [a.status for a in answers] == [201] * 6
        [applied] = [a for a in answers if a.body["basket"]["applied"]]
        refused = [a.body["basket"]["refused"] for a in answers if a is not applied]
        assert refused == [[{"code": code, "reason": "redeemed", "error": REDEEMED}]] * 5
        assert (await state(db, club, code)).redeemed_ref == applied.body["transaction_id"]

    async def test_codes_need_coupons_redeem(
        self, db: Database, client: Any, club: int, member: dict[str, Any]
    ) -> None:
        key = await create_key(db, club, name="till-2", scopes=["purchases:write"])
        answer = await Till(client, key).post("/purchases", sale("T-1", ["ABCD-2345"]))
        assert answer.status == 403
        assert answer.body["scope"] == "coupons:redeem"
        # No codes, no redemption: the scope is not needed.
        plain = await Till(client, key).post("/purchases", sale("T-1", []))
        assert plain.status == 201, plain.body
        assert plain.body["basket"]["applied"] == []

    async def test_without_codes_as_before(self, till: Till, member: dict[str, Any]) -> None:
        answer = await till.post("/purchases", {**sale("T-1", []), "coupon_codes": None})
        assert answer.status == 422
        assert answer.body["field"] == "coupon_codes"
        body = sale("T-1", [])
        del body["coupon_codes"]
        answer = await till.post("/purchases", body)
        assert answer.status == 201
        assert "basket" not in answer.body
        assert answer.body["total_minor"] == 75000
