"""POINTS, COUPONS, CLAIM, INVITE and the welcome coupon, texted through the signed webhook."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from bot.cli.demo import set_up_loyalty
from bot.keys import CLUBS, DB
from locales import segments
from locales.sms import SmsSize
from store.loyalty import coupons, ledger, purchases, tiers
from store.loyalty.earning import Line
from store.models import Coupon, Member, Program, PunchCard
from tests.conftest import HeldWriters, Phone


@pytest.fixture
async def shop(db, club) -> int:
    """The demo club with the demo's coupons, rewards, punch card and referral reward."""

    def work(session) -> int:
        set_up_loyalty(session, session.get(Program, club))
        return club

    return await db.run(work)


async def join(phone: Phone, text: str = "JOIN") -> str:
    await phone.text(text)
    await phone.text("JA")
    await phone.text("Kari")
    await phone.text("12.03.1990")
    return await phone.text("1")


async def buy(db, club: int, number: str, amount_minor: int, txn: str, **line) -> None:
    def work(session) -> None:
        program = session.get(Program, club)
        member_id = session.scalar(select(Member.id).where(Member.phone == number))
        purchases.record(
            session,
            program,
            member_id,
            transaction_id=txn,
            lines=[Line(qty=1, amount_minor=amount_minor, **line)],
            occurred_at=dt.datetime.now(dt.UTC),
            fingerprint=txn,
            now=dt.datetime.now(dt.UTC),
        )

    await db.run(work)


class TestWelcome:
    async def test_the_end_of_sign_up_names_the_welcome_coupon(self, phone, shop) -> None:
        done = await join(phone)
        assert done.startswith("Alt klart! Velkomstkupongen din ")
        assert re.search(
            r"[2-9A-Z]{4}-[2-9A-Z]{4}: 10% rabatt, gjelder t\.o\.m\. \d\d\.\d\d\.\d{4}", done
        )
        assert done.endswith("Send POENG for å se poengene dine.")

    async def test_without_a_welcome_coupon_the_end_is_plain(self, phone, club) -> None:
        assert (await join(phone)).startswith("Alt klart! Nå er du medlem i Torshov Sport.")


class TestPoints:
    async def test_a_new_member_has_no_points_and_learns_how_to_earn(self, phone, shop) -> None:
        await join(phone)
        assert await phone.text("POENG") == (
            "Du har 0 poeng (Bronse). 2 000 poeng igjen til Sølv. "
            "Du får poeng når du handler med nummeret ditt."
        )

    async def test_balance_tier_next_tier_and_expiry(self, phone, shop, db) -> None:
        await join(phone)
        await buy(db, shop, phone.number, 125_000, "T1")
        reply = await phone.text("poeng")
        assert reply.startswith(
            "Du har 1 250 poeng (Bronse). 750 poeng igjen til Sølv. 1 250 poeng utløper "
        )
        # Points expire at the end of the month, 24 months on.
        expires = dt.datetime.now(dt.UTC).date()
        year = expires.year + 2
        assert re.search(rf"utløper \d\d\.\d\d\.{year}\.$", reply), reply

    async def test_english_member_gets_english_numbers(self, client, shop, db) -> None:
        phone = Phone(client, "+447700900123")
        await phone.text("JOIN")
        await phone.text("YES")
        await buy(db, shop, phone.number, 1_000, "T1")
        assert (await phone.text("points")).startswith("You have 10 points (Bronze).")

    async def test_a_guest_is_told_how_to_join(self, phone, shop) -> None:
        assert await phone.text("POENG") == (
            "Send BLI MED for å bli medlem i Torshov Sport og samle poeng."
        )

    async def test_a_stopped_member_hears_nothing(self, phone, shop) -> None:
        await join(phone)
        await phone.text("STOPP")
        assert await phone.text("POENG") is None

    async def test_points_interrupt_the_profile_and_the_question_comes_back(
        self, phone, shop
    ) -> None:
        await phone.text("JOIN")
        await phone.text("JA")
        reply = await phone.text("POENG")
        assert reply.startswith("Du har 0 poeng")
        assert reply.endswith("Hva er fornavnet ditt? (eller HOPP OVER)")

    async def test_points_texted_together_are_each_members_own(self, client, shop, db) -> None:
        """POINTS texts that reach the writer of turns together run as one group (on
        PostgreSQL their members' points are read with the group's members, before its texts
        run): each member gets their own balance and tier, a guest the way to join, and the
        POINTS of a member who claimed earlier in the group what is left after the claim."""
        kari, ola, per = (Phone(client, n) for n in ("+4791234567", "+4798765432", "+4790011223"))
        for who, amount in ((kari, 40_000), (ola, 125_000), (per, 0)):
            await join(who)
            if amount:
                await buy(db, shop, who.number, amount, f"T{who.number}")
        guest = Phone(client, "+4790000009")
        async with HeldWriters(client.server.app[DB]) as held:
            claim = asyncio.ensure_future(kari.text("HENT 2"))
            await held.queued(1)
            asked = [asyncio.ensure_future(p.text("POENG")) for p in (ola, kari, per, guest)]
            await held.release_when(5)
            claimed, *together = await asyncio.gather(claim, *asked)
        assert claimed is not None
        assert claimed.endswith("Du har nå 100 poeng."), claimed
        assert together[0].startswith("Du har 1 250 poeng (Bronse). 750 poeng igjen til Sølv.")
        assert together[1].startswith("Du har 100 poeng (Bronse).")
        assert together[2].startswith("Du har 0 poeng (Bronse).")
        assert together == [await p.text("POENG") for p in (ola, kari, per, guest)]


