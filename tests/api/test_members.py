"""Members through the API: enrolment at checkout, look-up, coupons held, adjustments."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import locales
from bot.cli.demo import DEMO_CLUB, DEMO_QUESTIONS, set_up_loyalty
from scheduler import sender
from store.database import Database
from store.members import enrolment
from store.models import (
    ConsentEvent,
    CouponTemplate,
    LedgerEntry,
    Member,
    OutboxMessage,
    ProfileAnswer,
    Program,
    PunchCard,
)
from tests.api.conftest import PHONE, Till, create_key, issue_coupon
from tests.conftest import Phone, create_club
from tests.scheduler.campaign_helpers import RecordingGateway

# The longest club name the product promises one-segment SMS for.
LONG_CLUB = "Torshov Sport & Fritid AS"


def confirmation(language: str) -> str:
    """The consent confirmation the demo club sends, in the language."""
    return locales.render(
        "enrol.confirmed",
        language,
        club=DEMO_CLUB["name"],
        per_month=2,
        privacy_url=locales.sms_url(DEMO_CLUB["privacy_url"]),
    )


async def outbox(db: Database) -> list[OutboxMessage]:
    """The SMS queued to send outside a reply (replies to texts are in the outbox too)."""
    query = select(OutboxMessage).where(OutboxMessage.kind == "system").order_by(OutboxMessage.id)
    return await db.run(lambda s: list(s.scalars(query)))


async def consents(db: Database) -> list[ConsentEvent]:
    return await db.run(lambda s: list(s.scalars(select(ConsentEvent).order_by(ConsentEvent.id))))


# Enrolments that break a rule, and the field the 422 names.
BAD_ENROLMENTS: list[tuple[dict[str, Any], str]] = [
    ({"consent": {"evidence": "x"}}, "phone"),
    ({"phone": PHONE}, "consent"),
    ({"phone": PHONE, "consent": {}}, "consent.evidence"),
    ({"phone": PHONE, "consent": {"evidence": "   "}}, "consent.evidence"),
    ({"phone": PHONE, "consent": {"evidence": "x\x00"}}, "consent.evidence"),
    ({"phone": PHONE, "consent": {"evidence": "x" * 101}}, "consent.evidence"),
    ({"phone": PHONE, "consent": {"evidence": "x", "given_at": "now"}}, "consent.given_at"),
    (
        {"phone": PHONE, "consent": {"evidence": "x", "given_at": "2999-01-01T00:00:00Z"}},
        "consent.given_at",
    ),
    # Year 1 ahead of UTC overflowed as the evidence's stamp: a 422 naming no field.
    (
        {"phone": PHONE, "consent": {"evidence": "x", "given_at": "0001-01-01T00:00:00+23:59"}},
        "consent.given_at",
    ),
    (
        {"phone": PHONE, "consent": {"evidence": "x", "given_at": "1999-12-31T23:59:59Z"}},
        "consent.given_at",
    ),
    ({"phone": "hello", "consent": {"evidence": "x"}}, "phone"),
    ({"phone": PHONE, "consent": {"evidence": "x"}, "language": "de"}, "language"),
    ({"phone": PHONE, "consent": {"evidence": "x"}, "vip": True}, "vip"),
]

# Adjustments that break a rule, and the field the 422 names.
BAD_ADJUSTMENTS: list[tuple[dict[str, Any], str]] = [
    ({"points": 0, "reason": "x"}, "points"),
    ({"points": 2**64, "reason": "x"}, "points"),
    ({"points": "10", "reason": "x"}, "points"),
    ({"points": 10}, "reason"),
    ({"points": 10, "reason": ""}, "reason"),
    ({"points": 10, "reason": "  "}, "reason"),
]


class TestEnrol:
    async def test_a_new_customer_is_a_member_with_the_consent_logged(
        self, till: Till, db: Database
    ) -> None:
        """201 with the member; the consent names the key, the evidence and the words sent."""
        answer = await till.enrol("912 34 567", first_name="Kari")
        assert answer.status == 201, answer.body
        member = answer.body
        assert member["phone"] == PHONE
        assert member["status"] == "active"
        assert member["first_name"] == "Kari"
        assert member["language"] == "nb"
        assert member["balance"] == 0
        assert member["tier"]["name"] == "Bronse"
        assert member["joined_at"].endswith("Z")
        assert member["referral_code"]
        [event] = await consents(db)
        assert event.channel == "pos"
        assert event.action == "grant"
        assert event.evidence == "till-1: receipt 1234, box ticked"
        assert event.wording_id == "enrol.confirmed"
        assert event.wording_language == "nb"
        sms, _ = await outbox(db)
        assert sms.body == event.wording_text

    async def test_the_member_gets_the_confirmation_then_the_first_open_question_by_sms(
        self, till: Till, db: Database
    ) -> None:
        """Two system SMS to the number, each one segment: the consent confirmation, then the
        first question not already answered (the till gave the first name, so the birthday),
        due a little after the confirmation so the gateway has that first."""
        await till.enrol(first_name="Kari")
        confirmed, asked = await outbox(db)
        for sms in (confirmed, asked):
            assert (sms.kind, sms.status, sms.to_number, sms.from_number) == (
                "system",
                "queued",
                PHONE,
                "2020",
            )
            assert sms.segments == 1
        assert confirmed.body == confirmation("nb")
        assert asked.body == locales.render("profile.ask.birthday", "nb")
        assert asked.send_after > confirmed.send_after
        assert None not in (confirmed.dedupe_key, asked.dedupe_key)
        assert confirmed.dedupe_key != asked.dedupe_key

    async def test_the_reply_by_sms_answers_the_question_asked(
        self, till: Till, client: Any, db: Database
    ) -> None:
        """The member's conversation waits on the question the SMS asked: their reply answers it."""
        await till.enrol()
        _, sms = await outbox(db)
        assert sms.body == locales.render("profile.ask.first_name", "nb")
        reply = await Phone(client, PHONE).text("Kari")
        assert reply is not None
        assert "Kari" in reply
        member = await db.run(lambda s: s.scalars(select(Member)).one())
        assert member.first_name == "Kari"

    async def test_an_active_member_again_is_200_with_no_sms(
        self, till: Till, db: Database
    ) -> None:
        """Enrolling an active member changes nothing: 200, the member as they are, no SMS."""
        first = await till.enrol()
        again = await till.enrol("+47 91 23 45 67")
        assert again.status == 200
        assert again.body["id"] == first.body["id"]
        assert len(await outbox(db)) == 2
        assert len(await consents(db)) == 1

    async def test_one_customer_enrolled_by_three_tills_at_once_joins_once(
        self, till: Till, db: Database
    ) -> None:
        """The same new number from three requests at the same moment: one 201, two 200, one
        member, one consent and one SMS."""
        answers = await asyncio.gather(*(till.enrol() for _ in range(3)))
        assert sorted(a.status for a in answers) == [200, 200, 201]
        assert len({a.body["id"] for a in answers}) == 1
        assert len(await consents(db)) == 1
        assert len(await outbox(db)) == 2

    async def test_a_member_who_joined_by_sms_is_not_sent_anything(
        self, till: Till, client: Any, db: Database
    ) -> None:
        """A number that joined by JOIN and YES is already active: 200 and no SMS."""
        phone = Phone(client, PHONE)
        await phone.text("JOIN")
        await phone.text("JA")
        answer = await till.enrol()
        assert answer.status == 200
        assert answer.body["status"] == "active"
        assert await outbox(db) == []

    async def test_a_number_that_asked_to_join_by_sms_is_enrolled(
        self, till: Till, client: Any, db: Database
    ) -> None:
        """A pending number (JOIN, no YES yet) becomes a member at the till, and the SMS's question
        replaces the pending YES question."""
        await Phone(client, PHONE).text("JOIN")
        answer = await till.enrol()
        assert answer.status == 201
        assert answer.body["status"] == "active"
        assert len(await outbox(db)) == 2
        member = await db.run(lambda s: s.scalars(select(Member)).one())
        assert member.flow == "profile"

    async def test_a_stopped_member_who_enrols_again_gets_a_new_confirmation(
        self, till: Till, client: Any, db: Database
    ) -> None:
        """STOP, then consent at the till: a second grant and a second SMS."""
        await till.enrol()
        await Phone(client, PHONE).text("STOPP")
        answer = await till.enrol()
        assert answer.status == 201
        messages = await outbox(db)
        assert len(messages) == 4
        assert len({m.dedupe_key for m in messages}) == 4
        assert messages[2].body == confirmation("nb")
        assert [e.action for e in await consents(db)] == ["grant", "withdraw", "grant"]

    async def test_a_returning_member_is_asked_only_what_they_have_not_answered(
        self, till: Till, client: Any, db: Database
    ) -> None:
        """Name and birthday given by SMS, then STOP: enrolled again, the SMS asks the club's
        own question, the first one still open."""
        await till.enrol()
        phone = Phone(client, PHONE)
        await phone.text("Kari")
        await phone.text("12.03.1990")
        await phone.text("STOPP")
        assert (await till.enrol()).status == 201
        last = (await outbox(db))[-1]
        assert "Hvilke aktiviteter liker du?" in last.body
        assert locales.render("profile.ask.first_name", "nb") not in last.body

    @pytest.mark.parametrize(
        ("number", "language"),
        [("+46701234567", "sv"), ("+447400123456", "en"), ("0047 912 34 567", "nb")],
    )
    async def test_the_sms_is_in_the_language_of_the_number(
        self, till: Till, db: Database, number: str, language: str
    ) -> None:
        answer = await till.enrol(number)
        assert answer.status == 201
        assert answer.body["language"] == language
        sms, _ = await outbox(db)
        assert sms.body == confirmation(language)

    async def test_a_language_given_by_the_till_wins(self, till: Till, db: Database) -> None:
        answer = await till.enrol(language="en")
        assert answer.body["language"] == "en"
        confirmed, asked = await outbox(db)
        assert confirmed.body == confirmation("en")
        assert asked.body == locales.render("profile.ask.first_name", "en")

    async def test_a_club_without_questions_sends_only_the_confirmation(
        self, quiet_club: int, db: Database, client: Any
    ) -> None:
        till = Till(client, await create_key(db, quiet_club))
        await till.enrol()
        [sms] = await outbox(db)
        assert sms.body == confirmation("nb")
        member = await db.run(lambda s: s.scalars(select(Member)).one())
        assert member.flow is None

    @pytest.mark.parametrize(
        ("number", "language"),
        [("+4791234567", "nb"), ("+46701234567", "sv"), ("+447400123456", "en")],
    )
    async def test_each_sms_is_one_segment_and_the_reply_goes_on_with_the_profile(
        self, client: Any, db: Database, number: str, language: str
    ) -> None:
        """A club with a 25-character name whose own question comes first: what the gateway
        is handed is the confirmation, then the question, each one GSM-7 segment; the member's
        answer by SMS is saved and the next question asked, then the next."""
        club = await create_club(
            db,
            name=LONG_CLUB,
            privacy_url="https://torshovsport.no/personvern",
            marketing_per_month=3,
            questions=[DEMO_QUESTIONS[2], *DEMO_QUESTIONS[:2]],
        )
        till = Till(client, await create_key(db, club))
        assert (await till.enrol(number)).status == 201
        gateway = RecordingGateway()
        enrolled = dt.datetime.now(dt.UTC)
        # The confirmation is due at once; the question only a little later.
        assert await sender.drain(db, gateway, now=lambda: enrolled) == 1
        later = enrolled + enrolment.QUESTION_AFTER + dt.timedelta(seconds=1)
        assert await sender.drain(db, gateway, now=lambda: later) == 1
        confirmed, asked = gateway.to(number)
        values = {"club": LONG_CLUB, "per_month": 3}
        assert confirmed == locales.render(
            "enrol.confirmed", language, privacy_url="torshovsport.no/personvern", **values
        )
        assert asked.startswith(DEMO_QUESTIONS[2]["prompt"][language] + " 1 ")
        for sms in (confirmed, asked):
            assert locales.is_gsm7(sms)
            assert locales.segments(sms).segments == 1, sms
        phone = Phone(client, number)
        assert await phone.text("1 3") == locales.render("profile.ask.first_name", language)
        thanks = await phone.text("Kari")
        assert thanks == " ".join(
            (
                locales.render("profile.thanks", language, first_name="Kari"),
                locales.render("profile.ask.birthday", language),
            )
        )
        member = await db.run(lambda s: s.scalars(select(Member)).one())
        assert (member.first_name, member.flow) == ("Kari", "profile")
        picked = await db.run(lambda s: [a.value for a in s.scalars(select(ProfileAnswer))])
        assert picked == [["running", "skiing"]]

    async def test_the_time_of_consent_is_logged_with_the_evidence(
        self, till: Till, db: Database
    ) -> None:
        given = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)).replace(microsecond=0)
        body = {"evidence": "receipt 99", "given_at": given.isoformat()}
        answer = await till.post("/members", {"phone": PHONE, "consent": body})
        assert answer.status == 201
        [event] = await consents(db)
        stamp = given.isoformat().replace("+00:00", "Z")
        assert event.evidence == f"till-1: receipt 99 (given {stamp})"

    async def test_a_bad_body_is_422_naming_the_field(
        self, till: Till, db: Database, subtests: Any
    ) -> None:
        for body, field in BAD_ENROLMENTS:
            with subtests.test(field=field, body=repr(body)[:80]):
                answer = await till.post("/members", body)
                assert answer.status == 422, answer.body
                assert answer.body["field"] == field
        assert await db.run(lambda s: s.scalars(select(Member)).all()) == []


