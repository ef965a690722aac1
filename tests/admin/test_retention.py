"""Data retention in the admin: the owner sets how many months message texts are kept
(Settings, section Data retention), and a text emptied by the daily job reads as removed, with
the months, in the inbox thread and on the member's page."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import select, update

import locales
from scheduler import daily
from store.clock import utc_now
from store.clubs import programs
from store.database import Database
from store.models import InboundMessage, OutboxMessage
from tests.admin.conftest import OWNER, STAFF, Admin
from tests.admin.test_inbox import KARI, conversation_ids, get, join, text

pytestmark = pytest.mark.usefixtures("cheap_argon2")

SETTING = "/admin/settings/retention"


async def months_kept(db: Database, club: int) -> int:
    def read(session: object) -> int:
        program = programs.get(session, club)  # type: ignore[arg-type]
        assert program is not None
        return program.retention_months

    return await db.read(read)


def removed_marker(page: str, months: int) -> bool:
    """Whether the page says a text was removed after `months` months (in any language)."""
    shown = html.unescape(page)
    return any(
        locales.text("admin.retention.removed", lang, months=months) in shown
        for lang in locales.LANGUAGES
    )


async def test_the_owner_sets_how_long_texts_are_kept(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    page = await get(admin, "/admin/settings")
    assert 'id="retention"' in page
    assert 'name="retention_months" type="number" value="13"' in page
    response = await admin.post(SETTING, {"retention_months": "24"})
    assert response.status == 303
    assert response.headers["Location"] == "/admin/settings?saved=retention#retention"
    assert await months_kept(db, club) == 24
    assert 'value="24"' in await get(admin, "/admin/settings?saved=retention")


@pytest.mark.parametrize("typed", ["0", "121", "-3", "tretten", ""])
async def test_a_number_of_months_out_of_range_is_refused_beside_the_field(
    admin: Admin, owner: int, db: Database, club: int, typed: str
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(SETTING, {"retention_months": typed})
    assert response.status == 422
    page = await response.text()
    assert 'id="retention-retention_months-error"' in page
    assert 'aria-invalid="true"' in page
    assert await months_kept(db, club) == 13


async def test_the_edges_of_the_range_are_taken(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    low, high = programs.LIMITS["retention_months"]
    for months in (low, high):
        assert (await admin.post(SETTING, {"retention_months": str(months)})).status == 303
        assert await months_kept(db, club) == months


async def test_staff_may_not_change_it(admin: Admin, staff: int, db: Database, club: int) -> None:
    await admin.signed_in(STAFF)
    assert (await admin.post(SETTING, {"retention_months": "1"})).status == 403
    assert await months_kept(db, club) == 13


async def test_without_the_csrf_token_it_is_refused(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.post(
        SETTING,
        data={"retention_months": "1", "csrf_token": "not-the-token"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert await months_kept(db, club) == 13


async def test_an_emptied_text_reads_as_removed_in_the_inbox_and_on_the_members_page(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Kari's texts from 14 months ago lose their bodies to the daily job; her text of today
    keeps its words; both pages say which were removed, and after how many months."""
    await join(admin, KARI)
    assert await text(admin, KARI, "har dere åpent på søndag?")
    long_ago = utc_now() - dt.timedelta(days=430)
    await db.run(
        lambda s: (
            s.execute(update(InboundMessage).values(received_at=long_ago)),
            s.execute(update(OutboxMessage).values(created_at=long_ago, sent_at=long_ago)),
        )
    )
    assert await text(admin, KARI, "og på lørdag?")

    emptied = await daily.empty_old_texts(db)  # the job, run once (burst)

    assert emptied > 0
    assert await daily.empty_old_texts(db) == 0
    bodies = await db.read(
        lambda s: s.execute(select(InboundMessage.body).order_by(InboundMessage.id)).scalars().all()
    )
    assert bodies[-1] == "og på lørdag?"
    assert set(bodies[:-1]) == {None}

    await admin.signed_in(OWNER)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox"))
    thread = await get(admin, f"/admin/inbox/{conversation}")
    assert "og på lørdag?" in html.unescape(thread)
    assert "søndag" not in html.unescape(thread)
    assert removed_marker(thread, 13)

    member_id = re.search(r'href="/admin/members/(\d+)"', thread)
    assert member_id is not None
    history = await get(admin, f"/admin/members/{member_id.group(1)}")
    assert "og på lørdag?" in html.unescape(history)
    assert removed_marker(history, 13)
    export = await (
        await admin.client.get(f"/admin/members/{member_id.group(1)}/export.json")
    ).json()
    texts = export["messages"]["inbound"]
    assert any(m["removed_after_months"] == 13 for m in texts)
    assert all(m["text"] is None for m in texts if m["removed_after_months"])
    assert export["club"]["message_retention_months"] == 13
