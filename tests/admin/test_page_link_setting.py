"""Settings, section Page link in SMS (issue 15): the owner turns the member's page link in the
welcome and reward SMS on and off; staff get 403; without the CSRF token nothing changes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.clubs import programs
from store.database import Database
from tests.admin.conftest import OWNER, STAFF, Admin

ACTION = "/admin/settings/page-link"


async def is_on(db: Database, club: int) -> bool:
    def read(session: Session) -> bool:
        program = programs.get(session, club)
        assert program is not None
        return program.page_link_in_sms

    return await db.run(read)


async def test_the_owner_turns_the_link_on_and_off(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    assert 'id="page-link"' in page
    assert 'name="page_link_in_sms"' in page
    # Beside the setting: what it costs, said plainly.
    assert "45 tegn" in page
    assert await is_on(db, club) is False

    response = await admin.post(ACTION, {"page_link_in_sms": "on"})
    assert response.status == 303
    assert response.headers["Location"] == "/admin/settings?saved=page-link#page-link"
    assert await is_on(db, club) is True
    page = await (await admin.client.get("/admin/settings?saved=page-link")).text()
    assert 'id="page-link-page_link_in_sms" aria-describedby="page-link-hint" checked' in page

    # An unticked checkbox sends nothing: off.
    assert (await admin.post(ACTION, {})).status == 303
    assert await is_on(db, club) is False


async def test_a_value_that_is_neither_on_nor_off_is_refused_by_name(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(ACTION, {"page_link_in_sms": "maybe"})
    assert response.status == 422
    page = await response.text()
    assert 'id="page-link-page_link_in_sms-error"' in page
    assert "Velg på eller av." in page
    assert await is_on(db, club) is False


async def test_staff_cannot_change_it(admin: Admin, staff: int, db: Database, club: int) -> None:
    await admin.signed_in(STAFF)
    response = await admin.post(ACTION, {"page_link_in_sms": "on"})
    assert response.status == 403
    assert await is_on(db, club) is False


async def test_without_the_csrf_token_nothing_changes(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    for data in ({"page_link_in_sms": "on"}, {"page_link_in_sms": "on", "csrf_token": "wrong"}):
        response = await admin.client.post(ACTION, data=data, allow_redirects=False)
        assert response.status == 403
    assert await is_on(db, club) is False
