"""Texts on PostgreSQL through psycopg 3 (`postgresql+psycopg://`): the turn in a thread, the
same answers and rows as through asyncpg (README: Benchmarks says why both exist)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from flows import conversation
from store.database import Database, ThreadedPostgresDatabase
from store.models import ConsentEvent, InboundMessage, OutboxMessage
from tests.bot.test_webhook import count, spy
from tests.conftest import CLUB_NUMBER, _truncate


@pytest.fixture
def database_url(postgres_schema: str) -> str:
    """The run's PostgreSQL database, emptied, named with the psycopg driver."""
    asyncio.run(_truncate(postgres_schema))
    return (
        make_url(postgres_schema)
        .set(drivername="postgresql+psycopg")
        .render_as_string(hide_password=False)
    )


async def test_the_url_picks_the_threaded_database(db: Database) -> None:
    assert isinstance(db, ThreadedPostgresDatabase)


async def test_a_member_joins_asks_and_stops(phone: Any, db: Database) -> None:
    """JOIN, YES, POINTS, STOP: the replies of asyncpg's path, one inbound row and one sent
    reply row per text, each reply row pointing at its text."""
    assert "JA" in (await phone.text("JOIN") or "")
    assert (await phone.text("JA") or "").startswith("Velkommen til Torshov Sport!")
    assert "poeng" in (await phone.text("POENG") or "")
    assert "START" in (await phone.text("STOPP") or "")

    def rows(session: Any) -> list[tuple[Any, ...]]:
        return list(
            session.execute(
                select(
                    InboundMessage.body,
                    InboundMessage.reply,
                    OutboxMessage.body,
                    OutboxMessage.kind,
                    OutboxMessage.status,
                    OutboxMessage.to_number,
                    OutboxMessage.from_number,
                    OutboxMessage.segments,
                    OutboxMessage.created_at,
                    OutboxMessage.sent_at,
                    InboundMessage.received_at,
                )
                .join(OutboxMessage, OutboxMessage.inbound_id == InboundMessage.id)
                .order_by(InboundMessage.id)
            )
        )

    found = await db.run(rows)
    assert [row[0] for row in found] == ["JOIN", "JA", "POENG", "STOPP"]
    for _, reply, body, kind, status, to, sender, parts, made, sent, received in found:
        assert (body, kind, status, to, sender) == (
            reply,
            "reply",
            "sent_inline",
            phone.number,
            CLUB_NUMBER,
        )
        assert parts >= 1
        assert made == sent == received
        assert isinstance(made, dt.datetime)
    assert await count(db, OutboxMessage) == 4


async def test_deliveries_of_one_text_at_once_run_its_turn_once(
    phone: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four deliveries of one YES at the same moment, in four threads: consent granted once,
    four equal replies."""
    await phone.text("JOIN")
    turns = spy(monkeypatch, conversation, "_turn")
    replies = await asyncio.gather(*(phone.text("JA", sid="SMsame4") for _ in range(4)))
    assert len(set(replies)) == 1
    assert len(turns) == 1
    assert await count(db, ConsentEvent) == 1
    assert await count(db, InboundMessage) == 2
