"""The catalogue's later journeys end to end (issue 17): a reward coming up, milestones, the
member day and a gift received. Set up with the store's own functions, planned by the
scheduler's journeys job at a fixed moment (run twice: once per occasion), sent by the sender
through the fake gateway; the guard rails (consent, cap, quiet hours) applied."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import locales
from store.errors import InvalidInput, NotFound
from store.loyalty import coupons, rewards
from store.models import Coupon, Member, Program
from store.outreach import journeys
from tests.scheduler.campaign_helpers import T0, add_members, broadcast, run
from tests.scheduler.campaign_helpers import plan as plan_broadcast
from tests.scheduler.test_journeys import NB, buy, journey, outbox, person, plan, send

HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
OSLO = ZoneInfo("Europe/Oslo")
CLUB = "Torshov Sport"


def oslo(*parts: int) -> dt.datetime:
    """A moment on the club's clock (Europe/Oslo)."""
    return dt.datetime(*parts, tzinfo=OSLO)  # type: ignore[misc]


def catalog(trigger: str, language: str = "nb", **values: Any) -> str:
    """The SMS the catalog's wording makes: the club's name first, the opt-out line last."""
    text = locales.render(f"journey.{trigger}", language, club=CLUB, **values)
    return f"{CLUB}: {text}" + NB


async def template(db, club: int, key: str, **options: Any) -> int:
    """A coupon template of the club; returns its id."""

    def work(session) -> int:
        settings: dict[str, Any] = {
            "kind": coupons.CAMPAIGN,
            "benefit": {"nb": f"{key} gratis", "en": f"free {key}"},
            "valid_days": 30,
            **options,
        }
        return coupons.create_template(session, session.get(Program, club), key=key, **settings).id

    return await run(db, work)


async def member_id(db, phone: str) -> int:
    return await run(db, lambda s: s.scalar(select(Member.id).where(Member.phone == phone)))


async def give(db, club: int, phone: str, key: str, now: dt.datetime = T0) -> Coupon:
    ident = await member_id(db, phone)

    def work(session) -> Coupon:
        program = session.get(Program, club)
        return coupons.give(session, program, ident, key, "owner@example.com", now).coupon

    return await run(db, work)


class TestComingReward:
    async def test_within_the_setting_of_the_nearest_reward_above_the_balance(self, db, club):
        await template(db, club, "kaffe", kind=coupons.REWARD, points_cost=500)
        await template(db, club, "jakke", kind=coupons.REWARD, points_cost=2000)
        await journey(db, club, "coming_reward")
        close = await person(db, club, "Ann", number=1)
        far = await person(db, club, "Bo", number=2)
        jacket = await person(db, club, "Cai", number=3)
        between = await person(db, club, "Dag", number=4)
        for phone, kroner in ((close, 420), (far, 300), (jacket, 1950), (between, 600)):
            await buy(db, club, phone, kroner, T0 - 5 * DAY)
        assert await plan(db, club) == {"coming_reward": 2}
        gateway = await send(db)
        assert gateway.to(close) == [
            "Torshov Sport: Hei Ann! Bare 80 poeng til, så kan du hente kaffe gratis i Torshov"
            " Sport. Send KUPONGER for å se mer." + NB
        ]
        assert gateway.to(jacket) == [
            catalog("coming_reward", first_name="Cai", points_to_reward=50, reward="jakke gratis")
        ]
        assert sorted(gateway.per_number()) == sorted([close, jacket])
        # Once per reward and crossing: not again the next run, nor the next day.
        assert await plan(db, club) == {"coming_reward": 0}
        assert await plan(db, club, T0 + DAY) == {"coming_reward": 0}

    async def test_after_a_claim_nearing_a_reward_again_is_news_again(self, db, club):
        coffee = await template(db, club, "kaffe", kind=coupons.REWARD, points_cost=500)
        journey_id = await journey(db, club, "coming_reward")
        phone = await person(db, club, "Ann", number=1)
        await buy(db, club, phone, 450, T0 - 5 * DAY)
        assert await plan(db, club) == {"coming_reward": 1}
        await buy(db, club, phone, 100, T0 + HOUR)  # 550: past the only reward
        assert await plan(db, club, T0 + 2 * HOUR) == {"coming_reward": 0}
        ident = await member_id(db, phone)

        def claim(session) -> None:
            rewards.claim(session, session.get(Program, club), ident, coffee, T0 + 3 * HOUR)

        await run(db, claim)  # 50 left
        assert await plan(db, club, T0 + 4 * HOUR) == {"coming_reward": 0}
        await buy(db, club, phone, 400, T0 + 5 * HOUR)  # 450 again: a new crossing
        assert await plan(db, club, T0 + 6 * HOUR) == {"coming_reward": 1}
        assert sorted(row.occasion for row in await outbox(db, journey_id)) == [
            f"{coffee}:0",
            f"{coffee}:1",
        ]
        gateway = await send(db, T0 + 6 * HOUR)
        assert gateway.to(phone)[-1].startswith("Torshov Sport: Hei Ann! Bare 50 poeng til")

    async def test_the_distance_can_be_set_and_a_club_without_rewards_sends_none(self, db, club):
        await journey(db, club, "coming_reward", settings={"points": 300})
        phone = await person(db, club, "Bo", number=1)
        await buy(db, club, phone, 250, T0 - 5 * DAY)
        assert await plan(db, club) == {"coming_reward": 0}  # no reward to come
        await template(db, club, "kaffe", kind=coupons.REWARD, points_cost=500)
        assert await plan(db, club, T0 + HOUR) == {"coming_reward": 1}


