"""Consent as an append-only log: YES and START grant, every stop word withdraws, NO forgets."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from store.database import Database
from store.members import consent
from store.models import ConsentEvent, InboundMessage, Member, OutboxMessage
from tests.conftest import Phone, create_club

NB, SV, EN = "+4791234567", "+46701234567", "+447700900123"


async def events(db: Database) -> list[ConsentEvent]:
    return list(
        await db.run(lambda s: s.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all())
    )


async def members_of(db: Database) -> list[Member]:
    return list(await db.run(lambda s: s.scalars(select(Member).order_by(Member.id)).all()))


async def marketing_since(db: Database, phone: str) -> Any:
    def work(s: Any) -> Any:
        member = s.scalars(select(Member).where(Member.phone == phone)).one()
        return consent.marketing_since(s, member)

    return await db.run(work)


@pytest.fixture
async def quiet_club(db: Database) -> int:
    """The demo club without profile questions: YES makes an active member at rest."""
    return await create_club(db, questions=[])


class TestGrant:
    @pytest.mark.parametrize(("number", "language"), [(NB, "nb"), (SV, "sv"), (EN, "en")])
    async def test_yes_logs_the_exact_wording_the_member_received(
        self, client, club, db, number, language
    ) -> None:
        """YES appends a grant with the opt-in text the member got, its language and the SMS id."""
        phone = Phone(client, number)
        confirmation = await phone.text("JOIN")
        await phone.text("YES", sid="SMyes")
        [grant] = await events(db)
        [member] = await members_of(db)
        assert (grant.action, grant.purpose, grant.channel) == ("grant", "marketing_sms", "sms")
        assert (grant.wording_id, grant.wording_language) == ("join.confirm", language)
        assert grant.wording_text == confirmation
        assert grant.evidence == "SMyes"
        assert (grant.member_id, grant.program_id) == (member.id, club)
        assert await marketing_since(db, number) == grant.created_at

    async def test_the_logged_wording_is_the_one_shown_even_after_a_language_change(
        self, phone, db
    ) -> None:
        """A member shown the Norwegian opt-in who then picks English is logged with Norwegian."""
        confirmation = await phone.text("BLI MED")
        assert (await phone.text("LANG EN")).startswith(
            "OK, from now on we write to you in English"
        )
        await phone.text("YES")
        [grant] = await events(db)
        assert grant.wording_text == confirmation

    async def test_pending_members_have_no_marketing_consent(self, phone, db) -> None:
        """A number that texted JOIN but not YES may not get marketing."""
        await phone.text("JOIN")
        assert await events(db) == []
        assert await marketing_since(db, phone.number) is None


class TestWithdraw:
    async def test_stop_appends_a_withdrawal_and_start_a_new_grant(self, phone, db) -> None:
        """STOP logs a withdrawal with its SMS id and ends marketing; START logs a fresh grant."""
        await phone.text("JOIN")
        await phone.text("JA", sid="SMyes")
        assert await marketing_since(db, phone.number) is not None
        stopped = await phone.text("STOPP", sid="SMstop")
        assert stopped.startswith("Du er meldt av Torshov Sport")
        assert await marketing_since(db, phone.number) is None
        back = await phone.text("START", sid="SMstart")
        assert back.startswith("Velkommen tilbake til Torshov Sport!")

        grant, withdraw, regrant = await events(db)
        assert (withdraw.action, withdraw.channel, withdraw.evidence) == (
            "withdraw",
            "sms",
            "SMstop",
        )
        assert (regrant.action, regrant.wording_id, regrant.evidence) == (
            "grant",
            "start.confirmed",
            "SMstart",
        )
        assert regrant.wording_text == back
        assert grant.evidence == "SMyes"
        assert await marketing_since(db, phone.number) == regrant.created_at

    async def test_join_after_stop_asks_again_and_yes_is_a_new_grant(self, phone, db) -> None:
        """A stopped member who texts JOIN is asked to confirm again, and YES logs a new grant."""
        await phone.text("JOIN")
        await phone.text("JA")
        await phone.text("STOPP")
        assert (await phone.text("BLI MED")).startswith("Torshov Sport: svar JA")
        assert await marketing_since(db, phone.number) is None
        await phone.text("JA", sid="SMagain")
        log = await events(db)
        assert [(e.action, e.wording_id) for e in log] == [
            ("grant", "join.confirm"),
            ("withdraw", "keyword.stop"),
            ("grant", "join.confirm"),
        ]
        assert log[-1].evidence == "SMagain"
        assert await marketing_since(db, phone.number) is not None

    async def test_a_short_request_to_stop_stops(self, client, club, db) -> None:
        """A short message that clearly asks to stop ends marketing at once, even mid-profile."""
        for i, text in enumerate(["stopp takk", "please stop", "Stopp!", "meld meg av"]):
            phone = Phone(client, f"+4791{i:06d}")
            await phone.text("JOIN")
            await phone.text("JA")
            assert (await phone.text(text)).startswith("Du er meldt av Torshov Sport"), text
            withdraw = (await events(db))[-1]
            assert (withdraw.action, withdraw.wording_text) == ("withdraw", text)
            assert await marketing_since(db, phone.number) is None
            assert await phone.text("Kari") is None
        assert [m.status for m in await members_of(db)] == ["stopped"] * 4

    async def test_a_sentence_that_mentions_stop_does_not_stop(
        self, client, quiet_club, db
    ) -> None:
        """'I can't stop eating your cinnamon buns' is passed on to the shop and keeps consent."""
        phone = Phone(client, EN)
        await phone.text("JOIN")
        await phone.text("YES")
        reply = await phone.text("I can't stop eating your cinnamon buns")
        assert (
            reply == "Thanks! We have sent your message to Torshov Sport and will reply in opening "
            "hours. Text HELP for options."
        )
        assert [e.action for e in await events(db)] == ["grant"]
        assert await marketing_since(db, EN) is not None


