"""Consent as an append-only log; whether a member may get marketing is derived from it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

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
    session.connection().execute(
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
    """Append many grants in one executemany (an import's batch), as record appends one."""
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


def history(session: Session, member_id: int) -> Sequence[ConsentEvent]:
    return session.scalars(
        select(ConsentEvent).where(ConsentEvent.member_id == member_id).order_by(ConsentEvent.id)
    ).all()


def marketing_since(session: Session, member: Member) -> dt.datetime | None:
    """When the member's current marketing consent was given, or None if they have none now.

    The one question the planner and the sender both ask: an active member whose latest
    consent event is a grant.
    """
    if member.status != MemberStatus.ACTIVE:
        return None
    # Read on the connection with a statement built once (MYDATA asks on the SQLite writer's
    # hot path; the log is only ever written the same way, so there is nothing to flush first).
    latest = session.connection().execute(_LATEST, {"member_id": member.id}).first()
    if latest is None or latest.action != GRANT:
        return None
    return latest.created_at


_EVENTS = ConsentEvent.__table__
_LATEST = (
    select(_EVENTS.c.action, _EVENTS.c.created_at)
    .where(_EVENTS.c.member_id == bindparam("member_id"), _EVENTS.c.purpose == MARKETING_SMS)
    .order_by(_EVENTS.c.id.desc())
    .limit(1)
)
