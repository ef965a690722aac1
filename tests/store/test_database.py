"""The unit of work: concurrent units each commit or fail alone, and answer only once durable."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, bindparam, create_engine, event, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from flows.conversation import InboundText, TurnResult, handle_text, turn_reads
from store import database
from store.clubs import directory, programs
from store.database import (
    Database,
    ReadsFirst,
    SqliteDatabase,
    open_database,
    pipelined,
    plain_rows,
    plain_write,
    turn_engine,
)
from store.errors import Conflict, NotFound, NumberTaken
from store.models import InboundMessage, Member, Program, ProgramNumber
from tests.conftest import CLUB_NUMBER, HeldWriters, _truncate
from tests.conftest import create_club as create_demo_club

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


# Types the driver hands back as text on SQLite (instants, JSON), a NULL, and a bound literal.
_PLAIN = select(
    Program.__table__.c.id,
    Program.__table__.c.name,
    Program.__table__.c.created_at,
    Program.__table__.c.quiet_start,
    Program.__table__.c.country,
).where(Program.__table__.c.id == bindparam("club"), Program.__table__.c.country != "XX")


async def test_a_lookups_plain_rows_are_what_execute_gives(db: Database) -> None:
    """Database.lookup with plain_rows (the driver's cursor on SQLite) reads what execute does,
    types applied, for a row and for none."""
    club = await db.run(lambda s: create_club(s, 1))
    for wanted in (club, club + 1000):

        def both(conn: Connection, wanted: int = wanted) -> tuple[list[Any], list[Any]]:
            params = {"club": wanted}
            return plain_rows(conn, _PLAIN, params), list(conn.execute(_PLAIN, params).all())

        plain, executed = await db.lookup(both)
        assert plain == [tuple(row) for row in executed]
        if wanted == club:
            assert isinstance(plain[0][2], dt.datetime)
            assert plain[0][2].tzinfo is not None


async def test_pipelined_reads_are_what_execute_gives(db: Database) -> None:
    """pipelined (one round trip on psycopg: a text's turn on PostgreSQL) reads what execute
    does, each statement's rows in order, types applied, for a row and for none."""
    club = await db.run(lambda s: create_club(s, 1))

    def both(session: Session) -> tuple[list[list[Any]], list[list[Any]]]:
        conn = session.connection()
        reads = [(_PLAIN, {"club": club}), (_PLAIN, {"club": club + 1000})]
        executed = [[tuple(row) for row in conn.execute(s, p).all()] for s, p in reads]
        return pipelined(conn, reads), executed

    got, executed = await db.turn(both)
    assert got == executed
    assert len(got[0]) == 1
    assert got[1] == []
    assert isinstance(got[0][0][2], dt.datetime)
    assert got[0][0][2].tzinfo is not None


_NUMBERS = ProgramNumber.__table__
_ADD_NUMBER = insert(_NUMBERS).returning(_NUMBERS.c.id, _NUMBERS.c.number)
_PROGRAMS = Program.__table__
_RENAME = update(_PROGRAMS).where(_PROGRAMS.c.id == bindparam("club"))


async def test_plain_writes_are_what_execute_does(db: Database) -> None:
    """plain_write (the driver's cursor on SQLite and psycopg: a text's turn) writes what
    execute would: rows returned, typed; rows changed counted, none for a missing row; an
    instant written as SQLAlchemy writes it, so it reads back equal."""
    club = await db.run(lambda s: create_club(s, 1))
    later = NOW + dt.timedelta(days=3, microseconds=7)

    def write(session: Session) -> tuple[Any, ...]:
        conn = session.connection()
        returned, added = plain_write(conn, _ADD_NUMBER, {"program_id": club, "number": "777"})
        renamed = plain_write(conn, _RENAME, {"club": club, "name": "Nytt", "created_at": later})
        missing = plain_write(conn, _RENAME, {"club": club + 1000, "name": "Ingen"})
        return returned, added, renamed, missing

    returned, added, renamed, missing = await db.turn(write)
    assert added == 1
    assert returned == [(returned[0][0], "777")]
    assert isinstance(returned[0][0], int)
    assert renamed == ([], 1)
    assert missing == ([], 0)
    stored = await db.run(lambda s: s.get(Program, club))
    assert (stored.name, stored.created_at) == ("Nytt", later)
    assert await db.run(lambda s: s.get(ProgramNumber, returned[0][0]).number) == "777"


async def test_a_plain_write_that_breaks_a_key_is_sqlalchemys_integrity_error(
    db: Database,
) -> None:
    """The driver's error is raised as SQLAlchemy's (what callers and the retries catch)."""
    club = await db.run(lambda s: create_club(s, 1))

    def clash(session: Session) -> Any:
        return plain_write(
            session.connection(), _ADD_NUMBER, {"program_id": club, "number": number(1)}
        )

    with pytest.raises(IntegrityError):
        await db.turn(clash)
    assert await numbers_in(db) == {number(1)}


async def test_a_refusal_after_a_plain_write_is_undone_alone(db: Database) -> None:
    """A write on the driver counts as a change: a unit refused after one runs again apart
    (on PostgreSQL the writer of turns counts it as SQLAlchemy's listener would), and only
    its row is gone."""
    clubs = [await db.run(lambda s, i=i: create_club(s, i)) for i in range(3)]

    def unit(index: int) -> Any:
        def work(session: Session) -> int:
            conn = session.connection()
            plain_write(conn, _ADD_NUMBER, {"program_id": clubs[0], "number": f"88{index}"})
            if index == 1:
                raise Conflict("clash", "refused after a plain write")
            return index

        return work

    results, again = await run_as_one_group(db, [unit(i) for i in range(3)])
    assert again == 1
    assert isinstance(results[1], Conflict)
    assert (results[0], results[2]) == (0, 2)
    assert await numbers_in(db) == {number(i) for i in range(3)} | {"880", "882"}


async def test_a_pipelined_read_after_a_lock_sees_what_committed_while_it_waited(
    postgres_schema: str,
) -> None:
    """On PostgreSQL a read sent in the same pipeline after a FOR UPDATE that had to wait sees
    what the lock's holder committed meanwhile (each statement its own snapshot): what lets a
    retried text's lookup go with its member's lock in one round trip."""
    await _truncate(postgres_schema)
    engine = turn_engine(postgres_schema)
    holder = turn_engine(postgres_schema)
    try:
        with Session(holder) as session, session.begin():
            club = create_club(session, 1)
        locked = select(Program.id).where(Program.id == bindparam("club")).with_for_update()
        added = select(ProgramNumber.number).where(ProgramNumber.program_id == bindparam("club"))
        with holder.connect() as holding:
            holding.execute(locked, {"club": club})  # the lock held, in its transaction

            def read() -> list[list[Any]]:
                with Session(engine) as session, session.begin():
                    conn = session.connection()
                    return pipelined(conn, [(locked, {"club": club}), (added, {"club": club})])

            reading = asyncio.get_running_loop().run_in_executor(None, read)
            await asyncio.sleep(0.3)
            assert not reading.done()  # waiting for the lock
            holding.execute(
                ProgramNumber.__table__.insert(), {"program_id": club, "number": "+4799999999"}
            )
            holding.commit()
            rows = await asyncio.wait_for(reading, 10)
        assert rows[0] == [(club,)]
        assert sorted(row[0] for row in rows[1]) == sorted([number(1), "+4799999999"])
    finally:
        engine.dispose()
        holder.dispose()


async def drop_turn_writers(db: Database) -> int:
    """PostgreSQL drops the writers of turns' connections (an operator's pg_terminate_backend,
    a restart); how many it dropped."""
    return int(
        await db.run(
            lambda s: s.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'klubb-turns'"
                )
            )
        )
    )


