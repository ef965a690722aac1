"""Schema migrations with Alembic, on SQLite or PostgreSQL, from code (`klubb migrate`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from store.database import database_url, sync_sqlite_engine


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("store") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`."""
    await _with_connection(url, lambda conn: command.upgrade(alembic_config(conn), revision))


async def downgrade(url: str, revision: str) -> None:
    await _with_connection(url, lambda conn: command.downgrade(alembic_config(conn), revision))


async def _with_connection(url: str, work: Any) -> None:
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sync_sqlite_engine(parsed.render_as_string(hide_password=False))
        try:
            with engine.begin() as conn:
                work(conn)
        finally:
            engine.dispose()
        return
    async_engine = create_async_engine(parsed.set(drivername="postgresql+asyncpg"))
    try:
        async with async_engine.begin() as conn:
            await conn.run_sync(work)
    finally:
        await async_engine.dispose()


async def is_current(url: str) -> bool:
    """Whether the database at `url` is at the newest revision."""
    return (await state(url)).status == "current"


Status = Literal["current", "behind", "empty", "unknown", "missing"]


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against this Klubb's migrations."""

    found: str | None  # the revision the database is at; None: never migrated
    head: str  # the newest revision this Klubb has
    # A SQLite file that is not there (`state` never makes one): its path; None otherwise.
    missing_file: str | None = None

    @property
    def status(self) -> Status:
        """current; behind (`klubb migrate` brings it on); empty (never migrated); unknown (a
        revision this Klubb does not have: migrated by a newer Klubb, or by hand); missing (a
        SQLite file that does not exist: `klubb migrate` makes it)."""
        if self.missing_file is not None:
            return "missing"
        if self.found == self.head:
            return "current"
        if self.found is None:
            return "empty"
        return "behind" if self.found in _known_revisions() else "unknown"


@functools.cache
def _script() -> ScriptDirectory:
    # Read from the package's files once per process: they don't change while it runs.
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(revision.revision for revision in _script().walk_revisions())


def head() -> str:
    """The newest revision of this Klubb's migrations."""
    found = _script().get_current_head()
    assert found is not None, "the migrations have one head (tests/store/test_migrations.py)"
    return found


def state_on(connection: Connection) -> SchemaState:
    """The schema's state read on an open connection (one query: alembic's version table)."""
    return SchemaState(MigrationContext.configure(connection).get_current_revision(), head())


async def state(url: str) -> SchemaState:
    """The schema's state of the database at `url`, on a connection opened for it alone. A
    SQLite file that does not exist is said so, not made: connecting would leave an empty
    file behind a refusal (`klubb serve` before `klubb migrate`)."""
    missing = _missing_sqlite_file(url)
    if missing is not None:
        return SchemaState(None, head(), missing_file=missing)
    found: list[SchemaState] = []
    await _with_connection(url, lambda conn: found.append(state_on(conn)))
    return found[0]


def _missing_sqlite_file(url: str) -> str | None:
    """The absolute path of the SQLite file `url` names, when there is no such file."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else str(path.absolute())
