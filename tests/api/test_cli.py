"""`klubb apikey create|list|revoke` in a subprocess: the printed key works against the API."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.cli.main import main
from bot.settings import Settings
from store.clubs import programs
from store.database import open_database
from tests.api.conftest import OTHER_NUMBER, PHONE, Till
from tests.cli.test_main import Klubb, create_demo_club, free_port
from tests.conftest import now


@pytest.fixture
def klubb(tmp_path: Path, sqlite_template: Path) -> Klubb:
    """`klubb` on a migrated SQLite file with the demo club."""
    shutil.copy(sqlite_template, tmp_path / "k.db")
    command = Klubb(tmp_path, free_port())
    asyncio.run(create_demo_club(command.env["KLUBB_DATABASE_URL"]))
    return command


async def api(klubb: Klubb, aiohttp_client: Any, key: str) -> Till:
    """A till on a server of its own (a fresh app: nothing remembered of earlier keys)."""
    settings = Settings(database_url=klubb.env["KLUBB_DATABASE_URL"], run_scheduler=False)
    return Till(await aiohttp_client(create_app(settings)), key)


async def test_a_key_made_by_the_cli_works_until_revoked(klubb: Klubb, aiohttp_client: Any) -> None:
    """The secret alone on stdout; it enrols and finds a member with its scopes, is refused the
    others; `list` shows it without the secret; after `revoke` it is refused."""
    made = klubb(
        "apikey",
        "create",
        "--name",
        "till-1",
        "--store",
        "oslo-1",
        "--scope",
        "members:write",
        "members:read",
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("klubb_")
    assert "\n" not in secret
    assert "shown only this once" in made.stderr

    till = await api(klubb, aiohttp_client, secret)
    enrolled = await till.enrol()
    assert enrolled.status == 201, enrolled.body
    assert (await till.get(f"/members/{enrolled.body['id']}")).status == 200
    refused = await till.buy(enrolled.body["id"], "T-1", 1000)
    assert (refused.status, refused.body["scope"]) == (403, "purchases:write")

    listed = klubb("apikey", "list")
    assert listed.returncode == 0, listed.stderr
    [row] = listed.stdout.splitlines()
    assert row.startswith("till-1\toslo-1\t")
    assert "\tactive\tmembers:read members:write" in row
    assert secret not in listed.stdout

    revoked = klubb("apikey", "revoke", "--name", "till-1")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    later = await api(klubb, aiohttp_client, secret)
    assert (await later.get("/members?phone=" + PHONE.replace("+", "%2B"))).status == 401


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def apikey(klubb: Klubb, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Any:
    """`klubb apikey ...` run in this process (the command's start-up costs a second)."""
    monkeypatch.setenv("KLUBB_DATABASE_URL", klubb.env["KLUBB_DATABASE_URL"])

    def run(*args: str) -> Run:
        code = main(["apikey", *args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def test_every_scope_by_default_and_the_name_is_the_clubs_own(apikey: Any) -> None:
    """No --scope gives every scope; a second active key of the same name is refused."""
    assert apikey("create", "--name", "webshop").code == 0
    again = apikey("create", "--name", "webshop")
    assert again.code == 2
    assert "already has a key named webshop" in again.err
    [row] = apikey("list").out.splitlines()
    assert row.endswith(
        "coupons:give coupons:read coupons:redeem members:read members:write points:adjust"
        " purchases:write"
    )


def test_an_unknown_scope_is_refused_naming_the_scopes(apikey: Any) -> None:
    result = apikey("create", "--name", "till-1", "--scope", "everything")
    assert result.code == 2
    assert "--scope: unknown scope everything" in result.err
    assert "purchases:write" in result.err
    assert apikey("list").out.strip() == "klubb: club 'Torshov Sport' has no API keys"


def test_a_name_or_store_too_long_for_its_column_is_refused(apikey: Any) -> None:
    name = apikey("create", "--name", "t" * 61)
    assert (name.code, name.err.splitlines()[-1]) == (
        2,
        "klubb apikey: --name: at most 60 printable characters",
    )
    store = apikey("create", "--name", "till-1", "--store", "s" * 41)
    assert store.code == 2
    assert "--store" in store.err


def test_with_two_clubs_the_club_must_be_named(klubb: Klubb, apikey: Any) -> None:
    asyncio.run(_second_club(klubb.env["KLUBB_DATABASE_URL"]))
    unnamed = apikey("create", "--name", "till-1")
    assert unnamed.code == 2
    assert "--club-number" in unnamed.err
    named = apikey("create", "--name", "till-1", "--club-number", OTHER_NUMBER)
    assert named.code == 0, named.err
    assert "'Kaffebaren'" in named.err
    unknown = apikey("list", "--club", "99")
    assert unknown.code == 2
    assert unknown.err.splitlines()[-1] == "klubb apikey: no club with id 99"


def test_revoking_a_key_that_is_not_there_says_so(apikey: Any) -> None:
    result = apikey("revoke", "--name", "till-9")
    assert result.code == 1
    assert "no active key named 'till-9'" in result.err


async def _second_club(url: str) -> None:
    def work(session: Session) -> None:
        programs.create(
            session,
            name="Kaffebaren",
            numbers=[OTHER_NUMBER],
            country="SE",
            contact="hej@kaffebaren.se",
            privacy_url="https://kaffebaren.se/privacy",
            now=now(),
        )

    db = open_database(url)
    try:
        await db.run(work)
    finally:
        await db.close()
