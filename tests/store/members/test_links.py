"""A member's links: unguessable, kept only as hashes, scoped, expiring, and ended at once by
erasure and an unreachable number."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.database import Database
from store.members import links, privacy
from store.models import MemberLink
from store.outreach import delivery
from tests.store.loyalty_helpers import T0, club, member

DAY = dt.timedelta(days=1)


async def test_a_link_opens_its_member_for_thirty_days_and_only_its_hash_is_kept(
    loyalty_db: Database,
) -> None:
    def work(session: Session) -> tuple:
        program = club(session)
        kari = member(session, program)
        token = links.issue(session, kari, T0)
        session.flush()
        stored = session.scalars(select(MemberLink).where(MemberLink.member_id == kari.id)).one()
        return (
            token,
            stored.token_hash,
            kari.id,
            links.resolve(session, token, T0 + 29 * DAY),
            links.resolve(session, token, T0 + 30 * DAY),
        )

    token, kept, member_id, within, after = await loyalty_db.run(work)
    assert len(token) >= 16
    assert token not in kept
    assert kept == links.token_hash(token)
    assert within is not None
    assert within.member_id == member_id
    assert after is None


async def test_a_new_link_leaves_the_old_one_working(loyalty_db: Database) -> None:
    def work(session: Session) -> tuple:
        program = club(session)
        kari = member(session, program)
        first = links.issue(session, kari, T0)
        second = links.issue(session, kari, T0 + DAY)
        session.flush()
        return links.resolve(session, first, T0 + 2 * DAY), links.resolve(
            session, second, T0 + 2 * DAY
        )

    first, second = await loyalty_db.run(work)
    assert first is not None
    assert second is not None
    assert first.link_id != second.link_id


async def test_unknown_tampered_or_other_purpose_tokens_open_nothing(loyalty_db: Database) -> None:
    def work(session: Session) -> list:
        program = club(session)
        token = links.issue(session, member(session, program), T0)
        session.flush()
        return [
            links.resolve(session, token[:-1] + ("A" if token[-1] != "A" else "B"), T0),
            links.resolve(session, "", T0),
            links.resolve(session, "x" * 500, T0),
            links.resolve(session, "ø" * 22, T0),
            links.resolve(session, token, T0, purpose="campaign"),
        ]

    assert await loyalty_db.run(work) == [None] * 5


async def test_erasure_ends_the_members_links_at_once(loyalty_db: Database) -> None:
    def work(session: Session) -> tuple:
        program = club(session)
        kari = member(session, program)
        token = links.issue(session, kari, T0)
        session.flush()
        privacy.erase(
            session,
            kari,
            T0 + DAY,
            wording_id="erase.member_request",
            wording_language="nb",
            wording_text="SLETT",
            channel="sms",
            evidence="SM1",
        )
        session.flush()
        ended = session.scalars(
            select(MemberLink.ended_at).where(MemberLink.member_id == kari.id)
        ).all()
        return links.resolve(session, token, T0 + DAY), ended

    resolved, ended = await loyalty_db.run(work)
    assert resolved is None
    assert ended == [T0 + DAY]


async def test_a_number_flagged_undeliverable_ends_its_links(loyalty_db: Database) -> None:
    def work(session: Session) -> tuple:
        program = club(session)
        kari = member(session, program)
        token = links.issue(session, kari, T0)
        session.flush()
        delivery.flag(session, kari.id, T0 + DAY, "21610 unsubscribed")
        return links.resolve(session, token, T0 + DAY), links.live_count(session, kari.id, T0)

    assert await loyalty_db.run(work) == (None, 0)
