"""Consent's one home: the append-only log, grant and withdraw (which set the member's status),
and may_market with its SQL twin for planning; every way in and out goes through here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from store.database import plain_rows, plain_write
from store.members import links, members
from store.models import ConsentEvent, Member
from store.states import MemberStatus

MARKETING_SMS = "marketing_sms"
GRANT = "grant"
WITHDRAW = "withdraw"
# "page": the member's own page (bot.page), its leave button.
CHANNELS = frozenset({"sms", "pos", "import", "admin", "page"})
# What a grant and a withdrawal make of the member (an import writes GRANTED in its own rows).
GRANTED = MemberStatus.ACTIVE
WITHDRAWN = MemberStatus.STOPPED
_INSERT = insert(ConsentEvent.__table__)
# The wording ids of a withdrawal by SMS logged in the member's own words (their STOP or
# DELETE text, or the birthday that turned them away as under age: flows.conversation writes
# them as "keyword.<reason>" and "erase.<reason>"), which erasure empties (forget_own_words).
OWN_WORDS = ("keyword.", "erase.")


@dataclass(frozen=True, slots=True)
class Grant:
    """One member's grant, for record_many: the exact words shown and the evidence."""

    program_id: int
    member_id: int
    wording_id: str
    wording_language: str
    wording_text: str
    evidence: str
    created_at: dt.datetime


def _checked(action: str, channel: str) -> None:
    if action not in (GRANT, WITHDRAW):
        raise ValueError(f"unknown consent action {action!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}")


def _row(
    program_id: int,
    member_id: int,
    *,
    purpose: str,
    action: str,
    wording_id: str,
    wording_language: str,
    wording_text: str,
    channel: str,
    evidence: str,
    created_at: dt.datetime,
) -> dict[str, Any]:
    """A consent event's columns, as both record and record_many write them."""
    return {
        "program_id": program_id,
        "member_id": member_id,
        "purpose": purpose,
        "action": action,
        "wording_id": wording_id,
        "wording_language": wording_language,
        "wording_text": wording_text,
        "channel": channel,
        "evidence": evidence,
        "created_at": created_at,
    }


def record(
    session: Session,
    member: Member,
    *,
    action: str,
    wording_id: str,
    wording_language: str,
    wording_text: str,
    channel: str,
    evidence: str,
    now: dt.datetime,
    purpose: str = MARKETING_SMS,
) -> None:
    """Append a grant or a withdrawal, with the exact words shown and the evidence.

    A plain insert on the session's connection: the log is append-only and never read back
    within the turn that writes it."""
    _checked(action, channel)
    plain_write(
        session.connection(),
        _INSERT,
        _row(
            member.program_id,
            member.id,
            purpose=purpose,
            action=action,
            wording_id=wording_id,
            wording_language=wording_language,
            wording_text=wording_text,
            channel=channel,
            evidence=evidence,
            created_at=now,
        ),
    )


def grant(
    session: Session,
    member: Member,
    *,
    wording_id: str,
    wording_language: str,
    wording_text: str,
    channel: str,
    evidence: str,
    now: dt.datetime,
) -> None:
    """Marketing consent given (YES or START by SMS, the till, a re-join): the grant is logged
    with the exact words shown and the evidence, and the member becomes active (joined now if
    never before)."""
    record(
        session,
        member,
        action=GRANT,
        wording_id=wording_id,
        wording_language=wording_language,
        wording_text=wording_text,
        channel=channel,
        evidence=evidence,
        now=now,
    )
    members.set_status(member, GRANTED, now)


def withdraw(
    session: Session,
    member: Member,
    *,
    wording_id: str,
    wording_language: str,
    wording_text: str,
    channel: str,
    evidence: str,
    now: dt.datetime,
) -> None:
    """STOP, however it is said: the withdrawal is logged (in the member's own words) and the
    member is stopped. A stopped member stays stopped; erasure moves on from here. The
    member's page links end at once (a later START does not bring them back)."""
    record(
        session,
        member,
        action=WITHDRAW,
        wording_id=wording_id,
        wording_language=wording_language,
        wording_text=wording_text,
        channel=channel,
        evidence=evidence,
        now=now,
    )
    members.set_status(member, WITHDRAWN, now)
    links.end_all(session, [member.id], now)