def text_turn(inbound: InboundText, clubs: directory.ClubDirectory) -> ReadsFirst[TurnResult]:
    """A text's turn as the webhook hands it to the writer of turns: with its reads first."""
    return ReadsFirst(
        functools.partial(handle_text, text=inbound, clubs=clubs),
        functools.partial(turn_reads, text=inbound, clubs=clubs),
    )


async def test_turns_go_on_after_postgresql_drops_the_writers_connections(
    postgres_schema: str,
) -> None:
    """The writers of turns hold their connections between groups (no ping before each): when
    PostgreSQL drops them (a restart, an operator's pg_terminate_backend), the next turns run
    on new connections instead of failing."""
    await _truncate(postgres_schema)
    db = open_database(postgres_schema)
    try:
        first = await asyncio.gather(
            *(db.turn(functools.partial(create_club, index=i)) for i in range(8))
        )
        assert await drop_turn_writers(db) >= 1
        later = await asyncio.gather(
            *(db.turn(functools.partial(create_club, index=i), key=str(i)) for i in range(8, 16))
        )
        assert len(set(first + later)) == 16
        assert await numbers_in(db) == {number(i) for i in range(16)}
    finally:
        await db.close()


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


# --- refusals in a group (issue 14) ------------------------------------------------------------

_keys = itertools.count(5000)


