"""The Twilio webhook's contract: who may post, what a retry does, and how bad input is answered."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from sqlalchemy import func, select

from bot.keys import DB
from flows import conversation
from locales.sms import is_gsm7, segments
from store import messages
from store.database import Database
from store.models import ConsentEvent, InboundMessage, Member, OutboxMessage
from tests.conftest import (
    PUBLIC_URL,
    HeldWriters,
    Phone,
    create_club,
    replies_in,
    sign,
    twilio_form,
)

WEBHOOK = "/sms/twilio"
GUEST_MENU_NB = (
    "Torshov Sport: beklager, det skjønte vi ikke. Send BLI MED for å bli medlem, eller HJELP "
    "for hjelp."
)
MEMBER_MENU_NB = (
    "Torshov Sport: beklager, det skjønte vi ikke. Send POENG, KUPONGER, VERV, SPRÅK, MINE "
    "DATA, SLETT, HJELP eller STOPP."
)
FORWARDED_NB = (
    "Takk! Vi har sendt meldingen din til Torshov Sport, og svarer i åpningstiden. Send HJELP "
    "for valg."
)


async def post_form(
    client: TestClient,
    form: dict[str, str],
    *,
    signature: str | None = None,
    url: str = PUBLIC_URL + WEBHOOK,
) -> Any:
    """POST a form as Twilio would, signed for `url` unless a signature is given."""
    headers = {"X-Twilio-Signature": signature if signature is not None else sign(url, form)}
    return await client.post(WEBHOOK, data=form, headers=headers)


async def count(db: Database, model: type) -> int:
    return await db.run(lambda s: s.scalar(select(func.count()).select_from(model)))


async def nothing_recorded(db: Database) -> bool:
    return all([await count(db, model) == 0 for model in (InboundMessage, Member, OutboxMessage)])


async def error_of(response: Any) -> str:
    """The `error` of a JSON problem body (fails the test if the body is not one)."""
    assert response.content_type == "application/json", await response.text()
    body = json.loads(await response.text())
    assert set(body) == {"error"}
    return body["error"]


async def member_row(db: Database, phone: str, program_id: int | None = None) -> Member:
    def work(s: Any) -> Member:
        query = select(Member).where(Member.phone == phone)
        if program_id is not None:
            query = query.where(Member.program_id == program_id)
        return s.scalars(query).one()

    return await db.run(work)


@pytest.fixture
async def quiet_club(db: Database) -> int:
    """The demo club without profile questions: YES makes an active member at rest."""
    return await create_club(db, questions=[])


@pytest.fixture
async def member(client: TestClient, quiet_club: int) -> Phone:
    """A Norwegian phone that has joined the club and has nothing pending."""
    phone = Phone(client, "+4791234567")
    await phone.text("JOIN")
    assert (await phone.text("JA")).startswith("Velkommen til Torshov Sport!")
    return phone


class TestSignature:
    async def test_a_forged_webhook_is_rejected_and_leaves_no_trace(self, client, club, db) -> None:
        """A webhook without a valid signature for this URL and body gets 403, changing nothing."""
        form = twilio_form("+4791234567", "JOIN")
        forgeries = {
            "missing": None,
            "empty": "",
            "wrong": "bm90IGEgc2lnbmF0dXJl",
            "another URL": sign("https://evil.example.com" + WEBHOOK, form),
            "changed Body": sign(PUBLIC_URL + WEBHOOK, {**form, "Body": "HELP"}),
        }
        for forgery, signature in forgeries.items():
            headers = {} if signature is None else {"X-Twilio-Signature": signature}
            response = await client.post(WEBHOOK, data=form, headers=headers)
            assert response.status == 403, forgery
            assert "X-Twilio-Signature" in await error_of(response)
        assert await nothing_recorded(db)

    async def test_signed_for_the_url_with_its_port_is_accepted(self, client, club) -> None:
        """Twilio has signed the public URL with and without the default port: both pass."""
        form = twilio_form("+4791234567", "HELP")
        for url in (PUBLIC_URL + WEBHOOK, PUBLIC_URL + ":443" + WEBHOOK):
            headers = {"X-Twilio-Signature": sign(url, form)}
            response = await client.post(WEBHOOK, data=form, headers=headers)
            assert response.status == 200, url

    async def test_a_repeated_field_is_signed_with_every_value(self, client, club) -> None:
        """Twilio's signature covers each value of a field sent twice (media URLs): signed so,
        the text is answered; signed over the last value alone, it is refused."""
        form = twilio_form("+4791234567", "HELP")
        pairs = [
            *form.items(),
            ("MediaUrl0", "https://a.example/1"),
            ("MediaUrl0", "https://b.example/2"),
        ]
        every = MultiDict(pairs)
        last = {**form, "MediaUrl0": "https://b.example/2"}
        body = urlencode(pairs)
        for signed, status in ((every, 200), (last, 403)):
            response = await client.post(
                WEBHOOK,
                data=body,
                headers={
                    "X-Twilio-Signature": sign(PUBLIC_URL + WEBHOOK, signed),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert response.status == status, signed


class TestRetries:
    async def test_a_retried_join_replays_the_reply_and_records_once(self, phone, db) -> None:
        """A JOIN retried with the same MessageSid gets the same reply and makes one member."""
        first = await phone.text("JOIN", sid="SMjoin1")
        again = await phone.text("JOIN", sid="SMjoin1")
        assert again == first
        assert await count(db, InboundMessage) == 1
        assert await count(db, OutboxMessage) == 1
        assert await count(db, Member) == 1

    async def test_a_retried_yes_grants_consent_once(self, phone, db) -> None:
        """A YES retried by the gateway replays the welcome and logs one consent, one step on."""
        await phone.text("JOIN")
        first = await phone.text("JA", sid="SMyes1")
        state = await member_row(db, phone.number)
        again = await phone.text("JA", sid="SMyes1")
        assert again == first
        assert first.startswith("Velkommen til Torshov Sport!")
        assert await count(db, ConsentEvent) == 1
        assert await count(db, InboundMessage) == 2
        after = await member_row(db, phone.number)
        assert (after.status, after.flow, after.step) == (state.status, state.flow, state.step)

    async def test_a_retried_profile_answer_advances_the_member_once(self, phone, db) -> None:
        """A retried first-name answer replays its reply and leaves the member on the next step."""
        await phone.text("JOIN")
        await phone.text("JA")
        first = await phone.text("Kari", sid="SMname1")
        state = await member_row(db, phone.number)
        again = await phone.text("Kari", sid="SMname1")
        assert again == first
        after = await member_row(db, phone.number)
        assert (after.flow, after.step, after.first_name) == (state.flow, state.step, "Kari")
        assert "12.03.1990" in await phone.text("not a date")

    async def test_a_retried_stop_withdraws_once_and_replays_the_confirmation(
        self, phone, db
    ) -> None:
        """A retried STOP replays its one confirmation (not silence) and logs one withdrawal."""
        await phone.text("JOIN")
        await phone.text("JA")
        first = await phone.text("STOPP", sid="SMstop1")
        again = await phone.text("STOPP", sid="SMstop1")
        assert first is not None
        assert "START" in first
        assert again == first
        actions = await db.run(
            lambda s: s.scalars(select(ConsentEvent.action).order_by(ConsentEvent.id)).all()
        )
        assert actions == ["grant", "withdraw"]
        assert await count(db, OutboxMessage) == 3

    async def test_a_retry_that_arrives_while_the_first_is_in_flight_is_applied_once(
        self, phone, db
    ) -> None:
        """Two deliveries of one YES at the same moment grant consent once; both get the welcome."""
        await phone.text("JOIN")
        replies = await asyncio.gather(*(phone.text("JA", sid="SMyes2") for _ in range(2)))
        assert replies[0] == replies[1]
        assert replies[0].startswith("Velkommen til Torshov Sport!")
        assert await count(db, ConsentEvent) == 1
        assert await count(db, InboundMessage) == 2

    @pytest.mark.parametrize("body", ["JOIN", "JA", "POENG", "HJELP", "STOPP"])
    async def test_a_retry_is_answered_from_its_record_before_any_turn_work(
        self, member, db, monkeypatch, body
    ) -> None:
        """A retried text (same MessageSid) gets the stored reply from a lookup made before the
        turn: the flow is not run again, nothing is recorded twice, no turn is rolled back."""
        turns = spy(monkeypatch, conversation, "_turn")
        records = spy(monkeypatch, messages, "record_inbound")
        first = await member.text(body, sid="SMretry" + body)
        rows = [await count(db, model) for model in (InboundMessage, OutboxMessage, ConsentEvent)]
        again = await member.text(body, sid="SMretry" + body)
        assert again == first
        assert (len(turns), len(records)) == (1, 1)
        assert [await count(db, m) for m in (InboundMessage, OutboxMessage, ConsentEvent)] == rows

    async def test_deliveries_of_one_text_at_once_run_its_turn_once(
        self, member, db, monkeypatch
    ) -> None:
        """Four deliveries of one member's text at the same moment (one group on SQLite, waiting
        on the member's lock on PostgreSQL): one turn, four equal replies."""
        turns = spy(monkeypatch, conversation, "_turn")
        replies = await asyncio.gather(*(member.text("POENG", sid="SMsame4") for _ in range(4)))
        assert len(set(replies)) == 1
        assert len(turns) == 1
        assert await count(db, InboundMessage) == 3


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[tuple]:
    """The calls made to `module.name` from now on (each call's arguments), the call itself
    made as before."""
    calls: list[tuple] = []
    real = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


