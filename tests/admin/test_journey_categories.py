"""The journeys page's cross-sell texts per category (issue 17), through the app on SQLite and
PostgreSQL: a category's texts added, edited and removed, the club's categories offered, bad
input named beside its field, owners only."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from store.database import Database
from store.loyalty import purchases
from store.loyalty.earning import Line
from store.members import members
from store.models import Program
from store.outreach import journeys
from tests.admin.conftest import OWNER, STAFF, Admin
from tests.admin.test_journeys import card, journeys_of

pytestmark = pytest.mark.usefixtures("cheap_argon2")
ADD = "/admin/journeys/cross_sell/categories"
TEXT = "Er du også interessert i skopuss til {category}?"


async def categories(db: Database, club: int) -> dict[str, dict[str, str]]:
    def read(session: Session) -> dict[str, dict[str, str]]:
        return journeys.category_texts(journeys._journey(session, club, "cross_sell"))

    return await db.run(read)


async def test_a_category_is_added_edited_and_removed(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(ADD, {"category": "sko", "text_nb": TEXT, "text_en": ""})
    assert response.status == 303
    assert response.headers["Location"].endswith("#journey-cross_sell-categories")
    assert await categories(db, club) == {"sko": {"nb": TEXT}}
    # Set up off; its other settings saved later keep the category's texts.
    assert (await journeys_of(db, club))["cross_sell"]["active"] is False
    saved = await admin.post(
        "/admin/journeys/cross_sell", {"active": "on", "setting_delay_days": "5"}
    )
    assert saved.status == 303
    assert (await journeys_of(db, club))["cross_sell"]["settings"]["delay_days"] == 5
    assert await categories(db, club) == {"sko": {"nb": TEXT}}
    page = await (await admin.client.get("/admin/journeys")).text()
    shown = card(page, "cross_sell")
    assert 'data-category="sko"' in shown
    assert "Er du også interessert i skopuss til sko?" in shown  # the sample
    await admin.post(ADD, {"category": "sko", "text_nb": "Ny {category}", "text_sv": "Ny"})
    assert await categories(db, club) == {"sko": {"nb": "Ny {category}", "sv": "Ny"}}
    gone = await admin.post(ADD + "/remove", {"category": "sko"})
    assert gone.status == 303
    assert await categories(db, club) == {}
    assert (await admin.post(ADD + "/remove", {"category": "sko"})).status == 303


async def test_the_clubs_categories_are_offered(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    def sale(session: Session) -> None:
        program = session.get(Program, club)
        member = members.new(program, "+4791000001", status=members.ACTIVE, now=program.created_at)
        members.save(session, member)
        purchases.record(
            session,
            program,
            member.id,
            transaction_id="T1",
            lines=[Line(1, 100, category="ski"), Line(1, 100, category="sykkel")],
            occurred_at=program.created_at,
            fingerprint="T1",
            now=program.created_at,
        )

    await db.run(sale)
    await admin.signed_in(OWNER)
    await admin.post(ADD, {"category": "ski", "text_nb": "Smøring?"})
    shown = card(await (await admin.client.get("/admin/journeys")).text(), "cross_sell")
    assert '<option value="sykkel">' in shown
    assert '<option value="ski">' not in shown  # it has its texts already


async def test_bad_input_is_named_beside_its_field(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    for form, field in (
        ({"category": "", "text_nb": "Hei"}, "new-category-error"),
        ({"category": "x" * 61, "text_nb": "Hei"}, "new-category-error"),
        ({"category": "sko", "text_nb": "Hei {gift}"}, "new-text-nb-error"),
    ):
        response = await admin.post(ADD, form)
        assert response.status == 422, form
        page = await response.text()
        assert f'id="journey-cross_sell-{field}"' in page, form
    empty = await admin.post(ADD, {"category": "sko", "text_nb": " "})
    assert empty.status == 422
    assert await categories(db, club) == {}


async def test_staff_and_a_missing_csrf_token_are_refused(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    await admin.signed_in(STAFF)
    assert (await admin.post(ADD, {"category": "sko", "text_nb": TEXT})).status == 403
    assert await categories(db, club) == {}