def refuse(_session: Session, index: int) -> int:
    raise NotFound("member", str(index))


def create_club_then_refuse(session: Session, index: int) -> int:
    create_club(session, index)
    session.flush()
    raise Conflict("clash", f"unit {index} refused after writing")


# What a unit does; the answer it gets alone is the same whatever runs beside it.
KINDS = {
    "write": create_club,  # a new club: its id
    "taken": create_club,  # a club on a number committed before: NumberTaken, nothing written
    "refuse": refuse,  # NotFound before writing
    "write_refuse": create_club_then_refuse,  # Conflict after writing: undone
    "fail": create_club_then_fail,  # Boom after writing: undone
}


async def run_as_one_group(db: Database, units: list[Any]) -> tuple[list[Any], int]:
    """Run `units` as turns in one burst: held behind units that block the writers of turns
    (SQLite's writer, PostgreSQL's) until all are queued, so they form groups. Returns their
    results (or exceptions) and how many groups were run again apart."""
    async with HeldWriters(db) as held:
        runs = [asyncio.ensure_future(db.turn(unit, key="one")) for unit in units]
        await held.release_when(len(units))
        results = await asyncio.gather(*runs, return_exceptions=True)
    return list(results), len(held.apart)


async def numbers_in(db: Database) -> set[str]:
    return await db.run(lambda s: set(s.scalars(select(ProgramNumber.number))))


class TestRefusals:
    async def test_a_refusal_in_a_group_runs_no_unit_twice(self, db) -> None:
        """A unit refused before it changed anything (an API's 404) is answered with its refusal
        and the rest of its group commits as it ran: no unit of the group runs twice."""
        calls: Counter[int] = Counter()

        def unit(index: int) -> Any:
            def work(session: Session) -> int:
                calls[index] += 1
                return (refuse if index % 5 == 3 else create_club)(session, index)

            return work

        results, again = await run_as_one_group(db, [unit(i) for i in range(20)])

        assert again == 0
        assert set(calls.values()) == {1}
        for index, result in enumerate(results):
            if index % 5 == 3:
                assert isinstance(result, NotFound), (index, result)
            else:
                assert isinstance(result, int), (index, result)
        assert await numbers_in(db) == {number(i) for i in range(20) if i % 5 != 3}

    async def test_a_refusal_after_a_write_is_undone_alone(self, db) -> None:
        """A unit refused after it wrote has something to undo: its group runs again apart, and
        only that unit's row is gone."""
        units = [
            functools.partial(create_club_then_refuse if i == 2 else create_club, index=i)
            for i in range(5)
        ]
        results, again = await run_as_one_group(db, units)
        assert again == 1
        assert isinstance(results[2], Conflict)
        assert await numbers_in(db) == {number(i) for i in (0, 1, 3, 4)}


def test_any_mix_of_refusals_and_failures_in_a_group_answers_each_unit_as_alone(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """For any mix of new writes, texts on a key taken before (a retry's kind of refusal),
    refusals before and after a write, and failures, run as one group: each unit gets the
    answer it would have had alone, only the new writes are committed, and the group runs again
    only when a unit has something to undo."""
    loop, db = loop_and_db

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=12))
    def run(kinds: list[str]) -> None:
        taken = next(_keys)
        loop.run_until_complete(db.run(lambda s: create_club(s, taken)))
        keys = [taken if kind == "taken" else next(_keys) for kind in kinds]
        units = [
            functools.partial(KINDS[kind], index=key) for kind, key in zip(kinds, keys, strict=True)
        ]

        results, again = loop.run_until_complete(run_as_one_group(db, units))

        expected = {
            "write": int,
            "taken": NumberTaken,
            "refuse": NotFound,
            "write_refuse": Conflict,
            "fail": Boom,
        }
        for kind, result in zip(kinds, results, strict=True):
            assert isinstance(result, expected[kind]), (kind, result)
        written = {number(k) for kind, k in zip(kinds, keys, strict=True) if kind == "write"}
        among = {number(k) for k in keys} | {number(taken)}
        seen = loop.run_until_complete(
            db.run(
                lambda s: set(
                    s.scalars(select(ProgramNumber.number).where(ProgramNumber.number.in_(among)))
                )
            )
        )
        assert seen == written | {number(taken)}
        undo = any(kind in ("write_refuse", "fail") for kind in kinds)
        if isinstance(db, SqliteDatabase) and len(kinds) > 1:
            assert again == (1 if undo else 0)

    run()


