"""Finding a club's members: by phone number in any format, or by the start of a first name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from store.members import members
from store.members.phones import to_e164
from store.models import Member, Program

# A query with no letter in it is a phone number ("912 34 567", "+47 912 34 567", "0047...").
_PHONE_LIKE = re.compile(r"^[\d\s+\-().]+$")
MAX_QUERY = 60  # longer than any first name (the column) or phone number
# A name search counts this many matches at most: no index serves a name, and a count of every
# "a" in a club of 1,000,000 would read the whole club for a figure nobody pages through.
COUNT_CAP = 1000


@dataclass(frozen=True, slots=True)
class Found:
    """One page of members, and how many match in all."""

    members: Sequence[Member]
    total: int  # at most COUNT_CAP for a name (`capped` then says there may be more)
    phone: str | None  # the number searched for, in E.164, when the query was a phone
    bad_phone: bool  # the query looked like a phone number but is not one
    capped: bool = False


def search(session: Session, program: Program, query: str, *, limit: int, offset: int = 0) -> Found:
    """The club's members whose number is the query's (any format, the club's country for a
    number without its code) or whose first name starts with it (any case); with no query, the
    newest. Erased members are never found: they have no number or name left, only a hash."""
    text = query.strip()[:MAX_QUERY]
    not_erased = Member.status != members.ERASED
    if text and _PHONE_LIKE.match(text):
        phone = to_e164(text, program.country)
        if phone is None:
            return Found((), 0, None, bad_phone=True)
        # The (program_id, phone) unique index answers this at once.
        where = (Member.program_id == program.id, Member.phone == phone, not_erased)
        total = session.scalar(select(func.count()).select_from(Member).where(*where)) or 0
        return Found(_page(session, where, limit, offset), total, phone, bad_phone=False)
    dialect = session.get_bind().dialect.name
    club = Member.program_id == program.id
    if dialect == "sqlite":
        # SQLite would pick the (program_id, language) index and sort the whole club for the
        # newest (3 s at 1M members); walking the ids back from the newest stops at the page
        # (ms). "+ 0" is the same rows through an expression no index serves.
        club = Member.program_id + 0 == program.id
    if not text:
        # The count per status is read from an index.
        counts = members.count_by_status(session, program.id)
        total = sum(n for status, n in counts.items() if status != members.ERASED)
        return Found(_page(session, (club, not_erased), limit, offset), total, None, False)
    where = (club, not_erased, _name_starts(text, dialect))
    found = _page(session, where, limit, offset)
    if offset == 0 and len(found) < limit:
        # The page holds every match: no second read of the club (a name that matches nobody
        # reads every row once, not twice).
        return Found(found, len(found), None, bad_phone=False)
    matching = select(Member.id).where(*where).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(matching)) or 0
    return Found(found, min(total, COUNT_CAP), None, bad_phone=False, capped=total > COUNT_CAP)


def _page(
    session: Session, where: tuple[ColumnElement[bool], ...], limit: int, offset: int
) -> Sequence[Member]:
    return session.scalars(
        select(Member).where(*where).order_by(Member.id.desc()).limit(limit).offset(offset)
    ).all()


def _name_starts(prefix: str, dialect: str) -> ColumnElement[bool]:
    """First name starts with `prefix`, whatever the case. SQLite's LIKE ignores the case of
    ASCII letters only, and PostgreSQL's ILIKE folds only ASCII in a C-locale database: "øys"
    must still find "Øystein", so for a prefix with other letters the usual ways a name is
    written are asked for too (a plain LIKE each: one function call a row costs at 1M rows)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    name = Member.first_name
    anycase = (name.like if dialect == "sqlite" else name.ilike)(escaped + "%", escape="\\")
    if escaped.isascii():
        return anycase
    forms = sorted({escaped.lower(), escaped.capitalize(), escaped.upper(), escaped.title()})
    return or_(anycase, *(name.like(form + "%", escape="\\") for form in forms))
