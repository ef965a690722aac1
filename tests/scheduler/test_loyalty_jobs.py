"""The hourly loyalty jobs: expiry, birthday coupons and the tier review, each idempotent."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from scheduler.daily import run_daily
from store.loyalty import coupons, ledger, purchases, tiers
from store.loyalty.earning import Line
from store.members import members
from store.models import Coupon, LedgerEntry, Member, Program

EARNED = dt.datetime(2024, 1, 15, 12, tzinfo=dt.UTC)


async def member_with(db, club: int, *, birthday: dt.date | None = None, points: int = 0) -> int:
    def work(session) -> int:
        program = session.get(Program, club)
        member = members.create(session, program, "+4791234567", status="active", now=EARNED)
        member.birthday = birthday
        session.flush()
        if points:
            purchases.record(
                session,
                program,
                member.id,
                transaction_id="T1",
                lines=[Line(qty=1, amount_minor=points * 100)],
                occurred_at=EARNED,
                fingerprint="T1",
                now=EARNED,
            )
        return member.id

    return await db.run(work)


async def test_expired_points_get_their_entry_once(db, club) -> None:
    member_id = await member_with(db, club, points=300)
    later = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)  # January 2024 + 24 months has ended
    first = await run_daily(db, lambda: later)
    again = await run_daily(db, lambda: later)
    assert (first.lots_expired, again.lots_expired) == (1, 0)

    def read(session):
        entries = session.scalars(
            select(LedgerEntry).where(LedgerEntry.member_id == member_id).order_by(LedgerEntry.id)
        ).all()
        return (
            [(e.kind, e.points) for e in entries],
            entries[-1].created_at,
            ledger.balance(session, member_id, later),
            ledger.totals(session, member_id),
        )

    kinds, dated, balance, totals = await db.run(read)
    assert kinds == [("earn", 300), ("expire", -300)]
    # Dated when the lot ended (the end of January 2026 in Oslo), not when the job ran.
    assert dated == dt.datetime(2026, 1, 31, 23, tzinfo=dt.UTC)
    assert balance == 0
    assert totals == (0, 0)


async def test_points_not_yet_at_their_end_are_kept(db, club) -> None:
    member_id = await member_with(db, club, points=300)
    before_end = dt.datetime(2026, 1, 31, 22, tzinfo=dt.UTC)
    assert (await run_daily(db, lambda: before_end)).lots_expired == 0
    assert await db.run(lambda s: ledger.balance(s, member_id, before_end)) == 300


async def test_birthday_coupon_once_on_the_day(db, club) -> None:
    def template(session) -> None:
        coupons.create_template(
            session,
            session.get(Program, club),
            key="bday",
            kind="birthday",
            benefit={"en": "a cake"},
            valid_days=30,
        )

    await db.run(template)
    member_id = await member_with(db, club, birthday=dt.date(1990, 3, 12))
    # 23:30 UTC on 11 March is already 12 March in Oslo.
    birthday = dt.datetime(2026, 3, 11, 23, 30, tzinfo=dt.UTC)
    day_before = dt.datetime(2026, 3, 11, 12, tzinfo=dt.UTC)
    assert (await run_daily(db, lambda: day_before)).birthday_coupons == 0
    assert (await run_daily(db, lambda: birthday)).birthday_coupons == 1
    assert (await run_daily(db, lambda: birthday)).birthday_coupons == 0
    sources = await db.run(
        lambda s: list(s.scalars(select(Coupon.source).where(Coupon.member_id == member_id)))
    )
    assert sources == [f"birthday:{member_id}:2026"]


async def test_a_tier_not_earned_again_is_lost_at_review(db, club) -> None:
    member_id = await member_with(db, club, points=2500)

    def tier_name(session) -> str | None:
        member = session.get(Member, member_id)
        session.refresh(member)
        return member.tier_until, (
            tiers.name(session.get(tiers.Tier, member.tier_id), "en") if member.tier_id else None
        )

    until, name = await db.run(tier_name)
    assert (until, name) == (dt.date(2025, 1, 15), "Silver")
    # A year on with no purchases: the review drops the member to Bronze.
    review = dt.datetime(2025, 1, 16, 12, tzinfo=dt.UTC)
    assert (await run_daily(db, lambda: review)).tiers_reviewed == 1
    assert await db.run(tier_name) == (None, None)
