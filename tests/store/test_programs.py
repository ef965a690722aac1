"""The club directory: clubs found by number, served from memory for a few seconds; a profile
question removed from a club."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store import members, profile, programs, segments
from store.database import Database
from store.errors import NotFound
from store.models import Member, Program
from tests.conftest import CLUB_NUMBER, create_club
from tests.store.loyalty_helpers import error_of

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestClubDirectory:
    async def test_a_change_made_elsewhere_is_seen_after_the_ttl(self, db: Database) -> None:
        """A renamed club keeps its old name for at most `ttl` seconds, then the new one."""
        await create_club(db)
        clock = Clock()
        clubs = programs.ClubDirectory(ttl=5, clock=clock)

        def name(session) -> str:
            return clubs.by_number(session, CLUB_NUMBER).name

        assert await db.run(name) == "Torshov Sport"
        await db.run(lambda s: s.execute(update(Program).values(name="Torshov Løp")))
        clock.now = 4.9
        assert await db.run(name) == "Torshov Sport"
        clock.now = 5.1
        assert await db.run(name) == "Torshov Løp"

    async def test_a_new_club_answers_at_once(self, db: Database) -> None:
        """A number that reached no club is not remembered: a club created then is found."""
        clubs = programs.ClubDirectory(ttl=60, clock=Clock())
        assert await db.run(lambda s: clubs.by_number(s, CLUB_NUMBER)) is None
        await create_club(db)
        found = await db.run(lambda s: clubs.by_number(s, CLUB_NUMBER))
        assert found is not None
        assert found.name == "Torshov Sport"

    async def test_questions_come_in_the_clubs_order(self, db: Database) -> None:
        """The directory hands out the club's questions in the order they are asked."""
        program_id = await create_club(db)
        clubs = programs.ClubDirectory()
        keys = await db.run(lambda s: [q.key for q in clubs.questions(s, program_id)])
        assert keys == ["first_name", "birthday", "activities"]


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
