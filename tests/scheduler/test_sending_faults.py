"""Sending as a real gateway behaves: a STOP texted while a broadcast is being sent, a steady
share of 429s, an answer that hangs; through the Twilio gateway to the fake Twilio."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import Counter

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler import sender
from store import messages
from store.clock import utc_now
from store.database import Database, open_database
from store.loyalty import coupons
from store.models import Coupon, OutboxMessage, Program
from store.outreach import sending
from tests.conftest import CLUB_NUMBER, Phone
from tests.fakes.twilio_server import FakeTwilio, parse_faults
from tests.scheduler.campaign_helpers import (
    T0,
    RecordingGateway,
    add_members,
    at,
    broadcast,
    plan,
    rows_of,
)

SHORT = aiohttp.ClientTimeout(total=2, connect=1, sock_connect=1, sock_read=0.3)


async def system_rows(db: Database, club: int, count: int, now: dt.datetime) -> list[str]:
    """`count` system messages due now (no quiet hours, no consent rules): their numbers."""
    numbers = [f"+4792{i:06d}" for i in range(count)]

    def work(session: Session) -> None:
        for i, number in enumerate(numbers):
            messages.enqueue(
                session,
                program_id=club,
                member_id=None,
                kind=messages.SYSTEM,
                to_number=number,
                from_number=CLUB_NUMBER,
                body=f"Kvittering {i}",
                segments=1,
                now=now,
            )

    await db.run(work)
    return numbers


async def outbox_by_number(db: Database) -> dict[str, OutboxMessage]:
    def work(session: Session) -> dict[str, OutboxMessage]:
        return {row.to_number: row for row in session.scalars(select(OutboxMessage))}

    return await db.run(work)


class TestStopMidBroadcast:
    async def test_a_stop_while_it_sends_is_never_followed_by_the_campaign(
        self, db, club, client, database_url
    ) -> None:
        """Members text STOP (the real webhook) while two senders work through a broadcast
        whose rows they have already claimed, against a gateway slow to answer: no marketing
        message reaches the gateway for a number after its STOP was confirmed, and each row
        held back is kept as skipped, with why."""
        phones = await add_members(db, club, 48)
        campaign_id = await broadcast(db, club)
        assert await plan(db, campaign_id) == 48
        stopping = phones[6::3]  # spread over the whole send
        confirmed: dict[str, dt.datetime] = {}
        second = open_database(database_url)  # another worker, with its own connection
        try:
            async with FakeTwilio(answer_delay=0.03) as fake:
                gateway = fake.gateway()

                async def stop_them() -> None:
                    # The fake has no event for it: the senders have claimed and begun.
                    while not fake.messages:  # noqa: ASYNC110
                        await asyncio.sleep(0.002)
                    for number in stopping:
                        reply = await Phone(client, number).text("STOPP")
                        confirmed[number] = dt.datetime.now(dt.UTC)
                        assert reply is not None
                        assert "START" in reply
                        await asyncio.sleep(0.04)

                try:
                    await asyncio.gather(
                        sender.drain(db, gateway, at(T0), pacer=sender.Pacer(30)),
                        sender.drain(second, gateway, at(T0), pacer=sender.Pacer(30)),
                        stop_them(),
                    )
                finally:
                    await gateway.close()
                taken = {number: fake.sent_to(number) for number in stopping}
        finally:
            await second.close()
        late = {
            number: [m.date_created - confirmed[number] for m in got]
            for number, got in taken.items()
            if any(m.date_created >= confirmed[number] for m in got)
        }
        assert late == {}
        rows = {row.to_number: row for row in await rows_of(db, campaign_id)}
        held = [n for n in stopping if rows[n].status == sending.SKIPPED]
        # Most STOPs came while their rows were claimed and waiting: those were held back.
        assert len(held) >= len(stopping) // 2, {n: rows[n].status for n in stopping}
        assert {rows[n].error for n in held} == {"no_consent"}
        assert all(rows[n].status == sending.SENT for n in stopping if n not in held)
        others = [rows[n] for n in phones if n not in stopping]
        assert {row.status for row in others} == {sending.SENT}
        assert Counter(m.to for m in fake.messages).most_common(1)[0][1] == 1

    async def test_a_coupon_written_for_a_message_held_back_is_taken_back(
        self, db, club, client
    ) -> None:
        """A broadcast's coupon is issued as its message is written at the claim: a member who
        texts STOP before the hand-off gets neither the message nor the coupon; the others
        keep theirs."""

        def template(session: Session) -> None:
            coupons.create_template(
                session,
                session.get(Program, club),
                key="xmas",
                kind=coupons.CAMPAIGN,
                benefit={"nb": "20% rabatt"},
                valid_days=14,
                discount_percent=20,
            )

        await db.run(template)
        first, second, last = await add_members(db, club, 3)
        campaign_id = await broadcast(db, club, texts={"nb": "Kode {coupon_code}"}, coupon="xmas")
        await plan(db, campaign_id)

        stopped = asyncio.Event()

        class StopsTheLast(RecordingGateway):
            async def send(self, message):
                if message.to == first:  # while the rows are in hand, the last one stops
                    assert await Phone(client, last).text("STOPP") is not None
                    stopped.set()
                return await super().send(message)

        class AfterTheStop(sender.Pacer):
            """Paced so that each row is checked on its own, right before it goes; the rows
            after the first wait for the STOP's turn to end (on a loaded machine a turn may
            take longer than the pace), so the test does not depend on timing."""

            def __init__(self) -> None:
                super().__init__(20)
                self.handed = 0

            async def wait(self) -> None:
                self.handed += 1
                if self.handed > 1:
                    await stopped.wait()
                await super().wait()

        gateway = StopsTheLast()
        assert await sender.drain(db, gateway, at(T0), pacer=AfterTheStop()) == 2
        assert sorted(gateway.per_number()) == [first, second]
        rows = {row.to_number: row for row in await rows_of(db, campaign_id)}
        assert (rows[last].status, rows[last].error) == (sending.SKIPPED, "no_consent")
        owners = await db.run(lambda s: sorted(s.scalars(select(Coupon.member_id))))
        assert owners == sorted(r.member_id for r in rows.values() if r.to_number != last)


class TestThrottling:
    async def test_a_steady_five_percent_of_429_keeps_most_of_the_pace(self, db, club) -> None:
        """With 5 % of sends answered 429 (at random), the sender keeps at least 70 % of the
        pace it has without them: each 429 slows it a little, none collapses it."""
        rate, count = 150.0, 360

        async def pace(faults: str, start: int) -> float:
            now = dt.datetime.now(dt.UTC)
            numbers = [f"+4793{start + i:06d}" for i in range(count)]

            def work(session: Session) -> None:
                for number in numbers:
                    messages.enqueue(
                        session,
                        program_id=club,
                        member_id=None,
                        kind=messages.SYSTEM,
                        to_number=number,
                        from_number=CLUB_NUMBER,
                        body="Hei",
                        segments=1,
                        now=now,
                    )

            await db.run(work)
            async with FakeTwilio(faults=parse_faults(faults), seed=7) as fake:
                gateway = fake.gateway()
                loop = asyncio.get_running_loop()
                began = loop.time()
                try:
                    await sender.drain(db, gateway, at(now), batch=40, pacer=sender.Pacer(rate))
                finally:
                    await gateway.close()
                took = loop.time() - began
                assert fake.counters.requests == count
                if faults:
                    assert fake.counters.throttled >= count * 0.02
                return count / took

        clean = await pace("", 0)
        throttled = await pace("429=5%", count)
        assert throttled >= 0.7 * clean, (clean, throttled)

    def test_one_429_slows_the_pace_a_little(self) -> None:
        """A 429 among a window's answers costs a little of the pace, not half of it."""
        clock = FakeClock()
        pacer = sender.Pacer(180, clock=clock)
        for _ in range(90):
            clock.now += 1 / 180
            pacer.answered()
        assert pacer.rate == 180
        pacer.answered(throttled=True)
        assert 0.99 * 180 <= pacer.rate < 180
        for _ in range(180):
            clock.now += 1 / pacer.rate
            pacer.answered()
        assert pacer.rate == 180  # and a second of answers without one gives it back

    @pytest.mark.parametrize("seed", range(5))
    def test_under_steady_429s_the_pace_stays_near_its_ceiling(self, seed: int) -> None:
        """Two minutes of answers at the pace, 5 % of them 429 at random: the pace averages
        at least 90 % of its ceiling and never falls under 70 %."""
        clock, chance = FakeClock(), random.Random(seed)
        pacer = sender.Pacer(180, clock=clock)
        seen = []
        while clock.now < 120:
            clock.now += 1 / pacer.rate
            pacer.answered(throttled=chance.random() < 0.05)
            seen.append(pacer.rate)
        assert sum(seen) / len(seen) >= 0.9 * 180
        assert min(seen) >= 0.7 * 180

    def test_a_gateway_that_refuses_above_its_limit_brings_the_pace_down_to_it(self) -> None:
        """A gateway that takes 60 a second and answers 429 to the rest: within ten seconds
        the pace is near 60 (a little above, probing), not stuck at 180 or collapsed."""
        clock, chance = FakeClock(), random.Random(1)
        pacer = sender.Pacer(180, clock=clock)
        while clock.now < 30:
            clock.now += 1 / pacer.rate
            # Of every `rate` sends a second, the share over 60 is refused.
            pacer.answered(throttled=chance.random() < max(0.0, 1 - 60 / pacer.rate))
            if clock.now > 10:
                assert 45 <= pacer.rate <= 60 + 180 / 10 + 10, (clock.now, pacer.rate)


