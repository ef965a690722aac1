"""The journeys job: plans every club's active journeys into the outbox, a club per transaction."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.clock import Clock, utc_now
from store.clubs import programs
from store.database import Database
from store.models import Campaign
from store.outage import unreachable
from store.outreach import campaigns, journeys

log = logging.getLogger(__name__)


async def run(db: Database, now: Clock = utc_now) -> dict[int, dict[str, int]]:
    """Plan every club's active journeys at `now()`: the outbox rows written, per club and
    trigger. Idempotent (each occasion is planned once), so running it every few minutes
    catches each trigger's moment in every club's time zone, and a missed run is made up by
    the next one.

    A unit of work per chunk of members (journeys.plan_chunk), so the SQLite writer is never
    held for long. A club whose planning fails is logged and planned again on the next run
    (what its earlier chunks wrote stays, and is not written twice); the others go on."""
    moment = now()
    club_ids = await db.run(_clubs_with_journeys)
    done: dict[int, dict[str, int]] = {}
    for club_id in club_ids:
        try:
            counts = await _plan_club(db, club_id, moment)
        except Exception as exc:
            if unreachable(exc):
                # Every club after it would fail alike: the job's run fails, said once an
                # outage (scheduler.jobs._timed), not a traceback a club.
                raise
            log.exception("journeys of club %s could not be planned", club_id)
            continue
        done[club_id] = counts
        if any(counts.values()):
            log.info(
                "journeys of club %s: %s",
                club_id,
                ", ".join(f"{n} {trigger}" for trigger, n in counts.items() if n),
            )
    return done


async def _plan_club(db: Database, club_id: int, now: dt.datetime) -> dict[str, int]:
    total: dict[str, int] = {}
    after = 0
    chunk = journeys.PLAN_CHUNK
    target = CHUNK_SECONDS if db.dialect == "sqlite" else PG_CHUNK_SECONDS
    while True:
        started = time.perf_counter()
        step = await db.run(
            functools.partial(_chunk, club_id=club_id, now=now, after=after, chunk=chunk)
        )
        chunk = next_chunk(chunk, time.perf_counter() - started, target)
        for trigger, rows in step.rows.items():
            total[trigger] = total.get(trigger, 0) + rows
        if step.done:
            return total
        after = step.through


# A chunk is a transaction, and on SQLite it holds the only writer: a member's text waits
# behind it. Sized to take about CHUNK_SECONDS (a run 15 minutes after the last finds little,
# and at PLAN_CHUNK members a chunk takes a tenth of that: a run at 1M members was mostly the
# cost of its 201 chunks; tests/bench/journeys.py). PostgreSQL's chunks hold no one up (a
# turn waits only for its own member's row): they go for fewer round trips, never smaller.
CHUNK_SECONDS = 0.1
PG_CHUNK_SECONDS = 1.0
MAX_CHUNK = 20 * journeys.PLAN_CHUNK


def next_chunk(chunk: int, took: float, target: float = CHUNK_SECONDS) -> int:
    """The next chunk's members, from the last one's size and time (wall, waiting included:
    a busy writer gets smaller chunks): towards `target` seconds, at most doubling a step."""
    wanted = int(chunk * target / max(took, 0.001))
    least = journeys.PLAN_CHUNK // 5 if target <= CHUNK_SECONDS else journeys.PLAN_CHUNK
    return max(least, min(MAX_CHUNK, 2 * chunk, wanted))


def _clubs_with_journeys(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Campaign.program_id)
            .distinct()
            .where(Campaign.kind == campaigns.JOURNEY, Campaign.status == campaigns.ACTIVE)
            .order_by(Campaign.program_id)
        )
    )


def _chunk(
    session: Session, club_id: int, now: dt.datetime, after: int, chunk: int
) -> journeys.Planned:
    program = programs.get(session, club_id)
    if program is None:
        return journeys.Planned({}, after, True)
    return journeys.plan_chunk(session, program, now, after, chunk)
