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
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.cli.demo import DEMO_ADMIN
from bot.cli.main import main
from store.clubs import admins
from store.database import open_database
from store.models import AdminAccount, AdminSession
from tests.cli.test_campaigns import Run, Terminal
from tests.conftest import create_club

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


# --- list, password, remove ------------------------------------------------------------------

NEW = "another long password"


def hashes(url: str) -> dict[str, str]:
    return {a.email: a.password_hash for a in accounts(url)}


@pytest.fixture
def two_accounts(klubb: Callable[..., Run], club: int) -> None:
    """An owner and a staff member of the club, both with PASSWORD."""
    for email, role in (("owner@x.test", "owner"), ("staff@x.test", "staff")):
        made = klubb(
            "admin", "create", "--email", email, "--role", role, stdin=io.StringIO(PASSWORD)
        )
        assert made.code == 0, made.err


def test_list_shows_email_role_and_when_never_a_hash(
    klubb: Callable[..., Run], url: str, two_accounts: None
) -> None:
    signs_in(url, "owner@x.test", PASSWORD)
    result = klubb("admin", "list")
    assert result.code == 0, result.err
    header, owner, staff = result.out.splitlines()
    assert header.split()[:4] == ["EMAIL", "ROLE", "CREATED", "(Europe/Oslo)"]
    assert owner.split()[:2] == ["owner@x.test", "owner"]
    assert staff.split()[:2] == ["staff@x.test", "staff"]
    assert staff.split()[-1] == "never"
    assert owner.split()[-1] != "never"
    for stored in hashes(url).values():
        assert stored not in result.out
    assert "$argon2" not in result.out


def test_list_of_a_club_without_accounts_says_so(klubb: Callable[..., Run], club: int) -> None:
    result = klubb("admin", "list", "--club", str(club))
    assert result.code == 0, result.err
    assert "has no admin accounts yet" in result.out


def test_list_names_a_club_that_is_not_there(klubb: Callable[..., Run], club: int) -> None:
    result = klubb("admin", "list", "--club", "999")
    assert result.code == 2
    assert "no club with id 999" in result.err


def sessions(url: str) -> dict[str, int]:
    """Each account's signed-in sessions kept on the server, by email."""
    rows = read(
        url,
        lambda s: s.execute(
            select(AdminAccount.email, func.count(AdminSession.id))
            .join(AdminSession, AdminSession.account_id == AdminAccount.id, isouter=True)
            .group_by(AdminAccount.email)
        ).all(),
    )
    return dict(rows)


def test_password_sets_a_new_one_from_stdin_and_ends_the_sessions(
    klubb: Callable[..., Run], url: str, two_accounts: None, caplog: pytest.LogCaptureFixture
) -> None:
    assert signs_in(url, "staff@x.test", PASSWORD)
    assert signs_in(url, "owner@x.test", PASSWORD)
    assert sessions(url) == {"owner@x.test": 1, "staff@x.test": 1}
    before = hashes(url)
    result = klubb("admin", "password", "--email", "Staff@X.test", stdin=io.StringIO(NEW + "\n"))
    assert result.code == 0, result.err
    assert "staff@x.test (staff)" in result.out
    assert "sessions have ended" in result.out
    for text in (result.out, result.err, caplog.text):
        assert NEW not in text
    after = hashes(url)
    assert after["owner@x.test"] == before["owner@x.test"]
    assert after["staff@x.test"] != before["staff@x.test"]
    # The staff member's session ended on the server at once; the owner's is untouched.
    assert sessions(url) == {"owner@x.test": 1, "staff@x.test": 0}
    assert signs_in(url, "staff@x.test", NEW)
    assert not signs_in(url, "staff@x.test", PASSWORD)