BAD_BODIES = {
    "empty": "",
    "whitespace": "   \n\t ",
    "1600 characters": "Hei! " + "x" * 1595,
    "emoji": "🎉🍩😀",
    "sql": "'; DROP TABLE members; --",
    "control characters": "hei\x01\x07\x1b[31m\x7f",
    "10000 characters": "lorem ipsum " * 833 + "abcd",
}


def assert_fits_an_sms(reply: str) -> None:
    assert is_gsm7(reply), reply
    assert segments(reply).segments <= 2, reply


class TestBadInput:
    async def test_a_guest_gets_the_menu_for_any_text(self, phone, db) -> None:
        """Whatever a stranger texts, the answer is the short guest menu in one or two GSM-7 SMS."""
        for kind, body in BAD_BODIES.items():
            reply = await phone.text(body)
            assert reply == GUEST_MENU_NB, kind
            assert_fits_an_sms(reply)
        assert await count(db, InboundMessage) == len(BAD_BODIES)
        assert await count(db, Member) == 0

    async def test_a_member_gets_the_member_menu_for_any_text(self, member, db) -> None:
        """Whatever a member texts that asks for nothing, the answer is the member menu, or,
        for words written to a person (two or more), that the shop has the text."""
        sentences = {"1600 characters", "sql", "10000 characters"}
        for kind, body in BAD_BODIES.items():
            reply = await member.text(body)
            assert reply == (FORWARDED_NB if kind in sentences else MEMBER_MENU_NB), kind
            assert_fits_an_sms(reply)
        assert await count(db, InboundMessage) == 2 + len(BAD_BODIES)

    async def test_a_text_with_a_nul_character_gets_the_menu(self, request, member, db) -> None:
        """A text holding a NUL character is answered with the menu and kept, like any other."""
        reply = await member.text("hei\x00")
        assert reply == MEMBER_MENU_NB
        assert await count(db, InboundMessage) == 3

    async def test_a_missing_body_is_an_empty_text(self, phone, client, db) -> None:
        """A webhook without a Body field is read as an empty text and gets the menu."""
        form = twilio_form(phone.number, "")
        del form["Body"]
        response = await post_form(client, form)
        assert response.status == 200
        assert replies_in(await response.text()) == [GUEST_MENU_NB]
        assert await count(db, InboundMessage) == 1

    async def test_the_reply_is_twiml(self, phone, client) -> None:
        """The answer is TwiML with one Message holding the reply."""
        response = await post_form(client, twilio_form(phone.number, "HJELP"))
        assert response.status == 200
        assert response.content_type == "application/xml"
        text = await response.text()
        assert text.startswith("<?xml")
        assert "<Response><Message>Torshov Sport:" in text


