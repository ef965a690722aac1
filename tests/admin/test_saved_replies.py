"""Saved replies through the admin: the owner makes, changes and deletes them at
/admin/templates (each placeholder checked, refused naming it and its language); staff see them
and answer a conversation with one, filled in for the member, but change none of them."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler import sender
from store.clock import utc_now
from store.clubs import programs
from store.database import Database
from store.models import MessageTemplate, Program
from store.outreach import templates
from tests.admin.conftest import OTHER_NUMBER, OWNER, STAFF, Admin
from tests.admin.test_inbox import KARI, conversation_ids, get, join, text
from tests.scheduler.campaign_helpers import RecordingGateway

pytestmark = pytest.mark.usefixtures("cheap_argon2")

OPENING = {
    "name": "Åpningstider",
    "text_nb": "Hei {first_name}! Vi har åpent 10-18 hver dag. Hilsen {club}",
    "text_sv": "",
    "text_en": "Hi {first_name}! We are open 10-18 every day.",
}
_TEXTAREA = re.compile(r'<textarea id="text"[^>]*>([^<]*)</textarea>', re.S)


async def saved(db: Database) -> dict[str, dict[str, Any]]:
    """Every saved reply of every club, by name: its club and texts."""

    def read(session: Session) -> dict[str, dict[str, Any]]:
        rows = session.scalars(select(MessageTemplate)).all()
        return {t.name: {"club": t.program_id, "texts": t.texts} for t in rows}

    return await db.run(read)


async def make(db: Database, club: int, name: str, texts: dict[str, str]) -> int:
    def work(session: Session) -> int:
        program = programs.get(session, club)
        assert program is not None
        return templates.save(session, program, name=name, texts=texts, now=utc_now()).id

    return await db.run(work)


def reply_box(page: str) -> str:
    found = _TEXTAREA.search(page)
    assert found, "no reply box on the page"
    return html.unescape(found.group(1))


async def test_the_owner_makes_changes_and_deletes_a_saved_reply(
    admin: Admin, owner: int, club: int, db: Database
) -> None:
    await admin.signed_in(OWNER)
    listing = await get(admin, "/admin/templates")
    assert 'href="/admin/templates/new"' in listing
    assert "No saved replies yet" in listing or "Ingen lagrede svar" in listing
    assert "Ny" in await get(admin, "/admin/templates/new")

    response = await admin.post("/admin/templates", OPENING)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/templates?saved=1"
    assert await saved(db) == {
        "Åpningstider": {
            "club": club,
            "texts": {"nb": OPENING["text_nb"], "en": OPENING["text_en"]},
        }
    }
    listing = await get(admin, "/admin/templates?saved=1")
    assert "Vi har åpent 10-18" in listing
    (template_id,) = [int(i) for i in re.findall(r'href="/admin/templates/(\d+)"', listing)]

    form = await get(admin, f"/admin/templates/{template_id}")
    assert "Hei {first_name}! Vi har åpent" in form
    changed = {**OPENING, "name": "Åpent", "text_sv": "Hej {first_name}!", "text_en": ""}
    response = await admin.post(f"/admin/templates/{template_id}", changed)
    assert response.status == 303
    assert await saved(db) == {
        "Åpent": {"club": club, "texts": {"nb": OPENING["text_nb"], "sv": "Hej {first_name}!"}}
    }

    assert "Åpent" in await get(admin, f"/admin/templates/{template_id}/delete")
    response = await admin.post(f"/admin/templates/{template_id}/delete")
    assert response.status == 303
    assert response.headers["Location"] == "/admin/templates?deleted=1"
    assert await saved(db) == {}
    await get(admin, f"/admin/templates/{template_id}", status=404)


@pytest.mark.parametrize(
    ("field", "typed", "named"),
    [
        ("text_nb", "Hei {fornavn}!", "{fornavn}"),
        ("text_en", "Hi {first_name:>20}", "{first_name:&gt;20}"),
        ("text_sv", "Hej {coupon_code}", "{coupon_code}"),
        ("text_en", "Hi {first_name", "{first_name"),
    ],
)
async def test_a_bad_placeholder_is_refused_beside_its_language(
    admin: Admin, owner: int, db: Database, field: str, typed: str, named: str
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post("/admin/templates", {**OPENING, field: typed})
    assert response.status == 422
    page = await response.text()
    error = re.search(rf'id="{field}-error">([^<]*)<', page)
    assert error, page
    assert named in error.group(1)
    language = {"text_nb": "Norsk", "text_sv": "Svensk", "text_en": "Engelsk"}[field]
    assert error.group(1).startswith(language + ":")
    assert 'aria-invalid="true"' in page
    # What was typed stays in the form, escaped.
    assert html.escape(typed, quote=False) in page
    assert await saved(db) == {}


async def test_every_rule_broken_is_shown_at_once(admin: Admin, owner: int, db: Database) -> None:
    await admin.signed_in(OWNER)
    await make(db, await _club_of(db), "Åpent", {"nb": "Hei"})
    response = await admin.post(
        "/admin/templates",
        {"name": "ÅPENT", "text_nb": "x" * 641, "text_sv": "", "text_en": "Hi {"},
    )
    assert response.status == 422
    page = await response.text()
    assert 'id="name-error"' in page
    assert 'id="text_nb-error"' in page
    assert 'id="text_en-error"' in page
    assert 'id="text_sv-error"' not in page
    empty = await admin.post("/admin/templates", {"name": "Tom", "text_nb": "  "})
    assert empty.status == 422
    assert 'id="texts-error"' in await empty.text()
    assert set(await saved(db)) == {"Åpent"}


async def _club_of(db: Database) -> int:
    def read(session: Session) -> int:
        program = session.scalar(select(Program))
        assert program is not None
        return program.id

    return await db.run(read)


async def test_staff_see_saved_replies_but_get_403_on_every_change(
    admin: Admin, owner: int, staff: int, club: int, db: Database
) -> None:
    template_id = await make(db, club, "Åpent", {"nb": "Hei {first_name}"})
    await admin.signed_in(STAFF)
    listing = await get(admin, "/admin/templates")
    assert "Hei {first_name}" in listing
    assert f'href="/admin/templates/{template_id}"' not in listing
    assert 'href="/admin/templates/new"' not in listing
    for path in (
        "/admin/templates/new",
        f"/admin/templates/{template_id}",
        f"/admin/templates/{template_id}/delete",
    ):
        await get(admin, path, status=403)
    for path, form in (
        ("/admin/templates", OPENING),
        (f"/admin/templates/{template_id}", OPENING),
        (f"/admin/templates/{template_id}/delete", {}),
    ):
        response = await admin.post(path, form)
        assert response.status == 403, path
    assert set(await saved(db)) == {"Åpent"}


async def test_no_change_without_the_csrf_token(
    admin: Admin, owner: int, club: int, db: Database
) -> None:
    template_id = await make(db, club, "Åpent", {"nb": "Hei"})
    await admin.signed_in(OWNER)
    for path, form in (
        ("/admin/templates", OPENING),
        (f"/admin/templates/{template_id}", OPENING),
        (f"/admin/templates/{template_id}/delete", {}),
    ):
        for token in ({}, {"csrf_token": "forged"}):
            response = await admin.client.post(path, data={**form, **token}, allow_redirects=False)
            assert response.status == 403, path
    assert await saved(db) == {"Åpent": {"club": club, "texts": {"nb": "Hei"}}}


async def test_another_clubs_saved_reply_is_not_found(
    admin: Admin, owner: int, other_club: int, db: Database
) -> None:
    theirs = await make(db, other_club, "Öppet", {"sv": "Hej {first_name}"})
    await admin.signed_in(OWNER)
    assert "Öppet" not in await get(admin, "/admin/templates")
    await get(admin, f"/admin/templates/{theirs}", status=404)
    await get(admin, f"/admin/templates/{theirs}/delete", status=404)
    await get(admin, "/admin/templates/99999999999999999999999", status=404)
    assert (await admin.post(f"/admin/templates/{theirs}", OPENING)).status == 404
    assert (await admin.post(f"/admin/templates/{theirs}/delete")).status == 404
    assert await saved(db) == {"Öppet": {"club": other_club, "texts": {"sv": "Hej {first_name}"}}}
    assert OTHER_NUMBER  # the other club is a club of its own (tests.admin.conftest)


async def test_names_and_texts_are_escaped(
    admin: Admin, owner: int, club: int, db: Database
) -> None:
    await make(db, club, "<b>Åpent</b>", {"nb": "Hei {first_name} <script>alert(1)</script>"})
    await join(admin, KARI)
    await text(admin, KARI, "har dere åpent?")
    await admin.signed_in(OWNER)
    for page in (
        await get(admin, "/admin/templates"),
        await get(admin, f"/admin/inbox/{conversation_ids(await get(admin, '/admin/inbox'))[0]}"),
    ):
        assert "<b>Åpent" not in page
        assert "&lt;b&gt;Åpent&lt;/b&gt;" in page
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_staff_answer_with_a_saved_reply_filled_in_for_the_member(
    admin: Admin, owner: int, staff: int, club: int, db: Database, other_club: int
) -> None:
    template_id = await make(
        db,
        club,
        "Åpningstider",
        {
            "nb": "Hei {first_name}! Du har {points} poeng hos {club}.",
            "en": "Hi {first_name}!",
        },
    )
    theirs = await make(db, other_club, "Öppet", {"sv": "Hej från Kafé Kari"})
    await join(admin, KARI)
    await text(admin, KARI, "har dere åpent på søndag?")
    await admin.signed_in(STAFF)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox"))

    page = await get(admin, f"/admin/inbox/{conversation}")
    assert f'<option value="{template_id}"' in page
    assert reply_box(page) == ""
    # Without a script: the picker's GET gives the page back with the box filled.
    page = await get(admin, f"/admin/inbox/{conversation}?template={template_id}")
    filled = reply_box(page)
    assert filled == "Hei! Du har 0 poeng hos Torshov Sport."  # no name given: no gap
    assert re.search(rf'<option value="{template_id}" data-text="[^"]*" selected', page)
    # Another club's saved reply or junk: the page, box empty.
    for junk in (str(theirs), "x", "99999999999999999999"):
        assert reply_box(await get(admin, f"/admin/inbox/{conversation}?template={junk}")) == ""

    response = await admin.post(f"/admin/inbox/{conversation}/reply", {"text": filled})
    assert response.status == 303
    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, utc_now) == 1
    (sms,) = gateway.sent
    assert (sms.to, sms.body) == (KARI, "Hei! Du har 0 poeng hos Torshov Sport.")


async def test_no_picker_when_no_reply_may_go(
    admin: Admin, owner: int, club: int, db: Database
) -> None:
    await make(db, club, "Åpent", {"nb": "Hei"})
    await join(admin, KARI)
    await text(admin, KARI, "har dere åpent?")
    await text(admin, KARI, "STOPP")
    await admin.signed_in(OWNER)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox?show=all"))
    page = await get(admin, f"/admin/inbox/{conversation}?template=1")
    assert 'class="saved-picker"' not in page
    assert 'href="/admin/templates"' in page  # the list is still a link away


async def test_the_inbox_links_the_saved_replies(admin: Admin, staff: int) -> None:
    await admin.signed_in(STAFF)
    assert 'href="/admin/templates"' in await get(admin, "/admin/inbox")
