"""The unit of work: concurrent units each commit or fail alone, and answer only once durable."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from store import programs
from store.database import Database, SqliteDatabase, open_database
from store.models import Program, ProgramNumber

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
BURST = 200


class Boom(Exception):
    """The failure a test unit raises after it has written its row."""

    def __init__(self, index: int) -> None:
        super().__init__(f"unit {index} failed")
        self.index = index


def number(index: int) -> str:
    return str(10000 + index)


def create_club(session: Session, index: int) -> int:
    program = programs.create(
        session,
        name=f"Klubb {index}",
        numbers=[number(index)],
        country="NO",
        contact="post@example.no",
        privacy_url="https://example.no/personvern",
        now=NOW,
    )
    return program.id


def create_club_then_fail(session: Session, index: int) -> int:
    create_club(session, index)
    session.flush()
    raise Boom(index)


class Observer:
    """A second engine on the same database: what another process would see committed."""

    def __init__(self, url: str) -> None:
        self.backend = make_url(url).get_backend_name()
        if self.backend == "sqlite":
            self.sync_engine = create_engine(make_url(url).set(drivername="sqlite"))
        else:
            self.async_engine = create_async_engine(url, pool_size=5, max_overflow=20)

    async def numbers(self, among: Iterable[str] | None = None) -> set[str]:
        query = select(ProgramNumber.number)
        if among is not None:
            query = query.where(ProgramNumber.number.in_(list(among)))
        if self.backend == "sqlite":
            # Synchronous on purpose: nothing else runs on the loop between the caller's
            # result and this read.
            with self.sync_engine.connect() as conn:
                return set(conn.scalars(query))
        async with self.async_engine.connect() as conn:
            return set(await conn.scalars(query))

    async def close(self) -> None:
        if self.backend == "sqlite":
            self.sync_engine.dispose()
        else:
            await self.async_engine.dispose()


@pytest.fixture
async def observer(database_url: str) -> AsyncIterator[Observer]:
    seen = Observer(database_url)
    yield seen
    await seen.close()


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    path = tmp_path / "group.db"
    shutil.copy(sqlite_template, path)
    database = open_database(f"sqlite:///{path}")
    assert isinstance(database, SqliteDatabase)
    yield database
    await database.close()


async def run_club(db: Database, index: int) -> int:
    return await db.run(lambda session: create_club(session, index))


class TestBurst:
    async def test_every_unit_of_a_burst_commits(self, db, observer) -> None:
        """200 units run at once each commit their own row and get their own result."""
        ids = await asyncio.gather(*(run_club(db, i) for i in range(BURST)))
        assert len(set(ids)) == BURST
        assert await observer.numbers() == {number(i) for i in range(BURST)}

    async def test_a_failing_unit_raises_to_its_caller_and_the_others_commit(
        self, db, observer
    ) -> None:
        """A unit that writes then raises gets its own exception; its row is undone, no other."""
        failing = {i for i in range(BURST) if i % 25 == 7}

        async def one(index: int) -> int:
            work = create_club_then_fail if index in failing else create_club
            return await db.run(lambda session: work(session, index))

        results = await asyncio.gather(*(one(i) for i in range(BURST)), return_exceptions=True)

        for index, result in enumerate(results):
            if index in failing:
                assert isinstance(result, Boom), (index, result)
                assert result.index == index
            else:
                assert isinstance(result, int), (index, result)
        assert await observer.numbers() == {number(i) for i in range(BURST) if i not in failing}

    async def test_a_unit_failing_in_the_database_undoes_only_itself(self, db, observer) -> None:
        """A unit whose write breaks a unique key fails alone; the rest of the burst commits."""
        first = await run_club(db, 0)

        def steal_number(session: Session) -> None:
            session.add(ProgramNumber(program_id=first, number="4242"))
            session.add(ProgramNumber(program_id=first, number=number(0)))
            session.flush()

        results = await asyncio.gather(
            *(run_club(db, i) for i in range(1, 30)),
            db.run(steal_number),
            *(run_club(db, i) for i in range(30, 60)),
            return_exceptions=True,
        )
        assert isinstance(results[29], IntegrityError)
        assert all(isinstance(r, int) for i, r in enumerate(results) if i != 29)
        assert await observer.numbers() == {number(i) for i in range(60)}

    async def test_a_lone_failing_unit_leaves_nothing_behind(self, db, observer) -> None:
        """A unit that raises on its own is rolled back and its exception reaches the caller."""
        with pytest.raises(Boom) as raised:
            await db.run(lambda session: create_club_then_fail(session, 3))
        assert raised.value.index == 3
        assert await observer.numbers() == set()
        assert await run_club(db, 4) > 0
        assert await observer.numbers() == {number(4)}

    async def test_a_unit_raising_a_base_exception_leaves_the_database_serving(
        self, db, observer
    ) -> None:
        """Not only Exception: a BaseException from a unit (pytest's own failures are) reaches
        its caller, and the next unit still runs (on SQLite the writer thread survives)."""

        class Halt(BaseException):
            pass

        def halt(session: Session) -> None:
            create_club(session, 5)
            raise Halt

        with pytest.raises(Halt):
            await db.run(halt)
        assert await run_club(db, 6) > 0
        assert await observer.numbers() == {number(6)}


class TestDurability:
    async def test_a_result_is_returned_only_after_commit(self, db, observer) -> None:
        """The moment a unit's result arrives, another connection already sees its row."""

        async def one(index: int) -> bool:
            await run_club(db, index)
            return number(index) in await observer.numbers([number(index)])

        seen = await asyncio.gather(*(one(i) for i in range(50)))
        assert all(seen), [i for i, ok in enumerate(seen) if not ok]

    async def test_a_returned_model_can_be_read_after_the_unit(self, db) -> None:
        """Models returned by a unit keep their loaded attributes (no expiry on commit)."""

        def create(session: Session) -> Any:
            club_id = create_club(session, 1)
            return session.get(Program, club_id)

        program = await db.run(create)
        assert (program.name, program.country, program.timezone) == (
            "Klubb 1",
            "NO",
            "Europe/Oslo",
        )


class TestSqliteGroupCommit:
    async def test_units_that_arrive_together_share_commits(self, sqlite_db) -> None:
        """On SQLite a burst of units is committed in far fewer transactions than units."""
        commits: list[int] = []
        event.listen(sqlite_db.engine, "commit", lambda _conn: commits.append(1))
        await asyncio.gather(*(run_club(sqlite_db, i) for i in range(BURST)))
        assert 1 <= len(commits) < BURST / 2
        count = await sqlite_db.run(lambda session: len(session.scalars(select(Program)).all()))
        assert count == BURST


async def test_a_read_sees_what_was_committed(db: Database) -> None:
    club = await db.run(lambda s: create_club(s, 1))
    name = await db.read(lambda s: s.scalar(select(Program.name).where(Program.id == club)))
    assert name == "Klubb 1"


async def test_a_read_runs_while_the_writer_is_busy(tmp_path: Path, sqlite_template: Path) -> None:
    """On SQLite a long read (a report) doesn't wait behind the writer, nor the writer behind
    it: a turn holding the writer for a while doesn't hold up a read."""
    path = tmp_path / "klubb.db"
    shutil.copy(sqlite_template, path)
    db = open_database(f"sqlite:///{path}")
    try:
        await db.run(lambda s: create_club(s, 1))
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def busy_writer(session: Session) -> int:
            create_club(session, 2)
            session.flush()
            # Holds the writer thread until the read below has answered.
            asyncio.run_coroutine_threadsafe(asyncio.wait_for(release.wait(), 10), loop).result()
            return 2

        writing = asyncio.ensure_future(db.run(busy_writer))
        await asyncio.sleep(0.05)
        seen = await asyncio.wait_for(
            db.read(lambda s: set(s.scalars(select(ProgramNumber.number)))), timeout=5
        )
        # The read's snapshot: the committed club, not the one still being written.
        assert seen == {number(1)}
        assert not writing.done()
        release.set()
        assert await writing == 2
        assert await db.read(lambda s: set(s.scalars(select(ProgramNumber.number)))) == {
            number(1),
            number(2),
        }
    finally:
        await db.close()


async def test_a_read_cant_write(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "klubb.db"
    shutil.copy(sqlite_template, path)
    db = open_database(f"sqlite:///{path}")

    def write(session: Session) -> None:
        create_club(session, 3)
        session.flush()

    try:
        with pytest.raises(Exception, match="readonly"):
            await db.read(write)
        assert await db.read(lambda s: s.scalar(select(Program.id))) is None
    finally:
        await db.close()
