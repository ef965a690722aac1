"""Receipts by SMS: turned on and off by text, one service SMS per purchase through the API."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli.demo import set_up_loyalty
from locales import render, segments
from scheduler import sender
from store.clock import utc_now
from store.database import Database
from store.loyalty import receipts
from store.models import Member, OutboxMessage, Program
from store.outreach import campaigns
from tests.api.conftest import Till
from tests.api.test_cheques import make_cheque
from tests.conftest import Phone
from tests.scheduler.campaign_helpers import RecordingGateway, at

CLUB = "Torshov Sport"


@pytest.fixture
async def shop(db: Database, club: int) -> int:
    """The demo club with its coupons and punch card (every 5th ski service: a free waxing)."""

    def work(session: Any) -> int:
        set_up_loyalty(session, session.get(Program, club))
        return club

    return await db.run(work)


async def join(phone: Phone) -> None:
    """Joined by SMS: consent given, the demo club's three questions answered."""
    for text in ("JOIN", "JA", "Kari", "12.03.1990", "1"):
        await phone.text(text)


async def receipts_of(db: Database, number: str) -> bool:
    return await db.run(lambda s: s.scalar(select(Member.receipts).where(Member.phone == number)))


async def member_id(db: Database, number: str) -> int:
    return await db.run(lambda s: s.scalar(select(Member.id).where(Member.phone == number)))


async def system_rows(db: Database, number: str) -> list[OutboxMessage]:
    def work(session: Any) -> list[OutboxMessage]:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.to_number == number, OutboxMessage.kind == "system")
                .order_by(OutboxMessage.id)
            )
        )

    return await db.run(work)


async def sent_to(db: Database, number: str, when: dt.datetime | None = None) -> list[str]:
    """What the sender hands the gateway now (burst mode), for this number."""
    gateway = RecordingGateway()
    await sender.drain(db, gateway, at(when or utc_now()))
    return gateway.to(number)


def service(amount_minor: int, category: str = "service") -> list[dict[str, Any]]:
    return [{"sku": "S", "category": category, "qty": 1, "amount_minor": amount_minor}]


async def buy(till: Till, number: str, txn: str, lines: list[dict[str, Any]]) -> Any:
    return await till.post("/purchases", {"transaction_id": txn, "phone": number, "lines": lines})


class TestTurningReceiptsOnAndOff:
    @pytest.mark.parametrize(
        ("number", "on", "off", "language"),
        [
            ("+4791234567", "KVITTERING PÅ", "kvitteringer av", "nb"),
            ("+46701234567", "Kvitto på", "KVITTO AV", "sv"),
            ("+447700900123", "receipts on", "RECEIPTS OFF", "en"),
        ],
    )
    async def test_a_member_turns_them_on_and_off_in_their_language(
        self, client, club, db, number, on, off, language
    ) -> None:
        phone = Phone(client, number)
        await join(phone)
        assert await receipts_of(db, number) is False  # off by default
        assert await phone.text(on) == render("receipts.on", language)
        assert await receipts_of(db, number) is True
        assert await phone.text(off) == render("receipts.off", language)
        assert await receipts_of(db, number) is False

    @pytest.mark.parametrize(
        "text", ["stopp kvittering", "STOP RECEIPTS", "stoppa kvitton", "skru av kvitteringene"]
    )
    async def test_stop_with_receipts_turns_receipts_off_and_keeps_the_membership(
        self, phone, club, db, text
    ) -> None:
        await join(phone)
        await phone.text("kvittering på")
        assert await phone.text(text) == render("receipts.off", "nb")
        assert await receipts_of(db, phone.number) is False
        status = await db.run(
            lambda s: s.scalar(select(Member.status).where(Member.phone == phone.number))
        )
        assert status == "active"
        # …and marketing goes on: a broadcast still reaches them.
        campaign_id = await db.run(
            lambda s: (
                campaigns.create_broadcast(
                    s,
                    s.get(Program, club),
                    name="x",
                    texts={"nb": "Hei"},
                    segment=None,
                    now=utc_now(),
                ).id
            )
        )
        assert (
            await db.run(
                lambda s: campaigns.plan_chunk(s, campaign_id=campaign_id, now=utc_now()).rows
            )
            == 1
        )

    async def test_plain_stop_still_stops(self, phone, club, db) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        assert await phone.text("STOPP") == render("stop.confirmed", "nb", club=CLUB)

    async def test_a_stopped_member_gets_no_answer_and_nothing_changes(
        self, phone, club, db
    ) -> None:
        await join(phone)
        await phone.text("STOPP")
        assert await phone.text("KVITTERING PÅ") is None
        assert await receipts_of(db, phone.number) is False

    async def test_a_number_that_is_no_member_is_told_how_to_join(self, phone, club, db) -> None:
        assert await phone.text("KVITTERING PÅ") == render("receipts.guest", "nb", club=CLUB)
        assert await receipts_of(db, phone.number) is None  # no member was made


