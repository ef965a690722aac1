"""Automated journeys end to end: set up with the store's own functions, planned by the
scheduler's job at a fixed moment, sent by the sender; what each member received."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from sqlalchemy import select

import locales
from scheduler import journeys as job
from scheduler import sender
from scheduler.daily import run_daily
from store.errors import Conflict, InvalidInput, NotFound
from store.loyalty import coupons, purchases, rewards
from store.loyalty.earning import Line
from store.models import Coupon, Member, OutboxMessage, Program
from store.outreach import campaigns, journeys
from tests.conftest import create_club
from tests.scheduler.campaign_helpers import (
    T0,
    RecordingGateway,
    add_members,
    at,
    broadcast,
    run,
)
from tests.scheduler.campaign_helpers import plan as plan_broadcast

# Every marketing SMS: "Torshov Sport: " first, the opt-out line last.
NB = "\n" + campaigns.footer("nb")
EN = "\n" + campaigns.footer("en")
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
_transactions = itertools.count(1)


async def journey(db, club: int, trigger: str, **options: Any) -> int:
    """A journey created as the admin creates it; returns its id."""

    def work(session) -> int:
        program = session.get(Program, club)
        return journeys.create(session, program, trigger=trigger, now=T0, **options).id

    return await run(db, work)


async def plan(db, club: int, now: dt.datetime = T0) -> dict[str, int]:
    """The journeys job, run once at `now`: the rows it wrote for the club, per trigger."""
    return (await job.run(db, at(now))).get(club, {})


async def send(db, now: dt.datetime = T0) -> RecordingGateway:
    gateway = RecordingGateway()
    await sender.drain(db, gateway, at(now))
    return gateway


async def person(db, club: int, name: str, *, number: int, **columns: Any) -> str:
    """One member (active, Norwegian unless told otherwise); returns the phone number."""
    [phone] = await add_members(db, club, 1, start=number, first_name=name, **columns)
    return phone


async def buy(db, club: int, phone: str, kroner: int, when: dt.datetime) -> None:
    """A purchase at the till at `when` (1 point per krone), recorded as the API records it."""
    reference = f"T{next(_transactions)}"

    def work(session) -> None:
        program = session.get(Program, club)
        member_id = session.scalar(select(Member.id).where(Member.phone == phone))
        purchases.record(
            session,
            program,
            member_id,
            transaction_id=reference,
            lines=[Line(qty=1, amount_minor=kroner * 100)],
            occurred_at=when,
            fingerprint=reference,
            now=when,
        )

    await run(db, work)


async def outbox(db, journey_id: int) -> list[OutboxMessage]:
    return await run(
        db,
        lambda s: list(
            s.scalars(select(OutboxMessage).where(OutboxMessage.campaign_id == journey_id))
        ),
    )


class TestWelcome:
    async def test_a_member_is_welcomed_a_day_after_joining_and_only_once(self, db, club):
        """Welcome waits `delay_hours`; a member who joined long ago is not welcomed now."""
        await journey(db, club, "welcome")
        new = await person(db, club, "Ann", number=1, joined_at=T0 - 30 * HOUR)
        fresh = await person(db, club, "Bo", number=2, joined_at=T0 - 2 * HOUR)
        await person(db, club, "Cai", number=3, joined_at=T0 - 10 * DAY)
        assert await plan(db, club) == {"welcome": 1}
        gateway = await send(db)
        assert gateway.to(new) == [
            "Torshov Sport: "
            "Hei Ann! Takk for at du ble med i Torshov Sport. Handle med nummeret ditt, så får"
            " du poeng. Send POENG for å se saldoen." + NB
        ]
        assert list(gateway.per_number()) == [new]
        assert await plan(db, club) == {"welcome": 0}
        assert await plan(db, club, T0 + HOUR) == {"welcome": 0}
        later = T0 + 23 * HOUR
        assert await plan(db, club, later) == {"welcome": 1}
        assert list((await send(db, later)).per_number()) == [fresh]

    async def test_english_members_get_the_english_wording(self, db, club):
        await journey(db, club, "welcome")
        phone = await person(db, club, "Amy", number=1, language="en", joined_at=T0 - 25 * HOUR)
        await plan(db, club)
        assert (await send(db)).to(phone) == [
            "Torshov Sport: "
            "Hi Amy! Thanks for joining Torshov Sport. Shop with your number to earn points."
            " Text POINTS to see your balance." + EN
        ]


class TestTexts:
    """A language with the club's own text speaks it; one without speaks the catalog's."""

    async def test_an_own_text_in_norwegian_only_leaves_the_others_the_catalogs(self, db, club):
        def setup(session) -> None:
            journeys.update(
                session,
                session.get(Program, club),
                "welcome",
                now=T0,
                active=True,
                texts={"nb": "Velkommen, {first_name}! Hilsen {club}", "sv": " ", "en": ""},
            )

        await run(db, setup)
        joined = {"joined_at": T0 - 30 * HOUR}
        nb = await person(db, club, "Ann", number=1, **joined)
        sv = await person(db, club, "Bo", number=2, language="sv", **joined)
        en = await person(db, club, "Amy", number=3, language="en", **joined)
        await plan(db, club)
        gateway = await send(db)
        assert gateway.to(nb) == ["Torshov Sport: Velkommen, Ann! Hilsen Torshov Sport" + NB]
        assert gateway.to(sv) == [
            "Torshov Sport: "
            "Hej Bo! Tack för att du gick med i Torshov Sport. Handla med ditt nummer så får du"
            " poäng. Skicka POÄNG för att se saldot.\nSvara STOPP för att avsluta"
        ]
        assert gateway.to(en) == [
            "Torshov Sport: "
            "Hi Amy! Thanks for joining Torshov Sport. Shop with your number to earn points."
            " Text POINTS to see your balance." + EN
        ]

    async def test_the_catalog_wording_carries_the_coupon_line_beside_an_own_text(self, db, club):
        def setup(session) -> None:
            program = session.get(Program, club)
            coupons.create_template(
                session,
                program,
                key="back",
                kind=coupons.CAMPAIGN,
                benefit={"nb": "20 % rabatt"},
                valid_days=30,
                discount_percent=20,
            )
            journeys.update(
                session,
                program,
                "winback",
                now=T0,
                active=True,
                coupon="back",
                texts={"nb": "Savner deg, {first_name}! Kode {coupon_code}"},
            )

        await run(db, setup)
        nb = await person(db, club, "Ann", number=1)
        en = await person(db, club, "Amy", number=2, language="en")
        for phone in (nb, en):
            await buy(db, club, phone, 100, T0 - 200 * DAY)
        await plan(db, club)
        gateway = await send(db)
        codes = {
            c.member_id: coupons.display(c.code)
            for c in await run(db, lambda s: list(s.scalars(select(Coupon))))
        }
        members = await run(db, lambda s: dict(s.execute(select(Member.phone, Member.id)).all()))
        assert gateway.to(nb) == [f"Torshov Sport: Savner deg, Ann! Kode {codes[members[nb]]}" + NB]
        [english] = gateway.to(en)
        assert english.startswith("Torshov Sport: Hi Amy!")
        assert english.endswith(f"\nCoupon code: {codes[members[en]]}" + EN)

    async def test_a_row_holding_the_catalogs_wording_written_in_still_sends_it(self, db, club):
        """Journeys saved before only own texts were kept have the catalog's wording copied
        into the languages left empty: they keep sending it, and show no own text there."""
        journey_id = await journey(db, club, "welcome")

        def copy_in(session) -> None:
            found = journeys.all_of(session, club)[0]
            found.texts = {
                "nb": "Hei {first_name}, velkommen!",
                "en": journeys.catalog_wording("welcome", "en"),
            }

        await run(db, copy_in)
        shown = await run(db, lambda s: journeys.own_texts(journeys.all_of(s, club)[0]))
        assert shown == {"nb": "Hei {first_name}, velkommen!"}
        joined = {"joined_at": T0 - 30 * HOUR}
        en = await person(db, club, "Amy", number=1, language="en", **joined)
        sv = await person(db, club, "Bo", number=2, language="sv", **joined)
        await plan(db, club)
        gateway = await send(db)
        assert gateway.to(en) == [
            "Torshov Sport: "
            "Hi Amy! Thanks for joining Torshov Sport. Shop with your number to earn points."
            " Text POINTS to see your balance." + EN
        ]
        [swedish] = gateway.to(sv)
        assert swedish.startswith(
            "Torshov Sport: Hej Bo! Tack för att du gick med i Torshov Sport."
        )
        assert len(await outbox(db, journey_id)) == 2


class TestBirthday:
    async def test_a_birthday_in_the_clubs_zone_is_greeted_after_quiet_hours(self, db, club):
        await journey(db, club, "birthday")
        today = await person(db, club, "Ann", number=1, birthday=dt.date(1990, 11, 24))
        await person(db, club, "Bo", number=2, birthday=dt.date(1990, 11, 25))
        await person(db, club, "Cai", number=3)
        night = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)  # 00:30 on the 24th in Oslo
        assert await plan(db, club, night) == {"birthday": 1}
        assert (await send(db, night)).sent == []
        gateway = await send(db, T0)
        assert gateway.to(today) == [
            "Torshov Sport: Gratulerer med dagen, Ann! Hilsen alle oss i Torshov Sport." + NB
        ]
        assert list(gateway.per_number()) == [today]

    async def test_each_year_is_a_new_occasion(self, db, club):
        journey_id = await journey(db, club, "birthday")
        phone = await person(db, club, "Ann", number=1, birthday=dt.date(1990, 11, 24))
        await plan(db, club)
        await plan(db, club, T0 + 2 * HOUR)
        assert len((await send(db, T0 + 2 * HOUR)).to(phone)) == 1
        next_year = T0 + 365 * DAY
        assert await plan(db, club, next_year) == {"birthday": 1}
        assert len((await send(db, next_year)).to(phone)) == 1
        assert sorted(row.occasion for row in await outbox(db, journey_id)) == ["2026", "2027"]

    async def test_29_february_is_celebrated_on_the_28th_in_other_years(self, db, club):
        await journey(db, club, "birthday")
        phone = await person(db, club, "Ann", number=1, birthday=dt.date(2000, 2, 29))
        for day, greeted in [
            (dt.datetime(2027, 2, 28, 10, tzinfo=dt.UTC), 1),
            (dt.datetime(2028, 2, 28, 10, tzinfo=dt.UTC), 0),  # a leap year: wait a day
            (dt.datetime(2028, 2, 29, 10, tzinfo=dt.UTC), 1),
        ]:
            await plan(db, club, day)
            assert len((await send(db, day)).to(phone)) == greeted, day

    async def test_its_own_text_and_the_birthday_coupon_the_member_gets_once(self, db, club):
        """The journey's coupon is the birthday job's: whichever runs first issues it."""

        def template(session) -> None:
            coupons.create_template(
                session,
                session.get(Program, club),
                key="bday",
                kind=coupons.BIRTHDAY,
                benefit={"nb": "Gratis kaffe"},
                valid_days=30,
            )

        await run(db, template)
        await journey(
            db,
            club,
            "birthday",
            texts={"nb": "Gratulerer, {first_name}! Kaffe på oss med kode {coupon_code}"},
            coupon="bday",
        )
        phone = await person(db, club, "Ann", number=1, birthday=dt.date(1990, 11, 24))
        assert (await run_daily(db, at(T0))).birthday_coupons == 1
        await plan(db, club)
        [body] = (await send(db)).to(phone)
        [coupon] = await run(db, lambda s: list(s.scalars(select(Coupon))))
        assert coupon.source == f"birthday:{coupon.member_id}:2026"
        assert body == (
            f"Torshov Sport: Gratulerer, Ann! Kaffe på oss med kode {coupons.display(coupon.code)}"
            + NB
        )

    async def test_the_catalog_wording_gets_the_coupon_line(self, db, club):
        def template(session) -> None:
            coupons.create_template(
                session,
                session.get(Program, club),
                key="bday",
                kind=coupons.BIRTHDAY,
                benefit={"nb": "Gratis kaffe"},
                valid_days=30,
            )

        await run(db, template)
        await journey(db, club, "birthday", coupon="bday")
        phone = await person(db, club, "Ann", number=1, birthday=dt.date(1990, 11, 24))
        await plan(db, club)
        [body] = (await send(db)).to(phone)
        [coupon] = await run(db, lambda s: list(s.scalars(select(Coupon))))
        assert body == (
            "Torshov Sport: Gratulerer med dagen, Ann! Hilsen alle oss i Torshov Sport.\n"
            f"Kupongkode: {coupons.display(coupon.code)}" + NB
        )


class TestPoints:
    async def test_points_about_to_expire_are_named_with_their_last_day(self, db, club):
        await journey(db, club, "expiring")
        soon = await person(db, club, "Ann", number=1)
        english = await person(db, club, "Amy", number=2, language="en")
        later = await person(db, club, "Bo", number=3)
        # With 24-month points, November 2024's end when November 2026 does (in Oslo).
        await buy(db, club, soon, 150, dt.datetime(2024, 11, 10, 12, tzinfo=dt.UTC))
        await buy(db, club, soon, 80, dt.datetime(2025, 6, 10, 12, tzinfo=dt.UTC))
        await buy(db, club, english, 50, dt.datetime(2024, 11, 15, 12, tzinfo=dt.UTC))
        await buy(db, club, later, 200, dt.datetime(2025, 1, 10, 12, tzinfo=dt.UTC))
        assert await plan(db, club) == {"expiring": 2}
        gateway = await send(db)
        assert gateway.to(soon) == [
            "Torshov Sport: "
            "Hei Ann! 150 av poengene dine i Torshov Sport utløper 30.11.2026. Send KUPONGER"
            " for å se hva du kan hente." + NB
        ]
        assert gateway.to(english) == [
            "Torshov Sport: "
            "Hi Amy! 50 of your Torshov Sport points expire on 30 Nov 2026. Text COUPONS to see"
            " what you can claim." + EN
        ]
        assert gateway.to(later) == []
        assert await plan(db, club, T0 + DAY) == {"expiring": 0}

    async def test_a_balance_over_the_cheapest_reward_is_told_once_per_crossing(self, db, club):
        def reward(session) -> int:
            return coupons.create_template(
                session,
                session.get(Program, club),
                key="kaffe",
                kind=coupons.REWARD,
                benefit={"nb": "Kaffe"},
                valid_days=30,
                points_cost=500,
            ).id

        reward_id = await run(db, reward)
        await journey(db, club, "balance")
        rich = await person(db, club, "Ann", number=1)
        poor = await person(db, club, "Bo", number=2)
        await buy(db, club, rich, 600, T0 - 5 * DAY)
        await buy(db, club, poor, 400, T0 - 5 * DAY)
        assert await plan(db, club) == {"balance": 1}
        assert (await send(db)).to(rich) == [
            "Torshov Sport: "
            "Hei Ann! Du har 600 poeng i Torshov Sport. Send KUPONGER for å se hva du kan hente."
            + NB
        ]
        assert await plan(db, club, T0 + HOUR) == {"balance": 0}

        def claim(session) -> None:
            member_id = session.scalar(select(Member.id).where(Member.phone == rich))
            rewards.claim(session, session.get(Program, club), member_id, reward_id, T0 + HOUR)

        await run(db, claim)  # 100 left: under the threshold
        assert await plan(db, club, T0 + 2 * HOUR) == {"balance": 0}
        await buy(db, club, rich, 450, T0 + 2 * HOUR)  # 550: a new crossing
        assert await plan(db, club, T0 + 3 * HOUR) == {"balance": 1}
        assert (
            (await send(db, T0 + 3 * HOUR))
            .to(rich)[0]
            .startswith("Torshov Sport: Hei Ann! Du har 550 poeng")
        )

    async def test_the_threshold_can_be_set(self, db, club):
        await journey(db, club, "balance", settings={"threshold": 300})
        phone = await person(db, club, "Bo", number=1)
        await buy(db, club, phone, 400, T0 - 5 * DAY)
        assert await plan(db, club) == {"balance": 1}


class TestPurchases:
    async def test_a_week_after_the_latest_purchase_with_none_since(self, db, club):
        await journey(db, club, "after_purchase")
        week = await person(db, club, "Ann", number=1)
        came_back = await person(db, club, "Bo", number=2)
        recent = await person(db, club, "Cai", number=3)
        await buy(db, club, week, 250, T0 - 7 * DAY - HOUR)
        await buy(db, club, came_back, 100, T0 - 7 * DAY - HOUR)
        await buy(db, club, came_back, 100, T0 - 2 * DAY)
        await buy(db, club, recent, 100, T0 - 3 * DAY)
        assert await plan(db, club) == {"after_purchase": 1}
        gateway = await send(db)
        # The catalog's wording (its owner may reword it), the club's name first.
        wording = locales.render(
            "journey.after_purchase", "nb", first_name="Ann", points="250", club="Torshov Sport"
        )
        assert gateway.to(week) == ["Torshov Sport: " + wording + NB]
        assert list(gateway.per_number()) == [week]
        assert await plan(db, club, T0 + HOUR) == {"after_purchase": 0}
        # Five days later Bo's latest purchase and Cai's are a week old: they are thanked now.
        later = T0 + 5 * DAY + HOUR
        assert await plan(db, club, later) == {"after_purchase": 2}
        assert sorted((await send(db, later)).per_number()) == [came_back, recent]

    async def test_winback_after_six_months_without_a_purchase(self, db, club):
        await journey(db, club, "winback")
        gone = await person(db, club, "Ann", number=1)
        regular = await person(db, club, "Bo", number=2)
        await buy(db, club, gone, 100, T0 - 181 * DAY)
        await buy(db, club, regular, 100, T0 - 181 * DAY)
        await buy(db, club, regular, 100, T0 - 20 * DAY)
        assert await plan(db, club) == {"winback": 1}
        gateway = await send(db)
        assert gateway.to(gone) == [
            "Torshov Sport: "
            "Hei Ann! Vi savner deg i Torshov Sport. Kom innom og se hva som er nytt!" + NB
        ]
        assert gateway.to(regular) == []
        assert await plan(db, club, T0 + DAY) == {"winback": 0}


class TestTiers:
    async def test_close_to_the_next_tier(self, db, club):
        """The default ladder: Sølv at 2,000 points, Gull at 5,000; close is within 20 %."""
        await journey(db, club, "near_tier")
        close = await person(db, club, "Ann", number=1)
        far = await person(db, club, "Bo", number=2)
        silver = await person(db, club, "Cai", number=3)
        await buy(db, club, close, 1700, T0 - 10 * DAY)
        await buy(db, club, far, 1000, T0 - 10 * DAY)
        await buy(db, club, silver, 4500, T0 - 10 * DAY)
        assert await plan(db, club) == {"near_tier": 2}
        gateway = await send(db)
        assert gateway.to(close) == [
            "Torshov Sport: Hei Ann! Bare 300 poeng til, så er du Sølv i Torshov Sport." + NB
        ]
        assert gateway.to(silver) == [
            "Torshov Sport: Hei Cai! Bare 500 poeng til, så er du Gull i Torshov Sport." + NB
        ]
        assert gateway.to(far) == []
        assert await plan(db, club, T0 + DAY) == {"near_tier": 0}

    async def test_a_tier_reached_is_congratulated_once_per_tier(self, db, club):
        await journey(db, club, "tier_reached")
        climber = await person(db, club, "Ann", number=1)
        bronze = await person(db, club, "Bo", number=2)
        long_ago = await person(db, club, "Cai", number=3)
        await buy(db, club, climber, 2500, T0 - DAY)
        await buy(db, club, bronze, 100, T0 - DAY)
        await buy(db, club, long_ago, 2500, T0 - 200 * DAY)  # Sølv since before the journey
        assert await plan(db, club) == {"tier_reached": 1}
        gateway = await send(db)
        assert gateway.to(climber) == [
            "Torshov Sport: "
            "Gratulerer, Ann! Du er nå Sølv i Torshov Sport. Send POENG for å se fordelene." + NB
        ]
        assert list(gateway.per_number()) == [climber]
        assert await plan(db, club, T0 + HOUR) == {"tier_reached": 0}
        await buy(db, club, climber, 3000, T0 + HOUR)
        assert await plan(db, club, T0 + 2 * HOUR) == {"tier_reached": 1}
        assert (await send(db, T0 + 2 * HOUR)).to(climber) == [
            "Torshov Sport: "
            "Gratulerer, Ann! Du er nå Gull i Torshov Sport. Send POENG for å se fordelene." + NB
        ]


class TestGuardRails:
    async def test_no_consent_a_flagged_number_or_a_full_cap_gets_nothing(self, db, club):
        joined = {"joined_at": T0 - 30 * HOUR}
        capped = await person(db, club, "Cap", number=1, **joined)
        earlier = T0 - 5 * DAY
        await run(db, lambda s: setattr(s.get(Program, club), "marketing_per_month", 1))
        first = await broadcast(db, club, now=earlier, send_at=earlier)
        await plan_broadcast(db, first, now=earlier)
        assert len((await send(db, earlier)).sent) == 1
        await journey(db, club, "welcome")
        ok = await person(db, club, "Ann", number=2, **joined)
        await person(db, club, "Bo", number=3, status="stopped", **joined)
        await person(db, club, "Cai", number=4, undeliverable_at=T0 - DAY, **joined)
        assert await plan(db, club) == {"welcome": 1}
        gateway = await send(db)
        assert list(gateway.per_number()) == [ok]
        assert gateway.to(capped) == []

    async def test_the_control_group_is_held_out_and_recorded(self, db, club):
        journey_id = await journey(db, club, "welcome", control_percent=20)
        await add_members(db, club, 300, joined_at=T0 - 30 * HOUR)
        assert await plan(db, club) == {"welcome": 300}
        held = [row for row in await outbox(db, journey_id) if row.status == "held_out"]
        assert 30 <= len(held) <= 90  # 20 % of 300, within a generous tolerance
        gateway = await send(db)
        assert len(gateway.sent) == 300 - len(held)
        assert not {row.to_number for row in held} & set(gateway.per_number())

    async def test_a_paused_journey_plans_nothing_and_what_it_planned_is_not_sent(self, db, club):
        await journey(db, club, "welcome", active=False)
        phone = await person(db, club, "Ann", number=1, joined_at=T0 - 30 * HOUR)
        assert await plan(db, club) == {}
        assert (await send(db)).sent == []

        def toggle(active: bool):
            return lambda s: journeys.set_active(s, club, "welcome", active)

        await run(db, toggle(True))
        assert await plan(db, club) == {"welcome": 1}
        await run(db, toggle(False))
        assert (await send(db)).to(phone) == []
        await run(db, toggle(True))
        assert await plan(db, club, T0 + HOUR) == {"welcome": 0}


class TestPlanning:
    async def test_chunks_plan_each_member_of_each_club_once(self, db, club):
        """Chunks are id ranges that skip to the club's next member; each is a transaction."""
        other = await create_club(db, numbers=["2021"], name="Sagene Sykkel")
        joined = {"joined_at": T0 - 30 * HOUR}
        ours = await add_members(db, club, 30, **joined)
        await add_members(db, other, 200, start=1000, **joined)
        ours += await add_members(db, club, 30, start=2000, **joined)
        await journey(db, club, "welcome")

        async def in_chunks(size: int) -> int:
            written, after = 0, 0
            while True:
                step = await run(
                    db,
                    lambda s, after=after: journeys.plan_chunk(
                        s, s.get(Program, club), T0, after, chunk=size
                    ),
                )
                written += step.rows.get("welcome", 0)
                if step.done:
                    return written
                after = step.through

        assert await in_chunks(4) == 60
        assert await in_chunks(7) == 0
        gateway = await send(db)
        assert sorted(gateway.per_number()) == sorted(ours)
        # The job plans every club with an active journey, and reports each.
        await journey(db, other, "birthday")
        assert await job.run(db, at(T0 + HOUR)) == {
            club: {"welcome": 0},
            other: {"birthday": 0},
        }

    @pytest.mark.parametrize(
        ("chunk", "took", "expected"),
        [
            (journeys.PLAN_CHUNK, 0.01, 2 * journeys.PLAN_CHUNK),  # fast: at most doubled
            (journeys.PLAN_CHUNK, job.CHUNK_SECONDS, journeys.PLAN_CHUNK),
            (journeys.PLAN_CHUNK, 4 * job.CHUNK_SECONDS, journeys.PLAN_CHUNK // 4),
            (journeys.PLAN_CHUNK, 60.0, journeys.PLAN_CHUNK // 5),  # a stalled writer: a floor
            (job.MAX_CHUNK, 0.0, job.MAX_CHUNK),
        ],
    )
    def test_a_chunk_is_sized_to_hold_the_writer_briefly(self, chunk, took, expected):
        assert job.next_chunk(chunk, took) == expected

    def test_postgresql_chunks_never_shrink_below_the_default(self):
        slow = job.next_chunk(journeys.PLAN_CHUNK, 60.0, job.PG_CHUNK_SECONDS)
        assert slow == journeys.PLAN_CHUNK
        fast = job.next_chunk(journeys.PLAN_CHUNK, 0.1, job.PG_CHUNK_SECONDS)
        assert fast == 2 * journeys.PLAN_CHUNK


BAD_SETUPS = [
    ({"trigger": "anniversary"}, "trigger"),
    ({"trigger": "winback", "settings": {"days": 0}}, "settings.days"),
    ({"trigger": "winback", "settings": {"days": True}}, "settings.days"),
    ({"trigger": "birthday", "settings": {"days": 3}}, "settings.days"),
    ({"trigger": "welcome", "texts": {"nb": "Går ut {expiry_date}"}}, "texts.nb"),
    ({"trigger": "welcome", "texts": {"nb": "Kode {coupon_code}"}}, "texts"),
    ({"trigger": "welcome", "control_percent": 80}, "control"),
]


class TestSetup:
    async def test_bad_settings_are_refused_naming_what_is_wrong(self, db, club):
        # One table, one database: each case is a refused create, so nothing carries over.
        for options, field in BAD_SETUPS:
            with pytest.raises(InvalidInput) as caught:
                await journey(db, club, **options)
            assert caught.value.field == field, options
        assert await run(db, lambda s: journeys.all_of(s, club)) == []

    async def test_one_journey_per_trigger_with_its_own_placeholders(self, db, club):
        expiring = await journey(
            db, club, "expiring", texts={"nb": "{expiring_points} poeng går ut {expiry_date}"}
        )
        await journey(db, club, "near_tier", texts={"nb": "{points_to_next} til {next_tier}"})
        with pytest.raises(Conflict):
            await journey(db, club, "expiring")
        with pytest.raises(NotFound):
            await journey(db, club, "welcome", coupon="nothing")
        listed = await run(db, lambda s: [j.trigger for j in journeys.all_of(s, club)])
        assert listed == ["expiring", "near_tier"]
        # A journey is no broadcast: broadcast planning and cancelling leave it alone.
        assert expiring not in await run(db, lambda s: campaigns.due_for_planning(s, T0))
        with pytest.raises(Conflict):
            await run(db, lambda s: campaigns.cancel(s, club, expiring, T0))
