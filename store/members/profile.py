"""A member's profile: where they are in the club's questions, their age, and the answers given."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import bindparam, delete, func, insert, select, union_all
from sqlalchemy.orm import Session

from store.database import plain_rows
from store.models import AnswerChoice, Member, ProfileAnswer, ProfilePrompt

_CHOICES = AnswerChoice.__table__

# Member.flow while the member answers the profile questions; Member.step names the question.
FLOW = "profile"
# Member.flow while a member goes through their answers again (PROFIL / PROFILE).
EDIT_FLOW = "profile_edit"
# Member.flow while a question the club added after they joined waits for their answer.
NEW_FLOW = "profile_new"
# The kinds a club adds that are put to members who joined before them. The first name and
# birthday (kept on the member) belong to the sign-up: a member without them skipped them.
ADDED_KINDS = ("choice", "multichoice", "text")
# A birthday a member changed may change again after this long (birthday-coupon abuse).
BIRTHDAY_LOCK = dt.timedelta(days=365)


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
    session: Session,
    member: Member,
    question_id: int,
    value: Sequence[str],
    now: dt.datetime,
    *,
    free_text: bool = False,
) -> None:
    """Record (or replace) the member's answer to one question. The keys of a choice answer
    are kept as rows too (answer_choices, what segments read); a text answer's are not."""
    existing = session.scalar(
        select(ProfileAnswer).where(
            ProfileAnswer.member_id == member.id, ProfileAnswer.question_id == question_id
        )
    )
    if existing is None:
        existing = ProfileAnswer(
            program_id=member.program_id,
            member_id=member.id,
            question_id=question_id,
            value=list(value),
            answered_at=now,
        )
        session.add(existing)
        session.flush()  # the rows below name it
    else:
        existing.value = list(value)
        existing.answered_at = now
        session.execute(delete(_CHOICES).where(_CHOICES.c.answer_id == existing.id))
    if free_text:
        return
    keys = dict.fromkeys(value)  # once each, in the order given
    if keys:
        session.execute(
            insert(_CHOICES),
            [
                {
                    "question_id": question_id,
                    "choice": key,
                    "member_id": member.id,
                    "answer_id": existing.id,
                }
                for key in keys
            ],
        )


def answers(session: Session, member_id: int) -> Sequence[ProfileAnswer]:
    return session.scalars(
        select(ProfileAnswer).where(ProfileAnswer.member_id == member_id).order_by(ProfileAnswer.id)
    ).all()


def answer_count(session: Session, member_id: int) -> int:
    session.flush()  # as the ORM's autoflush would: an answer added in this turn counts
    ((count,),) = plain_rows(session.connection(), _ANSWER_COUNT, {"member_id": member_id})
    return int(count)


_ANSWER_COUNT = (
    select(func.count())
    .select_from(ProfileAnswer)
    .where(ProfileAnswer.member_id == bindparam("member_id"))
)


def may_change_birthday(changed_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a member whose birthday last changed at `changed_at` may change it now: once
    in BIRTHDAY_LOCK (the first birthday given is no change)."""
    return changed_at is None or now - changed_at >= BIRTHDAY_LOCK


def set_birthday(member: Member, birthday: dt.date, now: dt.datetime) -> bool:
    """Give the member this birthday, unless it moves one they changed within a year: False,
    and the birthday they have is kept. The one rule for every path that sets a birthday (the
    SMS sign-up and PROFIL; an import only creates members). The first birthday given is no
    change; a change is stamped on members.birthday_changed_at."""
    if member.birthday == birthday:
        return True
    if member.birthday is None:
        member.birthday = birthday
        return True
    if not may_change_birthday(member.birthday_changed_at, now):
        return False
    member.birthday = birthday
    member.birthday_changed_at = now
    return True


def answered(session: Session, member_id: int) -> dict[int, list[str]]:
    """The member's answers by question id (what PROFIL shows as the current answer)."""
    return {
        question_id: list(value)
        for question_id, value in session.execute(
            select(ProfileAnswer.question_id, ProfileAnswer.value).where(
                ProfileAnswer.member_id == member_id
            )
        )
    }


# The questions a member answered or was put (and maybe skipped): one statement, each half a
# range of a (member_id, question_id) unique index; plain binds, so compiled once.
_SETTLED = union_all(
    select(ProfileAnswer.question_id).where(ProfileAnswer.member_id == bindparam("member_id")),
    select(ProfilePrompt.question_id).where(ProfilePrompt.member_id == bindparam("member_id")),
)


def first_unasked(session: Session, member_id: int, question_ids: Sequence[int]) -> int | None:
    """The first of `question_ids` (the club's added questions, in its order) that the member
    has neither answered nor been put (at sign-up, by PROFIL or as an added question): one
    indexed query, made only for an active member between flows (flows.profile.may_put).
    Read through the session's connection: the turn's own changes are flushed by then."""
    if not question_ids:
        return None
    settled = set(session.connection().execute(_SETTLED, {"member_id": member_id}).scalars())
    return next((q for q in question_ids if q not in settled), None)


def put(session: Session, member: Member, question_id: int, now: dt.datetime) -> None:
    """Record that an added question was put to the member (asked once, never again)."""
    session.add(
        ProfilePrompt(
            program_id=member.program_id,
            member_id=member.id,
            question_id=question_id,
            asked_at=now,
        )
    )


def skipped(session: Session, member: Member, question_id: int, now: dt.datetime) -> None:
    """The member skipped a question they had not answered (at sign-up, PROFIL or when it was
    put to them): remembered, so an added question is never put to them again."""
    existing = session.scalar(
        select(ProfilePrompt).where(
            ProfilePrompt.member_id == member.id, ProfilePrompt.question_id == question_id
        )
    )
    if existing is None:
        session.add(
            ProfilePrompt(
                program_id=member.program_id,
                member_id=member.id,
                question_id=question_id,
                asked_at=now,
                skipped_at=now,
            )
        )
    elif existing.skipped_at is None:
        existing.skipped_at = now
