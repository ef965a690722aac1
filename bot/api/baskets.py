"""Baskets priced for the till: each line's discount and the coupons that apply, nothing
redeemed (store.loyalty.offers has the rules)."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

import locales
from bot.api import purchases, views
from bot.api.operations import REALM, ApiError, Call
from bot.keys import DB
from store.clubs.apikeys import Caller
from store.loyalty import baskets
from store.loyalty.earning import Line
from store.models import Program


async def evaluate(call: Call) -> web.Response:
    """200 with the basket priced: the same basket, codes and instant always price the same."""
    body = call.body
    lines = purchases.lines_of(body)
    work = functools.partial(_evaluate, caller=call.caller, body=body, lines=lines, call=call)
    # Only reads: on SQLite it runs on a reader beside the writer, not in the writer's queue
    # (so not through the club directory either, which belongs to the writer's thread).
    return web.json_response(await call.request.app[DB].read(work))


def _evaluate(
    session: Session,
    caller: Caller,
    body: dict[str, Any],
    lines: list[Line],
    call: Call,
) -> dict[str, Any]:
    # Plain reads throughout: this runs for every basket a till rings up (tests/bench/baskets.py).
    club = session.connection().execute(_CLUB, {"id": caller.program_id}).first()
    if club is None:  # the club was deleted after the key was cached
        raise ApiError(401, "the key's club no longer exists", headers={"WWW-Authenticate": REALM})
    currency, country = club
    member_id = None
    tier = None
    language = locales.DEFAULT_LANGUAGE
    if "member_id" in body or "phone" in body:
        buyer = purchases.buyer(session, caller, country, body)
        purchases.must_have_joined(buyer)
        member_id, language = buyer.id, buyer.language
        tier = baskets.tier_read(session, caller.program_id, buyer.tier_id)
    priced = baskets.price(
        session,
        caller.program_id,
        lines,
        body.get("coupon_codes", []),
        member_id=member_id,
        tier=tier,
        now=call.now,
    )
    return views.basket(priced, member_id, language, currency)


_PROGRAMS = Program.__table__
_CLUB = select(_PROGRAMS.c.currency, _PROGRAMS.c.country).where(_PROGRAMS.c.id == bindparam("id"))
