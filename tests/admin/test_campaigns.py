"""The campaign pages of the admin, on SQLite and PostgreSQL: compose, preview with every guard
rail counted, schedule or send now (planned and sent as the scheduler does), cancel, the report,
errors shown next to their fields with nothing saved, and who may see what."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

import locales
from scheduler import sender
from store.clubs import programs
from store.database import Database
from store.loyalty import coupons
from store.members import members
from store.models import Campaign, OutboxMessage, Program
from store.outreach import campaigns, segments
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account, create_member
from tests.conftest import CLUB_NUMBER
from tests.scheduler.campaign_helpers import RecordingGateway, plan

pytestmark = pytest.mark.usefixtures("cheap_argon2")

OSLO = ZoneInfo("Europe/Oslo")
FOOTER_NB = "Svar STOPP for å melde deg av"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def form(**fields: str) -> dict[str, str]:
    """A compose form as the browser posts it: a Norwegian text to everyone, now."""
    base = {
        "name": "Vintersalg",
        "audience": "everyone",
        "members": "",
        "text_nb": "Hei {first_name}! Vintersalg i {club}.",
        "text_sv": "",
        "text_en": "",
        "coupon": "",
        "control": "0",
        "when": "now",
        "send_at": "",
    }
    return base | fields


def tomorrow_at_ten() -> str:
    day = dt.datetime.now(OSLO).date() + dt.timedelta(days=1)
    return f"{day.isoformat()}T10:00"


async def campaign_count(db: Database) -> int:
    return await db.run(lambda s: s.scalar(select(func.count()).select_from(Campaign)) or 0)


async def only_campaign(db: Database) -> Campaign:
    return await db.run(lambda s: s.scalars(select(Campaign)).one())


async def over_the_cap(db: Database, club: int, member_id: int, phone: str) -> None:
    """Two marketing messages sent to the member yesterday: the club's monthly cap (2)."""

    def work(session: Session) -> None:
        sent = utc_now() - dt.timedelta(days=1)
        session.execute(
            insert(OutboxMessage),
            [
                {
                    "program_id": club,
                    "member_id": member_id,
                    "occasion": f"earlier-{i}",
                    "kind": "marketing",
                    "status": "sent",
                    "to_number": phone,
                    "from_number": CLUB_NUMBER,
                    "segments": 1,
                    "attempts": 1,
                    "created_at": sent,
                    "send_after": sent,
                    "sent_at": sent,
                }
                for i in range(2)
            ],
        )

    await db.run(work)


def rail(html: str, name: str) -> str:
    """The figure of one row of the preview's funnel."""
    found = re.search(rf'data-rail="{name}">\s*<th[^>]*>.*?</th>\s*<td>(.*?)</td>', html, re.S)
    assert found, f"no {name} row in the preview"
    return found.group(1).replace("\u2212", "-").strip()


def error_after(html: str, field_id: str) -> str:
    """The error shown with a field (the paragraph its aria-describedby names)."""
    found = re.search(rf'<p class="field-error" id="{field_id}-error">(.*?)</p>', html, re.S)
    assert found, f"no error shown for {field_id}"
    return found.group(1)


@pytest.fixture
async def signed_in(admin: Admin, owner: int) -> Admin:
    return await admin.signed_in(OWNER)


# --- compose and preview ------------------------------------------------------------------------


async def test_the_compose_form_starts_with_chosen_members(
    signed_in: Admin, db: Database, club: int
) -> None:
    kari = await create_member(db, club, "+4791234567", "Kari")
    ola = await create_member(db, club, "+4798765432", "Ola")
    response = await signed_in.client.get(f"/admin/campaigns/new?members={kari},{ola}")
    assert response.status == 200
    html = await response.text()
    assert '<option value="members" selected>2 valgte medlemmer</option>' in html
    assert f'name="members" value="{kari},{ola}"' in html
    assert "Valgt: Kari, Ola" in html
    # What the counter sizes texts with: the club's name, the opt-out line, GSM-7's alphabet.
    assert "Torshov Sport" in html
    assert FOOTER_NB in html


