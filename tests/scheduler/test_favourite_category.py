"""The favourite category offer (issue 17): a broadcast whose {favourite_category} is each
recipient's most bought category of the last 12 months and whose coupon is the one mapped to it
(else the fallback), worked out when the message is written, for a batch in one statement."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

import locales
from store.errors import InvalidInput
from store.loyalty import coupons
from store.models import Coupon, CouponTemplate, Member, Program
from store.outreach import campaigns, sending
from tests.scheduler.campaign_helpers import T0, add_members, broadcast, plan, run
from tests.scheduler.test_cross_sell import buy
from tests.scheduler.test_journey_catalogue import template
from tests.scheduler.test_journeys import NB, person, send

DAY = dt.timedelta(days=1)
TEXT = {"nb": "Hei {first_name}! 20% på {favourite_category} denne uka. Kode: {coupon_code}"}


async def held(db) -> dict[int, str]:
    """Each coupon issued: its member and its template's key."""

    def work(session) -> dict[int, str]:
        found = session.execute(
            select(Coupon.member_id, CouponTemplate.key).join(
                CouponTemplate, CouponTemplate.id == Coupon.template_id
            )
        )
        return dict(found.all())

    return await run(db, work)


class TestFavouriteCategory:
    async def test_each_member_gets_their_category_and_its_coupon(self, db, club):
        for key in ("SKO20", "SKI10", "DEFAULT"):
            await template(db, club, key)
        ann = await person(db, club, "Ann", number=1)
        bo = await person(db, club, "Bo", number=2)
        cai = await person(db, club, "Cai", number=3)
        dag = await person(db, club, "Dag", number=4)
        eva = await person(db, club, "Eva", number=5)
        await buy(db, club, ann, T0 - 30 * DAY, ("sko", 900), ("ski", 100))
        await buy(db, club, ann, T0 - 20 * DAY, ("ski", 300))
        await buy(db, club, bo, T0 - 10 * DAY, ("ski", 4000), ("sko", 1000))
        await buy(db, club, cai, T0 - 5 * DAY, ("sykkel", 2000))  # no coupon of its own
        await buy(db, club, dag, T0 - 400 * DAY, ("sko", 9000))  # over 12 months ago
        # A tie: the category bought last.
        await buy(db, club, eva, T0 - 50 * DAY, ("sko", 500))
        await buy(db, club, eva, T0 - 40 * DAY, ("ski", 500))
        campaign_id = await broadcast(
            db,
            club,
            texts=TEXT,
            coupon="DEFAULT",
            favourite_coupons={"sko": "SKO20", "ski": "SKI10"},
        )
        assert await plan(db, campaign_id) == 5
        gateway = await send(db)

        def words(phone: str) -> str:
            [body] = gateway.to(phone)
            return body.split(" denne uka")[0].split("20% på ")[1]

        assert words(ann) == "sko"
        assert words(bo) == "ski"
        assert words(cai) == "sykkel"
        assert words(dag) == "favorittene dine"
        assert words(eva) == "ski"
        members = await run(db, lambda s: dict(s.execute(select(Member.phone, Member.id)).all()))
        assert await held(db) == {
            members[ann]: "SKO20",
            members[bo]: "SKI10",
            members[cai]: "DEFAULT",
            members[dag]: "DEFAULT",
            members[eva]: "SKI10",
        }
        [body] = gateway.to(ann)
        code = body.split("Kode: ")[1].split("\n")[0]
        found = await run(db, lambda s: coupons.find(s, club, code))
        assert found is not None
        assert body.endswith(NB)

    async def test_english_members_get_the_english_fallback_and_no_coupon_without_one(
        self, db, club
    ):
        amy = await person(db, club, "Amy", number=1, language="en")
        campaign_id = await broadcast(
            db, club, texts={"en": "Hi! New in {favourite_category} at {club}."}
        )
        await plan(db, campaign_id)
        [body] = (await send(db)).to(amy)
        assert body.startswith("Torshov Sport: Hi! New in your favourites at Torshov Sport.")
        assert await held(db) == {}
        assert locales.text("campaign.favourite.fallback", "sv") == "dina favoriter"

    async def test_the_preview_sizes_the_longest_category(self, db, club):
        await template(db, club, "SKO20")
        await add_members(db, club, 3)
        phone = await person(db, club, "Ann", number=9)
        long_name = "Langrennsutstyr for konkurranse og trening"  # 42 characters
        await buy(db, club, phone, T0 - DAY, (long_name, 100))
        text = "{favourite_category}! " + "x" * 90

        def draft(session) -> campaigns.Draft:
            return campaigns.try_broadcast(
                session,
                session.get(Program, club),
                now=T0,
                name="Fav",
                texts={"nb": text},
                segment=None,
                favourite_coupons={"sko": "SKO20"},
            )

        shown = await run(db, draft)
        assert long_name in shown.samples["nb"]
        assert shown.preview.languages[0].segments == locales.segments(shown.samples["nb"]).segments
        assert shown.preview.languages[0].segments == 2  # one segment with "sko"

    async def test_bad_options_are_refused_naming_them(self, db, club):
        await template(db, club, "SKO20")

        def create(**options: Any):
            def work(session) -> None:
                options.setdefault("texts", {"nb": "Hei {favourite_category}"})
                campaigns.create_broadcast(
                    session,
                    session.get(Program, club),
                    name="Fav",
                    segment=None,
                    now=T0,
                    **options,
                )

            return run(db, work)

        with pytest.raises(InvalidInput) as caught:
            await create(favourite_coupons={"sko": "NOPE"})
        assert caught.value.field == "favourite_coupons.sko"
        assert "NOPE" in caught.value.reason
        with pytest.raises(InvalidInput) as caught:
            await create(favourite_coupons={" ": "SKO20"})
        assert caught.value.field == "favourite_coupons"
        with pytest.raises(InvalidInput) as caught:
            await create(texts={"nb": "Hei {favorite_category}"}, favourite=True)
        assert caught.value.field == "texts.nb"
        assert "{favourite_category}" in caught.value.reason
        # {coupon_code} needs the fallback: a member of another category would get none.
        with pytest.raises(InvalidInput) as caught:
            await create(texts={"nb": "{coupon_code}"}, favourite_coupons={"sko": "SKO20"})
        assert caught.value.field == "texts"


async def test_a_claim_finds_the_favourites_in_one_statement_whatever_its_size(db, club):
    """No statement per message: claiming 12 favourite offers costs what claiming 3 does."""
    phones = await add_members(db, club, 15)
    for index, phone in enumerate(phones):
        await buy(db, club, phone, T0 - DAY, (f"kategori{index % 4}", 100 + index))
    campaign_id = await broadcast(db, club, texts={"nb": "Nytt i {favourite_category}!"})
    await plan(db, campaign_id)

    def statements_of_claim(session: Session, limit: int) -> int:
        seen: list[str] = []
        engine = session.get_bind()

        def count(*args: Any) -> None:
            seen.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            claimed = sending.claim(session, T0, limit)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(claimed) == limit
        assert all("Nytt i kategori" in c.body for c in claimed)
        return len(seen)

    small = await run(db, functools.partial(statements_of_claim, limit=3))
    large = await run(db, functools.partial(statements_of_claim, limit=12))
    assert small == large
