"""Privacy by SMS: MYDATA shows what the club holds, DELETE erases it, under-age keeps nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from locales.sms import is_gsm7, segments
from scheduler import sender
from scheduler.gateway import Rejected
from store.database import Database
from store.members import members
from store.models import (
    ConsentEvent,
    InboundMessage,
    Member,
    OutboxMessage,
    ProfileAnswer,
    Program,
)
from tests.conftest import Phone, create_club
from tests.scheduler.campaign_helpers import (
    T0,
    RecordingGateway,
    add_members,
    at,
    broadcast,
    plan,
)

NB, SV, EN = "+4791234567", "+46701234567", "+447700900123"


async def join_fully(phone: Phone, name: str = "Kari", birthday: str = "12.03.1990") -> None:
    """JOIN, YES and every profile question of the demo club answered."""
    await phone.text("JOIN")
    await phone.text("YES")
    await phone.text(name)
    await phone.text(birthday)
    await phone.text("1 3")


async def members_of(db: Database) -> list[Member]:
    return list(await db.run(lambda s: s.scalars(select(Member).order_by(Member.id)).all()))


async def messages_of(db: Database) -> tuple[list[InboundMessage], list[OutboxMessage]]:
    def work(s: Any) -> tuple[list[InboundMessage], list[OutboxMessage]]:
        inbound = s.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        outbox = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        return list(inbound), list(outbox)

    return await db.run(work)


async def rows_mentioning(db: Database, *needles: str) -> list[str]:
    """Every message row in which any of `needles` (a phone, a name, a date) still appears."""
    inbound, outbox = await messages_of(db)
    found = []
    for row in [*inbound, *outbox]:
        kept = " ".join(str(v) for v in (row.from_number, row.to_number, row.body) if v)
        kept += " " + (getattr(row, "reply", None) or "")
        found += [f"{type(row).__name__} {row.id}: {kept!r}" for n in needles if n in kept]
    return found


async def was_erased(db: Database, program_id: int, phone: str) -> bool:
    return await db.run(lambda s: members.was_erased(s, s.get(Program, program_id), phone))


class TestMyData:
    @pytest.mark.parametrize(
        ("number", "birthday", "delete_word"),
        [(NB, "12.03.1990", "SLETT"), (SV, "1990-03-12", "RADERA"), (EN, "12 Mar 1990", "DELETE")],
    )
    async def test_mydata_summarises_what_the_club_holds_in_the_members_locale(
        self, client, club, number, birthday, delete_word
    ) -> None:
        """MYDATA answers with the phone, the name and the birthday in the member's date format."""
        phone = Phone(client, number)
        await join_fully(phone)
        summary = await phone.text("MYDATA")
        for fact in (number, "Kari", birthday, delete_word):
            assert fact in summary
        assert is_gsm7(summary)
        assert segments(summary).segments == 1

    async def test_mydata_during_the_profile_answers_and_keeps_the_question_open(
        self, phone
    ) -> None:
        """MYDATA texted while a profile question is pending answers in one SMS; the question
        is not repeated when it would not fit beside the summary, and the member's next text
        still answers it."""
        await phone.text("JOIN")
        await phone.text("JA")
        summary = await phone.text("MINE DATA")
        assert summary.startswith("Vi har lagret: +4791234567, -, født -, norsk")
        assert "fornavn" not in summary
        assert segments(summary).segments == 1
        assert (await phone.text("Kari")).startswith("Takk, Kari!")

    @pytest.mark.parametrize("word", ["MINE DATA", "DELETE"])
    async def test_a_number_klubb_does_not_know_holds_no_data(self, phone, db, word) -> None:
        """MYDATA or DELETE from a stranger says the club holds no data and creates no member."""
        assert await phone.text(word) == "Torshov Sport har ingen opplysninger om dette nummeret."
        assert await members_of(db) == []


