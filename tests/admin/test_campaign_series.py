"""The compose form's repeat and before-a-sale choices, a series' page (pause, resume, cancel;
owner only, CSRF), and saved broadcast texts: made at /admin/templates, used to fill the form."""

from __future__ import annotations

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.database import Database
from store.models import MessageTemplate
from tests.admin.conftest import OWNER, STAFF, Admin
from tests.admin.test_campaigns import campaign_count, form, only_campaign

pytestmark = pytest.mark.usefixtures("cheap_argon2")

OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture
async def signed_in(admin: Admin, owner: int) -> Admin:
    return await admin.signed_in(OWNER)


def in_days(days: int, clock: str = "09:00") -> str:
    day = dt.datetime.now(OSLO).date() + dt.timedelta(days=days)
    return f"{day.isoformat()}T{clock}"


def error_of(page: str, field: str) -> str:
    found = re.search(rf'id="{field}-error">([^<]*)<', page)
    assert found, page
    return html.unescape(found.group(1))


MONTHLY = {"repeat": "month", "repeat_day": "15", "repeat_at": "10:00"}


async def test_the_owner_makes_a_monthly_series_and_pauses_resumes_and_cancels_it(
    signed_in: Admin, db: Database
) -> None:
    preview = await signed_in.post("/admin/campaigns/preview", form(**MONTHLY))
    assert preview.status == 200
    shown = await preview.text()
    assert "Gjentas hver måned den 15. klokken 10:00" in shown
    assert 'name="repeat" value="month"' in shown  # carried to the create step
    made = await signed_in.post("/admin/campaigns", form(**MONTHLY))
    assert made.status == 303
    series = await only_campaign(db)
    assert made.headers["Location"] == f"/admin/campaigns/{series.id}"
    assert (series.status, series.send_at) == ("active", None)
    assert series.recurrence == {"every": "month", "day": 15, "at": "10:00"}

    page = await (await signed_in.client.get(f"/admin/campaigns/{series.id}")).text()
    assert "hver måned den 15. klokken 10:00" in page
    assert re.search(r"data-next>\d", page)
    listing = await (await signed_in.client.get("/admin/campaigns")).text()
    assert "hver måned den 15. klokken 10:00 · neste" in listing

    assert (await signed_in.post(f"/admin/campaigns/{series.id}/pause")).status == 303
    assert (await only_campaign(db)).status == "paused"
    paused = await signed_in.client.get(f"/admin/campaigns/{series.id}")
    assert "data-next>–" in await paused.text()
    assert (await signed_in.post(f"/admin/campaigns/{series.id}/resume")).status == 303
    assert (await only_campaign(db)).status == "active"
    assert (await signed_in.client.get(f"/admin/campaigns/{series.id}/cancel")).status == 200
    assert (await signed_in.post(f"/admin/campaigns/{series.id}/cancel")).status == 303
    assert (await only_campaign(db)).status == "cancelled"


async def test_a_yearly_series_on_29_february(signed_in: Admin, db: Database) -> None:
    fields = {"repeat": "year", "repeat_date": "29.02", "repeat_at": "09:30"}
    assert (await signed_in.post("/admin/campaigns", form(**fields))).status == 303
    assert (await only_campaign(db)).recurrence == {
        "every": "year",
        "day": 29,
        "month": 2,
        "at": "09:30",
    }


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"repeat_day": "31"}, "1 til 28"),
        ({"repeat_day": "x"}, "1 til 28"),
        ({"repeat_at": "25:00"}, "klokkeslett"),
        ({"repeat": "year", "repeat_date": "31.02"}, "dag.måned"),
    ],
)
async def test_a_bad_repeat_is_named_and_nothing_saved(
    signed_in: Admin, db: Database, fields: dict[str, str], named: str
) -> None:
    response = await signed_in.post("/admin/campaigns", form(**{**MONTHLY, **fields}))
    assert response.status == 422
    assert named in error_of(await response.text(), "repeat")
    assert await campaign_count(db) == 0


async def test_before_a_sale_the_send_time_is_the_sale_less_the_days(
    signed_in: Admin, db: Database
) -> None:
    fields = {"when": "sale", "sale_at": in_days(10), "days_before": "2", "hours_before": "0"}
    preview = await (await signed_in.post("/admin/campaigns/preview", form(**fields))).text()
    assert "2 dager før salget" in preview
    assert (await signed_in.post("/admin/campaigns", form(**fields))).status == 303
    made = await only_campaign(db)
    sale = dt.datetime.fromisoformat(in_days(10)).replace(tzinfo=OSLO)
    assert made.send_at == sale - dt.timedelta(days=2)
    assert made.settings == {
        "sale_starts_at": sale.astimezone(dt.UTC).isoformat(),
        "days_before": 2,
        "hours_before": 0,
    }
    page = await (await signed_in.client.get(f"/admin/campaigns/{made.id}")).text()
    assert "data-sale>2 dager før salget" in page


@pytest.mark.parametrize(
    ("fields", "field", "named"),
    [
        ({"sale_at": in_days(1), "days_before": "3"}, "sale_at", "allerede"),
        ({"sale_at": in_days(5), "days_before": "0"}, "days_before", "minst en time"),
        ({"sale_at": in_days(5), "days_before": "two"}, "days_before", "hele dager"),
        ({"sale_at": "soon"}, "sale_at", ""),
    ],
)
async def test_a_sale_time_that_cannot_be_is_refused(
    signed_in: Admin, db: Database, fields: dict[str, str], field: str, named: str
) -> None:
    response = await signed_in.post("/admin/campaigns", form(when="sale", **fields))
    assert response.status == 422
    assert named in error_of(await response.text(), field)
    assert await campaign_count(db) == 0


