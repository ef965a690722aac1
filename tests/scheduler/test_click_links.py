"""Campaign links that count, at sending: the owner's web addresses in a broadcast's or a
journey's text go out as short links of each message, made at the claim and recorded as sent."""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from scheduler import journeys as journey_job
from scheduler import sender
from scheduler.gateway import Throttled
from store.database import Database
from store.models import ClickLink, Member, Program
from store.outreach import campaigns, clicks, journeys, sending
from tests.conftest import PUBLIC_URL
from tests.scheduler.campaign_helpers import (
    T0,
    RecordingGateway,
    add_members,
    at,
    broadcast,
    plan,
    rows_of,
    run,
)

TEXT = "Salg i dag! Se https://butikk.no/salg?kode=vinter, og www.butikk.no/nytt."
# What a short link looks like in an SMS: the public URL without https://, /c/ and the token.
SHORT = re.compile(r"klubb\.example\.com/c/([A-Za-z0-9_-]+)")


async def send_with_links(
    db: Database, club: int, count: int, text: str = TEXT, **options: Any
) -> tuple[int, list[str], RecordingGateway]:
    """`count` members and a broadcast of `text` to them, planned and sent with short links on
    the tests' public URL: (the campaign's id, the members' numbers, what the gateway got)."""
    phones = await add_members(db, club, count, **options)
    campaign_id = await broadcast(db, club, texts={"nb": text})
    assert await plan(db, campaign_id) == count
    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, at(T0), link_base=PUBLIC_URL) == count
    return campaign_id, phones, gateway


async def links_of(db: Database, campaign_id: int) -> list[ClickLink]:
    return await run(
        db,
        lambda s: list(
            s.scalars(
                select(ClickLink).where(ClickLink.campaign_id == campaign_id).order_by(ClickLink.id)
            )
        ),
    )


async def member_ids(db: Database) -> dict[str, int]:
    return dict(await run(db, lambda s: s.execute(select(Member.phone, Member.id)).all()))


