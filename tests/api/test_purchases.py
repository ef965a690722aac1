"""Purchases and refunds: points once per transaction, taken back exactly, bad bodies named."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select

from store.database import Database
from store.models import LedgerEntry, Member, Purchase
from tests.api.conftest import PHONE, Till
from tests.conftest import Phone


async def count(db: Database, model: type) -> int:
    return await db.run(lambda s: s.scalar(select(func.count()).select_from(model)))


def sale(transaction_id: str = "T-1", **fields: Any) -> dict[str, Any]:
    """A sale of two lines (earning 1 point per krone): 249 kr of shoes and 50 kr of socks."""
    return {
        "transaction_id": transaction_id,
        "phone": PHONE,
        "lines": [
            {
                "sku": "SHOE-42",
                "category": "shoes",
                "brand": "Aasnes",
                "qty": 1,
                "amount_minor": 24900,
            },
            {"sku": "SOCK", "category": "socks", "qty": 2, "amount_minor": 5000},
        ],
        **fields,
    }


# A sale changed (None: the field left out) and the field the 422 names.
BAD_SALES: list[tuple[dict[str, Any], str]] = [
    ({"transaction_id": None}, "transaction_id"),
    ({"transaction_id": ""}, "transaction_id"),
    ({"transaction_id": "x" * 65}, "transaction_id"),
    ({"transaction_id": "T\x00"}, "transaction_id"),
    ({"phone": None}, "phone"),
    ({"phone": "no number"}, "phone"),
    ({"member_id": 1}, "member_id"),
    ({"lines": []}, "lines"),
    ({"lines": None}, "lines"),
    ({"lines": [{"qty": 1, "amount_minor": 1}] * 501}, "lines"),
    ({"lines": [{"qty": 0, "amount_minor": 100}]}, "lines[0].qty"),
    ({"lines": [{"qty": 1.5, "amount_minor": 100}]}, "lines[0].qty"),
    ({"lines": [{"qty": 1, "amount_minor": -1}]}, "lines[0].amount_minor"),
    ({"lines": [{"qty": 1, "amount_minor": 2**63}]}, "lines[0].amount_minor"),
    ({"lines": [{"qty": 1, "amount_minor": 10**400}]}, "lines[0].amount_minor"),
    ({"lines": [{"qty": 1}]}, "lines[0].amount_minor"),
    ({"lines": [{"qty": 1, "amount_minor": "100"}]}, "lines[0].amount_minor"),
    ({"lines": [{"qty": True, "amount_minor": 100}]}, "lines[0].qty"),
    ({"lines": [{"qty": 1, "amount_minor": 1, "sku": "A\u0000B"}]}, "lines[0].sku"),
    (
        {"lines": [{"qty": 1, "amount_minor": 1, "category": "x\ud800"}]},
        "lines[0].category",
    ),
    ({"lines": [{"qty": 1, "amount_minor": 1, "colour": "red"}]}, "lines[0].colour"),
    (
        {"lines": [{"qty": 1, "amount_minor": 10**10}, {"qty": 1, "amount_minor": 1}]},
        "lines",
    ),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": "2026-01-15T10:30:00"}, "occurred_at"),
    ({"occurred_at": "1970-01-01T00:00:00Z"}, "occurred_at"),
    ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
    ({"occurred_at": "9999-12-31T23:59:59-12:00"}, "occurred_at"),
    ({"store": "x" * 41}, "store"),
    ({"points": 1000}, "points"),
]

# Bodies that are not a JSON object (the last nests deeper than any parser recurses).
NOT_OBJECTS = ["", "not json", "[1, 2]", '"a sale"', "null", "{", '{"a": NaN}', "[" * 100_000]

# Refunds of sale() that break a rule, and the field the 422 names.
BAD_REFUNDS: list[tuple[dict[str, Any], str]] = [
    ({}, "refund_id"),
    ({"refund_id": "R-1", "lines": [{"line": 3}]}, "lines[0].line"),
    ({"refund_id": "R-1", "lines": [{"line": 1}, {"line": 1}]}, "lines[1].line"),
    ({"refund_id": "R-1", "lines": [{"line": 2, "qty": 3}]}, "lines[0].qty"),
    (
        {"refund_id": "R-1", "lines": [{"line": 1, "amount_minor": 24901}]},
        "lines[0].amount_minor",
    ),
    ({"refund_id": "R-1", "lines": [{"line": 0}]}, "lines[0].line"),
    ({"refund_id": "R-1", "lines": [{"qty": 1}]}, "lines[0].line"),
    ({"refund_id": "R-1", "lines": []}, "lines"),
    ({"refund_id": "R-1", "lines": [{"line": 1, "qty": 0}]}, "lines[0].qty"),
]


class TestRecord:
    async def test_a_sale_earns_points_for_the_member(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        """201 with the purchase, the points earned, the balance and the key's store."""
        answer = await till.post("/purchases", sale())
        assert answer.status == 201, answer.body
        body = answer.body
        assert body["transaction_id"] == "T-1"
        assert body["member_id"] == member["id"]
        assert (body["points"], body["balance"]) == (299, 299)
        assert (body["total_minor"], body["currency"]) == (29900, "NOK")
        assert body["store"] == "oslo-1"
        assert body["coupons"] == []
        assert body["occurred_at"].endswith("Z")

    async def test_a_member_id_does_as_well_as_a_phone(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        body = sale()
        del body["phone"]
        answer = await till.post("/purchases", {**body, "member_id": member["id"]})
        assert answer.status == 201
        assert answer.body["points"] == 299

    async def test_the_till_may_name_the_store_and_the_time(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        occurred = "2026-01-15T10:30:00+01:00"
        answer = await till.post("/purchases", sale(store="bergen-2", occurred_at=occurred))
        assert answer.status == 201
        assert answer.body["store"] == "bergen-2"
        assert answer.body["occurred_at"] == "2026-01-15T09:30:00Z"

    async def test_a_retried_sale_is_recorded_once(
        self, till: Till, db: Database, member: dict[str, Any]
    ) -> None:
        """The same body again: 200 with the same answer, one purchase, the points once."""
        first = await till.post("/purchases", sale())
        again = await till.post("/purchases", sale())
        assert (first.status, again.status) == (201, 200)
        assert again.body == first.body
        assert await count(db, Purchase) == 1
        assert await count(db, LedgerEntry) == 1
        assert (await till.get(f"/members/{member['id']}")).body["balance"] == 299

    async def test_a_whole_number_written_with_a_fraction_is_that_number(
        self, till: Till, db: Database, member: dict[str, Any]
    ) -> None:
        """24900.0 and 2.49e4 are 24900, as JSON Schema's integer says: a sale sent with them
        and retried as 24900 (or the other way) is one sale, 200, not transaction_id_reused;
        24900.5 or 1e400 is no amount (422 naming it)."""
        body = json.dumps(sale())
        first = await till.post("/purchases", raw=body.replace("24900", "24900.0"))
        again = await till.post("/purchases", sale())
        exponent = await till.post("/purchases", raw=body.replace("24900", "2.49e4"))
        assert (first.status, again.status, exponent.status) == (201, 200, 200), again.body
        assert again.body == first.body == exponent.body
        assert first.body["total_minor"] == 29900
        assert await count(db, Purchase) == 1
        for amount in ("24900.5", "1e400", "-0.5"):
            refused = await till.post("/purchases", raw=body.replace("24900", amount))
            assert refused.status == 422, amount
            assert refused.body["field"] == "lines[0].amount_minor"

    async def test_retries_at_the_same_moment_are_recorded_once(
        self, till: Till, db: Database, member: dict[str, Any]
    ) -> None:
        """Five copies of one sale at once (a till resync): one 201, four 200, points once."""
        answers = await asyncio.gather(*(till.post("/purchases", sale()) for _ in range(5)))
        assert sorted(a.status for a in answers) == [200, 200, 200, 200, 201]
        assert {a.body["purchase_id"] for a in answers} == {answers[0].body["purchase_id"]}
        assert await count(db, Purchase) == 1
        assert (await till.get(f"/members/{member['id']}")).body["balance"] == 299

    async def test_a_transaction_id_reused_for_another_sale_is_409(
        self, till: Till, db: Database, member: dict[str, Any]
    ) -> None:
        await till.post("/purchases", sale())
        other = sale()
        other["lines"][0]["amount_minor"] = 19900
        answer = await till.post("/purchases", other)
        assert answer.status == 409
        assert answer.body["reason"] == "transaction_id_reused"
        assert await count(db, Purchase) == 1

    async def test_an_unknown_phone_is_404_and_makes_no_member(
        self, till: Till, db: Database, member: dict[str, Any]
    ) -> None:
        answer = await till.post("/purchases", sale(phone="+4798765432"))
        assert answer.status == 404
        assert answer.body["field"] == "phone"
        assert "+4798765432" in answer.body["error"]
        assert await count(db, Member) == 1
        assert await count(db, Purchase) == 0

    async def test_a_number_that_has_not_joined_is_409(
        self, till: Till, client: Any, db: Database, member: dict[str, Any]
    ) -> None:
        """A number that asked to join by SMS but never said YES earns nothing yet."""
        await Phone(client, "+4798765432").text("JOIN")
        answer = await till.post("/purchases", sale(phone="+4798765432"))
        assert answer.status == 409
        assert answer.body["reason"] == "not_joined"
        assert await count(db, Purchase) == 0

    async def test_an_unknown_member_id_is_404(self, till: Till, member: dict[str, Any]) -> None:
        body = sale()
        del body["phone"]
        answer = await till.post("/purchases", {**body, "member_id": member["id"] + 1000})
        assert answer.status == 404

    async def test_a_discounted_line_earns_nothing(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        body = sale()
        body["lines"][0]["discounted"] = True
        answer = await till.post("/purchases", body)
        assert answer.body["points"] == 50

    async def test_a_bad_sale_is_422_naming_the_field(
        self, till: Till, db: Database, member: dict[str, Any], subtests: Any
    ) -> None:
        for change, field in BAD_SALES:
            with subtests.test(field=field, change=repr(change)[:80]):
                body = {k: v for k, v in {**sale(), **change}.items() if v is not None}
                answer = await till.post("/purchases", raw=json.dumps(body))
                assert answer.status == 422, answer.body
                assert answer.body["field"] == field
                assert answer.body["error"]
        assert await count(db, Purchase) == 0

    async def test_a_body_that_is_not_a_json_object_is_400(
        self, till: Till, member: dict[str, Any], subtests: Any
    ) -> None:
        for raw in NOT_OBJECTS:
            with subtests.test(raw=raw[:20]):
                answer = await till.post("/purchases", raw=raw)
                assert answer.status == 400
                assert answer.body["error"]

    async def test_a_body_too_large_is_413(self, till: Till, member: dict[str, Any]) -> None:
        answer = await till.post("/purchases", raw='{"x": "' + "a" * 600_000 + '"}')
        assert answer.status == 413

    async def test_a_sale_of_500_lines_is_recorded(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        """A long receipt is about 100 KB of JSON: more than a Twilio form may be, still read."""
        lines = [
            {
                "sku": f"SKU-{i:06d}-" + "x" * 50,
                "category": "groceries",
                "brand": "Nordic Organic Foods",
                "qty": 3,
                "amount_minor": 1999,
            }
            for i in range(500)
        ]
        assert len(json.dumps(lines)) > 64 * 1024
        answer = await till.post(
            "/purchases", {"transaction_id": "BIG", "phone": PHONE, "lines": lines}
        )
        assert answer.status == 201, answer.body
        assert answer.body["points"] == 500 * 1999 // 100


class TestRefund:
    async def test_a_whole_refund_takes_back_exactly_the_points(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        await till.post("/purchases", sale())
        answer = await till.post("/purchases/T-1/refunds", {"refund_id": "R-1"})
        assert answer.status == 201, answer.body
        assert answer.body == {
            "refund_id": "R-1",
            "transaction_id": "T-1",
            "amount_minor": 29900,
            "points": 299,
            "points_taken": 299,
            "balance": 0,
        }

    async def test_partial_refunds_add_up_to_the_purchase(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        """One sock of two, then the shoes by amount in two parts: the points taken back add up
        to exactly what the lines earned."""
        await till.post("/purchases", sale())
        refunds = [
            ("R-1", [{"line": 2, "qty": 1}]),
            ("R-2", [{"line": 1, "amount_minor": 10001}]),
            ("R-3", [{"line": 1, "amount_minor": 14899}, {"line": 2}]),
        ]
        taken = []
        for refund_id, lines in refunds:
            answer = await till.post(
                "/purchases/T-1/refunds", {"refund_id": refund_id, "lines": lines}
            )
            assert answer.status == 201, answer.body
            taken.append(answer.body["points_taken"])
        assert taken[0] == 25
        assert sum(taken) == 299
        assert answer.body["balance"] == 0

    async def test_a_retried_refund_is_applied_once(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        await till.post("/purchases", sale())
        body = {"refund_id": "R-1", "lines": [{"line": 1}]}
        first = await till.post("/purchases/T-1/refunds", body)
        again = await till.post("/purchases/T-1/refunds", body)
        assert (first.status, again.status) == (201, 200)
        assert again.body == first.body
        assert first.body["balance"] == 50

    async def test_a_refund_id_reused_for_another_refund_is_409(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        await till.post("/purchases", sale())
        await till.post("/purchases/T-1/refunds", {"refund_id": "R-1", "lines": [{"line": 1}]})
        answer = await till.post(
            "/purchases/T-1/refunds", {"refund_id": "R-1", "lines": [{"line": 2}]}
        )
        assert answer.status == 409
        assert answer.body["reason"] == "refund_id_reused"

    async def test_refunding_what_is_already_refunded_is_409(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        await till.post("/purchases", sale())
        await till.post("/purchases/T-1/refunds", {"refund_id": "R-1"})
        answer = await till.post("/purchases/T-1/refunds", {"refund_id": "R-2"})
        assert answer.status == 409
        assert answer.body["reason"] == "already_refunded"

    async def test_spent_points_are_taken_back_only_as_far_as_the_balance(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        await till.post("/purchases", sale())
        spend = {"points": -200, "reason": "gift card"}
        await till.post(f"/members/{member['id']}/adjustments", spend)
        answer = await till.post("/purchases/T-1/refunds", {"refund_id": "R-1"})
        assert (answer.body["points"], answer.body["points_taken"]) == (299, 99)
        assert answer.body["balance"] == 0

    async def test_an_unknown_purchase_is_404(self, till: Till, member: dict[str, Any]) -> None:
        answer = await till.post("/purchases/NOPE/refunds", {"refund_id": "R-1"})
        assert answer.status == 404

    async def test_a_transaction_id_with_a_slash_can_be_refunded(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        await till.post("/purchases", sale("2026/11/0001"))
        answer = await till.post("/purchases/2026%2F11%2F0001/refunds", {"refund_id": "R-1"})
        assert answer.status == 201, answer.body
        assert answer.body["transaction_id"] == "2026/11/0001"

    async def test_a_transaction_id_that_could_not_exist_is_404(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        for path in ("/purchases/T%00/refunds", "/purchases/" + "T" * 65 + "/refunds"):
            answer = await till.post(path, {"refund_id": "R-1"})
            assert answer.status == 404, path

    async def test_a_bad_refund_is_422_naming_the_field(
        self, till: Till, member: dict[str, Any], subtests: Any
    ) -> None:
        await till.post("/purchases", sale())
        for body, field in BAD_REFUNDS:
            with subtests.test(field=field, body=repr(body)):
                answer = await till.post("/purchases/T-1/refunds", body)
                assert answer.status == 422, answer.body
                assert answer.body["field"] == field
        balance = (await till.get(f"/members/{member['id']}")).body["balance"]
        assert balance == 299


class TestTime:
    async def test_a_sale_dated_in_the_past_is_recorded_then(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        when = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).replace(microsecond=0)
        answer = await till.post("/purchases", sale(occurred_at=when.isoformat()))
        assert answer.body["occurred_at"] == when.isoformat().replace("+00:00", "Z")
