"""The club directory: clubs found by number or id, served from memory for a few seconds."""

from __future__ import annotations

from sqlalchemy import update

from store.clubs import directory
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
        clubs = directory.ClubDirectory(ttl=5, clock=clock)

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
        clubs = directory.ClubDirectory(ttl=60, clock=Clock())
        assert await db.run(lambda s: clubs.by_number(s, CLUB_NUMBER)) is None
        await create_club(db)
        found = await db.run(lambda s: clubs.by_number(s, CLUB_NUMBER))
        assert found is not None
        assert found.name == "Torshov Sport"

    async def test_questions_come_in_the_clubs_order(self, db: Database) -> None:
        """The directory hands out the club's questions in the order they are asked."""
        program_id = await create_club(db)
        clubs = directory.ClubDirectory()
        keys = await db.run(lambda s: [q.key for q in clubs.questions(s, program_id)])
        assert keys == ["first_name", "birthday", "activities"]

    async def test_a_club_by_id_is_served_from_memory_until_the_ttl(self, db: Database) -> None:
        """The club an API key names keeps its old settings for at most `ttl` seconds."""
        program_id = await create_club(db)
        clock = Clock()
        clubs = directory.ClubDirectory(ttl=5, clock=clock)

        def cap(session) -> int:
            return clubs.by_id(session, program_id).marketing_per_month

        before = await db.run(cap)
        await db.run(
            lambda s: s.execute(update(Program).values(marketing_per_month=before % 3 + 1))
        )
        clock.now = 4.9
        assert await db.run(cap) == before
        clock.now = 5.0
        assert await db.run(cap) == before % 3 + 1

    async def test_an_unknown_id_is_not_remembered(self, db: Database) -> None:
        clubs = directory.ClubDirectory(ttl=60, clock=Clock())
        assert await db.run(lambda s: clubs.by_id(s, 1)) is None
        program_id = await create_club(db)
        found = await db.run(lambda s: clubs.by_id(s, program_id))
        assert found is not None
        assert found.id == program_id
