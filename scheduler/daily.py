"""The daily recurring jobs: points expiry, birthday coupons, the tier review, and pruning the
member page links that died more than a week ago."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from store import retention
from store.clock import Clock, utc_now
from store.clubs import programs
from store.database import Database
from store.loyalty import ledger, perks, tiers
from store.members import links

log = logging.getLogger(__name__)

# Rows handled per transaction: a long backlog (the first run after a year) never holds the
# single SQLite writer for long, so texts keep being answered while the job catches up.
BATCH = 2000


@dataclass(frozen=True, slots=True)
class Done:
    lots_expired: int
    birthday_coupons: int
    tiers_reviewed: int
    links_pruned: int = 0


async def run_daily(db: Database, clock: Clock = utc_now) -> Done:
    """Every job once. Each is idempotent, so running this every hour (as `klubb serve` does)
    catches every club's midnight in its own time zone and a missed run is made up next time."""
    now = clock()
    expired = await _until_done(db, lambda s: ledger.expire_due(s, now, BATCH))
    reviewed = await _until_done(db, lambda s: tiers.review_due(s, now, BATCH))
    club_ids = await db.run(lambda s: [p.id for p in programs.all_programs(s)])
    issued = 0
    for club_id in club_ids:
        issued += await db.run(_birthdays(club_id, now))
    pruned = await _until_done(db, lambda s: links.prune(s, now, BATCH))
    done = Done(expired, issued, reviewed, pruned)
    if expired or issued or reviewed or pruned:
        log.info(
            "daily jobs: %d lots expired, %d birthday coupons, %d tiers reviewed, "
            "%d dead page links pruned",
            expired,
            issued,
            reviewed,
            pruned,
        )
    return done


async def empty_old_texts(db: Database, clock: Clock = utc_now) -> int:
    """Data retention (store.retention), run once a day: every club's message bodies older
    than its retention period are emptied, a window of ids per transaction, so the SQLite
    writer is never held for long (a window with nothing to empty costs about a millisecond).
    Returns how many texts were emptied; a second run the same day empties none."""
    now = clock()
    end = await db.read(retention.last_id)
    emptied = 0
    for start in range(0, end + 1, retention.SPAN):
        emptied += await db.run(functools.partial(retention.empty_old_bodies, now=now, start=start))
    if emptied:
        log.info("data retention: %d old message texts emptied", emptied)
    return emptied


def _birthdays(club_id: int, now: dt.datetime) -> Callable[[Session], int]:
    def work(session: Session) -> int:
        program = programs.get(session, club_id)
        return perks.birthday_coupons(session, program, now) if program else 0

    return work


async def _until_done(db: Database, batch: Callable[[Session], int]) -> int:
    total = 0
    while True:
        handled = await db.run(batch)
        total += handled
        if handled < BATCH:
            return total
