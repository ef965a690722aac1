"""Coupons at the till: check one's state, redeem it exactly once however many tills try, and
give a member one as a gift."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.api import views
from bot.api.operations import Call, not_found
from store.loyalty import coupons


async def show(call: Call) -> web.Response:
    """The coupon and its state (valid, redeemed, expired, not_yet_valid)."""
    code: str = call.params["code"]

    def work(session: Session) -> dict[str, Any]:
        held = coupons.find(session, call.caller.program_id, code)
        if held is None:
            raise not_found("coupon", code)
        language = views.coupon_language(session, held)
        return views.coupon(held, language, call.now, views.club(session, call.caller).currency)

    return web.json_response(await call.run(work))


async def give(call: Call) -> web.Response:
    """201 with the coupon given to the member as a gift (store.loyalty.coupons.give), by the
    key's name; the gift_received journey, if on, tells the member."""
    template: str = call.body["template"]

    def work(session: Session) -> dict[str, Any]:
        program = views.club(session, call.caller)
        row = views.member_by_id(session, call.caller, call.params["member_id"])
        held = coupons.give(session, program, row.id, template, call.caller.name, call.now)
        return views.coupon(held, views.language_of(row), call.now, program.currency)

    return web.json_response(await call.run(work), status=201)


async def redeem(call: Call) -> web.Response:
    """200 with the redeemed coupon; 409 (reason coupon_redeemed, coupon_expired, ...) when it
    can't be: of two tills redeeming one code at once, exactly one gets the 200."""
    code: str = call.params["code"]
    ref = call.body.get("transaction_id")

    def work(session: Session) -> dict[str, Any]:
        held = coupons.redeem(
            session, call.caller.program_id, code, call.now, by=call.caller.name, ref=ref
        )
        language = views.coupon_language(session, held)
        return views.coupon(held, language, call.now, views.club(session, call.caller).currency)

    return web.json_response(await call.run(work))
