"""The dashboard through the app, on SQLite and PostgreSQL: the figures it shows are
store.reports' for the period chosen, wrong dates fall back to the last 30 days with a notice,
the top 10 and its campaign button (owner only), staff see counts without money, and the
charts are inline SVG with a title."""

from __future__ import annotations

import datetime as dt
import html
import itertools
import re

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.admin import pages
from bot.cli.demo import fill_demo
from locales import format_money, format_number
from store import reports
from store.database import Database
from store.loyalty import purchases
from store.loyalty.earning import Line
from store.members import members
from store.models import Campaign, InboundMessage, Member, Program
from tests.admin.conftest import (
    OTHER_NUMBER,
    OTHER_OWNER,
    OWNER,
    STAFF,
    Admin,
    create_account,
    create_member,
)
from tests.conftest import CLUB_NUMBER, sign, twilio_form

pytestmark = pytest.mark.usefixtures("cheap_argon2")

# 11:00 in Oslo on Wednesday 25 November 2026: the last 30 days are 27 Oct to 25 Nov.
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
NOVEMBER = "?from=2026-11-01&to=2026-11-30"
_SALES = itertools.count()


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "utc_now", lambda: NOW)


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


async def joined(db: Database, member_id: int, when: dt.datetime) -> None:
    await db.run(
        lambda s: s.execute(update(Member).where(Member.id == member_id).values(joined_at=when))
    )


async def buy(db: Database, club: int, member_id: int, kroner: int, when: dt.datetime) -> None:
    number = f"T{next(_SALES)}"

    def work(session: Session) -> None:
        purchases.record(
            session,
            session.get(Program, club),
            member_id,
            transaction_id=number,
            lines=[Line(qty=1, amount_minor=kroner * 100)],
            occurred_at=when,
            fingerprint=number,
            now=when,
        )

    await db.run(work)


async def small_club(db: Database, club: int) -> dict[str, int]:
    """Five numbers: three members who joined in November, one in September, one stopped;
    purchases in November (and one in September, outside it)."""
    ids = {
        "Kari": await create_member(db, club, "+4791000001", "Kari"),
        "Ola": await create_member(db, club, "+4791000002", "Ola"),
        "Per": await create_member(db, club, "+4791000003", None),
        "Siv": await create_member(db, club, "+4791000004", "Siv"),
        "Gone": await create_member(db, club, "+4791000005", "Gone", status=members.STOPPED),
    }
    for name, day in (("Kari", 3), ("Ola", 12), ("Per", 20)):
        await joined(db, ids[name], utc(2026, 11, day, 12))
    await joined(db, ids["Siv"], utc(2026, 9, 2, 12))
    await buy(db, club, ids["Kari"], 500, utc(2026, 11, 4, 12))
    await buy(db, club, ids["Kari"], 300, utc(2026, 11, 20, 12))
    await buy(db, club, ids["Ola"], 1000, utc(2026, 11, 14, 12))
    await buy(db, club, ids["Per"], 50, utc(2026, 11, 21, 12))
    await buy(db, club, ids["Siv"], 2000, utc(2026, 9, 10, 12))
    return ids


def kpi(page: str, name: str) -> str:
    found = re.search(rf'data-kpi="{name}">([^<]*)<', page)
    assert found, f"no KPI {name} on the page"
    return html.unescape(found.group(1))


def period_of(page: str) -> str:
    found = re.search(r'data-period="([^"]+)"', page)
    assert found
    return found.group(1)


def nbsp(money: str) -> str:
    """Money as a page writes it: its spaces no-break."""
    return money.replace(" ", "\u00a0")


