"""Understanding end to end: texts through the signed webhook (the Phone fixture), on every step
a member can be on, in nb, sv and en."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from locales.sms import is_gsm7
from store.database import Database
from store.models import ConsentEvent, Member
from tests.conftest import Phone

NB, SV, EN = "+4791234567", "+46701234567", "+447700900123"

# How to bring a number to each step of the demo club (questions: name, birthday, activities).
TO_STEP: dict[str, tuple[str, ...]] = {
    "stranger": (),
    "consent": ("JOIN",),
    "first_name": ("JOIN", "YES"),
    "birthday": ("JOIN", "YES", "Kari"),
    "activities": ("JOIN", "YES", "Kari", "12.03.1990"),
    "active": ("JOIN", "YES", "Kari", "12.03.1990", "1 3"),
    "confirm_delete": ("JOIN", "YES", "Kari", "12.03.1990", "1 3", "SLETT"),
}
# Opt-outs as members write them, none of them a keyword alone.
STOP_SENTENCES = {
    NB: "jeg vil ikke være med lenger",
    SV: "sluta skicka erbjudanden till mig",
    EN: "please don't text me any more",
}

# A long text whose opt-out comes last, after what a member tells first.
LONG_STOPS = {
    NB: (
        "Hei! Jeg har handlet hos dere i mange år og er veldig fornøyd med butikken. " * 7,
        "Men nå får jeg altfor mange meldinger, så meld meg av.",
    ),
    SV: (
        "Hej! Jag har handlat hos er i många år och är väldigt nöjd med butiken. " * 7,
        "Men nu får jag alldeles för många sms, så avregistrera mig.",
    ),
    EN: (
        "Hi! I have shopped with you for many years and I really like the shop. " * 7,
        "But I get far too many texts now, so please unsubscribe me.",
    ),
}


async def member_of(db: Database, number: str) -> Member | None:
    return await db.run(lambda s: s.scalars(select(Member).where(Member.phone == number)).first())


async def withdrawals(db: Database) -> int:
    def count(s) -> int:
        rows = s.scalars(select(ConsentEvent).where(ConsentEvent.action == "withdraw")).all()
        return len(rows)

    return await db.run(count)


class TestStopOnEveryStep:
    @pytest.mark.parametrize("number", [NB, SV, EN])
    @pytest.mark.parametrize("step", TO_STEP)
    async def test_a_stop_sentence_stops_on_every_step(
        self, client, club, db, step: str, number: str
    ) -> None:
        """The sentence withdraws consent, is answered once, and nothing more is sent."""
        phone = Phone(client, number)
        for text in TO_STEP[step]:
            await phone.text(text)
        reply = await phone.text(STOP_SENTENCES[number])
        assert reply is not None
        member = await member_of(db, number)
        assert member is not None
        assert member.status == "stopped"
        assert (member.flow, member.step) == (None, None)
        assert await withdrawals(db) == 1
        assert await phone.text("hei") is None

    @pytest.mark.parametrize("number", [NB, SV, EN])
    async def test_a_stop_at_the_end_of_a_long_text_stops(self, client, club, db, number) -> None:
        """An opt-out after a long story (past the first sentences read for anything else)
        withdraws consent like a short one: it wins wherever it stands."""
        phone = Phone(client, number)
        for text in TO_STEP["active"]:
            await phone.text(text)
        story, stop = LONG_STOPS[number]
        assert 480 < len(story + stop) <= 1600
        reply = await phone.text(story + stop)
        assert reply is not None
        member = await member_of(db, number)
        assert member is not None
        assert member.status == "stopped"
        assert await withdrawals(db) == 1
        assert await phone.text("hei") is None

    @pytest.mark.parametrize("text", ["Avslutt", "Slutt", "stopp takk", "meld meg av"])
    async def test_a_stop_word_at_the_first_name_question_is_no_name(
        self, phone, db, text: str
    ) -> None:
        """ "Avslutt" is never saved as a first name: it stops."""
        for step in TO_STEP["first_name"]:
            await phone.text(step)
        await phone.text(text)
        member = await member_of(db, phone.number)
        assert member is not None
        assert (member.status, member.first_name) == ("stopped", None)

    async def test_a_name_is_still_a_name(self, phone, db) -> None:
        for step in TO_STEP["first_name"]:
            await phone.text(step)
        assert (await phone.text("Kari")).startswith("Takk, Kari!")
        member = await member_of(db, phone.number)
        assert member is not None
        assert member.first_name == "Kari"

    @pytest.mark.parametrize(
        "text",
        ["nei takk", "Nei", "no thanks", "nej tack", "vil ikke si", "skip pls", "helst ikke"],
    )
    async def test_a_no_at_the_first_name_question_skips_it(self, phone, db, text: str) -> None:
        """ "Nei takk" declines to give a name: no one is thanked as "Nei Takk", and the
        birthday is asked next."""
        for step in TO_STEP["first_name"]:
            await phone.text(step)
        reply = await phone.text(text)
        assert reply.startswith("Hva er fødselsdatoen din")
        member = await member_of(db, phone.number)
        assert member is not None
        assert (member.status, member.first_name, member.step) == ("active", None, "q2")

    @pytest.mark.parametrize("text", ["ja takk", "yes please", "ja gjerne"])
    async def test_a_yes_at_the_first_name_question_asks_again(self, phone, db, text) -> None:
        """ "Ja takk" is no name: the question is asked again."""
        for step in TO_STEP["first_name"]:
            await phone.text(step)
        assert await phone.text(text) == "Svar med bare fornavnet ditt, eller HOPP OVER."
        member = await member_of(db, phone.number)
        assert member is not None
        assert (member.first_name, member.step) == (None, "q1")
        assert (await phone.text("Jo")).startswith("Takk, Jo!")  # a yes alone may be a name

    @pytest.mark.parametrize(
        ("typed", "thanked"),
        [
            ("è", "Takk, è!"),  # "È" is no GSM-7 letter: kept as typed
            ("ève", "Takk, ève!"),
            ("élodie", "Takk, Élodie!"),  # "É" is GSM-7
            ("FRANÇOIS", "Takk, FRANÇOIS!"),  # "ç" is not
            ("kari", "Takk, Kari!"),
            ("O’Brien", "Takk, O'Brien!"),  # a phone's typographic apostrophe
            ("d‘angelo", "Takk, D'angelo!"),
            ("mitt navn er Mette", "Takk, Mette!"),
        ],
    )
    async def test_a_name_is_capitalised_only_into_gsm7_letters(
        self, phone, db, typed: str, thanked: str
    ) -> None:
        """The thanks for a first name stays one GSM-7 SMS: a letter is capitalised only when
        its capital is GSM-7, else the name is kept as typed."""
        for step in TO_STEP["first_name"]:
            await phone.text(step)
        reply = await phone.text(typed)
        assert reply.startswith(thanked)
        assert is_gsm7(reply)


class TestSentences:
    @pytest.mark.parametrize(
        "text",
        [
            "Født 15.03.1990",
            "den 15. mars 1990",
            "15.03.1990 🎂",
            "född 15 mars 1990",
            "I was born on March 15, 1990",
        ],
    )
    async def test_a_birthday_among_words_is_the_birthday(self, phone, db, text: str) -> None:
        """A date with words or an emoji around it is read as the date alone, and the next
        question is asked."""
        for step in TO_STEP["birthday"]:
            await phone.text(step)
        assert (await phone.text(text)).startswith("Hvilke aktiviteter liker du?")
        member = await member_of(db, phone.number)
        assert member is not None
        assert member.birthday == dt.date(1990, 3, 15)

    async def test_a_question_mid_profile_is_answered_and_the_question_asked_again(
        self, phone, db
    ) -> None:
        """ "hvor mange poeng har jeg?" at the birthday question gets the points, and the
        birthday is still what the next text answers."""
        for step in TO_STEP["birthday"]:
            await phone.text(step)
        reply = await phone.text("hvor mange poeng har jeg?")
        assert "poeng" in reply
        assert await phone.text("12.03.1990")
        member = await member_of(db, phone.number)
        assert member is not None
        assert member.birthday is not None

    async def test_consent_in_words(self, phone, db) -> None:
        """ "ja takk, gjerne!" answers the opt-in question."""
        await phone.text("jeg vil gjerne bli med i klubben")
        await phone.text("Ja takk, gjerne!")
        member = await member_of(db, phone.number)
        assert member is not None
        assert member.status == "active"

    async def test_a_loyalty_question_with_no_more_is_no_stop(self, phone, db) -> None:
        for step in TO_STEP["active"]:
            await phone.text(step)
        assert await phone.text("ingen flere kuponger?")
        member = await member_of(db, phone.number)
        assert member is not None
        assert member.status == "active"


class TestLanguage:
    async def test_a_swede_on_a_uk_number_gets_swedish(self, client, club, db) -> None:
        """A first text clearly in Swedish sets the member's language, whatever the number."""
        uk = Phone(client, EN)
        swedish = Phone(client, SV)
        reply = await uk.text("jag vill gå med i klubben")
        assert reply == await swedish.text("GÅ MED")
        member = await member_of(db, EN)
        assert member is not None
        assert member.language == "sv"

    async def test_a_lone_code_is_no_language(self, phone, db) -> None:
        """ "Se" (look) or "En" (one) never switches language; "LANG SV" does."""
        for step in TO_STEP["active"]:
            await phone.text(step)
        for text in ("Se", "En"):
            await phone.text(text)
            member = await member_of(db, phone.number)
            assert member is not None
            assert member.language is None
        await phone.text("LANG SV")
        member = await member_of(db, phone.number)
        assert member is not None
        assert member.language == "sv"

    async def test_a_chosen_language_wins_over_the_text(self, phone, db) -> None:
        for step in TO_STEP["active"]:
            await phone.text(step)
        await phone.text("LANG EN")
        norwegian = await phone.text("hvor mange poeng har jeg?")
        english = await phone.text("POINTS")
        assert norwegian == english


async def test_the_reason_is_in_the_debug_log(phone, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="flows.conversation"):
        await phone.text("fjern nummeret mitt")
    assert any(
        "read as stop" in r.getMessage() and "fjern" in r.getMessage() for r in caplog.records
    )
