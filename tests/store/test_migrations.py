"""Alembic owns the schema: the migrations build exactly the models, both ways, on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from store import migrate
from store.database import open_database
from store.loyalty import purchases
from store.loyalty.earning import Line
from store.members import members
from store.models import Base, Member, Program
from tests.conftest import create_club

T = TypeVar("T")


async def own_database(database_url: str, tmp_path: Path) -> str:
    """A migrated database a test may downgrade and upgrade again: on SQLite a file made anew
    in `tmp_path`, on PostgreSQL the test's own database."""
    if make_url(database_url).get_backend_name() != "sqlite":
        return database_url
    url = f"sqlite:///{tmp_path / 'own.db'}"
    await migrate.upgrade(url)
    return url


async def on_connection(url: str, work: Callable[[Connection], T]) -> T:
    """Run `work` on a plain connection: sync for SQLite, an async engine's run_sync otherwise."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(make_url(url).set(drivername="sqlite"))
        try:
            with engine.connect() as conn:
                return work(conn)
        finally:
            engine.dispose()
    async_engine = create_async_engine(url)
    try:
        async with async_engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await async_engine.dispose()


def schema_diff(conn: Connection) -> list[Any]:
    dialect = conn.dialect.name

    def on_this_backend(obj: Any, name: Any, kind: str, reflected: bool, compare_to: Any) -> bool:
        # A model's index made only on some backends (`ddl_if`), as its migration makes it.
        only = getattr(obj, "_ddl_if", None)
        return reflected or only is None or only.dialect in (None, dialect)

    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": on_this_backend}
    )
    return compare_metadata(context, Base.metadata)


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


MODEL_TABLES = {table.name for table in Base.metadata.sorted_tables}


async def test_migrations_build_exactly_the_models(database_url: str) -> None:
    """After `upgrade` the database's schema and the models differ in nothing."""
    await migrate.upgrade(database_url)
    assert await on_connection(database_url, schema_diff) == []
    assert await on_connection(database_url, table_names) >= MODEL_TABLES


async def test_a_fresh_sqlite_file_is_migrated_to_the_models(tmp_path: Path) -> None:
    """An empty SQLite file becomes, in one `upgrade`, a schema equal to the models."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert not await migrate.is_current(url)
    await migrate.upgrade(url)
    assert await migrate.is_current(url)
    assert await on_connection(url, schema_diff) == []


async def test_is_current_at_head(database_url: str) -> None:
    """A database upgraded to head reports itself current."""
    await migrate.upgrade(database_url)
    assert await migrate.is_current(database_url) is True


def test_the_migrations_have_one_head() -> None:
    """The revisions form one line: `upgrade head` is never ambiguous."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


async def test_downgrade_to_base_and_upgrade_again(database_url: str, tmp_path: Path) -> None:
    """Every migration can be undone to an empty schema and applied again to the same models.

    SQLite: a fresh file of its own, so no other fixture's database is touched. PostgreSQL: the
    test database itself, always brought back to head.
    """
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'down-up.db'}"
        await migrate.upgrade(url)
    else:
        url = database_url
    try:
        await migrate.downgrade(url, "base")
        assert await migrate.is_current(url) is False
        assert await on_connection(url, table_names) & MODEL_TABLES == set()

        await migrate.upgrade(url)
        assert await migrate.is_current(url) is True
        assert await on_connection(url, schema_diff) == []
    finally:
        await migrate.upgrade(url)


def marks_key(conn: Connection) -> tuple[int, int]:
    """pk_member_marks' columns: all of them, and those of the key."""
    row = conn.exec_driver_sql(
        "SELECT indnatts, indnkeyatts FROM pg_index WHERE indexrelid = 'pk_member_marks'::regclass"
    ).one()
    return int(row[0]), int(row[1])


async def test_0016_the_marks_key_carries_last_at_on_postgresql(database_url: str) -> None:
    """On PostgreSQL member_marks' key includes last_at (read from the key alone); down to
    0015 it is the four key columns again, and back up it includes it once more."""
    if make_url(database_url).get_backend_name() == "sqlite":
        pytest.skip("SQLite clusters the table by its key (WITHOUT ROWID): last_at is there")
    await migrate.upgrade(database_url)
    try:
        assert await on_connection(database_url, marks_key) == (5, 4)
        await migrate.downgrade(database_url, "0015")
        assert await on_connection(database_url, marks_key) == (4, 4)
    finally:
        await migrate.upgrade(database_url)
    assert await on_connection(database_url, marks_key) == (5, 4)


async def test_0004_fills_in_each_members_last_purchase(database_url: str, tmp_path: Path) -> None:
    """Members who bought before the column existed get their latest purchase's time."""
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'last-purchase.db'}"
        await migrate.upgrade(url)
    else:
        url = database_url
    first = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    db = open_database(url)
    try:
        club = await create_club(db)

        def work(session: Session) -> tuple[int, int]:
            program = session.get(Program, club)
            assert program is not None
            buyer = members.create(
                session, program, "+4791000001", status=members.ACTIVE, now=first
            )
            other = members.create(
                session, program, "+4791000002", status=members.ACTIVE, now=first
            )
            session.flush()
            for i, days in enumerate((3, 40, 1)):
                purchases.record(
                    session,
                    program,
                    buyer.id,
                    transaction_id=f"T{i}",
                    lines=[Line(qty=1, amount_minor=1000)],
                    occurred_at=first + dt.timedelta(days=days),
                    fingerprint=f"T{i}",
                    now=first,
                )
            return buyer.id, other.id

        buyer, other = await db.run(work)
    finally:
        await db.close()
    try:
        await migrate.downgrade(url, "0003")
        await migrate.upgrade(url)

        def last(conn: Connection) -> dict[int, Any]:
            table = Member.__table__
            rows = conn.execute(select(table.c.id, table.c.last_purchase_at)).all()
            return {row.id: row.last_purchase_at for row in rows}

        found = await on_connection(url, last)
        assert found[buyer] == first + dt.timedelta(days=40)
        assert found[other] is None
    finally:
        await migrate.upgrade(url)
