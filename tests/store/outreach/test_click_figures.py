"""A campaign's click figures (taps, clickers, click rate, clickers' purchases and revenue within
7 days of their first tap) against a hand count, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from scheduler import sender
from store import reports
from store.database import Database
from store.members import privacy
from store.models import ClickLink, LinkClick, Member, OutboxMessage, Program
from store.outreach import clicks
from tests.scheduler.campaign_helpers import T0, RecordingGateway, add_members, at, broadcast, plan
from tests.store.test_reports import buy, figures, new_club

TEXT = "Salg! Se https://butikk.no/salg og www.butikk.no/nytt."
BASE = "https://klubb.example.no"
SHORT = re.compile(r"klubb\.example\.no/c/([A-Za-z0-9_-]{16})")


async def sent_with_links(db: Database, club_id: int, campaign_id: int) -> dict[int, list[str]]:
    """Short links made for each sent message, as the sender makes them: {member id: tokens}."""

    def work(session) -> dict[int, list[str]]:
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.member_id, OutboxMessage.body).where(
                OutboxMessage.campaign_id == campaign_id, OutboxMessage.status == "sent"
            )
        ).all()
        owned = clicks.owned_urls({"nb": TEXT})
        shortener = clicks.Shortener(BASE, T0)
        tokens: dict[int, list[str]] = {}
        for row in rows:
            text = shortener.shorten(
                row.body,
                owned,
                program_id=club_id,
                campaign_id=campaign_id,
                message_id=row.id,
                member_id=row.member_id,
            )
            tokens[row.member_id] = SHORT.findall(text)
        shortener.save(session.connection())
        return tokens

    return await db.run(work)


async def tap(db: Database, token: str, when: dt.datetime, *, count: bool = True) -> str | None:
    return await db.run(lambda session: clicks.follow(session, token, when, count=count))


async def test_clicks_and_clickers_revenue_match_a_hand_count(db: Database) -> None:
    club_id = await new_club(db)
    await add_members(db, club_id, 5)
    campaign_id = await broadcast(db, club_id, texts={"nb": TEXT})
    assert await plan(db, campaign_id) == 5
    assert await sender.drain(db, RecordingGateway(), at(T0)) == 5
    tokens = await sent_with_links(db, club_id, campaign_id)
    assert all(len(found) == 2 for found in tokens.values())
    a, b, c, d, e = sorted(tokens)

    # a taps both links, one twice; b taps once; c's only "tap" is a preview fetcher's.
    t1 = T0 + dt.timedelta(hours=2)
    assert await tap(db, tokens[a][0], t1) == "https://butikk.no/salg"
    assert await tap(db, tokens[a][0], t1 + dt.timedelta(hours=1)) == "https://butikk.no/salg"
    assert await tap(db, tokens[a][1], t1 + dt.timedelta(days=1)) == "https://www.butikk.no/nytt"
    assert await tap(db, tokens[b][1], T0 + dt.timedelta(days=3)) is not None
    assert await tap(db, tokens[c][0], t1, count=False) is not None
    assert await tap(db, "x" * 16, t1) is None

    # a buys twice inside 7 days of the first tap and once after; b buys before tapping (not
    # counted) and once inside; c (who never tapped) and d buy too.
    await buy(db, club_id, a, 10000, t1 + dt.timedelta(days=1))
    await buy(db, club_id, a, 2500, t1 + dt.timedelta(days=7, minutes=-1))
    await buy(db, club_id, a, 99900, t1 + dt.timedelta(days=7, minutes=1))
    await buy(db, club_id, b, 40000, T0 + dt.timedelta(days=2))
    await buy(db, club_id, b, 7000, T0 + dt.timedelta(days=4))
    await buy(db, club_id, c, 5000, T0 + dt.timedelta(days=1))
    await buy(db, club_id, d, 5000, T0 + dt.timedelta(days=1))

    [got] = await figures(db, club_id, reports.campaign_results, T0 + dt.timedelta(days=40))
    assert got.has_links
    assert got.clicked == reports.Clicked(
        clicks=4, clickers=2, buyers=2, purchases=3, revenue_minor=19500
    )
    assert got.click_rate == 2 / 5
    # Links live 90 days; taps then count purchases 7 more days: only after that it settles.
    assert got.settles_at == T0 + clicks.LIFETIME + dt.timedelta(days=reports.CLICK_DAYS)

    # Stored results read back the same.
    def stored(session):
        reports.store_results(session, campaign_id, T0 + dt.timedelta(days=40))
        program = session.get(Program, club_id)
        per = reports.period(program, dt.date(2026, 11, 1), dt.date(2026, 12, 1))
        later = T0 + dt.timedelta(days=40, minutes=1)
        return reports.campaign_results(session, program, per, later, stored=dt.timedelta(hours=1))

    [kept] = await db.run(stored)
    assert (kept.clicked, kept.has_links, kept.counted_at) == (got.clicked, True, got.counted_at)

    # The member's own data (MYDATA, the page's download) holds their links and taps.
    def exported(session):
        return privacy.export(session, session.get(Program, club_id), session.get(Member, a), T0)[
            "link_taps"
        ]

    taps = await db.run(exported)
    assert [(t["url"], len(t["tapped_at"])) for t in taps] == [
        ("https://butikk.no/salg", 2),
        ("https://www.butikk.no/nytt", 1),
    ]
    assert all(t["campaign_id"] == campaign_id for t in taps)

    # Erasure: a's links no longer name a member; the taps and clickers still count, a's
    # purchases no longer count as a clicker's.
    def erase(session) -> None:
        member = session.get(Member, a)
        privacy.erase(
            session,
            member,
            T0 + dt.timedelta(days=41),
            wording_id="delete.confirm",
            wording_language="nb",
            wording_text="SLETT",
            channel="sms",
            evidence="test",
        )

    await db.run(erase)
    owners = await db.run(
        lambda s: set(
            s.scalars(select(ClickLink.member_id).where(ClickLink.campaign_id == campaign_id))
        )
    )
    assert a not in owners
    [after] = await figures(db, club_id, reports.campaign_results, T0 + dt.timedelta(days=42))
    assert (after.clicked.clicks, after.clicked.clickers) == (4, 2)
    assert await db.run(lambda s: len(s.scalars(select(LinkClick.id)).all())) == 4
    del e


async def test_a_campaign_without_links_has_no_click_rate(db: Database) -> None:
    club_id = await new_club(db)
    await add_members(db, club_id, 2)
    campaign_id = await broadcast(db, club_id)
    await plan(db, campaign_id)
    await sender.drain(db, RecordingGateway(), at(T0))
    [got] = await figures(db, club_id, reports.campaign_results, T0 + dt.timedelta(days=1))
    assert (got.has_links, got.click_rate, got.clicked) == (False, None, reports.Clicked())


async def test_expired_links_go_nowhere_and_count_nothing(db: Database) -> None:
    club_id = await new_club(db)
    await add_members(db, club_id, 1)
    campaign_id = await broadcast(db, club_id, texts={"nb": TEXT})
    await plan(db, campaign_id)
    await sender.drain(db, RecordingGateway(), at(T0))
    [found] = (await sent_with_links(db, club_id, campaign_id)).values()
    late = T0 + clicks.LIFETIME
    assert await tap(db, found[0], late) is None
    assert await tap(db, found[0], late - dt.timedelta(seconds=1)) == "https://butikk.no/salg"
    assert await db.run(lambda s: len(s.scalars(select(LinkClick.id)).all())) == 1
