"""The loyalty engine's recurring jobs: points expiry, birthday coupons and the tier review."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from store.clock import Clock, utc_now
from store.clubs import programs
from store.database import Database
from store.loyalty import ledger, perks, tiers

log = logging.getLogger(__name__)

# Rows handled per transaction: a long backlog (the first run after a year) never holds the
# single SQLite writer for long, so texts keep being answered while the job catches up.
BATCH = 2000


@dataclass(frozen=True, slots=True)
class Done:
    lots_expired: int
    birthday_coupons: int
    tiers_reviewed: int


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
    done = Done(expired, issued, reviewed)
    if expired or issued or reviewed:
        log.info(
            "loyalty jobs: %d lots expired, %d birthday coupons, %d tiers reviewed",
            expired,
            issued,
            reviewed,
        )
    return done


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
