"""`klubb admin create` and the demo owner of `klubb init --demo`, in this process on both
databases: the password comes from a prompt or stdin, is kept only as a hash, and is never
printed (except the demo owner's, once)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli import main
from bot.demo import DEMO_ADMIN
from store import admins
from store.database import open_database
from store.models import AdminAccount
from tests.conftest import create_club
from tests.test_cli_campaigns import Run, Terminal

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PASSWORD = "a long enough password"
EMAIL = "Kari@Torshov.Test "


def read(url: str, work: Callable[[Session], Any]) -> Any:
    async def go() -> Any:
        db = open_database(url)
        try:
            return await db.run(work)
        finally:
            await db.close()

    return asyncio.run(go())


def accounts(url: str) -> list[AdminAccount]:
    return read(url, lambda s: list(s.scalars(select(AdminAccount).order_by(AdminAccount.id))))


def signs_in(url: str, email: str, password: str) -> bool:
    async def go() -> bool:
        db = open_database(url)
        try:
            result = await admins.verify(
                db, email, password, address="127.0.0.1", now=dt.datetime.now(dt.UTC)
            )
        finally:
            await db.close()
        return result.outcome is admins.Outcome.SIGNED_IN

    return asyncio.run(go())


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KLUBB_GATEWAY", "KLUBB_CONSOLE_OUTBOX", "KLUBB_LOG_LEVEL", "KLUBB_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLUBB_DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def club(url: str) -> int:
    async def go() -> int:
        db = open_database(url)
        try:
            return await create_club(db)
        finally:
            await db.close()

    return asyncio.run(go())


@pytest.fixture
def klubb(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """`klubb ...` in this process, with `stdin` piped in (or a Terminal)."""

    def run(*args: str, stdin: io.StringIO | None = None) -> Run:
        monkeypatch.setattr("sys.stdin", stdin if stdin is not None else io.StringIO(""))
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusing a flag
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def test_create_reads_the_password_from_stdin_and_keeps_only_its_hash(
    klubb: Callable[..., Run], url: str, club: int, caplog: pytest.LogCaptureFixture
) -> None:
    result = klubb("admin", "create", "--email", EMAIL, stdin=io.StringIO(PASSWORD + "\n"))
    assert result.code == 0, result.err
    assert "kari@torshov.test (owner)" in result.out
    assert "'Torshov Sport'" in result.out
    assert "/admin" in result.out
    for text in (result.out, result.err, caplog.text):
        assert PASSWORD not in text
    [account] = accounts(url)
    assert account.email == "kari@torshov.test"
    assert account.role == "owner"
    assert account.program_id == club
    assert PASSWORD not in account.password_hash
    assert account.password_hash.startswith("$argon2id$")
    assert signs_in(url, "KARI@torshov.test", PASSWORD)


def test_create_asks_twice_at_a_terminal(
    klubb: Callable[..., Run], url: str, club: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter([PASSWORD, PASSWORD])
    prompts: list[str] = []

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr("getpass.getpass", getpass)
    result = klubb(
        "admin", "create", "--email", "staff@x.test", "--role", "staff", stdin=Terminal()
    )
    assert result.code == 0, result.err
    assert len(prompts) == 2
    assert "staff@x.test (staff)" in result.out
    assert PASSWORD not in result.out + result.err
    assert [a.role for a in accounts(url)] == ["staff"]


def test_two_different_passwords_at_a_terminal_make_nothing(
    klubb: Callable[..., Run], url: str, club: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    result = klubb("admin", "create", "--email", "kari@x.test", stdin=Terminal())
    assert result.code == 2
    assert "differ" in result.err
    assert accounts(url) == []


@pytest.mark.parametrize(
    ("args", "stdin", "code", "says"),
    [
        (["--email", "kari@x.test"], "short\n", 2, "at least 10 characters"),
        (["--email", "kari@x.test"], "", 2, "at least 10 characters"),
        (["--email", "not-an-email"], PASSWORD, 2, "--email: not an email address"),
        (["--email", "kari@x.test", "--role", "boss"], PASSWORD, 2, "invalid choice"),
        (["--email", "kari@x.test", "--password", PASSWORD], "", 2, "unrecognized arguments"),
        (["--email", "kari@x.test", "--club", "999"], PASSWORD, 2, "no club with id 999"),
        (["--email", "kari@x.test", "--club-number", "4040"], PASSWORD, 2, "no club answers"),
    ],
)
def test_bad_input_says_what_is_wrong_and_makes_nothing(
    klubb: Callable[..., Run],
    url: str,
    club: int,
    args: list[str],
    stdin: str,
    code: int,
    says: str,
) -> None:
    result = klubb("admin", "create", *args, stdin=io.StringIO(stdin))
    assert result.code == code
    assert says in result.err
    assert "Traceback" not in result.err
    assert accounts(url) == []


def test_an_email_has_one_account_across_clubs(
    klubb: Callable[..., Run], url: str, club: int
) -> None:
    async def second() -> int:
        db = open_database(url)
        try:
            return await create_club(db, name="Kafé Kari", numbers=["3030"], country="SE")
        finally:
            await db.close()

    other = asyncio.run(second())
    first = klubb(
        "admin",
        "create",
        "--email",
        "kari@x.test",
        "--club",
        str(club),
        stdin=io.StringIO(PASSWORD),
    )
    assert first.code == 0, first.err
    again = klubb(
        "admin",
        "create",
        "--email",
        "KARI@x.test",
        "--club-number",
        "3030",
        stdin=io.StringIO(PASSWORD),
    )
    assert again.code == 1
    assert "kari@x.test already exists" in again.err
    unnamed = klubb("admin", "create", "--email", "ola@x.test", stdin=io.StringIO(PASSWORD))
    assert unnamed.code == 2
    assert "several clubs" in unnamed.err
    named = klubb(
        "admin",
        "create",
        "--email",
        "ola@x.test",
        "--club-number",
        "3030",
        stdin=io.StringIO(PASSWORD),
    )
    assert named.code == 0, named.err
    assert [(a.email, a.program_id) for a in accounts(url)] == [
        ("kari@x.test", club),
        ("ola@x.test", other),
    ]


def test_init_demo_makes_the_demo_owner_once_and_prints_its_password_once(
    klubb: Callable[..., Run], url: str
) -> None:
    first = klubb("init", "--demo")
    assert first.code == 0, first.err
    found = re.search(rf"sign in as {re.escape(DEMO_ADMIN)} with the password (\S+) ", first.out)
    assert found, first.out
    password = found.group(1)
    assert len(password) >= admins.MIN_PASSWORD
    assert signs_in(url, DEMO_ADMIN, password)

    second = klubb("init", "--demo")
    assert second.code == 0, second.err
    assert "already" in second.out
    assert password not in second.out
    assert "password" not in second.out
    [account] = accounts(url)
    assert (account.email, account.role) == (DEMO_ADMIN, "owner")


def test_init_demo_on_a_demo_club_without_an_owner_makes_one(
    klubb: Callable[..., Run], url: str, club: int
) -> None:
    """A demo club made before the admin existed gets its owner the next time."""
    result = klubb("init", "--demo")
    assert result.code == 0, result.err
    assert "already answers" in result.out
    assert f"sign in as {DEMO_ADMIN}" in result.out
    assert [a.program_id for a in accounts(url)] == [club]
