"""The database out of reach while the scheduler runs (the operator's review: a traceback a
second from the sender in every process): each job says so in one WARNING line without a
traceback when it starts failing, DEBUG while it keeps failing, one INFO line when the
database answers again, and still counts every failed run; a bug still raises (APScheduler
logs it as an ERROR with its traceback)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from scheduler import jobs, metrics, sender
from store.database import Database, Lookup, UnitOfWork, open_database
from tests.scheduler.campaign_helpers import RecordingGateway

# Port 1 on the loopback: nothing listens, so asyncpg's connect is refused at once (the
# driver's own error, as with PostgreSQL stopped).
NOWHERE = "postgresql+asyncpg://postgres@127.0.0.1:1/klubb"


class Switchable:
    """A Database that goes out of reach while `down` is set: its calls then go to a
    PostgreSQL that refuses connections; else to the real `db`."""

    def __init__(self, db: Database, nowhere: Database) -> None:
        self.db = db
        self.nowhere = nowhere
        self.url = db.url
        self.down = False

    def _now(self) -> Database:
        return self.nowhere if self.down else self.db

    async def run(self, work: UnitOfWork[Any]) -> Any:
        return await self._now().run(work)

    async def turn(self, work: UnitOfWork[Any], key: str | None = None) -> Any:
        return await self._now().turn(work, key)

    async def read(self, work: UnitOfWork[Any]) -> Any:
        return await self._now().read(work)

    async def lookup(self, work: Lookup[Any]) -> Any:
        return await self._now().lookup(work)

    async def close(self) -> None:
        pass


@pytest.fixture
async def switchable(db: Database) -> AsyncIterator[Switchable]:
    nowhere = open_database(NOWHERE)
    yield Switchable(db, nowhere)
    await nowhere.close()


def failures(job: str) -> float:
    sample = metrics.REGISTRY.get_sample_value("klubb_scheduler_job_failures_total", {"job": job})
    return sample or 0.0


def said(caplog: pytest.LogCaptureFixture, level: int, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and r.name == logger]


async def test_the_sender_failing_on_an_outage_warns_once_then_says_it_recovered(
    switchable: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    """Five ticks of the sender on a database that refuses connections, then one that
    answers: one WARNING (no traceback) naming the job and the driver's error, the four after
    it at DEBUG only, nothing raised to APScheduler, five failures counted, and one INFO line
    when it answers again; the ticks after that say nothing."""
    caplog.set_level(logging.DEBUG, logger="scheduler.jobs")
    tick = jobs._timed("outbox-sender", sender.drain)
    gateway = RecordingGateway()
    before = failures("outbox-sender")

    switchable.down = True
    for _ in range(5):
        assert await tick(db=switchable, gateway=gateway) is None
    warnings = said(caplog, logging.WARNING, "scheduler.jobs")
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].exc_info is None
    assert "outbox-sender" in warnings[0].getMessage()
    assert "the database is unreachable" in warnings[0].getMessage()
    assert "ConnectionRefusedError" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert len(said(caplog, logging.DEBUG, "scheduler.jobs")) == 4
    assert said(caplog, logging.INFO, "scheduler.jobs") == []
    assert failures("outbox-sender") - before == 5

    switchable.down = False
    for _ in range(3):
        assert await tick(db=switchable, gateway=gateway) == 0
    recovered = said(caplog, logging.INFO, "scheduler.jobs")
    assert len(recovered) == 1
    assert "outbox-sender: the database answers again" in recovered[0].getMessage()
    assert "5 failed tries" in recovered[0].getMessage()
    assert len(said(caplog, logging.WARNING, "scheduler.jobs")) == 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert failures("outbox-sender") - before == 5


async def test_a_bug_is_raised_with_its_traceback_not_taken_for_an_outage(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A job whose SQL is wrong (the database answers: no such table) fails as before: raised,
    so APScheduler logs it as an ERROR with its traceback, and counted."""
    caplog.set_level(logging.DEBUG, logger="scheduler.jobs")

    async def broken(db: Database) -> None:
        await db.run(lambda session: session.execute(text("SELECT * FROM no_such_table")))

    before = failures("broken-job")
    with pytest.raises(Exception, match="no_such_table"):
        await jobs._timed("broken-job", broken)(db)
    assert failures("broken-job") - before == 1
    assert [r for r in caplog.records if r.name == "scheduler.jobs"] == []


async def test_the_running_scheduler_says_an_outage_once_and_no_traceback(
    switchable: Switchable, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler as `klubb serve` runs it, its sender ticking every 0.1 s: a second of
    outage logs one warning for the sender and nothing at ERROR (APScheduler's "raised an
    exception" with its traceback was the flood), then one line when it answers again."""
    monkeypatch.setattr(jobs, "SEND_EVERY_SECONDS", 0.1)
    caplog.set_level(logging.INFO)
    async with jobs.running_scheduler(switchable, RecordingGateway()):  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        switchable.down = True
        await asyncio.sleep(1.0)
        switchable.down = False
        await asyncio.sleep(0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("scheduler"))
    sender_lines = [r for r in caplog.records if "scheduler job outbox-sender" in r.getMessage()]
    assert [r.levelno for r in sender_lines] == [logging.WARNING, logging.INFO]


async def test_the_senders_heartbeat_says_an_outage_once(
    switchable: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    """Beats missed on an outage: one warning without a traceback (was one with a traceback a
    beat), one line when a beat goes through again."""
    caplog.set_level(logging.DEBUG, logger="scheduler.sender")
    heartbeat = sender.Heartbeat(switchable, every=0.05)  # type: ignore[arg-type]
    await heartbeat.start()
    try:
        switchable.down = True
        await asyncio.sleep(0.4)
        switchable.down = False
        await asyncio.sleep(0.3)
    finally:
        await heartbeat.stop()
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.INFO], [
        r.getMessage() for r in lines
    ]
    assert all(r.exc_info is None for r in caplog.records)
    assert len(said(caplog, logging.DEBUG, "scheduler.sender")) >= 2
