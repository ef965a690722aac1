"""The compose form's favourite category offer (issue 17): a coupon per category, the campaign's
coupon as the fallback, through preview, back to edit and create, then what members get."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from scheduler import sender
from store.database import Database
from store.models import Campaign, Coupon, CouponTemplate, Member, MessageTemplate, OutboxMessage
from tests.admin.conftest import OWNER, STAFF, Admin
from tests.scheduler.campaign_helpers import RecordingGateway, plan
from tests.scheduler.test_cross_sell import buy
from tests.scheduler.test_journey_catalogue import template
from tests.scheduler.test_journeys import person

pytestmark = pytest.mark.usefixtures("cheap_argon2")

DAY = dt.timedelta(days=1)
TEXT = "Hei {first_name}! 20% på {favourite_category}. Kode: {coupon_code}"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def form(**fields: str) -> dict[str, str]:
    """A favourite category offer as the browser posts it: sko and ski each with its coupon,
    DEFAULT for everyone else."""
    base = {
        "name": "Favoritter",
        "audience": "everyone",
        "members": "",
        "text_nb": TEXT,
        "text_sv": "",
        "text_en": "",
        "coupon": "DEFAULT",
        "control": "0",
        "when": "now",
        "send_at": "",
        "favourite": "1",
        "favourite_category_0": "sko",
        "favourite_coupon_0": "SKO20",
        "favourite_category_1": "ski",
        "favourite_coupon_1": "SKI10",
        "favourite_category_2": "",
        "favourite_coupon_2": "",
    }
    return base | fields


def hidden_fields(page: str) -> dict[str, str]:
    """The preview's form as the browser sends it on "Send now" (its hidden fields)."""
    found = {name: html_lib.unescape(value) for name, value in _HIDDEN.findall(page)}
    found.pop("csrf_token", None)
    return found


def error_after(page: str, field_id: str) -> str:
    found = re.search(rf'<p class="field-error" id="{field_id}-error">(.*?)</p>', page, re.S)
    assert found, f"no error shown for {field_id}"
    return html_lib.unescape(found.group(1))


async def campaign_count(db: Database) -> int:
    return await db.run(lambda s: s.scalar(select(func.count()).select_from(Campaign)) or 0)


@pytest.fixture
async def coupons_of_club(db: Database, club: int) -> None:
    for key in ("SKO20", "SKI10", "DEFAULT"):
        await template(db, club, key)


@pytest.fixture
async def signed_in(admin: Admin, owner: int, coupons_of_club: None) -> Admin:
    return await admin.signed_in(OWNER)


async def test_the_form_offers_the_clubs_categories_and_coupons(
    signed_in: Admin, db: Database, club: int
) -> None:
    ann = await person(db, club, "Ann", number=1)
    await buy(db, club, ann, utc_now() - 3 * DAY, ("sko", 900), ("ski", 100))
    page = await (await signed_in.client.get("/admin/campaigns/new")).text()
    assert "Tilbud på favorittkategori" in page
    assert '<input type="checkbox" id="favourite" name="favourite" value="1">' in page
    # The club's purchase categories offered for each row, its active coupons in each picker.
    assert re.search(r'<datalist id="favourite-categories">.*value="ski".*value="sko"', page)
    assert 'name="favourite_category_4"' in page
    assert 'name="favourite_category_5"' not in page
    picker = page.split('id="favourite_coupon_0"')[1].split("</select>")[0]
    assert all(f'value="{key}"' in picker for key in ("SKO20", "SKI10", "DEFAULT"))
    # The text may say it: the placeholders' hint lists it.
    assert "<code>{favourite_category}</code>" in page


