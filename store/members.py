"""Members: found by phone, created on JOIN or STOP, and erased on request."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from store.models import InboundMessage, Member, OutboxMessage, ProfileAnswer, Program

PENDING = "pending"
ACTIVE = "active"
STOPPED = "stopped"
ERASED = "erased"
STATUSES = frozenset({PENDING, ACTIVE, STOPPED, ERASED})


def hash_phone(program: Program, phone: str) -> str:
    """A salted hash of the number: kept after erasure so the number stays suppressed."""
    return hashlib.sha256(f"{program.hash_salt}:{phone}".encode()).hexdigest()


def by_phone(session: Session, program_id: int, phone: str, *, lock: bool = False) -> Member | None:
    """The member with this number; `lock` holds the row for the turn (FOR UPDATE on
    PostgreSQL; on SQLite the single writer already serialises turns)."""
    query = select(Member).where(Member.program_id == program_id, Member.phone == phone)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def was_erased(session: Session, program: Program, phone: str) -> bool:
    """Whether this number asked to be erased: an import must not bring it back."""
    return (
        session.scalar(
            select(Member.id).where(
                Member.program_id == program.id,
                Member.phone_hash == hash_phone(program, phone),
                Member.status == ERASED,
            )
        )
        is not None
    )


def create(
    session: Session, program: Program, phone: str, *, status: str, now: dt.datetime
) -> Member:
    member = Member(
        program_id=program.id,
        phone=phone,
        phone_hash=hash_phone(program, phone),
        status=status,
        created_at=now,
        updated_at=now,
    )
    session.add(member)
    session.flush()
    return member


def set_status(member: Member, status: str, now: dt.datetime) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown member status {status!r}")
    member.status = status
    member.updated_at = now
    if status == ACTIVE and member.joined_at is None:
        member.joined_at = now


def erase(session: Session, member: Member, now: dt.datetime) -> None:
    """Remove everything personal; figures (counts, consent history) stay, anonymous."""
    session.execute(delete(ProfileAnswer).where(ProfileAnswer.member_id == member.id))
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.member_id == member.id)
        .values(from_number=None, body=None, reply=None)
    )
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.member_id == member.id)
        .values(to_number=None, body=None)
    )
    member.phone = None
    member.first_name = None
    member.birthday = None
    member.language = None
    member.flow = None
    member.step = None
    member.flow_data = None
    set_status(member, ERASED, now)


def discard(session: Session, member: Member) -> None:
    """Forget a member that never consented (said NO to joining): no row is left."""
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.member_id == member.id)
        .values(from_number=None, body=None, member_id=None)
    )
    session.delete(member)
    session.flush()
