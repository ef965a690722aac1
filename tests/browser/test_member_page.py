"""The member's own page in a real browser at a phone's 360 px and a desk's 1280 px: every part
is there, the barcode the browser draws decodes to the coupon's code, leaving works, and the
link is dead after it."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from sqlalchemy.orm import Session

from store.clock import utc_now
from store.database import Database
from store.members import links
from store.models import Member
from tests.admin.members_data import with_history
from tests.bot.test_member_page import COUPON, decode_code128
from tests.browser.conftest import WIDE, Demo, LiveServer, Screens, on_database

NARROW = {"width": 360, "height": 740}


def page_token(demo_url: str, member_id: int) -> str:
    async def issue(db: Database) -> str:
        def work(session: Session) -> str:
            member = session.get(Member, member_id)
            assert member is not None
            return links.issue(session, member, utc_now())

        return await db.run(work)

    return on_database(demo_url, issue)


def test_the_member_page_at_the_till_and_at_a_desk(
    page: Any, live_server: LiveServer, demo: Demo, demo_url: str, screens: Screens
) -> None:
    kari = demo.members["Kari"]
    on_database(demo_url, lambda db: with_history(db, kari))
    token = page_token(demo_url, kari)
    page.set_viewport_size(NARROW)
    page.goto(f"/m/{token}")
    expect(page.get_by_role("heading", name="Hei, Kari!")).to_be_visible()
    expect(page.get_by_text("Medlem i Torshov Sport")).to_be_visible()
    expect(page.get_by_text("120 poeng", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^120 poeng utløper \d\d\.\d\d\.\d{4}$"))).to_be_visible()
    for name in ("Kupongene dine", "Dine data", "Meld deg av", "Slett meg"):
        expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_role("link", name="Last ned dataene mine")).to_be_visible()
    expect(page.get_by_role("button", name="Meld meg av")).to_be_visible()
    expect(page.get_by_role("button", name="Slett dataene mine")).to_be_visible()
    html = page.content()
    [code] = COUPON.findall(html)
    barcode = page.locator("svg.bar")
    expect(barcode).to_be_visible()
    assert decode_code128(barcode.evaluate("svg => svg.outerHTML")) == code.replace("-", "")
    box = barcode.bounding_box()
    assert box is not None
    assert box["width"] >= 300  # the barcode spans the phone's width, for the scanner
    expect(page.locator("svg.qr")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    screens(page, "member-page-360")
    page.set_viewport_size(WIDE)
    screens(page, "member-page-1280")

    page.set_viewport_size(NARROW)
    page.get_by_role("button", name="Meld meg av").click()
    expect(page.get_by_text("Du er meldt av Torshov Sport")).to_be_visible()
    screens(page, "member-page-left")
    response = page.goto(f"/m/{token}")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    screens(page, "member-page-404")
