"""The sender against a fake Twilio that misbehaves as real gateways do: an account it refuses,
a connection closed before it took anything, error codes that say the member opted out."""

from __future__ import annotations

import datetime as dt

from scheduler import sender
from store.outreach import sending
from tests.fakes.twilio_server import FakeTwilio
from tests.scheduler.campaign_helpers import at
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