class TestTheReceipt:
    async def test_a_purchase_sends_one_receipt_with_points_balance_and_punch_card(
        self, phone, shop, db, till
    ) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        first = await buy(till, phone.number, "R1", service(29_900))
        assert first.status == 201, first.body
        assert await sent_to(db, phone.number) == [
            "Torshov Sport: Takk for kjøpet! +299 poeng, saldo 299. 1 av 5 til gratis skismøring."
        ]
        await buy(till, phone.number, "R2", service(10_000, "shoes"))
        # A sale outside the card's category still shows the card the member has started.
        assert await sent_to(db, phone.number) == [
            "Torshov Sport: Takk for kjøpet! +100 poeng, saldo 399. 1 av 5 til gratis skismøring."
        ]
        [first_row, _second_row] = await system_rows(db, phone.number)
        assert (first_row.kind, first_row.segments, first_row.status) == ("system", 1, "sent")

    async def test_the_purchase_that_fills_the_card_names_its_coupon(
        self, phone, shop, db, till
    ) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        for n in range(4):
            await buy(till, phone.number, f"S{n}", service(100))
        await sent_to(db, phone.number)
        answer = await buy(till, phone.number, "S4", service(100))
        [code] = [c["code"] for c in answer.body["coupons"]]
        [receipt] = await sent_to(db, phone.number)
        found = re.fullmatch(
            r"Torshov Sport: Takk for kjøpet! \+1 poeng, saldo 5\. "
            r"Ny kupong (\S+): gratis skismøring, t\.o\.m\. \d\d\.\d\d\.\d{4}\.",
            receipt,
        )
        assert found, receipt
        assert found.group(1).replace("-", "") == code.replace("-", "")

    async def test_a_sale_that_earns_no_points_thanks_and_gives_the_balance(
        self, phone, shop, db, till
    ) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        await buy(till, phone.number, "Z", service(0, "shoes"))
        assert await sent_to(db, phone.number) == ["Torshov Sport: Takk for kjøpet! Saldo 0 poeng."]

    async def test_english_members_get_english_receipts(self, client, shop, db, till) -> None:
        phone = Phone(client, "+447700900123")
        await phone.text("JOIN")
        await phone.text("YES")
        await phone.text("RECEIPTS ON")
        await buy(till, phone.number, "E1", service(100_000, "shoes"))
        assert await sent_to(db, phone.number) == [
            "Torshov Sport: Thanks for shopping! +1,000 points, balance 1,000."
        ]

    async def test_receipts_off_sends_nothing(self, phone, shop, db, till) -> None:
        await join(phone)
        assert (await buy(till, phone.number, "R1", service(29_900))).status == 201
        await phone.text("KVITTERING PÅ")
        await phone.text("KVITTERING AV")
        assert (await buy(till, phone.number, "R2", service(29_900))).status == 201
        assert await system_rows(db, phone.number) == []
        assert await sent_to(db, phone.number) == []

    async def test_a_stopped_member_still_earns_but_gets_no_receipt(
        self, phone, shop, db, till
    ) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        await phone.text("STOPP")
        answer = await buy(till, phone.number, "R1", service(29_900))
        assert (answer.status, answer.body["points"]) == (201, 299)
        assert await system_rows(db, phone.number) == []
        assert await sent_to(db, phone.number) == []

    async def test_a_stop_after_the_receipt_was_queued_holds_it(
        self, phone, shop, db, till
    ) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        await buy(till, phone.number, "R1", service(29_900))
        await phone.text("STOPP")
        assert await sent_to(db, phone.number) == []
        [row] = await system_rows(db, phone.number)
        assert (row.status, row.error) == ("skipped", "no_consent")

    async def test_a_retried_purchase_sends_one_receipt(self, phone, shop, db, till) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        assert (await buy(till, phone.number, "R1", service(29_900))).status == 201
        assert (await buy(till, phone.number, "R1", service(29_900))).status == 200
        assert len(await sent_to(db, phone.number)) == 1
        assert (await buy(till, phone.number, "R1", service(29_900))).status == 200
        assert await sent_to(db, phone.number) == []
        assert len(await system_rows(db, phone.number)) == 1

    async def test_a_refund_sends_nothing(self, phone, shop, db, till) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        await buy(till, phone.number, "R1", service(29_900))
        await sent_to(db, phone.number)
        refund = await till.post("/purchases/R1/refunds", {"refund_id": "RF1"})
        assert refund.status == 201, refund.body
        assert await sent_to(db, phone.number) == []
        assert len(await system_rows(db, phone.number)) == 1

    async def test_a_receipt_needs_no_room_under_the_cap_and_takes_none(
        self, phone, shop, db, till
    ) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        now = utc_now()

        def club_rules(session: Any) -> None:
            program = session.get(Program, shop)
            program.marketing_per_month = 1
            program.quiet_start = program.quiet_end = 0  # never quiet: the test runs any hour

        await db.run(club_rules)

        async def broadcast(text: str) -> int:
            def work(session: Any) -> int:
                program = session.get(Program, shop)
                campaign = campaigns.create_broadcast(
                    session, program, name=text, texts={"nb": text}, segment=None, now=now
                )
                return campaigns.plan_chunk(session, campaign_id=campaign.id, now=now).rows

            return await db.run(work)

        assert await broadcast("Vintersalg") == 1
        assert len(await sent_to(db, phone.number, now)) == 1  # the member is at the cap
        await buy(till, phone.number, "R1", service(29_900))
        [receipt] = await sent_to(db, phone.number)
        assert receipt.startswith("Torshov Sport: Takk for kjøpet!")
        # The next campaign is capped as before: the receipt did not count, nor free a place.
        assert await broadcast("Sommersalg") == 0
        await db.run(lambda s: setattr(s.get(Program, shop), "marketing_per_month", 2))
        assert await broadcast("Høstsalg") == 1


