"""Consent as an append-only log; whether a member may get marketing is derived from it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from store.models import ConsentEvent, Member

MARKETING_SMS = "marketing_sms"
GRANT = "grant"
WITHDRAW = "withdraw"
CHANNELS = frozenset({"sms", "pos", "import", "admin"})
_INSERT = insert(ConsentEvent.__table__)


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
    if action not in (GRANT, WITHDRAW):
        raise ValueError(f"unknown consent action {action!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}")
    session.connection().execute(
        _INSERT,
        {
            "program_id": member.program_id,
            "member_id": member.id,
            "purpose": purpose,
            "action": action,
            "wording_id": wording_id,
            "wording_language": wording_language,
            "wording_text": wording_text,
            "channel": channel,
            "evidence": evidence,
            "created_at": now,
        },
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
    if member.status != "active":
        return None
    latest = session.execute(
        select(ConsentEvent.action, ConsentEvent.created_at)
        .where(ConsentEvent.member_id == member.id, ConsentEvent.purpose == MARKETING_SMS)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.action != GRANT:
        return None
    return latest.created_at