class TestDelete:
    async def test_delete_stops_marketing_at_once_and_asks_to_confirm_the_erasure(
        self, phone, db
    ) -> None:
        """DELETE withdraws marketing consent at once (logged as STOP logs it) and says so in
        the one SMS that asks to confirm the erasure; nothing is erased until JA."""
        await join_fully(phone)
        ask = await phone.text("slett meg")
        assert ask.startswith("Du er meldt av Torshov Sport og får ingen flere SMS fra oss.")
        assert "Svar JA for å slette" in ask
        assert segments(ask).segments == 1
        [member] = await members_of(db)
        assert (member.phone, member.first_name, member.status) == (NB, "Kari", "stopped")
        log = await db.run(
            lambda s: s.execute(
                select(ConsentEvent.action, ConsentEvent.wording_id, ConsentEvent.wording_text)
                .where(ConsentEvent.member_id == member.id)
                .order_by(ConsentEvent.id)
            ).all()
        )
        assert [tuple(row) for row in log][-1] == ("withdraw", "keyword.delete", "slett meg")

    @pytest.mark.parametrize(
        ("number", "text", "said"),
        [
            (SV, "radera mig", "Du är avregistrerad från Torshov Sport"),
            (EN, "delete me", "You have left Torshov Sport"),
            (NB, "kan du slette nummeret mitt", "Du er meldt av Torshov Sport"),
        ],
    )
    async def test_every_language_says_marketing_has_stopped(
        self, client, club, db, number, text, said
    ) -> None:
        """The deletion question in sv and en (and a sentence in nb) says marketing ended."""
        member_phone = Phone(client, number)
        await member_phone.text("JOIN")
        await member_phone.text("YES")
        ask = await member_phone.text(text)
        assert ask.startswith(said)
        assert segments(ask).segments == 1
        [member] = await members_of(db)
        assert member.status == "stopped"

    @pytest.mark.parametrize("answer", ["NEI", "hei"])
    async def test_anything_but_yes_keeps_the_data(self, phone, db, answer) -> None:
        """Any answer but YES to the deletion question keeps it all; a later JA erases nothing.
        The member stays a member, stopped, and is told START brings them back."""
        await join_fully(phone)
        await phone.text("SLETT")
        kept = await phone.text(answer)
        assert kept.startswith("Greit, ingenting er slettet.")
        assert "START" in kept
        assert await phone.text("JA") is None  # stopped: silence
        [member] = await members_of(db)
        assert (member.phone, member.first_name, member.birthday) == (
            NB,
            "Kari",
            dt.date(1990, 3, 12),
        )
        assert member.status == "stopped"

    async def test_a_member_who_kept_their_data_can_start_again(self, phone, db) -> None:
        """NEI to the erasure, then START: marketing consent is given again."""
        await join_fully(phone)
        await phone.text("SLETT")
        await phone.text("NEI")
        assert await phone.text("START")
        [member] = await members_of(db)
        assert member.status == "active"

    async def test_yes_erases_everything_personal_and_keeps_a_salted_hash(
        self, phone, club, db
    ) -> None:
        """DELETE, JA removes phone, name, birthday, answers and message texts; a hash remains."""
        await join_fully(phone)
        await phone.text("MINE DATA")
        await phone.text("SLETT")
        done = await phone.text("JA")
        assert done.startswith("Opplysningene dine er slettet")
        assert "Torshov Sport" in done

        [member] = await members_of(db)
        assert member.status == "erased"
        assert (member.phone, member.first_name, member.birthday, member.language) == (None,) * 4
        assert member.phone_hash
        assert NB not in member.phone_hash
        assert await was_erased(db, club, NB)
        assert await db.run(lambda s: s.scalars(select(ProfileAnswer)).all()) == []

        inbound, outbox = await messages_of(db)
        assert [m.body for m in inbound] == [None] * len(inbound)
        assert [m.from_number for m in inbound] == [None] * len(inbound)
        assert {m.member_id for m in inbound} == {member.id}
        before_erasure = outbox[:-1]
        assert [m.body for m in before_erasure] == [None] * len(before_erasure)
        assert [m.to_number for m in outbox] == [None] * len(outbox)
        assert await rows_mentioning(db, NB, "Kari", "12.03.1990") == []

    async def test_an_erased_number_is_a_stranger_and_can_join_again_with_new_consent(
        self, phone, club, db
    ) -> None:
        """After erasure the number is unknown; JOIN, JA make a new member with a new grant."""
        await join_fully(phone)
        await phone.text("SLETT")
        await phone.text("JA")
        assert (
            await phone.text("MINE DATA")
            == "Torshov Sport har ingen opplysninger om dette nummeret."
        )
        assert (await phone.text("BLI MED")).startswith("Torshov Sport: svar JA")
        assert (await phone.text("JA", sid="SMrejoin")).startswith("Velkommen til Torshov Sport!")

        erased, fresh = await members_of(db)
        assert (erased.status, fresh.status) == ("erased", "active")
        assert (fresh.phone, fresh.first_name, fresh.birthday) == (NB, None, None)
        assert fresh.phone_hash == erased.phone_hash
        grants = await db.run(
            lambda s: s.execute(
                select(ConsentEvent.evidence).where(ConsentEvent.member_id == fresh.id)
            ).all()
        )
        assert [g.evidence for g in grants] == ["SMrejoin"]
        assert await was_erased(db, club, NB)

    async def test_erasure_empties_the_members_own_words_in_the_consent_log(
        self, phone, db
    ) -> None:
        """A STOP and a DELETE are logged in the member's own words; once erased, those words
        are gone like every text of theirs, while each withdrawal (what, when, how, evidence)
        and the club's wording of each grant stay."""
        await join_fully(phone, name="Zelda")
        assert await phone.text("Stopp, hilsen Zelda Nordmann", sid="SMstop")
        assert await phone.text("START", sid="SMstart")
        assert "Svar JA for å slette" in await phone.text("slett meg, Zelda", sid="SMdelete")
        await phone.text("JA", sid="SMyes")

        log = await db.run(
            lambda s: s.execute(
                select(
                    ConsentEvent.action,
                    ConsentEvent.wording_id,
                    ConsentEvent.wording_text,
                    ConsentEvent.evidence,
                ).order_by(ConsentEvent.id)
            ).all()
        )
        assert [(a, w, e) for a, w, _, e in log][1:] == [
            ("withdraw", "keyword.stop", "SMstop"),
            ("grant", "start.confirmed", "SMstart"),
            ("withdraw", "keyword.delete", "SMdelete"),
        ]
        assert [text for *_, text, _ in log if "Zelda" in text] == []
        assert all(
            text.startswith(("Torshov Sport", "Velkommen")) for a, _, text, _ in log if a == "grant"
        )

    async def test_erasure_leaves_the_number_in_no_gateway_error(self, phone, club, db) -> None:
        """A campaign SMS the gateway refused keeps the gateway's words, which can quote the
        number ("The 'To' number +47... is not valid"); once the member is erased no row
        holds the number, while the row, its status and the campaign's skip reasons stay."""
        await join_fully(phone)
        campaign_id = await broadcast(db, club)
        await plan(db, campaign_id)
        refused = Rejected(f"Twilio 400 21211: The 'To' number {NB} is not valid", code="21211")
        await sender.drain(db, RecordingGateway({NB: refused}), at(T0))
        _, outbox = await messages_of(db)
        assert [m.status for m in outbox if m.campaign_id == campaign_id] == ["failed"]
        await phone.text("SLETT")
        await phone.text("JA")
        _, outbox = await messages_of(db)
        assert [m.status for m in outbox if m.campaign_id == campaign_id] == ["failed"]
        assert [m.id for m in outbox if NB in (m.error or "")] == []

    async def test_texts_sent_before_joining_are_erased_too(self, phone, db) -> None:
        """DELETE also removes what the number texted before it joined, and the replies to it."""
        assert await phone.text("Hei, dette er Kari Nordmann, er dere sportsbutikken?")
        await join_fully(phone)
        await phone.text("SLETT")
        await phone.text("JA")
        assert await rows_mentioning(db, NB, "Kari Nordmann") == []

    async def test_after_stop_mydata_and_delete_are_still_answered(self, phone, db) -> None:
        """A member who texted STOP gets no reply to other texts, but MYDATA and DELETE do."""
        await join_fully(phone)
        assert await phone.text("STOPP")
        assert await phone.text("hei") is None
        assert await phone.text("HJELP") is None
        summary = await phone.text("MINE DATA")
        assert "+4791234567" in summary
        assert "SMS-tilbud: nei" in summary
        assert "Svar JA for å slette" in await phone.text("SLETT")
        assert (await phone.text("JA")).startswith("Opplysningene dine er slettet")
        [member] = await members_of(db)
        assert (member.status, member.phone) == ("erased", None)


