"""GET /healthz (alive) and GET /readyz (database answers, schema at head, scheduler running or
deliberately off), through the app as a load balancer sees it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from apscheduler.schedulers.base import STATE_PAUSED
from sqlalchemy.engine import make_url

from bot.app import create_app
from bot.health import SCHEDULER
from bot.settings import Settings
from store import migrate
from tests.conftest import migrated_by_a_newer_klubb

NOT_CACHED = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def assert_headers(response: Any) -> None:
    for name, value in NOT_CACHED.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_healthz_is_alive_without_asking_the_database(
    settings: Settings, aiohttp_client: Any
) -> None:
    """/healthz is 200 with a tiny body even when the database is down (a restart would not
    help); /readyz says the database is what is missing."""
    down = dataclasses.replace(settings, database_url="postgresql://postgres@127.0.0.1:1/klubb")
    client: TestClient = await aiohttp_client(create_app(down))
    alive = await client.get("/healthz")
    assert alive.status == 200
    assert await alive.json() == {"status": "ok"}
    assert len(await alive.read()) < 32
    assert_headers(alive)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {
        "status": "not ready",
        "not_ready": ["database"],
        "database": "unreachable",
        "migrations": "not checked",
        "scheduler": "off",
    }
    assert_headers(ready)


async def test_readyz_with_the_scheduler_off(client: TestClient) -> None:
    """Migrated database, KLUBB_SCHEDULER=off (the worker does the jobs): ready."""
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ready",
        "database": "ok",
        "migrations": "current",
        "scheduler": "off",
    }
    assert_headers(response)
    head = await client.head("/readyz")
    assert head.status == 200


async def test_no_auth_and_nothing_personal(client: TestClient, club: int) -> None:
    """Both answer without credentials and carry no club, member or database name."""
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status == 200
        body = await response.text()
        for secret in ("Torshov", "2020", "postgres", "sqlite", "klubb"):
            assert secret not in body


@pytest.fixture
async def behind_url(database_url: str, tmp_path: Path, sqlite_template: Path) -> Any:
    """The database migrated to 0008 only (older than this Klubb's schema): SQLite a copy of its
    own; PostgreSQL the test database itself, brought back to head afterwards."""
    if make_url(database_url).get_backend_name() == "sqlite":
        path = tmp_path / "behind.db"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = database_url
    await migrate.downgrade(url, "0008")
    try:
        yield url
    finally:
        await migrate.upgrade(url)


async def test_readyz_503_when_the_schema_is_behind(
    behind_url: str, settings: Settings, aiohttp_client: Any
) -> None:
    """A database at 0008, older than this Klubb: not ready, naming the migrations."""
    client: TestClient = await aiohttp_client(
        create_app(dataclasses.replace(settings, database_url=behind_url))
    )
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {
        "status": "not ready",
        "not_ready": ["migrations"],
        "database": "ok",
        "migrations": "behind",
        "scheduler": "off",
    }
    assert_headers(response)
    assert (await client.get("/healthz")).status == 200


async def test_readyz_503_when_the_schema_is_unknown_or_missing(
    settings: Settings, aiohttp_client: Any, sqlite_template: Path, tmp_path: Path
) -> None:
    """A revision this Klubb does not have (a newer Klubb migrated it), or no schema at all."""
    ahead = tmp_path / "ahead.db"
    migrated_by_a_newer_klubb(sqlite_template, ahead)
    for url, status in (
        (f"sqlite:///{ahead}", "unknown"),
        (f"sqlite:///{tmp_path / 'e.db'}", "empty"),
    ):
        app = create_app(dataclasses.replace(settings, database_url=url))
        client: TestClient = await aiohttp_client(app)
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["not_ready"] == ["migrations"]
        assert body["migrations"] == status


async def test_readyz_follows_the_scheduler(
    settings: Settings, aiohttp_client: Any, tmp_path: Path
) -> None:
    """With the scheduler expected: ready while it runs, 503 naming it once it stops running."""
    expected = dataclasses.replace(
        settings, run_scheduler=True, console_outbox=tmp_path / "outbox.txt"
    )
    app = create_app(expected)
    client: TestClient = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["scheduler"] == "running"
    app[SCHEDULER].pause()
    assert app[SCHEDULER].state == STATE_PAUSED
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["not_ready"] == ["scheduler"]
    assert body["scheduler"] == "not running"
    assert (await client.get("/healthz")).status == 200
