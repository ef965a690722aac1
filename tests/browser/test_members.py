"""The members pages in a real browser: find a member by a number typed with spaces, adjust their
points, download their data and erase another member, on a laptop and a phone screen."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.admin.conftest import OWNER
from tests.admin.members_data import with_history
from tests.browser.conftest import (
    LAPTOP,
    PHONE,
    Demo,
    LiveServer,
    Screens,
    on_database,
    submit_sign_in,
)


def test_find_adjust_export_and_erase_members(
    page: Any,
    live_server: LiveServer,
    demo: Demo,
    demo_url: str,
    screens: Screens,
    tmp_path: Path,
) -> None:
    kari, ola = demo.members["Kari"], demo.members["Ola"]
    # Kari has consented by SMS, texted, earned 120 points and holds a welcome coupon.
    on_database(demo_url, lambda db: with_history(db, kari))
    page.goto("/admin/members")
    expect(page).to_have_url(re.compile(r"/admin/sign-in\?next=/admin/members$"))
    submit_sign_in(page)

    # The list: the newest members, counted.
    expect(page).to_have_url(re.compile(r"/admin/members$"))
    expect(page.get_by_role("heading", name="Medlemmer", level=1)).to_be_visible()
    expect(page.locator("[data-count]")).to_have_text("Viser 1–2 av 2")
    screens(page, "members")

    # A number as people say it, with spaces and without the country code.
    page.get_by_label("Søk på telefonnummer eller fornavn").fill("912 34 567")
    page.keyboard.press("Enter")
    expect(page.locator("[data-count]")).to_have_text("Viser 1–1 av 1")
    expect(page.get_by_role("link", name="Kari")).to_be_visible()
    expect(page.get_by_role("link", name="Ola")).to_have_count(0)
    screens(page, "search-by-phone")

    page.get_by_role("link", name="Kari").click()
    expect(page).to_have_url(re.compile(rf"/admin/members/{kari}$"))
    expect(page.get_by_role("heading", name="Kari", level=1)).to_be_visible()
    expect(page.locator("[data-balance]")).to_have_text("120")
    expect(page.get_by_text("Samtykke gitt")).to_be_visible()
    expect(page.get_by_text("ja takk")).to_be_visible()
    # The coupon held (a cell of its table; the gift box offers the same coupon by name).
    expect(page.get_by_role("cell", name="10% rabatt")).to_be_visible()
    expect(page.get_by_text("ut fra nummeret, ikke valgt")).to_be_visible()
    screens(page, "member")

    # Taking more than the balance: the form comes back with the error next to the field.
    page.get_by_label("Poeng (+ gir, − trekker)").fill("-500")
    page.get_by_label("Begrunnelse (vises i historikken)").fill("Feil")
    page.get_by_role("button", name="Lagre justering").click()
    expect(page.locator("#points-error")).to_have_text(
        "Medlemmet har bare 120 poeng: du kan ikke trekke flere enn det."
    )
    expect(page.get_by_label("Poeng (+ gir, − trekker)")).to_be_focused()
    expect(page.get_by_label("Poeng (+ gir, − trekker)")).to_have_value("-500")
    screens(page, "adjust-refused")

    page.get_by_label("Poeng (+ gir, − trekker)").fill("150")
    page.get_by_label("Begrunnelse (vises i historikken)").fill("Velkomstgave fra butikken")
    page.get_by_role("button", name="Lagre justering").click()
    expect(page).to_have_url(re.compile(rf"/admin/members/{kari}\?adjusted=1#points$"))
    expect(page.get_by_role("status")).to_have_text("Lagret. Ny saldo: 270 poeng.")
    expect(page.locator("[data-balance]")).to_have_text("270")
    line = page.locator("#ledger ~ .table-wrap tbody tr").first
    expect(line).to_contain_text("Justering")
    expect(line).to_contain_text("+150")
    expect(line).to_contain_text("Velkomstgave fra butikken")
    expect(line).to_contain_text(OWNER)
    screens(page, "adjusted")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Last ned alle data (JSON)").click()
    download = download_info.value
    assert download.suggested_filename == f"member-{kari}.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    data = json.loads(saved.read_text())
    assert data["member"]["phone"] == "+4791234567"
    assert [(e["kind"], e["points"], e["actor"]) for e in data["ledger"]] == [
        ("earn", 120, None),
        ("adjust", 150, OWNER),
    ]
    assert [c["evidence"] for c in data["consent"]] == ["SM-evidence-1"]

    page.set_viewport_size(PHONE)
    screens(page, "member-phone")
    page.goto("/admin/members")
    screens(page, "members-phone")
    page.set_viewport_size(LAPTOP)

    # Erase Ola: the confirmation page says what happens and wants the number's last digits.
    page.goto(f"/admin/members/{ola}")
    page.get_by_role("link", name="Slett medlemmet…").click()
    expect(page).to_have_url(re.compile(rf"/admin/members/{ola}/erase$"))
    expect(page.get_by_text("Dette kan ikke angres.")).to_be_visible()
    screens(page, "erase")
    field = page.get_by_label("Skriv de fire siste sifrene i +4798765432 for å bekrefte")
    field.fill("1234")
    page.get_by_role("button", name="Slett for godt").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Sifrene stemmer ikke med nummeret. Ingenting er slettet."
    )
    screens(page, "erase-wrong-digits")
    field.fill("5432")
    page.get_by_role("button", name="Slett for godt").click()
    expect(page).to_have_url(re.compile(r"/admin/members\?erased=1$"))
    expect(page.get_by_role("status")).to_contain_text("Medlemmet er slettet.")
    expect(page.get_by_role("link", name="Ola")).to_have_count(0)
    expect(page.locator("[data-count]")).to_have_text("Viser 1–1 av 1")
    screens(page, "erased")

    page.goto(f"/admin/members/{ola}")
    expect(page.get_by_text("Finnes ikke.")).to_be_visible()
    page.goto("/admin/members")
    page.get_by_label("Søk på telefonnummer eller fornavn").fill("+47 987 65 432")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Ingen medlemmer passer søket.")).to_be_visible()
    screens(page, "erased-not-found")
    assert len(screens.taken) == 11


def test_the_member_pages_buttons_are_readable(
    page: Any, live_server: LiveServer, demo: Demo, screens: Screens
) -> None:
    """Every button and link styled as one has text in another colour than its background (the
    page's own styles once painted "Slett medlemmet…" red on red over admin.css's one style)."""
    kari = demo.members["Kari"]
    page.goto(f"/admin/members/{kari}")
    submit_sign_in(page)
    expect(page).to_have_url(re.compile(rf"/admin/members/{kari}$"))
    for path in (f"/admin/members/{kari}", f"/admin/members/{kari}/erase"):
        page.goto(path)
        buttons = page.locator("main a.button, main button")
        assert buttons.count() > 0
        for i in range(buttons.count()):
            color, background = buttons.nth(i).evaluate(
                "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
            )
            assert color != background, (path, buttons.nth(i).inner_text(), color)
    screens(page, "erase-button")
