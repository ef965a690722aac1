"""Settings and journeys in a real browser: the monthly cap and quiet hours, a journey turned
off with a Norwegian text of its own, an API key shown once and revoked; on a laptop and a
phone."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from store.clubs import club_rules, programs
from store.database import Database
from store.outreach import campaigns, journeys
from tests.browser.conftest import LAPTOP, PHONE, Demo, LiveServer, Screens, on_database, sign_in


def _stored(url: str, club: int) -> dict[str, Any]:
    def read(session: Any) -> dict[str, Any]:
        program = programs.get(session, club)
        found = {j.trigger: j for j in journeys.all_of(session, club)}
        return {
            "cap": program.marketing_per_month,
            "quiet": (program.quiet_start, program.quiet_end),
            "birthday": found.get("birthday"),
        }

    async def use(db: Database) -> dict[str, Any]:
        return await db.run(read)

    return on_database(url, use)


def test_cap_quiet_hours_a_journey_and_an_api_key(
    page: Any, live_server: LiveServer, demo: Demo, demo_url: str, screens: Screens
) -> None:
    sign_in(page, start="/admin/settings", lands=r"/admin/settings$")
    expect(page.get_by_role("heading", name="Innstillinger", level=1)).to_be_visible()
    screens(page, "settings")

    # Each section shows its values on one line, its form folded under "Endre".
    messages = page.locator("#messages")
    expect(messages.locator(".current")).to_contain_text("2 per 30 dager")
    expect(messages.get_by_label("Markedsføringsmeldinger per medlem")).to_be_hidden()
    messages.locator("summary", has_text="Endre").click()
    # A small number in a small box.
    box = messages.get_by_label("Markedsføringsmeldinger per medlem").bounding_box()
    assert box is not None
    assert box["width"] <= 160
    # A cap of 4 is refused beside its field (the form open); the rest of what was typed stays.
    messages.get_by_label("Markedsføringsmeldinger per medlem").fill("4")
    messages.get_by_label("Fra").fill("21")
    messages.get_by_role("button", name="Lagre").click()
    expect(page.locator("#messages-marketing_per_month-error")).to_contain_text("fra 1 til 3")
    expect(page.locator("#messages-quiet_start")).to_have_value("21")
    page.locator("#messages").scroll_into_view_if_needed()
    screens(page, "messages-refused")
    assert _stored(demo_url, demo.club)["cap"] == 2

    page.locator("#messages-marketing_per_month").fill("1")
    page.locator("#messages-quiet_end").fill("8")
    page.locator("#messages").get_by_role("button", name="Lagre").click()
    expect(page).to_have_url(re.compile(r"saved=messages#messages$"))
    expect(page.locator("#messages").get_by_role("status")).to_have_text("Lagret.")
    expect(page.locator("#messages-marketing_per_month")).to_have_value("1")
    expect(page.locator("#messages .current")).to_contain_text("1 per 30 dager")
    screens(page, "messages-saved")
    stored = _stored(demo_url, demo.club)
    assert (stored["cap"], stored["quiet"]) == (1, (21, 8))

    # The birthday journey: on the page as off (not set up yet); turned on with a text, then off.
    page.get_by_role("link", name="Automatiske meldinger").first.click()
    expect(page.get_by_role("heading", name="Automatiske meldinger", level=1)).to_be_visible()
    birthday = page.locator("#journey-birthday")
    text = birthday.get_by_label("Norsk")
    expect(text).to_have_attribute("placeholder", re.compile("Gratulerer med dagen"))
    screens(page, "journeys")
    height = page.evaluate("document.documentElement.scrollHeight")
    # Folded, a journey is its name, state and one line of settings: under 300 px each.
    assert height < 300 * len(journeys.TRIGGERS), f"the journeys page is {height}px long folded"
    birthday.locator("summary", has_text="Endre").click()
    birthday.get_by_label("Send denne meldingen").check()
    text.fill("Gratulerer, {first_name}! Kom innom {club} for en kake.")
    birthday.get_by_role("button", name="Lagre").click()
    expect(page.locator("#journey-birthday").get_by_role("status")).to_have_text("Lagret.")
    birthday = page.locator("#journey-birthday")
    birthday.locator("summary", has_text="Endre").click()
    birthday.get_by_label("Send denne meldingen").uncheck()
    birthday.get_by_label("Norsk").fill("Gratulerer, {first_name}! Hilsen {club}")
    birthday.get_by_role("button", name="Lagre").click()
    expect(page.locator("#journey-birthday .status")).to_have_text("Av")
    expect(page.locator("#journey-birthday").get_by_label("Norsk")).to_have_value(
        "Gratulerer, {first_name}! Hilsen {club}"
    )
    screens(page, "journey-saved")
    journey = _stored(demo_url, demo.club)["birthday"]
    assert journey.status == campaigns.PAUSED
    assert journey.texts["nb"] == "Gratulerer, {first_name}! Hilsen {club}"

    # A bad placeholder is named under the text, and the journey keeps what it had.
    page.locator("#journey-birthday summary", has_text="Endre").click()
    page.locator("#journey-birthday").get_by_label("Norsk").fill("Hei {frist_name}")
    page.locator("#journey-birthday").get_by_role("button", name="Lagre").click()
    expect(page.locator("#journey-birthday-text-nb-error")).to_contain_text("bruk bare")
    screens(page, "journey-refused")

    page.set_viewport_size(PHONE)
    page.goto("/admin/journeys#journey-birthday")
    screens(page, "journeys-phone")
    page.set_viewport_size(LAPTOP)

    # An API key: its secret on the next page once, never on the list; then revoked.
    page.goto("/admin/settings#api-keys")
    keys = page.locator("#api-keys")
    keys.locator("summary", has_text="Ny nøkkel").click()
    keys.get_by_label("Navn på nøkkelen").fill("Kasse 1")
    keys.get_by_role("button", name="Lag nøkkel").click()
    expect(page.get_by_role("heading", name="Ny API-nøkkel")).to_be_visible()
    secret = page.get_by_label("Nøkkel").input_value()
    assert re.fullmatch(r"klubb_[0-9a-f]{8}_[A-Za-z0-9_-]{32}", secret)
    screens(page, "key-created")
    page.get_by_role("link", name="Jeg har kopiert den").click()
    expect(page.locator('[data-key="Kasse 1"]')).to_be_visible()
    assert secret not in page.content()
    page.reload()
    assert secret not in page.content()
    page.locator('[data-key="Kasse 1"]').get_by_role("link", name="Trekk tilbake").click()
    expect(page.get_by_text("Trekke tilbake nøkkelen Kasse 1?")).to_be_visible()
    screens(page, "key-revoke-confirm")
    page.get_by_role("button", name="Trekk tilbake Kasse 1").click()
    expect(page.locator('[data-key="Kasse 1"] .status')).to_contain_text("Trukket tilbake")
    screens(page, "key-revoked")

    page.set_viewport_size(PHONE)
    page.goto("/admin/settings")
    screens(page, "settings-phone")
    height = page.evaluate("document.documentElement.scrollHeight")
    # Folded, a section is its heading, its values and "Endre": under 400 px each on a phone.
    sections = page.locator("main section").count()
    assert height < 400 * sections, f"the settings page is {height}px long on a phone, folded"
    # Keyboard: the first section's "Endre" takes the focus with a visible outline.
    page.locator("#club summary").focus()
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused == "solid"
    assert len(screens.taken) == 11


def _rules(url: str, club: int) -> dict[str, Any]:
    def read(session: Any) -> dict[str, Any]:
        return {
            "cards": [(c.category, c.every) for c in club_rules.punch_cards(session, club)],
            "bonuses": [(b.value, b.extra_points) for b in club_rules.bonus_rules(session, club)],
            "periods": [(m.name, m.multiplier) for m in club_rules.multipliers(session, club)],
            "questions": [q.key for q in programs.questions(session, club)],
        }

    async def use(db: Database) -> dict[str, Any]:
        return await db.run(read)

    return on_database(url, use)


def test_punch_cards_bonus_points_periods_and_a_question_removed(
    page: Any, live_server: LiveServer, demo: Demo, demo_url: str, screens: Screens
) -> None:
    sign_in(page, start="/admin/settings", lands=r"/admin/settings$")

    # A punch card needs its free item first: a coupon of the kind Klippekort.
    coupons_section = page.locator("#coupons")
    coupons_section.locator("summary", has_text="Legg til kupong").click()
    coupons_section.get_by_label("Kort navn").fill("gratis-kaffe")
    coupons_section.get_by_label("Type").select_option("punch")
    coupons_section.get_by_label("Hva den gir, på norsk").fill("en gratis kaffe")
    coupons_section.get_by_label("Gyldig i").fill("30")
    coupons_section.get_by_role("button", name="Legg til kupong").click()
    expect(page.locator("#punch-cards")).to_contain_text("Legg til klippekort")

    cards = page.locator("#punch-cards")
    cards.locator("summary", has_text="Legg til klippekort").click()
    cards.get_by_label("Kategori").fill("Kaffe")
    cards.get_by_label("Antall kjøp per kupong").fill("1")
    cards.get_by_role("button", name="Legg til klippekort").click()
    expect(page.locator("#card-new-every-error")).to_contain_text("fra 2 til 50")
    screens(page, "card-refused")
    page.locator("#card-new-every").fill("10")
    page.locator("#card-new").get_by_role("button", name="Legg til klippekort").click()
    expect(page.locator("#punch-cards")).to_contain_text("Hvert 10. kjøp i Kaffe")

    bonus = page.locator("#bonus-rules")
    bonus.locator("summary", has_text="Legg til ekstrapoeng").click()
    bonus.get_by_label("Gjelder").select_option("brand")
    bonus.get_by_label("Kategori eller merke").fill("Torshov")
    bonus.get_by_label("Ekstra poeng").fill("2")
    bonus.get_by_role("button", name="Legg til ekstrapoeng").click()
    expect(page.locator("#bonus-rules")).to_contain_text("Merke Torshov: 2 ekstra poeng")

    periods = page.locator("#multipliers")
    periods.locator("summary", has_text="Legg til periode").click()
    periods.get_by_label("Navn").fill("Black Week")
    periods.get_by_label("Første dag").fill("23.11.2026")
    periods.get_by_label("Siste dag").fill("29.11.2026")
    periods.get_by_label("Poengene ganges med").fill("2")
    periods.get_by_role("button", name="Legg til periode").click()
    expect(page.locator("#multipliers")).to_contain_text("Black Week: 2 ganger poengene")
    screens.on_phone(page, "rules-phone")

    # The card's coupon can't be retired while the card is on.
    page.locator("#coupons").get_by_role("button", name="Trekk tilbake").click()
    expect(page.locator("#coupons .field-error")).to_contain_text("Slå av kortet")

    page.goto("/admin/settings#questions")
    page.locator("#questions").get_by_role("link", name="Fjern").click()
    expect(page.get_by_role("heading", name="Fjern profilspørsmål")).to_be_visible()
    screens(page, "question-remove-confirm")
    page.get_by_role("button", name="Fjern spørsmålet").click()
    expect(page).to_have_url(re.compile(r"saved=questions#questions$"))

    assert _rules(demo_url, demo.club) == {
        "cards": [("Kaffe", 10)],
        "bonuses": [("Torshov", 2)],
        "periods": [("Black Week", 2)],
        "questions": ["first_name", "birthday"],
    }
