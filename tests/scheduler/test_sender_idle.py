"""An idle tick of the sender only reads (issue 14): no write transaction when nothing is due,
and whatever is due, in doubt or finished is still dealt with at the next tick."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from scheduler import sender
from store import messages
from store.database import Database
from store.outreach import campaigns, sending
from tests.scheduler.campaign_helpers import (
    T0,
    RecordingGateway,
    add_members,
    at,
    broadcast,
    campaign_row,
    plan,
    rows_of,
)

FROM = "2020"


async def enqueue(db: Database, club: int, to: str, *, send_after: dt.datetime = T0) -> int:
    def work(session: Session) -> int:
        row = messages.enqueue(
            session,
            program_id=club,
            member_id=None,
            kind=messages.SYSTEM,
            to_number=to,
            from_number=FROM,
            body=f"til {to}",
            segments=1,
            now=T0,
            send_after=send_after,
        )
        return row.id

    return await db.run(work)


@contextlib.contextmanager
def writes(db: Database) -> Iterator[list[str]]:
    """What the database was asked to write meanwhile. On SQLite every statement of the writer
    connection counts, a BEGIN (IMMEDIATE: the write lock) too; on PostgreSQL every statement
    but a SELECT (a read's BEGIN and COMMIT are not writes)."""
    engine: Engine = getattr(db.engine, "sync_engine", db.engine)  # type: ignore[attr-defined]
    seen: list[str] = []
    everything = db.dialect == "sqlite"

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if everything or not statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    def on_begin(_conn: Any) -> None:
        if everything:
            seen.append("BEGIN")

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "begin", on_begin)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "begin", on_begin)


async def test_an_idle_tick_writes_nothing(db, club) -> None:
    """With a broadcast done, a row waiting for later and one in flight (claimed a moment ago
    by another sender), a tick has nothing to do: it sends nothing and writes nothing."""
    await add_members(db, club, 3)
    campaign_id = await broadcast(db, club)
    await plan(db, campaign_id)
    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, at(T0)) == 3
    assert (await campaign_row(db, campaign_id)).status == campaigns.DONE
    await enqueue(db, club, "+4792000001", send_after=T0 + dt.timedelta(hours=1))
    await enqueue(db, club, "+4792000002")
    in_flight = await db.run(
        functools.partial(sending.claim, now=T0 + dt.timedelta(seconds=10), limit=10)
    )
    assert [row.to for row in in_flight] == ["+4792000002"]

    with writes(db) as written:
        assert await sender.drain(db, gateway, at(T0 + dt.timedelta(seconds=20))) == 0

    assert written == []
    assert len(gateway.sent) == 3


async def test_a_row_due_after_an_idle_tick_goes_at_the_next(db, club) -> None:
    """An idle tick, then a row comes due: the next tick sends it."""
    gateway = RecordingGateway()
    with writes(db) as written:
        assert await sender.drain(db, gateway, at(T0)) == 0
    assert written == []
    await enqueue(db, club, "+4792000003", send_after=T0 + dt.timedelta(seconds=1))
    assert await sender.drain(db, gateway, at(T0)) == 0
    assert await sender.drain(db, gateway, at(T0 + dt.timedelta(seconds=1))) == 1
    assert [m.to for m in gateway.sent] == ["+4792000003"]


async def test_a_row_left_in_doubt_is_settled_by_a_tick(db, club) -> None:
    """A row a dead sender left in `sending` is the next tick's work once stale: the gateway
    never took it, so it goes back to the queue and is sent, once."""
    row_id = await enqueue(db, club, "+4792000004")
    await db.run(functools.partial(sending.claim, now=T0, limit=10))
    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, at(T0 + dt.timedelta(seconds=30))) == 0
    assert await sender.drain(db, gateway, at(T0 + sending.STALE + dt.timedelta(seconds=1))) == 1
    assert [int(m.reference) for m in gateway.sent] == [row_id]


async def test_a_broadcast_with_nothing_left_to_send_is_marked_done_by_a_tick(db, club) -> None:
    """A broadcast in `sending` whose rows have all left the queue (here: its one row was sent
    by a sender stopped before it marked the broadcast) is marked done at the next tick."""
    await add_members(db, club, 1)
    campaign_id = await broadcast(db, club)
    await plan(db, campaign_id)
    gateway = RecordingGateway()
    stop_early = _StopAfterClaim(db)
    await sender.drain(stop_early, gateway, at(T0))
    assert (await campaign_row(db, campaign_id)).status == campaigns.SENDING
    assert [row.status for row in await rows_of(db, campaign_id)] == [sending.SENT]

    assert await sender.drain(db, gateway, at(T0 + dt.timedelta(seconds=1))) == 0

    assert (await campaign_row(db, campaign_id)).status == campaigns.DONE


class _StopAfterClaim:
    """The database, for a sender whose finish_sent never ran (it died right after recording)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        self.url = db.url

    async def run(self, work: Any) -> Any:
        if getattr(work, "func", None) is campaigns.finish_sent:
            return 0
        return await self.db.run(work)

    async def read(self, work: Any) -> Any:
        return await self.db.read(work)
