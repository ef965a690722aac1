"""The journeys page, through the app on SQLite and PostgreSQL: each journey on or off, its
texts and its setting saved in the store; bad input named beside its field; owners only."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from store import campaigns, journeys
from store.database import Database
from tests.admin.conftest import OWNER, STAFF, Admin

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def journeys_of(db: Database, club: int) -> dict[str, dict]:
    def read(session: Session) -> dict[str, dict]:
        return {
            j.trigger: {
                "active": j.status == campaigns.ACTIVE,
                "texts": j.texts,
                "settings": journeys.settings_of(j),
            }
            for j in journeys.all_of(session, club)
        }

    return await db.run(read)


async def test_every_trigger_is_listed_with_the_catalog_wording_as_placeholder(
    admin: Admin, owner: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/journeys")
    assert response.status == 200
    page = await response.text()
    for trigger in journeys.TRIGGERS:
        assert f'action="/admin/journeys/{trigger}#journey-{trigger}"' in page
    # The demo club is Norwegian: the page, and the welcome's wording, in Norwegian.
    assert "Takk for at du ble med i {club}" in page


async def test_a_journey_not_set_up_is_created_on_first_save(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/journeys/winback",
        {"active": "on", "setting_days": "90", "setting_lookback_days": "", "text_nb": ""},
    )
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/journeys?saved=winback")
    found = (await journeys_of(db, club))["winback"]
    assert found == {"active": True, "texts": None, "settings": {"days": 90, "lookback_days": 30}}


async def test_turning_a_journey_off_and_giving_it_a_norwegian_text(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    await admin.post("/admin/journeys/birthday", {"active": "on"})
    text = "Gratulerer, {first_name}! Hilsen {club}"
    response = await admin.post("/admin/journeys/birthday", {"text_nb": text})
    assert response.status == 303
    found = (await journeys_of(db, club))["birthday"]
    assert found["active"] is False
    assert found["texts"]["nb"] == text
    # Swedish left empty: the catalog's wording, which the page shows as empty again.
    assert found["texts"]["sv"] == journeys.catalog_wording("birthday", "sv")
    page = await (await admin.client.get("/admin/journeys")).text()
    assert text.replace("'", "&#39;") in page


async def test_clearing_every_text_goes_back_to_the_catalog_wording(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    await admin.post("/admin/journeys/welcome", {"active": "on", "text_en": "Hi {first_name}"})
    await admin.post("/admin/journeys/welcome", {"active": "on", "text_en": " "})
    assert (await journeys_of(db, club))["welcome"]["texts"] is None


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"text_nb": "Hei {frist_name}"}, "text-nb", "bruk bare"),
        ({"text_en": "Hi {first_name"}, "text-en", "bruk bare"),
        ({"setting_days": "abc"}, "days", "helt tall fra 1 til 730"),
        ({"setting_days": "0"}, "days", "helt tall fra 1 til 730"),
        ({"setting_days": "-5"}, "days", "helt tall fra 1 til 730"),
    ],
)
async def test_bad_input_is_named_beside_its_field_and_nothing_changes(
    admin: Admin, owner: int, db: Database, club: int, data: dict, field: str, message: str
) -> None:
    await admin.signed_in(OWNER)
    before = await journeys_of(db, club)
    response = await admin.post("/admin/journeys/expiring", {"active": "on", **data})
    assert response.status == 422
    page = await response.text()
    # The error sits under its field, which points to it (and only that field is marked).
    error = f"journey-expiring-{field}-error"
    assert f'<p class="field-error" id="{error}">' in page
    assert message in page.split(f'id="{error}">')[1].split("</p>")[0]
    assert page.count('aria-invalid="true"') == 1
    assert f' {error}" aria-invalid="true"' in page
    assert await journeys_of(db, club) == before


async def test_an_unknown_trigger_is_not_found(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post("/admin/journeys/no_such_trigger", {"active": "on"})
    assert response.status == 404


async def test_staff_get_403_on_the_page_and_the_action(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    await admin.signed_in(STAFF)
    assert (await admin.client.get("/admin/journeys")).status == 403
    before = await journeys_of(db, club)
    assert (await admin.post("/admin/journeys/welcome", {"active": "on"})).status == 403
    assert await journeys_of(db, club) == before


async def test_without_the_csrf_token_403_and_nothing_changes(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    before = await journeys_of(db, club)
    response = await admin.client.post(
        "/admin/journeys/welcome", data={"active": "on"}, allow_redirects=False
    )
    assert response.status == 403
    assert await journeys_of(db, club) == before
