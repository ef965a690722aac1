"""The data-retention job (scheduler.daily.empty_old_texts), run once in burst mode: every
club's old message bodies go in windows of ids, and a second run the same day does nothing."""

from __future__ import annotations

from scheduler import daily
from store.database import Database
from tests.store.test_retention import NOW, _bodies, _fill


async def test_one_run_empties_every_clubs_old_texts_and_a_second_run_nothing(
    db: Database,
) -> None:
    ids = await db.run(_fill)
    assert await daily.empty_old_texts(db, lambda: NOW) == 9
    bodies = await db.read(_bodies)
    assert bodies[("in", ids["oslo"]["old_in"])] == (None, None)
    assert bodies[("out", ids["oslo"]["queued"])] == ("i kø",)
    assert bodies[("in", ids["oslo"]["edge_in"])] == ("nyere", "svar på nyere")
    assert await daily.empty_old_texts(db, lambda: NOW) == 0
    assert await db.read(_bodies) == bodies


async def test_an_empty_database_is_one_empty_window(db: Database) -> None:
    assert await daily.empty_old_texts(db, lambda: NOW) == 0
