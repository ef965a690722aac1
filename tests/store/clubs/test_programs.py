"""Clubs: a profile question removed from a club, and questions that must fit one SMS."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

import locales
from locales.sms import over_one
from store.clubs import asking, programs
from store.database import Database
from store.errors import NotFound
from store.members import members, profile
from store.models import Member, Program
from store.outreach import segments
from tests.conftest import CLUB_NUMBER, create_club
from tests.store.loyalty_helpers import error_of

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _members(session: Session, club: int) -> list[Member]:
    return list(session.scalars(select(Member).where(Member.program_id == club)))


def _question_id(session: Session, club: int, key: str) -> int:
    return next(q.id for q in programs.questions(session, club) if q.key == key)


class TestQuestionRemoval:
    async def test_a_removed_question_is_no_longer_asked_and_its_answers_stay(
        self, db: Database
    ) -> None:
        club = await create_club(db)

        def work(session: Session) -> tuple:
            program = programs.get(session, club)
            question = _question_id(session, club, "activities")
            for phone in ("+4790000001", "+4790000002"):
                member = members.create(session, program, phone, status=members.ACTIVE, now=NOW)
                profile.save_answer(session, member, question, ["running"], NOW)
            session.flush()
            use = programs.question_use(session, club, question)
            programs.remove_question(session, club, question)
            again = error_of(lambda: programs.remove_question(session, club, question))
            return (
                use,
                [q.key for q in programs.questions(session, club)],
                sum(len(profile.answers(session, m.id)) for m in _members(session, club)),
                again,
            )

        use, keys, answers, again = await db.run(work)
        assert use == programs.QuestionUse(answers=2, segments=[])
        assert keys == ["first_name", "birthday"]
        assert answers == 2
        assert isinstance(again, NotFound)

    async def test_the_first_name_and_birthday_stay(self, db: Database) -> None:
        club = await create_club(db)

        def work(session: Session) -> list[Exception | None]:
            return [
                error_of(
                    lambda key=key: programs.remove_question(
                        session, club, _question_id(session, club, key)
                    )
                )
                for key in ("first_name", "birthday")
            ]

        refused = await db.run(work)
        assert all(isinstance(e, programs.InvalidSettings) for e in refused)
        assert [list(e.problems) for e in refused] == [["kind"], ["kind"]]
        keys = await db.run(lambda s: [q.key for q in programs.questions(s, club)])
        assert keys == ["first_name", "birthday", "activities"]

    async def test_a_question_a_saved_segment_filters_on_stays(self, db: Database) -> None:
        """Refused while a segment picks members by its answers, named; removed once the
        segment is gone."""
        club = await create_club(db)
        runs = {"field": "answer", "question": "activities", "op": "in", "value": ["running"]}
        swedes = {"field": "language", "op": "in", "value": ["sv"]}

        def work(session: Session) -> tuple:
            program = programs.get(session, club)
            segments.save(session, program, "Ikke løpere", {"all": [{"not": runs}]}, NOW)
            segments.save(session, program, "Svenske", swedes, NOW)
            question = _question_id(session, club, "activities")
            use = programs.question_use(session, club, question)
            refused = error_of(lambda: programs.remove_question(session, club, question))
            segments.delete(session, club, "Ikke løpere")
            programs.remove_question(session, club, question)
            return use.segments, refused

        used_by, refused = await db.run(work)
        assert used_by == ["Ikke løpere"]
        assert isinstance(refused, programs.InvalidSettings)
        assert "Ikke løpere" in refused.problems["segments"]

    async def test_another_clubs_question_is_not_found(self, db: Database) -> None:
        await create_club(db)
        theirs = await create_club(db, name="Kafé Kari", numbers=["3030"])
        ours = await db.run(lambda s: programs.by_number(s, CLUB_NUMBER).id)

        def work(session: Session) -> list[Exception | None]:
            question = _question_id(session, theirs, "activities")
            return [
                error_of(lambda: programs.question_use(session, ours, question)),
                error_of(lambda: programs.remove_question(session, ours, question)),
            ]

        assert all(isinstance(e, NotFound) for e in await db.run(work))
        keys = await db.run(lambda s: [q.key for q in programs.questions(s, theirs)])
        assert "activities" in keys


# --- a question asked by SMS fits one segment -------------------------------------------------

LONG_CLUB = "Torshov Sport & Fritid AS"  # 25 characters: the longest the product promises


def nine_choices() -> list[dict[str, Any]]:
    return [{"key": f"c{i}", "label": {"nb": chr(64 + i), "en": chr(96 + i)}} for i in range(1, 10)]


def sms_as_asked(club: str, kind: str, prompt: dict[str, str], choices: Any) -> list[str]:
    """Every SMS the question can be in: in each language, after the welcome that names the
    club (it is the first question) or after the thanks for a long first name."""
    texts = []
    for language in locales.LANGUAGES:
        message_id, params = asking.asked(kind, prompt, choices, language)
        asked = locales.render(message_id, language, **params)
        for lead in (
            locales.render("join.welcome", language, club=club),
            locales.render("profile.thanks", language, first_name=programs.LONG_FIRST_NAME),
        ):
            texts.append(f"{lead} {asked}")
    return texts


def add(
    session: Session, program: Program, kind: str, prompt: dict[str, str], choices: Any
) -> Exception | None:
    """Add the question in a savepoint rolled back: what add_question raised, or None."""
    nested = session.begin_nested()
    try:
        return error_of(
            lambda: programs.add_question(
                session, program, kind=kind, prompt=prompt, choices=choices
            )
        )
    finally:
        nested.rollback()


def longest_accepted(session: Session, program: Program, choices: Any) -> int:
    """The longest nb wording of a nine-choice question the club takes."""
    low, high = 1, programs.MAX_PROMPT
    while low < high:
        middle = (low + high + 1) // 2
        if add(session, program, "multichoice", {"nb": "x" * middle}, choices) is None:
            low = middle
        else:
            high = middle - 1
    return low


class TestQuestionFitsOneSms:
    async def test_wording_one_character_too_long_is_refused_naming_by_how_much(
        self, db: Database
    ) -> None:
        """The longest wording taken fits one segment after the welcome naming the club;
        one character more is refused on the prompt, 1 character too long; nothing is saved."""
        club = await create_club(db, name=LONG_CLUB, questions=[])

        def work(session: Session) -> None:
            program = session.get(Program, club)
            choices = nine_choices()
            n = longest_accepted(session, program, choices)
            assert 20 < n < 160
            fits = sms_as_asked(LONG_CLUB, "multichoice", {"nb": "x" * n}, choices)
            assert max(locales.segments(text).units for text in fits) == 160
            assert {locales.segments(text).segments for text in fits} == {1}
            for extra, over in ((1, 1), (25, 25)):
                refused = add(session, program, "multichoice", {"nb": "x" * (n + extra)}, choices)
                assert isinstance(refused, programs.QuestionTooLong)
                assert isinstance(refused, programs.InvalidSettings)
                assert (refused.field, refused.language, refused.over) == ("prompt", "nb", over)
                assert f"{over} characters too long" in refused.reason
            assert programs.questions(session, club) == []

        await db.run(work)

    async def test_the_clubs_own_name_counts(self, db: Database) -> None:
        """Wording the 25-character club can't have, a club with a short name can."""
        long_club = await create_club(db, name=LONG_CLUB, questions=[])
        short_club = await create_club(db, name="Kafé Kari", numbers=["3030"], questions=[])

        def work(session: Session) -> None:
            choices = nine_choices()
            n = longest_accepted(session, session.get(Program, long_club), choices)
            wording = {"nb": "x" * (n + 1)}
            refused = add(session, session.get(Program, long_club), "multichoice", wording, choices)
            assert isinstance(refused, programs.QuestionTooLong)
            assert (
                add(session, session.get(Program, short_club), "multichoice", wording, choices)
                is None
            )

        await db.run(work)

    async def test_an_edit_is_held_to_the_same_rule(self, db: Database) -> None:
        """Editing a question's wording to one too long for an SMS is refused, naming the
        language whose wording it is; the wording stays as it was."""
        club = await create_club(db, name=LONG_CLUB)

        def work(session: Session) -> None:
            question = next(q for q in programs.questions(session, club) if q.key == "activities")
            before = dict(question.prompt)
            refused = error_of(
                lambda: programs.edit_question(
                    session,
                    club,
                    question.id,
                    prompt={"nb": "Hva liker du?", "sv": "Vad gillar du att göra? " * 12},
                    choices=question.choices,
                )
            )
            assert isinstance(refused, programs.QuestionTooLong)
            assert refused.language == "sv"
            assert refused.over > 100
            assert question.prompt == before

        await db.run(work)

    async def test_any_question_taken_fits_one_sms_and_any_refused_does_not(
        self, db: Database
    ) -> None:
        """For any wording and choices (GSM-7 and not, the extension table's characters that
        count two), the club takes the question exactly when every SMS it can be asked in is
        one segment, and a refusal says by how much the longest is over."""
        club = await create_club(db, name=LONG_CLUB, questions=[])
        alphabet = st.sampled_from("abcdefghij ÆØÅæøåÄÖäö?!{}[]€ ’😀")
        words = st.text(alphabet, min_size=1, max_size=programs.MAX_PROMPT).filter(str.strip)
        labels = st.lists(st.text(alphabet, min_size=1, max_size=20).filter(str.strip), max_size=9)

        def work(session: Session) -> None:
            program = session.get(Program, club)

            @settings(max_examples=150, deadline=None)
            @given(
                kind=st.sampled_from(["choice", "multichoice", "text"]),
                nb=words,
                en=st.none() | words,
                names=labels.filter(bool),
            )
            def check(kind: str, nb: str, en: str | None, names: list[str]) -> None:
                prompt = {"nb": nb, **({"en": en} if en else {})}
                choices = [{"key": f"c{i}", "label": {"nb": n}} for i, n in enumerate(names)]
                refused = add(session, program, kind, prompt, choices)
                if kind != "text":
                    wording = {lang: text.strip() for lang, text in prompt.items()}
                else:
                    wording, choices = {lang: text.strip() for lang, text in prompt.items()}, None
                over = max(
                    over_one(text) for text in sms_as_asked(LONG_CLUB, kind, wording, choices)
                )
                if refused is None:
                    assert over == 0
                else:
                    assert isinstance(refused, programs.QuestionTooLong), refused
                    assert refused.over == over > 0

            check()

        await db.run(work)

    async def test_a_new_name_that_would_push_a_question_over_is_refused(
        self, db: Database
    ) -> None:
        """The welcome before a question names the club: a name one character longer than the
        longest question leaves room for is refused, naming the question and by how much; a
        shorter name is taken."""
        club = await create_club(db, name=LONG_CLUB, questions=[])

        def work(session: Session) -> None:
            program = session.get(Program, club)
            choices = nine_choices()
            n = longest_accepted(session, program, choices)
            programs.add_question(
                session,
                program,
                kind="multichoice",
                key="fits",
                prompt={"nb": "x" * n},
                choices=choices,
            )

            def rename(name: str) -> Exception | None:
                return error_of(
                    lambda: programs.update_club(
                        session, program, name=name, contact="x@x.no", privacy_url="https://x.no/p"
                    )
                )

            refused = rename(LONG_CLUB + "X")
            assert isinstance(refused, programs.QuestionTooLong)
            assert (refused.field, refused.question, refused.over) == ("name", "fits", 1)
            assert program.name == LONG_CLUB
            assert rename("Kafé Kari") is None
            assert program.name == "Kafé Kari"

        await db.run(work)
