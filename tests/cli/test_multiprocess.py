"""Several processes on one PostgreSQL database (issue 18): two `klubb serve` on their own ports
and two `klubb worker`, sending through a fake Twilio. Signed webhooks spread over both servers
(the same MessageSid to both at once) are each answered once and applied once; a broadcast is
planned by one process, sent by all, every member exactly once, even with a worker killed
(SIGKILL) half-way."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from bot.cli.demo import set_up_loyalty
from store.database import Database, open_database
from store.loyalty import ledger
from store.models import (
    Campaign,
    ConsentEvent,
    Coupon,
    CouponTemplate,
    InboundMessage,
    LedgerEntry,
    Member,
    OutboxMessage,
    Program,
    SenderHeartbeat,
)
from tests.cli.test_main import KLUBB, free_port
from tests.conftest import PUBLIC_URL, _truncate, create_club, twilio_form
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.scheduler.campaign_helpers import add_members, broadcast

# Four processes importing Klubb at once on two busy cores: seconds each, more under load.
STARTUP_SECONDS = 60
STOP_SECONDS = 20
WEBHOOK = "/sms/twilio"
# Each process sends at most this many a second: four senders take a few seconds over the
# broadcast, long enough to kill one half-way.
SEND_RATE = 15
# Rows a sender claimed and never finished are settled this long after their claim: the killed
# worker's, sooner than its missed heartbeats would (sending.GONE, 15 s).
IN_DOUBT_AFTER = 5
BROADCAST_MEMBERS = 300
BROADCAST_NUMBER = "2021"  # the second club's
LEADS = "this process leads the scheduler"


@dataclass
class Process:
    """One `klubb serve` or `klubb worker`, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None  # a server's

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """Two servers and two workers on one database, sending through `fake`."""

    database_url: str
    fake: FakeTwilio
    directory: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def servers(self) -> list[Process]:
        return [p for p in self.processes if p.port is not None]

    @property
    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.port is None]

    def env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KLUBB_", "TWILIO_"))}
        env.update(
            {
                "KLUBB_DATABASE_URL": self.database_url,
                "KLUBB_PORT": str(port),
                # Both servers behind one address, as behind a load balancer: Twilio signs it.
                "KLUBB_PUBLIC_URL": PUBLIC_URL,
                "KLUBB_GATEWAY": "twilio",
                "TWILIO_API_URL": self.fake.url,
                "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
                "KLUBB_SEND_RATE": str(SEND_RATE),
                "KLUBB_IN_DOUBT_AFTER": str(IN_DOUBT_AFTER),
                "KLUBB_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self, name: str, command: str) -> Process:
        port = free_port()
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [KLUBB, command],
                cwd=self.directory,
                env=self.env(port),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log, port if command == "serve" else None)
        self.processes.append(process)
        return process

    async def ready(self) -> None:
        """Every server answers /healthz and every worker has said it is sending."""
        async with aiohttp.ClientSession() as http:
            for process in self.processes:

                async def up(process: Process = process) -> bool:
                    if process.popen.poll() is not None:
                        pytest.fail(f"{process.name} exited:\n{process.text()}")
                    if process.port is None:
                        return "klubb worker: sending and running jobs" in process.text()
                    try:
                        async with http.get(process.url + "/healthz") as response:
                            return response.status == 200
                    except aiohttp.ClientError:
                        return False

                await until(up, STARTUP_SECONDS, f"{process.name} to start", self)

    def logs(self) -> str:
        """Each process's log without its access lines (one per webhook), for a failure."""

        def lines(process: Process) -> str:
            kept = [line for line in process.text().splitlines() if "aiohttp.access" not in line]
            return "\n".join(kept)[-6000:]

        return "\n".join(f"--- {p.name}\n{lines(p)}" for p in self.processes)

    async def stop(self) -> None:
        """SIGTERM to all (each finishes its batch in hand, answered by the fake, which this
        loop keeps serving meanwhile), SIGKILL to any still running after STOP_SECONDS."""
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_SECONDS
        while loop.time() < deadline:
            if all(p.popen.poll() is not None for p in self.processes):
                break
            await asyncio.sleep(0.1)
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait(5)


@contextlib.asynccontextmanager
async def cluster(database_url: str, directory: Path) -> AsyncIterator[Cluster]:
    async with FakeTwilio() as fake:
        running = Cluster(database_url, fake, directory)
        try:
            for n in (1, 2):
                running.start(f"serve{n}", "serve")
                running.start(f"worker{n}", "worker")
            await running.ready()
            yield running
        finally:
            await running.stop()


async def until(
    condition: Callable[[], Awaitable[bool]], limit: float, what: str, running: Cluster
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {limit} s waiting for {what}:\n{running.logs()}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def pg(postgres_schema: str) -> AsyncIterator[Database]:
    """PostgreSQL only: SQLite is one file for one host's processes, and its writer is one
    thread of one process; several servers and workers on one database is PostgreSQL's case."""
    await _truncate(postgres_schema)
    database = open_database(postgres_schema)
    yield database
    await database.close()


async def shop(db: Database) -> int:
    """The demo club with its coupons and rewards."""
    club = await create_club(db)

    def loyalty(session: Session) -> None:
        program = session.get(Program, club)
        assert program is not None
        set_up_loyalty(session, program)

    await db.run(loyalty)
    return club


def replies_in(twiml: str) -> list[str]:
    # Our own server's TwiML.
    return [m.text or "" for m in ElementTree.fromstring(twiml).iter("Message")]


class Texter:
    """Signed webhooks, as Twilio posts them, to either server."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.validator = RequestValidator(DEFAULT_AUTH_TOKEN)
        self.sids: set[str] = set()

    async def text(self, server: Process, form: dict[str, str]) -> str | None:
        self.sids.add(form["MessageSid"])
        signature = self.validator.compute_signature(PUBLIC_URL + WEBHOOK, form)
        async with self.http.post(
            server.url + WEBHOOK, data=form, headers={"X-Twilio-Signature": signature}
        ) as response:
            body = await response.text()
            assert response.status == 200, body
        replies = replies_in(body)
        assert len(replies) <= 1
        return replies[0] if replies else None

    async def to_both(self, servers: list[Process], sender: str, body: str) -> str | None:
        """One text (one MessageSid) delivered to both servers at the same moment, as a
        gateway's retry racing its first delivery: both get the one reply."""
        form = twilio_form(sender, body)
        first, second = await asyncio.gather(*(self.text(s, form) for s in servers))
        assert first == second, (first, second)
        return first


async def test_two_servers_and_two_workers_on_one_database(
    pg: Database, postgres_schema: str, tmp_path: Path
) -> None:
    """One cluster, two clubs, at the same time (one start-up of four processes is most of
    this test's time): a shop's members text both servers (texts_once) while another club's
    broadcast goes out and a worker is killed half-way (broadcast_once)."""
    shop_id = await shop(pg)
    club_b = await create_club(pg, name="Sagene Sykkel", numbers=[BROADCAST_NUMBER])
    # The processes run on the real clock: no quiet hours, whenever the suite runs.
    await pg.run(lambda s: s.execute(update(Program).values(quiet_start=0, quiet_end=0)))
    audience = await add_members(pg, club_b, BROADCAST_MEMBERS, prefix="+4792")
    now = dt.datetime.now(dt.UTC)
    # Made before the processes start: the leader's first planning run (2 s in) plans it.
    campaign_id = await broadcast(pg, club_b, now=now, send_at=now)
    texts = await TextsOnce.prepare(pg, shop_id)
    async with cluster(postgres_schema, tmp_path) as running:
        await asyncio.gather(
            texts.run(running),
            broadcast_once(pg, running, campaign_id, audience),
        )
    await texts.check(pg)
    assert not any("Traceback" in p.text() for p in running.processes), running.logs()
    # A sender busy with a burst is no warning (scheduler.jobs._sender_tick_while_sending).
    assert not any("running instances" in p.text() for p in running.processes), running.logs()


@dataclass
class TextsOnce:
    """POINTS from members round-robin over both servers, 16 in flight; BLI MED and JA from
    new numbers and HENT 2 (a reward for 300 points) from members, each sent to both servers
    at once: one inbound row and one reply per MessageSid, each new member made and granted
    consent once, each reward claimed once."""

    claimers: list[str]
    talkers: list[str]
    newcomers: list[str]
    sids: set[str] = field(default_factory=set)

    @classmethod
    async def prepare(cls, db: Database, club: int) -> TextsOnce:
        claimers = await add_members(db, club, 10, start=0)
        talkers = await add_members(db, club, 20, start=100)

        def credit(session: Session) -> None:
            program = session.get(Program, club)
            assert program is not None
            now = dt.datetime.now(dt.UTC)
            for member_id in session.scalars(select(Member.id).where(Member.phone.in_(claimers))):
                ledger.credit(session, program, member_id, 500, ledger.ADJUST, now, reason="test")

        await db.run(credit)
        return cls(claimers, talkers, [f"+4795{i:06d}" for i in range(10)])

    async def run(self, running: Cluster) -> None:
        servers = running.servers
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
            texter = Texter(http)
            spread = itertools.cycle(servers)
            slots = asyncio.Semaphore(16)

            async def points(sender: str, server: Process) -> str | None:
                async with slots:
                    return await texter.text(server, twilio_form(sender, "POENG"))

            async def joins(sender: str) -> tuple[str | None, str | None]:
                joined = await texter.to_both(servers, sender, "BLI MED")
                return joined, await texter.to_both(servers, sender, "JA")

            answered, joined, claimed = await asyncio.gather(
                asyncio.gather(*(points(t, next(spread)) for t in self.talkers * 3)),
                asyncio.gather(*(joins(n) for n in self.newcomers)),
                asyncio.gather(*(texter.to_both(servers, c, "HENT 2") for c in self.claimers)),
            )
        self.sids = texter.sids
        assert all(reply and reply.startswith("Du har 0 poeng") for reply in answered), answered
        for first, confirmed in joined:
            assert first, joined
            assert confirmed, joined
            assert first != confirmed, (first, confirmed)
        assert all(reply and "drikkeflaske" in reply for reply in claimed), claimed

    async def check(self, db: Database) -> None:
        newcomers, claimers = self.newcomers, self.claimers

        def counts(session: Session) -> dict[str, Any]:
            def each(column: Any, *where: Any) -> Counter[Any]:
                return Counter(session.scalars(select(column).where(*where)))

            bottle = session.scalar(
                select(CouponTemplate.id).where(CouponTemplate.key == "reward-bottle")
            )
            claimer_ids = list(session.scalars(select(Member.id).where(Member.phone.in_(claimers))))
            new_ids = select(Member.id).where(Member.phone.in_(newcomers))
            now = dt.datetime.now(dt.UTC)
            return {
                "inbound": each(InboundMessage.provider_sid),
                "replies": each(
                    OutboxMessage.inbound_id,
                    OutboxMessage.kind == "reply",
                    OutboxMessage.inbound_id.is_not(None),
                ),
                "new_members": each(Member.phone, Member.phone.in_(newcomers)),
                "new_statuses": set(
                    session.scalars(select(Member.status).where(Member.phone.in_(newcomers)))
                ),
                "grants": each(
                    ConsentEvent.member_id,
                    ConsentEvent.action == "grant",
                    ConsentEvent.member_id.in_(new_ids),
                ),
                "bottles": each(Coupon.member_id, Coupon.template_id == bottle),
                "spent": each(
                    LedgerEntry.member_id,
                    LedgerEntry.member_id.in_(claimer_ids),
                    LedgerEntry.points < 0,
                ),
                "balances": {ledger.balance(session, m, now) for m in claimer_ids},
            }

        found = await db.run(counts)
        assert set(found["inbound"]) == self.sids
        assert set(found["inbound"].values()) == {1}
        # One reply per text, each to its own inbound row.
        assert len(found["replies"]) == len(self.sids)
        assert set(found["replies"].values()) == {1}
        assert set(found["new_members"]) == set(newcomers)
        assert set(found["new_members"].values()) == {1}
        assert found["new_statuses"] == {"active"}
        assert sorted(found["grants"].values()) == [1] * len(newcomers)
        assert sorted(found["bottles"].values()) == [1] * len(claimers)
        assert sorted(found["spent"].values()) == [1] * len(claimers)
        assert found["balances"] == {200}


async def broadcast_once(
    db: Database, running: Cluster, campaign_id: int, audience: list[str]
) -> None:
    """A broadcast to 300 members: one process plans it (one outbox row per member), the
    four send it; a worker is killed with SIGKILL when about half are sent, and every member
    still gets it exactly once (its rows in doubt settled by asking the gateway)."""
    fake = running.fake

    def senders(session: Session) -> dict[str, Counter[int | None]]:
        """Per state, the pid of the process whose sender claimed the row last."""
        rows = session.execute(
            select(OutboxMessage.status, SenderHeartbeat.pid)
            .outerjoin(SenderHeartbeat, SenderHeartbeat.id == OutboxMessage.claimed_by)
            .where(OutboxMessage.campaign_id == campaign_id)
        )
        found: dict[str, Counter[int | None]] = {}
        for status, pid in rows:
            found.setdefault(status, Counter())[pid] += 1
        return found

    def unfinished(session: Session) -> int:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.campaign_id == campaign_id,
                    OutboxMessage.status.in_(("queued", "sending")),
                )
            )
            or 0
        )

    def sent() -> list[str]:
        # The broadcast's club only: the shop's journeys may one day find its members due.
        return [m.to for m in fake.messages if m.from_ == BROADCAST_NUMBER]

    async def half_sent() -> bool:
        return len(sent()) >= BROADCAST_MEMBERS // 2

    await until(half_sent, 40, "half the broadcast to be sent", running)
    victim, other = running.workers
    sent_before = await db.run(senders)
    leaders = [p.name for p in running.processes if LEADS in p.text()]
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(10)
    assert len(sent()) < BROADCAST_MEMBERS, "the broadcast was done before the kill"
    # It died holding a claim (rows in `sending`): the others must settle them, not skip them.
    held = (await db.run(senders)).get("sending", Counter())
    assert held[victim.popen.pid] > 0, held

    async def all_sent() -> bool:
        return await db.run(unfinished) == 0

    await until(all_sent, 40, "the others to finish the broadcast", running)
    sent_after = await db.run(senders)
    received = Counter(sent())
    # Every member exactly once, nothing else sent from its number, no body sent twice.
    assert set(received) == set(audience)
    assert set(received.values()) == {1}, [n for n, c in received.items() if c > 1][:5]
    assert fake.counters.duplicates == 0
    # Planned once: one outbox row per member, planned by the one leader.
    assert set(sent_after) == {"sent"}, sent_after
    assert sum(sent_after["sent"].values()) == BROADCAST_MEMBERS, sent_after
    planned = [p.name for p in running.processes if f"campaign {campaign_id} planned" in p.text()]
    assert len(planned) == 1, running.logs()
    assert leaders == planned, (leaders, planned)

    # Marked done once (any sender may mark it: a conditional UPDATE), when nothing waits.
    async def done() -> bool:
        campaign = await db.run(lambda session: session.get(Campaign, campaign_id))
        return campaign.status == "done" and None not in (campaign.planned_at, campaign.finished_at)

    await until(done, 20, "the broadcast to be marked done", running)
    # Both workers sent (the killed one before it died), and every sender was one of ours.
    sending_pids = set(sent_before.get("sent", Counter())) | set(sent_after["sent"])
    assert victim.popen.pid in sending_pids, sent_before
    assert other.popen.pid in sending_pids, sent_after
    assert sending_pids <= {p.popen.pid for p in running.processes}, sending_pids
    survivors = [p for p in running.processes if p is not victim]
    assert all("Traceback" not in p.text() for p in survivors), running.logs()
