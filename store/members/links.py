"""Links a member taps (their own page): random tokens kept only as hashes, scoped to one member
and one purpose, that expire and that erasure, leaving or an unreachable number end at once."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from store.models import Member, MemberLink
from store.states import MemberStatus

PAGE = "page"
# Where a member's page is served (bot.page): short, so the SMS that carries it stays short.
PAGE_PATH = "/m/"
PURPOSES = frozenset({PAGE})
LIFETIME = {PAGE: dt.timedelta(days=30)}
# 16 random bytes: 128 bits (the issue asks for at least 96), 22 URL-safe characters.
TOKEN_BYTES = 16
# What a token can look like: a longer or odd-looking path is refused before any lookup.
MAX_TOKEN = 64
# A dead link's row is kept this long after it expired or was ended (a member who taps it
# meanwhile gets the same 404 as for any unknown token), then the daily job deletes it.
KEEP_DEAD = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A live link and the member it opens."""

    link_id: int
    program_id: int
    member_id: int
    purpose: str
    expires_at: dt.datetime


def page_url(public_url: str, token: str) -> str:
    """The address of a member's page: the app's public URL and the token, nothing else (no
    number, name or member id)."""
    return f"{public_url.rstrip('/')}{PAGE_PATH}{token}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session: Session, member: Member, now: dt.datetime, purpose: str = PAGE) -> str:
    """A new link for the member: the token to put in the URL (only its hash is kept). Links
    issued before keep working until they expire."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        MemberLink(
            program_id=member.program_id,
            member_id=member.id,
            purpose=purpose,
            token_hash=token_hash(token),
            created_at=now,
            expires_at=now + LIFETIME[purpose],
        )
    )
    return token


def resolve(session: Session, token: str, now: dt.datetime, purpose: str = PAGE) -> Resolved | None:
    """The live link behind `token`: not expired, not ended, of this purpose, and its member
    still an active member whose number is reachable. None for anything else, alike."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        return None
    row = session.execute(
        select(MemberLink, Member.status, Member.undeliverable_at)
        .join(Member, Member.id == MemberLink.member_id)
        .where(MemberLink.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    link, status, undeliverable_at = row
    if (
        link.purpose != purpose
        or link.ended_at is not None
        or link.expires_at <= now
        or status != MemberStatus.ACTIVE
        or undeliverable_at is not None
    ):
        return None
    return Resolved(link.id, link.program_id, link.member_id, link.purpose, link.expires_at)


def end_all(
    session: Session, member_ids: Iterable[int], now: dt.datetime, purpose: str | None = None
) -> int:
    """End every live link of these members (of one purpose, or all): the number ended.

    A Core UPDATE built once, on the session's connection: STOP runs this on the SQLite writer's
    hot path, where the ORM's bulk UPDATE cost several hundred µs a text."""
    ids = sorted(set(member_ids))
    if not ids:
        return 0
    # Parameter names that are no column's: Core would add a column-named one to the SET clause.
    params: dict[str, object] = {"ended": now}
    if len(ids) == 1:  # STOP's: a plain parameter, no IN list to render at each execution
        params["one"] = ids[0]
        statement = _END_ONE if purpose is None else _END_ONE_PURPOSE
    else:
        params["ids"] = ids
        statement = _END_MANY if purpose is None else _END_MANY_PURPOSE
    if purpose is not None:
        params["of_purpose"] = purpose
    return session.connection().execute(statement, params).rowcount


_LINKS = MemberLink.__table__
_END = (
    update(_LINKS)
    .where(_LINKS.c.ended_at.is_(None))
    .values(ended_at=bindparam("ended", type_=_LINKS.c.ended_at.type))
)
_END_ONE = _END.where(_LINKS.c.member_id == bindparam("one"))
_END_MANY = _END.where(_LINKS.c.member_id.in_(bindparam("ids", expanding=True)))
_END_ONE_PURPOSE = _END_ONE.where(_LINKS.c.purpose == bindparam("of_purpose"))
_END_MANY_PURPOSE = _END_MANY.where(_LINKS.c.purpose == bindparam("of_purpose"))


def prune(session: Session, now: dt.datetime, limit: int | None = None) -> int:
    """Delete the links that expired or were ended more than KEEP_DEAD ago (at most `limit`
    of them, oldest id first, so a caller can work through a backlog in short transactions):
    the number deleted. A live link, or one dead for less, is kept."""
    before = now - KEEP_DEAD
    dead = or_(MemberLink.expires_at <= before, MemberLink.ended_at <= before)
    if limit is None:
        statement = delete(MemberLink).where(dead)
    else:
        # A bounded DELETE: LIMIT on DELETE is not portable, a subquery of ids is.
        ids = select(MemberLink.id).where(dead).order_by(MemberLink.id).limit(limit)
        statement = delete(MemberLink).where(MemberLink.id.in_(ids.scalar_subquery()))
    return session.execute(statement, execution_options={"synchronize_session": False}).rowcount


def live_count(session: Session, member_id: int, now: dt.datetime) -> int:
    """How many of the member's links still work (for tests and the admin)."""
    return len(
        session.scalars(
            select(MemberLink.id).where(
                MemberLink.member_id == member_id,
                MemberLink.ended_at.is_(None),
                MemberLink.expires_at > now,
            )
        ).all()
    )