class TestUnderAge:
    @pytest.fixture
    async def strict_club(self, db: Database) -> int:
        return await create_club(db, min_age=15)

    @staticmethod
    def born_aged(years: int) -> str:
        """A birthday (nb format) on 1 January that makes someone exactly `years` old today."""
        today = dt.datetime.now(ZoneInfo("Europe/Oslo")).date()
        return f"01.01.{today.year - years}"

    async def test_an_under_age_birthday_ends_the_sign_up_and_keeps_nothing(
        self, client, strict_club, db
    ) -> None:
        """A 14-year-old in a 15+ club is told politely and nothing personal is kept."""
        phone = Phone(client, NB)
        await phone.text("BLI MED")
        await phone.text("JA")
        await phone.text("Kari")
        birthday = self.born_aged(14)
        reply = await phone.text(birthday)
        assert reply.startswith("Beklager, du må være minst 15 år")
        assert "Torshov Sport" in reply

        [member] = await members_of(db)
        assert member.status == "erased"
        assert (member.phone, member.first_name, member.birthday) == (None, None, None)
        assert await rows_mentioning(db, NB, "Kari", birthday) == []
        # Nor does the consent log keep the child's birthday as the words of the withdrawal.
        wordings = await db.run(lambda s: s.scalars(select(ConsentEvent.wording_text)).all())
        assert [w for w in wordings if birthday in w] == []
        assert (
            await phone.text("MINE DATA")
            == "Torshov Sport har ingen opplysninger om dette nummeret."
        )

    async def test_a_member_of_the_minimum_age_joins(self, client, strict_club, db) -> None:
        """A 15-year-old in a 15+ club carries on to the next question."""
        phone = Phone(client, NB)
        await phone.text("BLI MED")
        await phone.text("JA")
        await phone.text("Kari")
        assert (await phone.text(self.born_aged(15))).startswith("Hvilke aktiviteter")
        [member] = await members_of(db)
        assert (member.status, member.phone) == ("active", NB)


