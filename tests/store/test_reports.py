"""Reporting: each figure of the dashboard counted exactly, on SQLite and PostgreSQL, from data
made by the store's own functions (members, purchases, a planned and sent campaign, STOP)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from flows.conversation import InboundText, handle_text
from scheduler import sender
from scheduler.gateway import Rejected
from store import reports
from store.clubs import programs
from store.database import Database
from store.errors import InvalidInput
from store.loyalty import coupons, purchases
from store.loyalty.earning import Line
from store.members import members
from store.models import Coupon, Member, OutboxMessage, Program
from store.outreach import delivery
from tests.scheduler.campaign_helpers import (
    T0,
    RecordingGateway,
    add_members,
    at,
    broadcast,
    plan,
    rows_of,
)
from tests.store.loyalty_helpers import club, template

OSLO = ZoneInfo("Europe/Oslo")
NOVEMBER = (dt.date(2026, 11, 1), dt.date(2026, 12, 1))
_SALES = itertools.count()


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


async def new_club(db: Database) -> int:
    return await db.run(lambda session: club(session).id)


async def ids_of(db: Database, club_id: int, phones: list[str]) -> list[int]:
    def work(session) -> list[int]:
        found = dict(
            session.execute(
                select(Member.phone, Member.id).where(
                    Member.program_id == club_id, Member.phone.in_(phones)
                )
            ).all()
        )
        return [found[phone] for phone in phones]

    return await db.run(work)


async def buy(
    db: Database, club_id: int, member_id: int, amount: int, when: dt.datetime, **extra
) -> str:
    """A purchase as the till records it; returns its transaction id."""
    transaction = f"T{next(_SALES)}"

    def work(session) -> None:
        program = session.get(Program, club_id)
        purchases.record(
            session,
            program,
            member_id,
            transaction_id=transaction,
            lines=[Line(qty=1, amount_minor=amount)],
            occurred_at=when,
            fingerprint=transaction,
            now=when,
            **extra,
        )

    await db.run(work)
    return transaction


async def figures(db: Database, club_id: int, function, *args, days=NOVEMBER, **kwargs):
    def work(session):
        program = session.get(Program, club_id)
        per = reports.period(program, *days)
        return function(session, program, per, *args, **kwargs)

    return await db.run(work)


class TestPeriod:
    """A period is whole days in the club's zone, cut into ISO weeks or months."""

    program = Program(timezone="Europe/Oslo")

    def test_days_are_cut_at_the_clubs_midnight(self):
        per = reports.period(self.program, *NOVEMBER)
        assert (per.days, per.last_day) == (30, dt.date(2026, 11, 30))
        assert per.since == utc(2026, 10, 31, 23)  # CET, UTC+1
        assert per.until == utc(2026, 11, 30, 23)
        summer = reports.period(self.program, dt.date(2026, 7, 1), dt.date(2026, 7, 2))
        assert summer.since == utc(2026, 6, 30, 22)  # CEST, UTC+2

    def test_weeks_are_iso_weeks_cut_to_the_period(self):
        per = reports.period(self.program, *NOVEMBER)
        assert reports.grain_for(per) == reports.WEEK
        cut = reports.slices(per, reports.WEEK)
        assert [(s.label, s.start.day, s.end.day, s.whole) for s in cut] == [
            ("2026-W44", 1, 2, False),  # Sunday 1 November
            ("2026-W45", 2, 9, True),
            ("2026-W46", 9, 16, True),
            ("2026-W47", 16, 23, True),
            ("2026-W48", 23, 30, True),
            ("2026-W49", 30, 1, False),  # Monday 30 November
        ]

    def test_months_over_thirteen_weeks(self):
        per = reports.period(self.program, dt.date(2026, 10, 15), dt.date(2027, 1, 16))
        assert reports.grain_for(per) == reports.MONTH
        cut = reports.slices(per, reports.grain_for(per))
        assert [(s.label, s.start, s.end, s.whole) for s in cut] == [
            ("2026-10", dt.date(2026, 10, 15), dt.date(2026, 11, 1), False),
            ("2026-11", dt.date(2026, 11, 1), dt.date(2026, 12, 1), True),
            ("2026-12", dt.date(2026, 12, 1), dt.date(2027, 1, 1), True),
            ("2027-01", dt.date(2027, 1, 1), dt.date(2027, 1, 16), False),
        ]
        thirteen_weeks = reports.period(self.program, dt.date(2026, 1, 1), dt.date(2026, 4, 3))
        assert reports.grain_for(thirteen_weeks) == reports.WEEK

    def test_the_last_days_end_today_in_the_clubs_zone(self):
        # 23:30 UTC on the 23rd is already the 24th in Oslo.
        per = reports.last_days(self.program, utc(2026, 11, 23, 23, 30))
        assert (per.start, per.end) == (dt.date(2026, 10, 26), dt.date(2026, 11, 25))

    @pytest.mark.parametrize(
        ("start", "end", "field"),
        [
            (dt.date(2026, 11, 2), dt.date(2026, 11, 2), "to"),
            (dt.date(2026, 11, 2), dt.date(2026, 11, 1), "to"),
            (dt.date(2010, 1, 1), dt.date(2026, 1, 1), "from"),
        ],
    )
    def test_an_empty_or_too_long_period_is_refused(self, start, end, field):
        with pytest.raises(InvalidInput) as error:
            reports.period(self.program, start, end)
        assert error.value.field == field