class FakeClock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestHangingAnswers:
    async def test_an_answer_that_hangs_holds_up_nothing_and_is_settled_once(
        self, db, club
    ) -> None:
        """One send is taken and never answered: the others go on meanwhile, each row's
        sent_at is its own answer's time, the hung one is left in doubt, and a later sender
        finds it taken at Twilio and marks it sent: never sent twice."""
        now = dt.datetime.now(dt.UTC)
        numbers = await system_rows(db, club, 40, now)
        async with FakeTwilio() as fake:
            fake.hang_next(1)
            gateway = fake.gateway(timeout=SHORT)
            try:
                # Batches of 10: the hung one's batch does not hold up the next.
                assert await sender.drain(db, gateway, utc_now, batch=10) == 39
                rows = await outbox_by_number(db)
                [hung] = [n for n in numbers if rows[n].status == sending.SENDING]
                hung_taken = fake.sent_to(hung)[0].date_created
                for number in numbers:
                    if number == hung:
                        continue
                    [message] = fake.sent_to(number)
                    row = rows[number]
                    assert row.status == sending.SENT
                    # Recorded when its own answer came, not when the hung one gave up.
                    assert dt.timedelta(0) <= row.sent_at - message.date_created
                    assert row.sent_at - message.date_created < dt.timedelta(seconds=0.25)
                # The rest did not wait for the hung one to time out.
                assert max(m.date_created for m in fake.messages) - hung_taken < dt.timedelta(
                    seconds=0.25
                )
                later = at(dt.datetime.now(dt.UTC) + sending.STALE + dt.timedelta(seconds=1))
                assert await sender.drain(db, gateway, later) == 0
            finally:
                await gateway.close()
            rows = await outbox_by_number(db)
            assert rows[hung].status == sending.SENT
            assert rows[hung].provider_id == fake.sent_to(hung)[0].sid
            assert fake.counters.duplicates == 0
            assert len(fake.messages) == 40


