"""The hourly bonus cheque job: every member whose balance covers their club's bonus cheque
and was raised some other way than a purchase (points given by staff, a referral, a cheque
turned on) gets it, a chunk of members per transaction."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from store.clock import Clock, utc_now
from store.clubs import programs
from store.database import Database
from store.loyalty import cheques
from store.models import Member, Program
from store.outreach import guard_rails

log = logging.getLogger(__name__)


async def run(db: Database, clock: Clock = utc_now) -> int:
    """Issue every due cheque of every club at `clock()`; returns how many. Idempotent (a
    cheque spends the points it is for), so a missed run is made up by the next one. The
    candidates are found by one set-based read per chunk (cheques.candidates), never by
    walking every member."""
    now = clock()
    issued = 0
    for club_id in await db.run(cheques.clubs_with_cheques):
        after = 0
        while True:
            done, after = await db.run(
                functools.partial(_chunk, club_id=club_id, now=now, after=after)
            )
            issued += done
            if after == 0:
                break
    if issued:
        log.info("bonus cheques: %d issued", issued)
    return issued


def _chunk(session: Session, club_id: int, now: dt.datetime, after: int) -> tuple[int, int]:
    """Cheques for the next chunk of candidates above member id `after`: (issued, the last
    member id looked at, or 0 when the club is done)."""
    program = programs.get(session, club_id)
    if program is None:
        return 0, 0
    found = cheques.candidates(session, club_id, now, after=after)
    issued = 0
    for member_id in found:
        issued += len(
            cheques.issue_due(
                session, program, member_id, now, send_after=_after_quiet(program, now)
            )
        )
    return issued, (found[-1] if len(found) == cheques.CHUNK else 0)


def _after_quiet(program: Program, now: dt.datetime) -> Callable[[Member], dt.datetime]:
    """A cheque found by the job at night is announced when the member's quiet hours end
    (their zone from their number), not at 03:00; one from a purchase goes at once."""

    def at(member: Member) -> dt.datetime:
        zone = guard_rails.zone_of(member.phone, program.timezone)
        return guard_rails.first_moment(now, zone, program.quiet_start, program.quiet_end)

    return at
