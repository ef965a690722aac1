"""Joining with consent given somewhere other than by SMS: at the till (the API) or an import."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from store import consent, loyalty, members
from store.models import Member, Program


@dataclass(frozen=True, slots=True)
class Enrolled:
    member: Member
    joined_now: bool  # False: the number was an active member already, nothing changed
    perks: loyalty.Perks | None


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
    questions sent next ask the birthday (loyalty.on_joined: a referral waits for the age
    check)."""
    state = members.state_by_phone(session, program.id, phone, lock=True)
    if state is not None and state.status == members.ACTIVE:
        return Enrolled(members.attach(session, state), False, None)
    if state is None:
        member = members.create(session, program, phone, status=members.PENDING, now=now)
    else:
        member = members.attach(session, state)
    first_time = member.joined_at is None
    if language:
        member.language = language
    if first_name and not member.first_name:
        member.first_name = first_name
    if store and not member.store:
        # The store a member first joined at, kept: sign-ups per store count where people
        # joined, so joining again at another till (after STOP) does not move them.
        member.store = store
    consent.record(
        session,
        member,
        action=consent.GRANT,
        wording_id=wording_id,
        wording_language=wording_language,
        wording_text=wording_text,
        channel=channel,
        evidence=evidence,
        now=now,
    )
    members.set_status(member, members.ACTIVE, now)
    perks = loyalty.on_joined(
        session,
        program,
        member,
        now,
        first_time=first_time,
        referral=referral,
        asks_birthday=asks_birthday,
    )
    return Enrolled(member, True, perks)