async def test_staff_may_not_pause_and_a_post_needs_the_csrf_token(
    admin: Admin, owner: int, staff: int, db: Database
) -> None:
    await admin.signed_in(OWNER)
    await admin.post("/admin/campaigns", form(**MONTHLY))
    series = await only_campaign(db)
    refused = await admin.client.post(
        f"/admin/campaigns/{series.id}/pause", data={"csrf_token": "wrong"}, allow_redirects=False
    )
    assert refused.status == 403
    await admin.client.post("/admin/sign-out", data={"csrf_token": await admin.csrf()})
    staff_admin = Admin(admin.client)
    await staff_admin.signed_in(STAFF)
    for action in ("pause", "resume", "cancel"):
        response = await staff_admin.post(f"/admin/campaigns/{series.id}/{action}")
        assert response.status == 403, action
    assert (await only_campaign(db)).status == "active"


# --- saved broadcast texts ------------------------------------------------------------------------

OFFER = {
    "purpose": "broadcast",
    "name": "Gjør deg klar",
    "text_nb": "Hei {first_name}! Salget starter snart. Koden din: {coupon_code}",
    "text_sv": "",
    "text_en": "Hi {first_name}! The sale starts soon. Your code: {coupon_code}",
}


async def saved(db: Database) -> dict[str, tuple[str, dict[str, str]]]:
    def read(session: Session) -> dict[str, tuple[str, dict[str, str]]]:
        rows = session.scalars(select(MessageTemplate)).all()
        return {t.name: (t.purpose, t.texts) for t in rows}

    return await db.run(read)


async def test_a_saved_broadcast_text_is_made_and_fills_the_compose_form(
    signed_in: Admin, db: Database
) -> None:
    assert (await signed_in.client.get("/admin/templates/new?purpose=broadcast")).status == 200
    response = await signed_in.post("/admin/templates", OFFER)
    assert response.status == 303
    assert await saved(db) == {
        "Gjør deg klar": (
            "broadcast",
            {"nb": OFFER["text_nb"], "en": OFFER["text_en"]},
        )
    }
    listing = await (await signed_in.client.get("/admin/templates")).text()
    (template_id,) = re.findall(r'data-broadcast-template="(\d+)"', listing)
    assert f'href="/admin/campaigns/new?template={template_id}"' in listing
    edit = await signed_in.client.get(f"/admin/templates/{template_id}?purpose=broadcast")
    assert "Salget starter snart" in await edit.text()
    # Not a saved reply: the replies' page for it is not found.
    assert (await signed_in.client.get(f"/admin/templates/{template_id}")).status == 404

    composed = await (
        await signed_in.client.get(f"/admin/campaigns/new?template={template_id}")
    ).text()
    assert "Koden din: {coupon_code}</textarea>" in composed
    assert f'<option value="{template_id}"' in composed
    # Without a script: "Use" posts the form as typed and gets it back with the texts filled.
    picked = await signed_in.post(
        "/admin/campaigns/edit",
        form(name="Beholdt", text_nb="skrevet", pick="1", template=template_id),
    )
    page = await picked.text()
    assert picked.status == 200
    assert "Salget starter snart. Koden din: {coupon_code}</textarea>" in page
    assert 'value="Beholdt"' in page
    assert ">skrevet<" not in page

    response = await signed_in.post(
        f"/admin/templates/{template_id}/delete", {"purpose": "broadcast"}
    )
    assert response.status == 303
    assert await saved(db) == {}


@pytest.mark.parametrize(
    ("purpose", "text", "status"),
    [
        ("broadcast", "Hei {member_day}!", 422),
        ("broadcast", "x" * 641, 422),
        ("broadcast", "Kode {coupon_code} " + "x" * 300, 303),  # a broadcast may be 4 SMS
        ("reply", "Kode {coupon_code}", 422),  # a staff reply has no coupon to give
    ],
)
async def test_each_kind_checks_its_own_placeholders_and_length(
    signed_in: Admin, db: Database, purpose: str, text: str, status: int
) -> None:
    response = await signed_in.post(
        "/admin/templates", {**OFFER, "purpose": purpose, "text_nb": text, "text_en": ""}
    )
    assert response.status == status, await response.text()
    if status == 422:
        assert "text_nb-error" in await response.text()
        assert await saved(db) == {}


async def test_staff_see_no_broadcast_texts_and_change_none(
    admin: Admin, owner: int, staff: int, db: Database
) -> None:
    await admin.signed_in(OWNER)
    await admin.post("/admin/templates", OFFER)
    await admin.client.post("/admin/sign-out", data={"csrf_token": await admin.csrf()})
    staff_admin = Admin(admin.client)
    await staff_admin.signed_in(STAFF)
    listing = await (await staff_admin.client.get("/admin/templates")).text()
    assert "Gjør deg klar" not in listing
    assert (await staff_admin.post("/admin/templates", {**OFFER, "name": "Annen"})).status == 403
    assert list(await saved(db)) == ["Gjør deg klar"]
