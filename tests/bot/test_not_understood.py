"""A text Klubb can't understand: one SMS in the member's language (a sentence: passed on to the
shop; a single word: what they can text), and the text marked not understood (the admin
counts them, the inbox shows them); nothing else is marked."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from locales.sms import is_gsm7, segments
from store.clubs import programs
from store.database import Database
from store.models import InboundMessage
from tests.conftest import Phone

NB, SV, EN = "+4791234567", "+46701234567", "+447700900123"


async def marks(db: Database) -> list[tuple[str | None, bool]]:
    """(body, not_understood) of every inbound text, oldest first."""

    def read(session) -> list[tuple[str | None, bool]]:
        rows = session.execute(
            select(InboundMessage.body, InboundMessage.not_understood).order_by(InboundMessage.id)
        )
        return [(body, bool(flag)) for body, flag in rows]

    return await db.run(read)


async def join_fully(phone: Phone) -> None:
    for text in ("JOIN", "YES", "Kari", "12.03.1990", "1 3"):
        await phone.text(text)


class TestTheReply:
    @pytest.mark.parametrize(
        ("number", "expected"),
        [
            (NB, "Takk! Vi har sendt meldingen din til Torshov Sport, og svarer i åpningstiden."),
            (SV, "Tack! Vi har skickat ditt meddelande till Torshov Sport och svarar under"),
            (EN, "Thanks! We have sent your message to Torshov Sport and will reply in opening"),
        ],
    )
    async def test_a_members_sentence_is_passed_on_in_their_language(
        self, client, club, db, number: str, expected: str
    ) -> None:
        """A question to the shop: one GSM-7 segment in the member's language saying the shop
        has it (it is in the inbox), and the text marked not understood."""
        phone = Phone(client, number)
        await join_fully(phone)
        reply = await phone.text("kan jeg ta med hunden?")
        assert reply is not None
        assert reply.startswith(expected)
        assert is_gsm7(reply)
        assert segments(reply).segments == 1
        assert (await marks(db))[-1] == ("kan jeg ta med hunden?", True)

    @pytest.mark.parametrize(
        ("number", "expected"),
        [
            (NB, "beklager, det skjønte vi ikke. Send POENG, KUPONGER, VERV, SPRÅK, MINE DATA"),
            (SV, "tyvärr, det förstod vi inte. Skicka POÄNG, KUPONGER, VÄRVA, SPRÅK, MINA DATA"),
            (EN, "sorry, we didn't understand. Text POINTS, COUPONS, INVITE, LANG, MYDATA"),
        ],
    )
    async def test_a_members_single_word_gets_what_they_can_text(
        self, client, club, db, number: str, expected: str
    ) -> None:
        """One word Klubb can't read (a keyword mistyped, most often): the member's keywords
        in their language, naming the club, in one segment; still marked not understood."""
        phone = Phone(client, number)
        await join_fully(phone)
        reply = await phone.text("pfft")
        assert reply is not None
        assert reply.startswith("Torshov Sport: ")
        assert expected in reply
        assert segments(reply).segments == 1
        assert (await marks(db))[-1] == ("pfft", True)

    async def test_the_clubs_own_wording_in_its_language_else_the_default(
        self, client, club, db
    ) -> None:
        """The club's nb wording goes to a member who reads nb; one who reads sv, for which the
        club wrote nothing, gets the default."""

        def own(session) -> None:
            program = programs.get(session, club)
            programs.set_auto_reply(session, program, {"nb": "Hei! {club} svarer deg snart."})

        await db.run(own)
        nb, sv = Phone(client, NB), Phone(client, SV)
        await join_fully(nb)
        await join_fully(sv)
        assert await nb.text("har dere åpent på søndag?") == "Hei! Torshov Sport svarer deg snart."
        reply = await sv.text("har ni öppet på söndag?")
        assert reply is not None
        assert reply.startswith("Tack! Vi har skickat ditt meddelande till Torshov Sport")

    @pytest.mark.parametrize(
        ("number", "keyword"), [(NB, "Send BLI MED"), (SV, "Skicka GÅ MED"), (EN, "Text JOIN")]
    )
    async def test_a_stranger_is_told_how_to_join(
        self, client, club, db, number: str, keyword: str
    ) -> None:
        reply = await Phone(client, number).text("hva koster en kaffe?")
        assert reply is not None
        assert keyword in reply
        assert segments(reply).segments == 1
        assert await marks(db) == [("hva koster en kaffe?", True)]


class TestOnlyWhatWasNotUnderstoodIsMarked:
    async def test_help_keywords_answers_and_silence_are_not_marked(self, phone, db) -> None:
        """HELP, JOIN, the consent answer, profile answers (and a profile answer that is no
        answer), POINTS and everything a stopped member texts are not "not understood"; the
        two texts Klubb could not read are."""
        texts = [
            "HJELP",
            "BLI MED",
            "hmm",  # the consent question asked again: Klubb knows what it waits for
            "JA",
            "Kari",
            "i fjor",  # not a date: the birthday question asked again
            "12.03.1990",
            "1 3",
            "POENG",
            "hvor er butikken?",
            "STOPP",
            "hei igjen",
        ]
        for text in texts:
            await phone.text(text)
        marked = [body for body, flag in await marks(db) if flag]
        assert marked == ["hvor er butikken?"]

    async def test_a_retried_text_is_marked_once(self, phone, db) -> None:
        """The gateway's retry replays the reply and records nothing more."""
        first = await phone.text("tja", sid="SMretried")
        assert await phone.text("tja", sid="SMretried") == first
        assert await marks(db) == [("tja", True)]
