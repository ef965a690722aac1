"""The sender against a fake Twilio that misbehaves as real gateways do: an account it refuses,
a connection closed before it took anything, error codes that say the member opted out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler import sender
from store.members import consent, members
from store.models import ConsentEvent, Member
from store.outreach import sending
from tests.conftest import Phone
from tests.fakes.twilio_server import FakeTwilio
from tests.scheduler.campaign_helpers import T0, add_members, at, broadcast, plan, rows_of
from tests.scheduler.test_sending_faults import FakeClock, outbox_by_number, system_rows


class TestRefusedAccount:
    async def test_bad_credentials_fail_nothing_and_pause_the_sender(self, db, club) -> None:
        """Twilio answers 401 (20003) to every send: no row is failed or counted a try, the
        sender stops handing over at the first refusal and asks nothing during its pause, and
        once the account is right every message goes, once."""
        now = dt.datetime.now(dt.UTC)
        numbers = await system_rows(db, club, 200, now)
        clock = FakeClock()
        pacer = sender.Pacer(10_000, clock=clock)
        async with FakeTwilio() as fake:
            refused = fake.gateway(auth_token="not-the-token")
            try:
                assert await sender.drain(db, refused, at(now), pacer=pacer) == 0
                tried = fake.counters.requests
                assert 0 < tried <= sender.IN_FLIGHT
                rows = await outbox_by_number(db)
                assert {row.status for row in rows.values()} == {sending.QUEUED}
                assert {row.attempts for row in rows.values()} == {0}
                refusals = [row for row in rows.values() if "20003" in (row.error or "")]
                assert len(refusals) == tried
                # Paused: a tick meanwhile asks Twilio nothing and changes nothing.
                assert await sender.drain(db, refused, at(now), pacer=pacer) == 0
                assert fake.counters.requests == tried
            finally:
                await refused.close()
            clock.now += sender.ACCOUNT_PAUSE + 1
            fixed = fake.gateway()
            try:
                assert await sender.drain(db, fixed, at(now), pacer=pacer) == len(numbers)
            finally:
                await fixed.close()
            rows = await outbox_by_number(db)
            assert {row.status for row in rows.values()} == {sending.SENT}
            assert sorted(m.to for m in fake.messages) == sorted(numbers)
            assert fake.counters.duplicates == 0


async def member_by_phone(db, phone: str) -> tuple[Member, list[ConsentEvent]]:
    def work(session: Session) -> tuple[Member, list[ConsentEvent]]:
        member = session.scalars(select(Member).where(Member.phone == phone)).one()
        return member, list(consent.history(session, member.id))

    return await db.run(work)


class TestOptedOutAtTheCarrier:
    async def test_21610_withdraws_consent_and_a_start_brings_the_member_back(
        self, db, club, client
    ) -> None:
        """Twilio refuses a campaign's message with 21610 (the member texted STOP to the
        club's number and Twilio took it): the row fails with the code, never retried; the
        member's marketing consent is withdrawn in the log (an objection, as any STOP) instead
        of the number being flagged undeliverable. When they text START (Twilio passes it on)
        they are back, and the next campaign reaches them."""
        [stopped, other] = await add_members(db, club, 2)
        first = await broadcast(db, club, name="Første")
        await plan(db, first)
        async with FakeTwilio() as fake:
            fake.fail_number(stopped, 21610)
            gateway = fake.gateway()
            try:
                assert await sender.drain(db, gateway, at(T0)) == 1
                rows = {row.to_number: row for row in await rows_of(db, first)}
                assert rows[stopped].status == sending.FAILED
                assert "21610" in (rows[stopped].error or "")
                member, events = await member_by_phone(db, stopped)
                assert member.status == members.STOPPED
                assert member.undeliverable_at is None
                [withdrawal] = [e for e in events if e.action == consent.WITHDRAW]
                assert "21610" in withdrawal.evidence
                # Nothing is retried: a day later the gateway hears nothing more.
                assert await sender.drain(db, gateway, at(T0 + dt.timedelta(days=1))) == 0
                assert fake.sent_to(stopped) == []

                reply = await Phone(client, stopped).text("START")
                assert reply is not None
                member, _ = await member_by_phone(db, stopped)
                assert member.status == members.ACTIVE
                fake.reset()
                later = T0 + dt.timedelta(days=20)
                second = await broadcast(db, club, name="Andre", now=later)
                await plan(db, second, now=later)
                assert await sender.drain(db, gateway, at(later)) == 2
            finally:
                await gateway.close()
            assert len(fake.sent_to(stopped)) == 1
            assert len(fake.sent_to(other)) == 2


class TestNeverTaken:
    async def test_a_gateway_that_drops_every_send_untaken_is_given_up_on(self, db, club) -> None:
        """The connection closes before Twilio takes anything, every time: each try is in doubt,
        settled by asking Twilio (nothing taken), and tried again, but only MAX_ATTEMPTS times
        in all; then the row is failed with why, and the gateway hears no more of it."""
        now = dt.datetime.now(dt.UTC)
        [number] = await system_rows(db, club, 1, now)
        async with FakeTwilio() as fake:
            fake.drop_next_untaken(100)
            gateway = fake.gateway()
            try:
                for _ in range(sending.MAX_ATTEMPTS + 3):
                    await sender.drain(db, gateway, at(now))
                    now += sending.STALE + dt.timedelta(seconds=1)
            finally:
                await gateway.close()
            row = (await outbox_by_number(db))[number]
            assert row.status == sending.FAILED
            assert "gave up" in (row.error or "")
            assert fake.counters.requests == sending.MAX_ATTEMPTS
            assert fake.messages == []