async def test_the_preview_counts_who_each_guard_rail_removes_and_saves_nothing(
    signed_in: Admin, db: Database, club: int
) -> None:
    for i, name in enumerate(["Kari", "Ola", "Per"]):
        await create_member(db, club, f"+479100000{i}", name)
    await create_member(db, club, "+4791000009", "Stina", status=members.STOPPED)
    capped = await create_member(db, club, "+4791000008", "Nils")
    await over_the_cap(db, club, capped, "+4791000008")

    response = await signed_in.post("/admin/campaigns/preview", form())
    assert response.status == 200
    html = await response.text()
    assert rail(html, "matching") == "5"
    assert rail(html, "no_consent") == "-1"
    assert rail(html, "capped") == "-1"
    assert rail(html, "held_out") == "0"
    assert rail(html, "recipients") == "3"
    # The text as a sample member gets it, sized by the server.
    assert f"Torshov Sport: Hei Kristoffer! Vintersalg i Torshov Sport.\n{FOOTER_NB}" in html
    assert 'data-segments="1" data-encoding="GSM-7"' in html
    assert re.search(r'data-figure="segments">3<', html)
    assert await campaign_count(db) == 0


async def test_the_control_group_is_held_out_in_the_preview(
    signed_in: Admin, db: Database, club: int
) -> None:
    for i in range(40):
        await create_member(db, club, f"+47920000{i:02d}", f"M{i}")
    html = await (await signed_in.post("/admin/campaigns/preview", form(control="50"))).text()
    held = int(rail(html, "held_out").removeprefix("-"))
    recipients = int(rail(html, "recipients"))
    assert 0 < held < 40
    assert held + recipients == 40


async def test_the_estimate_uses_the_price_of_a_segment_and_each_language(
    signed_in: Admin, db: Database, club: int
) -> None:
    await create_member(db, club, "+4791000001", "Kari")
    await create_member(db, club, "+46701234567", "Sven")

    def set_language(session: Session) -> None:
        program = session.get(Program, club)
        program.sms_price_minor = 50
        for member in session.scalars(select(members.Member)):
            member.language = "sv" if member.phone.startswith("+46") else "nb"

    await db.run(set_language)
    long_text = "Langt tilbud " * 15  # two GSM-7 segments with the footer
    response = await signed_in.post(
        "/admin/campaigns/preview", form(text_nb=long_text, text_sv="Hej {first_name} 😀")
    )
    html = await response.text()
    assert re.search(r'data-language="nb">\s*<td>Norsk</td>\s*<td>1</td>\s*<td>2 \(GSM-7\)', html)
    assert re.search(r'data-language="sv">\s*<td>Svensk</td>\s*<td>1</td>\s*<td>1 \(UCS-2\)', html)
    assert re.search(r'data-figure="segments">3<', html)
    assert "1,50\xa0kr" in html or "1,50 kr" in html


# --- creating ---------------------------------------------------------------------------------


async def test_schedule_creates_the_campaign_with_its_texts(
    signed_in: Admin, db: Database, club: int
) -> None:
    at = tomorrow_at_ten()
    response = await signed_in.post(
        "/admin/campaigns",
        form(text_en="Hi {first_name}!", when="later", send_at=at, control="10"),
    )
    assert response.status == 303
    campaign = await only_campaign(db)
    assert response.headers["Location"] == f"/admin/campaigns/{campaign.id}"
    assert campaign.texts == {
        "nb": "Hei {first_name}! Vintersalg i {club}.",
        "en": "Hi {first_name}!",
    }
    assert campaign.status == campaigns.SCHEDULED
    assert campaign.control_percent == 10
    assert campaign.send_at == dt.datetime.fromisoformat(at).replace(tzinfo=OSLO)
    assert campaign.created_by == OWNER

    listing = await (await signed_in.client.get("/admin/campaigns")).text()
    assert f'href="/admin/campaigns/{campaign.id}">Vintersalg</a>' in listing
    assert "Planlagt" in listing
    page = await (await signed_in.client.get(f"/admin/campaigns/{campaign.id}")).text()
    assert "Hi {first_name}!" in page
    assert f"/admin/campaigns/{campaign.id}/cancel" in page


