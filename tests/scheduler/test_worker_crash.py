"""A `klubb worker` killed mid-campaign (SIGKILL, no goodbye) and started again: every member
gets the campaign's message exactly once, through the real Twilio gateway and a fake Twilio."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select, update

from store.models import OutboxMessage, Program
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.scheduler.campaign_helpers import add_members, broadcast, plan

MEMBERS = 1500
KLUBB = Path(sys.executable).with_name("klubb")


def start_worker(database_url: str, fake: FakeTwilio, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KLUBB_DATABASE_URL": database_url,
        "KLUBB_GATEWAY": "twilio",
        "TWILIO_API_URL": fake.url,
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        # Slow enough to be killed half-way; rows in doubt are settled 2 s after their claim.
        "KLUBB_SEND_RATE": "400",
        "KLUBB_IN_DOUBT_AFTER": "2",
    }
    with log.open("ab") as output:
        # The child has its own copy of the descriptor: ours can close at once.
        return subprocess.Popen(
            [str(KLUBB), "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )


async def until(condition, limit: float, what: str, log: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await condition():
        if loop.time() > deadline:
            tail = log.read_bytes()[-3000:].decode(errors="replace")  # noqa: ASYNC240
            raise AssertionError(f"timed out waiting for {what}:\n{tail}")
        await asyncio.sleep(0.05)


async def test_a_killed_worker_restarted_sends_each_member_exactly_once(
    db, club, database_url, tmp_path
):
    phones = await add_members(db, club, MEMBERS)
    # The worker runs on the real clock: no quiet hours, whenever the suite runs.
    await db.run(lambda s: s.execute(update(Program).values(quiet_start=0, quiet_end=0)))
    now = dt.datetime.now(dt.UTC)
    campaign_id = await broadcast(db, club, now=now, send_at=now)
    assert await plan(db, campaign_id, now=now) == MEMBERS
    log = tmp_path / "worker.log"

    async def waiting() -> int:
        def count(session) -> int:
            return session.scalar(
                select(func.count()).where(
                    OutboxMessage.campaign_id == campaign_id,
                    OutboxMessage.status.in_(("queued", "sending")),
                )
            )

        return await db.run(count)

    async with FakeTwilio(latency=0.005) as fake:
        first = start_worker(database_url, fake, log)
        try:

            async def some_sent() -> bool:
                return fake.counters.accepted >= MEMBERS // 3

            await until(some_sent, 60, "the first worker to send a third", log)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        killed_at = fake.counters.accepted
        assert killed_at < MEMBERS, "the worker finished before it could be killed"

        second = start_worker(database_url, fake, log)
        try:

            async def all_done() -> bool:
                return await waiting() == 0

            await until(all_done, 90, "the second worker to finish the campaign", log)
        finally:
            second.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                second.wait(15)
            if second.poll() is None:
                second.kill()

        received = Counter(message.to for message in fake.messages)
    assert set(received) == set(phones), log.read_text()[-3000:]
    assert set(received.values()) == {1}, [n for n, c in received.items() if c > 1][:5]

    def statuses(session) -> dict[str, int]:
        return dict(
            session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.campaign_id == campaign_id)
                .group_by(OutboxMessage.status)
            ).all()
        )

    assert await db.run(statuses) == {"sent": MEMBERS}
