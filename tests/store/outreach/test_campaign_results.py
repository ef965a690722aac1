"""What keeps the dashboard fast, still exact: a broadcast's results as the scheduler stores
them (fresh ones read as stored, stale ones counted again, settled ones kept), each member's
last purchase, and the top customers ranked before their member rows are read."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from scheduler import jobs, sender
from store import reports
from store.database import Database
from store.models import Campaign, Member, Program
from tests.scheduler.campaign_helpers import T0, RecordingGateway, add_members, at, broadcast, plan
from tests.store.loyalty_helpers import template
from tests.store.test_reports import buy, figures, ids_of, new_club

DAY = dt.timedelta(days=1)
FRESH = reports.RESULTS_FRESH


async def sent_broadcast(db: Database, members: int = 3, **options) -> tuple[int, int, list[int]]:
    """A club with `members` members and a broadcast sent to them at T0: (club, campaign,
    member ids)."""
    club_id = await new_club(db)
    phones = await add_members(db, club_id, members)
    campaign_id = await broadcast(db, club_id, **options)
    await plan(db, campaign_id)
    await sender.drain(db, RecordingGateway(), at(T0))
    return club_id, campaign_id, await ids_of(db, club_id, phones)


async def store(db: Database, campaign_id: int, now: dt.datetime) -> reports.CampaignResult:
    result = await db.run(lambda s: reports.store_results(s, campaign_id, now))
    assert result is not None
    return result


async def shown(db: Database, club_id: int, now: dt.datetime) -> reports.CampaignResult:
    [result] = await figures(
        db, club_id, reports.campaign_results, now, stored=FRESH, days=_NOVEMBER_TO_JANUARY
    )
    return result


_NOVEMBER_TO_JANUARY = (dt.date(2026, 11, 1), dt.date(2027, 1, 1))


async def test_fresh_results_are_read_as_stored_and_stale_ones_counted_again(
    loyalty_db: Database,
) -> None:
    db = loyalty_db
    club_id, campaign_id, [first, second, _] = await sent_broadcast(db)
    await buy(db, club_id, first, 9000, T0 + DAY)
    counted = T0 + 2 * DAY
    stored = await store(db, campaign_id, counted)
    assert (stored.sent, stored.recipients.revenue_minor, stored.counted_at) == (3, 9000, counted)
    assert stored.settles_at == T0 + reports.REVENUE_DAYS * DAY
    assert not stored.settled

    await buy(db, club_id, second, 5000, T0 + 3 * DAY)
    # Younger than FRESH: as stored, with the moment it was counted.
    got = await shown(db, club_id, counted + FRESH - dt.timedelta(seconds=1))
    assert (got.recipients.revenue_minor, got.recipients.buyers, got.counted_at) == (
        9000,
        1,
        counted,
    )
    assert (got.name, got.status, got.sent) == ("Test", "done", 3)
    # Older: counted again now (and the live count never reads what is stored).
    later = counted + FRESH
    got = await shown(db, club_id, later)
    assert (got.recipients.revenue_minor, got.recipients.buyers, got.counted_at) == (
        14000,
        2,
        later,
    )
    [live] = await figures(
        db, club_id, reports.campaign_results, counted, days=_NOVEMBER_TO_JANUARY
    )
    assert (live.recipients.revenue_minor, live.counted_at) == (14000, counted)


async def test_settled_results_are_kept_and_no_longer_counted(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id, campaign_id, [first, *_] = await sent_broadcast(db)
    assert campaign_id in await db.run(lambda s: reports.unsettled_results(s, T0))
    window_end = T0 + reports.REVENUE_DAYS * DAY
    settled = await store(db, campaign_id, window_end)
    assert settled.settled
    assert settled.complete
    assert campaign_id not in await db.run(lambda s: reports.unsettled_results(s, window_end + DAY))
    # A purchase the till tells only now, dated within the window, is not counted any more:
    # the report a merchant read once the window closed stays what it was.
    await buy(db, club_id, first, 7000, T0 + 5 * DAY)
    got = await shown(db, club_id, T0 + 200 * DAY)
    assert (got.recipients.revenue_minor, got.counted_at) == (0, window_end)


async def test_a_campaigns_coupons_keep_it_unsettled_until_they_expire(
    loyalty_db: Database,
) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    key = await db.run(
        lambda s: template(s, s.get(Program, club_id), "campaign", valid_days=60).key
    )
    phones = await add_members(db, club_id, 2)
    campaign_id = await broadcast(db, club_id, texts={"nb": "Hei! {coupon_code}"}, coupon=key)
    await plan(db, campaign_id)
    await sender.drain(db, RecordingGateway(), at(T0))
    assert len(phones) == 2
    window_end = T0 + reports.REVENUE_DAYS * DAY
    result = await store(db, campaign_id, window_end)
    assert result.coupons_issued == 2
    assert result.settles_at is not None
    assert result.settles_at > window_end + 29 * DAY
    assert not result.settled
    assert campaign_id in await db.run(lambda s: reports.unsettled_results(s, window_end))


async def test_results_that_cant_be_read_are_counted_again(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id, campaign_id, _ = await sent_broadcast(db)
    await store(db, campaign_id, T0 + DAY)
    await db.run(
        lambda s: s.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(results={"sent": "many"})
        )
    )
    got = await shown(db, club_id, T0 + DAY)
    assert (got.sent, got.counted_at) == (3, T0 + DAY)


async def test_a_broadcast_not_sent_yet_has_nothing_to_store(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    await add_members(db, club_id, 2)
    campaign_id = await broadcast(db, club_id, send_at=T0 + 5 * DAY)
    assert campaign_id not in await db.run(lambda s: reports.unsettled_results(s, T0))
    result = await store(db, campaign_id, T0)
    assert (result.sent, result.window_ends, result.settles_at) == (0, None, None)


async def test_the_scheduler_job_stores_each_unsettled_broadcast(db: Database) -> None:
    """A database of its own: the job counts every club's broadcasts."""
    club_id, first, _ = await sent_broadcast(db)
    second = await broadcast(db, club_id, name="Second")
    await plan(db, second)
    await sender.drain(db, RecordingGateway(), at(T0))

    assert await jobs.store_campaign_results(db, lambda: T0 + DAY) == 2
    stored = await db.run(
        lambda s: s.execute(
            select(Campaign.id, Campaign.results_at).where(Campaign.id.in_((first, second)))
        ).all()
    )
    assert {row.results_at for row in stored} == {T0 + DAY}
    end = T0 + (reports.REVENUE_DAYS + 1) * DAY
    assert await jobs.store_campaign_results(db, lambda: end) == 2
    assert await jobs.store_campaign_results(db, lambda: end + DAY) == 0


