"""The admin in a real browser: sign in through the form, the dashboard, a member, sign out."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.admin.conftest import OWNER, PASSWORD
from tests.browser.conftest import (
    LAPTOP,
    PHONE,
    WIDE,
    Demo,
    LiveServer,
    Screens,
    sign_in,
    submit_sign_in,
)


def test_sign_in_see_the_club_open_a_member_and_sign_out(
    page: Any, live_server: LiveServer, demo: Demo, screens: Screens
) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/sign-in$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screens(page, "sign-in")

    submit_sign_in(page, password="not the password")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_value(OWNER)
    expect(page.get_by_label("Password")).to_have_value("")
    screens(page, "sign-in-wrong-password")

    # The keyboard alone: the password field has the focus; type, Enter submits.
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    # A Norwegian club's admin speaks Norwegian, whatever the browser's language.
    expect(page.locator(".brand")).to_have_text("Torshov Sport")
    expect(page.get_by_role("heading", name="Oversikt", level=1)).to_be_visible()
    expect(page.locator('[data-kpi="active"]')).to_have_text("2")
    screens(page, "dashboard")

    page.get_by_role("link", name="Kari").click()
    expect(page).to_have_url(re.compile(rf"/admin/members/{demo.members['Kari']}$"))
    expect(page.get_by_role("heading", name="Kari", level=1)).to_be_visible()
    expect(page.get_by_text("+4791234567")).to_be_visible()
    expect(page.get_by_text("Aktiv", exact=True)).to_be_visible()
    screens(page, "member")

    # Focus is visible: Tab to the first link of the page and see its outline.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused == "solid"
    screens(page, "member-keyboard-focus")

    page.set_viewport_size(PHONE)
    page.goto("/admin/")
    screens(page, "dashboard-phone")
    page.set_viewport_size(LAPTOP)

    page.get_by_role("button", name="Logg ut").click()
    expect(page).to_have_url(re.compile(r"/admin/sign-in$"))
    screens(page, "signed-out")
    page.goto(f"/admin/members/{demo.members['Kari']}")
    expect(page).to_have_url(re.compile(r"/admin/sign-in\?next="))
    expect(page.get_by_text("+4791234567")).to_have_count(0)
    assert len(screens.taken) == 7


def test_on_a_phone_the_menu_is_folded_behind_one_button(
    page: Any, live_server: LiveServer, demo: Demo, screens: Screens
) -> None:
    """At 390 px the bar is one line (the menu behind "Meny", no script needed); opened, it
    lists every page and the sign-out. A laptop shows the menu in the bar."""
    sign_in(page)
    page.set_viewport_size(PHONE)
    page.goto("/admin/members")
    assert bar_height(page) <= 64, "the bar takes more than one line on a phone"
    expect(page.get_by_role("link", name="Segmenter")).to_be_hidden()
    menu = page.locator("details.menu > summary")
    expect(menu).to_have_text("Meny · Medlemmer")
    screens(page, "phone-menu-closed")
    menu.click()
    expect(page.get_by_role("link", name="Segmenter")).to_be_visible()
    expect(page.get_by_role("button", name="Logg ut")).to_be_visible()
    screens(page, "phone-menu-open")
    page.get_by_role("link", name="Segmenter").click()
    expect(page).to_have_url(re.compile(r"/admin/segments$"))
    page.set_viewport_size(WIDE)
    expect(page.locator("details.menu")).to_be_hidden()
    expect(page.get_by_role("link", name="Kampanjer")).to_be_visible()
    assert bar_height(page) <= 64, "the bar takes more than one line at 1280 px"
    screens(page, "wide-menu")
    page.set_viewport_size(LAPTOP)


def bar_height(page: Any) -> float:
    box = page.locator("header.top").bounding_box()
    assert box is not None
    return float(box["height"])