class TestStopFromAStranger:
    async def test_stop_is_confirmed_once_and_recorded(self, phone, db) -> None:
        """STOP from a number that never joined gets one confirmation and a stopped record."""
        first = await phone.text("STOP", sid="SMstop")
        assert first.startswith("Du er meldt av Torshov Sport")
        [member] = await members_of(db)
        assert (member.phone, member.status) == (phone.number, "stopped")
        [withdraw] = await events(db)
        assert (withdraw.action, withdraw.evidence, withdraw.member_id) == (
            "withdraw",
            "SMstop",
            member.id,
        )
        for text in ("STOP", "hei", "HJELP", "JA", "stopp takk"):
            assert await phone.text(text) is None, text
        assert len(await events(db)) == 1

    @pytest.mark.parametrize("word", ["START", "BLI MED"])
    async def test_start_or_join_ends_the_silence(self, phone, db, word) -> None:
        """After a stranger's STOP, START or JOIN gets the opt-in question: a number that never
        joined has not seen the club's terms, so even START asks for YES first."""
        await phone.text("STOP")
        assert await phone.text("hei") is None
        assert (await phone.text(word)).startswith("Torshov Sport: svar JA")
        assert [e.action for e in await events(db)] == ["withdraw"]
        assert (await phone.text("JA")).startswith("Velkommen til Torshov Sport!")
        assert [e.action for e in await events(db)] == ["withdraw", "grant"]


class TestDecline:
    async def test_no_to_the_opt_in_forgets_the_number(self, phone, db) -> None:
        """NO to the opt-in question says so and leaves no member row and no consent."""
        await phone.text("JOIN")
        assert (await phone.text("NEI")).startswith("Greit, du er ikke medlem i Torshov Sport")
        assert await members_of(db) == []
        assert await events(db) == []
        inbound = await db.run(lambda s: s.scalars(select(InboundMessage)).all())
        assert [(m.from_number, m.body, m.member_id) for m in inbound] == [(None, None, None)] * 2
        assert "Send BLI MED" in await phone.text("hei")

    async def test_no_to_the_opt_in_leaves_the_number_in_no_row(self, phone, db) -> None:
        """After NO, no outbox row still holds the number that declined."""
        await phone.text("JOIN")
        await phone.text("NEI")
        outbox = await db.run(lambda s: s.scalars(select(OutboxMessage)).all())
        assert [m.to_number for m in outbox] == [None, None]

    async def test_no_from_a_former_member_keeps_their_history_and_their_stop(
        self, client, quiet_club, db
    ) -> None:
        """A member who stopped, asks to join again and says NO stays a stopped member: the
        consent log (the grant and the STOP) is not deleted with them, and MYDATA still
        finds their data."""
        phone = Phone(client, NB)
        await phone.text("BLI MED")
        await phone.text("JA", sid="SMyes")
        await phone.text("STOPP", sid="SMstop")
        await phone.text("BLI MED")
        assert (await phone.text("NEI")).startswith("Greit")
        [member] = await members_of(db)
        assert (member.phone, member.status) == (NB, "stopped")
        assert [(e.action, e.evidence) for e in await events(db)] == [
            ("grant", "SMyes"),
            ("withdraw", "SMstop"),
        ]
        assert "SMS-tilbud: nei" in await phone.text("MINE DATA")
        assert await phone.text("hei") is None  # stopped: silence, as after the STOP

    async def test_no_after_a_stop_from_a_stranger_keeps_the_stop(self, phone, db) -> None:
        """A number that texted STOP, then JOIN and NO: its STOP stays recorded, so nothing
        brings the number back without new consent."""
        await phone.text("STOPP", sid="SMstop")
        await phone.text("BLI MED")
        await phone.text("NEI")
        [member] = await members_of(db)
        assert (member.phone, member.status) == (NB, "stopped")
        assert [(e.action, e.evidence) for e in await events(db)] == [("withdraw", "SMstop")]
