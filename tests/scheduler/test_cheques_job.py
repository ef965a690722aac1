"""The hourly bonus cheque job in burst mode: balances raised without a purchase (points given
by staff) get their cheques once, announced after the member's quiet hours."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from scheduler import cheques as job
from scheduler import sender
from store.database import Database
from store.loyalty import cheques, coupons, ledger
from store.members import consent, members
from store.models import Coupon, Member, Program
from tests.scheduler.campaign_helpers import RecordingGateway

# 02:00 in Oslo (winter): inside the club's quiet hours (20-9).
NIGHT = dt.datetime(2026, 1, 20, 1, 0, tzinfo=dt.UTC)
MORNING = dt.datetime(2026, 1, 20, 8, 0, tzinfo=dt.UTC)  # 09:00 in Oslo


async def setup(db: Database, club: int, points: dict[str, int]) -> dict[str, int]:
    """A 2,500-point cheque of 50 kr, and members given points by staff (no purchase)."""

    def work(session) -> dict[str, int]:
        program = session.get(Program, club)
        template = coupons.create_template(
            session,
            program,
            key="bonus",
            kind=coupons.REWARD,
            benefit={"nb": "{amount} rabatt", "en": "{amount} off"},
            discount_minor=5000,
            points_cost=2500,
            valid_days=60,
        )
        cheques.set_automatic(session, club, template.id, automatic=True)
        made = {}
        for phone, given in points.items():
            member = members.create(session, program, phone, status="active", now=NIGHT)
            member.joined_at = NIGHT
            member.language = "nb"
            session.flush()
            ledger.adjust(session, program, member, given, NIGHT, reason="gift", actor="staff")
            made[phone] = member.id
        return made

    return await db.run(work)


async def test_the_job_issues_each_due_cheque_once_and_announces_it_after_quiet_hours(
    db: Database, club: int
) -> None:
    ids = await setup(db, club, {"+4791000001": 5200, "+4791000002": 2499, "+4791000003": 2500})
    assert await job.run(db, lambda: NIGHT) == 3
    assert await job.run(db, lambda: NIGHT) == 0

    def read(session) -> dict[str, tuple[int, int]]:
        return {
            phone: (
                ledger.balance(session, member_id, NIGHT),
                len(session.scalars(select(Coupon).where(Coupon.member_id == member_id)).all()),
            )
            for phone, member_id in ids.items()
        }

    assert await db.run(read) == {
        "+4791000001": (200, 2),
        "+4791000002": (2499, 0),
        "+4791000003": (0, 1),
    }
    gateway = RecordingGateway()
    # Found at 02:00, held until the quiet hours end at 09:00 in Oslo.
    assert await sender.drain(db, gateway, lambda: NIGHT + dt.timedelta(hours=1)) == 0
    assert await sender.drain(db, gateway, lambda: MORNING) == 3
    texts = gateway.to("+4791000001")
    assert len(texts) == 2
    assert all(
        t.startswith("Torshov Sport: 2 500 poeng ble en bonussjekk: 50 kr rabatt.") for t in texts
    )
    assert gateway.to("+4791000002") == []


async def test_a_member_who_stops_before_the_morning_gets_no_sms(db: Database, club: int) -> None:
    ids = await setup(db, club, {"+4791000009": 2600})
    assert await job.run(db, lambda: NIGHT) == 1

    def stop(session) -> None:
        member = session.get(Member, ids["+4791000009"])
        consent.withdraw(
            session,
            member,
            wording_id="stop",
            wording_language="nb",
            wording_text="STOPP",
            channel="sms",
            evidence="SMtest",
            now=NIGHT + dt.timedelta(minutes=5),
        )

    await db.run(stop)
    gateway = RecordingGateway()
    await sender.drain(db, gateway, lambda: MORNING)
    assert gateway.to("+4791000009") == []


async def test_a_club_without_a_cheque_is_not_looked_at(db: Database, club: int) -> None:
    def work(session) -> None:
        program = session.get(Program, club)
        member = members.create(session, program, "+4791000010", status="active", now=NIGHT)
        member.joined_at = NIGHT
        session.flush()
        ledger.adjust(session, program, member, 99_999, NIGHT, reason="gift", actor="staff")

    await db.run(work)
    assert await db.run(cheques.clubs_with_cheques) == []
    assert await job.run(db, lambda: NIGHT) == 0