class TestShortLinksAtSending:
    async def test_a_message_put_back_unsent_keeps_only_the_links_it_goes_out_with(self, db, club):
        """Throttled (429) then sent: the member gets two links, and the table holds those two,
        not the two made for the attempt that never went."""
        [phone] = await add_members(db, club, 1)
        campaign_id = await broadcast(db, club, texts={"nb": TEXT})
        assert await plan(db, campaign_id) == 1
        slow = RecordingGateway(errors={phone: Throttled("slow down", "429", retry_after=2)})
        await sender.drain(db, slow, at(T0), link_base=PUBLIC_URL)
        assert slow.sent == []
        assert await links_of(db, campaign_id) == []
        gateway = RecordingGateway()
        assert (
            await sender.drain(db, gateway, at(T0 + dt.timedelta(seconds=3)), link_base=PUBLIC_URL)
            == 1
        )
        [body] = gateway.to(phone)
        tokens = SHORT.findall(body)
        kept = await links_of(db, campaign_id)
        assert len(tokens) == len(kept) == 2
        assert {link.token_hash for link in kept} == {clicks.token_hash(t) for t in tokens}

    async def test_each_recipient_gets_their_own_short_links_naming_no_one(self, db, club):
        _, phones, gateway = await send_with_links(db, club, 3)
        ids = await member_ids(db)
        bodies = {phone: gateway.to(phone) for phone in phones}
        assert all(len(sent) == 1 for sent in bodies.values())
        tokens = {phone: SHORT.findall(sent[0]) for phone, sent in bodies.items()}
        # Two addresses in the text: two links in each message, six different ones in all.
        assert all(len(found) == 2 for found in tokens.values())
        every = [token for found in tokens.values() for token in found]
        assert len(set(every)) == 6
        assert all(len(token) == clicks.TOKEN_CHARS == 16 for token in every)
        for index, phone in enumerate(phones):
            body = bodies[phone][0]
            assert "butikk.no" not in body
            # The sentence's punctuation stays after the link, the rest of the text as written.
            first, second = tokens[phone]
            assert body == (
                f"Torshov Sport: Salg i dag! Se klubb.example.com/c/{first}, og"
                f" klubb.example.com/c/{second}.\n" + campaigns.footer("nb")
            )
            for found in tokens[phone]:
                assert phone.lstrip("+") not in found
                assert f"Navn{index}" not in found
                assert str(ids[phone]) != found

    async def test_the_links_are_kept_hashed_per_message_member_and_campaign(self, db, club):
        campaign_id, phones, gateway = await send_with_links(db, club, 3)
        ids = await member_ids(db)
        rows = {row.id: row for row in await rows_of(db, campaign_id)}
        kept = await links_of(db, campaign_id)
        assert len(kept) == 6
        by_hash = {link.token_hash: link for link in kept}
        for message in gateway.sent:
            for token, url in zip(
                SHORT.findall(message.body),
                ("https://butikk.no/salg?kode=vinter", "https://www.butikk.no/nytt"),
                strict=True,
            ):
                link = by_hash[clicks.token_hash(token)]
                assert link.url == url
                assert link.member_id == ids[message.to]
                assert link.program_id == club
                # The link is the message's the gateway got, and its outbox row records
                # that text as sent.
                assert link.message_id == int(message.reference)
                outbox = rows[link.message_id]
                assert outbox.member_id == ids[message.to]
                assert outbox.body == message.body
                assert link.expires_at - link.created_at == clicks.LIFETIME
        assert {link.member_id for link in kept} == {ids[phone] for phone in phones}

    async def test_without_a_public_url_the_addresses_go_as_written(self, db, club):
        phones = await add_members(db, club, 2)
        campaign_id = await broadcast(db, club, texts={"nb": TEXT})
        await plan(db, campaign_id)
        gateway = RecordingGateway()
        assert await sender.drain(db, gateway, at(T0)) == 2
        assert "https://butikk.no/salg?kode=vinter" in gateway.to(phones[0])[0]
        assert "www.butikk.no/nytt." in gateway.to(phones[0])[0]
        assert await links_of(db, campaign_id) == []

    async def test_an_address_twice_is_one_link_and_a_first_name_is_not_the_owners(self, db, club):
        """Only what the owner wrote becomes a link: a member's first name that looks like an
        address goes as it is."""
        text = "Hei {first_name}! Se https://butikk.no/salg eller https://butikk.no/salg"
        campaign_id, [phone], gateway = await send_with_links(
            db, club, 1, text, first_name="www.kari.no"
        )
        [body] = gateway.to(phone)
        [token, again] = SHORT.findall(body)
        assert token == again
        assert "Hei www.kari.no!" in body
        assert len(await links_of(db, campaign_id)) == 1

    async def test_a_message_with_a_short_link_is_sized_as_sent(self, db, club):
        long_url = "https://butikk.no/" + "kampanje/" * 20
        campaign_id, [phone], gateway = await send_with_links(db, club, 1, f"Se {long_url}")
        [body] = gateway.to(phone)
        [row] = await rows_of(db, campaign_id)
        assert long_url not in body
        assert row.segments == 1

    async def test_a_journeys_own_text_with_an_address_gets_short_links(self, db, club):
        def setup(session: Session) -> int:
            return journeys.create(
                session,
                session.get(Program, club),
                trigger="welcome",
                now=T0,
                texts={"nb": "Velkommen, {first_name}! Se tilbudene: www.butikk.no/velkommen"},
            ).id

        journey_id = await run(db, setup)
        [ann, bo] = await add_members(db, club, 2, joined_at=T0 - dt.timedelta(hours=30))
        await journey_job.run(db, at(T0))
        gateway = RecordingGateway()
        assert await sender.drain(db, gateway, at(T0), link_base=PUBLIC_URL) == 2
        tokens = [SHORT.findall(gateway.to(phone)[0]) for phone in (ann, bo)]
        assert all(len(found) == 1 for found in tokens)
        assert tokens[0] != tokens[1]
        kept = await links_of(db, journey_id)
        assert {link.url for link in kept} == {"https://www.butikk.no/velkommen"}
        assert len(kept) == 2


async def test_a_claim_writes_its_links_in_one_statement_whatever_its_size(db, club):
    """No statement per message: claiming 12 messages with links costs what claiming 3 does."""
    await add_members(db, club, 15)
    campaign_id = await broadcast(db, club, texts={"nb": TEXT})
    await plan(db, campaign_id)

    def statements_of_claim(session: Session, limit: int) -> int:
        seen: list[str] = []
        engine = session.get_bind()

        def count(*args: Any) -> None:
            seen.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            claimed = sending.claim(session, T0, limit, link_base=PUBLIC_URL)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(claimed) == limit
        return len(seen)

    small = await run(db, functools.partial(statements_of_claim, limit=3))
    large = await run(db, functools.partial(statements_of_claim, limit=12))
    assert small == large
    assert len(await links_of(db, campaign_id)) == 2 * 15