def record_many(
    session: Session, grants: Sequence[Grant], *, channel: str, purpose: str = MARKETING_SMS
) -> None:
    """Append many grants in one executemany (an import's batch), as record appends one. The
    members are the caller's rows, inserted with status GRANTED (grant's rule, in bulk)."""
    _checked(GRANT, channel)
    if not grants:
        return
    session.connection().execute(
        _INSERT,
        [
            _row(
                grant.program_id,
                grant.member_id,
                purpose=purpose,
                action=GRANT,
                wording_id=grant.wording_id,
                wording_language=grant.wording_language,
                wording_text=grant.wording_text,
                channel=channel,
                evidence=grant.evidence,
                created_at=grant.created_at,
            )
            for grant in grants
        ],
    )


def forget_own_words(session: Session, member_id: int) -> None:
    """Erasure's one change to the log: a withdrawal written in the member's own words loses
    those words, as their texts lose their bodies (a STOP may say who they are, an under-age
    refusal's words are the child's birthday). What was done, when, on which channel and with
    which evidence stays, so the log still shows that consent ended. The club's own wording
    (every grant, the page's and the admin's withdrawals) is no one's personal data: kept."""
    events = ConsentEvent.__table__.c
    session.execute(
        update(ConsentEvent.__table__)
        .where(
            events.member_id == member_id,
            events.action == WITHDRAW,
            events.channel == "sms",
            or_(*(events.wording_id.startswith(prefix) for prefix in OWN_WORDS)),
        )
        .values(wording_text="")
    )


def history(session: Session, member_id: int) -> Sequence[ConsentEvent]:
    return session.scalars(
        select(ConsentEvent).where(ConsentEvent.member_id == member_id).order_by(ConsentEvent.id)
    ).all()


def may_market(session: Session, member: Member) -> bool:
    """May this member get marketing now? An active member whose latest marketing consent
    event is a grant. `may_market_clause` is the same rule in SQL, for planning."""
    return marketing_since(session, member) is not None


def marketing_since(session: Session, member: Member) -> dt.datetime | None:
    """When the member's current marketing consent was given, or None if they have none now
    (may_market's answer, with the grant's time for MYDATA and the export)."""
    if member.status != GRANTED:
        return None
    # Read on the connection with a statement built once (MYDATA asks on the SQLite writer's
    # hot path; the log is only ever written the same way, so there is nothing to flush first).
    latest = plain_rows(session.connection(), _LATEST, {"member_id": member.id})
    if not latest or latest[0][0] != GRANT:
        return None
    return latest[0][1]  # type: ignore[no-any-return]


_EVENTS = ConsentEvent.__table__
_MEMBERS = Member.__table__
_LATEST = (
    select(_EVENTS.c.action, _EVENTS.c.created_at)
    .where(_EVENTS.c.member_id == bindparam("member_id"), _EVENTS.c.purpose == MARKETING_SMS)
    .order_by(_EVENTS.c.id.desc())
    .limit(1)
)


def may_market_clause() -> ColumnElement[bool]:
    """may_market as SQL over `members`, for planning (never NULL, so it can be negated).

    The status is the log's summary, written in the same unit of work as the log's event and
    only here (grant, withdraw; an import's batch with record_many and GRANTED): the member is
    active exactly while their latest marketing event is a grant. So the planner reads the
    status, not the log: no probe of consent_events per member of a million-member campaign.
    tests/store/members/test_consent.py checks the two answers agree for every member state."""
    return _MEMBERS.c.status == GRANTED


def may_receive() -> ColumnElement[bool]:
    """The planner's question as SQL over `members`: may_market, and a number that is there and
    has not been flagged as undeliverable."""
    return and_(
        may_market_clause(),
        _MEMBERS.c.phone.is_not(None),
        _MEMBERS.c.undeliverable_at.is_(None),
    )
