"""Coupons at the till: a code's state, and redemption exactly once however many tills try."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from store.database import Database
from store.models import Coupon
from tests.api.conftest import Till, create_key, issue_coupon


@pytest.fixture
async def code(db: Database, club: int, member: dict[str, Any]) -> str:
    return await issue_coupon(db, club, member["id"])


class TestState:
    async def test_a_code_as_printed_or_typed(
        self, till: Till, member: dict[str, Any], code: str
    ) -> None:
        """ABCD-2345, abcd2345 and "ABCD 2345" all find the coupon ABCD2345."""
        for typed in (code, f"{code[:4]}-{code[4:]}", code.lower(), f"{code[:4]}%20{code[4:]}"):
            answer = await till.get(f"/coupons/{typed}")
            assert answer.status == 200, (typed, answer.body)
            coupon = answer.body
            assert coupon["code"] == f"{code[:4]}-{code[4:]}"
            assert coupon["state"] == "valid"
            assert coupon["kind"] == "campaign"
            assert coupon["member_id"] == member["id"]
            assert coupon["benefit"] == "10 % rabatt"
            assert coupon["redeemed_at"] is None

    async def test_an_expired_coupon_says_so(
        self, till: Till, db: Database, club: int, member: dict[str, Any]
    ) -> None:
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=31)
        code = await issue_coupon(db, club, member["id"], at=long_ago)
        answer = await till.get(f"/coupons/{code}")
        assert answer.body["state"] == "expired"

    async def test_an_unknown_code_is_404(self, till: Till, club: int) -> None:
        for code in ("NOSUCH22", "A%00B", "x" * 33, "%F0%9F%8E%81", "AB%2FCD"):
            answer = await till.get(f"/coupons/{code}")
            assert answer.status == 404, code


class TestRedeem:
    async def test_a_valid_coupon_is_redeemed_by_the_key(
        self, till: Till, code: str, db: Database
    ) -> None:
        answer = await till.post(f"/coupons/{code}/redeem", {"transaction_id": "T-9"})
        assert answer.status == 200, answer.body
        assert answer.body["state"] == "redeemed"
        assert answer.body["redeemed_by"] == "till-1"
        assert answer.body["redeemed_ref"] == "T-9"
        assert answer.body["redeemed_at"].endswith("Z")

    async def test_the_body_is_optional(self, till: Till, code: str) -> None:
        answer = await till.post(f"/coupons/{code[:4]}-{code[4:]}/redeem")
        assert answer.status == 200
        assert answer.body["redeemed_ref"] is None

    async def test_a_second_redemption_is_409(self, till: Till, code: str) -> None:
        await till.post(f"/coupons/{code}/redeem")
        answer = await till.post(f"/coupons/{code}/redeem", {"transaction_id": "T-10"})
        assert answer.status == 409
        assert answer.body["reason"] == "coupon_redeemed"

    async def test_an_expired_coupon_is_409(
        self, till: Till, db: Database, club: int, member: dict[str, Any]
    ) -> None:
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=31)
        code = await issue_coupon(db, club, member["id"], at=long_ago)
        answer = await till.post(f"/coupons/{code}/redeem")
        assert answer.status == 409
        assert answer.body["reason"] == "coupon_expired"

    async def test_an_unknown_code_is_404(self, till: Till, club: int) -> None:
        answer = await till.post("/coupons/NOSUCH22/redeem")
        assert answer.status == 404

    async def test_a_bad_body_is_refused_and_nothing_redeemed(self, till: Till, code: str) -> None:
        for raw, status in (
            ("[]", 400),
            ("{", 400),
            ('{"transaction_id": 5}', 422),
            ('{"x": 1}', 422),
        ):
            answer = await till.post(f"/coupons/{code}/redeem", raw=raw)
            assert answer.status == status, raw
        assert (await till.get(f"/coupons/{code}")).body["state"] == "valid"

    async def test_tills_redeeming_one_code_at_once_succeed_exactly_once(
        self, client: Any, db: Database, club: int, code: str
    ) -> None:
        """Eight tills, each with its own key, redeem one code at the same moment: one 200,
        seven 409 coupon_redeemed, and the coupon records the one that won."""
        tills = [Till(client, await create_key(db, club, name=f"till-{i}")) for i in range(2, 10)]
        answers = await asyncio.gather(
            *(
                t.post(f"/coupons/{code}/redeem", {"transaction_id": f"T-{i}"})
                for i, t in enumerate(tills)
            )
        )
        statuses = sorted(a.status for a in answers)
        assert statuses == [200] + [409] * 7
        [won] = [a for a in answers if a.status == 200]
        assert {a.body["reason"] for a in answers if a.status == 409} == {"coupon_redeemed"}
        coupon = await db.run(lambda s: s.scalars(select(Coupon)).one())
        assert coupon.redeemed_by == won.body["redeemed_by"]
        assert coupon.redeemed_ref == won.body["redeemed_ref"]