class TestMilestones:
    async def test_points_earned_in_all_reached_lately_once(self, db, club):
        await journey(db, club, "milestone_points", settings={"at": 1000})
        lately = await person(db, club, "Ann", number=1)
        long_ago = await person(db, club, "Bo", number=2)
        short = await person(db, club, "Cai", number=3)
        await buy(db, club, lately, 600, T0 - 40 * DAY)
        await buy(db, club, lately, 500, T0 - 2 * DAY)
        await buy(db, club, long_ago, 1200, T0 - 60 * DAY)  # passed before the lookback
        await buy(db, club, short, 900, T0 - 2 * DAY)
        assert await plan(db, club) == {"milestone_points": 1}
        gateway = await send(db)
        assert gateway.to(lately) == [catalog("milestone_points", first_name="Ann", milestone=1000)]
        assert gateway.to(lately)[0].startswith("Torshov Sport: Gratulerer, Ann! Du har nå tjent")
        assert list(gateway.per_number()) == [lately]
        assert await plan(db, club) == {"milestone_points": 0}
        await buy(db, club, lately, 5000, T0 + HOUR)  # far past it: still the same milestone
        assert await plan(db, club, T0 + 2 * HOUR) == {"milestone_points": 0}

    async def test_the_nth_purchase_lately_once(self, db, club):
        journey_id = await journey(db, club, "milestone_purchases", settings={"at": 3})
        third = await person(db, club, "Ann", number=1)
        long_ago = await person(db, club, "Bo", number=2)
        two = await person(db, club, "Cai", number=3)
        fourth = await person(db, club, "Dag", number=4)
        for days in (50, 20, 1):
            await buy(db, club, third, 10, T0 - days * DAY)
        for days in (90, 80, 70):
            await buy(db, club, long_ago, 10, T0 - days * DAY)
        for days in (10, 1):
            await buy(db, club, two, 10, T0 - days * DAY)
        for days in (90, 80, 40, 1):
            await buy(db, club, fourth, 10, T0 - days * DAY)
        assert await plan(db, club) == {"milestone_purchases": 1}
        assert (await send(db)).to(third) == [
            catalog("milestone_purchases", first_name="Ann", milestone=3)
        ]
        assert await plan(db, club, T0 + HOUR) == {"milestone_purchases": 0}
        await buy(db, club, two, 10, T0 + HOUR)
        assert await plan(db, club, T0 + 2 * HOUR) == {"milestone_purchases": 1}
        assert sorted(row.occasion for row in await outbox(db, journey_id)) == ["3", "3"]

    async def test_months_of_membership_on_the_clubs_day_catching_up_a_week(self, db, club):
        await journey(db, club, "milestone_months")  # 12 months
        today = await person(db, club, "Ann", number=1, joined_at=oslo(2025, 11, 24, 8))
        late = await person(db, club, "Bo", number=2, joined_at=oslo(2025, 11, 20, 18))
        too_late = await person(db, club, "Cai", number=3, joined_at=oslo(2025, 11, 10, 12))
        tomorrow = await person(db, club, "Dag", number=4, joined_at=oslo(2025, 11, 25, 0, 30))
        assert await plan(db, club) == {"milestone_months": 2}
        gateway = await send(db)
        assert gateway.to(today) == [
            "Torshov Sport: Hei Ann! Du har vært medlem i Torshov Sport i 12 måneder. Takk for"
            " at du er med!" + NB
        ]
        assert sorted(gateway.per_number()) == sorted([today, late])
        assert gateway.to(too_late) == []
        assert await plan(db, club, T0 + HOUR) == {"milestone_months": 0}
        assert await plan(db, club, T0 + DAY) == {"milestone_months": 1}
        assert list((await send(db, T0 + DAY)).per_number()) == [tomorrow]

    async def test_the_three_kinds_run_side_by_side(self, db, club):
        await journey(db, club, "milestone_points", settings={"at": 100})
        await journey(db, club, "milestone_purchases", settings={"at": 2})
        await journey(db, club, "milestone_months", settings={"at": 6})
        phone = await person(db, club, "Ann", number=1, joined_at=oslo(2026, 5, 24, 12))
        await buy(db, club, phone, 50, T0 - 3 * DAY)
        await buy(db, club, phone, 60, T0 - DAY)
        await run(db, lambda s: setattr(s.get(Program, club), "marketing_per_month", 5))
        assert await plan(db, club) == {
            "milestone_points": 1,
            "milestone_purchases": 1,
            "milestone_months": 1,
        }
        assert len((await send(db)).to(phone)) == 3


