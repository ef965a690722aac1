"""`klubb inbox list|reply`, run in this process on both databases: the conversations of texts
Klubb could not answer, and a reply queued in the outbox as the admin named, or refused saying
why."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import itertools
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.common import run_once
from bot.cli.main import main
from store import messages
from store.clubs import admins
from store.database import open_database
from store.models import OutboxMessage, Program, StaffReply
from store.outreach import inbox
from tests.cli.test_campaigns import Run
from tests.conftest import CLUB_NUMBER, create_club

OWNER = "owner@torshov.test"
KARI, STRANGER = "+4791234567", "+4798765432"
_SIDS = itertools.count()


def texted(url: str, number: str, body: str, *, days_ago: float = 0) -> int:
    def work(session: Session) -> int:
        program = session.scalar(select(Program))
        assert program is not None
        return messages.record_inbound(
            session,
            program_id=program.id,
            provider_sid=f"SMcli{next(_SIDS)}",
            member_id=None,
            from_number=number,
            to_number=CLUB_NUMBER,
            body=body,
            intent=None,
            reply=None,
            now=dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago),
            not_understood=True,
        )

    return asyncio.run(run_once(url, work))


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KLUBB_GATEWAY", "KLUBB_CONSOLE_OUTBOX", "KLUBB_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLUBB_DATABASE_URL", database_url)

    async def set_up() -> None:
        db = open_database(database_url)
        try:
            club = await create_club(db)

            def account(session: Session) -> None:
                admins.create(
                    session,
                    club,
                    email=OWNER,
                    password_hash="x",
                    role=admins.OWNER,
                    now=dt.datetime.now(dt.UTC),
                )

            await db.run(account)
        finally:
            await db.close()

    asyncio.run(set_up())
    return database_url


@pytest.fixture
def klubb(url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Any:
    def run(*args: str) -> Run:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def test_list_shows_conversations_newest_first_and_open_ones(klubb: Any, url: str) -> None:
    assert klubb("inbox", "list").out.strip() == "no conversations"
    kari = texted(url, KARI, "har dere åpent på søndag?", days_ago=1)
    stranger = texted(url, STRANGER, "hallo?")
    listed = klubb("inbox", "list")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split()[:4] == ["id", "number", "name", "state"]
    assert [line.split()[0] for line in lines[1:]] == [str(stranger), str(kari)]
    assert "har dere åpent på søndag?" in listed.out
    assert "unanswered" in listed.out
    done = klubb("inbox", "reply", str(kari), "--text", "Ja, 12-16!", "--as", OWNER)
    assert done.code == 0, done.err

    def mark(session: Session) -> None:
        program = session.scalar(select(Program))
        assert program is not None
        inbox.mark_done(session, program, kari, dt.datetime.now(dt.UTC))

    asyncio.run(run_once(url, mark))
    opened = klubb("inbox", "list", "--open")
    assert [line.split()[0] for line in opened.out.splitlines()[1:]] == [str(stranger)]


def test_reply_queues_an_sms_recorded_as_the_admin(klubb: Any, url: str) -> None:
    kari = texted(url, KARI, "har dere åpent på søndag?")
    result = klubb("inbox", "reply", str(kari), "--text", "Ja – 12 til 16!", "--as", OWNER)
    assert result.code == 0, result.err
    assert f"to {KARI}" in result.out

    def sent(session: Session) -> tuple[str, str | None, str | None, str]:
        row = session.scalar(select(OutboxMessage))
        assert row is not None
        by = session.scalar(select(StaffReply.account_id).where(StaffReply.outbox_id == row.id))
        account = admins.by_email(session, OWNER)
        assert account is not None
        assert by == account.id
        return row.kind, row.to_number, row.body, row.status

    assert asyncio.run(run_once(url, sent)) == ("staff", KARI, "Ja - 12 til 16!", "queued")


def test_reply_refusals_say_why(klubb: Any, url: str) -> None:
    old = texted(url, KARI, "hei?", days_ago=8)
    result = klubb("inbox", "reply", str(old), "--text", "Hei!", "--as", OWNER)
    assert result.code == 1
    assert "more than 7 days old" in result.err
    missing = klubb("inbox", "reply", "999999", "--text", "Hei!", "--as", OWNER)
    assert missing.code == 1
    assert "no conversation 999999" in missing.err
    fresh = texted(url, STRANGER, "hallo?")
    nobody = klubb("inbox", "reply", str(fresh), "--text", "Hei!", "--as", "nobody@x.test")
    assert nobody.code == 2
    assert "--as" in nobody.err
    assert asyncio.run(run_once(url, lambda s: s.scalar(select(OutboxMessage)))) is None
