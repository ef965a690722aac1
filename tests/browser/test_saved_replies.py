"""Saved replies in a real browser: the owner makes one at /admin/templates (a wrong placeholder
is refused beside its language first), then answers a member's text with it: picked in the
conversation, the box is filled for Kari and the counter sizes it; the fake gateway gets the
filled text. Without JavaScript the picker's button fills the box too. At 1280 px and 390 px."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from scheduler import sender
from store.clock import utc_now
from tests.browser.conftest import (
    PHONE,
    WIDE,
    Demo,
    LiveServer,
    Screens,
    on_database,
    sign_in,
)
from tests.browser.test_inbox import KARI, text
from tests.scheduler.campaign_helpers import RecordingGateway

WORDING = "Hei {first_name}! Du er {tier}-medlem hos {club}. Vi har åpent 10-18 i dag."
FILLED = "Hei Kari! Du er Bronse-medlem hos Torshov Sport. Vi har åpent 10-18 i dag."


def test_answer_with_a_saved_reply(
    page: Any, browser: Any, live_server: LiveServer, demo: Demo, demo_url: str, screens: Screens
) -> None:
    text(page, "har dere åpent i dag?")
    sign_in(page)
    page.set_viewport_size(WIDE)
    page.goto("/admin/inbox")
    page.get_by_role("link", name="Lagrede svar").click()
    expect(page).to_have_url(re.compile(r"/admin/templates$"))
    expect(page.get_by_text("Ingen lagrede svar ennå.")).to_be_visible()
    page.get_by_role("link", name="Nytt lagret svar").click()

    page.get_by_label("Navn", exact=True).fill("Åpningstider")
    page.get_by_label("Tekst på norsk").fill("Hei {fornavn}! Vi har åpent 10-18 i dag.")
    page.get_by_label("Tekst på engelsk").fill("Hi {first_name}! We are open 10-18 today.")
    page.get_by_role("button", name="Lagre").click()
    error = page.locator("#text_nb-error")
    expect(error).to_contain_text("Norsk: {fornavn}")
    expect(page.get_by_label("Tekst på norsk")).to_have_attribute("aria-invalid", "true")
    screens(page, "bad-placeholder")
    screens.on_phone(page, "bad-placeholder-phone")
    page.set_viewport_size(WIDE)

    page.get_by_label("Tekst på norsk").fill(WORDING)
    page.get_by_role("button", name="Lagre").click()
    expect(page).to_have_url(re.compile(r"/admin/templates\?saved=1$"))
    expect(page.get_by_role("status")).to_have_text("Lagret.")
    expect(page.locator("[data-language=nb]")).to_have_text(WORDING)
    screens(page, "saved-replies")
    screens.on_phone(page, "saved-replies-phone")

    page.goto("/admin/inbox")
    page.get_by_role("link", name="Kari").click()
    box = page.get_by_label("Svaret ditt")
    expect(box).to_have_value("")
    page.get_by_label("Lagret svar").select_option(label="Åpningstider")
    expect(box).to_have_value(FILLED)  # at once, for Kari, with no reload
    counter = page.locator("output#count")
    expect(counter).to_have_text(f"{len(FILLED)}/160 tegn · 1 SMS · GSM-7")
    page.set_viewport_size(WIDE)
    screens(page, "conversation-picked")
    screens.on_phone(page, "conversation-picked-phone")
    page.set_viewport_size(WIDE)
    page.get_by_role("button", name="Send svar").click()
    expect(page.locator("li.sms-staff .sms-body")).to_have_text(FILLED)
    screens(page, "answered")

    gateway = RecordingGateway()
    assert on_database(demo_url, lambda db: sender.drain(db, gateway, utc_now)) == 1
    (sms,) = gateway.sent
    assert (sms.to, sms.body) == (KARI, FILLED)

    # Without JavaScript: the picker's button asks for the page with the box filled.
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport=PHONE, java_script_enabled=False
    )
    try:
        plain = context.new_page()
        sign_in(plain)
        plain.goto(page.url.split("?")[0].split("#")[0])
        plain.get_by_label("Lagret svar").select_option(label="Åpningstider")
        plain.get_by_role("button", name="Bruk").click()
        expect(plain).to_have_url(re.compile(r"\?template=\d+"))
        expect(plain.get_by_label("Svaret ditt")).to_have_value(FILLED)
        screens(plain, "no-script-picked-phone")
    finally:
        context.close()
