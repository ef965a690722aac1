"""Coupons at the till: check one's state, and redeem it exactly once however many tills try."""

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