async def test_send_now_is_planned_and_sent_with_each_members_text(
    signed_in: Admin, db: Database, club: int
) -> None:
    kari = await create_member(db, club, "+4791234567", "Kari")
    await create_member(db, club, "+4798765432", "Ola")
    await create_member(db, club, "+4791000009", "Stina", status=members.STOPPED)
    response = await signed_in.post("/admin/campaigns", form())
    assert response.status == 303
    campaign = await only_campaign(db)
    now = utc_now()
    assert await plan(db, campaign.id, now=now) == 2
    # Sent as the scheduler's sender sends it, at a moment out of the club's quiet hours.
    moment = await db.run(
        lambda s: s.scalar(
            select(func.max(OutboxMessage.send_after)).where(
                OutboxMessage.campaign_id == campaign.id
            )
        )
    )
    gateway = RecordingGateway()
    clock = max(moment, now) + dt.timedelta(seconds=1)
    assert await sender.drain(db, gateway, lambda: clock) == 2
    bodies = await db.run(
        lambda s: dict(
            s.execute(
                select(OutboxMessage.member_id, OutboxMessage.body).where(
                    OutboxMessage.campaign_id == campaign.id
                )
            ).all()
        )
    )
    assert bodies[kari] == f"Torshov Sport: Hei Kari! Vintersalg i Torshov Sport.\n{FOOTER_NB}"
    assert len(bodies) == 2

    page = await (await signed_in.client.get(f"/admin/campaigns/{campaign.id}")).text()
    assert re.search(r'data-kpi="sent">2<', page)
    assert f'href="/admin/members/{kari}">Kari</a>' in page
    assert "+4791234567" in page


async def test_a_campaign_to_chosen_members_reaches_only_them(
    signed_in: Admin, db: Database, club: int
) -> None:
    if "member" not in segments.FIELDS:
        pytest.skip("store.outreach.segments has no member field yet")
    kari = await create_member(db, club, "+4791234567", "Kari")
    await create_member(db, club, "+4798765432", "Ola")
    preview = await signed_in.post(
        "/admin/campaigns/preview", form(audience="members", members=str(kari))
    )
    assert rail(await preview.text(), "recipients") == "1"
    response = await signed_in.post("/admin/campaigns", form(audience="members", members=str(kari)))
    assert response.status == 303
    campaign = await only_campaign(db)
    assert await plan(db, campaign.id, now=utc_now()) == 1
    planned = await db.run(
        lambda s: list(
            s.scalars(
                select(OutboxMessage.member_id).where(OutboxMessage.campaign_id == campaign.id)
            )
        )
    )
    assert planned == [kari]


async def test_a_coupon_campaign_names_its_coupon(
    signed_in: Admin, db: Database, club: int
) -> None:
    def template(session: Session) -> None:
        coupons.create_template(
            session,
            session.get(Program, club),
            key="xmas",
            kind=coupons.CAMPAIGN,
            benefit={"nb": "20 % rabatt", "en": "20% off"},
            valid_days=14,
        )

    await db.run(template)
    await create_member(db, club, "+4791234567", "Kari")
    fields = form(text_nb="Kode {coupon_code}", coupon="xmas")
    html = await (await signed_in.post("/admin/campaigns/preview", fields)).text()
    assert "Hver mottaker får sin egen kupong: 20 % rabatt" in html
    assert "Kode ABCD-2345" in html
    assert (await signed_in.post("/admin/campaigns", fields)).status == 303
    campaign = await only_campaign(db)
    assert campaign.coupon_template_id is not None


