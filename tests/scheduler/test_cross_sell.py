"""Cross-sell after a purchase (issue 17): a purchase of a category the owner wrote a text for is
followed, `delay_days` later, by that text; once per purchase, never for a category the member
bought again since. Purchases recorded as the API records them, planned by the journeys job
(run twice), sent through the fake gateway, with the guard rails applied."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

import locales
from store.errors import InvalidInput, NotFound
from store.loyalty import purchases
from store.loyalty.earning import Line
from store.models import Member, Program
from store.outreach import journeys
from tests.scheduler.campaign_helpers import T0, broadcast, run
from tests.scheduler.campaign_helpers import plan as plan_broadcast
from tests.scheduler.test_journeys import NB, outbox, person, plan, send

HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
CLUB = "Torshov Sport"
SKO = {"nb": "Hei {first_name}! Takk for {category}-kjøpet. Er du også interessert i skopuss?"}
SKI = {"nb": "Hei {first_name}! Er du også interessert i smøring til {category}?"}
_receipts = itertools.count(1)


async def buy(db, club: int, phone: str, when: dt.datetime, *lines: tuple[str, int]) -> int:
    """A purchase of (category, kroner) lines at the till at `when`; returns its id."""
    reference = f"X{next(_receipts)}"

    def work(session) -> int:
        program = session.get(Program, club)
        member_id = session.scalar(select(Member.id).where(Member.phone == phone))
        return purchases.record(
            session,
            program,
            member_id,
            transaction_id=reference,
            lines=[Line(qty=1, amount_minor=kr * 100, category=cat) for cat, kr in lines],
            occurred_at=when,
            fingerprint=reference,
            now=when,
        ).purchase.id

    return await run(db, work)


async def cross_sell(db, club: int, **categories: dict[str, str]) -> int:
    """The cross-sell journey on, with the owner's texts per category; returns its id."""

    def work(session) -> int:
        program = session.get(Program, club)
        for category, texts in categories.items():
            journeys.set_category_text(session, program, category, texts, now=T0)
        return journeys.update(session, program, journeys.CROSS_SELL, now=T0, active=True).id

    return await run(db, work)


class TestCrossSell:
    async def test_the_owners_text_for_the_category_after_the_delay_once(self, db, club):
        journey_id = await cross_sell(db, club, sko=SKO, ski=SKI)
        ann = await person(db, club, "Ann", number=1)
        bo = await person(db, club, "Bo", number=2)
        cai = await person(db, club, "Cai", number=3)
        first = await buy(db, club, ann, T0 - 3 * DAY - HOUR, ("sko", 900), ("sokker", 100))
        await buy(db, club, bo, T0 - 3 * DAY - HOUR, ("ski", 3000), ("sko", 1200))
        await buy(db, club, cai, T0 - 3 * DAY - HOUR, ("sokker", 100))  # no text for it
        assert await plan(db, club) == {"cross_sell": 2}
        assert await plan(db, club) == {"cross_sell": 0}  # run twice: once per purchase
        gateway = await send(db)
        assert gateway.to(ann) == [
            f"{CLUB}: Hei Ann! Takk for sko-kjøpet. Er du også interessert i skopuss?" + NB
        ]
        # Two categories with texts: the one with the highest amount.
        assert gateway.to(bo) == [f"{CLUB}: Hei Bo! Er du også interessert i smøring til ski?" + NB]
        assert gateway.to(cai) == []
        assert str(first) in {row.occasion for row in await outbox(db, journey_id)}
        assert await plan(db, club, T0 + DAY) == {"cross_sell": 0}

    async def test_the_delay_is_respected_and_old_purchases_are_not_followed(self, db, club):
        await cross_sell(db, club, sko=SKO)
        await run(
            db,
            lambda s: journeys.update(
                s, s.get(Program, club), "cross_sell", now=T0, settings={"delay_days": 5}
            ),
        )
        fresh = await person(db, club, "Ann", number=1)
        old = await person(db, club, "Bo", number=2)
        await buy(db, club, fresh, T0 - 4 * DAY, ("sko", 500))
        await buy(db, club, old, T0 - 13 * DAY, ("sko", 500))  # past 5 + 7 days' lookback
        assert await plan(db, club) == {"cross_sell": 0}
        assert await plan(db, club, T0 + DAY + HOUR) == {"cross_sell": 1}
        assert list((await send(db, T0 + DAY + HOUR)).per_number()) == [fresh]
        # The category texts stayed when the delay was set.
        settings = await run(
            db, lambda s: journeys.category_texts(journeys._journey(s, club, "cross_sell"))
        )
        assert list(settings) == ["sko"]

    async def test_never_for_a_category_bought_again_since(self, db, club):
        await cross_sell(db, club, sko=SKO, ski=SKI)
        again = await person(db, club, "Ann", number=1)
        other = await person(db, club, "Bo", number=2)
        late = await person(db, club, "Cai", number=3)
        await buy(db, club, again, T0 - 4 * DAY, ("sko", 500))
        await buy(db, club, again, T0 - 2 * DAY, ("sko", 300))  # sko again: not followed
        # Ski bought again; the sko of the same purchase is still news.
        await buy(db, club, other, T0 - 4 * DAY, ("ski", 5000), ("sko", 400))
        await buy(db, club, other, T0 - 1 * DAY, ("ski", 200))
        await buy(db, club, late, T0 - 4 * DAY, ("sko", 500))
        assert await plan(db, club) == {"cross_sell": 2}
        # Cai buys shoes again after planning, before sending: the message is skipped.
        await buy(db, club, late, T0 - HOUR, ("sko", 100))
        gateway = await send(db)
        assert gateway.to(again) == []
        assert gateway.to(other) == [
            f"{CLUB}: Hei Bo! Takk for sko-kjøpet. Er du også interessert i skopuss?" + NB
        ]
        assert gateway.to(late) == []

    async def test_a_language_without_a_category_text_speaks_the_catalog(self, db, club):
        await cross_sell(db, club, sko=SKO)
        amy = await person(db, club, "Amy", number=1, language="en")
        await buy(db, club, amy, T0 - 3 * DAY - HOUR, ("sko", 500))
        await plan(db, club)
        text = locales.render(
            "journey.cross_sell", "en", first_name="Amy", category="sko", club=CLUB
        )
        [body] = (await send(db)).to(amy)
        assert body.startswith(f"{CLUB}: {text}\n")
        assert "Are you also interested in" in body

    async def test_the_cap_and_quiet_hours(self, db, club):
        await cross_sell(db, club, sko=SKO)
        await run(db, lambda s: setattr(s.get(Program, club), "marketing_per_month", 1))
        capped = await person(db, club, "Cap", number=1)
        earlier = T0 - 5 * DAY
        first = await broadcast(db, club, now=earlier, send_at=earlier)
        await plan_broadcast(db, first, now=earlier)
        assert len((await send(db, earlier)).sent) == 1
        ok = await person(db, club, "Ann", number=2)
        await buy(db, club, capped, T0 - 3 * DAY - 12 * HOUR, ("sko", 500))
        await buy(db, club, ok, T0 - 3 * DAY - 12 * HOUR, ("sko", 500))
        night = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)  # 00:30 in Oslo
        assert await plan(db, club, night) == {"cross_sell": 1}
        assert (await send(db, night)).sent == []  # quiet hours: held until morning
        gateway = await send(db)
        assert list(gateway.per_number()) == [ok]


