"""Every marketing SMS begins with the club's name (PRODUCT.md, "Privacy and consent"): a
broadcast and every journey, in every language, as the fake gateway receives them; and the
preview sizes and prices the text with the name in it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, select

from scheduler import sender
from store.loyalty import purchases
from store.loyalty.earning import Line
from store.models import Member, OutboxMessage, Program
from store.outreach import campaigns, journeys
from tests.conftest import CLUB_NUMBER
from tests.scheduler.campaign_helpers import (
    T0,
    RecordingGateway,
    add_members,
    at,
    broadcast,
    plan,
    run,
)

CLUB = "Torshov Sport"
# The opt-out line (tests/scheduler/test_journeys.py holds its wording).
FOOTERS = {language: "\n" + campaigns.footer(language) for language in ("nb", "sv", "en")}
# One member per language, each with a number of their own country.
PEOPLE = {"nb": "+4791", "sv": "+4670", "en": "+4477"}


async def people(db, club: int) -> dict[str, str]:
    """One member in each language; their numbers by language."""
    found = {}
    for language, prefix in PEOPLE.items():
        [phone] = await add_members(db, club, 1, prefix=prefix, language=language)
        found[language] = phone
    return found


class TestBroadcast:
    async def test_every_language_begins_with_the_clubs_name(self, db, club):
        numbers = await people(db, club)
        texts = {"nb": "Halv pris i dag!", "sv": "Halva priset i dag!", "en": "Half price today!"}
        campaign_id = await broadcast(db, club, texts=texts)
        await plan(db, campaign_id)
        gateway = RecordingGateway()
        await sender.drain(db, gateway, at(T0))
        for language, phone in numbers.items():
            assert gateway.to(phone) == [
                f"{CLUB}: {texts[language]}\n{campaigns.footer(language)}"
            ], language

    @pytest.mark.parametrize(
        "text",
        [
            "Torshov Sport: halv pris i dag!",
            "TORSHOV SPORT - halv pris i dag!",
            "torshov sport har halv pris i dag!",
            "{club}: halv pris i dag!",
        ],
    )
    async def test_a_text_that_names_the_club_first_is_not_named_twice(self, db, club, text):
        [phone] = await add_members(db, club, 1)
        campaign_id = await broadcast(db, club, texts={"nb": text})
        await plan(db, campaign_id)
        gateway = RecordingGateway()
        await sender.drain(db, gateway, at(T0))
        [body] = gateway.to(phone)
        assert body == text.replace("{club}", CLUB) + FOOTERS["nb"]

    async def test_a_word_that_only_starts_like_the_club_is_no_name(self, db):
        """A club called "Sport" still names itself before "Sportsdag i morgen!"."""
        assert campaigns.signed("Sportsdag i morgen!", "Sport") == "Sport: Sportsdag i morgen!"
        assert campaigns.signed("Sport: dag i morgen!", "Sport") == "Sport: dag i morgen!"

    async def test_the_preview_sizes_and_prices_the_name(self, db, club):
        """130 characters and the opt-out line fit one SMS; with the name they take two."""
        await add_members(db, club, 4)
        text = "x" * 130
        assert len(text + FOOTERS["nb"]) <= 160 < len(f"{CLUB}: " + text + FOOTERS["nb"])

        def work(session) -> campaigns.Draft:
            program = session.get(Program, club)
            options: dict[str, Any] = {"name": "Lang", "texts": {"nb": text}, "segment": None}
            return campaigns.try_broadcast(session, program, now=T0, **options)

        draft = await run(db, work)
        assert draft.samples["nb"] == f"{CLUB}: {text}{FOOTERS['nb']}"
        [estimate] = draft.preview.languages
        assert estimate.segments == 2
        assert draft.preview.sms_segments == 4 * 2
        program = await run(db, lambda s: s.get(Program, club))
        assert draft.preview.cost_minor == 8 * program.sms_price_minor


# Each journey's occasion as its planner writes it (a date for expiring points, a tier's id
# for the tier journeys): the values the sender fills in read it.
OCCASIONS = {
    journeys.EXPIRING: "2026-12-31",
    journeys.TIER_REACHED: "0",
    journeys.NEAR_TIER: "0:2026",
}


class TestJourneys:
    @pytest.mark.parametrize("trigger", journeys.TRIGGERS)
    async def test_every_journey_in_every_language_begins_with_the_clubs_name(
        self, db, club, trigger
    ):
        numbers = await people(db, club)

        def work(session) -> None:
            program = session.get(Program, club)
            journey = journeys.create(session, program, trigger=trigger, now=T0)
            ids = dict(session.execute(select(Member.phone, Member.id)).all())
            occasions = {}
            if trigger == journeys.CROSS_SELL:
                # A cross-sell follows a purchase of a category the journey has a text for:
                # the occasion is the purchase (the sender reads its category back).
                journeys.set_category_text(session, program, "sko", {"nb": "Sokker?"}, now=T0)
                for language, phone in numbers.items():
                    bought = purchases.record(
                        session,
                        program,
                        ids[phone],
                        transaction_id=f"T-{language}",
                        lines=[Line(qty=1, amount_minor=10000, category="sko")],
                        occurred_at=T0 - dt.timedelta(days=4),
                        fingerprint=f"T-{language}",
                        now=T0 - dt.timedelta(days=4),
                    )
                    occasions[language] = str(bought.purchase.id)
            session.execute(
                insert(OutboxMessage),
                [
                    {
                        "program_id": club,
                        "member_id": ids[phone],
                        "campaign_id": journey.id,
                        "occasion": occasions.get(language)
                        or OCCASIONS.get(trigger, f"{trigger}:{language}"),
                        "kind": "marketing",
                        "status": "queued",
                        "to_number": phone,
                        "from_number": CLUB_NUMBER,
                        "segments": 0,
                        "attempts": 0,
                        "created_at": T0,
                        "send_after": T0,
                    }
                    for language, phone in numbers.items()
                ],
            )

        await run(db, work)
        gateway = RecordingGateway()
        await sender.drain(db, gateway, at(T0))
        for language, phone in numbers.items():
            [body] = gateway.to(phone)
            assert body.startswith(f"{CLUB}: "), (trigger, language, body)
            assert not body.startswith(f"{CLUB}: {CLUB}"), (trigger, language, body)
            assert body.endswith(FOOTERS[language]), (trigger, language, body)

    @pytest.mark.parametrize("trigger", journeys.TRIGGERS)
    async def test_the_journeys_sample_names_the_club_first(self, db, club, trigger):
        def work(session) -> dict[str, str]:
            program = session.get(Program, club)
            journey = journeys.create(session, program, trigger=trigger, now=T0)
            return {
                language: journeys.sample_text(session, program, journey, language, T0)
                for language in PEOPLE
            }

        for language, sample in (await run(db, work)).items():
            assert sample.startswith(f"{CLUB}: "), (trigger, language)
            assert sample.endswith(FOOTERS[language]), (trigger, language)


@given(
    club=st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=20).filter(
        str.strip
    ),
    text=st.text(min_size=1, max_size=60),
)
def test_a_signed_text_always_begins_with_the_clubs_name(club: str, text: str) -> None:
    """Whatever the owner wrote, the name comes first, once: signing twice changes nothing."""
    signed = campaigns.signed(text, club)
    assert signed.lstrip().casefold().startswith(club.strip().casefold())
    assert campaigns.signed(signed, club) == signed