def without(field: str) -> dict[str, str]:
    form = twilio_form("+4791234567", "JOIN")
    del form[field]
    return form


class TestMalformedRequests:
    async def test_a_missing_field_is_named(self, client, club, db) -> None:
        """A signed webhook without From, To or MessageSid gets 400 naming the field."""
        for field in ("From", "To", "MessageSid"):
            response = await post_form(client, without(field))
            assert response.status == 400, field
            assert field in await error_of(response)
        assert await nothing_recorded(db)

    async def test_from_must_be_a_phone_number(self, client, club, db) -> None:
        """A From that is not a phone number ("abc", "", "client:alice") gets 400 naming From."""
        for sender in ("abc", "", "client:alice"):
            response = await post_form(client, twilio_form(sender, "JOIN"))
            assert response.status == 400, sender
            assert "From" in await error_of(response)
        assert await nothing_recorded(db)

    async def test_an_unknown_club_number_is_404_naming_it(self, client, club, db) -> None:
        """A text to a number no club answers on gets 404 naming that number."""
        response = await post_form(client, twilio_form("+4791234567", "JOIN", to="+4799999999"))
        assert response.status == 404
        assert "+4799999999" in await error_of(response)
        assert await nothing_recorded(db)

    async def test_a_body_that_is_not_a_form_is_415(self, client, club, db) -> None:
        """A JSON or plain-text body gets 415 naming the form encoding Twilio uses."""
        bodies = {
            "application/json": json.dumps(twilio_form("+4791234567", "JOIN")),
            "text/plain": "From=%2B4791234567&To=2020&MessageSid=SM1&Body=JOIN",
        }
        for content_type, body in bodies.items():
            response = await client.post(
                WEBHOOK,
                data=body,
                headers={"Content-Type": content_type, "X-Twilio-Signature": "irrelevant"},
            )
            assert response.status == 415, content_type
            assert "application/x-www-form-urlencoded" in await error_of(response)
        assert await nothing_recorded(db)

    @pytest.mark.parametrize("path", [WEBHOOK, WEBHOOK + "/status"])
    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            ("application/x-www-form-urlencoded; charset=klingon", b"From=%2B4791234567"),
            ("application/x-www-form-urlencoded", b"From=\xff\xfe&To=2020"),
            ("application/x-www-form-urlencoded; charset=utf-16", b"From=\x00\xd8"),
        ],
    )
    async def test_a_form_that_cant_be_decoded_is_400_without_a_traceback(
        self, client, club, db, caplog, path, content_type, body
    ) -> None:
        """An unknown charset or bytes not in it: refused before the signature is checked, with
        no ERROR (no traceback) in the log, and nothing recorded."""
        caplog.set_level(logging.INFO)
        response = await client.post(
            path,
            data=body,
            headers={"Content-Type": content_type, "X-Twilio-Signature": "irrelevant"},
        )
        assert response.status == 400
        assert "could not be read" in await error_of(response)
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert await nothing_recorded(db)

    async def test_a_body_over_64_kib_is_413(self, client, club, db) -> None:
        """A form larger than 64 KiB gets 413 with a JSON error and records nothing."""
        response = await post_form(client, twilio_form("+4791234567", "x" * (65 * 1024)))
        assert response.status == 413
        assert await nothing_recorded(db)
        assert "size" in await error_of(response)

    async def test_get_is_405(self, client, club, db) -> None:
        """GET on the webhook gets 405 with a JSON error naming the allowed method."""
        response = await client.get(WEBHOOK)
        assert response.status == 405
        assert await nothing_recorded(db)
        assert "POST" in await error_of(response)

    async def test_an_overlong_message_sid_is_400(self, client, club, db) -> None:
        """A MessageSid longer than any Twilio makes gets 400 naming MessageSid."""
        response = await post_form(client, twilio_form("+4791234567", "JOIN", sid="SM" + "a" * 99))
        assert response.status == 400
        assert "MessageSid" in await error_of(response)
        assert await nothing_recorded(db)

    @pytest.mark.parametrize("sid", ["SM1\x00", "\x00", "SM\x07x"])
    async def test_a_message_sid_that_is_not_text_is_400(
        self, client, club, db, caplog, sid
    ) -> None:
        """A MessageSid with a NUL (PostgreSQL refuses it: the turn failed, the member got the
        apology and the text was lost) or another control character: 400 naming MessageSid,
        nothing recorded, no ERROR in the log."""
        response = await post_form(client, twilio_form("+4791234567", "JOIN", sid=sid))
        assert response.status == 400
        assert "MessageSid" in await error_of(response)
        assert await nothing_recorded(db)
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_healthz_says_ok(client) -> None:
    """GET /healthz answers 200 {"status": "ok"} when the database answers."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


class TestTwoClubs:
    async def test_one_phone_is_a_separate_member_of_each_club(self, client, club, db) -> None:
        """The same phone joins two clubs as two members, and each reply names its own club."""
        bakery = await create_club(db, numbers=["+4740000000"], name="Byens Bakeri")
        at_sport = Phone(client, "+4791234567")
        at_bakery = Phone(client, "+4791234567", to="+4740000000")
        assert (await at_sport.text("JOIN")).startswith("Torshov Sport: svar JA")
        assert (await at_bakery.text("JOIN")).startswith("Byens Bakeri: svar JA")
        assert (await at_bakery.text("JA")).startswith("Velkommen til Byens Bakeri!")
        assert (await at_sport.text("hei")).startswith("Svar JA for å bli medlem i Torshov Sport")
        sport_member = await member_row(db, "+4791234567", club)
        bakery_member = await member_row(db, "+4791234567", bakery)
        assert (sport_member.status, bakery_member.status) == ("pending", "active")
        assert await at_sport.text("STOPP") is not None
        assert (await at_bakery.text("HJELP")).startswith("Byens Bakeri: ")

    async def test_the_same_message_sid_at_two_clubs_is_two_texts(self, client, club, db) -> None:
        """A MessageSid is unique per club, so a text to the second club is not a replay."""
        await create_club(db, numbers=["+4740000000"], name="Byens Bakeri")
        sport = await Phone(client, "+4791234567").text("HJELP", sid="SMsame")
        bakery = await Phone(client, "+4791234567", to="+4740000000").text("HJELP", sid="SMsame")
        assert sport.startswith("Torshov Sport:")
        assert bakery.startswith("Byens Bakeri:")

    async def test_texts_to_two_clubs_in_one_group_are_each_their_clubs(
        self, client, club, db
    ) -> None:
        """Members of two clubs, one number in both, and one MessageSid at both clubs and at
        a retry, committed together: each text is read and answered at its own club, the
        retry from its record, and nothing is taken for a retry that is not one."""
        bakery = await create_club(db, numbers=["+4740000000"], name="Byens Bakeri")
        kari_sport = Phone(client, "+4791234567")
        kari_bakery = Phone(client, "+4791234567", to="+4740000000")
        ola_bakery = Phone(client, "+4798765432", to="+4740000000")
        for phone in (kari_bakery, ola_bakery):
            await phone.text("JOIN")
            await phone.text("JA")
        first = await ola_bakery.text("HJELP", sid="SMbefore")
        texts = [
            kari_sport.text("JOIN", sid="SMsame"),
            kari_bakery.text("HJELP", sid="SMsame"),
            ola_bakery.text("HJELP", sid="SMbefore"),  # a retry
            Phone(client, "+4790000001").text("JOIN", sid="SMbefore"),  # at the other club
        ]
        replies, apart = await in_one_group(client, texts)
        assert apart == []
        assert replies[0].startswith("Torshov Sport: svar JA"), replies
        assert replies[1].startswith("Byens Bakeri: "), replies
        assert replies[2] == first
        assert replies[3].startswith("Torshov Sport: svar JA"), replies
        assert (await member_row(db, "+4791234567", club)).status == "pending"
        assert (await member_row(db, "+4791234567", bakery)).status == "active"
        assert await count(db, InboundMessage) == 4 + 1 + 3


class TestConcurrency:
    async def test_one_members_texts_at_once_are_all_answered_consistently(self, phone, db) -> None:
        """Twenty texts from one member at the same moment all get a reply and join them once."""
        await phone.text("JOIN")
        await phone.text("JA")
        texts = [
            "Kari",
            "HJELP",
            "MINE DATA",
            "JA",
            "BLI MED",
            "START",
            "12.03.1990",
            "1 3",
            "hei",
            "SPRÅK",
            "?",
            "Ola",
            "INFO",
            "hopp over",
            "",
            "🎉",
            "medlem",
            "1",
            "takk",
            "x" * 300,
        ]
        replies = await asyncio.gather(*(phone.text(t) for t in texts))
        assert all(replies), replies
        assert await count(db, Member) == 1
        assert await count(db, ConsentEvent) == 1
        assert await count(db, InboundMessage) == 22
        assert await count(db, OutboxMessage) == 22
        member = await member_row(db, phone.number)
        assert member.status == "active"

    async def test_fifty_phones_joining_at_once_make_fifty_members(self, client, club, db) -> None:
        """Fifty different phones texting JOIN at the same moment become fifty pending members."""
        phones = [Phone(client, f"+47912{i:05d}") for i in range(50)]
        replies = await asyncio.gather(*(p.text("JOIN") for p in phones))
        assert all(r.startswith("Torshov Sport: svar JA") for r in replies)
        statuses = await db.run(lambda s: s.scalars(select(Member.status)).all())
        assert sorted(statuses) == ["pending"] * 50

    async def test_one_new_phones_first_texts_at_once_make_one_member(
        self, client, club, db
    ) -> None:
        """Five JOINs from a new number at the same moment make one member and get the opt-in."""
        phone = Phone(client, "+4791234567")
        replies = await asyncio.gather(
            *(phone.text("JOIN", sid="SM" + uuid.uuid4().hex) for _ in range(5))
        )
        assert all(r.startswith("Torshov Sport: svar JA") for r in replies), replies
        assert await count(db, Member) == 1
        assert await count(db, InboundMessage) == 5

    async def test_a_text_to_an_unknown_club_in_a_group_is_refused_alone(
        self, client, club, db
    ) -> None:
        """Texts to a number no club answers on, arriving with other members' JOINs, get their
        404 while every JOIN gets its opt-in, and (on SQLite) the group is not run again apart:
        the refusal is an answer, not a failure."""
        joins = [Phone(client, f"+47912{i:05d}") for i in range(3)]
        strays = [Phone(client, f"+47913{i:05d}", to="+4799999999") for i in range(3)]
        posts = [p.text("JOIN") for p in joins] + [
            post_form(client, twilio_form(p.number, "JOIN", to=p.to)) for p in strays
        ]
        answers, apart = await in_one_group(client, posts)
        assert all(r.startswith("Torshov Sport: svar JA") for r in answers[:3]), answers
        for response in answers[3:]:
            assert response.status == 404
            assert "+4799999999" in await error_of(response)
        assert apart == []
        statuses = await db.run(lambda s: s.scalars(select(Member.status)).all())
        assert sorted(statuses) == ["pending"] * 3
        assert await count(db, InboundMessage) == 3

    async def test_a_new_numbers_join_and_yes_in_one_group_make_a_member(
        self, client, club, db
    ) -> None:
        """JOIN and then JA from a new number, committed together: the JA reads the member the
        JOIN made (pending) and grants consent, as it would a moment later; then POENG."""
        phone = Phone(client, "+4791234567")
        async with HeldWriters(client.server.app[DB]) as held:
            join = asyncio.ensure_future(phone.text("JOIN"))
            await held.queued(1)
            yes = asyncio.ensure_future(phone.text("JA"))
            await held.queued(2)
            points = asyncio.ensure_future(phone.text("POENG"))
            await held.release_when(3)
            replies = [await join, await yes, await points]
        assert held.apart == []
        assert replies[0].startswith("Torshov Sport: svar JA"), replies
        assert replies[1] != replies[0], replies
        assert (await member_row(db, phone.number)).status == "active"
        assert await count(db, ConsentEvent) == 1
        assert await count(db, InboundMessage) == 3
        assert await count(db, OutboxMessage) == 3

    async def test_one_message_sid_from_two_numbers_in_one_group_is_one_text(
        self, client, club, db
    ) -> None:
        """A MessageSid is one text: posted from two numbers at once (a gateway gone wrong, or
        a forger with the token), it is recorded once and both posts get its reply."""
        first, second = Phone(client, "+4791234567"), Phone(client, "+4798765432")
        replies, _ = await in_one_group(
            client, [first.text("JOIN", sid="SMshared"), second.text("JOIN", sid="SMshared")]
        )
        assert replies[0].startswith("Torshov Sport: svar JA"), replies
        assert replies[1] == replies[0]
        assert await count(db, InboundMessage) == 1
        assert await count(db, OutboxMessage) == 1
        assert await count(db, Member) == 1

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(kinds=st.lists(st.sampled_from(["new", "retry", "twice", "stray"]), max_size=8))
    async def test_any_mix_of_retries_and_refusals_in_a_group_answers_each_as_alone(
        self, client, club, db, kinds: list[str]
    ) -> None:
        """For any mix of first texts, retries of texts answered before, one text delivered
        twice at once and texts to a number no club answers on, arriving as one group: each
        delivery gets the answer it would have had alone (the opt-in, the stored reply, the
        same opt-in twice, a 404), each text is recorded once, and the group never runs again
        apart (nothing in it failed)."""
        phones = [Phone(client, f"+47915{next(_PHONES):05d}") for _ in kinds]
        before = await count(db, InboundMessage)
        answered: dict[int, str | None] = {}
        for i, kind in enumerate(kinds):
            if kind == "retry":
                answered[i] = await phones[i].text("JOIN", sid=f"SMfirst{phones[i].number}")
        posts: list[Any] = []
        expected: list[str] = []
        for i, (kind, phone) in enumerate(zip(kinds, phones, strict=True)):
            if kind == "new":
                posts.append(phone.text("JOIN"))
            elif kind == "retry":
                posts.append(phone.text("JOIN", sid=f"SMfirst{phone.number}"))
            elif kind == "twice":
                sid = "SM" + uuid.uuid4().hex
                posts += [phone.text("JOIN", sid=sid), phone.text("JOIN", sid=sid)]
                expected.append("twice")
            else:
                form = twilio_form(phone.number, "JOIN", to="+4799999999")
                posts.append(post_form(client, form))
            expected.append(kind if kind != "retry" else f"retry:{i}")
        answers, apart = await in_one_group(client, posts)
        for want, got in zip(expected, answers, strict=True):
            if want == "stray":
                assert got.status == 404
                assert "+4799999999" in await error_of(got)
            elif want.startswith("retry:"):
                assert got == answered[int(want.split(":")[1])]
            else:
                assert got.startswith("Torshov Sport: svar JA"), (want, got)
        assert apart == []
        texts = sum(kind != "stray" for kind in kinds)
        assert await count(db, InboundMessage) == before + texts


# Numbers new to the club in every example of a property test.
_PHONES = itertools.count()


async def in_one_group(client: TestClient, posts: list[Any]) -> tuple[list[Any], list[int]]:
    """Await `posts` (webhook deliveries) as one burst: held behind units that block the app's
    writers of turns until all are queued, so they form groups. Their answers, in order, and
    the sizes of the groups that were run again apart."""
    async with HeldWriters(client.server.app[DB]) as held:
        running = [asyncio.ensure_future(post) for post in posts]
        await held.release_when(len(posts))
        answers = list(await asyncio.gather(*running))
    return answers, held.apart
