"""Recurring broadcasts through the planner job: each occurrence made once as a broadcast of its
own, planned with the cap and sent (fake gateway); 29 Feb; pause and cancel; a broadcast timed
before a sale."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from scheduler import jobs, sender
from store import reports
from store.errors import Conflict
from store.models import Campaign, Member, Program
from store.outreach import campaigns, recurring
from store.outreach.campaigns import BadBroadcast
from tests.scheduler.campaign_helpers import RecordingGateway, add_members, at, broadcast, plan

OSLO = ZoneInfo("Europe/Oslo")
MADE = dt.datetime(2027, 1, 10, 12, 0, tzinfo=dt.UTC)


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=OSLO)


async def series(db, club, rule: recurring.Recurrence, *, now=MADE, **options) -> int:
    options.setdefault("name", "Månedens tilbud")
    options.setdefault("texts", {"nb": "Hei {first_name}! Månedens tilbud."})
    options.setdefault("segment", None)

    def work(session) -> int:
        program = session.get(Program, club)
        return recurring.create_series(session, program, rule=rule, now=now, **options).id

    return await db.run(work)


async def children(db, series_id: int) -> list[Campaign]:
    return await db.run(
        lambda s: list(
            s.scalars(select(Campaign).where(Campaign.parent_id == series_id).order_by(Campaign.id))
        )
    )


async def set_cap(db, club: int, cap: int) -> None:
    def work(session) -> None:
        session.get(Program, club).marketing_per_month = cap

    await db.run(work)


class TestMonthly:
    async def test_the_planner_makes_january_once_and_it_is_sent_with_the_cap(self, db, club):
        phones = await add_members(db, club, 3)
        await set_cap(db, club, 1)
        # The first member had this month's one marketing SMS already.
        first_id = await db.run(
            lambda s: s.scalar(select(Member.id).where(Member.phone == phones[0]))
        )
        earlier = await broadcast(
            db,
            club,
            now=local(2027, 1, 5, 11),
            filter={"field": "member", "op": "in", "value": [first_id]},
        )
        await plan(db, earlier, now=local(2027, 1, 5, 11))
        gateway = RecordingGateway()
        await sender.drain(db, gateway, at(local(2027, 1, 5, 11)))
        assert gateway.per_number() == {phones[0]: 1}

        rule = recurring.recurrence("month", day="15", at="10:00")
        series_id = await series(db, club, rule)
        before = local(2027, 1, 15, 9, 50)
        assert await jobs.plan_broadcasts(db, at(before)) == 0
        assert await children(db, series_id) == []
        soon = local(2027, 1, 15, 9, 57)  # within PLAN_AHEAD of 10:00
        assert await jobs.plan_broadcasts(db, at(soon)) == 2
        assert await jobs.plan_broadcasts(db, at(soon + dt.timedelta(seconds=15))) == 0
        made = await children(db, series_id)
        assert [(c.occurrence, c.status) for c in made] == [("2027-01-15", "sending")]
        assert made[0].send_at == local(2027, 1, 15, 10)
        assert made[0].texts == {"nb": "Hei {first_name}! Månedens tilbud."}
        await sender.drain(db, gateway, at(local(2027, 1, 15, 10)))
        assert gateway.per_number() == {phones[0]: 1, phones[1]: 1, phones[2]: 1}
        assert gateway.to(phones[1])[0].startswith("Torshov Sport: Hei Navn1! Månedens tilbud.")
        assert (await db.run(lambda s: s.get(Campaign, series_id))).status == "active"

        # Reported by its own send_at; the series itself is in no report.
        def listed(session) -> list[int]:
            program = session.get(Program, club)
            per = reports.period(program, dt.date(2027, 1, 1), dt.date(2027, 2, 1))
            return [r.id for r in reports.campaign_results(session, program, per, soon)]

        assert await db.run(listed) == [earlier, made[0].id]

    async def test_a_second_run_racing_the_first_makes_nothing_twice(self, db, club):
        series_id = await series(db, club, recurring.recurrence("month", day="last", at="18:00"))
        moment = local(2027, 1, 31, 17, 58)
        first = await db.run(lambda s: recurring.make_due(s, moment))
        assert len(first) == 1

        assert await db.run(lambda s: recurring.make_due(s, moment)) == []

        # As a second planner would that read the series before the first one committed: the
        # unique (parent_id, occurrence) makes its insert nothing, not an error.
        def again(session) -> int | None:
            made = session.get(Campaign, series_id)
            return recurring.make_occurrence(session, made, dt.date(2027, 1, 31), OSLO, moment)

        assert await db.run(again) is None
        rows = await children(db, series_id)
        assert [r.occurrence for r in rows] == ["2027-01-31"]
        # February's last day is the 28th.
        nxt = await db.run(
            lambda s: recurring.next_moment(s.get(Campaign, series_id), OSLO, moment, "2027-01-31")
        )
        assert nxt == local(2027, 2, 28, 18)

    async def test_a_series_made_after_the_days_time_starts_next_month(self, db, club):
        series_id = await series(
            db,
            club,
            recurring.recurrence("month", day=15, at="10:00"),
            now=local(2027, 1, 15, 10, 30),
        )
        assert await db.run(lambda s: recurring.make_due(s, local(2027, 1, 15, 10, 31))) == []
        assert await db.run(lambda s: len(recurring.make_due(s, local(2027, 2, 15, 9, 56)))) == 1
        assert [c.occurrence for c in await children(db, series_id)] == ["2027-02-15"]

    async def test_an_occurrence_missed_by_more_than_the_grace_is_skipped(self, db, club):
        await series(db, club, recurring.recurrence("month", day=15, at="10:00"))
        late = local(2027, 1, 15, 10) + recurring.GRACE + dt.timedelta(minutes=1)
        assert await db.run(lambda s: recurring.make_due(s, late)) == []


class TestYearly:
    async def test_29_february_is_the_28th_in_other_years(self, db, club):
        series_id = await series(db, club, recurring.recurrence("year", date="02-29", at="09:30"))
        for day in (local(2027, 2, 28, 9, 26), local(2028, 2, 29, 9, 26)):
            await jobs.plan_broadcasts(db, at(day))
            await jobs.plan_broadcasts(db, at(day))
        made = await children(db, series_id)
        assert [(c.occurrence, c.send_at) for c in made] == [
            ("2027-02-28", local(2027, 2, 28, 9, 30)),
            ("2028-02-29", local(2028, 2, 29, 9, 30)),
        ]

    @pytest.mark.parametrize(
        ("every", "options", "field"),
        [
            ("week", {}, "every"),
            ("month", {"day": "29"}, "day"),
            ("month", {"day": "0"}, "day"),
            ("month", {"day": "first"}, "day"),
            ("year", {"date": "02-30"}, "date"),
            ("year", {"date": "13-01"}, "date"),
            ("year", {"date": "1 Dec"}, "date"),
            ("month", {"day": "1", "at": "25:00"}, "at"),
        ],
    )
    def test_a_bad_rule_is_named(self, every, options, field) -> None:
        with pytest.raises(BadBroadcast) as refused:
            recurring.recurrence(every, **options)
        assert refused.value.field == field

    def test_the_day_of_the_year_reads_either_way_round(self) -> None:
        assert (
            recurring.recurrence("year", date="01.12").to_json()
            == recurring.recurrence("year", date="12-01").to_json()
        )


class TestPauseAndCancel:
    async def test_a_paused_series_makes_nothing_until_resumed(self, db, club):
        series_id = await series(db, club, recurring.recurrence("month", day=15, at="10:00"))
        await db.run(lambda s: recurring.pause(s, club, series_id))
        await jobs.plan_broadcasts(db, at(local(2027, 1, 15, 9, 57)))
        assert await children(db, series_id) == []
        await db.run(lambda s: recurring.resume(s, club, series_id))
        await jobs.plan_broadcasts(db, at(local(2027, 2, 15, 9, 57)))
        assert [c.occurrence for c in await children(db, series_id)] == ["2027-02-15"]

    async def test_cancelled_it_stops_and_takes_the_occurrence_not_yet_planned(self, db, club):
        series_id = await series(db, club, recurring.recurrence("month", day=15, at="10:00"))
        made = await db.run(lambda s: recurring.make_due(s, local(2027, 1, 15, 9, 56)))
        assert await db.run(lambda s: campaigns.cancel(s, club, series_id, MADE)) == 0
        assert (await db.run(lambda s: s.get(Campaign, made[0]))).status == "cancelled"
        await jobs.plan_broadcasts(db, at(local(2027, 2, 15, 9, 57)))
        assert [c.id for c in await children(db, series_id)] == made
        with pytest.raises(Conflict):
            await db.run(lambda s: recurring.resume(s, club, series_id))

    async def test_a_plain_broadcast_is_no_series_to_pause(self, db, club):
        plain = await broadcast(db, club, now=MADE, send_at=MADE + dt.timedelta(days=1))
        with pytest.raises(Conflict):
            await db.run(lambda s: recurring.pause(s, club, plain))


class TestBeforeASale:
    async def test_send_at_is_the_sale_less_the_days_and_the_sale_is_kept(self, db, club):
        sale = local(2027, 12, 20, 9)
        timed = recurring.before_sale(sale, days=2, hours=1, now=MADE)
        assert timed.send_at == local(2027, 12, 18, 8)

        def work(session) -> Campaign:
            program = session.get(Program, club)
            return recurring.create_before_sale(
                session,
                program,
                timed=timed,
                now=MADE,
                name="Gjør deg klar",
                texts={"nb": "Salget starter snart!"},
                segment=None,
            )

        made = await db.run(work)
        assert made.send_at == local(2027, 12, 18, 8)
        assert recurring.sale_of(made) == recurring.BeforeSale(sale, 2, 1)

    @pytest.mark.parametrize(
        ("days", "hours", "field"),
        [(3, 0, "sale_at"), (0, 0, "days_before"), (-1, 0, "days_before"), (1, 24, "hours_before")],
    )
    def test_refused_in_the_past_or_out_of_range(self, days, hours, field) -> None:
        sale = MADE + dt.timedelta(days=2)
        with pytest.raises(BadBroadcast) as refused:
            recurring.before_sale(sale, days=days, hours=hours, now=MADE)
        assert refused.value.field == field