# --- a group's reads made ahead, its texts written at its end (PostgreSQL) ---------------------


async def test_a_text_recorded_elsewhere_while_its_group_ran_is_answered_as_recorded(
    postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer of turns on PostgreSQL reads its group's members and retries when the group
    starts and writes the group's texts when it ends. A delivery of one of those texts that
    another process (a second `klubb serve`) recorded in between makes that text's row not
    written: the group runs again apart, and that text is answered with the reply recorded
    there, its turn not applied twice; the other text of the group is answered as alone.
    (The first text changes nothing but its own record: a write would have the group read
    again, which would find the raced text.)"""
    monkeypatch.setattr(database, "PG_TURN_WRITERS", 1)
    await _truncate(postgres_schema)
    db = open_database(postgres_schema)
    elsewhere = turn_engine(postgres_schema)
    clubs = directory.ClubDirectory(ttl=0)
    try:
        club = await create_demo_club(db)
        first = InboundText("SM1", "+4791100000", CLUB_NUMBER, "hei", NOW)
        raced = InboundText("SM2", "+4791200000", CLUB_NUMBER, "JOIN", NOW)

        def answer_then_race(session: Session) -> TurnResult:
            result = handle_text(session, first, clubs)
            with elsewhere.begin() as other:  # committed while the group still runs
                other.execute(
                    postgresql.insert(InboundMessage).on_conflict_do_nothing(),
                    {
                        "program_id": club,
                        "provider_sid": raced.provider_sid,
                        "from_number": raced.from_number,
                        "to_number": CLUB_NUMBER,
                        "body": "JOIN",
                        "reply": "answered elsewhere",
                        "received_at": NOW,
                    },
                )
            return result

        units = [
            ReadsFirst(answer_then_race, functools.partial(turn_reads, text=first, clubs=clubs)),
            text_turn(raced, clubs),
        ]
        async with HeldWriters(db) as held:
            runs = [asyncio.ensure_future(db.turn(unit)) for unit in units]
            await held.release_when(len(units))
            menu, answered = await asyncio.gather(*runs)
        assert held.apart == [2]
        assert menu.reply is not None
        assert "JOIN" in menu.reply or "BLI MED" in menu.reply, menu.reply
        assert not menu.replayed
        assert answered.replayed
        assert answered.reply == "answered elsewhere"

        def stored(session: Session) -> list[tuple[str, str | None]]:
            rows = session.execute(
                select(InboundMessage.provider_sid, InboundMessage.reply).order_by(
                    InboundMessage.provider_sid
                )
            )
            return [tuple(row) for row in rows]

        assert await db.run(stored) == [("SM1", menu.reply), ("SM2", "answered elsewhere")]
        # The raced text's turn (a JOIN) made no member; the other text made none either.
        assert await db.run(lambda s: list(s.scalars(select(Member.phone)))) == []
    finally:
        elsewhere.dispose()
        await db.close()


async def test_texts_go_on_after_postgresql_drops_the_writers_connection(
    postgres_schema: str,
) -> None:
    """A group of texts whose reads ahead meet a connection PostgreSQL dropped (an operator's
    pg_terminate_backend, a restart) runs again on a new one: every text answered, recorded
    once."""
    await _truncate(postgres_schema)
    db = open_database(postgres_schema)
    clubs = directory.ClubDirectory(ttl=0)

    def text_unit(n: int) -> ReadsFirst[TurnResult]:
        joining = InboundText(f"SMdrop{n}", f"+4791{n:06d}", CLUB_NUMBER, "JOIN", NOW)
        return text_turn(joining, clubs)

    try:
        await create_demo_club(db)
        first = await asyncio.gather(*(db.turn(text_unit(n)) for n in range(8)))
        assert await drop_turn_writers(db) >= 1
        later = await asyncio.gather(*(db.turn(text_unit(n)) for n in range(8, 16)))
        for result in first + later:
            assert result.reply is not None
            assert result.reply.startswith("Torshov Sport: svar JA"), result
        stored = await db.run(lambda s: list(s.scalars(select(InboundMessage.provider_sid))))
        assert sorted(stored) == sorted(f"SMdrop{n}" for n in range(16))
    finally:
        await db.close()
