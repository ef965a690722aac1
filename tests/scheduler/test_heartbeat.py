"""Senders' heartbeats (issue 18): the rows a crashed sender left in doubt are settled within
seconds, not after KLUBB_IN_DOUBT_AFTER, asking the gateway first (never sent twice); a live
sender's rows are left to it; a clean stop removes the heartbeat; an idle tick still only reads."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from scheduler import sender
from scheduler.gateway import OutboundSms
from store.database import Database
from store.models import OutboxMessage, Program, SenderHeartbeat
from store.outreach import sending
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.scheduler.campaign_helpers import T0, RecordingGateway, add_members, at, broadcast, plan
from tests.scheduler.test_sender_idle import enqueue, writes

KLUBB = Path(sys.executable).with_name("klubb")
SECONDS = dt.timedelta(seconds=1)


async def beat(db: Database, sender_id: str, when: dt.datetime) -> None:
    await db.run(
        functools.partial(sending.beat, sender=sender_id, host="h", pid=1, now=when),
    )


async def claim(db: Database, sender_id: str | None, when: dt.datetime = T0) -> list[int]:
    claimed = await db.run(
        functools.partial(sending.claim, now=when, limit=100, sender=sender_id),
    )
    return [row.id for row in claimed]


async def outbox(db: Database) -> dict[int, tuple[str, str | None]]:
    """Each row's status and who claimed it."""

    def work(session: Session) -> dict[int, tuple[str, str | None]]:
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.claimed_by)
        )
        return {row.id: (row.status, row.claimed_by) for row in rows}

    return await db.run(work)


class Alive:
    """A heartbeat, as drain() is given one, for a sender whose row the test writes."""

    def __init__(self, sender_id: str) -> None:
        self.id = sender_id


async def test_a_crashed_senders_rows_are_settled_within_seconds(db, club) -> None:
    """A sender claims three rows, hands one to the gateway and dies (its heartbeat stops at
    T0). Ten seconds on, another sender leaves them (the claim is young); once the dead one
    has missed three beats, the next tick settles them, 16 s after the crash and not 300 s:
    the one the gateway has is marked sent, the two it never saw are sent, once each."""
    ids = [await enqueue(db, club, f"+479200001{n}") for n in range(3)]
    await beat(db, "crashed", T0)
    assert await claim(db, "crashed") == ids
    gateway = RecordingGateway()
    bodies = await db.run(
        lambda s: {r.id: r for r in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))}
    )
    first = bodies[ids[0]]
    await gateway.send(OutboundSms(first.to_number, first.from_number, first.body, str(first.id)))
    await beat(db, "alive", T0 + 10 * SECONDS)

    drained = await sender.drain(db, gateway, at(T0 + 10 * SECONDS), heartbeat=Alive("alive"))
    assert drained == 0
    assert {status for status, _ in (await outbox(db)).values()} == {sending.SENDING}

    later = T0 + sending.GONE + SECONDS
    assert later - T0 < sending.STALE
    await beat(db, "alive", later)
    assert await sender.drain(db, gateway, at(later), heartbeat=Alive("alive")) == 2

    assert {status for status, _ in (await outbox(db)).values()} == {sending.SENT}
    assert sorted(gateway.per_number().values()) == [1, 1, 1]
    assert [int(m.reference) for m in gateway.sent] == ids


async def test_a_live_senders_rows_are_left_to_it(db, club) -> None:
    """Rows claimed by a sender that beats are in hand, not in doubt: another sender's tick
    leaves them (and writes nothing) until KLUBB_IN_DOUBT_AFTER, however long they wait."""
    await enqueue(db, club, "+4792000021")
    await enqueue(db, club, "+4792000022")
    await beat(db, "busy", T0)
    await claim(db, "busy")
    when = T0 + sending.STALE - SECONDS
    await beat(db, "busy", when)
    gateway = RecordingGateway()

    with writes(db) as written:
        assert await sender.drain(db, gateway, at(when), heartbeat=Alive("other")) == 0

    assert written == []
    assert gateway.sent == []
    assert set((await outbox(db)).values()) == {(sending.SENDING, "busy")}


async def test_a_sender_never_counts_itself_gone(db, club) -> None:
    """A sender whose own beat is late (its database slow a while) does not settle the rows
    it holds itself: only another sender may, and only after a beat that truly stopped."""
    await enqueue(db, club, "+4792000031")
    await beat(db, "me", T0)
    await claim(db, "me")
    later = T0 + sending.GONE + 5 * SECONDS
    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, at(later), heartbeat=Alive("me")) == 0
    assert set((await outbox(db)).values()) == {(sending.SENDING, "me")}


