"""Helpers for the campaign tests: members in bulk, a recording gateway, plan-and-send in a line."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections import Counter
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from scheduler import sender
from scheduler.gateway import OutboundSms
from store.database import Database
from store.members import members
from store.models import Campaign, Member, OutboxMessage, Program
from store.outreach import campaigns

# A Tuesday at 10:00 in Oslo: inside sending hours.
T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


def at(moment: dt.datetime) -> sender.Clock:
    return lambda: moment


class RecordingGateway:
    """Records every SMS handed to it; raises the error set for a number instead of sending."""

    def __init__(self, errors: dict[str, Exception] | None = None) -> None:
        self.sent: list[OutboundSms] = []
        self.errors = errors or {}
        self.counter = 0

    async def send(self, message: OutboundSms) -> str:
        await asyncio.sleep(0)  # a real gateway yields while it waits for the network
        error = self.errors.get(message.to)
        if error is not None:
            raise error
        self.counter += 1
        self.sent.append(message)
        return f"SMfake{self.counter:06d}"

    async def close(self) -> None:
        """Nothing to release."""

    async def find_sent(self, message: OutboundSms, since: dt.datetime) -> str | None:
        for index, sent in enumerate(self.sent):
            if (sent.to, sent.from_, sent.body) == (message.to, message.from_, message.body):
                return f"SMfake{index + 1:06d}"
        return None

    def per_number(self) -> Counter[str]:
        return Counter(message.to for message in self.sent)

    def to(self, number: str) -> list[str]:
        return [message.body for message in self.sent if message.to == number]


async def add_members(
    db: Database,
    club: int,
    count: int,
    *,
    start: int = 0,
    status: str = members.ACTIVE,
    language: str | None = "nb",
    prefix: str = "+4791",
    **columns: Any,
) -> list[str]:
    """`count` members in one statement; returns their numbers."""
    phones = [f"{prefix}{start + i:06d}" for i in range(count)]

    def work(session: Session) -> None:
        program = session.get(Program, club)
        assert program is not None
        rows = [
            {
                "program_id": club,
                "phone": phone,
                "phone_hash": members.hash_phone(program, phone),
                "status": status,
                "language": language,
                "first_name": columns.get("first_name", f"Navn{i}"),
                "joined_at": T0 - dt.timedelta(days=100),
                "created_at": T0 - dt.timedelta(days=100),
                "updated_at": T0 - dt.timedelta(days=100),
                "delivery_failures": 0,
                **{k: v for k, v in columns.items() if k != "first_name"},
            }
            for i, phone in enumerate(phones)
        ]
        session.execute(insert(Member), rows)

    await db.run(work)
    return phones


async def broadcast(db: Database, club: int, *, now: dt.datetime = T0, **options: Any) -> int:
    """A broadcast created as the CLI creates it; returns its id."""
    options.setdefault("name", "Test")
    options.setdefault("texts", {"nb": "Hei {first_name}! Nyhet i {club}."})
    options.setdefault("segment", None)

    def work(session: Session) -> int:
        program = session.get(Program, club)
        return campaigns.create_broadcast(session, program, now=now, **options).id

    return await db.run(work)


async def plan(db: Database, campaign_id: int, now: dt.datetime = T0, chunk: int = 5000) -> int:
    """Plan a broadcast to the end; returns the outbox rows written."""
    written = 0
    while True:
        step = await db.run(
            functools.partial(campaigns.plan_chunk, campaign_id=campaign_id, now=now, chunk=chunk)
        )
        written += step.rows
        if step.done:
            return written


async def rows_of(db: Database, campaign_id: int) -> list[OutboxMessage]:
    def work(session: Session) -> list[OutboxMessage]:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.campaign_id == campaign_id)
                .order_by(OutboxMessage.id)
            )
        )

    return await db.run(work)


async def campaign_row(db: Database, campaign_id: int) -> Campaign:
    return await db.run(lambda session: session.get(Campaign, campaign_id))


async def run(db: Database, work: Any) -> Any:
    return await db.run(work)
