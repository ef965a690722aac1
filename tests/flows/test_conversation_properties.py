"""Rules that hold for every sequence of texts, checked on the real turn (SQLite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.cli.demo import DEMO_CLUB, DEMO_QUESTIONS
from flows.conversation import InboundText, handle_text
from flows.understand import understand
from locales.sms import is_gsm7, segments
from store.clubs import directory, programs
from store.database import open_database
from store.models import ConsentEvent, Member

TEXTS = st.one_of(
    st.sampled_from(
        [
            "JOIN",
            "ja",
            "JA",
            "nei",
            "STOP",
            "stopp takk",
            "START",
            "HELP",
            "hjelp",
            "MYDATA",
            "SLETT",
            "DELETE",
            "LANG EN",
            "språk sv",
            "Kari",
            "12.03.1990",
            "1 3",
            "2",
            "SKIP",
            "hei",
            "",
            "   ",
            "🙂",
            "quiz",
            "I can't stop eating buns",
        ]
    ),
    st.text(max_size=40),
)
# What a number that has stopped may still get an answer to (PRODUCT.md; GDPR for privacy).
HEARD_WHILE_STOPPED = {"start", "join", "mydata", "delete"}
PHONES = (f"+4798{n:06d}" for n in itertools.count())


def test_every_sequence_of_texts_keeps_the_rules(sqlite_template: Path, tmp_path: Path) -> None:
    """For any texts: no turn fails; replies are GSM-7 (but for the member's own letters) within
    3 segments; after STOP only START, JOIN, MYDATA and DELETE (and the answer to DELETE's
    question) are answered; and a member's status always agrees with the last entry of its
    consent log."""
    path = tmp_path / "klubb.db"
    shutil.copy(sqlite_template, path)
    loop = asyncio.new_event_loop()
    db = open_database(f"sqlite:///{path}")
    clubs = directory.ClubDirectory()

    def club(session) -> None:
        program = programs.create(session, **DEMO_CLUB, now=dt.datetime.now(dt.UTC))
        for question in DEMO_QUESTIONS:
            programs.add_question(session, program, **question)

    loop.run_until_complete(db.run(club))

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(TEXTS, min_size=1, max_size=10))
    def check(texts: list[str]) -> None:
        phone = next(PHONES)
        stopped = False
        asked_to_delete = False
        for n, body in enumerate(texts):
            text = InboundText(
                f"SM{phone}{n}", phone, DEMO_CLUB["numbers"][0], body, dt.datetime.now(dt.UTC)
            )
            result = loop.run_until_complete(
                db.run(functools.partial(handle_text, text=text, clubs=clubs))
            )
            intent = understand(body).intent
            name = intent.name if intent else None
            if result.reply is not None:
                # GSM-7, but for letters the member typed (a name: "Ù" is kept, see to_gsm7).
                typed = set("".join(texts[: n + 1]))
                assert is_gsm7("".join(c for c in result.reply if c not in typed)), result.reply
                assert segments(result.reply).segments <= 3, result.reply
                if stopped:
                    assert name in HEARD_WHILE_STOPPED or asked_to_delete, (body, result.reply)
            member = loop.run_until_complete(db.run(functools.partial(_state, phone=phone)))
            stopped = member is not None and member[0] == "stopped"
            asked_to_delete = member is not None and member[1] == "privacy"
            if member is not None:
                status, _, last_action = member
                if status == "active":
                    assert last_action == "grant", (texts, status, last_action)
                if status == "stopped":
                    assert last_action == "withdraw", (texts, status, last_action)

    try:
        check()
    finally:
        loop.run_until_complete(db.close())
        loop.close()


def _state(session, phone: str) -> tuple[str, str | None, str | None] | None:
    member = session.scalar(select(Member).where(Member.phone == phone))
    if member is None:
        return None
    last = session.scalar(
        select(ConsentEvent.action)
        .where(ConsentEvent.member_id == member.id)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    return member.status, member.flow, last
