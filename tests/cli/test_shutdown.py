"""`klubb serve` stopped by SIGTERM mid-stream (issue 18): it stops taking requests, answers the
texts in flight, finishes the sender's batch and exits 0 within 30 s; started again, no text is
lost (each one Twilio would retry gets its turn once) and no message is sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from store import messages
from store.database import Database
from store.models import InboundMessage, OutboxMessage
from tests.cli.test_main import free_port
from tests.conftest import CLUB_NUMBER, create_club, twilio_form
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

KLUBB = str(Path(sys.executable).with_name("klubb"))
PUBLIC_URL = "https://klubb.example.com"
QUEUED = 240  # messages waiting in the outbox, sent at SEND_RATE: mid-stream at the SIGTERM
SEND_RATE = 40
TEXTERS = 4
PHONES = [f"+4794{n:06d}" for n in range(12)]
EXIT_SECONDS = 30


class Server:
    """`klubb serve` in its own process, on a database, its gateway the fake Twilio."""

    def __init__(self, database_url: str, fake: FakeTwilio, directory: Path) -> None:
        self.port = free_port()
        self.log = directory / "serve.log"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("KLUBB_", "TWILIO_"))
        } | {
            "KLUBB_DATABASE_URL": database_url,
            "KLUBB_PORT": str(self.port),
            "KLUBB_PUBLIC_URL": PUBLIC_URL,
            "KLUBB_GATEWAY": "twilio",
            "KLUBB_SEND_RATE": str(SEND_RATE),
            "KLUBB_LOG_LEVEL": "INFO",
            "TWILIO_API_URL": fake.url,
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [KLUBB, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.process = self.spawn()
        # Waited for without blocking: the fake gateway answers from this same event loop.
        for _ in range(200):
            assert self.process.poll() is None, self.tail()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.url + "/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise AssertionError(f"klubb serve did not start:\n{self.tail()}")

    async def exited(self, limit: float) -> int:
        assert self.process is not None
        for _ in range(int(limit * 20)):
            if self.process.poll() is not None:
                return self.process.returncode
            await asyncio.sleep(0.05)
        raise AssertionError(f"klubb serve still running after {limit} s:\n{self.tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def tail(self) -> str:
        return self.log.read_bytes()[-4000:].decode(errors="replace")


class Texter:
    """Texts HJELP from a few phones, each text signed as Twilio signs it; remembers which
    were answered 200 (Twilio is done with them) and which were not (Twilio sends them again)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.validator = RequestValidator(DEFAULT_AUTH_TOKEN)
        self.answered: set[str] = set()
        self.unanswered: dict[str, dict[str, str]] = {}
        self.sent = 0

    async def text(self, url: str, form: dict[str, str]) -> bool:
        signature = self.validator.compute_signature(PUBLIC_URL + "/sms/twilio", form)
        headers = {"X-Twilio-Signature": signature}
        sid = form["MessageSid"]
        try:
            async with self.http.post(url + "/sms/twilio", data=form, headers=headers) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            self.answered.add(sid)
            self.unanswered.pop(sid, None)
        else:
            self.unanswered[sid] = form
        return ok

    async def keep_texting(self, url: str, until: asyncio.Event) -> None:
        while not until.is_set():
            sid = "SM" + uuid.uuid4().hex
            self.sent += 1
            await self.text(url, twilio_form(PHONES[self.sent % len(PHONES)], "HJELP", sid=sid))
            await asyncio.sleep(0.005)


async def queue_messages(db: Database, club: int) -> list[str]:
    """QUEUED messages due now, one per number."""
    numbers = [f"+4795{n:06d}" for n in range(QUEUED)]
    now = dt.datetime.now(dt.UTC)

    def work(session: Session) -> None:
        for number in numbers:
            messages.enqueue(
                session,
                program_id=club,
                member_id=None,
                kind=messages.SYSTEM,
                to_number=number,
                from_number=CLUB_NUMBER,
                body=f"Hei {number}",
                segments=1,
                now=now,
            )

    await db.run(work)
    return numbers


async def test_sigterm_mid_stream_loses_no_text_and_sends_nothing_twice(
    db, database_url, tmp_path
) -> None:
    club = await create_club(db)
    numbers = await queue_messages(db, club)

    def outbox_left(session: Session) -> int:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.kind == messages.SYSTEM,
                    OutboxMessage.status.in_(("queued", "sending")),
                )
            )
            or 0
        )

    async with (
        FakeTwilio(latency=0.01) as fake,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
    ):
        server = Server(database_url, fake, tmp_path)
        texter = Texter(http)
        try:
            await server.start(http)
            done = asyncio.Event()
            texting = [
                asyncio.create_task(texter.keep_texting(server.url, done)) for _ in range(TEXTERS)
            ]
            for _ in range(400):
                if fake.counters.accepted >= QUEUED // 4 and len(texter.answered) >= 20:
                    break
                await asyncio.sleep(0.05)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            signalled = loop.time()
            code = await server.exited(EXIT_SECONDS)
            took = loop.time() - signalled
            done.set()
            await asyncio.gather(*texting)
            assert code == 0, server.tail()
            assert took < EXIT_SECONDS
            sent_before = fake.counters.accepted
            assert sent_before < QUEUED, "the outbox was empty before the SIGTERM: no test"
            assert "klubb serve: stopped" in server.tail()

            # Started again: Twilio sends again what was not answered 200; the sender goes on.
            server = Server(database_url, fake, tmp_path)
            await server.start(http)
            for _ in range(3):
                for form in list(texter.unanswered.values()):
                    await texter.text(server.url, form)
            assert texter.unanswered == {}
            for _ in range(600):
                if await db.run(outbox_left) == 0:
                    break
                await asyncio.sleep(0.05)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            assert await server.exited(EXIT_SECONDS) == 0, server.tail()
        finally:
            server.kill()

        received = Counter(message.to for message in fake.messages)

    # Every queued message went, exactly once, across the restart.
    assert fake.counters.duplicates == 0
    assert {number: received[number] for number in numbers} == dict.fromkeys(numbers, 1)

    # Every text has exactly one turn: one inbound row, one reply.
    def turns(session: Session) -> tuple[Counter[str], Counter[str]]:
        inbound = Counter(session.scalars(select(InboundMessage.provider_sid)))
        replies = Counter(
            session.scalars(
                select(InboundMessage.provider_sid).join(
                    OutboxMessage, OutboxMessage.inbound_id == InboundMessage.id
                )
            )
        )
        return inbound, replies

    inbound, replies = await db.run(turns)
    assert texter.answered, "no text was answered"
    assert set(inbound) == texter.answered
    assert set(inbound.values()) == {1}
    assert set(replies) == texter.answered
    assert set(replies.values()) == {1}