class TestCategoryTexts:
    async def test_bad_categories_and_texts_are_refused_naming_them(self, db, club):
        def attempt(category: str, texts: dict[str, str]):
            def work(session) -> None:
                program = session.get(Program, club)
                journeys.set_category_text(session, program, category, texts, now=T0)

            return run(db, work)

        for category, texts, field in [
            ("", {"nb": "Hei"}, "category"),
            ("x" * 61, {"nb": "Hei"}, "category"),
            ("sko", {"nb": " ", "en": ""}, "texts"),
            ("sko", {"nb": "Hei {gift}"}, "texts.nb"),
            ("sko", {"de": "Hallo"}, "texts.de"),
        ]:
            with pytest.raises(InvalidInput) as caught:
                await attempt(category, texts)
            assert caught.value.field == field, (category, texts)
        with pytest.raises(InvalidInput) as caught:
            await run(
                db,
                lambda s: journeys.create(
                    s,
                    s.get(Program, club),
                    trigger="cross_sell",
                    now=T0,
                    settings={"delay_days": 91},
                ),
            )
        assert caught.value.field == "settings.delay_days"
        assert await run(db, lambda s: journeys.all_of(s, club)) == []

    async def test_a_category_is_added_edited_and_removed(self, db, club):
        await cross_sell(db, club, sko=SKO)
        await cross_sell(db, club, sko={"nb": "Ny tekst om {category}"}, ski=SKI)
        found = await run(
            db, lambda s: journeys.category_texts(journeys._journey(s, club, "cross_sell"))
        )
        assert found == {"sko": {"nb": "Ny tekst om {category}"}, "ski": SKI}
        await run(db, lambda s: journeys.remove_category(s, s.get(Program, club), "sko"))
        with pytest.raises(NotFound):
            await run(db, lambda s: journeys.remove_category(s, s.get(Program, club), "sko"))
        ann = await person(db, club, "Ann", number=1)
        await buy(db, club, ann, T0 - 3 * DAY - HOUR, ("sko", 500))
        assert await plan(db, club) == {"cross_sell": 0}

    async def test_the_sample_uses_the_longest_category_message(self, db, club):
        await cross_sell(db, club, sko=SKO, ski={"nb": "Kort om {category}"})

        def sample(session) -> str:
            program = session.get(Program, club)
            journey = journeys._journey(session, club, "cross_sell")
            return journeys.sample_text(session, program, journey, "nb", T0)

        text = await run(db, sample)
        assert "Takk for sko-kjøpet" in text
        assert locales.segments(text).segments == 1