class TestDeleteEndsMarketing:
    """After "slett meg" no broadcast reaches the member, whether or not they confirm."""

    @staticmethod
    async def sent_to(db: Database, gateway: Any) -> list[str]:
        await sender.drain(db, gateway, at(T0))
        return list(gateway.per_number())

    async def test_a_broadcast_planned_after_the_request_leaves_them_out(
        self, client, club, db
    ) -> None:
        asked, other = await add_members(db, club, 2)
        await Phone(client, asked).text("slett meg")
        campaign_id = await broadcast(db, club)
        assert await plan(db, campaign_id) == 1
        assert await self.sent_to(db, RecordingGateway()) == [other]

    async def test_a_broadcast_planned_before_the_request_skips_them(
        self, client, club, db
    ) -> None:
        asked, other = await add_members(db, club, 2)
        campaign_id = await broadcast(db, club)
        await plan(db, campaign_id)
        await Phone(client, asked).text("kan du slette nummeret mitt")
        assert await self.sent_to(db, RecordingGateway()) == [other]

    async def test_no_to_the_erasure_keeps_them_out_too(self, client, club, db) -> None:
        asked, other = await add_members(db, club, 2)
        member_phone = Phone(client, asked)
        await member_phone.text("slett meg")
        await member_phone.text("NEI")
        campaign_id = await broadcast(db, club)
        await plan(db, campaign_id)
        assert await self.sent_to(db, RecordingGateway()) == [other]