class TestMemberDay:
    async def test_the_day_of_joining_in_the_clubs_zone_every_later_year(self, db, club):
        journey_id = await journey(db, club, "member_day")
        two_years = await person(db, club, "Ann", number=1, joined_at=oslo(2024, 11, 24, 8))
        # 23:30 UTC on the 23rd is 00:30 on the 24th in Oslo, and the other way round.
        after_midnight = await person(
            db, club, "Bo", number=2, joined_at=dt.datetime(2024, 11, 23, 23, 30, tzinfo=dt.UTC)
        )
        await person(
            db, club, "Cai", number=3, joined_at=dt.datetime(2024, 11, 24, 23, 30, tzinfo=dt.UTC)
        )
        await person(db, club, "Dag", number=4, joined_at=oslo(2026, 11, 24, 1))  # this year
        night = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)  # 00:30 on the 24th in Oslo
        assert await plan(db, club, night) == {"member_day": 2}
        assert (await send(db, night)).sent == []  # quiet hours: held until morning
        gateway = await send(db)
        assert gateway.to(two_years) == [
            "Torshov Sport: Gratulerer med medlemsdagen, Ann! I dag har du vært medlem i Torshov"
            " Sport i 2 år. Takk for at du er med!" + NB
        ]
        assert sorted(gateway.per_number()) == sorted([two_years, after_midnight])
        assert await plan(db, club) == {"member_day": 0}
        next_year = T0 + 365 * DAY
        assert await plan(db, club, next_year) == {"member_day": 3}  # Dag's first member day
        assert sorted({row.occasion for row in await outbox(db, journey_id)}) == ["2026", "2027"]

    async def test_29_february_on_the_28th_in_other_years(self, db, club):
        await journey(db, club, "member_day")
        phone = await person(db, club, "Ann", number=1, joined_at=oslo(2024, 2, 29, 12))
        feb28 = await person(db, club, "Bo", number=2, joined_at=oslo(2025, 2, 28, 12))
        for day, greeted in [
            (dt.datetime(2027, 2, 28, 10, tzinfo=dt.UTC), [phone, feb28]),
            (dt.datetime(2028, 2, 28, 10, tzinfo=dt.UTC), [feb28]),  # a leap year: wait a day
            (dt.datetime(2028, 2, 29, 10, tzinfo=dt.UTC), [phone]),
        ]:
            await plan(db, club, day)
            assert sorted((await send(db, day)).per_number()) == sorted(greeted), day

    async def test_the_gift_coupon_comes_with_it(self, db, club):
        await template(db, club, "kake")
        await journey(db, club, "member_day", coupon="kake")
        phone = await person(db, club, "Ann", number=1, joined_at=oslo(2025, 11, 24, 8))
        await plan(db, club)
        [body] = (await send(db)).to(phone)
        [coupon] = await run(db, lambda s: list(s.scalars(select(Coupon))))
        assert body.endswith(f"\nKupongkode: {coupons.display(coupon.code)}" + NB)
        assert " i 1 år." in body


