"""member_marks: where a member joined and bought, and what, kept for segments by the writers of
what they mark (enrolment, purchases.record) in the same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from store.models import MemberMark

_MARKS = MemberMark.__table__
# member_marks' kinds: the store a member joined at, a store they bought at, a category they
# bought a line of.
JOINED = "joined"
STORE = "store"
CATEGORY = "category"


def _mark(module: Any) -> Any:
    # A row for the first time (a store, a category), its moment moved forward by a later
    # purchase and left by one told late; two tills at once both land (the key's lock).
    statement = module.insert(_MARKS)
    return statement.on_conflict_do_update(
        index_elements=[_MARKS.c.program_id, _MARKS.c.kind, _MARKS.c.name, _MARKS.c.member_id],
        set_={"last_at": statement.excluded.last_at},
        where=_MARKS.c.last_at < statement.excluded.last_at,
    )


_MARK = {"sqlite": _mark(sqlite), "postgresql": _mark(postgresql)}


def mark(
    conn: Any,
    program_id: int,
    member_id: int,
    named: Iterable[tuple[str, str | None]],
    at: dt.datetime,
) -> None:
    """member_marks at `at`: (kind, name) pairs, each once, those without a name left out. The
    one writer of the marks: record (a purchase's store and its lines' categories), enrolment
    (the store a member joined at), and a bulk fill that must keep them as these would."""
    rows = [
        {
            "program_id": program_id,
            "kind": kind,
            "name": name,
            "member_id": member_id,
            "last_at": at,
        }
        for kind, name in dict.fromkeys(named)
        if name
    ]
    if rows:
        conn.execute(_MARK[conn.dialect.name], rows)