async def test_a_sender_without_a_heartbeat_row_is_gone(db, club) -> None:
    """A claim by a sender with no heartbeat row (it stopped, its row removed; or forgotten)
    is settled once the claim is GONE old; a claim with no sender id waits STALE as before."""
    await enqueue(db, club, "+4792000041")
    await claim(db, "vanished")
    await enqueue(db, club, "+4792000042")
    await claim(db, None)
    later = T0 + sending.GONE + SECONDS
    gateway = RecordingGateway()
    await beat(db, "settler", later)

    assert await sender.drain(db, gateway, at(later), heartbeat=Alive("settler")) == 1

    assert [m.to for m in gateway.sent] == ["+4792000041"]
    rows = sorted((await outbox(db)).values(), key=lambda r: r[0])
    assert rows == [(sending.SENDING, None), (sending.SENT, "settler")]


async def test_a_settler_takes_the_rows_over_as_its_own(db, club) -> None:
    """The rows a settler takes over carry its id while it asks the gateway: a third sender
    leaves them while it beats, and settles them should it die in turn."""
    await enqueue(db, club, "+4792000051")
    await beat(db, "dead", T0)
    await claim(db, "dead")
    later = T0 + sending.GONE + SECONDS
    await beat(db, "settler", later)
    taken = await db.run(functools.partial(sending.in_doubt, now=later, me="settler"))
    assert len(taken) == 1
    assert set((await outbox(db)).values()) == {(sending.SENDING, "settler")}
    assert await db.run(functools.partial(sending.in_doubt, now=later, me="third")) == []
    after_it_died = later + sending.GONE + SECONDS
    again = await db.run(functools.partial(sending.in_doubt, now=after_it_died, me="third"))
    assert [item.claimed.id for item in again] == [item.claimed.id for item in taken]


async def test_a_heartbeat_is_written_at_start_and_removed_at_a_clean_stop(db) -> None:
    """start() writes the row (this host and process) before any claim; stop() removes it."""
    heartbeat = sender.Heartbeat(db, every=0.05)
    await heartbeat.start()
    try:
        first = await db.run(lambda s: s.get(SenderHeartbeat, heartbeat.id))
        assert first is not None
        assert first.pid == os.getpid()
        seen = first.seen_at
        await asyncio.sleep(0.3)
        again = await db.run(lambda s: s.get(SenderHeartbeat, heartbeat.id))
        assert again is not None
        assert again.seen_at > seen
    finally:
        await heartbeat.stop()
    assert await db.run(lambda s: s.get(SenderHeartbeat, heartbeat.id)) is None


# --- a real worker killed, another settling its rows within seconds ---------------------------

MEMBERS = 600


def start_worker(database_url: str, fake: FakeTwilio, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLUBB_", "TWILIO_"))} | {
        "KLUBB_DATABASE_URL": database_url,
        "KLUBB_GATEWAY": "twilio",
        "TWILIO_API_URL": fake.url,
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "KLUBB_SEND_RATE": "150",
        # KLUBB_IN_DOUBT_AFTER left at its default, 300 s: the heartbeat is what settles.
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(KLUBB), "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )


async def test_a_killed_workers_rows_are_settled_in_seconds_by_the_next(
    db, club, database_url, tmp_path
) -> None:
    """A `klubb worker` SIGKILLed mid-campaign leaves rows in `sending`; the next worker, with
    KLUBB_IN_DOUBT_AFTER at its 300 s, settles them within half a minute (the dead one's
    heartbeat stopped), and every member gets the message exactly once."""
    phones = await add_members(db, club, MEMBERS)
    await db.run(lambda s: s.execute(update(Program).values(quiet_start=0, quiet_end=0)))
    now = dt.datetime.now(dt.UTC)
    campaign_id = await broadcast(db, club, now=now, send_at=now)
    assert await plan(db, campaign_id, now=now) == MEMBERS
    log = tmp_path / "worker.log"

    def counts(session: Session) -> dict[str, int]:
        return dict(
            session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.campaign_id == campaign_id)
                .group_by(OutboxMessage.status)
            ).all()
        )

    async with FakeTwilio(latency=0.005) as fake:
        first = start_worker(database_url, fake, log)
        try:
            for _ in range(1200):
                if fake.counters.accepted >= MEMBERS // 4 or first.poll() is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert fake.counters.accepted < MEMBERS, "the worker finished before it was killed"
        left = await db.run(counts)
        assert left.get(sending.SENDING, 0) > 0, f"nothing was in hand when killed: {left}"

        loop = asyncio.get_running_loop()
        restarted = loop.time()
        second = start_worker(database_url, fake, log)
        try:
            while (await db.run(counts)) != {sending.SENT: MEMBERS}:
                took = loop.time() - restarted
                assert took < 60, f"not settled after {took:.0f} s:\n{log.read_text()[-3000:]}"
                await asyncio.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                second.wait(30)
            if second.poll() is None:
                second.kill()
        received = Counter(message.to for message in fake.messages)
    assert set(received) == set(phones)
    assert set(received.values()) == {1}
    assert second.returncode == 0
    # The clean stop removed the second worker's heartbeat; the killed one's is left to age.
    assert await db.run(lambda s: s.scalar(select(func.count()).select_from(SenderHeartbeat))) == 1
