"""members.exports: a club's tables a page at a time by id, erased members left out or anonymous,
and cells a spreadsheet would run as formulas defused."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from store.clubs import programs
from store.database import Database
from store.members import exports, members
from store.models import Purchase
from tests.conftest import create_club, now


async def test_pages_follow_each_other_by_id_until_the_last(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "PAGE", 2)
    club = await create_club(db)
    other = await create_club(db, name="Kafé Kari", numbers=["3030"], country="SE")

    def fill(session: Session) -> None:
        ours = programs.get(session, club)
        theirs = programs.get(session, other)
        assert ours is not None
        assert theirs is not None
        for i in range(5):
            members.create(session, ours, f"+479100000{i}", status=members.ACTIVE, now=now())
            members.create(session, theirs, f"+469100000{i}", status=members.ACTIVE, now=now())
        gone = members.create(session, ours, "+4791999999", status=members.ACTIVE, now=now())
        session.add(
            Purchase(
                program_id=club,
                member_id=gone.id,
                transaction_id="T1",
                currency="NOK",
                total_minor=100,
                points=1,
                fingerprint="f",
                occurred_at=now(),
                created_at=now(),
            )
        )
        session.flush()
        members.erase(session, gone, now())

    await db.run(fill)
    phones: list[str] = []
    cursor: tuple[int, int] | None = (0, 0)
    pages = 0
    while cursor is not None:
        page = await db.run(lambda s, c=cursor: exports.page(s, club, "members", c))
        phones += [row[1] for row in page.rows]
        cursor = page.cursor
        pages += 1
    assert phones == [f"+479100000{i}" for i in range(5)]
    assert pages == 3
    purchases = await db.run(lambda s: exports.page(s, club, "purchases", (0, 0)))
    assert [row[1] for row in purchases.rows] == [None]  # the figure, not whose it was


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-1+2", "'-1+2"),
        ("+4791234567", "+4791234567"),
        (-5, -5),
        (None, ""),
        (dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), "2026-03-01T12:00:00Z"),
        (dt.date(1990, 3, 12), "1990-03-12"),
    ],
)
def test_cells_are_written_for_a_spreadsheet(value: object, written: object) -> None:
    assert exports.cell(value) == written


def test_rows_are_semicolon_separated_utf8() -> None:
    assert exports.encode([["a;b", "Åsa", 1]]) == '"a;b";Åsa;1\r\n'.encode()
