"""The daily jobs prune member page links dead for more than a week (run once, burst)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.daily import run_daily
from store.database import Database
from store.members import links, members
from store.models import MemberLink, Program

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


async def test_the_daily_run_prunes_dead_links_and_keeps_live_ones(db: Database, club: int) -> None:
    def given(session: Session) -> str:
        program = session.get(Program, club)
        assert program is not None
        kari = members.create(session, program, "+4791234567", status="active", now=NOW - 60 * DAY)
        session.flush()
        links.issue(session, kari, NOW - 45 * DAY)  # expired 15 days ago
        links.issue(session, kari, NOW - 38 * DAY)  # expired 8 days ago
        return links.issue(session, kari, NOW - 5 * DAY)  # live

    live = await db.run(given)
    first = await run_daily(db, lambda: NOW)
    again = await run_daily(db, lambda: NOW)
    assert (first.links_pruned, again.links_pruned) == (2, 0)
    kept = await db.run(lambda s: list(s.scalars(select(MemberLink.token_hash))))
    assert kept == [links.token_hash(live)]
    assert await db.run(lambda s: links.resolve(s, live, NOW)) is not None