class TestHandOffCheck:
    async def test_a_row_another_sender_took_over_is_not_handed_over_again(self, db, club):
        """A sender that held rows so long that another settled them as in doubt (asking the
        gateway, and perhaps sending them itself) finds at hand-off they are no longer its to
        send; a row still its own and a member still in are sent."""
        await add_members(db, club, 2)
        campaign_id = await broadcast(db, club)
        await plan(db, campaign_id)
        mine = await db.run(lambda s: sending.claim(s, now=T0, limit=2))
        later = T0 + sending.STALE + dt.timedelta(seconds=1)
        [taken] = await db.run(lambda s: sending.in_doubt(s, now=later, limit=1))
        held = await db.run(lambda s: sending.held_at_hand_off(s, mine))
        assert held == {taken.claimed.id: sending.TAKEN_OVER}

    async def test_a_campaign_cancelled_since_the_claim_is_not_handed_over(self, db, club):
        """The owner cancels while rows are in hand: they are skipped as cancelled."""
        from store.outreach import campaigns

        await add_members(db, club, 3)
        campaign_id = await broadcast(db, club)
        await plan(db, campaign_id)
        mine = await db.run(lambda s: sending.claim(s, now=T0, limit=3))
        await db.run(lambda s: campaigns.cancel(s, club, campaign_id, T0))
        held = await db.run(lambda s: sending.held_at_hand_off(s, mine))
        assert held == {row.id: "cancelled" for row in mine}
