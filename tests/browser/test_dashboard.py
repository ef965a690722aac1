"""The dashboard in a real browser, on the demo club's data: the figures and charts, a quick
period and a chosen one, the tables behind the charts, a phone's width, and the top 10's
campaign button."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from bot.cli.demo import fill_demo
from store.database import Database
from store.models import Program
from tests.browser.conftest import (
    LAPTOP,
    PHONE,
    WIDE,
    Demo,
    LiveServer,
    Screens,
    on_database,
    sign_in,
)


async def _fill(db: Database, club: int) -> None:
    def work(session: Session) -> None:
        fill_demo(session, session.get(Program, club), dt.datetime.now(dt.UTC), count=120)

    await db.run(work)


@pytest.fixture
def demo_data(demo_url: str, demo: Demo) -> None:
    on_database(demo_url, lambda db: _fill(db, demo.club))


def test_the_dashboard_its_periods_charts_and_top_10(
    page: Any, live_server: LiveServer, demo: Demo, demo_data: None, screens: Screens
) -> None:
    sign_in(page)
    expect(page.get_by_role("heading", name="Oversikt", level=1)).to_be_visible()
    expect(page.locator('[data-kpi="active"]')).not_to_have_text("0")
    expect(page.get_by_role("link", name="30 dager")).to_have_attribute("aria-current", "true")
    charts = page.locator("svg.chart-svg[role=img]")
    expect(charts).to_have_count(5)  # members, purchases, revenue, recency, the campaign
    expect(page.get_by_role("img", name="Dager siden siste kjøp")).to_be_visible()
    expect(page.get_by_text("Kjøp fra ikke-medlemmer er ukjent")).to_be_visible()
    screens(page, "dashboard-30-days")

    # A quick choice: the last 7 days.
    page.get_by_role("link", name="7 dager").click()
    expect(page).to_have_url(re.compile(r"/admin/\?from=\d{4}-\d\d-\d\d&to=\d{4}-\d\d-\d\d$"))
    expect(page.get_by_role("link", name="7 dager")).to_have_attribute("aria-current", "true")
    screens(page, "dashboard-7-days")

    # A period of one's own, keyboard and form: 12 months counts by month.
    today = dt.datetime.now(ZoneInfo("Europe/Oslo")).date()  # the club's today
    # Dates as the club writes them, as the fields show them.
    first = today - dt.timedelta(days=364)
    page.get_by_label("Fra", exact=True).fill(f"{first:%d.%m.%Y}")
    page.get_by_label("Til og med", exact=True).fill(f"{today:%d.%m.%Y}")
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page.get_by_role("link", name="12 måneder")).to_have_attribute("aria-current", "true")
    expect(page.get_by_label("Fra", exact=True)).to_have_value(f"{first:%d.%m.%Y}")
    expect(page.get_by_role("img", name="Nye medlemmer per måned")).to_be_visible()
    # The figures behind a chart, as a table.
    page.locator("#recency-chart + svg + details summary").click()
    expect(page.locator('table[data-table="recency"]')).to_be_visible()
    screens(page, "dashboard-12-months")

    # A wrong date: the last 30 days, and the date named beside its field.
    page.get_by_label("Fra", exact=True).fill("30.02.2026")
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page.locator("#period-from-error")).to_contain_text("30.02.2026")
    expect(page.get_by_label("Fra", exact=True)).to_have_attribute("aria-invalid", "true")
    screens(page, "dashboard-wrong-date")

    page.set_viewport_size(PHONE)
    page.goto("/admin/?from=" + (today - dt.timedelta(days=89)).isoformat())
    expect(page.locator('[data-kpi="active"]')).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a phone"
    screens(page, "dashboard-phone")
    assert_readable(page)
    page.set_viewport_size(WIDE)
    screens(page, "dashboard-wide")
    assert_readable(page)
    page.set_viewport_size(LAPTOP)

    # The top 10 of the period, and a campaign to them.
    rows = page.locator('table[data-table="top"] tbody tr')
    expect(rows).to_have_count(10)
    ids = [row.get_attribute("data-member") for row in rows.all()]
    page.get_by_role("link", name="Kampanje til disse").click()
    expect(page).to_have_url(re.compile(r"/admin/campaigns/new\?members=[\d,]+$"))
    assert page.url.endswith("members=" + ",".join(ids))
    screens(page, "campaign-to-top-10")


# Each chart's text as drawn: its font size times the scale the SVG is drawn at.
_TEXT_SIZES = """() => Array.from(document.querySelectorAll("svg.chart-svg text")).map((t) => ({
  text: t.textContent,
  px: t.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize),
}))"""
# Each figure of the KPI cards (money among them): its lines, and whether it overflows.
_MONEY = """() => Array.from(document.querySelectorAll(".kpi-value")).map((m) => ({
  text: m.textContent,
  lines: Math.round(m.getBoundingClientRect().height / parseFloat(getComputedStyle(m).lineHeight)),
  overflows: m.scrollWidth > m.clientWidth + 1,
}))"""


def assert_readable(page: Any) -> None:
    """Every chart label is at least 11 px as drawn, and every figure (money too) stays on one
    line inside its card."""
    sizes = page.evaluate(_TEXT_SIZES)
    assert sizes, "no chart text on the page"
    small = [s for s in sizes if s["px"] < 11]
    assert not small, f"chart text under 11 px: {small[:5]}"
    money = page.evaluate(_MONEY)
    assert money, "no money on the page"
    for figure in money:
        assert figure["lines"] == 1, f"{figure['text']!r} wraps"
        assert not figure["overflows"], f"{figure['text']!r} overflows its card"
