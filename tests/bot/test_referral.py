"""A referral rewards a friend who really joined: not one the birthday question turns away as
under the club's minimum age (and erases), texted through the signed webhook."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.cli.demo import set_up_loyalty
from bot.keys import DB
from store import database
from store.database import Database
from store.models import Coupon, LedgerEntry, Member, OutboxMessage, Program
from tests.conftest import HeldWriters, Phone, create_club

KARI, OLA = "+4791234567", "+4798765432"


@pytest.fixture
async def strict_shop(db: Database) -> int:
    """The demo club (name, birthday, activities) for 15 and over, with the demo's referral
    reward (a coupon each) and 100 points each besides."""
    club = await create_club(db, min_age=15)

    def work(session) -> None:
        program = session.get(Program, club)
        set_up_loyalty(session, program)
        program.referral_points = 100

    await db.run(work)
    return club


def born_aged(years: int) -> str:
    """A birthday (nb format) on 1 January that makes someone exactly `years` old today."""
    today = dt.datetime.now(ZoneInfo("Europe/Oslo")).date()
    return f"01.01.{today.year - years}"


async def member_with_code(client: TestClient) -> tuple[Phone, str]:
    kari = Phone(client, KARI)
    for text in ("BLI MED", "JA", "Kari", "12.03.1990", "1"):
        await kari.text(text)
    code = re.search(r"BLI MED ([2-9A-Z]{6})", await kari.text("VERV"))
    assert code, "no referral code"
    return kari, code.group(1)


async def rewards_of(db: Database, phone: str) -> tuple[list[str], int, int]:
    """The member's coupon sources, referral points and SMS sent to them by Klubb."""

    def work(session) -> tuple[list[str], int, int]:
        member_id = session.scalar(select(Member.id).where(Member.phone == phone))
        sources = session.scalars(select(Coupon.source).where(Coupon.member_id == member_id))
        points = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(
                LedgerEntry.member_id == member_id, LedgerEntry.reason.like("referral:%")
            )
        )
        sent = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.to_number == phone)
        )
        return sorted(s.split(":")[0] for s in sources), int(points or 0), int(sent or 0)

    return await db.run(work)


async def test_a_friend_turned_away_as_under_age_rewards_nobody(
    client: TestClient, strict_shop: int, db: Database
) -> None:
    kari, code = await member_with_code(client)
    before = await rewards_of(db, KARI)
    assert before[:2] == (["welcome"], 0)
    ola = Phone(client, OLA)
    await ola.text(f"BLI MED {code}")
    await ola.text("JA")
    await ola.text("Ola")
    assert "15" in await ola.text(born_aged(14))  # profile.too_young, its wording aside
    erased = select(Member.status, Member.referred_by_id).where(Member.phone.is_(None))
    assert (await db.run(lambda s: s.execute(erased).one()))[0] == "erased"
    # No coupon, no points, no SMS: Kari's standing is as it was.
    assert await rewards_of(db, KARI) == before
    assert "50,00 kr rabatt" not in await kari.text("KUPONGER")


async def test_a_friend_of_age_rewards_both_once_the_birthday_is_given(
    client: TestClient, strict_shop: int, db: Database
) -> None:
    _, code = await member_with_code(client)
    ola = Phone(client, OLA)
    await ola.text(f"BLI MED {code}")
    await ola.text("JA")
    await ola.text("Ola")
    # Joined but not yet through the age check: nothing yet.
    assert (await rewards_of(db, KARI))[:2] == (["welcome"], 0)
    assert (await ola.text(born_aged(15))).startswith("Hvilke aktiviteter")
    assert (await rewards_of(db, KARI))[:2] == (["referral", "welcome"], 100)
    assert (await rewards_of(db, OLA))[:2] == (["referral", "welcome"], 100)
    await ola.text("1")  # the last question: rewarded once, not again
    assert (await rewards_of(db, KARI))[:2] == (["referral", "welcome"], 100)


async def test_a_friend_who_skips_the_birthday_is_rewarded_when_through_the_questions(
    client: TestClient, strict_shop: int, db: Database
) -> None:
    _, code = await member_with_code(client)
    ola = Phone(client, OLA)
    for text in (f"BLI MED {code}", "JA", "Ola", "HOPP OVER"):
        await ola.text(text)
    assert (await rewards_of(db, KARI))[:2] == (["welcome"], 0)
    await ola.text("1")
    assert (await rewards_of(db, KARI))[:2] == (["referral", "welcome"], 100)


async def test_a_reward_given_by_a_friends_text_is_in_the_balance_a_text_of_the_same_moment_reads(
    client: TestClient, strict_shop: int, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ola's birthday (which gives Kari her referral points) and Kari's POENG arrive together
    and are committed together, Ola's turn first: Kari's balance has the points, as it would
    a moment later. (One writer of turns on PostgreSQL, so that both share a transaction.)"""
    monkeypatch.setattr(database, "PG_TURN_WRITERS", 1)
    kari, code = await member_with_code(client)
    ola = Phone(client, OLA)
    for text in (f"BLI MED {code}", "JA", "Ola"):
        await ola.text(text)
    before = points_in(await kari.text("POENG"))
    async with HeldWriters(client.server.app[DB]) as held:
        birthday = asyncio.ensure_future(ola.text(born_aged(20)))
        await held.queued(1)
        balance = asyncio.ensure_future(kari.text("POENG"))
        await held.release_when(2)
        await birthday
        reply = await balance
    assert held.apart == []
    assert (await rewards_of(db, KARI))[:2] == (["referral", "welcome"], 100)
    assert points_in(reply) == before + 100, reply


def points_in(reply: str | None) -> int:
    """The balance a POENG reply gives."""
    found = re.search(r"(\d[\d  ]*) poeng", reply or "")
    assert found, reply
    return int(re.sub(r"\D", "", found.group(1)))
