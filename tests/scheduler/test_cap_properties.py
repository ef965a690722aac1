"""The cap as a rule, for any sequence of broadcasts, journeys, member texts and time passing
(across the DST changes of March and October and a month's end), on SQLite and PostgreSQL:
what the gateway hands to a member never holds more marketing SMS in any 30 days than the
club's cap (PRODUCT.md and README: a rolling 30-day window, 1-3), whatever the member's zone,
and the member's own texts and their replies never use up room under it.

Hypothesis runs many examples against one database and club, each on a member of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from scheduler import jobs, sender
from scheduler import journeys as journey_job
from store.database import Database
from store.models import Member, Program
from store.outreach import campaigns, guard_rails, journeys
from tests.conftest import create_club
from tests.scheduler.campaign_helpers import RecordingGateway, add_members

EXAMPLES = {"sqlite": 12, "postgresql": 8}
# A Saturday evening in Oslo before the spring change (29 March 2026 02:00 -> 03:00).
START = dt.datetime(2026, 3, 27, 22, 30, tzinfo=dt.UTC)
TICK = dt.timedelta(hours=12)
WINDOW = guard_rails.CAP_WINDOW
_NUMBERS = itertools.count(1)
# A Norwegian, a Swede and an American number in a Norwegian club.
PREFIXES = ["+4792", "+4673", "+1212555"]

OPERATIONS = st.lists(
    st.one_of(
        # A broadcast to this member, to be sent so many hours from now (0: now).
        st.tuples(st.just("broadcast"), st.integers(0, 24 * 35)),
        st.tuples(st.just("wait"), st.sampled_from([1, 7, 30, 200, 400, 24 * 31])),
    ),
    min_size=1,
    max_size=10,
)


class Example:
    def __init__(self, loop: asyncio.AbstractEventLoop, db: Database, club: int, prefix: str):
        self.loop, self.db, self.club = loop, db, club
        self.now = START
        self.gateway = RecordingGateway()
        self.sent: list[tuple[dt.datetime, str]] = []
        number = next(_NUMBERS)
        self.phone = self.run_async(
            add_members(
                db,
                club,
                1,
                start=number,
                prefix=prefix,
                joined_at=START - dt.timedelta(hours=30),
                birthday=dt.date(1990, 3, 29),
            )
        )[0]
        self.member_id = self.run_async(
            db.run(
                lambda s: s.scalar(
                    select(Member.id).where(Member.program_id == club, Member.phone == self.phone)
                )
            )
        )

    def run_async(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def broadcast(self, hours: int) -> None:
        now, send_at = self.now, self.now + dt.timedelta(hours=hours)

        def work(session: Any) -> None:
            program = session.get(Program, self.club)
            campaigns.create_broadcast(
                session,
                program,
                now=now,
                name="Tilbud",
                texts={"nb": "Tilbud", "sv": "Erbjudande", "en": "Offer"},
                segment=None,
                filter={"field": "member", "op": "in", "value": [self.member_id]},
                send_at=send_at,
            )

        self.run_async(self.db.run(work))

    def tick(self) -> None:
        now = self.now

        def clock() -> dt.datetime:
            return now

        self.run_async(jobs.plan_broadcasts(self.db, clock))
        self.run_async(journey_job.run(self.db, clock))
        before = len(self.gateway.sent)
        self.run_async(sender.drain(self.db, self.gateway, clock))
        for message in self.gateway.sent[before:]:
            if message.to == self.phone:
                self.sent.append((self.now, message.body))

    def wait(self, hours: int) -> None:
        end = self.now + dt.timedelta(hours=hours)
        while self.now < end:
            self.now = min(end, self.now + TICK)
            self.tick()

    def marketing(self) -> list[dt.datetime]:
        footers = tuple(campaigns.footer(language) for language in ("nb", "sv", "en"))
        return [when for when, body in self.sent if body.endswith(footers)]


def test_no_member_gets_more_marketing_in_any_30_days_than_the_cap(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    loop, db = loop_and_db
    club = loop.run_until_complete(create_club(db, marketing_per_month=2))

    def journeys_on(session: Any) -> None:
        program = session.get(Program, club)
        for trigger in (journeys.WELCOME, journeys.BIRTHDAY):
            journeys.create(session, program, trigger=trigger, now=START)

    loop.run_until_complete(db.run(journeys_on))

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(OPERATIONS, st.sampled_from(PREFIXES), st.integers(1, 3))
    def check(operations: list[tuple], prefix: str, cap: int) -> None:
        loop.run_until_complete(
            db.run(lambda s: setattr(s.get(Program, club), "marketing_per_month", cap))
        )
        example = Example(loop, db, club, prefix)
        example.tick()
        for kind, value in operations:
            if kind == "broadcast":
                example.broadcast(value)
                example.tick()
            else:
                example.wait(value)
        example.wait(24 * 42)  # everything planned has had its time
        sent = example.marketing()
        # The welcome journey (a day after joining) at least: the rule is never met vacuously.
        assert sent, example.sent
        for first in sent:
            within = [when for when in sent if first <= when < first + WINDOW]
            assert len(within) <= cap, (cap, prefix, sent)

    check()
