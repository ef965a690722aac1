"""`klubb campaign send` sizes a web address as its short link, and `klubb campaign show`
gives a sent broadcast's results: each side's purchases, the uplift, and taps on its links."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

from sqlalchemy import func, select

from scheduler import sender
from store.database import open_database
from store.models import OutboxMessage
from store.outreach import campaigns, clicks
from tests.cli.test_campaigns import campaigns_in, klubb, url  # noqa: F401 (the fixtures)
from tests.scheduler.campaign_helpers import RecordingGateway

PUBLIC = "https://klubb.example.no"
LONG = "https://www.torshov-sport.no/kampanjer/vinter-2026/utvalgte-varer?utm_source=sms&utm_medium=klubb&utm_campaign=vinter"


def _value(out: str, label: str) -> str:
    found = re.search(rf"^\s*{re.escape(label)}\s{{2,}}(.+)$", out, re.M)
    assert found, f"no {label!r} line in:\n{out}"
    return found.group(1).strip()


def test_a_sent_campaigns_links_are_counted_in_show(
    klubb: Any,  # noqa: F811
    url: str,  # noqa: F811
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("KLUBB_PUBLIC_URL", PUBLIC)
    sent = klubb("campaign", "send", "--text", f"Vintersalg! Se {LONG}", "--yes")
    assert sent.code == 0, sent.err
    # The estimate sizes the short link, not the 120-character address: one SMS each.
    assert re.search(r"^\s+nb\s+6\s+GSM-7\s+1$", sent.out, re.M), sent.out
    assert _value(sent.out, "SMS segments in all") == "8"
    [campaign] = campaigns_in(url)

    async def send() -> list[str]:
        db = open_database(url)
        try:
            while not (
                await db.run(
                    lambda s: campaigns.plan_chunk(
                        s, campaign_id=campaign.id, now=dt.datetime.now(dt.UTC), chunk=5000
                    )
                )
            ).done:
                pass
            latest = await db.run(
                lambda s: s.scalar(
                    select(func.max(OutboxMessage.send_after)).where(
                        OutboxMessage.campaign_id == campaign.id
                    )
                )
            )
            moment = max(latest, dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=1)
            gateway = RecordingGateway()
            await sender.drain(db, gateway, lambda: moment, link_base=PUBLIC)
            tokens = [re.findall(r"/c/([A-Za-z0-9_-]{16})", m.body)[0] for m in gateway.sent]
            for token in tokens[:2]:
                assert await db.run(lambda s, t=token: clicks.follow(s, t, moment, count=True))
            return tokens
        finally:
            await db.close()

    tokens = asyncio.run(send())
    assert len(tokens) == len(set(tokens)) > 2
    shown = klubb("campaign", "show", str(campaign.id))
    assert shown.code == 0, shown.err
    assert _value(shown.out, "link taps") == "2"
    assert _value(shown.out, "tapped") == f"2 recipients ({2 / len(tokens):.1%} of sent)"
    assert _value(shown.out, "then, 7 days").startswith("0 purchases by 0 members")
    assert _value(shown.out, "recipients").startswith(f"{len(tokens)} members, 0 bought")
    assert _value(shown.out, "vs control").startswith("no uplift without a control group")