async def test_the_coupon_picker_names_what_a_coupon_gives_with_its_amount(
    signed_in: Admin, db: Database, club: int
) -> None:
    """A benefit written "{amount} rabatt" reads word for word as the member reads it in an
    SMS ("100 kr rabatt", locales.benefit), in the form and the preview, never as the raw
    template; the amount's space is no-break."""

    def template(session: Session) -> None:
        coupons.create_template(
            session,
            session.get(Program, club),
            key="hundred",
            kind=coupons.CAMPAIGN,
            benefit={"nb": "{amount} rabatt", "en": "{amount} off"},
            valid_days=14,
            discount_minor=10_000,
        )

    await db.run(template)
    await create_member(db, club, "+4791234567", "Kari")
    html = await (await signed_in.client.get("/admin/campaigns/new")).text()
    member_reads = locales.benefit("{amount} rabatt", "nb", amount_minor=10_000, currency="NOK")
    assert member_reads == "100 kr rabatt"
    assert '<option value="hundred">100\u00a0kr rabatt</option>' in html
    assert "{amount}" not in html.split('id="coupon"')[1].split("</select>")[0]
    fields = form(text_nb="Kode {coupon_code}", coupon="hundred")
    preview = await (await signed_in.post("/admin/campaigns/preview", fields)).text()
    assert "100\u00a0kr rabatt" in preview
    assert "100,00" not in preview


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"text_nb": "Hei {frist_name}"}, "text_nb", "Ukjent felt {frist_name}."),
        ({"text_nb": "Hei {first_name"}, "text_nb", "klammeparentes er ikke lukket"),
        ({"text_nb": "  ", "text_en": ""}, "texts", "Skriv meldingen på minst ett språk."),
        ({"text_nb": "x" * 641}, "text_nb", "Høyst 640 tegn."),
        ({"control": "60"}, "control", "Et helt tall fra 0 til 50."),
        ({"control": "ti"}, "control", "Et helt tall fra 0 til 50."),
        ({"control": "-1"}, "control", "Et helt tall fra 0 til 50."),
        ({"name": " "}, "name", "Gi kampanjen et navn"),
        ({"when": "later", "send_at": "2020-01-01T10:00"}, "send_at", "passert"),
        ({"when": "later", "send_at": "i morgen"}, "send_at", "Velg dato og klokkeslett."),
        ({"text_nb": "Kode {coupon_code}"}, "coupon", "Teksten bruker {coupon_code}"),
        ({"coupon": "nothing"}, "coupon", "Den kupongen finnes ikke lenger."),
        ({"audience": "segment:nobody"}, "audience", "Det segmentet finnes ikke lenger."),
        ({"audience": "members", "members": ""}, "audience", "Ingen medlemmer er valgt."),
        ({"audience": "members", "members": "1,x"}, "audience", "Listen over medlemmer"),
    ],
)
@pytest.mark.parametrize("path", ["/admin/campaigns/preview", "/admin/campaigns"])
async def test_bad_input_shows_the_form_again_with_the_error_and_saves_nothing(
    signed_in: Admin, db: Database, club: int, path: str, fields: dict, field_id: str, message: str
) -> None:
    response = await signed_in.post(path, form(**fields))
    assert response.status == 422
    html = await response.text()
    assert message in error_after(html, field_id)
    # What was typed is kept.
    assert "Noe må rettes" in html
    if "text_nb" in fields and fields["text_nb"].strip() and len(fields["text_nb"]) < 100:
        assert fields["text_nb"] in html
    assert await campaign_count(db) == 0


async def test_every_error_is_shown_at_once(signed_in: Admin, db: Database, club: int) -> None:
    response = await signed_in.post(
        "/admin/campaigns/preview",
        form(name="", text_nb="{oops}", text_sv="Hej {frist_name}", control="51"),
    )
    html = await response.text()
    for field_id in ("name", "text_nb", "text_sv", "control"):
        assert error_after(html, field_id)
    assert await campaign_count(db) == 0


async def test_back_to_edit_keeps_the_texts(signed_in: Admin) -> None:
    fields = form(text_sv="Hej {first_name}! Välkommen.", control="10")
    response = await signed_in.post("/admin/campaigns/edit", fields)
    html = await response.text()
    assert response.status == 200
    assert ">Hej {first_name}! Välkommen.</textarea>" in html
    assert 'value="10"' in html


# --- cancel -----------------------------------------------------------------------------------