class TestCoupons:
    async def test_coupons_and_rewards_are_listed(self, phone, shop) -> None:
        await join(phone)
        reply = await phone.text("kuponger")
        assert reply.startswith("Kupongene dine: ")
        assert "10% rabatt (t.o.m. " in reply
        assert "Belønninger: 100 kr rabatt for 1 000 poeng (HENT 1); " in reply
        assert "en drikkeflaske for 300 poeng (HENT 2)." in reply

    async def test_claim_without_enough_points_changes_nothing(self, phone, shop, db) -> None:
        await join(phone)
        await buy(db, shop, phone.number, 25_000, "T1")
        assert await phone.text("HENT 1") == (
            "Du har ikke nok poeng ennå: 100 kr rabatt koster 1 000 poeng, og du har 250."
        )
        assert (await phone.text("POENG")).startswith("Du har 250 poeng")

    async def test_claim_spends_points_and_gives_a_code(self, phone, shop, db) -> None:
        await join(phone)
        await buy(db, shop, phone.number, 40_000, "T1")
        reply = await phone.text("hent 2")
        found = re.fullmatch(
            r"Klart! Kode ([2-9A-Z]{4}-[2-9A-Z]{4}): en drikkeflaske, gjelder t\.o\.m\. "
            r"\d\d\.\d\d\.\d{4}\. Du har nå 100 poeng\.",
            reply,
        )
        assert found, reply
        assert found.group(1) in await phone.text("KUPONGER")

        def held(session) -> list[str]:
            return [c.code for c in session.scalars(select(Coupon))]

        assert coupons.normalize(found.group(1)) in await db.run(held)

    async def test_a_retried_claim_is_claimed_once(self, phone, shop, db) -> None:
        await join(phone)
        await buy(db, shop, phone.number, 70_000, "T1")
        first = await phone.text("HENT 2", sid="SMclaim")
        assert await phone.text("HENT 2", sid="SMclaim") == first
        assert (await phone.text("POENG")).startswith("Du har 400 poeng")

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("HENT", "Svar HENT og nummeret på en belønning, f.eks. HENT 1."),
            ("HENT 7", "Det finnes ingen belønning 7."),
            ("hent en", "Svar HENT og nummeret på en belønning"),
        ],
    )
    async def test_a_claim_that_names_no_reward_says_how(self, phone, shop, text, expected) -> None:
        await join(phone)
        assert (await phone.text(text)).startswith(expected)

    async def test_a_club_without_rewards_says_so(self, phone, club) -> None:
        await join(phone)
        assert await phone.text("HENT 1") == (
            "Torshov Sport har ingen belønninger å hente med poeng nå."
        )


