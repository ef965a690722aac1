"""`klubb serve` and `klubb worker` refuse a database whose schema is not this Klubb's newest
(behind, never migrated, migrated by a newer Klubb, unreadable): exit 1 and what to run, and
the database is left as it was (neither migrates by itself)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.cli.main import main
from store import migrate
from tests.conftest import migrated_by_a_newer_klubb

COMMANDS = ["serve", "worker"]


@pytest.fixture
def behind_url(database_url: str, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """The database migrated to 0008 only (older than this Klubb's newest): SQLite a copy of its
    own; PostgreSQL the test database itself, brought back to head afterwards."""
    if make_url(database_url).get_backend_name() == "sqlite":
        path = tmp_path / "behind.db"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = database_url
    asyncio.run(migrate.downgrade(url, "0008"))
    try:
        yield url
    finally:
        asyncio.run(migrate.upgrade(url))


def klubb(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, *argv: str
) -> tuple[int, str]:
    monkeypatch.setenv("KLUBB_DATABASE_URL", url)
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_refuses_a_database_behind_naming_klubb_migrate(
    behind_url: str,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At 0008, older than this Klubb's newest: exit 1, both revisions and `klubb migrate`
    named, and the database still at 0008 (a server never migrates by itself)."""
    code, err = klubb(monkeypatch, capsys, behind_url, command)
    assert code == 1
    assert f"klubb {command}: refusing to start" in err
    assert f"is at migration 0008, behind this Klubb's {migrate.head()}" in err
    assert "run `klubb migrate` first" in err
    assert "Traceback" not in err
    state = asyncio.run(migrate.state(behind_url))
    assert state.found == "0008"


@pytest.mark.parametrize("command", COMMANDS)
def test_refuses_a_database_never_migrated(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A database with no table (a SQLite file there but empty, as `createdb` leaves one)."""
    path = tmp_path / "new.db"
    path.touch()
    code, err = klubb(monkeypatch, capsys, f"sqlite:///{path}", command)
    assert code == 1
    assert "has no schema yet: run `klubb migrate` first" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_refuses_a_database_a_newer_klubb_migrated(
    command: str,
    tmp_path: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A revision this Klubb does not have: `klubb migrate` here can't help, so the message
    says to run the newer Klubb instead."""
    path = tmp_path / "ahead.db"
    migrated_by_a_newer_klubb(sqlite_template, path)
    code, err = klubb(monkeypatch, capsys, f"sqlite:///{path}", command)
    assert code == 1
    assert "is at migration 0099, which this Klubb" in err
    assert "a newer Klubb migrated it" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreachable_database_is_one_line_without_its_password(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/klubb"
    code, err = klubb(monkeypatch, capsys, url, command)
    assert code == 1
    assert f"klubb {command}: can't read the database at postgresql://postgres:***@" in err
    assert "hunter2" not in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
