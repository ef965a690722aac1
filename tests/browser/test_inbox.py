"""The inbox in a real browser: a member's text Klubb could not answer (through the signed webhook)
is counted in the bar, read beside the member's context, answered with the live counter warning
about an emoji, and marked done; at 1280 px and on a phone, with screenshots."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import PHONE, WIDE, Demo, LiveServer, Screens, sign_in
from tests.conftest import CLUB_NUMBER, sign, twilio_form

KARI = "+4791234567"


def text(page: Any, body: str, sender: str = KARI) -> None:
    """A text to the club through the webhook, signed as Twilio signs it."""
    form = twilio_form(sender, body, to=CLUB_NUMBER)
    response = page.request.post(
        "/sms/twilio",
        form=form,
        headers={"X-Twilio-Signature": sign("http://127.0.0.1/sms/twilio", form)},
    )
    assert response.ok, response.text()


def test_read_answer_and_close_a_conversation(
    page: Any, live_server: LiveServer, demo: Demo, screens: Screens
) -> None:
    text(page, "har dere åpent på søndag?")
    sign_in(page)
    page.set_viewport_size(WIDE)
    badge = page.locator("nav.wide-only [data-inbox-unanswered]")
    expect(badge).to_have_text("1")
    box = page.locator("header.top").bounding_box()
    assert box is not None
    assert box["height"] <= 64, "the bar takes more than one line at 1280 px with the count"
    page.locator("nav.wide-only").get_by_role("link", name=re.compile("^Innboks")).click()
    expect(page).to_have_url(re.compile(r"/admin/inbox$"))
    screens(page, "inbox")

    page.get_by_role("link", name="Kari").click()
    expect(page).to_have_url(re.compile(r"/admin/inbox/\d+$"))
    expect(page.get_by_text("har dere åpent på søndag?")).to_be_visible()
    expect(page.locator("[data-tier]")).to_have_text("Bronse")
    reply = page.get_by_label("Svaret ditt")
    reply.fill("Ja, 12-16 \U0001f642")
    counter = page.locator("output#count")
    expect(counter).to_have_attribute("data-encoding", "UCS-2")
    expect(counter).to_contain_text("70 tegn")
    screens(page, "conversation-emoji-warning")
    reply.fill("Ja – søndag 12-16!")
    expect(counter).to_have_attribute("data-encoding", "GSM-7")
    expect(counter).to_have_text("18/160 tegn · 1 SMS · GSM-7")
    screens.on_phone(page, "conversation-phone")
    page.set_viewport_size(WIDE)
    page.get_by_role("button", name="Send svar").click()
    expect(page.get_by_role("status").filter(has_text="i køen")).to_be_visible()
    expect(page.locator("li.sms-staff .sms-body")).to_have_text("Ja - søndag 12-16!")
    expect(badge).to_have_count(0)
    screens(page, "answered")

    page.get_by_role("button", name="Marker som ferdig").click()
    expect(page).to_have_url(re.compile(r"/admin/inbox\?marked=1$"))
    expect(page.get_by_text("Ingen samtaler her.")).to_be_visible()
    page.get_by_role("link", name="Ferdige").click()
    expect(page.get_by_role("link", name="Kari")).to_be_visible()
    screens(page, "done")
    page.set_viewport_size(PHONE)
    screens(page, "done-phone")
    assert len(screens.taken) == 6
