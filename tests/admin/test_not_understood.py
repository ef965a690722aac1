"""The dashboard counts the texts Klubb could not answer in the period, for owner and staff:
texts sent through the signed webhook, the page fetched with the admin client."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import update

from bot.admin import pages
from store.database import Database
from store.models import InboundMessage
from tests.admin.conftest import (
    OTHER_NUMBER,
    OTHER_OWNER,
    OWNER,
    STAFF,
    Admin,
    create_account,
)
from tests.conftest import CLUB_NUMBER, replies_in, sign, twilio_form

pytestmark = pytest.mark.usefixtures("cheap_argon2")

# The admin's app is on plain http (tests/admin/conftest.py): Twilio signs that address.
WEBHOOK = "http://127.0.0.1:8080/sms/twilio"


async def text(admin: Admin, sender: str, body: str, to: str = CLUB_NUMBER) -> str | None:
    form = twilio_form(sender, body, to=to)
    response = await admin.client.post(
        "/sms/twilio", data=form, headers={"X-Twilio-Signature": sign(WEBHOOK, form)}
    )
    assert response.status == 200, await response.text()
    replies = replies_in(await response.text())
    return replies[0] if replies else None


def shown(page: str) -> str:
    found = re.search(r'data-kpi="not_understood">([^<]*)<', page)
    assert found, "the dashboard shows no count of texts not understood"
    return html.unescape(found.group(1))


async def dashboard(admin: Admin, query: str = "") -> str:
    response = await admin.client.get("/admin/" + query)
    assert response.status == 200
    return await response.text()


async def test_owner_and_staff_see_the_texts_klubb_could_not_answer(
    admin: Admin, owner: int, staff: int, other_club: int, db: Database
) -> None:
    """Two texts not understood, from a stranger and from a member, count; JOIN, the consent,
    the skipped questions, HELP and the other club's texts don't."""
    await text(admin, "+4791234567", "hva koster kaffen?")
    await text(admin, "+4791234568", "JOIN")
    await text(admin, "+4791234568", "JA")
    for _ in range(3):  # the demo club's three questions, skipped
        await text(admin, "+4791234568", "HOPP OVER")
    await text(admin, "+4791234568", "HJELP")
    await text(admin, "+4791234568", "har dere åpent på søndag?")
    await text(admin, "+4791234569", "hallo?", to=OTHER_NUMBER)
    await admin.signed_in(OWNER)
    page = await dashboard(admin)
    assert shown(page) == "2"
    assert "Meldinger Klubb ikke kunne svare på" in page
    await admin.client.post("/admin/sign-out", data={"csrf_token": await admin.csrf()})
    await admin.signed_in(STAFF)
    assert shown(await dashboard(admin)) == "2"


async def test_the_count_is_for_the_period_shown(
    admin: Admin, owner: int, club: int, db: Database
) -> None:
    """A text not understood 60 days ago is outside the last 30 days, and inside a period
    chosen around it."""
    await text(admin, "+4791234567", "hmm?")
    await text(admin, "+4791234567", "hæ")
    long_ago = pages.utc_now() - dt.timedelta(days=60)
    await db.run(
        lambda s: s.execute(
            update(InboundMessage).where(InboundMessage.body == "hæ").values(received_at=long_ago)
        )
    )
    await admin.signed_in(OWNER)
    assert shown(await dashboard(admin)) == "1"
    day = long_ago.date()
    around = f"?from={day - dt.timedelta(days=1)}&to={day + dt.timedelta(days=1)}"
    assert shown(await dashboard(admin, around)) == "1"
    nothing = f"?from={day + dt.timedelta(days=2)}&to={day + dt.timedelta(days=3)}"
    assert shown(await dashboard(admin, nothing)) == "0"


async def test_another_clubs_owner_sees_only_their_own(
    admin: Admin, owner: int, other_club: int, db: Database
) -> None:
    await create_account(db, other_club, OTHER_OWNER)
    await text(admin, "+4791234567", "hva nå?")
    await admin.signed_in(OTHER_OWNER)
    assert shown(await dashboard(admin)) == "0"
