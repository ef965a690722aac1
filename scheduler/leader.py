"""Scheduler leadership: of several processes on one database, one runs the planning jobs.

PostgreSQL: a session advisory lock held on a connection of its own (released by the server
when the process dies). SQLite: an exclusive lock on a file beside the database (released by
the kernel when the process dies); a database in memory has only one process anyway."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from scheduler import metrics
from store.database import database_url
from store.outage import Outage, reason

log = logging.getLogger(__name__)

# pg_try_advisory_lock's key: "klubb" in ASCII, so it will not collide with another app's.
LOCK_KEY = 0x6B6C756262
# How long one check may wait for PostgreSQL (a connection that hangs rather than drops): past
# it the check says "not the leader", so a stuck leader stops leading instead of stalling jobs.
CHECK_SECONDS = 10


class Leadership:
    """Tries to become the leader; `held` says whether this process is it.

    The jobs of one scheduler ask at the same moment (APScheduler starts them together), and
    an asyncpg connection runs one statement at a time: the checks take turns on the one
    connection (`_turn`), so the lock stays on a single session and none of them fails with
    "another operation is in progress"."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.held = False
        self._file: Any = None
        self._connection: AsyncConnection | None = None
        self._engine: Any = None
        self._turn = asyncio.Lock()
        # Every led job checks, each at its own interval: an outage is said once, not a check.
        self._outage = Outage(log, "scheduler leadership check")

    async def try_acquire(self) -> bool:
        """Become the leader if no live process is; cheap to call again while held (on
        PostgreSQL one round trip, which notices a connection that dropped)."""
        async with self._turn:
            parsed = database_url(self.url)
            was_held = self.held
            if parsed.get_backend_name() == "postgresql":
                self.held = await self._try_postgres()
            else:
                self.held = self._try_file(parsed.database)
            # For the "no leader" alert: the sum over every process should be 1.
            metrics.LEADER.set(1 if self.held else 0)
            if self.held and not was_held:
                log.info("this process leads the scheduler (planning, journeys, loyalty jobs)")
            return self.held

    async def _try_postgres(self) -> bool:
        if self._engine is None:
            url = database_url(self.url).set(drivername="postgresql+asyncpg")
            # No pool: the one connection is kept here, and one dropped is closed for good (a
            # pool of one would make the next connect wait for a connection it still counts).
            self._engine = create_async_engine(
                url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                if self.held and self._connection is not None:
                    # The session's lock lasts as long as the session: if it still answers, this
                    # process still leads. If it dropped, the server let the lock go with it.
                    await self._connection.scalar(text("SELECT 1"))
                    return True
                if self._connection is None:
                    self._connection = await self._engine.connect()
                # A session-level lock: it outlives any transaction, until unlock or session end.
                got = await self._connection.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
                )
        except asyncio.CancelledError:
            # A statement cut off half-way leaves the connection unusable, and whether the lock
            # was had unknown: let the connection (and any lock on it) go.
            self.held = False
            await self._drop_connection()
            raise
        except Exception as exc:
            # The database is down or the connection dropped: an operational state, said
            # without a traceback, once an outage (and the leadership lost, once); the next
            # check connects again.
            if self.held:
                log.warning("lost the scheduler leadership: %s", _reason(exc))
            self._outage.failed(exc, _reason(exc))
            await self._drop_connection()
            return False
        self._outage.answered()
        return bool(got)

    async def _drop_connection(self) -> None:
        """Forget the connection without talking to the server (it may not answer): a lock
        it still held there goes when the server notices the session is gone."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()

    def _try_file(self, database: str | None) -> bool:
        if not database or database == ":memory:":
            return True
        if self.held and self._file is not None:
            return True  # flock is the process's until it lets go or dies
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
        # After a check in progress (at most CHECK_SECONDS), so it never meets a closed handle.
        async with self._turn:
            self.held = False
            metrics.LEADER.set(0)
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


def _reason(exc: BaseException) -> str:
    """What went wrong in one line: no traceback, no SQL, no connection string."""
    if isinstance(exc, TimeoutError):
        return f"no answer in {CHECK_SECONDS} s"
    return reason(exc)
