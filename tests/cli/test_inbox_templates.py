"""`klubb inbox templates` and `klubb inbox reply ID --template NAME`: the club's saved replies
listed, and one queued as the reply, filled in for the member (or refused saying why)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.common import run_once
from store.models import OutboxMessage, Program
from store.outreach import templates
from tests.cli.test_inbox import KARI, OWNER, klubb, texted, url

__all__ = ["klubb", "url"]  # the fixtures this module uses, from test_inbox


def saved(url: str, name: str, texts: dict[str, str]) -> None:
    def work(session: Session) -> None:
        program = session.scalar(select(Program))
        assert program is not None
        templates.save(session, program, name=name, texts=texts, now=dt.datetime.now(dt.UTC))

    asyncio.run(run_once(url, work))


def test_templates_lists_each_text_by_language(klubb: Any, url: str) -> None:
    assert "no saved replies" in klubb("inbox", "templates").out
    saved(url, "Åpent", {"en": "Hi {first_name}!", "nb": "Hei {first_name}!"})
    listed = klubb("inbox", "templates")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split() == ["name", "language", "text"]
    assert [line.split()[:2] for line in lines[1:]] == [["Åpent", "nb"], ["Åpent", "en"]]
    assert "Hei {first_name}!" in listed.out


def test_reply_with_a_saved_reply_filled_in_for_the_number(klubb: Any, url: str) -> None:
    saved(url, "Åpent", {"nb": "Hei {first_name}! {club} har åpent 10-18.", "en": "Hi!"})
    kari = texted(url, KARI, "har dere åpent?")
    result = klubb("inbox", "reply", str(kari), "--template", "åpent", "--as", OWNER)
    assert result.code == 0, result.err

    def body(session: Session) -> str | None:
        return session.scalar(select(OutboxMessage.body))

    # Not a member: no name, no gap; a Norwegian number reads Norwegian.
    assert asyncio.run(run_once(url, body)) == "Hei! Torshov Sport har åpent 10-18."


def test_reply_with_an_unknown_saved_reply_is_refused(klubb: Any, url: str) -> None:
    kari = texted(url, KARI, "har dere åpent?")
    result = klubb("inbox", "reply", str(kari), "--template", "Nope", "--as", OWNER)
    assert result.code == 2
    assert "--template" in result.err
    assert "'Nope'" in result.err
    with pytest.raises(SystemExit) as both:  # argparse: one of --text and --template
        klubb("inbox", "reply", str(kari), "--template", "x", "--text", "y", "--as", OWNER)
    assert both.value.code == 2
    missing = klubb("inbox", "reply", "999999", "--template", "x", "--as", OWNER)
    assert missing.code != 0
    assert asyncio.run(run_once(url, lambda s: s.scalar(select(OutboxMessage)))) is None