class TestLookUp:
    async def test_by_phone_in_any_common_format(self, till: Till, member: dict[str, Any]) -> None:
        for typed in (PHONE, "912 34 567", "0047 91234567", "+47 912-34-567", " 91234567 "):
            answer = await till.get("/members?" + _query(phone=typed))
            assert answer.status == 200, typed
            assert answer.body == member

    async def test_an_unknown_phone_is_404_naming_it(self, till: Till, club: int) -> None:
        answer = await till.get("/members?" + _query(phone="912 34 000"))
        assert answer.status == 404
        assert answer.body["field"] == "phone"
        assert "+4791234000" in answer.body["error"]

    async def test_without_a_phone_or_with_nonsense_it_is_422(self, till: Till, club: int) -> None:
        missing = await till.get("/members")
        assert (missing.status, missing.body["field"]) == (422, "phone")
        nonsense = await till.get("/members?" + _query(phone="call me"))
        assert (nonsense.status, nonsense.body["field"]) == (422, "phone")
        nul = await till.get("/members?phone=%2B47%00")
        assert (nul.status, nul.body["field"]) == (422, "phone")

    async def test_by_id(self, till: Till, member: dict[str, Any]) -> None:
        answer = await till.get(f"/members/{member['id']}")
        assert answer.status == 200
        assert answer.body == member

    async def test_an_id_that_is_no_member_is_404(self, till: Till, member: dict[str, Any]) -> None:
        for member_id in ("999", "abc", "1.5", "-1", "0", "%00", str(2**63), "9" * 40, "١٢"):
            answer = await till.get(f"/members/{member_id}")
            assert answer.status == 404, (member_id, answer.body)

    async def test_the_tier_shows_the_next_and_the_points_to_it(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        await till.buy(member["id"], "T-1", 50_000)
        answer = await till.get(f"/members/{member['id']}")
        assert answer.body["balance"] == 500
        assert answer.body["tier"] == {
            "name": "Bronse",
            "discount_percent": 5,
            "next": "Sølv",
            "points_to_next": 1500,
        }

    async def test_a_purchase_that_reaches_a_tier_shows_it_at_once(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        """2 000 points earned: Sølv (10 %), 3 000 to Gull; kept after a refund, until the
        tier's own review."""
        await till.buy(member["id"], "T-1", 200_000)
        tier = (await till.get(f"/members/{member['id']}")).body["tier"]
        assert tier == {
            "name": "Sølv",
            "discount_percent": 10,
            "next": "Gull",
            "points_to_next": 3000,
        }
        await till.post("/purchases/T-1/refunds", {"refund_id": "R-1"})
        after = (await till.get(f"/members/{member['id']}")).body
        assert after["balance"] == 0
        assert after["tier"]["name"] == "Sølv"


class TestPunchCards:
    """The demo's punch card: every 5th purchase with a service line gives a free ski waxing."""

    @pytest.fixture
    async def card(self, db: Database, club: int) -> int:
        def work(session: Session) -> int:
            set_up_loyalty(session, session.get(Program, club))
            return session.scalars(select(PunchCard.id)).one()

        return await db.run(work)

    async def test_the_member_shows_the_punches_on_each_card(
        self, till: Till, card: int, member: dict[str, Any]
    ) -> None:
        for n, category in enumerate(("service", "Service", "running")):
            line = {"qty": 1, "amount_minor": 10_000, "category": category}
            body = {"transaction_id": f"T-{n}", "member_id": member["id"], "lines": [line]}
            assert (await till.post("/purchases", body)).status == 201
        answer = await till.get(f"/members/{member['id']}")
        assert answer.status == 200
        assert answer.body["punch_cards"] == [
            {
                "id": card,
                "category": "service",
                "every": 5,
                "punches": 2,
                "benefit": "gratis skismøring",
            }
        ]
        by_phone = await till.get("/members?" + _query(phone=PHONE))
        assert by_phone.body == answer.body

    async def test_in_the_members_language_and_none_before_a_purchase(
        self, till: Till, card: int
    ) -> None:
        enrolled = (await till.enrol("+46701234567")).body
        assert enrolled["punch_cards"] == [
            {
                "id": card,
                "category": "service",
                "every": 5,
                "punches": 0,
                "benefit": "gratis skidvallning",
            }
        ]

    async def test_a_club_without_a_card_shows_none(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        assert (await till.get(f"/members/{member['id']}")).body["punch_cards"] == []

    async def test_a_card_whose_coupon_is_off_is_not_shown(
        self, till: Till, db: Database, card: int, member: dict[str, Any]
    ) -> None:
        def switch_off(session: Session) -> None:
            template_id = session.get(PunchCard, card).template_id
            session.get(CouponTemplate, template_id).active = False

        await db.run(switch_off)
        assert (await till.get(f"/members/{member['id']}")).body["punch_cards"] == []


class TestCoupons:
    async def test_the_valid_coupons_soonest_to_end_first(
        self, till: Till, db: Database, club: int, member: dict[str, Any]
    ) -> None:
        later = await issue_coupon(db, club, member["id"], valid_days=30, source="a")
        redeemed = await issue_coupon(db, club, member["id"], source="b")
        await till.post(f"/coupons/{redeemed}/redeem")
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=29)
        sooner = await issue_coupon(db, club, member["id"], source="c", at=old)
        answer = await till.get(f"/members/{member['id']}/coupons")
        assert answer.status == 200
        codes = [c["code"].replace("-", "") for c in answer.body["coupons"]]
        assert codes == [sooner, later]
        first = answer.body["coupons"][0]
        assert first["state"] == "valid"
        assert first["benefit"] == "10 % rabatt"
        assert first["discount_percent"] == 10
        assert first["code"] == f"{sooner[:4]}-{sooner[4:]}"

    async def test_an_unknown_member_is_404(self, till: Till, club: int) -> None:
        answer = await till.get("/members/12345/coupons")
        assert answer.status == 404


class TestAdjustments:
    async def test_points_added_with_a_reason_and_the_key_as_actor(
        self, till: Till, db: Database, member: dict[str, Any]
    ) -> None:
        answer = await till.post(
            f"/members/{member['id']}/adjustments", {"points": 250, "reason": "goodwill"}
        )
        assert answer.status == 201
        assert answer.body == {"member_id": member["id"], "points": 250, "balance": 250}
        entry = await db.run(lambda s: s.scalars(select(LedgerEntry)).one())
        assert (entry.kind, entry.points, entry.reason, entry.actor) == (
            "adjust",
            250,
            "goodwill",
            "till-1",
        )

    async def test_points_taken(self, till: Till, member: dict[str, Any]) -> None:
        path = f"/members/{member['id']}/adjustments"
        await till.post(path, {"points": 250, "reason": "goodwill"})
        answer = await till.post(path, {"points": -100, "reason": "typo"})
        assert answer.status == 201
        assert answer.body["balance"] == 150

    async def test_taking_more_than_the_balance_is_409_with_the_balance(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        path = f"/members/{member['id']}/adjustments"
        await till.post(path, {"points": 50, "reason": "goodwill"})
        answer = await till.post(path, {"points": -80, "reason": "oops"})
        assert answer.status == 409
        assert answer.body["reason"] == "not_enough_points"
        assert answer.body["balance"] == 50
        member_now = await till.get(f"/members/{member['id']}")
        assert member_now.body["balance"] == 50

    async def test_takings_at_the_same_moment_never_go_below_zero(
        self, till: Till, member: dict[str, Any]
    ) -> None:
        """100 points, five tills take 30 each at once: three succeed, two get 409, 10 left."""
        path = f"/members/{member['id']}/adjustments"
        await till.post(path, {"points": 100, "reason": "goodwill"})
        take = {"points": -30, "reason": "gift"}
        answers = await asyncio.gather(*(till.post(path, take) for _ in range(5)))
        assert sorted(a.status for a in answers) == [201, 201, 201, 409, 409]
        assert (await till.get(f"/members/{member['id']}")).body["balance"] == 10

    async def test_a_bad_adjustment_is_422(
        self, till: Till, member: dict[str, Any], subtests: Any
    ) -> None:
        for body, field in BAD_ADJUSTMENTS:
            with subtests.test(field=field, body=repr(body)):
                answer = await till.post(f"/members/{member['id']}/adjustments", body)
                assert answer.status == 422
                assert answer.body["field"] == field
        assert (await till.get(f"/members/{member['id']}")).body["balance"] == 0


def _query(**params: str) -> str:
    return urlencode(params)