def top_rows(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-member="(\d+)">', page)]


async def expected(db: Database, club: int, first: dt.date, after: dt.date) -> reports.Report:
    def work(session: Session) -> reports.Report:
        program = session.get(Program, club)
        return reports.report(session, program, reports.period(program, first, after), NOW)

    return await db.run(work)


async def test_the_figures_are_the_reports_for_the_period(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    ids = await small_club(db, club)
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/" + NOVEMBER)
    assert response.status == 200
    page = await response.text()
    want = await expected(db, club, dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    m, p = want.members, want.purchases
    # The club is Norwegian: figures as nb writes them.
    assert kpi(page, "active") == format_number(m.members, "nb") == "4"
    assert kpi(page, "new") == "3"
    assert kpi(page, "stopped") == "1"
    assert kpi(page, "pending") == "0"
    assert kpi(page, "consent") == "80,0 %"  # 4 of 5 numbers known
    assert kpi(page, "purchases") == str(p.purchases) == "4"
    assert kpi(page, "buyers") == str(p.buyers) == "3"
    assert kpi(page, "visits") == "1,3"  # 4 purchases by 3 members
    # Money is written with no-break spaces on a page, so it never wraps.
    assert kpi(page, "revenue") == "1\u00a0850,00\u00a0kr"
    assert p.revenue_minor == 185_000
    assert kpi(page, "average") == nbsp(format_money(p.average_minor or 0, "NOK", "nb"))
    assert period_of(page) == "2026-11-01/2026-11-30"
    # Recency at NOW, as store.reports counts it.
    for row in want.recency:
        assert row.members == {"0-30": 3, "91-180": 0, "31-90": 1}.get(row.label, 0)
    assert top_rows(page) == [c.member_id for c in want.top_customers]
    assert top_rows(page) == [ids["Ola"], ids["Kari"], ids["Per"]]
    assert ids["Siv"] not in top_rows(page)  # bought in September only
    # Non-members' sales are not made up.
    assert "ikke-medlemmer er ukjent" in page


async def test_the_default_period_is_the_last_30_days_and_the_quick_choices_end_today(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await small_club(db, club)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/")).text()
    assert period_of(page) == "2026-10-27/2026-11-25"
    assert 'href="/admin/?from=2026-10-27&amp;to=2026-11-25" aria-current="true"' in page
    for first in ("2026-11-19", "2026-08-28", "2025-11-26"):  # 7, 90 days, 12 months
        assert f'href="/admin/?from={first}&amp;to=2026-11-25">' in page
    week = await (await admin.client.get("/admin/?from=2026-11-19&to=2026-11-25")).text()
    assert period_of(week) == "2026-11-19/2026-11-25"
    assert 'href="/admin/?from=2026-11-19&amp;to=2026-11-25" aria-current="true"' in week
    assert kpi(week, "purchases") == "2"  # Kari on the 20th, Per on the 21st
    year = await (await admin.client.get("/admin/?from=2025-11-26&to=2026-11-25")).text()
    assert kpi(year, "purchases") == "5"
    assert kpi(year, "new") == "4"
    # `from` alone runs to today; `to` alone has the 30 days up to it.
    assert period_of(await (await admin.client.get("/admin/?from=2026-11-10")).text()) == (
        "2026-11-10/2026-11-25"
    )
    assert period_of(await (await admin.client.get("/admin/?to=2026-10-31")).text()) == (
        "2026-10-02/2026-10-31"
    )


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?from=2026-13-01&to=2026-11-30", "2026-13-01"),
        ("?from=2026-11-01&to=yesterday", "yesterday"),
        ("?from=<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("?from=2026-11-30&to=2026-11-01", "2026-11-30 > 2026-11-01"),
        ("?from=2001-01-01&to=2026-11-01", "2001-01-01 - 2026-11-01"),
        # Outside 2000-2100, named beside its field (a day after 9999-12-31 was a 500).
        ("?from=2026-01-01&to=9999-12-31", "utenfor årene 2000–2100"),
        ("?from=2026-01-01&to=31.12.9999", "31.12.9999"),
        ("?from=0001-01-01", "0001-01-01"),
        ("?to=0001-01-05", "0001-01-05"),
        ("?from=1999-12-31&to=2000-01-10", "1999-12-31"),
        ("?from=2026-11-01&to=2101-01-01", "2101-01-01"),
    ],
)
async def test_a_wrong_period_shows_the_last_30_days_with_a_notice_naming_it(
    admin: Admin, owner: int, query: str, named: str
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/" + query)
    assert response.status == 200
    page = await response.text()
    # A date that is not one is named beside its field; a wrong order or length above.
    notice = re.search(
        r'(?:<p class="alert" role="alert" data-notice|id="period-(?:from|to)-error")>([^<]*)<',
        page,
    )
    assert notice, "no notice"
    assert named in html.unescape(notice.group(1))
    assert "<script>alert" not in page
    assert period_of(page) == "2026-10-27/2026-11-25"


async def test_the_period_fields_show_and_take_the_clubs_date_format(
    admin: Admin, owner: int
) -> None:
    """07.11.2026 as the club writes dates: shown in the fields, read back when sent; a date
    that is not one is named beside its own field."""
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/?from=01.11.2026&to=30.11.2026")).text()
    assert period_of(page) == "2026-11-01/2026-11-30"
    assert 'name="from" class="date" type="text"' in page
    assert 'value="01.11.2026"' in page
    assert 'value="30.11.2026"' in page
    assert "dd.mm.åååå" in page
    page = await (await admin.client.get("/admin/?from=01.11.2026&to=31.11.2026")).text()
    field = re.search(r'<input id="period-to"[^>]*>', page)
    assert field
    assert 'aria-invalid="true"' in field.group(0)
    assert 'value="31.11.2026"' in field.group(0)  # as typed, beside its error
    error = re.search(r'id="period-to-error">([^<]*)<', page)
    assert error
    assert "31.11.2026" in error.group(1)
    assert 'id="period-from-error"' not in page


async def test_the_top_10_and_the_button_that_starts_a_campaign_to_them(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    ids = []
    for i in range(12):
        member = await create_member(db, club, f"+479200{i:04d}", f"Navn{i}")
        ids.append(member)
        await buy(db, club, member, 100 * (i + 1), utc(2026, 11, 10, 12))
    stranger = await create_member(db, other_club, "+46701234567", "Karin")
    await buy(db, other_club, stranger, 99_999, utc(2026, 11, 10, 12))
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/" + NOVEMBER)).text()
    best = list(reversed(ids))[:10]
    assert top_rows(page) == best
    assert "Karin" not in page
    link = f"/admin/campaigns/new?members={','.join(map(str, best))}"
    assert f'<a class="button" href="{link}" data-action="campaign-to-top">' in page
    for member in best:
        assert f'href="/admin/members/{member}"' in page
    assert "1\u00a0200,00\u00a0kr" in page  # the best customer's revenue
    # A period without purchases: no list, no button.
    empty = await (await admin.client.get("/admin/?from=2026-01-01&to=2026-01-31")).text()
    assert top_rows(empty) == []
    assert "campaigns/new" not in empty


async def test_staff_see_counts_but_no_money_and_no_campaign_button(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    ids = await small_club(db, club)
    await admin.signed_in(STAFF)
    response = await admin.client.get("/admin/" + NOVEMBER)
    assert response.status == 200
    page = await response.text()
    assert kpi(page, "active") == "4"
    assert kpi(page, "purchases") == "4"
    assert 'data-kpi="revenue"' not in page
    assert 'data-kpi="average"' not in page
    assert not re.search(r"\d\s*kr\b", html.unescape(page))  # no amount anywhere
    assert top_rows(page) == [ids["Ola"], ids["Kari"], ids["Per"]]
    assert "campaigns/new" not in page
    assert 'data-action="campaign-to-top"' not in page


async def test_the_charts_are_inline_svg_with_a_title_and_a_table(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await small_club(db, club)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/" + NOVEMBER)).text()
    charts = re.findall(r'<svg class="chart-svg"[^>]*role="img"[^>]*>\s*<title id="([^"]+)">', page)
    assert len(charts) == 4  # members, purchases, revenue, recency (no campaign this month)
    assert '<title id="chart' in page
    assert ">Nye medlemmer per uke</title>" in page
    assert ">Dager siden siste kjøp</title>" in page
    assert "style=" not in page  # the CSP allows no style attributes
    # Each bar says what it is; the same figures are in a table.
    assert "<title>U45, Ble med: 1</title>" in page
    assert '<table class="figures" data-table="recency">' in page
    # Twelve months: counted by month.
    year = await (await admin.client.get("/admin/?from=2025-12-01&to=2026-11-30")).text()
    assert ">Nye medlemmer per måned</title>" in year


async def test_the_demo_club_shows_its_campaign_against_the_control_group(
    admin: Admin, db: Database, club: int
) -> None:
    """The demo data (bot.cli.demo.fill_demo) through the dashboard: the campaign row holds the
    figures store.reports counts."""

    def fill(session: Session) -> None:
        fill_demo(session, session.get(Program, club), NOW, count=60)

    await db.run(fill)
    await create_account(db, club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    page = await (await admin.client.get("/admin/?from=2026-10-01&to=2026-10-31")).text()
    want = await expected(db, club, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert len(want.campaigns) == 1
    result = want.campaigns[0]
    assert result.sent > 0
    assert result.held_out > 0
    row = re.search(r'<table class="figures" data-table="campaigns">.*?</table>', page, re.S)
    assert row, "no campaign table"
    cells = re.findall(r"<td>([^<]*)</td>", row.group(0))
    assert cells[:6] == [
        str(result.sent),
        str(result.delivered),
        str(result.failed),
        str(result.opt_outs),
        str(result.coupons_redeemed),
        str(result.held_out),
    ]
    assert "Vintersalg" in page
    assert ">Omsetning per medlem 30 dager etter kampanjen</title>" in page


async def test_campaign_figures_the_scheduler_stored_are_shown_with_when_they_were_counted(
    admin: Admin, db: Database, club: int
) -> None:
    """The dashboard reads a broadcast's results as the scheduler last stored them (while
    fresh) and says when they were counted; the campaign's own page counts them now."""

    def fill(session: Session) -> int:
        fill_demo(session, session.get(Program, club), NOW, count=60)
        [campaign] = reports.campaign_results(
            session,
            session.get(Program, club),
            reports.last_days(session.get(Program, club), NOW, 90),
            NOW,
        )
        return campaign.id

    campaign_id = await db.run(fill)
    counted = NOW - dt.timedelta(minutes=5)
    stored = await db.run(lambda s: reports.store_results(s, campaign_id, counted))
    assert stored is not None
    # Something the stored figures can't know yet: the figures shown are still the stored ones.
    await db.run(
        lambda s: s.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(results={**s.get(Campaign, campaign_id).results, "sent": 999_999})
        )
    )
    await create_account(db, club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    page = await (await admin.client.get("/admin/?from=2026-10-01&to=2026-10-31")).text()
    row = re.search(r'<table class="figures" data-table="campaigns">.*?</table>', page, re.S)
    assert row, "no campaign table"
    assert re.findall(r"<td>([^<]*)</td>", row.group(0))[0] == format_number(999_999, "nb")
    note = re.search(r"<p class=\"muted\" data-counted>([^<]*)</p>", page)
    assert note, "no note saying when the figures were counted"
    assert "25.11.2026 10:55" in html.unescape(note.group(1))  # 09:55 UTC in Oslo
    assert str(reports.RESULTS_EVERY_MINUTES) in note.group(1)


async def test_the_favicon_is_served_at_the_root_and_named_by_the_pages(
    admin: Admin, owner: int
) -> None:
    """/favicon.ico (asked for by browsers and crawlers, before any sign-in) is an icon, not a
    404; the pages name the SVG one."""
    icon = await admin.client.get("/favicon.ico")
    assert icon.status == 200
    assert icon.headers["Content-Type"] == "image/x-icon"
    assert (await icon.read())[:4] == b"\x00\x00\x01\x00"  # an ICO's header
    page = await (await admin.client.get("/admin/sign-in")).text()
    assert '<link rel="icon" href="/admin/static/favicon.svg" type="image/svg+xml">' in page
    svg = await admin.client.get("/admin/static/favicon.svg")
    assert svg.status == 200
    assert (await svg.text()).startswith("<svg")


# --- the inbox's figures (issue 16) -------------------------------------------------------------

# The admin's app is on plain http (tests/admin/conftest.py): Twilio signs that address.
WEBHOOK = "http://127.0.0.1:8080/sms/twilio"


class Clock:
    """One frozen moment for the webhook, the inbox and the dashboard, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock(NOW)
    for where in ("bot.webhooks", "bot.admin.inbox", "bot.admin.pages"):
        monkeypatch.setattr(f"{where}.utc_now", frozen)
    return frozen


async def texted(admin: Admin, sender: str, body: str, to: str = CLUB_NUMBER) -> None:
    form = twilio_form(sender, body, to=to)
    response = await admin.client.post(
        "/sms/twilio", data=form, headers={"X-Twilio-Signature": sign(WEBHOOK, form)}
    )
    assert response.status == 200, await response.text()


async def conversation_of(db: Database, number: str) -> int:
    """The conversation's id: the number's first text not understood."""
    return await db.run(
        lambda s: s.scalar(
            select(func.min(InboundMessage.id)).where(
                InboundMessage.from_number == number, InboundMessage.not_understood.is_(True)
            )
        )
    )


async def answer(admin: Admin, db: Database, number: str, text: str = "Hei! Ja.") -> None:
    conversation = await conversation_of(db, number)
    response = await admin.post(f"/admin/inbox/{conversation}/reply", {"text": text})
    assert response.status == 303, await response.text()


def minutes(n: int) -> dt.timedelta:
    return dt.timedelta(minutes=n)


async def test_texts_received_not_understood_answered_and_the_median_time_to_an_answer(
    admin: Admin, owner: int, staff: int, club: int, other_club: int, db: Database, clock: Clock
) -> None:
    """Counted by hand over the last 30 days (27 Oct to 25 Nov in Oslo), the clock frozen at
    each step: waits of 4 days (a text from before the period answered in it), 40 min, 70 min
    and 4 h; the median of four is the mean of the middle two, (70 + 240) / 2 = 155 min."""
    dora, asker, busy, quiet = "+4791000011", "+4791000012", "+4791000013", "+4791000014"
    await admin.signed_in(STAFF)
    # Dora texts on 23 October, before the period; staff answer on the 27th, inside it.
    clock.now = utc(2026, 10, 23, 9)
    await texted(admin, dora, "hva koster kaffen?")
    clock.now = utc(2026, 10, 27, 9)
    await answer(admin, db, dora)
    # Today: the asker texts twice before an answer (the wait is from the first), then again.
    start = utc(2026, 11, 25, 7)
    clock.now = start
    await texted(admin, asker, "har dere åpent på søndag?")
    clock.now = start + minutes(10)
    await texted(admin, asker, "hallo??")
    clock.now = start + minutes(40)
    await answer(admin, db, asker)  # 40 min
    clock.now = start + minutes(50)
    await texted(admin, asker, "og lørdag?")
    clock.now = start + minutes(60)
    await texted(admin, busy, "kan dere ringe meg?")
    await texted(admin, quiet, "hallo?")
    await texted(admin, quiet, "HJELP")  # understood: received, not for the inbox
    clock.now = start + minutes(120)
    await answer(admin, db, asker)  # 70 min, from "og lørdag?"
    clock.now = start + minutes(125)
    await answer(admin, db, asker, "Og en ting til.")  # answers nothing new: not in the median
    clock.now = start + minutes(300)
    await answer(admin, db, busy)  # 4 h
    # Done is no answer; another club's texts are its own.
    response = await admin.post(f"/admin/inbox/{await conversation_of(db, quiet)}/done")
    assert response.status == 303
    await texted(admin, "+4791000015", "hei hei?", to=OTHER_NUMBER)
    clock.now = NOW

    for account in (STAFF, OWNER):  # counts of texts, no money: owner and staff alike
        await admin.signed_in(account)
        page = await (await admin.client.get("/admin/")).text()
        assert period_of(page) == "2026-10-27/2026-11-25"
        assert kpi(page, "received") == "6"  # asker 3, busy 1, quiet 2; Dora's is before
        assert kpi(page, "not_understood") == "5"
        assert kpi(page, "answered") == "3"  # Dora, the asker, busy (conversations)
        assert kpi(page, "median_wait").replace("\u00a0", " ") == "2 t 35 min"
    # Only today: Dora's answer is out, the median of 40, 70 and 240 min is 70.
    today = await (await admin.client.get("/admin/?from=2026-11-25&to=2026-11-25")).text()
    assert kpi(today, "answered") == "2"
    assert kpi(today, "median_wait").replace("\u00a0", " ") == "1 t 10 min"

    def figures(session: Session) -> reports.InboxFigures:
        program = session.get(Program, club)
        return reports.inbox_figures(session, program, reports.last_days(program, NOW))

    got = await db.run(figures)
    assert (got.received, got.not_understood, got.answered, got.replies) == (6, 5, 3, 4)
    assert got.median_wait == minutes(155)


async def test_with_no_answer_the_median_is_a_dash(
    admin: Admin, owner: int, db: Database, clock: Clock
) -> None:
    await texted(admin, "+4791000021", "hva koster kaffen?")
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/")).text()
    assert kpi(page, "received") == "1"
    assert kpi(page, "not_understood") == "1"
    assert kpi(page, "answered") == "0"
    assert kpi(page, "median_wait") == "–"