class TestGiftReceived:
    async def test_a_gift_from_staff_is_announced_once(self, db, club):
        await template(db, club, "kaffe")
        await journey(db, club, "gift_received")
        phone = await person(db, club, "Ann", number=1)
        other = await person(db, club, "Bo", number=2)
        gift = await give(db, club, phone, "kaffe", T0 - HOUR)
        assert coupons.given_by(gift) == "owner@example.com"
        assert await plan(db, club) == {"gift_received": 1}
        gateway = await send(db)
        assert gateway.to(phone) == [
            f"Torshov Sport: Hei Ann! Torshov Sport har gitt deg en gave: kaffe gratis. Kode"
            f" {coupons.display(gift.code)}, gjelder t.o.m. 24.12.2026." + NB
        ]
        assert gateway.to(other) == []
        assert await plan(db, club, T0 + HOUR) == {"gift_received": 0}
        second = await give(db, club, phone, "kaffe", T0 + HOUR)
        assert await plan(db, club, T0 + 2 * HOUR) == {"gift_received": 1}
        [body] = (await send(db, T0 + 2 * HOUR)).to(phone)
        assert coupons.display(second.code) in body

    async def test_other_coupons_and_used_or_old_gifts_are_not_announced(self, db, club):
        await template(db, club, "kaffe")
        await journey(db, club, "gift_received")
        phone = await person(db, club, "Ann", number=1)
        used = await person(db, club, "Bo", number=2)
        old = await person(db, club, "Cai", number=3)
        ident = await member_id(db, phone)

        def not_a_gift(session) -> None:
            found = coupons.templates(session, club)[0]
            coupons.issue(session, club, ident, found, f"campaign:9:{ident}", T0 - HOUR)

        await run(db, not_a_gift)
        redeemed = await give(db, club, used, "kaffe", T0 - HOUR)
        await run(db, lambda s: coupons.redeem(s, club, redeemed.code, T0 - HOUR, by="kasse"))
        await give(db, club, old, "kaffe", T0 - 4 * DAY)  # past the 3 days' lookback
        assert await plan(db, club) == {"gift_received": 0}

    async def test_no_consent_no_sms_but_the_gift_stays(self, db, club):
        await template(db, club, "kaffe")
        await journey(db, club, "gift_received")
        phone = await person(db, club, "Ann", number=1, status="stopped")
        gift = await give(db, club, phone, "kaffe")
        assert await plan(db, club) == {"gift_received": 0}
        assert (await send(db)).sent == []
        held = await run(db, lambda s: coupons.find(s, club, gift.code))
        assert held is not None
        assert coupons.state(held.coupon, T0) == "valid"

    async def test_what_cannot_be_given_is_refused_naming_it(self, db, club):
        await template(db, club, "kaffe")
        retired = await template(db, club, "gammel")
        await run(db, lambda s: coupons.set_template_active(s, club, retired, active=False))
        phone = await person(db, club, "Ann", number=1)
        pending = await person(db, club, "Bo", number=2, status="pending", joined_at=None)
        with pytest.raises(NotFound) as caught:
            await give(db, club, phone, "gammel")
        assert caught.value.what == "coupon_template"
        with pytest.raises(NotFound):
            await give(db, club, phone, "nothing")
        with pytest.raises(InvalidInput) as refused:
            await give(db, club, pending, "kaffe")
        assert refused.value.field == "member"

        def elsewhere(session) -> None:
            coupons.give(session, session.get(Program, club), 999_999, "kaffe", "x", T0)

        with pytest.raises(NotFound):
            await run(db, elsewhere)


