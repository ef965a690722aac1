"""Reporting over long periods: a year by month and ten years by week, each slice's figures
equal to a count by hand of the same purchases and members, on SQLite and PostgreSQL (SQLite
reads a long period's purchases in member order and each slice as a range of its own)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from store import reports
from store.database import Database
from store.members import members
from store.models import Program
from tests.scheduler.campaign_helpers import add_members
from tests.store.test_reports import OSLO, buy, ids_of, new_club, utc

YEAR = (dt.date(2026, 1, 1), dt.date(2027, 1, 1))


def month_of(moment: dt.datetime) -> str | None:
    """The month label of an instant in Oslo, None outside 2026."""
    local = moment.astimezone(OSLO)
    return f"{local:%Y-%m}" if local.year == 2026 else None


async def test_a_year_by_month_counts_each_months_buyers_once(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    other_club = await new_club(db)
    before = utc(2025, 6, 1)  # the buyers joined before the year
    m = await ids_of(db, club_id, await add_members(db, club_id, 6, joined_at=before))
    [erased] = await ids_of(
        db,
        club_id,
        await add_members(db, club_id, 1, start=50, status=members.ERASED, joined_at=before),
    )
    [stranger] = await ids_of(db, other_club, await add_members(db, other_club, 1))
    sales = [
        # Three in March and one each in May and October: March counts m0 once.
        (m[0], 10000, utc(2026, 3, 2, 10)),
        (m[0], 2500, utc(2026, 3, 2, 11)),
        (m[0], 7000, utc(2026, 3, 31, 21, 59)),  # 23:59 on 31 March in Oslo (summer time)
        (m[0], 3000, utc(2026, 5, 5, 10)),
        (m[0], 4000, utc(2026, 10, 1, 9)),
        (m[1], 50000, utc(2026, 3, 15, 10)),
        (m[1], 1500, utc(2026, 1, 31, 23, 30)),  # 00:30 on 1 February in Oslo
        (m[2], 9000, utc(2025, 12, 31, 22, 59)),  # 23:59 on 31 December 2025: before
        (m[2], 9100, utc(2025, 12, 31, 23, 0)),  # midnight into 2026 in Oslo: January
        (m[2], 8000, utc(2026, 12, 31, 22, 30)),  # 23:30 on 31 December: December
        (m[2], 8100, utc(2026, 12, 31, 23, 30)),  # 00:30 on 1 January 2027: after
        (erased, 70000, utc(2026, 6, 1, 12)),
        (m[4], 50000, utc(2026, 6, 2, 12)),
        (m[4], 20000, utc(2026, 6, 20, 12)),
        *((m[3], 1000 + month, utc(2026, month, 10, 12)) for month in range(1, 13)),
        *((m[3], 500, utc(2026, month, 11, 12)) for month in (2, 6, 6, 12)),
    ]
    for member_id, amount, when in sales:
        await buy(db, club_id, member_id, amount, when)
    await buy(db, other_club, stranger, 99999, utc(2026, 3, 2, 10))
    # Members joining, by month, in every status; one before the year and one after.
    joins = [
        (utc(2026, 1, 31, 23, 30), members.ACTIVE),  # February in Oslo
        (utc(2026, 3, 2), members.ACTIVE),
        (utc(2026, 3, 3), members.STOPPED),
        (utc(2026, 3, 4), members.ERASED),
        (utc(2026, 12, 31, 22), members.PENDING),  # December in Oslo
        (utc(2025, 12, 31, 22, 30), members.ACTIVE),  # 2025 in Oslo
        (utc(2026, 12, 31, 23, 30), members.ACTIVE),  # 2027 in Oslo
    ]
    for i, (when, status) in enumerate(joins):
        extra = {"phone": None} if status == members.ERASED else {}
        await add_members(db, club_id, 1, start=100 + i, joined_at=when, status=status, **extra)

    def work(session) -> tuple[reports.Report, list[reports.Recency]]:
        program = session.get(Program, club_id)
        per = reports.period(program, *YEAR)
        got = reports.report(session, program, per, utc(2027, 1, 2, 12))
        return got, reports.recency(session, program, utc(2027, 1, 2, 12))

    got, recency = await db.run(work)

    months = [f"2026-{month:02d}" for month in range(1, 13)]
    count: dict[str, int] = defaultdict(int)
    revenue: dict[str, int] = defaultdict(int)
    buyers: dict[str, set[int]] = defaultdict(set)
    per_member: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for member_id, amount, when in sales:
        if (month := month_of(when)) is not None:
            count[month] += 1
            revenue[month] += amount
            buyers[month].add(member_id)
            per_member[member_id][0] += 1
            per_member[member_id][1] += amount
    bought = got.purchases
    assert bought.grain == reports.MONTH
    assert [(s.slice.label, s.purchases, s.revenue_minor, s.buyers) for s in bought.by_slice] == [
        (month, count[month], revenue[month], len(buyers[month])) for month in months
    ]
    assert [s.buyers for s in bought.by_slice] == [2, 2, 3, 1, 2, 3, 1, 1, 1, 2, 1, 2]
    assert (bought.purchases, bought.revenue_minor) == (sum(count.values()), sum(revenue.values()))
    assert bought.buyers == len(per_member) == 6  # m0, m1, m2, m3, m4 and the erased member

    # Ranked by revenue, then purchases, then the older member; the erased member left out.
    ranked = sorted(
        (item for item in per_member.items() if item[0] != erased),
        key=lambda item: (-item[1][1], -item[1][0], item[0]),
    )
    assert [(c.member_id, c.purchases, c.revenue_minor) for c in got.top_customers] == [
        (member_id, n, total) for member_id, (n, total) in ranked
    ]
    assert got.top_customers[0].member_id == m[4]  # 70,000 as the erased one's, in two

    joined: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for when, status in joins:
        if (month := month_of(when)) is not None:
            joined[month][0] += 1
            joined[month][1] += status == members.ACTIVE
    assert [(n.slice.label, n.joined, n.still_members) for n in got.members.new_by_slice] == [
        (month, *joined[month]) for month in months
    ]
    assert got.members.new == 5
    # The report's recency (on SQLite `never` is the members less those who bought) is the
    # one counted alone.
    assert got.recency == recency
    assert sum(r.members for r in recency) == got.members.members


async def test_ten_years_by_week_in_chunks_of_slices(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    m = await ids_of(db, club_id, await add_members(db, club_id, 2, joined_at=utc(2019, 1, 1)))
    start = dt.date(2020, 1, 6)  # a Monday: week i starts on start + 7 i days
    end = start + dt.timedelta(days=reports.MAX_DAYS)

    def noon(week: int) -> dt.datetime:
        day = start + dt.timedelta(days=7 * week + 3)
        return dt.datetime.combine(day, dt.time(12), tzinfo=OSLO).astimezone(dt.UTC)

    bought = {0: 1, 99: 2, 100: 1, 101: 2, 199: 1, 200: 2, 522: 1}
    for week, n in bought.items():
        for i in range(n):
            await buy(db, club_id, m[i], 1000 * (week + 1), noon(week))
    await add_members(db, club_id, 1, start=10, joined_at=noon(100))
    await add_members(db, club_id, 1, start=11, joined_at=noon(522), status=members.STOPPED)

    def work(session) -> tuple[reports.PurchaseFigures, reports.MemberFigures]:
        program = session.get(Program, club_id)
        per = reports.period(program, start, end)
        figures = reports.purchase_figures(session, program, per, reports.WEEK)
        return figures, reports.member_figures(session, program, per, reports.WEEK)

    sales, joined = await db.run(work)

    assert len(sales.by_slice) == 523
    assert [(i, s.purchases, s.buyers) for i, s in enumerate(sales.by_slice) if s.purchases] == [
        (week, n, n) for week, n in bought.items()
    ]
    assert sales.by_slice[100].revenue_minor == 101000
    assert sales.by_slice[100].slice.start == start + dt.timedelta(days=700)
    assert (sales.buyers, sales.purchases) == (2, 10)
    new = [(i, n.joined, n.still_members) for i, n in enumerate(joined.new_by_slice) if n.joined]
    assert new == [(100, 1, 1), (522, 1, 0)]