async def test_preview_create_and_the_messages_members_get(
    signed_in: Admin, db: Database, club: int
) -> None:
    ann = await person(db, club, "Ann", number=1)
    bo = await person(db, club, "Bo", number=2)
    cai = await person(db, club, "Cai", number=3)
    now = utc_now()
    await buy(db, club, ann, now - 30 * DAY, ("sko", 900), ("ski", 100))
    await buy(db, club, bo, now - 10 * DAY, ("ski", 4000), ("sko", 1000))

    preview = await signed_in.post("/admin/campaigns/preview", form())
    assert preview.status == 200, await preview.text()
    page = await preview.text()
    offer = page.split("data-favourite>")[1].split("</div>")[0]
    assert '<li data-category="sko">sko: SKO20 gratis</li>' in offer
    assert '<li data-category="ski">ski: SKI10 gratis</li>' in offer
    assert "Andre kategorier og medlemmer uten kjøp: DEFAULT gratis" in offer
    assert await campaign_count(db) == 0  # a preview saves nothing

    # "Send now" posts the preview's hidden fields: the offer survives the round trip.
    sent = hidden_fields(page)
    assert sent["favourite"] == "1"
    assert (sent["favourite_category_1"], sent["favourite_coupon_1"]) == ("ski", "SKI10")
    created = await signed_in.post("/admin/campaigns", sent)
    assert created.status == 303, await created.text()

    def read(session: Any) -> tuple[Campaign, dict[str, int]]:
        campaign = session.scalars(select(Campaign)).one()
        keys = dict(session.execute(select(CouponTemplate.key, CouponTemplate.id)).all())
        return campaign, keys

    campaign, keys = await db.run(read)
    assert campaign.settings == {
        "favourite": {"coupons": {"sko": keys["SKO20"], "ski": keys["SKI10"]}}
    }
    assert campaign.coupon_template_id == keys["DEFAULT"]

    assert await plan(db, campaign.id, now=now) == 3
    moment = await db.run(
        lambda s: s.scalar(
            select(func.max(OutboxMessage.send_after)).where(
                OutboxMessage.campaign_id == campaign.id
            )
        )
    )
    gateway = RecordingGateway()
    clock = max(moment, now) + dt.timedelta(seconds=1)
    assert await sender.drain(db, gateway, lambda: clock) == 3

    def words(phone: str) -> str:
        [body] = gateway.to(phone)
        return body.split("20% på ")[1].split(".")[0]

    assert words(ann) == "sko"
    assert words(bo) == "ski"
    assert words(cai) == "favorittene dine"

    def held(session: Any) -> dict[str, str]:
        found = session.execute(
            select(Member.phone, CouponTemplate.key)
            .join(Coupon, Coupon.member_id == Member.id)
            .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        )
        return dict(found.all())

    assert await db.run(held) == {ann: "SKO20", bo: "SKI10", cai: "DEFAULT"}


async def test_back_to_edit_keeps_the_offer(signed_in: Admin) -> None:
    page = await (await signed_in.post("/admin/campaigns/edit", form())).text()
    assert '<input type="checkbox" id="favourite" name="favourite" value="1" checked>' in page
    assert 'name="favourite_category_1" value="ski"' in page
    picker = page.split('id="favourite_coupon_1"')[1].split("</select>")[0]
    assert '<option value="SKI10" selected>' in picker


async def test_without_a_coupon_of_its_own_the_rest_get_none(signed_in: Admin) -> None:
    fields = form(coupon="", text_nb="Nytt i {favourite_category}!")
    page = await (await signed_in.post("/admin/campaigns/preview", fields)).text()
    assert "Andre kategorier og medlemmer uten kjøp: ingen kupong" in page


@pytest.mark.parametrize(
    ("fields", "where", "said"),
    [
        ({"favourite_coupon_1": ""}, "favourite_1", "Velg en kupong for ski."),
        ({"favourite_category_1": ""}, "favourite_1", "Velg kategorien denne kupongen gjelder."),
        ({"favourite_category_1": "sko"}, "favourite_1", "sko har allerede en rad."),
        ({"favourite_category_0": "x" * 61}, "favourite_0", "En kategori har 1 til 60 tegn."),
        ({"favourite": ""}, "favourite", "Kryss av for «Gjør dette til et tilbud"),
        # The store's refusal: a coupon the club does not have (any more), under its row.
        ({"favourite_coupon_1": "GONE"}, "favourite_1", "Kupongen for ski finnes ikke lenger."),
    ],
)
async def test_a_refusal_is_named_beside_its_row_and_nothing_is_saved(
    signed_in: Admin, db: Database, fields: dict[str, str], where: str, said: str
) -> None:
    for path in ("/admin/campaigns/preview", "/admin/campaigns"):
        response = await signed_in.post(path, form(**fields))
        assert response.status == 422
        page = await response.text()
        assert error_after(page, where).startswith(said)
        # The field says where its error is, for a screen reader.
        assert re.search(rf'aria-describedby="[^"]*\b{where}-error" aria-invalid="true"', page)
    assert await campaign_count(db) == 0


async def test_a_saved_broadcast_text_may_say_the_favourite_category(
    signed_in: Admin, db: Database, club: int
) -> None:
    saved = await signed_in.post(
        "/admin/templates",
        {"purpose": "broadcast", "name": "Favoritt", "text_nb": TEXT, "text_sv": "", "text_en": ""},
    )
    assert saved.status == 303, await saved.text()
    saved_id = await db.run(lambda s: s.scalar(select(MessageTemplate.id)))
    page = await (await signed_in.client.get(f"/admin/campaigns/new?template={saved_id}")).text()
    assert html_lib.escape(TEXT, quote=False) in page
    # A saved reply can't: the inbox knows no favourite category.
    refused = await signed_in.post(
        "/admin/templates",
        {"purpose": "reply", "name": "Svar", "text_nb": TEXT, "text_sv": "", "text_en": ""},
    )
    assert refused.status == 422


async def test_staff_may_not_send_a_favourite_offer(
    admin: Admin, staff: int, coupons_of_club: None, db: Database
) -> None:
    await admin.signed_in(STAFF)
    response = await admin.post("/admin/campaigns", form())
    assert response.status == 403
    assert await campaign_count(db) == 0
