"""Campaign links that count, as the owner sees them: the preview sizes a long address as the
short link members get, and the campaign page shows taps, clickers, the click rate and the
clickers' purchases within 7 days, matching a hand count (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select

import locales
from scheduler import sender
from store.database import Database
from store.loyalty import purchases
from store.loyalty.earning import Line
from store.models import Campaign, OutboxMessage, Program
from tests.admin.conftest import OWNER, Admin, create_member
from tests.admin.test_campaigns import form, utc_now
from tests.scheduler.campaign_helpers import RecordingGateway, plan

pytestmark = pytest.mark.usefixtures("cheap_argon2")

LONG = "https://www.torshov-sport.no/kampanjer/vinter-2026/utvalgte-varer?utm_source=sms&utm_medium=klubb&utm_campaign=vinter"
TEXT = f"Vintersalg! Se {LONG}"
PUBLIC = "http://127.0.0.1:8080"  # the admin fixture's public URL
SHORT = re.compile(re.escape(PUBLIC) + r"/c/([A-Za-z0-9_-]{16})")


@pytest.fixture
async def signed_in(admin: Admin, owner: int) -> Admin:
    return await admin.signed_in(OWNER)


def kpi(page: str, name: str) -> str:
    found = re.search(rf'data-kpi="{name}">([^<]*)<', page)
    assert found, f"no {name} figure on the page"
    return found.group(1).replace("\xa0", " ").strip()


async def test_the_preview_sizes_an_address_as_its_short_link(
    signed_in: Admin, db: Database, club: int
) -> None:
    await create_member(db, club, "+4791234567", "Kari")
    page = await (await signed_in.post("/admin/campaigns/preview", form(text_nb=TEXT))).text()
    # The sample shows a short link of the real length in place of the 100-character address.
    assert LONG not in page
    assert f"{PUBLIC}/c/xxxxxxxxxxxxxxxx" in page
    # One GSM-7 segment for the one member, where the long address would make two.
    assert locales.segments(f"Torshov Sport: {TEXT}\nSvar STOPP for å melde deg av").segments == 2
    assert 'data-segments="1" data-encoding="GSM-7"' in page
    assert re.search(r'data-figure="segments">1<', page)


async def test_taps_and_clickers_purchases_on_the_campaign_page(
    signed_in: Admin, db: Database, club: int
) -> None:
    kari = await create_member(db, club, "+4791234567", "Kari")
    ola = await create_member(db, club, "+4798765432", "Ola")
    await create_member(db, club, "+4791000009", "Stina")
    assert (await signed_in.post("/admin/campaigns", form(text_nb=TEXT))).status == 303
    campaign_id = await db.run(lambda s: s.scalar(select(Campaign.id)))
    now = utc_now()
    assert await plan(db, campaign_id, now=now) == 3
    moment = await db.run(
        lambda s: s.scalar(
            select(func.max(OutboxMessage.send_after)).where(
                OutboxMessage.campaign_id == campaign_id
            )
        )
    )
    clock = max(moment, now) + dt.timedelta(seconds=1)
    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, lambda: clock, link_base=PUBLIC) == 3
    links = {m.to: SHORT.findall(m.body) for m in gateway.sent}
    assert all(len(found) == 1 for found in links.values())
    assert len({found[0] for found in links.values()}) == 3  # one link per recipient
    assert all(LONG not in m.body for m in gateway.sent)

    client = signed_in.client
    kari_link = f"/c/{links['+4791234567'][0]}"
    ola_link = f"/c/{links['+4798765432'][0]}"
    phone = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)"}
    for path in (kari_link, kari_link, ola_link):
        tapped = await client.get(path, headers=phone, allow_redirects=False)
        assert (tapped.status, tapped.headers["Location"]) == (302, LONG)
    # A chat app's preview of Stina's link is no tap.
    preview = await client.get(
        f"/c/{links['+4791000009'][0]}",
        headers={"User-Agent": "WhatsApp/2.23.20.0"},
        allow_redirects=False,
    )
    assert preview.status == 302

    # Kari buys twice within 7 days of her tap, Ola once 8 days after his: one buyer.
    def buy(session, member_id: int, amount: int, when: dt.datetime, transaction: str) -> None:
        purchases.record(
            session,
            session.get(Program, club),
            member_id,
            transaction_id=transaction,
            lines=[Line(qty=1, amount_minor=amount)],
            occurred_at=when,
            fingerprint=transaction,
            now=when,
        )

    tapped_at = utc_now()
    await db.run(lambda s: buy(s, kari, 25000, tapped_at + dt.timedelta(hours=1), "T1"))
    await db.run(lambda s: buy(s, kari, 4900, tapped_at + dt.timedelta(days=6), "T2"))
    await db.run(lambda s: buy(s, ola, 9900, tapped_at + dt.timedelta(days=8), "T3"))

    page = await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    assert kpi(page, "clicks") == "3"
    assert kpi(page, "clickers") == "2"
    assert kpi(page, "click_rate") == "66.7 %"
    assert kpi(page, "clicker_purchases") == "2"
    assert kpi(page, "clicker_revenue").replace(" ", "").startswith("299")