class TestInvite:
    async def test_invite_gives_the_code_and_the_club_number(self, phone, shop) -> None:
        await join(phone)
        reply = await phone.text("VERV")
        found = re.fullmatch(
            r"Verv en venn til Torshov Sport: vennen din sender BLI MED ([2-9A-Z]{6}) til 2020\. "
            r"Dere får begge en belønning når vennen din blir medlem\.",
            reply,
        )
        assert found, reply
        assert await phone.text("VERV") == reply  # the same code every time

    async def test_a_friend_joining_with_the_code_rewards_both(self, client, shop, db) -> None:
        kari = Phone(client, "+4791234567")
        await join(kari)
        code = re.search(r"BLI MED ([2-9A-Z]{6})", await kari.text("VERV")).group(1)
        ola = Phone(client, "+4798765432")
        await join(ola, f"BLI MED {code.lower()}")
        assert "50 kr rabatt" in await ola.text("KUPONGER")
        assert "50 kr rabatt" in await kari.text("KUPONGER")

    async def test_a_members_own_code_rewards_nobody(self, client, shop, db) -> None:
        kari = Phone(client, "+4791234567")
        await join(kari)
        code = re.search(r"BLI MED ([2-9A-Z]{6})", await kari.text("VERV")).group(1)
        await kari.text("STOPP")
        await kari.text(f"BLI MED {code}")
        await kari.text("JA")
        assert "50 kr rabatt" not in await kari.text("KUPONGER")


class TestLedgerStaysWhole:
    async def test_claims_leave_entries_and_lots_agreeing(self, phone, shop, db) -> None:
        await join(phone)
        await buy(db, shop, phone.number, 70_000, "T1")
        await phone.text("HENT 2")
        await phone.text("HENT 2")

        def totals(session) -> tuple[int, int]:
            member_id = session.scalar(select(Member.id).where(Member.phone == phone.number))
            return ledger.totals(session, member_id)

        assert await db.run(totals) == (100, 100)


class TestMoney:
    async def test_amounts_are_money_in_the_members_language(self, client, shop) -> None:
        """A coupon worth an amount says it as members write money: "NOK 100" in en, and
        "100 NOK" (not CLDR's "100,00 Nkr") to a Swede in a Norwegian club."""
        english = Phone(client, "+447700900123")
        await english.text("JOIN")
        await english.text("YES")
        assert "NOK 100 off for 1,000 points (CLAIM 1)" in await english.text("COUPONS")
        swedish = Phone(client, "+46701234567")
        await swedish.text("GÅ MED")
        await swedish.text("JA")
        assert "100 NOK rabatt för 1 000 poäng (HÄMTA 1)" in await swedish.text("KUPONGER")


