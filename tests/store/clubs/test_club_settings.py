"""The store's functions behind the settings and journeys pages: a journey updated (set up on
first use), the club's numbers and wording checked before anything changes, questions edited
and reordered, a ladder edited in place, a key revoked by id."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from store.clubs import apikeys, programs
from store.database import Database
from store.errors import InvalidInput, InvalidSetting, NotFound
from store.loyalty import tiers
from store.models import Program
from store.outreach import campaigns, journeys
from tests.conftest import create_club

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _program(session: Session, club: int) -> Program:
    program = programs.get(session, club)
    assert program is not None
    return program


class TestJourneyUpdate:
    async def test_a_journey_is_set_up_off_on_first_update(self, db: Database) -> None:
        club = await create_club(db)

        def work(session: Session) -> tuple[str, dict, dict | None]:
            journey = journeys.update(
                session, _program(session, club), "winback", now=NOW, settings={"days": 90}
            )
            return journey.status, journeys.settings_of(journey), journey.texts

        assert await db.run(work) == (campaigns.PAUSED, {"days": 90, "lookback_days": 30}, None)

    async def test_texts_active_and_settings_change_together(self, db: Database) -> None:
        club = await create_club(db)

        def work(session: Session) -> Program:
            program = _program(session, club)
            journeys.create(session, program, trigger="expiring", now=NOW)
            journeys.update(
                session,
                program,
                "expiring",
                now=NOW,
                active=False,
                texts={"nb": "Hei {first_name}, {expiring_points} poeng går ut", "en": ""},
                settings={"days": 14},
            )
            return journeys.all_of(session, club)[0]

        journey = await db.run(work)
        assert journey.status == campaigns.PAUSED
        assert journeys.settings_of(journey)["days"] == 14
        assert journey.texts["nb"].startswith("Hei {first_name}")
        # Only the owner's text is kept: the empty language speaks the catalog's wording.
        assert journey.texts == {"nb": "Hei {first_name}, {expiring_points} poeng går ut"}
        assert journeys.own_texts(journey) == journey.texts

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"texts": {"nb": "Hei {frist_name}"}}, "texts.nb"),
            ({"texts": {"de": "Hallo"}}, "texts.de"),
            ({"settings": {"days": 0}}, "settings.days"),
            ({"settings": {"threshold": 5}}, "settings.threshold"),
            ({"settings": {"days": "7"}}, "settings.days"),
        ],
    )
    async def test_bad_input_is_refused_and_nothing_is_set_up(
        self, db: Database, change: dict, field: str
    ) -> None:
        club = await create_club(db)

        def work(session: Session) -> None:
            journeys.update(session, _program(session, club), "expiring", now=NOW, **change)

        with pytest.raises(InvalidInput) as refused:
            await db.run(work)
        assert refused.value.field == field
        assert await db.run(lambda s: journeys.all_of(s, club)) == []

    async def test_a_placeholder_of_another_trigger_is_refused(self, db: Database) -> None:
        club = await create_club(db)

        def work(session: Session) -> None:
            journeys.update(
                session,
                _program(session, club),
                "welcome",
                now=NOW,
                texts={"en": "{expiring_points} points go"},
            )

        with pytest.raises(InvalidInput):
            await db.run(work)


class TestClubSettings:
    @pytest.mark.parametrize(
        ("values", "fields"),
        [
            ({"name": " ", "contact": "x", "privacy_url": "https://a.no"}, {"name"}),
            ({"name": "A", "contact": "x", "privacy_url": "http://a.no"}, {"privacy_url"}),
            ({"name": "A", "contact": "", "privacy_url": "https://"}, {"contact", "privacy_url"}),
        ],
    )
    async def test_the_club_wording_is_checked_whole(
        self, db: Database, values: dict, fields: set
    ) -> None:
        club = await create_club(db)

        def work(session: Session) -> None:
            programs.update_club(session, _program(session, club), **values)

        with pytest.raises(programs.InvalidSettings) as refused:
            await db.run(work)
        assert set(refused.value.problems) == fields
        assert await db.run(lambda s: _program(s, club).name) == "Torshov Sport"

    async def test_a_new_club_is_checked_by_the_same_rule_and_its_country(
        self, db: Database
    ) -> None:
        """`klubb init` took any country and privacy page: a club is made by the admin's rule
        (check_club), and only in a country Klubb has a time zone and currency for."""
        with pytest.raises(programs.InvalidSettings) as refused:
            await create_club(db, country="ZZ", privacy_url="http://a.no", contact=" ")
        assert set(refused.value.problems) == {"country", "privacy_url", "contact"}
        assert refused.value.problems["country"] == "one of NO, SE, DK, FI, IS"
        assert await db.run(programs.all_programs) == []

    async def test_numbers_out_of_range_are_each_named(self, db: Database) -> None:
        club = await create_club(db)

        def work(session: Session) -> None:
            programs.update_numbers(
                session,
                _program(session, club),
                marketing_per_month=4,
                quiet_end=25,
                quiet_start=22,
            )

        with pytest.raises(programs.InvalidSettings) as refused:
            await db.run(work)
        assert set(refused.value.problems) == {"marketing_per_month", "quiet_end"}
        assert await db.run(lambda s: _program(s, club).quiet_start) == 20

    async def test_the_cap_is_set(self, db: Database) -> None:
        club = await create_club(db)
        await db.run(lambda s: programs.update_numbers(s, _program(s, club), marketing_per_month=1))
        assert await db.run(lambda s: _program(s, club).marketing_per_month) == 1


class TestQuestions:
    async def test_edit_and_move(self, db: Database) -> None:
        club = await create_club(db)

        def work(session: Session) -> list[str]:
            program = _program(session, club)
            added = programs.add_question(
                session, program, kind="text", prompt={"en": "Shoe size?"}
            )
            programs.edit_question(session, club, added.id, prompt={"en": "Your shoe size?"})
            programs.move_question(session, club, added.id, -1)
            programs.move_question(session, club, programs.questions(session, club)[0].id, -1)
            return [q.key for q in programs.questions(session, club)]

        assert await db.run(work) == ["first_name", "birthday", "shoe_size", "activities"]

    async def test_another_clubs_question_is_not_found(self, db: Database) -> None:
        club = await create_club(db)
        other = await create_club(db, name="Kari", numbers=["3030"])
        theirs = await db.run(lambda s: programs.questions(s, other)[0].id)
        with pytest.raises(NotFound):
            await db.run(lambda s: programs.move_question(s, club, theirs, 1))

    async def test_a_choice_question_needs_choices(self, db: Database) -> None:
        club = await create_club(db)
        with pytest.raises(InvalidSetting):
            await db.run(
                lambda s: programs.add_question(
                    s, _program(s, club), kind="choice", prompt={"en": "Which?"}, choices=[]
                )
            )


class TestLadderAndKeys:
    async def test_the_ladder_is_renamed_in_place(self, db: Database) -> None:
        club = await create_club(db)

        def work(session: Session) -> tuple[list[int], list[int]]:
            program = _program(session, club)
            ids = [t.id for t in tiers.ladder(session, club)]
            steps = [({"en": n}, t, d) for n, t, d in (("A", 0, 0), ("B", 100, 5), ("C", 900, 9))]
            tiers.edit_ladder(session, program, steps)
            return ids, [t.id for t in tiers.ladder(session, club)]

        before, after = await db.run(work)
        assert before == after

    async def test_a_key_is_revoked_by_id_in_its_own_club_only(self, db: Database) -> None:
        club = await create_club(db)
        other = await create_club(db, name="Kari", numbers=["3030"])

        def work(session: Session) -> None:
            key, secret = apikeys.create(session, club, name="till", now=NOW)
            with pytest.raises(NotFound):
                apikeys.revoke_id(session, other, key.id, NOW)
            assert apikeys.verify(session, secret) is not None
            apikeys.revoke_id(session, club, key.id, NOW)
            assert apikeys.verify(session, secret) is None

        await db.run(work)
