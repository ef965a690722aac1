"""Enrolment at the till as the reports and the rules see it: the store of the till's key, and
only a mobile number of its country."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import reports
from store.database import Database
from store.models import Member, OutboxMessage, Program
from tests.api.conftest import Till, create_key


async def joined_per_store(db: Database, club: int) -> dict[str | None, int]:
    """The report's sign-ups per store over the last 30 days."""

    def work(session: Session) -> dict[str | None, int]:
        program = session.get(Program, club)
        assert program is not None
        period = reports.last_days(program, dt.datetime.now(dt.UTC))
        figures = reports.member_figures(session, program, period)
        return {row.store: row.joined for row in figures.new_by_store}

    return await db.run(work)


async def store_of(db: Database, member_id: int) -> str | None:
    return await db.run(lambda session: session.get(Member, member_id).store)


class TestStore:
    async def test_a_member_enrolled_at_a_store_s_till_belongs_to_that_store(
        self, till: Till, db: Database, club: int
    ) -> None:
        """The `till` fixture's key is bound to oslo-1 (`klubb apikey create --store oslo-1`)."""
        answer = await till.enrol()
        assert answer.status == 201, answer.body
        assert await store_of(db, answer.body["id"]) == "oslo-1"
        assert await joined_per_store(db, club) == {"oslo-1": 1}

    async def test_joining_again_elsewhere_keeps_the_first_store(
        self, till: Till, client: TestClient, db: Database, club: int
    ) -> None:
        first: dict[str, Any] = (await till.enrol()).body
        # They texted STOP (as members.set_status records it), then join again at another till.
        await db.run(lambda s: setattr(s.get(Member, first["id"]), "status", "stopped"))
        bergen = Till(client, await create_key(db, club, name="till-2", store="bergen-1"))
        again = await bergen.enrol()
        assert again.status == 201, again.body
        assert again.body["id"] == first["id"]
        assert await store_of(db, first["id"]) == "oslo-1"

    async def test_a_key_with_no_store_leaves_the_member_without_one(
        self, client: TestClient, db: Database, club: int
    ) -> None:
        web_shop = Till(client, await create_key(db, club, name="web"))
        answer = await web_shop.enrol()
        assert answer.status == 201, answer.body
        assert await store_of(db, answer.body["id"]) is None
        assert await joined_per_store(db, club) == {None: 1}


class TestMobileNumber:
    @pytest.mark.parametrize(
        ("written", "says"),
        [
            ("12345", "not a phone number"),  # possible by its length in Norway, no one's
            ("+47 12345", "not a phone number"),
            ("22 33 44 55", "not a mobile number: no SMS reaches it"),  # an Oslo landline
        ],
    )
    async def test_a_number_no_sms_reaches_is_refused_and_makes_no_member(
        self, till: Till, db: Database, written: str, says: str
    ) -> None:
        answer = await till.enrol(written)
        assert answer.status == 422, answer.body
        assert (answer.body["field"], answer.body["error"]) == ("phone", says)
        assert await db.run(lambda s: s.scalar(select(func.count()).select_from(Member))) == 0
        assert (
            await db.run(lambda s: s.scalar(select(func.count()).select_from(OutboxMessage))) == 0
        )

    @pytest.mark.parametrize(
        ("written", "stored"),
        [("912 34 567", "+4791234567"), ("+45 41 23 45 67", "+4541234567")],
    )
    async def test_a_mobile_number_joins(self, till: Till, written: str, stored: str) -> None:
        """Denmark's plan doesn't tell mobiles from landlines: fixed-line-or-mobile joins."""
        answer = await till.enrol(written)
        assert answer.status == 201, answer.body
        assert answer.body["phone"] == stored