async def test_members_by_status_and_who_joined_when_and_where(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)

    async def joined(count, start, when, **columns):
        await add_members(db, club_id, count, start=start, joined_at=when, **columns)

    await joined(4, 0, utc(2026, 11, 3, 9), store="Torshov")
    # 00:30 on 1 November in Oslo, still 31 October in UTC: in the period, in its first week.
    await joined(2, 10, utc(2026, 10, 31, 23, 30))
    await joined(1, 20, utc(2026, 10, 31, 22, 30))  # 23:30 on 31 October in Oslo: before
    await joined(1, 30, utc(2026, 11, 20, 12), store="Torshov", status=members.STOPPED)
    await joined(1, 40, None, status=members.STOPPED)  # texted STOP, never a member
    await joined(1, 50, None, status=members.PENDING)
    await joined(1, 60, utc(2026, 11, 30, 7), store="Majorstuen", status=members.ERASED, phone=None)
    await joined(1, 70, utc(2026, 11, 30, 23))  # midnight into December in Oslo: after
    await add_members(db, club_id, 1, start=80, undeliverable_at=T0)  # joined in August

    got = await figures(db, club_id, reports.member_figures)

    assert got.members == 9  # the one whose number is flagged as unreachable too
    assert (got.left, got.stopped_never_joined, got.pending, got.erased) == (1, 1, 1, 1)
    assert got.known == 12
    assert got.consent_share == 0.75
    assert got.new == 8
    assert [(n.slice.label, n.joined, n.still_members) for n in got.new_by_slice] == [
        ("2026-W44", 2, 2),
        ("2026-W45", 4, 4),
        ("2026-W46", 0, 0),
        ("2026-W47", 1, 0),
        ("2026-W48", 0, 0),
        ("2026-W49", 1, 0),
    ]
    assert [(n.store, n.joined, n.still_members) for n in got.new_by_store] == [
        ("Torshov", 5, 4),
        (None, 2, 2),
        ("Majorstuen", 1, 0),
    ]
    by_month = await figures(db, club_id, reports.member_figures, reports.MONTH)
    assert [(n.slice.label, n.joined) for n in by_month.new_by_slice] == [("2026-11", 8)]


async def test_an_empty_club_has_zeros_and_no_shares(loyalty_db: Database) -> None:
    club_id = await new_club(loyalty_db)
    got = await figures(loyalty_db, club_id, reports.member_figures)
    assert (got.members, got.known, got.consent_share, got.new) == (0, 0, None, 0)
    assert got.new_by_store == []
    sales = await figures(loyalty_db, club_id, reports.purchase_figures)
    assert (sales.purchases, sales.revenue_minor, sales.average_minor) == (0, 0, None)
    assert [s.purchases for s in sales.by_slice] == [0] * 6
    assert await figures(loyalty_db, club_id, reports.top_customers) == []
    now = utc(2026, 12, 1)
    assert await figures(loyalty_db, club_id, reports.campaign_results, now) == []
    recency = await loyalty_db.run(lambda s: reports.recency(s, s.get(Program, club_id), now))
    assert [(r.label, r.members) for r in recency] == [
        ("0-30", 0),
        ("31-90", 0),
        ("91-180", 0),
        ("181-365", 0),
        (">365", 0),
        ("never", 0),
    ]