def test_password_asks_twice_at_a_terminal(
    klubb: Callable[..., Run], url: str, two_accounts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter([NEW, NEW])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    result = klubb("admin", "password", "--email", "owner@x.test", stdin=Terminal())
    assert result.code == 0, result.err
    assert signs_in(url, "owner@x.test", NEW)


@pytest.mark.parametrize(
    ("email", "stdin", "code", "says"),
    [
        ("nobody@x.test", NEW, 1, "no admin account has the email nobody@x.test"),
        ("not-an-email", NEW, 2, "--email: not an email address"),
        ("staff@x.test", "short", 2, "at least 10 characters"),
    ],
)
def test_password_bad_input_says_what_is_wrong_and_changes_nothing(
    klubb: Callable[..., Run],
    url: str,
    two_accounts: None,
    email: str,
    stdin: str,
    code: int,
    says: str,
) -> None:
    before = hashes(url)
    result = klubb("admin", "password", "--email", email, stdin=io.StringIO(stdin))
    assert result.code == code
    assert says in result.err
    assert len(result.err.splitlines()) == 1
    assert "Traceback" not in result.err
    assert hashes(url) == before


def test_password_is_never_a_flag(klubb: Callable[..., Run], two_accounts: None) -> None:
    result = klubb("admin", "password", "--email", "owner@x.test", "--password", NEW)
    assert result.code == 2
    assert "unrecognized arguments" in result.err


def test_remove_takes_a_staff_account_away(
    klubb: Callable[..., Run], url: str, two_accounts: None
) -> None:
    assert signs_in(url, "staff@x.test", PASSWORD)
    result = klubb("admin", "remove", "--email", "STAFF@x.test")
    assert result.code == 0, result.err
    assert read(url, lambda s: s.scalar(select(func.count()).select_from(AdminSession))) == 0
    assert "removed admin account staff@x.test (staff)" in result.out
    assert [a.email for a in accounts(url)] == ["owner@x.test"]
    assert not signs_in(url, "staff@x.test", PASSWORD)


def test_remove_refuses_the_clubs_last_owner(
    klubb: Callable[..., Run], url: str, two_accounts: None
) -> None:
    result = klubb("admin", "remove", "--email", "owner@x.test")
    assert result.code == 1
    assert "owner@x.test is the club's last owner" in result.err
    assert len(result.err.splitlines()) == 1
    assert [a.email for a in accounts(url)] == ["owner@x.test", "staff@x.test"]


@pytest.mark.parametrize(
    ("email", "code", "says"),
    [
        ("nobody@x.test", 1, "no admin account has the email nobody@x.test"),
        ("not-an-email", 2, "--email: not an email address"),
    ],
)
def test_remove_bad_input_says_what_is_wrong(
    klubb: Callable[..., Run], url: str, two_accounts: None, email: str, code: int, says: str
) -> None:
    result = klubb("admin", "remove", "--email", email)
    assert result.code == code
    assert says in result.err
    assert len(accounts(url)) == 2


@pytest.mark.parametrize(
    "written",
    ["+4755000000", "4755000000", "+47 55 00 00 00", "0047 55 00 00 00", "55 00 00 00", "55000000"],
)
def test_a_club_number_is_read_in_any_common_format(
    klubb: Callable[..., Run], url: str, club: int, written: str
) -> None:
    """--club-number as the API reads phone numbers: with or without "+" or 00, spaced, or in
    the club's national format; a short code (the other club's 2020) still names its club."""

    async def long_number() -> int:
        db = open_database(url)
        try:
            return await create_club(db, name="Bergen Sport", numbers=["+4755000000"])
        finally:
            await db.close()

    bergen = asyncio.run(long_number())
    made = klubb(
        "admin",
        "create",
        "--email",
        "kari@x.test",
        "--club-number",
        written,
        stdin=io.StringIO(PASSWORD),
    )
    assert made.code == 0, made.err
    short = klubb(
        "admin",
        "create",
        "--email",
        "ola@x.test",
        "--club-number",
        "2020",
        stdin=io.StringIO(PASSWORD),
    )
    assert short.code == 0, short.err
    assert [(a.email, a.program_id) for a in accounts(url)] == [
        ("kari@x.test", bergen),
        ("ola@x.test", club),
    ]
    nobody = klubb("admin", "list", "--club-number", "4755000001")
    assert (nobody.code, nobody.err.strip()) == (2, "klubb admin: no club answers on 4755000001")
