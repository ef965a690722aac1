"""A member's profile answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Member, ProfileAnswer


def save_answer(
    session: Session, member: Member, question_id: int, value: Sequence[str], now: dt.datetime
) -> None:
    """Record (or replace) the member's answer to one question."""
    existing = session.scalar(
        select(ProfileAnswer).where(
            ProfileAnswer.member_id == member.id, ProfileAnswer.question_id == question_id
        )
    )
    if existing is None:
        session.add(
            ProfileAnswer(
                program_id=member.program_id,
                member_id=member.id,
                question_id=question_id,
                value=list(value),
                answered_at=now,
            )
        )
    else:
        existing.value = list(value)
        existing.answered_at = now


def answers(session: Session, member_id: int) -> Sequence[ProfileAnswer]:
    return session.scalars(
        select(ProfileAnswer).where(ProfileAnswer.member_id == member_id).order_by(ProfileAnswer.id)
    ).all()


def answer_count(session: Session, member_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ProfileAnswer)
            .where(ProfileAnswer.member_id == member_id)
        )
        or 0
    )