async def test_cancel_asks_first_then_stops_the_campaign(
    signed_in: Admin, db: Database, club: int
) -> None:
    await create_member(db, club, "+4791234567", "Kari")
    await signed_in.post("/admin/campaigns", form())
    campaign = await only_campaign(db)
    await plan(db, campaign.id, now=utc_now())
    confirm = await signed_in.client.get(f"/admin/campaigns/{campaign.id}/cancel")
    assert "Ja, avbryt kampanjen" in await confirm.text()
    assert (await only_campaign(db)).status == campaigns.SENDING

    response = await signed_in.post(f"/admin/campaigns/{campaign.id}/cancel")
    assert response.status == 303
    assert response.headers["Location"] == f"/admin/campaigns/{campaign.id}?cancelled=1"
    assert (await only_campaign(db)).status == campaigns.CANCELLED
    page = await (await signed_in.client.get(response.headers["Location"])).text()
    assert "1 melding i kø blir ikke sendt" in page
    assert f"/admin/campaigns/{campaign.id}/cancel" not in page
    # Cancelling again changes nothing and is no error.
    again = await signed_in.post(f"/admin/campaigns/{campaign.id}/cancel")
    assert again.headers["Location"] == f"/admin/campaigns/{campaign.id}"


# --- who may ----------------------------------------------------------------------------------


async def make_campaign(db: Database, club: int) -> int:
    def work(session: Session) -> int:
        program = programs.get(session, club)
        assert program is not None
        return campaigns.create_broadcast(
            session,
            program,
            name="Theirs",
            texts={"sv": "Hej!"},
            segment=None,
            now=utc_now(),
            send_at=utc_now() + dt.timedelta(days=2),
        ).id

    return await db.run(work)


def routes_for(campaign_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", "/admin/campaigns"),
        ("GET", "/admin/campaigns/new"),
        ("POST", "/admin/campaigns/preview"),
        ("POST", "/admin/campaigns/edit"),
        ("POST", "/admin/campaigns"),
        ("GET", f"/admin/campaigns/{campaign_id}"),
        ("GET", f"/admin/campaigns/{campaign_id}/cancel"),
        ("POST", f"/admin/campaigns/{campaign_id}/cancel"),
    ]


async def request(admin: Admin, method: str, path: str) -> Any:
    if method == "GET":
        return await admin.client.get(path, allow_redirects=False)
    return await admin.post(path, form())


async def test_staff_may_not_see_or_send_campaigns(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    campaign_id = await make_campaign(db, club)
    await admin.signed_in(STAFF)
    for method, path in routes_for(campaign_id):
        response = await request(admin, method, path)
        assert response.status == 403, (method, path)
    assert await campaign_count(db) == 1
    assert (await only_campaign(db)).status == campaigns.SCHEDULED


async def test_another_clubs_campaign_is_not_found(
    signed_in: Admin, db: Database, other_club: int
) -> None:
    theirs = await make_campaign(db, other_club)
    for path in (f"/admin/campaigns/{theirs}", f"/admin/campaigns/{theirs}/cancel"):
        assert (await signed_in.client.get(path)).status == 404
    assert (await signed_in.post(f"/admin/campaigns/{theirs}/cancel")).status == 404
    assert (await signed_in.client.get("/admin/campaigns/99999999999999999999")).status == 404
    assert (await only_campaign(db)).status == campaigns.SCHEDULED
    listing = await (await signed_in.client.get("/admin/campaigns")).text()
    assert "Theirs" not in listing


async def test_the_other_clubs_owner_sees_their_own(
    admin: Admin, db: Database, other_club: int
) -> None:
    theirs = await make_campaign(db, other_club)
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    page = await admin.client.get(f"/admin/campaigns/{theirs}")
    assert page.status == 200
    assert "Schemalagd" in await page.text()


async def test_a_post_without_the_csrf_token_is_refused_and_saves_nothing(
    signed_in: Admin, db: Database, club: int
) -> None:
    response = await signed_in.client.post("/admin/campaigns", data=form(), allow_redirects=False)
    assert response.status == 403
    assert await campaign_count(db) == 0
    campaign_id = await make_campaign(db, club)
    refused = await signed_in.client.post(
        f"/admin/campaigns/{campaign_id}/cancel",
        data={"csrf_token": "wrong"},
        allow_redirects=False,
    )
    assert refused.status == 403
    assert (await only_campaign(db)).status == campaigns.SCHEDULED


async def test_without_a_session_pages_redirect_and_actions_get_401(client: Any) -> None:
    page = await client.get("/admin/campaigns/new", allow_redirects=False)
    assert page.status == 303
    action = await client.post("/admin/campaigns", data=form(), allow_redirects=False)
    assert action.status == 401
