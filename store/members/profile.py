"""A member's profile: the club's questions as they are asked, and the answers given."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

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


def in_language(texts: object, language: str) -> str:
    """The club's wording (a question or a choice's label, per language) for a member of this
    language: theirs, else English, else the first the club wrote."""
    if isinstance(texts, str):
        return texts
    if isinstance(texts, Mapping) and texts:
        return texts.get(language) or texts.get("en") or next(iter(texts.values()))
    return ""


def wording_language(texts: object, language: str) -> str | None:
    """Which of the club's languages in_language takes for a member of this language."""
    if not isinstance(texts, Mapping) or not texts:
        return None
    if texts.get(language):
        return language
    return "en" if texts.get("en") else next(iter(texts))


def asked(
    kind: str,
    prompt: Mapping[str, str] | None,
    choices: Sequence[Mapping[str, Any]] | None,
    language: str,
) -> tuple[str, dict[str, str]]:
    """The message id and its values that ask a question of this kind in the language: one
    rule for the SMS conversation (flows.profile), the till's enrolment and the check of the
    club's wording (store.clubs.programs)."""
    if kind in ("first_name", "birthday"):
        return f"profile.ask.{kind}", {}
    question = in_language(prompt, language)
    if kind in ("choice", "multichoice"):
        options = " ".join(
            f"{i} {in_language(choice['label'], language)}"
            for i, choice in enumerate(choices or (), start=1)
        )
        return f"profile.ask.{kind}", {"question": question, "options": options}
    return "profile.ask.text", {"question": question}


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
