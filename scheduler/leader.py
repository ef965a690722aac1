"""Scheduler leadership: of several processes on one database, one runs the planning jobs.

PostgreSQL: a session advisory lock held on a connection of its own (released by the server
when the process dies). SQLite: an exclusive lock on a file beside the database (released by
the kernel when the process dies); a database in memory has only one process anyway."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

log = logging.getLogger(__name__)

# pg_try_advisory_lock's key: "klubb" in ASCII, so it will not collide with another app's.
LOCK_KEY = 0x6B6C756262


class Leadership:
    """Tries to become the leader; `held` says whether this process is it."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.held = False
        self._file: Any = None
        self._connection: AsyncConnection | None = None
        self._engine: Any = None

    async def try_acquire(self) -> bool:
        """Become the leader if no live process is; cheap to call again while held."""
        if self.held:
            if self._connection is not None and self._connection.closed:
                log.warning("lost the scheduler leadership: its database connection closed")
                self.held = False
            else:
                return True
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "postgresql":
            self.held = await self._try_postgres()
        else:
            self.held = self._try_file(parsed.database)
        if self.held:
            log.info("this process leads the scheduler (planning, journeys, loyalty jobs)")
        return self.held

    async def _try_postgres(self) -> bool:
        if self._engine is None:
            url = make_url(self.url).set(drivername="postgresql+asyncpg")
            self._engine = create_async_engine(url, pool_size=1, max_overflow=0)
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await self._engine.connect()
            got = await self._connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
            )
            # Ends the implicit transaction; a session-level advisory lock outlives it.
            await self._connection.commit()
        except Exception:
            log.exception("could not ask PostgreSQL for the scheduler leadership")
            return False
        return bool(got)

    def _try_file(self, database: str | None) -> bool:
        if not database or database == ":memory:":
            return True
        if self._file is None:
            path = Path(database).with_name(Path(database).name + ".leader")
            self._file = open(path, "a+")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()
        return True

    async def release(self) -> None:
        self.held = False
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
        if self._engine is not None:
            with contextlib.suppress(Exception):
                await self._engine.dispose()
            self._engine = None
