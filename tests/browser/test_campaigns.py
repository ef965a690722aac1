"""Campaigns in a real browser: compose with the live SMS counter (which must size texts as the
server does), preview, schedule for tomorrow and find it listed; send one now, plan it as the
scheduler would, and see its recipients on its page."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect
from sqlalchemy.orm import Session

import locales
from store.database import Database
from store.models import Program
from store.outreach import campaigns, segments
from tests.browser.conftest import Demo, LiveServer, Screens, on_database, sign_in

OSLO = ZoneInfo("Europe/Oslo")

# Texts whose size the page and the server must agree on: plain, long, the extension table,
# typographic characters to_gsm7 replaces, an emoji, Norwegian letters, placeholders.
TEXTS = [
    "Hei {first_name}!",
    "Tilbud " * 21,
    "Pris: 100€ [kun i dag] ^_^ {club}",
    "«Sitat» – og så … mer med “anførsel”",
    "Hei {first_name} 😀 god jul!",
    "Ærlig talt: ÆØÅ æøå ÄÖ äö, {points} poeng og {tier}.",
    "x" * 600,
    "Kode {coupon_code} {{ikke et felt}}",
    "{club}: begynner med klubbens navn, som ikke settes foran igjen",
]


async def _server_sizes(db: Database, club: int, texts: list[str]) -> list[tuple[str, int, int]]:
    """Each text sized as store.outreach.campaigns.sample_text sizes it (locales.sms.segments)."""

    def work(session: Session) -> list[tuple[str, int, int]]:
        program = session.get(Program, club)
        assert program is not None
        values = campaigns.sample_values(session, program, "nb")
        sizes = []
        for text in texts:
            sent = campaigns.compose(text.strip().format_map(values), "nb", program.name)
            size = locales.segments(sent)
            sizes.append((size.encoding, size.units, size.segments))
        return sizes

    return await db.run(work)


def counter(page: Any) -> Any:
    return page.locator("#count-nb")


def test_compose_count_preview_and_schedule_a_campaign(
    page: Any, live_server: LiveServer, demo: Demo, demo_url: str, screens: Screens
) -> None:
    sign_in(page)
    page.get_by_role("link", name="Kampanjer").click()
    expect(page.get_by_role("heading", name="Kampanjer", level=1)).to_be_visible()
    expect(page.get_by_text("Ingen kampanjer ennå")).to_be_visible()
    screens(page, "campaigns-empty")

    page.get_by_role("link", name="Ny kampanje").click()
    expect(page).to_have_url(re.compile(r"/admin/campaigns/new$"))
    page.get_by_label("Navn (bare for deg)").fill("Julesalg")
    text = page.get_by_label("Norsk", exact=True)
    text.fill("Hei {first_name}! Julesalg i {club} hele uka.")
    expect(counter(page)).to_contain_text("1 SMS · GSM-7")
    expect(counter(page)).to_have_attribute("data-segments", "1")
    screens(page, "compose-one-segment")

    # Past 160 characters with the opt-out line: two segments of 153.
    text.press("End")
    text.type(" Alt av ski og skisko, jakker og bukser til halv pris. Velkommen innom oss!")
    text.type(" Vi har åpent hver dag.")
    expect(counter(page)).to_have_attribute("data-segments", "2")
    expect(counter(page)).to_contain_text("/306")
    screens(page, "compose-two-segments")

    # An emoji turns the text into UCS-2: 67 characters a segment.
    text.press("End")
    text.type(" 🎄")
    expect(counter(page)).to_have_attribute("data-encoding", "UCS-2")
    expect(counter(page)).to_contain_text("UCS-2")
    js_segments = int(counter(page).get_attribute("data-segments"))
    assert js_segments >= 3
    screens(page, "compose-ucs2")

    # The page's counter agrees with the server on a handful of texts.
    in_page = [
        page.evaluate(
            "t => { const s = window.KlubbCampaigns.measure(t, 'nb');"
            " return [s.encoding, s.units, s.segments]; }",
            sample,
        )
        for sample in TEXTS
    ]
    on_server = on_database(demo_url, lambda db: _server_sizes(db, demo.club, TEXTS))
    assert [tuple(size) for size in in_page] == on_server

    page.get_by_label("Engelsk", exact=True).fill("Hi {first_name}! Christmas sale at {club}.")
    page.get_by_label("Kontrollgruppe").fill("10")
    page.get_by_label("Planlegg til senere").check()
    tomorrow = dt.datetime.now(OSLO).date() + dt.timedelta(days=1)
    # Typed as the club writes dates (a browser's picker would show its own order).
    page.locator("#send_at").fill(f"{tomorrow:%d.%m.%Y} 10:00")
    screens(page, "compose-filled")

    page.get_by_role("button", name="Forhåndsvis").click()
    expect(page.get_by_role("heading", name="Før du sender: Julesalg")).to_be_visible()
    expect(page.locator('[data-rail="matching"] td')).to_have_text("2")
    expect(page.locator('[data-rail="no_consent"] td')).to_have_text("0")
    # The server's own figure, as the counter showed it.
    nb = page.locator('.sample[data-language="nb"] .size')
    expect(nb).to_have_attribute("data-segments", str(js_segments))
    expect(nb).to_have_attribute("data-encoding", "UCS-2")
    expect(page.locator('.sample[data-language="nb"] pre')).to_contain_text("Hei Kristoffer!")
    screens(page, "preview")

    screens.on_phone(page, "preview-phone")

    # Back to edit keeps what was typed; then on to the preview and schedule it.
    page.get_by_role("button", name="Tilbake og endre").click()
    expect(page.get_by_label("Norsk", exact=True)).to_have_value(re.compile(r"hver dag\. 🎄$"))
    expect(page.get_by_label("Kontrollgruppe")).to_have_value("10")
    page.get_by_role("button", name="Forhåndsvis").click()
    page.get_by_role("button", name="Planlegg", exact=True).click()

    expect(page).to_have_url(re.compile(r"/admin/campaigns/\d+$"))
    expect(page.get_by_role("heading", name="Julesalg", level=1)).to_be_visible()
    expect(page.locator("[data-status]")).to_have_text("Planlagt")
    expect(page.get_by_text("10:00", exact=False).first).to_be_visible()
    screens(page, "scheduled")

    page.get_by_role("link", name="Kampanjer", exact=True).first.click()
    row = page.locator("li[data-campaign]").filter(has_text="Julesalg")
    expect(row).to_contain_text("Planlagt")
    screens(page, "campaigns-list")
    screens.on_phone(page, "campaigns-list-phone")


def test_bad_input_is_named_next_to_its_field(
    page: Any, live_server: LiveServer, demo: Demo, screens: Screens
) -> None:
    sign_in(page)
    page.goto("/admin/campaigns/new")
    page.get_by_label("Norsk", exact=True).fill("Hei {frist_name}!")
    page.get_by_label("Kontrollgruppe").fill("70")
    page.get_by_role("button", name="Forhåndsvis").click()
    expect(page.get_by_role("alert")).to_contain_text("Noe må rettes")
    expect(page.locator("#name-error")).to_contain_text("Gi kampanjen et navn")
    expect(page.locator("#text_nb-error")).to_contain_text("Ukjent felt {frist_name}")
    expect(page.locator("#control-error")).to_contain_text("0 til 50")
    expect(page.get_by_label("Norsk", exact=True)).to_have_value("Hei {frist_name}!")
    screens(page, "errors")
    screens.on_phone(page, "errors-phone")


def test_send_now_then_planned_shows_its_recipients_and_can_be_cancelled(
    page: Any, live_server: LiveServer, demo: Demo, demo_url: str, screens: Screens
) -> None:
    sign_in(page)
    page.goto(f"/admin/campaigns/new?members={demo.members['Kari']},{demo.members['Ola']}")
    expect(page.get_by_label("Mottakere")).to_have_value("members")
    expect(page.get_by_text("Valgt: Kari, Ola")).to_be_visible()
    page.get_by_label("Navn (bare for deg)").fill("Takk for i år")
    page.get_by_label("Norsk", exact=True).fill("Hei {first_name}, takk for i år!")
    page.get_by_role("button", name="Forhåndsvis").click()
    expect(page.locator('[data-rail="recipients"] td')).to_have_text("2")
    page.get_by_role("button", name="Send nå").click()
    expect(page).to_have_url(re.compile(r"/admin/campaigns/\d+$"))
    expect(page.get_by_text("Resultatene kommer når kampanjen er sendt.")).to_be_visible()
    screens(page, "sent-now-before-planning")

    # The planner of the running scheduler, run once on the live server's database.
    from scheduler.jobs import plan_broadcasts

    assert on_database(demo_url, plan_broadcasts) == 2
    page.reload()
    expect(page.locator('[data-kpi="planned"]')).to_have_text("2")
    recipients = page.locator("ul.recipients li")
    expect(recipients).to_have_count(2)
    expect(recipients.filter(has_text="Kari")).to_contain_text("+4791234567")
    expect(recipients.filter(has_text="Ola")).to_contain_text("I kø")
    screens(page, "planned-recipients")
    screens.on_phone(page, "planned-recipients-phone")

    page.get_by_role("link", name="Avbryt kampanjen").click()
    expect(page.get_by_role("heading", name=re.compile("Avbryte"))).to_be_visible()
    screens(page, "cancel-confirm")
    page.get_by_role("button", name="Ja, avbryt kampanjen").click()
    expect(page.get_by_role("status")).to_contain_text("2 meldinger i kø blir ikke sendt")
    expect(page.locator("[data-status]")).to_have_text("Avbrutt")
    screens(page, "cancelled")


async def _segment_of_kari(db: Database, demo: Demo) -> None:
    def work(session: Session) -> None:
        chosen = {"field": "member", "op": "in", "value": [demo.members["Kari"]]}
        program = session.get(Program, demo.club)
        segments.save(session, program, "Bare Kari", chosen, dt.datetime.now(dt.UTC))

    await db.run(work)


def test_the_audience_is_counted_beside_its_picker(
    page: Any, live_server: LiveServer, demo: Demo, demo_url: str, screens: Screens
) -> None:
    """Before any preview: how many the audience holds and how many can get the message now,
    counted again by the server as another audience is chosen."""
    on_database(demo_url, lambda db: _segment_of_kari(db, demo))
    sign_in(page, "/admin/campaigns/new", r"/admin/campaigns/new$")
    reach = page.locator("#audience-reach")
    expect(reach).to_have_text("2 medlemmer i målgruppen · 2 kan få meldingen nå")
    page.get_by_label("Mottakere").select_option(label="Segment: Bare Kari")
    expect(reach).to_have_text("1 medlem i målgruppen · 1 kan få meldingen nå")
    screens(page, "audience-counted")
    screens.on_phone(page, "audience-counted-phone")
    page.get_by_label("Mottakere").select_option("everyone")
    expect(reach).to_have_text("2 medlemmer i målgruppen · 2 kan få meldingen nå")
