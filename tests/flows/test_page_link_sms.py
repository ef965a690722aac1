"""The club's setting page_link_in_sms (issue 15): when on, the welcome SMS that ends sign-up and
the reward SMS of a claim carry a new link to the member's page, each still one SMS with a
60-character club name; off (the default) they carry none. HELP names MIN SIDE / MIN SIDA /
MY PAGE, and every help text stays one SMS with a 60-character club name."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

import locales
from bot.cli.demo import set_up_loyalty
from flows import conversation, router
from flows.turn import Intent, Turn
from locales import LANGUAGES, render
from locales.sms import fit_one, is_gsm7, segments
from store.clubs import programs
from store.clubs.programs import MAX_NAME
from store.database import Database
from store.models import MemberLink, Program
from tests.bot.test_loyalty_sms import buy
from tests.conftest import Phone
from tests.locales.test_one_segment import CLUB, members, questions, worst

LINK = re.compile(r"klubb\.example\.com(/m/[A-Za-z0-9_-]+)$")
LONGEST_NAME = "Torshov Sport & Fritid AS, Storgata 12, Oslo sentrum avd. 2"[:MAX_NAME].ljust(
    MAX_NAME, "x"
)
KEYWORD = {"nb": "MIN SIDE", "sv": "MIN SIDA", "en": "MY PAGE"}


async def page_link_in_sms(db: Database, club: int, on: bool = True) -> None:
    def work(session: Any) -> None:
        program = programs.get(session, club)
        assert program is not None
        programs.set_page_link_in_sms(session, program, on)

    await db.run(work)


async def sign_up(phone: Phone) -> str | None:
    """JOIN, YES and the demo club's three questions: the last answer's reply is the welcome."""
    for text in ("JOIN", "JA", "Kari", "12.03.1990"):
        await phone.text(text)
    return await phone.text("1 3")


async def links_made(db: Database) -> int:
    return await db.run(lambda s: s.scalar(select(func.count()).select_from(MemberLink)))


class TestTheWelcome:
    async def test_off_by_default_the_welcome_has_no_link(self, phone: Phone, db: Database) -> None:
        welcome = await sign_up(phone)
        assert welcome == render("profile.done", "nb", club="Torshov Sport")
        assert await links_made(db) == 0

    async def test_on_the_welcome_carries_a_link_that_opens_the_members_page(
        self, phone: Phone, client: TestClient, db: Database, club: int
    ) -> None:
        await page_link_in_sms(db, club)
        welcome = await sign_up(phone)
        assert welcome is not None
        assert welcome.startswith("Alt klart! Nå er du medlem i Torshov Sport. Din side: ")
        assert segments(welcome).segments == 1
        found = LINK.search(welcome)
        assert found, welcome
        page = await client.get(found.group(1))
        assert page.status == 200
        assert "Kari" in await page.text()
        assert await links_made(db) == 1

    async def test_the_welcome_with_a_coupon_carries_the_link_too(
        self, phone: Phone, db: Database, club: int
    ) -> None:
        await db.run(lambda s: set_up_loyalty(s, s.get(Program, club)))
        await page_link_in_sms(db, club)
        welcome = await sign_up(phone)
        assert welcome is not None
        assert welcome.startswith("Alt klart! Velkomstkupongen din ")
        assert LINK.search(welcome), welcome
        assert segments(welcome).segments == 1

    async def test_other_replies_get_no_link(self, phone: Phone, db: Database, club: int) -> None:
        await page_link_in_sms(db, club)
        await sign_up(phone)
        for text in ("POENG", "HJELP", "hei"):
            reply = await phone.text(text)
            assert reply is not None
            assert "/m/" not in reply, (text, reply)
        assert await links_made(db) == 1  # the welcome's alone


class TestTheRewardSms:
    async def test_a_claimed_reward_carries_the_link_when_on(
        self, phone: Phone, client: TestClient, db: Database, club: int
    ) -> None:
        await db.run(lambda s: set_up_loyalty(s, s.get(Program, club)))
        await page_link_in_sms(db, club)
        await sign_up(phone)
        await buy(db, club, phone.number, 70_000, "T1")
        reply = await phone.text("HENT 2")
        assert reply is not None
        assert re.match(r"Klart! Kode [2-9A-Z]{4}-[2-9A-Z]{4}: en drikkeflaske, ", reply), reply
        assert "Du har nå 400 poeng. Din side: klubb.example.com/m/" in reply
        assert segments(reply).segments == 1
        found = LINK.search(reply)
        assert found, reply
        assert (await client.get(found.group(1))).status == 200
        assert await links_made(db) == 2  # the welcome's and the reward's

    async def test_off_a_claimed_reward_has_no_link(
        self, phone: Phone, db: Database, club: int
    ) -> None:
        await db.run(lambda s: set_up_loyalty(s, s.get(Program, club)))
        await sign_up(phone)
        await buy(db, club, phone.number, 70_000, "T1")
        reply = await phone.text("HENT 2")
        assert reply is not None
        assert reply.endswith("Du har nå 400 poeng.")
        assert await links_made(db) == 0


# --- one SMS, measured with the longest club name -------------------------------------------


def longest(language: str) -> dict[str, Any]:
    """The worst values of tests/locales/test_one_segment.py with a 60-character club name."""
    return worst(language) | {"club": LONGEST_NAME}


def test_the_longest_name_is_as_long_as_a_club_name_may_be() -> None:
    assert len(LONGEST_NAME) == MAX_NAME == 60


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", sorted(conversation.WITH_PAGE_LINK.values()))
def test_each_sms_with_the_link_is_one_segment_with_a_60_character_name(
    language: str, message_id: str
) -> None:
    """The welcome (with and without coupon) and the reward SMS with a page link on a long
    address (medlem.torshovsport.no/m/ + 22), a 7-digit balance and the longest money and date:
    one GSM-7 segment."""
    text = render(message_id, language, **longest(language))
    assert is_gsm7(text), text
    assert segments(text).segments == 1, (len(text), text)
    assert longest(language)["url"] in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", ["help.member", "help.guest"])
def test_help_is_one_segment_with_a_60_character_name(language: str, message_id: str) -> None:
    text = render(message_id, language, **longest(language))
    assert is_gsm7(text), text
    assert segments(text).segments == 1, (len(text), text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_member_help_names_the_members_page(language: str) -> None:
    assert KEYWORD[language] in render("help.member", language, **longest(language))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_help_reply_on_every_step_is_one_segment_with_a_60_character_name(
    language: str,
) -> None:
    """HELP (and its typos) from a stranger and from a number on every step of every flow, as
    the router answers it and the conversation renders it: one segment (a question asked again
    after it is left out when both would not fit)."""
    today = dt.date(2026, 12, 6)
    seen = 0
    for who in members(language):
        turn = Turn("HELP", Intent("help"), who, CLUB, language, today, questions(language))
        outcome = router.route(turn)
        if not outcome.replies:  # a number that texted STOP hears nothing
            continue
        params = longest(language)
        parts = [
            (render(r.id, language, **params | dict(r.params)), r.optional) for r in outcome.replies
        ]
        text = fit_one(parts)
        assert outcome.replies[0].id in ("help.member", "help.guest")
        assert segments(text).segments == 1, (who, text)
        seen += 1
    assert seen >= 5


def test_the_link_is_rendered_as_phones_link_it() -> None:
    """No https:// (eight characters a phone does not need)."""
    assert locales.sms_url("https://klubb.example.com/m/abc") == "klubb.example.com/m/abc"
