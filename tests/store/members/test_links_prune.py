"""links.prune: a member page link that expired or was ended more than seven days ago is
deleted; a live one, or one dead for less, is kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.database import Database
from store.members import links
from store.models import MemberLink
from tests.store.loyalty_helpers import T0, club, member

DAY = dt.timedelta(days=1)


async def test_dead_links_go_after_a_week_and_live_ones_stay(loyalty_db: Database) -> None:
    now = T0 + 40 * DAY

    def work(session: Session) -> tuple[int, set[str], int]:
        program = club(session)
        kari, ola = member(session, program), member(session, program)
        tokens = {
            # expired 10 days ago (issued 30 + 10 days before now): goes
            "expired_long_ago": links.issue(session, kari, now - 40 * DAY),
            # expired 3 days ago: kept for now
            "expired_lately": links.issue(session, kari, now - 33 * DAY),
            # live, issued yesterday: stays
            "live": links.issue(session, kari, now - DAY),
            # ended 8 days ago (Ola left): goes, though it has not expired
            "ended_long_ago": links.issue(session, ola, now - 20 * DAY),
        }
        session.flush()
        links.end_all(session, [ola.id], now - 8 * DAY)
        # issued after Ola's links were ended: live, stays
        tokens["live_after_end"] = links.issue(session, ola, now - 2 * DAY)
        session.flush()
        pruned = links.prune(session, now)
        kept = set(session.scalars(select(MemberLink.token_hash)))
        names = {name for name, token in tokens.items() if links.token_hash(token) in kept}
        return pruned, names, links.prune(session, now)

    pruned, kept, again = await loyalty_db.run(work)
    assert pruned == 2
    assert kept == {"expired_lately", "live", "live_after_end"}
    assert again == 0


async def test_a_limit_prunes_in_batches(loyalty_db: Database) -> None:
    now = T0 + 60 * DAY

    def work(session: Session) -> list[int]:
        program = club(session)
        kari = member(session, program)
        for _ in range(5):
            links.issue(session, kari, T0)
        live = links.issue(session, kari, now)
        session.flush()
        counts = []
        while not counts or counts[-1]:
            counts.append(links.prune(session, now, limit=2))
        assert links.resolve(session, live, now) is not None
        return counts, links.live_count(session, kari.id, now), _rows_of(session, kari.id)

    counts, live, rows = await loyalty_db.run(work)
    # Never more than the limit at once (other tests' rows may share the database), until
    # none is left: Kari's five dead links gone, her live one kept.
    assert max(counts) == 2
    assert sum(counts) >= 5
    assert (live, rows) == (1, 1)


def _rows_of(session: Session, member_id: int) -> int:
    rows = session.scalars(select(MemberLink.id).where(MemberLink.member_id == member_id))
    return len(rows.all())