async def test_purchases_top_customers_and_days_since_the_last(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    phones = await add_members(db, club_id, 9)
    m = await ids_of(db, club_id, phones)
    [erased] = await ids_of(
        db, club_id, await add_members(db, club_id, 1, start=50, status=members.ERASED)
    )
    [stopped] = await ids_of(
        db, club_id, await add_members(db, club_id, 1, start=60, status=members.STOPPED)
    )
    now = utc(2026, 12, 1, 12)

    await buy(db, club_id, m[0], 10000, utc(2026, 10, 31, 23, 30), store="Torshov")  # 1 Nov
    await buy(db, club_id, m[0], 25000, utc(2026, 11, 3, 10))
    await buy(db, club_id, m[0], 5000, utc(2026, 11, 30, 23, 30))  # 1 December in Oslo
    refunded = await buy(db, club_id, m[1], 40000, utc(2026, 11, 10, 10))
    await buy(db, club_id, m[2], 20000, utc(2026, 11, 10, 11))
    await buy(db, club_id, m[2], 20000, utc(2026, 11, 25, 11))
    await buy(db, club_id, m[3], 7000, utc(2026, 6, 1, 10))  # 183 days before now
    await buy(db, club_id, m[5], 3000, utc(2026, 9, 15, 10))  # 77 days
    await buy(db, club_id, m[6], 3000, now - dt.timedelta(days=31))  # 31 days to the second
    await buy(db, club_id, m[7], 3000, now - dt.timedelta(days=31) + dt.timedelta(seconds=1))
    await buy(db, club_id, m[8], 3000, utc(2025, 6, 1))
    await buy(db, club_id, erased, 99900, utc(2026, 11, 15, 10))
    await buy(db, club_id, stopped, 1000, utc(2026, 11, 16, 10))

    def give_back(session) -> None:
        purchases.refund(
            session,
            session.get(Program, club_id),
            transaction_id=refunded,
            refund_id="R1",
            lines=[purchases.RefundLineIn(line_no=1, amount_minor=15000)],
            fingerprint="R1",
            now=utc(2026, 11, 12, 10),
        )

    await db.run(give_back)

    sales = await figures(db, club_id, reports.purchase_figures)
    assert (sales.currency, sales.grain) == ("NOK", reports.WEEK)
    assert (sales.purchases, sales.revenue_minor, sales.buyers) == (7, 215900, 5)
    assert sales.average_minor == 30843  # 215,900 / 7 = 30,842.86
    assert sales.per_buyer_minor == 43180
    assert (sales.refunds, sales.refunded_minor) == (1, 15000)
    # What non-members bought is not known: Klubb records members' purchases only.
    assert (sales.non_member_purchases, sales.non_member_revenue_minor) == (None, None)
    assert sales.member_share is None
    assert [(s.slice.label, s.purchases, s.revenue_minor, s.buyers) for s in sales.by_slice] == [
        ("2026-W44", 1, 10000, 1),
        ("2026-W45", 1, 25000, 1),
        ("2026-W46", 3, 159900, 3),
        ("2026-W47", 1, 1000, 1),
        ("2026-W48", 1, 20000, 1),
        ("2026-W49", 0, 0, 0),
    ]

    top = await figures(db, club_id, reports.top_customers)
    # Ties on revenue go to more purchases; the erased member's purchase is left out.
    assert [(c.member_id, c.purchases, c.revenue_minor, c.status) for c in top] == [
        (m[2], 2, 40000, "active"),
        (m[1], 1, 40000, "active"),
        (m[0], 2, 35000, "active"),
        (stopped, 1, 1000, "stopped"),
    ]
    assert (top[0].first_name, top[0].phone_masked) == ("Navn2", "+47*****002")
    assert [c.member_id for c in await figures(db, club_id, reports.top_customers, 2)] == [
        m[2],
        m[1],
    ]

    recency = await db.run(lambda s: reports.recency(s, s.get(Program, club_id), now))
    assert [(r.label, r.members) for r in recency] == [
        ("0-30", 4),  # m0 (today), m1, m2, m7 (30 days and 23:59:59 ago)
        ("31-90", 2),  # m5, m6 (31 days ago to the second)
        ("91-180", 0),
        ("181-365", 1),  # m3
        (">365", 1),  # m8
        ("never", 1),  # m4; the stopped and the erased member are not members
    ]


async def stop(db: Database, club_id: int, phone: str, when: dt.datetime) -> None:
    """The member texts STOP at `when`, through the conversation as the webhook runs it."""

    def work(session) -> None:
        number = programs.numbers(session, club_id)[0]
        text = InboundText("SM" + uuid.uuid4().hex, phone, number, "STOP", when)
        assert handle_text(session, text).reply is not None

    await db.run(work)


async def test_a_campaign_against_its_control_group(db: Database) -> None:
    # A database of its own: the control group is a hash of the member's and the campaign's
    # ids, which then are the same on every run (24 members from id 1, campaign 1: 3 held out).
    club_id = await new_club(db)
    key = await db.run(
        lambda s: template(s, s.get(Program, club_id), "campaign", discount_percent=10).key
    )
    phones = await add_members(db, club_id, 24)
    ids = await ids_of(db, club_id, phones)
    phone_of = dict(zip(ids, phones, strict=True))
    campaign_id = await broadcast(
        db,
        club_id,
        texts={"nb": "Hei {first_name}! 10 % med {coupon_code}."},
        control_percent=50,
        coupon=key,
    )
    # Not in the period's report: one for December, and one not sent yet.
    await broadcast(db, club_id, name="December", send_at=utc(2026, 12, 2, 9))
    later = await broadcast(db, club_id, name="Later", send_at=utc(2026, 11, 28, 9))
    assert await plan(db, campaign_id) == 24
    rows = await rows_of(db, campaign_id)
    held = [r.member_id for r in rows if r.status == "held_out"]
    queued = [r.member_id for r in rows if r.status == "queued"]
    assert len(held) >= 3
    assert len(queued) >= 7
    refused = queued[-1]
    gateway = RecordingGateway({phone_of[refused]: Rejected("bad body", "21617")})
    assert await sender.drain(db, gateway, at(T0)) == len(queued) - 1
    sent = [m for m in queued if m != refused]

    def receipts(session) -> None:
        by_member = {
            row.member_id: row.provider_id
            for row in session.execute(
                select(OutboxMessage.member_id, OutboxMessage.provider_id).where(
                    OutboxMessage.campaign_id == campaign_id
                )
            )
        }
        for member_id, status in ((sent[0], "delivered"), (sent[1], "delivered")):
            delivery.record_receipt(
                session,
                program_id=club_id,
                provider_id=by_member[member_id],
                status=status,
                error_code=None,
                now=T0 + dt.timedelta(minutes=1),
            )
        delivery.record_receipt(
            session,
            program_id=club_id,
            provider_id=by_member[sent[2]],
            status="undelivered",
            error_code="30003",
            now=T0 + dt.timedelta(minutes=1),
        )

    await db.run(receipts)

    # Opt-outs: STOP within 7 days of the message counts, later does not.
    await stop(db, club_id, phone_of[sent[3]], T0 + dt.timedelta(days=2))
    await stop(db, club_id, phone_of[sent[4]], T0 + dt.timedelta(days=7, minutes=-1))
    await stop(db, club_id, phone_of[sent[5]], T0 + dt.timedelta(days=7, minutes=1))
    await stop(db, club_id, phone_of[held[0]], T0 + dt.timedelta(days=1))

    # Two of the campaign's coupons are redeemed at the till.
    def redeem(session) -> None:
        for member_id in sent[:2]:
            code = session.scalar(
                select(Coupon.code).where(Coupon.source == f"campaign:{campaign_id}:{member_id}")
            )
            coupons.redeem(session, club_id, code, T0 + dt.timedelta(days=3), by="till")

    await db.run(redeem)

    # Purchases in the 30 days after the message, and around them.
    await buy(db, club_id, sent[0], 30000, T0 + dt.timedelta(days=1))
    await buy(db, club_id, sent[0], 5000, T0 - dt.timedelta(hours=1))  # before
    await buy(db, club_id, sent[1], 10000, T0 + dt.timedelta(days=30, minutes=-1))
    await buy(db, club_id, sent[2], 50000, T0 + dt.timedelta(days=30, minutes=1))  # after
    await buy(db, club_id, refused, 70000, T0 + dt.timedelta(days=2))  # not a recipient
    await buy(db, club_id, held[1], 20000, T0 + dt.timedelta(days=5))
    await buy(db, club_id, held[2], 1000, T0 + dt.timedelta(days=6))
    await buy(db, club_id, held[2], 1000, T0 + dt.timedelta(days=8))

    now = T0 + dt.timedelta(days=40)
    results = await figures(db, club_id, reports.campaign_results, now)
    assert [r.id for r in results] == [campaign_id, later]
    got, unsent = results
    assert (got.name, got.status, got.send_at, got.control_percent) == ("Test", "done", T0, 50)
    assert (got.sent, got.delivered, got.undelivered, got.failed) == (len(sent), 2, 1, 1)
    assert (got.skipped, got.held_out) == (0, len(held))
    # A coupon is issued as its message is written, so the refused one has one too.
    assert (got.coupons_issued, got.coupons_redeemed) == (len(queued), 2)
    assert got.recipients == reports.Group(
        members=len(sent), buyers=2, revenue_minor=40000, opt_outs=2
    )
    assert got.control == reports.Group(
        members=len(held), buyers=2, revenue_minor=22000, opt_outs=1
    )
    assert got.opt_outs == 2
    assert got.recipients.average == Fraction(40000, len(sent))
    treated, control = Fraction(40000, len(sent)), Fraction(22000, len(held))
    assert got.uplift_minor == round_half_up(treated - control)
    assert got.uplift_relative == pytest.approx(float((treated - control) / control))
    assert (got.window_ends, got.complete) == (T0 + dt.timedelta(days=30), True)

    assert (unsent.sent, unsent.held_out, unsent.coupons_issued) == (0, 0, 0)
    assert (unsent.recipients.members, unsent.control.members) == (0, 0)
    assert (unsent.uplift_minor, unsent.uplift_relative) == (None, None)
    assert (unsent.window_ends, unsent.complete) == (None, False)

    soon = await figures(db, club_id, reports.campaign_results, T0 + dt.timedelta(days=10))
    assert soon[0].complete is False


async def test_a_campaign_without_a_control_group_has_no_uplift(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    phones = await add_members(db, club_id, 3)
    campaign_id = await broadcast(db, club_id)
    await plan(db, campaign_id)
    await sender.drain(db, RecordingGateway(), at(T0))
    [first, *_] = await ids_of(db, club_id, phones)
    await buy(db, club_id, first, 9000, T0 + dt.timedelta(days=1))
    [got] = await figures(db, club_id, reports.campaign_results, T0)
    assert (got.sent, got.held_out) == (3, 0)
    assert got.recipients == reports.Group(3, 1, 9000, 0)
    assert got.recipients.average_minor == 3000
    assert got.control.average is None
    assert (got.uplift_minor, got.uplift_relative) == (None, None)


async def test_a_cancelled_campaign_counts_what_was_skipped(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    await add_members(db, club_id, 2)
    campaign_id = await broadcast(db, club_id)
    await plan(db, campaign_id)
    await db.run(
        lambda s: s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.campaign_id == campaign_id)
            .values(status="skipped", error="cancelled")
        )
    )
    [got] = await figures(db, club_id, reports.campaign_results, T0)
    assert (got.sent, got.skipped, got.recipients.members) == (0, 2, 0)


def round_half_up(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + Fraction(1, 2))


async def test_the_whole_report_holds_every_figure(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    [phone] = await add_members(db, club_id, 1, joined_at=utc(2026, 11, 5, 12))
    [member_id] = await ids_of(db, club_id, [phone])
    await buy(db, club_id, member_id, 12345, utc(2026, 11, 6, 12))
    now = utc(2026, 12, 1, 12)

    def work(session) -> reports.Report:
        program = session.get(Program, club_id)
        return reports.report(session, program, reports.period(program, *NOVEMBER), now)

    got = await db.run(work)
    assert (got.program_id, got.club, got.now) == (club_id, "Torshov Sport", now)
    assert (got.members.members, got.members.new) == (1, 1)
    assert (got.purchases.purchases, got.purchases.revenue_minor) == (1, 12345)
    assert [r.members for r in got.recency] == [1, 0, 0, 0, 0, 0]
    assert [c.member_id for c in got.top_customers] == [member_id]
    assert got.campaigns == []
