"""Data retention (store.retention): a text older than its club's retention period loses its
body, nothing else; a text still to be sent, the counts, the consent log and the ledger stay."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import messages, reports, retention
from store.database import Database
from store.loyalty import ledger
from store.members import consent
from store.models import ConsentEvent, InboundMessage, LedgerEntry, OutboxMessage, Program
from store.states import OutboxStatus
from tests.store.loyalty_helpers import at, club, member

NOW = at(2026, 3, 10, 9)  # a Tuesday morning in Oslo
# 13 months (the default) in Oslo: the cut is 10 February 2025 00:00 local = 9 Feb 23:00 UTC.
BEFORE_13 = at(2025, 2, 9, 22, 30)
AFTER_13 = at(2025, 2, 9, 23, 30)
# 3 months: the cut is 10 December 2025 00:00 Oslo = 9 Dec 23:00 UTC.
BEFORE_3 = at(2025, 11, 20)
_SIDS = itertools.count()


def _text(session: Session, program: Program, phone: str, when: dt.datetime, body: str) -> int:
    return messages.record_inbound(
        session,
        program_id=program.id,
        provider_sid=f"SM{next(_SIDS)}",
        member_id=None,
        from_number=phone,
        to_number="2020",
        body=body,
        intent=None,
        reply=f"svar på {body}",
        now=when,
        not_understood=True,
    )


def _out(
    session: Session, program: Program, phone: str, when: dt.datetime, status: str, body: str
) -> int:
    row = messages.enqueue(
        session,
        program_id=program.id,
        member_id=None,
        kind=messages.SYSTEM,
        to_number=phone,
        from_number="2020",
        body=body,
        segments=1,
        now=when,
    )
    row.status = status
    session.flush()
    return row.id


def _fill(session: Session) -> dict[str, Any]:
    """Two clubs: Oslo with 13 months (the default) and Stockholm with 3; in each, texts and
    outbox rows either side of its cut, a consent grant and points, all long ago."""
    oslo = club(session)
    stockholm = club(session, timezone="Europe/Stockholm", retention_months=3)
    ids: dict[str, Any] = {"oslo": oslo.id, "stockholm": stockholm.id}
    for name, program in (("oslo", oslo), ("stockholm", stockholm)):
        someone = member(session, program, now=BEFORE_13 - dt.timedelta(days=30))
        phone = someone.phone or ""
        consent.grant(
            session,
            someone,
            wording_id="join.confirm",
            wording_language="nb",
            wording_text="JA",
            channel="sms",
            evidence="SM-join",
            now=BEFORE_13 - dt.timedelta(days=30),
        )
        ledger.credit(session, program, someone.id, 100, "earn", BEFORE_13)
        ids[name] = {
            "club": program.id,
            "old_in": _text(session, program, phone, BEFORE_13, "gammel"),
            "edge_in": _text(session, program, phone, AFTER_13, "nyere"),
            "autumn_in": _text(session, program, phone, BEFORE_3, "høst"),
            "sent": _out(session, program, phone, BEFORE_13, OutboxStatus.SENT, "sendt"),
            "failed": _out(session, program, phone, BEFORE_13, OutboxStatus.FAILED, "feilet"),
            "queued": _out(session, program, phone, BEFORE_13, OutboxStatus.QUEUED, "i kø"),
            "sending": _out(session, program, phone, BEFORE_13, OutboxStatus.SENDING, "sendes"),
            "autumn_out": _out(session, program, phone, BEFORE_3, OutboxStatus.SENT, "høst"),
        }
    return ids


def _bodies(session: Session) -> dict[tuple[str, int], tuple[str | None, ...]]:
    inbound = session.execute(select(InboundMessage.id, InboundMessage.body, InboundMessage.reply))
    outbound = session.execute(select(OutboxMessage.id, OutboxMessage.body))
    return {("in", row[0]): tuple(row[1:]) for row in inbound} | {
        ("out", row[0]): tuple(row[1:]) for row in outbound
    }


def _kept(session: Session, club_ids: list[int]) -> dict[str, Any]:
    """Everything the rule must leave as it was: row counts by status, the dashboard's counts,
    the consent log and the ledger."""
    whole = reports.Period(dt.date(2024, 1, 1), dt.date(2026, 3, 11), ZoneInfo("Europe/Oslo"))
    kept: dict[str, Any] = {
        "outbox": sorted(
            session.execute(
                select(OutboxMessage.program_id, OutboxMessage.status, func.count()).group_by(
                    OutboxMessage.program_id, OutboxMessage.status
                )
            ).all()
        ),
        "inbound": session.scalar(select(func.count()).select_from(InboundMessage)),
        "consent": [
            (e.member_id, e.action, e.wording_text, e.evidence, e.created_at)
            for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
        ],
        "ledger": [
            (e.member_id, e.kind, e.points, e.created_at)
            for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))
        ],
    }
    for club_id in club_ids:
        program = session.get(Program, club_id)
        assert program is not None
        figures = reports.inbox_figures(session, program, whole)
        kept[f"inbox {club_id}"] = (figures.received, figures.not_understood)
        kept[f"not understood {club_id}"] = reports.not_understood(session, program, whole)
    return kept


async def _run_all(db: Database, now: dt.datetime, span: int = retention.SPAN) -> int:
    end = await db.read(retention.last_id)
    total = 0
    for start in range(0, end + 1, span):
        total += await db.run(
            lambda s, start=start: retention.empty_old_bodies(s, now, start=start, span=span)
        )
    return total


async def test_the_cut_is_the_start_of_the_same_day_months_ago_in_the_clubs_zone(
    db: Database,
) -> None:
    def work(session: Session) -> list[dt.datetime]:
        oslo = club(session)
        short = club(session, retention_months=1)
        # 31 March less one month is the last day of February.
        return [
            retention.cut(oslo, NOW),
            retention.cut(short, at(2026, 3, 31, 12)),
        ]

    oslo_cut, february = await db.run(work)
    assert oslo_cut == at(2025, 2, 9, 23)
    assert february == at(2026, 2, 27, 23)


async def test_old_bodies_are_emptied_per_club_and_nothing_else_changes(db: Database) -> None:
    """Bodies before each club's cut are emptied (text and stored reply; finished outbox rows),
    those after it kept, a queued or sending row kept whatever its age; counts, consent events
    and the ledger are the same after."""
    ids = await db.run(_fill)
    clubs = [ids["oslo"]["club"], ids["stockholm"]["club"]]
    before_kept = await db.read(lambda s: _kept(s, clubs))

    emptied = await _run_all(db, NOW, span=3)  # windows smaller than the data: chunks add up

    bodies = await db.read(_bodies)
    oslo, stockholm = ids["oslo"], ids["stockholm"]
    for place in (oslo, stockholm):
        assert bodies[("in", place["old_in"])] == (None, None)
        assert bodies[("out", place["sent"])] == (None,)
        assert bodies[("out", place["failed"])] == (None,)
        assert bodies[("out", place["queued"])] == ("i kø",)
        assert bodies[("out", place["sending"])] == ("sendes",)
    # Just after Oslo's cut (13 months): kept in Oslo, emptied in Stockholm (3 months).
    assert bodies[("in", oslo["edge_in"])] == ("nyere", "svar på nyere")
    assert bodies[("in", oslo["autumn_in"])] == ("høst", "svar på høst")
    assert bodies[("out", oslo["autumn_out"])] == ("høst",)
    assert bodies[("in", stockholm["edge_in"])] == (None, None)
    assert bodies[("in", stockholm["autumn_in"])] == (None, None)
    assert bodies[("out", stockholm["autumn_out"])] == (None,)
    assert emptied == 3 + 6  # Oslo: a text, sent, failed; Stockholm: 3 texts, 3 outbox rows
    assert await db.read(lambda s: _kept(s, clubs)) == before_kept


async def test_a_second_run_empties_nothing_more(db: Database) -> None:
    await db.run(_fill)
    first = await _run_all(db, NOW)
    before = await db.read(_bodies)
    assert first > 0
    assert await _run_all(db, NOW) == 0
    assert await db.read(_bodies) == before


async def test_a_window_without_old_texts_changes_nothing(db: Database) -> None:
    """A month before anything is due, no body goes; windows past the last id are empty."""
    await db.run(_fill)
    before = await db.read(_bodies)
    assert await _run_all(db, AFTER_13 + dt.timedelta(days=30)) == 0
    end = await db.read(retention.last_id)
    assert await db.run(lambda s: retention.empty_old_bodies(s, NOW, start=end + 1)) == 0
    assert await db.read(_bodies) == before
