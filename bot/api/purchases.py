"""Purchases and refunds from the till: each recorded once per the till's own id."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

import locales
from bot.api import schemas, views
from bot.api.operations import ApiError, Call
from bot.keys import CLUBS
from store.clubs.apikeys import Caller
from store.clubs.directory import ClubDirectory
from store.loyalty import baskets, purchases, receipts
from store.loyalty.earning import Line
from store.members import members
from store.members.phones import to_e164

REDEEM = "coupons:redeem"


def fingerprint(body: dict[str, Any]) -> str:
    """The request as given, canonical: a retry has the same one, other contents do not."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def record(call: Call) -> web.Response:
    """201 with the points earned; the same sale again 200 with the same answer; the same
    transaction id with other contents 409."""
    body = call.body
    occurred_at = call.now
    if "occurred_at" in body:
        when = schemas.past_moment(body["occurred_at"], call.now)
        if when is None:
            raise ApiError(422, schemas.PAST_MOMENT, field="occurred_at")
        occurred_at = when
    lines = lines_of(body)
    if body.get("coupon_codes") and REDEEM not in call.caller.scopes:
        # Redeeming with a sale is redeeming: the key needs the scope POST /coupons/redeem needs.
        raise ApiError(403, f"this key lacks the scope {REDEEM}", scope=REDEEM)
    work = functools.partial(
        _record,
        caller=call.caller,
        clubs=call.request.app[CLUBS],
        body=body,
        lines=lines,
        occurred_at=occurred_at,
        fingerprint=fingerprint(body),
        now=call.now,
    )
    view, replayed = await call.run(work)
    return web.json_response(view, status=200 if replayed else 201)


def lines_of(body: dict[str, Any]) -> list[Line]:
    """The body's lines (valid by the schema), or 422 if they add up to too much."""
    lines = [
        Line(
            qty=int(line["qty"]),
            amount_minor=int(line["amount_minor"]),
            category=line.get("category"),
            brand=line.get("brand"),
            discounted=bool(line.get("discounted", False)),
            sku=line.get("sku"),
        )
        for line in body["lines"]
    ]
    if sum(line.amount_minor for line in lines) > schemas.MAX_AMOUNT_MINOR:
        raise ApiError(
            422, f"the lines add up to more than {schemas.MAX_AMOUNT_MINOR}", field="lines"
        )
    return lines


@dataclass(frozen=True, slots=True)
class Buyer:
    id: int
    joined: bool
    tier_id: int | None
    language: str
    receipt_to: receipts.Recipient | None = None  # receipts.recipient_of the row read


def _record(
    session: Session,
    caller: Caller,
    clubs: ClubDirectory,
    body: dict[str, Any],
    lines: list[Line],
    occurred_at: dt.datetime,
    fingerprint: str,
    now: dt.datetime,
) -> tuple[dict[str, Any], bool]:
    # The hot path of the API: the club and its rules come from memory, the buyer is read as a
    # plain row (see tests/bench/purchases.py).
    program = clubs.by_id(session, caller.program_id) or views.club(session, caller)
    # Read with the ledger's lock (PostgreSQL's FOR UPDATE): the row then holds for the sale,
    # and record() reads it neither to lock it nor for the receipt.
    found = buyer(session, caller, program.country, body, lock=True)
    must_have_joined(found)
    recorded = purchases.record(
        session,
        program,
        found.id,
        transaction_id=body["transaction_id"],
        lines=lines,
        occurred_at=occurred_at,
        fingerprint=fingerprint,
        now=now,
        store=body.get("store") or caller.store,
        actor=caller.name,
        tier_id=found.tier_id,
        rules=clubs.rules(session, program.id),
        codes=body.get("coupon_codes"),
        locked=True,
        receipt_to=found.receipt_to,
    )
    purchase = recorded.purchase
    view = {
        "purchase_id": purchase.id,
        "transaction_id": purchase.transaction_id,
        "member_id": purchase.member_id,
        "store": purchase.store,
        "occurred_at": views.timestamp(purchase.occurred_at),
        "currency": purchase.currency,
        "total_minor": purchase.total_minor,
        "points": purchase.points,
        "balance": recorded.balance,
        "coupons": [
            views.coupon(held, found.language, now, program.currency) for held in recorded.coupons
        ],
    }
    if recorded.basket is not None:
        view["basket"] = views.basket(recorded.basket, found.id, found.language, program.currency)
    return view, recorded.replayed


def must_have_joined(found: Buyer | baskets.Shopper) -> None:
    """409 for a number that has not joined: discounts and points are for members."""
    if not found.joined:
        raise ApiError(
            409,
            f"member {found.id} has not joined the club: enrol them first",
            reason="not_joined",
        )


def phone_of(body: dict[str, Any], country: str) -> str:
    """The body's phone in E.164 (read in the club's `country`), or a 422."""
    phone = to_e164(body["phone"], country)
    if phone is None:
        raise ApiError(422, "not a phone number", field="phone")
    return phone


def unknown_phone(phone: str) -> ApiError:
    """The 404 for a number that is no member's: a sale never makes a member."""
    return ApiError(404, f"no member with phone {phone}", field="phone")


def buyer(
    session: Session, caller: Caller, country: str, body: dict[str, Any], *, lock: bool = False
) -> Buyer:
    """The member the sale is for (a phone read in the club's `country`). An unknown number is
    a 404: a sale never makes a member. `lock`: the row is read with ledger.lock_member's lock."""
    if "member_id" in body:
        member = views.member_by_id(session, caller, int(body["member_id"]), lock=lock)
        joined = member.joined_at is not None
        to = receipts.recipient_of(
            {column: getattr(member, column) for column in receipts.RECIPIENT_COLUMNS}
        )
        return Buyer(member.id, joined, member.tier_id, views.language_of(member), to)
    phone = phone_of(body, country)
    state = members.state_by_phone(session, caller.program_id, phone, lock=lock)
    if state is None or state.status == members.ERASED:
        raise unknown_phone(phone)
    language = state.language or locales.language_for_phone(phone)
    to = receipts.recipient_of(state.columns)
    return Buyer(state.id, state.joined, state.columns["tier_id"], language, to)


async def refund(call: Call) -> web.Response:
    """201 with the points taken back; the same refund again 200; a refund id reused with
    other contents 409; more than is left to refund 422 naming the line."""
    transaction_id: str = call.params["transaction_id"]
    body = call.body
    lines = None
    if "lines" in body:
        lines = [
            purchases.RefundLineIn(
                line_no=int(line["line"]),
                qty=int(line["qty"]) if "qty" in line else None,
                amount_minor=int(line["amount_minor"]) if "amount_minor" in line else None,
            )
            for line in body["lines"]
        ]

    def work(session: Session) -> tuple[dict[str, Any], bool]:
        program = views.club(session, call.caller)
        refunded = purchases.refund(
            session,
            program,
            transaction_id=transaction_id,
            refund_id=body["refund_id"],
            lines=lines,
            fingerprint=fingerprint({**body, "transaction_id": transaction_id}),
            now=call.now,
            actor=call.caller.name,
        )
        row = refunded.refund
        view = {
            "refund_id": row.refund_id,
            "transaction_id": transaction_id,
            "amount_minor": row.amount_minor,
            "points": row.points,
            "points_taken": row.points_taken,
            "balance": refunded.balance,
        }
        return view, refunded.replayed

    view, replayed = await call.run(work)
    return web.json_response(view, status=200 if replayed else 201)