class TestGuardRails:
    async def test_a_full_cap_holds_the_catalogues_journeys_back(self, db, club):
        await template(db, club, "kaffe", kind=coupons.REWARD, points_cost=500)
        await run(db, lambda s: setattr(s.get(Program, club), "marketing_per_month", 1))
        capped = await person(db, club, "Cap", number=1, joined_at=oslo(2024, 11, 24, 8))
        earlier = T0 - 5 * DAY
        first = await broadcast(db, club, now=earlier, send_at=earlier)
        await plan_broadcast(db, first, now=earlier)
        assert len((await send(db, earlier)).sent) == 1
        for trigger in ("coming_reward", "member_day", "gift_received"):
            await journey(db, club, trigger)
        await buy(db, club, capped, 450, T0 - 2 * DAY)
        await give(db, club, capped, "kaffe")
        ok = await person(db, club, "Ann", number=2, joined_at=oslo(2024, 11, 24, 8))
        assert await plan(db, club) == {"gift_received": 0, "member_day": 1, "coming_reward": 0}
        gateway = await send(db)
        assert list(gateway.per_number()) == [ok]
        assert gateway.to(capped) == []

    async def test_the_control_group_is_held_out(self, db, club):
        journey_id = await journey(db, club, "member_day", control_percent=20)
        await add_members(db, club, 200, joined_at=oslo(2024, 11, 24, 8))
        assert await plan(db, club) == {"member_day": 200}
        held = [row for row in await outbox(db, journey_id) if row.status == "held_out"]
        assert 15 <= len(held) <= 70
        assert len((await send(db)).sent) == 200 - len(held)


BAD_SETUPS = [
    ({"trigger": "coming_reward", "settings": {"points": 0}}, "settings.points"),
    ({"trigger": "coming_reward", "settings": {"at": 5}}, "settings.at"),
    ({"trigger": "milestone_points", "settings": {"at": 1}}, "settings.at"),
    ({"trigger": "milestone_months", "settings": {"at": 1201}}, "settings.at"),
    (
        {"trigger": "milestone_purchases", "settings": {"lookback_days": 0}},
        "settings.lookback_days",
    ),
    ({"trigger": "member_day", "settings": {"days": 3}}, "settings.days"),
    ({"trigger": "coming_reward", "texts": {"nb": "Gave: {gift}"}}, "texts.nb"),
    ({"trigger": "member_day", "texts": {"en": "{milestone} months"}}, "texts.en"),
]


class TestSetup:
    async def test_bad_settings_are_refused_naming_what_is_wrong(self, db, club):
        for options, field in BAD_SETUPS:
            with pytest.raises(InvalidInput) as caught:
                await journey(db, club, **options)
            assert caught.value.field == field, options
        assert await run(db, lambda s: journeys.all_of(s, club)) == []

    async def test_each_takes_its_own_placeholders(self, db, club):
        own = {
            "coming_reward": "{points_to_reward} til {reward}",
            "milestone_points": "{milestone} poeng!",
            "member_day": "{years} år",
            "gift_received": "{gift} {gift_code} {gift_until}",
        }
        for trigger, text in own.items():
            await journey(db, club, trigger, texts={"nb": text})
        listed = await run(db, lambda s: [j.trigger for j in journeys.all_of(s, club)])
        assert listed == ["gift_received", "member_day", "milestone_points", "coming_reward"]
