"""The club directory: clubs found by number, served from memory for a few seconds."""

from __future__ import annotations

from sqlalchemy import update

from store import programs
from store.database import Database
from store.models import Program
from tests.conftest import CLUB_NUMBER, create_club


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
