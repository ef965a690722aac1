"""Scheduler leadership under jobs that ask at the same moment (issue 18): no "another operation
is in progress" on the shared PostgreSQL connection, one leader, and leadership moving on when
the leader's connection drops."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from scheduler.jobs import _led
from scheduler.leader import LOCK_KEY, Leadership

JOBS = 6


async def test_jobs_asking_at_once_get_one_leader_and_no_error(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes' schedulers, each with several led jobs starting at the same moment (as
    APScheduler starts them): exactly one process runs them, and nothing is logged as an error."""
    caplog.set_level(logging.INFO)
    first, second = Leadership(database_url), Leadership(database_url)
    ran: dict[str, int] = {"first": 0, "second": 0}

    def job(name: str):
        async def work() -> None:
            ran[name] += 1

        return _led(first if name == "first" else second, work)

    try:
        for _ in range(3):  # the leader asks again while it leads; the follower keeps failing
            await asyncio.gather(*(job(n)() for n in ("first", "second") for _ in range(JOBS)))
        assert first.held != second.held
        assert sorted(ran.values()) == [0, 3 * JOBS]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
    finally:
        await first.release()
        await second.release()


@pytest.fixture
def postgres_url(postgres_schema: str) -> str:
    return postgres_schema


async def _kill_the_lock_holder(url: str) -> None:
    """What a leader's crash or a dropped connection does: its session ends on the server."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :high AND objid = :low"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ),
                {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF},
            )
            assert pid is not None
            # Waits (up to 5 s) until the session is gone, and its lock with it.
            assert await conn.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    finally:
        await engine.dispose()


async def test_leadership_moves_on_when_the_leaders_connection_drops(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The leader's session ends (a crash, a network cut, a server restart): another process
    takes the lead, and the old leader notices at its next check (a warning, no traceback) and
    stays a follower, so there is never more than one leader."""
    caplog.set_level(logging.INFO)
    first, second = Leadership(postgres_url), Leadership(postgres_url)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        await _kill_the_lock_holder(postgres_url)
        assert await second.try_acquire()
        results = await asyncio.gather(*(first.try_acquire() for _ in range(JOBS)))
        assert results == [False] * JOBS
        assert not first.held
        assert await second.try_acquire()
        lost = [r for r in caplog.records if "lost the scheduler leadership" in r.getMessage()]
        assert len(lost) == 1
        assert lost[0].levelno == logging.WARNING
        assert lost[0].exc_info is None
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
    finally:
        await first.release()
        await second.release()


async def test_a_database_that_does_not_answer_leaves_no_leader_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL unreachable: every job's check says "not the leader", and the outage is said
    in one warning without a traceback, not one a check."""
    # Port 1 on the loopback: refused at once.
    leadership = Leadership("postgresql://postgres@127.0.0.1:1/klubb")
    try:
        results = await asyncio.gather(*(leadership.try_acquire() for _ in range(3)))
        assert results == [False] * 3
        warnings = [r for r in caplog.records if r.name == "scheduler.leader"]
        assert [r.levelno for r in warnings] == [logging.WARNING]
        assert warnings[0].exc_info is None
        assert "the database is unreachable" in warnings[0].getMessage()
    finally:
        await leadership.release()
