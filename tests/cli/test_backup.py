"""`klubb backup` and `klubb restore` (issue 18): a backup taken while texts arrive holds every
text answered before it began, and whole turns only; restored into an empty database it equals,
table by table, what it copied; bad input and a database that is not empty are refused."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from bot.cli.main import main
from store import migrate
from store.database import open_database
from store.models import Base, InboundMessage, OutboxMessage
from tests.conftest import POSTGRES_URL, PUBLIC_URL, sign, twilio_form

Tables = dict[str, list[tuple[Any, ...]]]
PHONES = [f"+4793{n:06d}" for n in range(6)]
TEXTS = ("HJELP", "POENG", "JOIN", "ja", "Kari", "HJELP")


async def klubb(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> int:
    """`klubb ARGS` on the database at `url`, in a thread (it runs its own event loop)."""
    monkeypatch.setenv("KLUBB_DATABASE_URL", url)
    return await asyncio.to_thread(main, list(args))


async def tables(url: str) -> Tables:
    """Every table of the schema, its rows in primary key order: what two copies compare."""

    def work(session: Session) -> Tables:
        found: Tables = {}
        for table in Base.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            found[table.name] = [
                tuple(row) for row in session.execute(select(table).order_by(*order))
            ]
        return found

    db = open_database(url)
    try:
        # A read: on SQLite it never turns a backup file into WAL mode by looking at it.
        return await db.read(work)
    finally:
        await db.close()


async def turns(url: str) -> tuple[set[str], set[str]]:
    """The texts' sids, and those of the texts with a reply."""

    def work(session: Session) -> tuple[set[str], set[str]]:
        texts = set(session.scalars(select(InboundMessage.provider_sid)))
        answered = set(
            session.scalars(
                select(InboundMessage.provider_sid).join(
                    OutboxMessage, OutboxMessage.inbound_id == InboundMessage.id
                )
            )
        )
        return texts, answered

    db = open_database(url)
    try:
        return await db.read(work)
    finally:
        await db.close()


@pytest.fixture
async def empty_database(database_url: str, tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    """Makes empty databases of the test's backend to restore into: a new SQLite file, or a
    new PostgreSQL database (dropped at the end)."""
    made: list[str] = []

    async def admin(statement: str) -> None:
        engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    async def make() -> str:
        if make_url(database_url).get_backend_name() == "sqlite":
            return f"sqlite:///{tmp_path / f'restored-{uuid.uuid4().hex[:8]}.db'}"
        name = f"klubb_restore_{uuid.uuid4().hex[:12]}"
        await admin(f'CREATE DATABASE "{name}"')
        made.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    for name in made:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def needs_pg_tools(database_url: str) -> None:
    if make_url(database_url).get_backend_name() == "postgresql":
        missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"{' and '.join(missing)} not on PATH: the PostgreSQL backup needs them")