class TestABonusCheque:
    """A sale that issues a bonus cheque to a member with receipts on: the receipt tells the
    cheque and its code, and no announcement of its own follows, so the code is in one SMS;
    receipts off, the announcement alone carries it. Both are service messages."""

    async def test_the_code_is_in_one_sms_the_receipt(self, phone, shop, db, till) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        await make_cheque(db, shop)
        answer = await buy(till, phone.number, "C1", service(260_000, "shoes"))
        assert answer.status == 201, answer.body
        [cheque] = answer.body["coupons"]
        assert answer.body["balance"] == 100
        sent = await sent_to(db, phone.number)
        code = cheque["code"].replace("-", "")
        assert [t for t in sent if code in t.replace("-", "")] == sent
        [receipt] = sent
        found = re.fullmatch(
            r"Torshov Sport: Takk for kjøpet! \+2 600 poeng, saldo 100\. "
            r"Bonussjekk for 2 500 poeng, kode (\S+): 50 kr rabatt, t\.o\.m\. "
            r"\d\d\.\d\d\.\d{4}\.",
            receipt,
        )
        assert found, receipt
        [row] = await system_rows(db, phone.number)  # a service message: no cap, no consent
        assert row.kind == "system"

    async def test_receipts_off_the_announcement_carries_it_once(
        self, phone, shop, db, till
    ) -> None:
        await join(phone)
        await make_cheque(db, shop)
        answer = await buy(till, phone.number, "C1", service(260_000, "shoes"))
        [cheque] = answer.body["coupons"]
        sent = await sent_to(db, phone.number)
        [announced] = [t for t in sent if cheque["code"].replace("-", "") in t.replace("-", "")]
        assert announced.startswith("Torshov Sport: 2 500 poeng ble en bonussjekk: 50 kr rabatt. ")
        assert sent == [announced]

    async def test_a_stopped_member_gets_neither(self, phone, shop, db, till) -> None:
        await join(phone)
        await phone.text("KVITTERING PÅ")
        await phone.text("STOPP")
        await make_cheque(db, shop)
        answer = await buy(till, phone.number, "C1", service(260_000, "shoes"))
        assert len(answer.body["coupons"]) == 1  # the cheque is theirs: the till shows it
        assert await system_rows(db, phone.number) == []
        assert await sent_to(db, phone.number) == []


class TestItsSize:
    """One SMS with a 60-character club name and 7-digit figures; a coupon line makes two."""

    @pytest.mark.parametrize("language", ["nb", "sv", "en"])
    def test_one_sms_unless_a_coupon_is_named(self, language) -> None:
        club = SimpleNamespace(name="K" * 60, timezone="Europe/Oslo", currency="NOK")
        benefit = {"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"}
        punch = receipts.Progress(9, 10, benefit[language], 123_450)
        coupon = SimpleNamespace(
            benefit=lambda _language: benefit[language],
            template=SimpleNamespace(discount_minor=123_450),
            coupon=SimpleNamespace(
                code="WXYZ7KQ2",
                valid_until=dt.datetime(2027, 10, 1, tzinfo=dt.UTC),
                source="punch:1:1:10",
            ),
        )
        figures = {"points": 1_234_567, "balance": 1_234_567}
        alone = receipts.text(club, language, punch=punch, issued=[], **figures)
        assert segments(alone).segments == 1, alone
        with_coupon = receipts.text(club, language, punch=punch, issued=[coupon], **figures)
        assert segments(with_coupon).segments == 2, with_coupon
