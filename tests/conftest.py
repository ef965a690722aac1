"""Fixtures: a fresh, migrated database per test on SQLite and on PostgreSQL, the app, a phone."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.cli.demo import DEMO_CLUB, DEMO_QUESTIONS
from bot.settings import Settings
from store import migrate
from store.clubs import admins, programs
from store.database import Database, open_database
from store.models import Base

POSTGRES_URL = os.environ.get(
    "KLUBB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
AUTH_TOKEN = "test-auth-token"
PUBLIC_URL = "https://klubb.example.com"
CLUB_NUMBER = "2020"
BACKENDS = ["sqlite", "postgresql"]

# No deadline for an example: a property holds or not whatever the machine's load (two test
# workers, a loaded CI host); speed is the benches' to measure, never a timed test's.
settings.register_profile("klubb", deadline=None)
settings.load_profile("klubb")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (migrating per test would be slow)."""
    path = tmp_path_factory.mktemp("template") / "klubb.db"
    asyncio.run(migrate.upgrade(f"sqlite:///{path}"))
    return path


def migrated_by_a_newer_klubb(sqlite_template: Path, path: Path) -> str:
    """A SQLite database at `path` whose schema a newer Klubb migrated (a revision this one
    does not know), as its URL."""
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A database of this run's own, created and migrated once and dropped at the end (so two
    runs on one server never meet); fail, never skip, if PostgreSQL can't be reached."""
    name = f"klubb_test_{uuid.uuid4().hex[:12]}"
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    async def admin(statement: str) -> None:
        engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    try:
        asyncio.run(migrate.upgrade(url))
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: a copy of the SQLite template, or truncated PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "klubb.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_schema")
    asyncio.run(_truncate(url))
    yield url


async def _truncate(url: str) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url)
    yield database
    await database.close()


@pytest.fixture
def loop_and_db(database_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Database]]:
    """A loop and a database of a plain (sync) test's own: hypothesis runs many examples in
    one test, which an async test's fixtures can't give it."""
    loop = asyncio.new_event_loop()
    db = open_database(database_url)
    try:
        yield loop, db
    finally:
        loop.run_until_complete(db.close())
        loop.close()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def create_club(db: Database, **overrides: Any) -> int:
    """The demo club (three questions) on CLUB_NUMBER, with `overrides` to its settings."""
    questions = overrides.pop("questions", DEMO_QUESTIONS)

    def work(session: Any) -> int:
        settings = {**DEMO_CLUB, "numbers": [CLUB_NUMBER], **overrides}
        program = programs.create(session, **settings, now=now())
        for question in questions:
            programs.add_question(session, program, **question)
        return program.id

    return await db.run(work)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        public_url=PUBLIC_URL,
        twilio_auth_token=AUTH_TOKEN,
        run_scheduler=False,
    )


@pytest.fixture
async def client(settings: Settings, aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Admin passwords hashed at a test's cost (1 pass, 1 MiB) rather than 0.3 s a hash."""
    monkeypatch.setattr(
        admins, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    # The decoy hash is made once per process: made again at this cost, and after the test.
    admins._decoy_hash.cache_clear()
    yield
    admins._decoy_hash.cache_clear()


@pytest.fixture
async def club(db: Database) -> int:
    return await create_club(db)


def sign(url: str, form: dict[str, str]) -> str:
    return RequestValidator(AUTH_TOKEN).compute_signature(url, form)


def twilio_form(sender: str, body: str, sid: str | None = None, to: str = CLUB_NUMBER) -> dict:
    return {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "SmsSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "1" * 32,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
    }


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    host: str, port: int, method: str, path: bytes, headers: dict[str, bytes], body: bytes = b""
) -> RawAnswer:
    """A request sent as the bytes given, which aiohttp's client would not send (a header's
    byte that is not UTF-8); the answer read up to the server's close."""
    lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: test", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, rest = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found = dict(line.split(": ", 1) for line in header_lines)
    if found.get("Transfer-Encoding") == "chunked":
        rest = _unchunked(rest)
    return RawAnswer(int(status_line.split()[1]), found, rest)


def _unchunked(data: bytes) -> bytes:
    body = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        length = int(size, 16)
        if not length:
            break
        body, data = body + data[:length], data[length + 2 :]
    return body


def replies_in(twiml: str) -> list[str]:
    return [m.text or "" for m in ElementTree.fromstring(twiml).iter("Message")]


class Phone:
    """A member's phone: texts go through the signed webhook, replies come back as text."""

    def __init__(self, client: TestClient, number: str, to: str = CLUB_NUMBER) -> None:
        self.client = client
        self.number = number
        self.to = to

    async def text(self, body: str, sid: str | None = None) -> str | None:
        """Send `body`; the reply's text, or None when Klubb answers with silence."""
        form = twilio_form(self.number, body, sid, self.to)
        response = await self.client.post(
            "/sms/twilio",
            data=form,
            headers={"X-Twilio-Signature": sign(PUBLIC_URL + "/sms/twilio", form)},
        )
        assert response.status == 200, await response.text()
        replies = replies_in(await response.text())
        assert len(replies) <= 1
        return replies[0] if replies else None


@pytest.fixture
def phone(client: TestClient, club: int) -> Phone:
    """A Norwegian mobile texting the demo club."""
    return Phone(client, "+4791234567")


class HeldWriters:
    """Every writer of turns of a database (SQLite's one, PostgreSQL's few) held behind a unit
    that blocks it, so the turns queued meanwhile form groups; `apart` collects the sizes of
    the groups that were run again apart. A database without such writers (psycopg's threads)
    holds nothing."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.apart: list[int] = []
        self._gate = threading.Event()
        self._writers: list[Any] = []
        self._blockers: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> HeldWriters:
        await self.db.turn(lambda _s: None)  # PostgreSQL's writers are made on first use
        single = getattr(self.db, "_writer", None)
        self._writers = [single] if single is not None else list(getattr(self.db, "_turns", []))
        for writer in self._writers:
            real = writer._run_apart

            def spied(jobs: Any, real: Any = real) -> Any:
                self.apart.append(len(jobs))
                return real(jobs)

            writer._run_apart = spied
            self._blockers.append(asyncio.ensure_future(writer.run(lambda _s: self._gate.wait(10))))
        await asyncio.sleep(0.02)
        return self

    async def queued(self, units: int) -> None:
        """Wait until `units` units wait for the writers (or 5 s)."""
        for _ in range(500):
            if sum(writer.jobs.qsize() for writer in self._writers) >= units:
                break
            await asyncio.sleep(0.01)

    async def release_when(self, queued: int) -> None:
        """Let the writers go once `queued` units wait for them (or after 5 s)."""
        await self.queued(queued)
        self._gate.set()
        await asyncio.gather(*self._blockers)

    async def __aexit__(self, *_exc: object) -> None:
        self._gate.set()
        await asyncio.gather(*self._blockers, return_exceptions=True)
        for writer in self._writers:
            del writer._run_apart
