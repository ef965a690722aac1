"""Joining: the one way a number becomes a member with consent (`join`: by SMS, at the till,
in the demo), and the till's enrolment with its confirmation SMS (`enrol_at_till`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import locales
from store import messages
from store.clubs import asking, programs
from store.loyalty import coupons, marks, perks
from store.members import consent, members
from store.members import profile as answers
from store.models import ConsentEvent, Member, ProfileQuestion, Program

# The words the till's new member gets by SMS, logged as the consent's wording.
WORDING = "enrol.confirmed"
# The first open question goes as an SMS of its own after the confirmation, so that each is one
# segment. It is due this much later: the sender hands many rows to the gateway at once, and
# the confirmation must reach the gateway first.
QUESTION_AFTER = dt.timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Enrolled:
    member: Member
    joined_now: bool  # False: the number was an active member already, nothing changed
    perks: perks.Perks | None


def enrol(
    session: Session,
    program: Program,
    phone: str,
    *,
    wording_id: str,
    wording_language: str,
    wording_text: str,
    channel: str,
    evidence: str,
    now: dt.datetime,
    language: str | None = None,
    first_name: str | None = None,
    referral: str | None = None,
    store: str | None = None,
    asks_birthday: bool = False,
) -> Enrolled:
    """Make the number an active member with the consent given (the exact wording sent to them
    and the evidence from the till), unless it already is one. `store`: the till's store (its
    API key's), the member's store if they have none yet. `asks_birthday`: the sign-up
    questions sent next ask the birthday (perks.on_joined: a referral waits for the age
    check)."""
    state = members.state_by_phone(session, program.id, phone, lock=True)
    if state is not None and state.status == members.ACTIVE:
        return Enrolled(members.attach(session, state), False, None)
    if state is None:
        member = members.create(session, program, phone, status=members.PENDING, now=now)
    else:
        member = members.attach(session, state)
    if language:
        member.language = language
    if first_name and not member.first_name:
        member.first_name = first_name
    if store and not member.store:
        # The store a member first joined at, kept: sign-ups per store count where people
        # joined, so joining again at another till (after STOP) does not move them. Marked
        # for segments (member_marks) with it.
        member.store = store
        marks.mark(session.connection(), program.id, member.id, [(marks.JOINED, store)], now)
    given = join(
        session,
        program,
        member,
        wording_id=wording_id,
        wording_language=wording_language,
        wording_text=wording_text,
        channel=channel,
        evidence=evidence,
        now=now,
        referral=referral,
        asks_birthday=asks_birthday,
    )
    return Enrolled(member, True, given)


def join(
    session: Session,
    program: Program,
    member: Member,
    *,
    wording_id: str,
    wording_language: str,
    wording_text: str,
    channel: str,
    evidence: str,
    now: dt.datetime,
    referral: str | None = None,
    templates: coupons.ClubTemplates | None = None,
    asks_birthday: bool = False,
) -> perks.Perks:
    """The member (pending, stopped or erased: not active) gives consent, by SMS (YES, START),
    at the till or in the demo: the grant is logged and the member is active (consent.grant),
    then what joining gives (perks.on_joined: the welcome coupon, the referral code, a
    friend's referral). `templates`: the club's coupon templates, if the caller keeps them in
    memory."""
    first_time = member.joined_at is None
    consent.grant(
        session,
        member,
        wording_id=wording_id,
        wording_language=wording_language,
        wording_text=wording_text,
        channel=channel,
        evidence=evidence,
        now=now,
    )
    return perks.on_joined(
        session,
        program,
        member,
        now,
        first_time=first_time,
        referral=referral,
        templates=templates,
        asks_birthday=asks_birthday,
    )


def enrol_at_till(
    session: Session,
    program: Program,
    phone: str,
    *,
    evidence: str,
    now: dt.datetime,
    language: str | None = None,
    first_name: str | None = None,
    referral: str | None = None,
    store: str | None = None,
) -> Enrolled:
    """A customer who ticked the box at the till (POST /api/v1/members) becomes a member, and a
    new member is sent, in the outbox and in this order, the consent confirmation (the wording
    logged with the consent) and then the first profile question they have not answered, each
    SMS one segment. Their conversation then waits on that question, so their reply by SMS
    answers it. `language`: the till's choice, else the member's own, else the number's."""
    known = members.state_by_phone(session, program.id, phone, lock=True)
    speaks = (
        language
        or (known.language if known is not None else None)
        or locales.language_for_phone(phone)
    )
    values = programs.sms_values(program)
    wording = locales.render(WORDING, speaks, **values)
    club_questions = programs.questions(session, program.id)
    enrolled = enrol(
        session,
        program,
        phone,
        wording_id=WORDING,
        wording_language=speaks,
        wording_text=wording,
        channel="pos",
        evidence=evidence,
        now=now,
        language=language,
        first_name=first_name,
        referral=referral,
        store=store,
        asks_birthday=any(q.kind == "birthday" for q in club_questions),
    )
    if not enrolled.joined_now:
        return enrolled
    member = enrolled.member
    question = _first_open(session, member, club_questions)
    member.flow_data = None
    if question is None:
        member.flow = member.step = None
    else:
        member.flow, member.step = answers.FLOW, answers.step(question.id)
    # A friend's referral waits for the birthday question, if it is still to come by SMS.
    perks.signed_up(session, program, member, now, in_questions=question is not None)
    member.updated_at = now
    session.flush()
    # One confirmation (and one question) per consent given, however the request is retried
    # or raced.
    key = f"enrol:{member.id}:{_grants(session, member.id)}"
    _queue(session, program, member, wording, now, key)
    if question is not None:
        message_id, params = asking.asked(question.kind, question.prompt, question.choices, speaks)
        text = locales.render(message_id, speaks, **values, **params)
        _queue(session, program, member, text, now, key + ":ask", after=QUESTION_AFTER)
    return enrolled


def _first_open(
    session: Session, member: Member, club_questions: Sequence[ProfileQuestion]
) -> ProfileQuestion | None:
    """The first of the club's questions the member has not answered: a name given at the
    till, or answers from an earlier membership, are not asked again."""
    answered = {answer.question_id for answer in answers.answers(session, member.id)}
    known = {"first_name": member.first_name, "birthday": member.birthday}
    return next((q for q in club_questions if q.id not in answered and not known.get(q.kind)), None)


def _queue(
    session: Session,
    program: Program,
    member: Member,
    text: str,
    now: dt.datetime,
    key: str,
    after: dt.timedelta = dt.timedelta(0),
) -> None:
    messages.enqueue(
        session,
        program_id=program.id,
        member_id=member.id,
        kind=messages.SYSTEM,
        to_number=member.phone,
        from_number=programs.numbers(session, program.id)[0],
        body=text,
        segments=locales.segments(text).segments,
        now=now,
        dedupe_key=key,
        send_after=now + after,
    )


def _grants(session: Session, member_id: int) -> int:
    return int(
        session.scalar(
            select(func.count(ConsentEvent.id)).where(
                ConsentEvent.member_id == member_id, ConsentEvent.action == consent.GRANT
            )
        )
        or 0
    )
