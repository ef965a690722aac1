"""The journeys page, through the app on SQLite and PostgreSQL: each journey on or off, its
texts, its setting, its coupon and control group saved in the store; what a member gets shown
per language; bad input named beside its field; owners only."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from store.database import Database
from store.loyalty import coupons
from store.models import CouponTemplate, Program
from store.outreach import campaigns, journeys
from tests.admin.conftest import OWNER, STAFF, Admin

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def journeys_of(db: Database, club: int) -> dict[str, dict]:
    def read(session: Session) -> dict[str, dict]:
        return {
            j.trigger: {
                "active": j.status == campaigns.ACTIVE,
                "texts": j.texts,
                "settings": journeys.settings_of(j),
                "coupon": (
                    session.get(CouponTemplate, j.coupon_template_id).key
                    if j.coupon_template_id
                    else None
                ),
                "control": j.control_percent,
            }
            for j in journeys.all_of(session, club)
        }

    return await db.run(read)


async def add_template(db: Database, club: int, key: str, *, active: bool = True) -> None:
    """A campaign coupon template of the club (20 % off)."""

    def work(session: Session) -> None:
        template = coupons.create_template(
            session,
            session.get(Program, club),
            key=key,
            kind=coupons.CAMPAIGN,
            benefit={"nb": "20 % rabatt", "sv": "20 % rabatt", "en": "20% off"},
            valid_days=14,
            discount_percent=20,
        )
        template.active = active

    await db.run(work)


async def test_the_coupon_picker_names_what_a_coupon_gives_with_its_amount(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """A benefit written "{amount} rabatt" reads as the member reads it in an SMS ("50 kr
    rabatt", locales.benefit), never as the raw template."""

    def work(session: Session) -> None:
        coupons.create_template(
            session,
            session.get(Program, club),
            key="fifty",
            kind=coupons.CAMPAIGN,
            benefit={"nb": "{amount} rabatt", "en": "{amount} off"},
            valid_days=14,
            discount_minor=5_000,
        )

    await db.run(work)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/journeys")).text()
    assert '<option value="fifty">50\u00a0kr rabatt</option>' in card(page, "birthday")
    assert "{amount}" not in page


def card(page: str, trigger: str) -> str:
    """One journey's section of the page."""
    return page.split(f'id="journey-{trigger}"')[1].split("</section>")[0]


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
    assert found == {
        "active": True,
        "texts": None,
        "settings": {"days": 90, "lookback_days": 30},
        "coupon": None,
        "control": 0,
    }


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
    # Only what the owner wrote is kept: Swedish and English speak the catalog's wording.
    assert found["texts"] == {"nb": text}
    page = await (await admin.client.get("/admin/journeys")).text()
    assert text.replace("'", "&#39;") in page


async def test_what_a_member_gets_is_shown_per_language_with_its_size_and_price(
    admin: Admin, owner: int
) -> None:
    """The sample follows the text a member would get: the own text where there is one, the
    catalog's wording in the other languages, each with the opt-out line, SMS and price."""
    await admin.signed_in(OWNER)
    own = "Hei {first_name}, lenge siden! Velkommen innom {club}. " + "Bla bla. " * 15
    await admin.post("/admin/journeys/winback", {"active": "on", "text_nb": own})
    shown = card(await (await admin.client.get("/admin/journeys")).text(), "winback")
    samples = {
        part.split('"', 1)[0]: part.split("</div>")[0]
        for part in shown.split('class="sample" data-language="')[1:]
    }
    assert set(samples) == {"nb", "sv", "en"}
    assert "Torshov Sport: Hei Kari, lenge siden! Velkommen innom Torshov Sport." in samples["nb"]
    assert "Svar STOPP for å melde deg av" in samples["nb"]
    assert 'data-segments="2"' in samples["nb"]
    assert "2 SMS · GSM-7 · " in samples["nb"]
    for language, name, footer in (
        ("sv", "Karin", "Svara STOPP för att avsluta"),
        ("en", "Kate", "Reply STOP to opt out"),
    ):
        assert "lenge siden" not in samples[language]
        assert name in samples[language]
        assert footer in samples[language]
        assert 'data-segments="1"' in samples[language]


async def test_a_web_address_is_shown_and_sized_as_the_short_link_members_get(
    admin: Admin, owner: int
) -> None:
    await admin.signed_in(OWNER)
    address = "https://www.torshov-sport.no/kampanjer/vinter-2026/utvalgte-varer?utm_source=sms"
    own = "Hei {first_name}! Nytt i {club}: " + address
    await admin.post("/admin/journeys/winback", {"active": "on", "text_nb": own})
    shown = card(await (await admin.client.get("/admin/journeys")).text(), "winback")
    nb = shown.split('class="sample" data-language="nb"')[1].split("</div>")[0]
    assert address not in nb
    # The admin fixture's public URL, and a token as long as the sender's.
    assert "http://127.0.0.1:8080/c/xxxxxxxxxxxxxxxx" in nb
    assert 'data-segments="1"' in nb


async def test_clearing_a_text_goes_back_to_the_catalog_wording_in_that_language(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    texts = {"text_nb": "Hei {first_name}!", "text_en": "Hi {first_name}!"}
    await admin.post("/admin/journeys/welcome", {"active": "on", **texts})
    await admin.post("/admin/journeys/welcome", {"active": "on", **texts, "text_en": ""})
    assert (await journeys_of(db, club))["welcome"]["texts"] == {"nb": "Hei {first_name}!"}
    page = card(await (await admin.client.get("/admin/journeys")).text(), "welcome")
    english = page.split('data-language="en"')[1].split("</div>")[0]
    assert "Thanks for joining Torshov Sport" in english


async def test_the_catalog_wording_typed_in_is_not_kept_as_an_own_text(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Kept, it would stay frozen when the catalog's wording changes."""
    await admin.signed_in(OWNER)
    wording = journeys.catalog_wording("birthday", "sv")
    await admin.post("/admin/journeys/birthday", {"active": "on", "text_sv": wording})
    assert (await journeys_of(db, club))["birthday"]["texts"] is None


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


async def test_the_coupon_and_control_group_are_set_and_shown_in_the_list(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await add_template(db, club, "autumn")
    await add_template(db, club, "retired", active=False)
    await admin.signed_in(OWNER)
    page = card(await (await admin.client.get("/admin/journeys")).text(), "winback")
    # The club's active templates are offered, by what they give.
    assert '<option value="autumn">20 % rabatt</option>' in page
    assert 'value="retired"' not in page
    assert "Ingen kupong · Ingen kontrollgruppe" in page

    response = await admin.post(
        "/admin/journeys/winback", {"active": "on", "coupon": "autumn", "control": "15"}
    )
    assert response.status == 303
    found = (await journeys_of(db, club))["winback"]
    assert (found["coupon"], found["control"]) == ("autumn", 15)
    page = card(await (await admin.client.get("/admin/journeys")).text(), "winback")
    assert "Kupong: 20 % rabatt · 15 % holdes utenfor som kontrollgruppe" in page
    assert '<option value="autumn" selected>' in page
    assert 'name="control" type="number"' in page
    assert 'value="15"' in page
    # The catalog's wording now carries the coupon's line, in the sample and the placeholder.
    assert "Kupongkode: ABCD-2345" in page

    # A form without the fields leaves them as they are; empty ones take them away.
    await admin.post("/admin/journeys/winback", {"active": "on"})
    found = (await journeys_of(db, club))["winback"]
    assert (found["coupon"], found["control"]) == ("autumn", 15)
    await admin.post("/admin/journeys/winback", {"active": "on", "coupon": "", "control": ""})
    found = (await journeys_of(db, club))["winback"]
    assert (found["coupon"], found["control"]) == (None, 0)


async def test_a_deactivated_coupon_the_journey_gives_is_kept_when_saved_again(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await add_template(db, club, "autumn")
    await admin.signed_in(OWNER)
    await admin.post("/admin/journeys/winback", {"active": "on", "coupon": "autumn"})

    def retire(session: Session) -> None:
        for template in coupons.templates(session, club):
            template.active = False

    await db.run(retire)
    page = card(await (await admin.client.get("/admin/journeys")).text(), "winback")
    assert '<option value="autumn" selected>' in page
    response = await admin.post("/admin/journeys/winback", {"active": "on", "coupon": "autumn"})
    assert response.status == 303
    assert (await journeys_of(db, club))["winback"]["coupon"] == "autumn"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"control": "51"}, "control", "helt tall fra 0 til 50"),
        ({"control": "-1"}, "control", "helt tall fra 0 til 50"),
        ({"control": "ti"}, "control", "helt tall fra 0 til 50"),
        ({"control": "12.5"}, "control", "helt tall fra 0 til 50"),
        ({"coupon": "nothing"}, "coupon", "velg en i listen"),
        ({"coupon": "theirs"}, "coupon", "velg en i listen"),
        ({"coupon": "retired"}, "coupon", "velg en i listen"),
        ({"coupon": "", "text_nb": "Koden: {coupon_code}"}, "coupon", "velg en kupong"),
    ],
)
async def test_a_bad_coupon_or_control_is_named_beside_it_and_nothing_changes(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    other_club: int,
    data: dict,
    field: str,
    message: str,
) -> None:
    await add_template(db, club, "autumn")
    await add_template(db, club, "retired", active=False)
    await add_template(db, other_club, "theirs")
    await admin.signed_in(OWNER)
    await admin.post("/admin/journeys/winback", {"active": "on", "coupon": "", "control": "5"})
    before = await journeys_of(db, club)
    response = await admin.post(
        "/admin/journeys/winback", {"coupon": "autumn", "control": "10", **data}
    )
    assert response.status == 422
    page = await response.text()
    error = f"journey-winback-{field}-error"
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
    refused = await admin.post("/admin/journeys/welcome", {"control": "20", "coupon": ""})
    assert refused.status == 403
    assert await journeys_of(db, club) == before


async def test_without_the_csrf_token_403_and_nothing_changes(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    before = await journeys_of(db, club)
    response = await admin.client.post(
        "/admin/journeys/welcome", data={"active": "on", "control": "20"}, allow_redirects=False
    )
    assert response.status == 403
    assert await journeys_of(db, club) == before


async def test_each_journey_is_folded_under_its_values_and_a_refused_one_comes_back_open(
    admin: Admin, owner: int
) -> None:
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/journeys")).text()
    for trigger in journeys.TRIGGERS:
        assert '<details class="edit">' in card(page, trigger)
    assert "Vent etter innmelding: 24 timer" in card(page, "welcome")
    token = await admin.csrf()
    refused = await admin.client.post(
        "/admin/journeys/birthday", data={"csrf_token": token, "control": "99"}
    )
    assert refused.status == 422
    page = await refused.text()
    assert '<details class="edit" open>' in card(page, "birthday")
    assert '<details class="edit">' in card(page, "welcome")
