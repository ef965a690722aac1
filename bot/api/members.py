"""Members through the API: enrolment at checkout, look-up, coupons held and point adjustments."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.api import schemas, views
from bot.api.operations import ApiError, Call
from bot.keys import CLUBS
from store.clubs.apikeys import Caller
from store.loyalty import coupons, ledger
from store.members import enrolment
from store.members.phones import NOT_A_NUMBER, NOT_MOBILE, mobile_number, to_e164

_NOT_MOBILE = {
    NOT_A_NUMBER: "not a phone number",
    NOT_MOBILE: "not a mobile number: no SMS reaches it",
}


async def enrol(call: Call) -> web.Response:
    """201 with the new member (who gets the consent confirmation by SMS, then the first open
    profile question: members.enrolment.enrol_at_till), or 200 with the member as they are when
    the number is an active member already (and no SMS)."""
    consent = call.body["consent"]
    evidence = consent["evidence"].strip()
    if not evidence:
        raise ApiError(422, "say what the till captured", field="consent.evidence")
    given_at = consent.get("given_at")
    if given_at is not None:
        when = schemas.past_moment(given_at, call.now)
        if when is None:
            raise ApiError(422, schemas.PAST_MOMENT, field="consent.given_at")
        evidence += f" (given {views.timestamp(when)})"
    work = functools.partial(
        _enrol,
        caller=call.caller,
        body=call.body,
        evidence=f"{call.caller.name}: {evidence}",
        now=call.now,
    )
    view, joined = await call.run(work)
    return web.json_response(view, status=201 if joined else 200)


def _enrol(
    session: Session, caller: Caller, body: dict[str, Any], evidence: str, now: dt.datetime
) -> tuple[dict[str, Any], bool]:
    program = views.club(session, caller)
    # Joining takes a mobile number of its country, as an import does: the consent confirmation
    # goes by SMS, and "12345" or a landline would hold a member no text reaches.
    phone, why = mobile_number(body["phone"], program.country)
    if phone is None:
        raise ApiError(422, _NOT_MOBILE.get(why or "", "not a phone number"), field="phone")
    enrolled = enrolment.enrol_at_till(
        session,
        program,
        phone,
        evidence=evidence,
        now=now,
        language=body.get("language"),
        first_name=(body.get("first_name") or "").strip() or None,
        referral=body.get("referral_code"),
        store=caller.store,
    )
    return views.member(session, program, enrolled.member, now), enrolled.joined_now


async def find(call: Call) -> web.Response:
    """The member with this phone number, in any common format."""
    raw = call.params["phone"]

    def work(session: Session) -> dict[str, Any]:
        program = views.club(session, call.caller)
        phone = to_e164(raw, program.country)
        if phone is None:
            raise ApiError(422, "not a phone number", field="phone")
        row = views.member_by_phone(session, call.caller, phone)
        if row is None:
            raise ApiError(404, f"no member with phone {phone}", field="phone")
        return views.member(session, program, row, call.now)

    return web.json_response(await call.run(work))


async def show(call: Call) -> web.Response:
    clubs = call.request.app[CLUBS]

    def work(session: Session) -> dict[str, Any]:
        program = views.club(session, call.caller)
        row = views.member_by_id(session, call.caller, call.params["member_id"])
        cards = clubs.rules(session, program.id).cards
        return views.member(session, program, row, call.now, cards)

    return web.json_response(await call.run(work))


async def member_coupons(call: Call) -> web.Response:
    """The member's coupons that can be used now, soonest to end first."""

    def work(session: Session) -> dict[str, Any]:
        row = views.member_by_id(session, call.caller, call.params["member_id"])
        language = views.language_of(row)
        held = coupons.valid_for(session, row.id, call.now)
        currency = views.club(session, call.caller).currency
        return {"coupons": [views.coupon(h, language, call.now, currency) for h in held]}

    return web.json_response(await call.run(work))


async def adjust(call: Call) -> web.Response:
    """Staff add or take points with a reason; taking more than the balance is a 409."""
    points: int = int(call.body["points"])

    def work(session: Session) -> dict[str, Any]:
        program = views.club(session, call.caller)
        row = views.member_by_id(session, call.caller, call.params["member_id"])
        balance = ledger.adjust(
            session,
            program,
            row,
            points,
            call.now,
            reason=call.body["reason"],
            actor=call.caller.name,
        )
        return {"member_id": row.id, "points": points, "balance": balance}

    return web.json_response(await call.run(work), status=201)