class Texts:
    """Signed texts from a few phones, one after another per phone, until stopped; the sids
    answered 200, in the order they were answered."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.answered: list[str] = []
        self.stop = asyncio.Event()

    async def keep_texting(self, phone: str) -> None:
        count = 0
        while not self.stop.is_set():
            form = twilio_form(phone, TEXTS[count % len(TEXTS)], "SM" + uuid.uuid4().hex)
            count += 1
            response = await self.client.post(
                "/sms/twilio",
                data=form,
                headers={"X-Twilio-Signature": sign(PUBLIC_URL + "/sms/twilio", form)},
            )
            assert response.status == 200, await response.text()
            self.answered.append(form["MessageSid"])
            await asyncio.sleep(0.002)

    async def until(self, count: int) -> None:
        for _ in range(2000):
            if len(self.answered) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"only {len(self.answered)} texts answered")


async def test_a_backup_while_texts_arrive_restores_whole(
    client, club, database_url, empty_database, tmp_path, monkeypatch, capsys
) -> None:
    """Texts arrive all along. The backup holds every text answered before it began, and
    each text with its reply or neither (a turn is whole). Restored, it equals the backup
    table by table (SQLite: the backup is a database to compare with). Once the texts stop,
    a second backup restored equals the live database in every table."""
    needs_pg_tools(database_url)
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    flow = Texts(client)
    texting = [asyncio.create_task(flow.keep_texting(phone)) for phone in PHONES]
    try:
        await flow.until(40)
        before = set(flow.answered)
        out = tmp_path / ("live.db" if sqlite else "live.dump")
        assert await klubb(monkeypatch, database_url, "backup", "--out", str(out)) == 0
        await flow.until(len(flow.answered) + 20)  # and texts still come after it
    finally:
        flow.stop.set()
        await asyncio.gather(*texting)
    assert "written to" in capsys.readouterr().out

    restored = await empty_database()
    assert await klubb(monkeypatch, restored, "restore", str(out)) == 0
    assert (await migrate.state(restored)).status == "current"
    texts, replied = await turns(restored)
    assert before <= texts
    _, replied_live = await turns(database_url)
    assert replied == texts & replied_live  # each turn whole: its text and its reply, or neither
    assert texts < set(flow.answered)  # the copy stopped somewhere
    if sqlite:
        assert await tables(restored) == await tables(f"sqlite:///{out}")

    # Quiet now: a second backup restored equals the live database, every table of it.
    quiet = tmp_path / ("quiet.db" if sqlite else "quiet.dump")
    assert await klubb(monkeypatch, database_url, "backup", "--out", str(quiet)) == 0
    again = await empty_database()
    assert await klubb(monkeypatch, again, "restore", str(quiet)) == 0
    live = await tables(database_url)
    assert await tables(again) == live
    assert len(live["inbound_messages"]) == len(flow.answered)
    if not sqlite:
        # Planned with statistics from the start, and index-only scans that don't visit the
        # table, not once autovacuum has come round.
        assert "vacuumed and analysed" in capsys.readouterr().out
        for query in (ANALYSED, ALL_VISIBLE):
            assert await table_names(again, query) >= {
                "members",
                "inbound_messages",
                "outbox_messages",
            }


# The tables PostgreSQL holds planner statistics of.
ANALYSED = "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()"
# The tables whose pages VACUUM has marked all-visible.
ALL_VISIBLE = (
    "SELECT relname FROM pg_class WHERE relkind = 'r' AND relallvisible > 0"
    " AND relnamespace = current_schema()::regnamespace"
)


async def table_names(url: str, query: str) -> set[str]:
    """The table names a query of PostgreSQL's catalogue gives."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set((await connection.execute(text(query))).scalars())
    finally:
        await engine.dispose()


async def test_restore_refuses_a_database_that_is_not_empty(
    club, database_url, empty_database, tmp_path, monkeypatch, capsys
) -> None:
    """Restoring over a database with tables is refused, naming why, and changes nothing; so
    is a backup written over an existing file."""
    needs_pg_tools(database_url)
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    out = tmp_path / ("b.db" if sqlite else "b.dump")
    assert await klubb(monkeypatch, database_url, "backup", "--out", str(out)) == 0
    capsys.readouterr()
    before = await tables(database_url)

    assert await klubb(monkeypatch, database_url, "restore", str(out)) == 1
    said = capsys.readouterr().err
    assert "not empty" in said
    assert "empty database" in said
    assert await tables(database_url) == before

    assert await klubb(monkeypatch, database_url, "backup", "--out", str(out)) == 2
    assert "already exists" in capsys.readouterr().err


async def test_restore_refuses_what_is_no_backup_of_its_kind(
    database_url, empty_database, tmp_path, monkeypatch, capsys
) -> None:
    """A missing file, a file that is no backup, and a backup of the other database kind are
    each refused with exit 2, saying which."""
    target = await empty_database()
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    other = tmp_path / "other"
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    other.write_bytes(b"PGDMP\x01\x0f" if sqlite else b"SQLite format 3\x00" + b"\x00" * 100)

    assert await klubb(monkeypatch, target, "restore", str(tmp_path / "gone.db")) == 2
    assert "no such file" in capsys.readouterr().err
    assert await klubb(monkeypatch, target, "restore", str(junk)) == 2
    assert "is not a backup" in capsys.readouterr().err
    assert await klubb(monkeypatch, target, "restore", str(other)) == 2
    assert ("PostgreSQL backup" if sqlite else "SQLite backup") in capsys.readouterr().err


def test_without_pg_dump_the_backup_says_the_command_to_run(monkeypatch, tmp_path, capsys) -> None:
    """PostgreSQL with no pg_dump on PATH: exit 2 and the exact command, the password kept
    out of it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("KLUBB_DATABASE_URL", "postgresql://klubb:s3cret@db.internal:5433/klubb")
    out = tmp_path / "k.dump"
    assert main(["backup", "--out", str(out)]) == 2
    said = capsys.readouterr().err
    assert "pg_dump is not on PATH" in said
    assert (
        f"pg_dump --format=custom --file={out} "
        "--dbname=postgresql://klubb@db.internal:5433/klubb" in said
    )
    assert "s3cret" not in said
    assert not out.exists()
