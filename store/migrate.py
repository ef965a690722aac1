"""Schema migrations with Alembic, on SQLite or PostgreSQL, from code (`klubb migrate`)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from store.database import sync_sqlite_engine


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
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sync_sqlite_engine(url)
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
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    found: list[str | None] = []

    def read(conn: Connection) -> None:
        found.append(MigrationContext.configure(conn).get_current_revision())

    await _with_connection(url, read)
    return found == [head]
