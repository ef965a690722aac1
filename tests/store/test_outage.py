"""store.outage: the database out of reach told apart from a bug, on each driver's real errors,
and an outage said once."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.database import Database, open_database
from store.outage import Outage, reason, unreachable
from tests.conftest import POSTGRES_URL


async def error_of(url: str, *statements: str) -> BaseException:
    """What a unit of work running `statements` (SELECT 1 by default) on `url` raised."""
    db = open_database(url)

    def work(session: Session) -> None:
        for sql in statements or ("SELECT 1",):
            session.execute(text(sql))

    try:
        await db.run(work)
    except Exception as exc:
        return exc
    finally:
        await db.close()
    raise AssertionError(f"{statements} on {url} did not fail")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:1/klubb",  # refused: PostgreSQL stopped
        "postgresql+psycopg://postgres@127.0.0.1:1/klubb",  # the same through psycopg
        "postgresql+asyncpg://postgres@klubb-no-such-host.invalid/klubb",  # no such name
    ],
)
async def test_a_server_that_is_not_there_is_unreachable(url: str) -> None:
    exc = await error_of(url)
    assert unreachable(exc), repr(exc)
    assert "\n" not in reason(exc)


async def test_a_dropped_database_is_unreachable() -> None:
    """What the operator's `drop database ... with (force)` leaves: 3D000 at each connect."""
    url = make_url(POSTGRES_URL).set(database=f"klubb_gone_{uuid.uuid4().hex[:8]}")
    exc = await error_of(url.render_as_string(hide_password=False))
    assert unreachable(exc)
    assert "does not exist" in reason(exc)


async def test_a_session_ended_by_the_server_is_unreachable() -> None:
    """The server ends the session (a restart, pg_terminate_backend): 57P01 or a closed
    connection."""
    exc = await error_of(POSTGRES_URL, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert unreachable(exc)


async def test_sqlite_out_of_reach_is_unreachable(tmp_path: Path) -> None:
    exc = await error_of(f"sqlite:///{tmp_path}/no/such/folder/klubb.db")
    assert unreachable(exc)


async def test_wrong_sql_and_broken_rules_are_bugs(db: Database) -> None:
    """The database answered: SQL it refuses (SQLite says so with an OperationalError too), a
    broken constraint, a plain Python error."""
    assert not unreachable(await error_of(db.url, "SELECT * FROM no_such_table"))
    twice = await error_of(
        db.url,
        "CREATE TEMPORARY TABLE twice (id INTEGER PRIMARY KEY)",
        "INSERT INTO twice VALUES (1)",
        "INSERT INTO twice VALUES (1)",
    )
    assert isinstance(twice, IntegrityError)
    assert not unreachable(twice)
    assert not unreachable(RuntimeError("broken"))
    assert not unreachable(ValueError("bad"))


def test_an_outage_is_said_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="klubb.test")
    outage = Outage(logging.getLogger("klubb.test"), "a job")
    outage.answered()
    assert caplog.records == []
    for _ in range(3):
        outage.failed(ConnectionRefusedError(111, "Connect call failed"))
    assert outage.down
    outage.answered()
    outage.answered()
    assert [r.levelno for r in caplog.records] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
        logging.INFO,
    ]
    assert caplog.records[0].getMessage() == (
        "a job: the database is unreachable (ConnectionRefusedError: [Errno 111] Connect call "
        "failed); said again once it answers"
    )
    assert "3 failed tries" in caplog.records[-1].getMessage()
    assert not outage.down
