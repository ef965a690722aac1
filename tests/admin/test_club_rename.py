"""Renaming the club re-checks its saved automatic reply: a name with a letter outside GSM-7
(or an emoji) turns every SMS naming the club into UCS-2, 70 characters a segment, so a rename
that would push the reply over one SMS is refused beside the name, naming the language."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.keys import CLUBS
from locales.sms import segments
from store.clubs import programs
from store.database import Database
from store.models import ProfileQuestion
from tests.admin.conftest import OWNER, Admin
from tests.conftest import replies_in, sign, twilio_form

pytestmark = pytest.mark.usefixtures("cheap_argon2")

WEBHOOK = "http://127.0.0.1:8080/sms/twilio"
# The issue's own wording: 64 characters and the name; GSM-7, so 160 with any GSM-7 name.
WORDING = "Takk! Vi har sendt meldingen din til {club}, og svarer i åpningstiden."
CLUB = {"contact": "post@torshovsport.no", "privacy_url": "https://example.com/privacy"}


async def sms(admin: Admin, body: str, sender: str = "+4791234567") -> str:
    form = twilio_form(sender, body)
    response = await admin.client.post(
        "/sms/twilio", data=form, headers={"X-Twilio-Signature": sign(WEBHOOK, form)}
    )
    assert response.status == 200, await response.text()
    return " ".join(replies_in(await response.text()))


async def without_questions(db: Database, club: int) -> None:
    """The demo club's own questions follow a welcome naming the club, and a name outside
    GSM-7 pushes them over too (refused on their own account): set aside, so the reply is
    what a rename is measured against here."""
    await db.run(
        lambda s: s.execute(
            update(ProfileQuestion).where(ProfileQuestion.program_id == club).values(active=False)
        )
    )


async def name_of(db: Database, club: int) -> str:
    def read(session: Session) -> str:
        program = programs.get(session, club)
        assert program is not None
        return program.name

    return await db.run(read)


async def test_a_rename_that_would_push_the_automatic_reply_over_one_sms_is_refused(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    admin.client.app[CLUBS].ttl = 0
    await without_questions(db, club)
    await admin.signed_in(OWNER)
    saved = await admin.post("/admin/settings/auto-reply", {"auto_reply_nb": WORDING})
    assert saved.status == 303

    response = await admin.post("/admin/settings/club", {"name": "Łódź Café", **CLUB})
    assert response.status == 422
    page = await response.text()
    error = html.unescape(page.split('id="club-name-error">')[1].split("</p>")[0])
    assert "det automatiske svaret på norsk 3 tegn for langt" in error
    assert await name_of(db, club) == "Torshov Sport"
    # A member still gets the reply in one SMS, with the name kept.
    await sms(admin, "BLI MED")
    await sms(admin, "JA")
    reply = await sms(admin, "har dere åpent på søndag?")
    assert reply == WORDING.replace("{club}", "Torshov Sport")

    # A shorter name outside GSM-7 fits: taken, and the reply is one UCS-2 segment.
    assert (await admin.post("/admin/settings/club", {"name": "Łódź", **CLUB})).status == 303
    assert await name_of(db, club) == "Łódź"
    reply = await sms(admin, "og på lørdag?")
    assert reply == WORDING.replace("{club}", "Łódź")
    size = segments(reply)
    assert (size.encoding, size.segments) == ("UCS-2", 1)


async def test_an_emoji_in_the_name_counts_as_ucs2_and_a_reply_without_the_club_never_blocks(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await without_questions(db, club)
    await admin.signed_in(OWNER)
    await admin.post("/admin/settings/auto-reply", {"auto_reply_en": "Thanks, {club} " + "x" * 50})
    response = await admin.post("/admin/settings/club", {"name": "Torshov Sport ⚽", **CLUB})
    assert response.status == 422
    error = html.unescape((await response.text()).split('id="club-name-error">')[1])
    assert "the English automatic reply" not in error  # the page is in Norwegian
    assert "det automatiske svaret på engelsk" in error.split("</p>")[0]
    # Worded without {club}, the reply does not change with the name: any rename goes.
    await admin.post("/admin/settings/auto-reply", {"auto_reply_en": "Thanks! " + "x" * 140})
    response = await admin.post("/admin/settings/club", {"name": "Torshov Sport ⚽", **CLUB})
    assert response.status == 303
    assert await name_of(db, club) == "Torshov Sport ⚽"
