"""The campaign form's time to send at, typed as the club writes dates ("01.12.2026 10:00"):
shown with an example in that format, read in the club's zone, and a time that is not one
named beside its field."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from store.database import Database
from tests.admin.conftest import OWNER, Admin, create_member
from tests.admin.test_campaigns import form, only_campaign

pytestmark = pytest.mark.usefixtures("cheap_argon2")

OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture
async def signed_in(admin: Admin, owner: int) -> Admin:
    return await admin.signed_in(OWNER)


def tomorrow() -> dt.date:
    return dt.datetime.now(OSLO).date() + dt.timedelta(days=1)


async def test_the_field_shows_the_clubs_format_not_a_browsers_picker(signed_in: Admin) -> None:
    html = await (await signed_in.client.get("/admin/campaigns/new")).text()
    field = re.search(r'<input id="send_at"[^>]*>', html)
    assert field
    assert 'type="text"' in field.group(0)
    example = f"{tomorrow():%d.%m.%Y} 10:00"
    assert f'placeholder="{example}"' in field.group(0)
    assert f"dd.mm.åååå tt:mm, for eksempel {example}" in html


@pytest.mark.parametrize("typed", ["{d:%d.%m.%Y} 10:00", "{d:%d.%m.%Y} kl. 10.00", "{d}T10:00"])
async def test_a_time_typed_as_the_club_writes_it_is_read_in_its_zone(
    signed_in: Admin, db: Database, club: int, typed: str
) -> None:
    await create_member(db, club, "+4791234567", "Kari")
    at = typed.format(d=tomorrow())
    response = await signed_in.post("/admin/campaigns", form(when="later", send_at=at))
    assert response.status == 303, await response.text()
    campaign = await only_campaign(db)
    assert campaign.send_at is not None
    sent_at = campaign.send_at.replace(tzinfo=campaign.send_at.tzinfo or dt.UTC)
    assert sent_at == dt.datetime.combine(tomorrow(), dt.time(10), OSLO)


@pytest.mark.parametrize("typed", ["31.02.2027 10:00", "01.12.2026 25:00", "i morgen", "10:00"])
async def test_a_time_that_is_not_one_is_named_beside_its_field(
    signed_in: Admin, typed: str
) -> None:
    response = await signed_in.post("/admin/campaigns/preview", form(when="later", send_at=typed))
    assert response.status == 422
    html = await response.text()
    field = re.search(r'<input id="send_at"[^>]*>', html)
    assert field
    assert 'aria-invalid="true"' in field.group(0)
    assert f'value="{typed}"' in field.group(0)
    assert re.search(r'id="send_at-error">Velg dato og klokkeslett', html)