class TestPunchCard:
    """POINTS names the punch card nearest to full (the demo's: every 5th service is free)."""

    async def test_points_show_the_punches_towards_the_free_item(self, phone, shop, db) -> None:
        await join(phone)
        for n in range(4):
            await buy(db, shop, phone.number, 10_000, f"T{n}", category="service")
        reply = await phone.text("POENG")
        assert reply.startswith("Du har 400 poeng (Bronse).")
        assert reply.endswith(" 4 av 5 til gratis skismøring.")

    async def test_a_category_counts_in_any_case(self, phone, shop, db) -> None:
        await join(phone)
        await buy(db, shop, phone.number, 10_000, "T1", category="SERVICE")
        await buy(db, shop, phone.number, 10_000, "T2", category="running")
        assert (await phone.text("POENG")).endswith(" 1 av 5 til gratis skismøring.")

    @pytest.mark.parametrize(
        ("number", "texts", "expected"),
        [
            ("+46701234567", ("GÅ MED", "JA", "POÄNG"), " 2 av 5 till gratis skidvallning."),
            ("+447700900123", ("JOIN", "YES", "POINTS"), " 2 of 5 towards a free ski waxing."),
        ],
    )
    async def test_in_swedish_and_english(self, client, shop, db, number, texts, expected) -> None:
        phone = Phone(client, number)
        await phone.text(texts[0])
        await phone.text(texts[1])
        for n in range(2):
            await buy(db, shop, phone.number, 10_000, f"T{n}", category="service")
        assert expected in await phone.text(texts[2])

    async def test_a_filled_card_starts_again(self, phone, shop, db) -> None:
        await join(phone)
        for n in range(5):
            await buy(db, shop, phone.number, 10_000, f"T{n}", category="service")
        # The fifth gave the coupon; a card with no punch on it is not named.
        assert (await phone.text("POENG")).endswith("poeng utløper " + _expiry_text())
        assert "gratis skismøring" in await phone.text("KUPONGER")
        await buy(db, shop, phone.number, 10_000, "T5", category="service")
        assert (await phone.text("POENG")).endswith(" 1 av 5 til gratis skismøring.")

    async def test_the_longest_points_reply_is_one_sms(self, phone, shop, db) -> None:
        """Seven-digit balances, a tier, the next tier, the expiry and the punch card."""

        def ladder(session) -> None:
            steps = [
                ({"nb": "Bronse", "sv": "Brons", "en": "Bronze"}, 0, 0),
                ({"nb": "Platinum", "sv": "Platina", "en": "Platinum"}, 9_999_999, 10),
            ]
            tiers.set_ladder(session, session.get(Program, shop), steps)

        await db.run(ladder)
        await join(phone)
        for n in range(3):
            await buy(db, shop, phone.number, 41_200_000, f"T{n}", category="service")
        reply = await phone.text("POENG")
        assert reply.startswith("Du har 1 236 000 poeng (Bronse). 8 763 999 "), reply
        assert "Platinum" in reply
        assert reply.endswith(" 3 av 5 til gratis skismøring.")
        assert segments(reply) == SmsSize("GSM-7", len(reply), 1)

    async def test_points_read_one_statement_more_with_a_card(self, client, db, shop) -> None:
        """POINTS is a third of all texts: the card costs one read for a member who has bought,
        and nothing for one who never has, nor in a club without a card."""
        kari = Phone(client, "+4791234567")
        await join(kari)
        never_bought = await _statements_of_points(kari)
        await buy(db, shop, kari.number, 10_000, "T1", category="service")
        with_card = await _statements_of_points(kari)
        assert with_card == never_bought + 1

        def deactivate(session) -> None:
            for card in session.scalars(select(PunchCard)):
                card.active = False

        await db.run(deactivate)
        # The club's settings are kept a few seconds: read them again now.
        clubs = client.app[CLUBS]
        kept, clubs.ttl = clubs.ttl, 0
        await kari.text("POENG")
        clubs.ttl = kept
        assert await _statements_of_points(kari) == with_card - 1


def _expiry_text() -> str:
    """The last day of the month 24 months on, as nb writes it, with the full stop."""
    today = dt.datetime.now(dt.UTC).date()
    first = dt.date(today.year + 2 + today.month // 12, today.month % 12 + 1, 1)
    return (first - dt.timedelta(days=1)).strftime("%d.%m.%Y") + "."


async def _statements_of_points(phone: Phone) -> int:
    """The SQL statements a warm POINTS turn runs (the club's settings already in memory)."""
    await phone.text("POENG")
    sent: list[str] = []

    def listener(*args) -> None:
        sent.append(args[2])

    event.listen(Engine, "before_cursor_execute", listener)
    try:
        await phone.text("POENG")
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    return len(sent)


class TestCouponPages:
    """COUPONS lists what fits one SMS and says how to see the rest (COUPONS 2, ...)."""

    async def test_three_coupons_and_two_rewards_take_pages_of_one_sms(
        self, phone, shop, db
    ) -> None:
        await join(phone)  # the welcome coupon

        def give_two_more(session) -> None:
            program = session.get(Program, shop)
            member_id = session.scalar(select(Member.id).where(Member.phone == phone.number))
            template = coupons.template_for(session, program.id, "birthday")
            now = dt.datetime.now(dt.UTC)
            for source in ("test:1", "test:2"):
                coupons.issue(session, program.id, member_id, template, source, now)

        await db.run(give_two_more)
        first = await phone.text("KUPONGER")
        assert first.endswith("Flere: send KUPONGER 2.")
        assert segments(first).segments == 1
        pages = [first]
        while pages[-1].endswith(f"Flere: send KUPONGER {len(pages) + 1}."):
            pages.append(await phone.text(f"KUPONGER {len(pages) + 1}"))
            assert segments(pages[-1]).segments == 1
        everything = " ".join(pages)
        assert len(re.findall(r"[2-9A-Z]{4}-[2-9A-Z]{4}", everything)) == 3
        assert "(HENT 1)" in everything
        assert "(HENT 2)" in everything