async def test_a_members_last_purchase_never_moves_back(loyalty_db: Database) -> None:
    db = loyalty_db
    club_id = await new_club(db)
    [member_id] = await ids_of(db, club_id, await add_members(db, club_id, 1))

    async def last() -> dt.datetime | None:
        return await db.run(
            lambda s: s.scalar(select(Member.last_purchase_at).where(Member.id == member_id))
        )

    assert await last() is None
    await buy(db, club_id, member_id, 1000, T0)
    assert await last() == T0
    await buy(db, club_id, member_id, 1000, T0 - 40 * DAY)  # a till's backlog, told late
    assert await last() == T0
    await buy(db, club_id, member_id, 1000, T0 + DAY)
    assert await last() == T0 + DAY

    def recency(session):
        return reports.recency(session, session.get(Program, club_id), T0 + 45 * DAY)

    buckets = {r.label: r.members for r in await db.run(recency)}
    assert buckets == {"0-30": 0, "31-90": 1, "91-180": 0, "181-365": 0, ">365": 0, "never": 0}


async def test_the_top_customers_skip_erased_members_however_many_rank_first(
    loyalty_db: Database,
) -> None:
    """More erased members than the first look takes rank above the others: they are left
    out, and the ten after them are the top 10."""
    db = loyalty_db
    club_id = await new_club(db)
    erased = await ids_of(
        db, club_id, await add_members(db, club_id, 30, status="erased", prefix="+4792")
    )
    kept = await ids_of(db, club_id, await add_members(db, club_id, 12, prefix="+4793"))
    when = dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC)
    for i, member_id in enumerate(erased):
        await buy(db, club_id, member_id, 900_000 + i, when)
    for i, member_id in enumerate(kept):
        await buy(db, club_id, member_id, 1000 * (i + 1), when)
    top = await figures(db, club_id, reports.top_customers)
    assert [c.member_id for c in top] == kept[::-1][:10]
    assert [c.revenue_minor for c in top] == [1000 * n for n in range(12, 2, -1)]
