"""A member's profile: where they are in the club's questions, their age, and the answers given."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Member, ProfileAnswer

# Member.flow while the member answers the profile questions; Member.step names the question.
FLOW = "profile"


def step(question_id: int) -> str:
    """Member.step while the member's next text answers this question."""
    return f"q{question_id}"


def age_on(birthday: dt.date, day: dt.date) -> int:
    """How old someone born on `birthday` is on `day`: a year older on the birthday itself, and
    someone born on 29 February is a year older on 1 March in a year without one."""
    before_birthday = (day.month, day.day) < (birthday.month, birthday.day)
    return day.year - birthday.year - int(before_birthday)


def too_young(birthday: dt.date, day: dt.date, min_age: int) -> bool:
    """Under the club's minimum age on `day`: the one rule for the SMS sign-up and the import."""
    return age_on(birthday, day) < min_age


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
