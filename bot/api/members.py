"""Members through the API: enrolment at checkout, look-up, coupons held and point adjustments."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import locales
from bot.api import schemas, views
from bot.api.operations import ApiError, Call
from bot.keys import CLUBS
from flows import profile
from flows.conversation import club_of, club_params
from flows.turn import Question, Reply, State, Turn
from store import coupons, enrolment, ledger, loyalty, members, messages, programs
from store import profile as answers
from store.apikeys import Caller
from store.consent import GRANT
from store.models import ConsentEvent, Member, Program
from store.phones import NOT_A_NUMBER, NOT_MOBILE, mobile_number, to_e164

WORDING = "enrol.confirmed"
_NOT_MOBILE = {
    NOT_A_NUMBER: "not a phone number",
    NOT_MOBILE: "not a mobile number: no SMS reaches it",
}
# A till's clock may run a little fast; a consent time further ahead is a mistake.
CLOCK_SKEW = dt.timedelta(minutes=5)


async def enrol(call: Call) -> web.Response:
    """201 with the new member (who gets the consent confirmation by SMS), or 200 with the
    member as they are when the number is an active member already (and no SMS)."""
    consent = call.body["consent"]
    evidence = consent["evidence"].strip()
    if not evidence:
        raise ApiError(422, "say what the till captured", field="consent.evidence")
    given_at = consent.get("given_at")
    if given_at is not None:
        when = schemas.parse_date_time(given_at)
        if when is None or when > call.now + CLOCK_SKEW:
            raise ApiError(422, "must not be in the future", field="consent.given_at")
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
    existing = members.state_by_phone(session, program.id, phone, lock=True)
    language = (
        body.get("language")
        or (existing.language if existing is not None else None)
        or locales.language_for_phone(phone)
    )
    params = club_params(program)
    wording = locales.render(WORDING, language, **params)
    enrolled = enrolment.enrol(
        session,
        program,
        phone,
        wording_id=WORDING,
        wording_language=language,
        wording_text=wording,
        channel="pos",
        evidence=evidence,
        now=now,
        language=body.get("language"),
        first_name=(body.get("first_name") or "").strip() or None,
        referral=body.get("referral_code"),
        store=caller.store,
        asks_birthday=any(q.kind == "birthday" for q in programs.questions(session, program.id)),
    )
    member = enrolled.member
    if not enrolled.joined_now:
        return views.member(session, program, member, now), False
    sms = wording
    # The member's reply by SMS answers the first profile question, as after YES to JOIN.
    asked = _first_unanswered(session, program, member, language, now)
    if asked is None:
        member.flow = member.step = member.flow_data = None
    else:
        state, reply = asked
        member.flow, member.step, member.flow_data = state.flow, state.step, None
        sms += " " + locales.render(reply.id, language, **{**params, **reply.params})
    # A friend's referral waits for the birthday question, if it is still to come by SMS.
    loyalty.signed_up(session, program, member, now, in_questions=asked is not None)
    member.updated_at = now
    session.flush()
    messages.enqueue(
        session,
        program_id=program.id,
        member_id=member.id,
        kind=messages.SYSTEM,
        to_number=phone,
        from_number=programs.numbers(session, program.id)[0],
        body=sms,
        segments=locales.segments(sms).segments,
        now=now,
        # One confirmation per consent given, however the request is retried or raced.
        dedupe_key=f"enrol:{member.id}:{_grants(session, member.id)}",
    )
    return views.member(session, program, member, now), True


def _first_unanswered(
    session: Session, program: Program, member: Member, language: str, now: dt.datetime
) -> tuple[State, Reply] | None:
    """The state and question reply for the first question the member has not answered (a
    name given at the till, or answers from an earlier membership, are not asked again)."""
    questions = tuple(
        Question(q.id, q.key, q.kind, q.prompt or {}, tuple(q.choices or ()))
        for q in programs.questions(session, program.id)
    )
    if not questions:
        return None
    turn = Turn(
        text="",
        intent=None,
        member=None,
        club=club_of(program),
        language=language,
        today=now.astimezone(ZoneInfo(program.timezone)).date(),
        questions=questions,
    )
    answered = {answer.question_id for answer in answers.answers(session, member.id)}
    known = {"first_name": member.first_name, "birthday": member.birthday}
    question = profile.first_question(turn, after=None)
    while question is not None and (question.id in answered or known.get(question.kind)):
        question = profile.first_question(turn, after=question)
    if question is None:
        return None
    return profile.state_for(question), profile.ask(question, turn)


def _grants(session: Session, member_id: int) -> int:
    return int(
        session.scalar(
            select(func.count(ConsentEvent.id)).where(
                ConsentEvent.member_id == member_id, ConsentEvent.action == GRANT
            )
        )
        or 0
    )


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
