"""A journey's texts, coupon and control group as outreach.journeys keeps them: only the club's
own texts are stored, each language without one speaks the catalog's wording when a message is
written; the coupon and the control group are checked and set by `update`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

import locales
from store.clubs import programs
from store.database import Database
from store.errors import InvalidInput, NotFound
from store.loyalty import coupons
from store.models import Campaign, CouponTemplate, Program
from store.outreach import campaigns, journeys
from tests.conftest import create_club

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
VALUES = {
    "first_name": "Kari",
    "club": "Torshov Sport",
    "points": "1 250",
    "tier": "",
    "coupon_code": "ABCD-2345",
}


def _program(session: Session, club: int) -> Program:
    program = programs.get(session, club)
    assert program is not None
    return program


def _template(session: Session, club: int, key: str) -> CouponTemplate:
    return coupons.create_template(
        session,
        _program(session, club),
        key=key,
        kind=coupons.CAMPAIGN,
        benefit={"nb": "20 % rabatt", "en": "20% off"},
        valid_days=14,
        discount_percent=20,
    )


def _update(club: int, **changes: Any) -> Any:
    def work(session: Session) -> dict[str, Any]:
        journey = journeys.update(session, _program(session, club), "winback", now=NOW, **changes)
        template = (
            session.get(CouponTemplate, journey.coupon_template_id)
            if journey.coupon_template_id
            else None
        )
        return {
            "texts": journey.texts,
            "coupon": template.key if template else None,
            "control": journey.control_percent,
        }

    return work


class TestTexts:
    async def test_only_the_owners_texts_are_stored(self, db: Database) -> None:
        club = await create_club(db)
        saved = await db.run(_update(club, texts={"nb": "Hei {first_name}!", "sv": " ", "en": ""}))
        assert saved["texts"] == {"nb": "Hei {first_name}!"}
        cleared = await db.run(_update(club, texts={"nb": "", "sv": "", "en": ""}))
        assert cleared["texts"] is None

    def test_a_language_without_an_own_text_speaks_the_catalogs_wording(self) -> None:
        journey = Campaign(trigger="winback", texts={"nb": "Hei {first_name}!"})
        assert journeys.text_for(journey, "nb", VALUES) == "Hei Kari!"
        for language in ("sv", "en"):
            assert journeys.text_for(journey, language, VALUES) == locales.render(
                "journey.winback", language, **VALUES
            )

    def test_the_catalogs_wording_gets_the_coupon_line_an_own_text_does_not(self) -> None:
        journey = Campaign(
            trigger="winback", texts={"nb": "Kode {coupon_code}"}, coupon_template_id=1
        )
        assert journeys.text_for(journey, "nb", VALUES) == "Kode ABCD-2345"
        assert journeys.text_for(journey, "en", VALUES).endswith("\nCoupon code: ABCD-2345")

    async def test_the_sample_and_its_size_follow_the_text_each_language_gets(
        self, db: Database
    ) -> None:
        """What the admin and `klubb journey` size in SMS: two for the long Norwegian text,
        one for the catalog's English."""
        club = await create_club(db)
        own = "Hei {first_name}! " + "Lang tekst. " * 15

        def work(session: Session) -> dict[str, str]:
            program = _program(session, club)
            journey = journeys.update(session, program, "winback", now=NOW, texts={"nb": own})
            return {
                language: journeys.sample_text(session, program, journey, language, NOW)
                for language in locales.LANGUAGES
            }

        samples = await db.run(work)
        assert samples["nb"].startswith("Torshov Sport: Hei Kari! Lang tekst.")
        assert locales.segments(samples["nb"]).segments == 2
        assert samples["en"] == campaigns.compose(
            locales.render("journey.winback", "en", first_name="Kate", club="Torshov Sport"),
            "en",
            "Torshov Sport",
        )
        assert samples["en"].startswith("Torshov Sport: Hi Kate!")
        assert locales.segments(samples["en"]).segments == 1

    async def test_copied_catalog_wording_is_dropped_when_the_coupon_changes(
        self, db: Database
    ) -> None:
        """A journey saved before only own texts were kept holds the catalog's wording in the
        languages left empty; giving it a coupon must not freeze that wording without the
        coupon's line."""
        club = await create_club(db)

        def legacy(session: Session) -> None:
            _template(session, club, "back")
            journey = journeys.create(session, _program(session, club), trigger="winback", now=NOW)
            journey.texts = {
                "nb": "Hei {first_name}!",
                "en": journeys.catalog_wording("winback", "en"),
            }

        await db.run(legacy)
        saved = await db.run(_update(club, coupon="back"))
        assert saved == {"texts": {"nb": "Hei {first_name}!"}, "coupon": "back", "control": 0}


class TestCouponAndControl:
    async def test_set_kept_and_taken_away(self, db: Database) -> None:
        club = await create_club(db)
        await db.run(lambda s: _template(s, club, "back"))
        assert await db.run(_update(club, coupon="back", control_percent=15)) == {
            "texts": None,
            "coupon": "back",
            "control": 15,
        }
        # Left out, they stay as they are.
        assert (await db.run(_update(club, active=True)))["coupon"] == "back"
        taken = await db.run(_update(club, coupon=journeys.NO_COUPON, control_percent=0))
        assert (taken["coupon"], taken["control"]) == (None, 0)

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"control_percent": campaigns.MAX_CONTROL + 1}, "control"),
            ({"control_percent": -1}, "control"),
            ({"control_percent": True}, "control"),
            ({"texts": {"nb": "Kode {coupon_code}"}}, "texts"),
        ],
    )
    async def test_bad_input_is_refused_and_nothing_changes(
        self, db: Database, changes: dict, field: str
    ) -> None:
        club = await create_club(db)
        before = await db.run(_update(club, control_percent=5))
        with pytest.raises(InvalidInput) as refused:
            await db.run(_update(club, **changes))
        assert refused.value.field == field
        assert await db.run(_update(club)) == before

    async def test_another_clubs_or_a_retired_template_is_not_found(self, db: Database) -> None:
        club = await create_club(db)
        other = await create_club(db, name="Kafé Kari", numbers=["3030"])

        def templates(session: Session) -> None:
            _template(session, other, "theirs")
            _template(session, club, "retired").active = False

        await db.run(templates)
        for key in ("theirs", "retired", "nothing"):
            with pytest.raises(NotFound):
                await db.run(_update(club, coupon=key))
        assert await db.run(lambda s: journeys.all_of(s, club)) == []
