"""Baskets priced for the till: each line's discount and the coupons that apply, nothing
redeemed (store.loyalty.offers has the rules)."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

import locales
from bot.api import purchases, views
from bot.api.operations import Call, not_found
from bot.keys import DB
from store.clubs.apikeys import Caller
from store.loyalty import baskets, offers
from store.loyalty.earning import Line


async def evaluate(call: Call) -> web.Response:
    """200 with the basket priced: the same basket, codes and instant always price the same."""
    body = call.body
    lines = purchases.lines_of(body)
    work = functools.partial(_evaluate, caller=call.caller, body=body, lines=lines, call=call)
    # A few rows read by their indexes (Database.lookup): not in the writer's queue, so not
    # through the club directory either, which belongs to the writer's thread.
    return web.json_response(await call.request.app[DB].lookup(work))


def _evaluate(
    conn: Connection,
    caller: Caller,
    body: dict[str, Any],
    lines: list[Line],
    call: Call,
) -> dict[str, Any]:
    # One plain read where it can be (the member with their tier and the coupons): this runs
    # for every basket a till rings up (tests/bench/baskets.py). The club's currency and
    # country come with the key.
    codes: list[str] = body.get("coupon_codes", [])
    member_id = None
    tier = None
    language = locales.DEFAULT_LANGUAGE
    if "member_id" in body or "phone" in body:
        shopper, given = _quote(conn, caller, body, codes)
        member_id, tier = shopper.id, shopper.tier
        language = shopper.language or locales.language_for_phone(shopper.phone or "")
    else:
        given = baskets.given(conn, caller.program_id, codes)
    priced = baskets.priced(lines, given, member_id=member_id, tier=tier, now=call.now)
    return views.basket(priced, member_id, language, caller.currency)


def _quote(
    conn: Connection, caller: Caller, body: dict[str, Any], codes: list[str]
) -> tuple[baskets.Shopper, list[offers.Given]]:
    """The member the basket is for (by id or by number) and the codes' coupons; 404 if no
    such member, 409 if not joined."""
    if "member_id" in body:
        member_id = int(body["member_id"])
        found, given = baskets.quote(conn, caller.program_id, codes, member_id=member_id)
        if found is None:
            raise not_found("member", member_id)
    else:
        phone = purchases.phone_of(body, caller.country)
        found, given = baskets.quote(conn, caller.program_id, codes, phone=phone)
        if found is None:
            raise purchases.unknown_phone(phone)
    purchases.must_have_joined(found)
    return found, given
