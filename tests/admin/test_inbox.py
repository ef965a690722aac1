"""The inbox, through the public surface: a text Klubb can't answer comes in through the signed
webhook, staff see it in /admin/inbox with the count in the navigation, reply from the admin,
and the gateway receives the reply; every refusal of the reply rule is said on the page."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import func, select, update

from scheduler import sender
from store.clock import utc_now
from store.clubs import admins
from store.database import Database
from store.models import InboundMessage, OutboxMessage
from tests.admin.conftest import OTHER_NUMBER, OTHER_OWNER, OWNER, STAFF, Admin, create_account
from tests.conftest import CLUB_NUMBER, replies_in, sign, twilio_form
from tests.scheduler.campaign_helpers import RecordingGateway

pytestmark = pytest.mark.usefixtures("cheap_argon2")

WEBHOOK = "http://127.0.0.1:8080/sms/twilio"
KARI = "+4791234567"
_LINK = re.compile(r'href="/admin/inbox/(\d+)"')


async def text(admin: Admin, sender_: str, body: str, to: str = CLUB_NUMBER) -> str | None:
    form = twilio_form(sender_, body, to=to)
    response = await admin.client.post(
        "/sms/twilio", data=form, headers={"X-Twilio-Signature": sign(WEBHOOK, form)}
    )
    assert response.status == 200, await response.text()
    replies = replies_in(await response.text())
    return replies[0] if replies else None


async def join(admin: Admin, number: str) -> None:
    await text(admin, number, "JOIN")
    await text(admin, number, "JA")
    for _ in range(3):  # the demo club's three questions, skipped
        await text(admin, number, "HOPP OVER")


async def get(admin: Admin, path: str, status: int = 200) -> str:
    response = await admin.client.get(path)
    assert response.status == status, await response.text()
    return await response.text()


def conversation_ids(page: str) -> list[int]:
    return [int(found) for found in _LINK.findall(page)]


def unanswered_in_navigation(page: str) -> int:
    found = re.search(r"data-inbox-unanswered>([^<]*)<", page)
    return int(found.group(1)) if found else 0


def refusal(page: str) -> str | None:
    found = re.search(r'data-refused="([a-z_]+)">([^<]*)<', page)
    return found.group(1) if found else None


async def test_staff_see_a_text_klubb_could_not_answer_and_reply_by_sms(
    admin: Admin, owner: int, staff: int, db: Database
) -> None:
    await join(admin, KARI)
    await text(admin, KARI, "POENG")  # understood: never reaches the inbox
    assert await text(admin, KARI, "har dere <b>åpent</b> på søndag?")
    await admin.signed_in(STAFF)
    listing = await get(admin, "/admin/inbox")
    (conversation,) = conversation_ids(listing)
    assert unanswered_in_navigation(listing) == 1
    assert unanswered_in_navigation(await get(admin, "/admin/members")) == 1
    assert "&lt;b&gt;åpent&lt;/b&gt;" in listing
    assert KARI not in listing  # staff see the number masked

    page = await get(admin, f"/admin/inbox/{conversation}")
    assert "&lt;b&gt;åpent&lt;/b&gt;" in page
    assert "<b>åpent" not in page
    assert re.search(r"data-tier>Bronse<", page)  # the member's tier in the context
    assert "POENG" in page  # the whole history, understood texts too

    response = await admin.post(
        f"/admin/inbox/{conversation}/reply", {"text": "Beklager! Vi fikser det – kom innom."}
    )
    assert response.status == 303
    page = await get(admin, f"/admin/inbox/{conversation}?sent=1")
    assert STAFF in page  # who sent it
    assert unanswered_in_navigation(page) == 0

    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, utc_now) == 1
    (sms,) = gateway.sent
    assert sms.to == KARI
    assert sms.body == "Beklager! Vi fikser det - kom innom."
    page = await get(admin, f"/admin/inbox/{conversation}")
    assert html.unescape(page).count("Beklager! Vi fikser det - kom innom.") == 1

    response = await admin.post(f"/admin/inbox/{conversation}/done")
    assert response.status == 303
    assert conversation_ids(await get(admin, "/admin/inbox")) == []
    assert conversation_ids(await get(admin, "/admin/inbox?show=done")) == [conversation]


async def test_a_stranger_is_in_the_inbox_as_no_member_and_found_by_number(
    admin: Admin, owner: int
) -> None:
    await text(admin, "+4798765432", "har dere åpent på søndag?")
    await text(admin, KARI, "hallo?")
    await admin.signed_in(OWNER)
    listing = await get(admin, "/admin/inbox?show=all")
    assert len(conversation_ids(listing)) == 2
    assert "Ikke medlem" in listing
    assert len(conversation_ids(await get(admin, "/admin/inbox?show=all&q=98765"))) == 1


async def test_a_text_older_than_seven_days_may_not_be_answered(
    admin: Admin, owner: int, db: Database
) -> None:
    await text(admin, KARI, "hei?")
    long_ago = utc_now() - dt.timedelta(days=8)
    await db.run(lambda s: s.execute(update(InboundMessage).values(received_at=long_ago)))
    await admin.signed_in(OWNER)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox"))
    response = await admin.post(f"/admin/inbox/{conversation}/reply", {"text": "Hei!"})
    assert response.status == 409
    page = await response.text()
    assert refusal(page) == "too_old"
    assert "mer enn 7 dager" in page
    assert await queued(db) == 0


async def test_a_number_that_stopped_after_its_text_may_not_be_answered(
    admin: Admin, owner: int, db: Database
) -> None:
    await join(admin, KARI)
    await text(admin, KARI, "hva skjer?")
    await text(admin, KARI, "STOPP")
    await admin.signed_in(OWNER)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox"))
    response = await admin.post(f"/admin/inbox/{conversation}/reply", {"text": "Hei!"})
    assert response.status == 409
    assert refusal(await response.text()) == "stopped"
    assert await queued(db) == 0


async def test_an_erased_members_conversation_is_gone_and_a_later_text_refused(
    admin: Admin, owner: int, db: Database
) -> None:
    await join(admin, KARI)
    await text(admin, KARI, "hva skjer?")
    await admin.signed_in(OWNER)
    (before,) = conversation_ids(await get(admin, "/admin/inbox"))
    await text(admin, KARI, "SLETT")
    await text(admin, KARI, "JA")
    await get(admin, f"/admin/inbox/{before}", status=404)
    await text(admin, KARI, "hallo? hvor ble dere av")
    (after,) = conversation_ids(await get(admin, "/admin/inbox"))
    assert after != before
    response = await admin.post(f"/admin/inbox/{after}/reply", {"text": "Hei!"})
    assert response.status == 409
    assert refusal(await response.text()) == "erased"
    assert await queued(db) == 0


async def test_another_clubs_conversation_is_404(
    admin: Admin, owner: int, other_club: int, db: Database
) -> None:
    await text(admin, KARI, "hei?", to=OTHER_NUMBER)
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    (theirs,) = conversation_ids(await get(admin, "/admin/inbox"))
    await admin.client.post("/admin/sign-out", data={"csrf_token": await admin.csrf()})
    await admin.signed_in(OWNER)
    assert conversation_ids(await get(admin, "/admin/inbox?show=all")) == []
    await get(admin, f"/admin/inbox/{theirs}", status=404)
    assert (await admin.post(f"/admin/inbox/{theirs}/reply", {"text": "Hei"})).status == 404
    assert (await admin.post(f"/admin/inbox/{theirs}/done")).status == 404
    assert await queued(db) == 0


async def test_a_reply_without_the_csrf_token_is_refused(
    admin: Admin, owner: int, db: Database
) -> None:
    await text(admin, KARI, "hei?")
    await admin.signed_in(OWNER)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox"))
    for action, form in (("reply", {"text": "Hei!"}), ("done", {})):
        response = await admin.client.post(
            f"/admin/inbox/{conversation}/{action}", data=form, allow_redirects=False
        )
        assert response.status == 403
    assert await queued(db) == 0
    assert conversation_ids(await get(admin, "/admin/inbox")) == [conversation]


async def queued(db: Database) -> int:
    return await db.read(
        lambda s: s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "staff")
        )
    )


async def test_two_admins_both_answer_and_a_removed_account_is_named_so(
    admin: Admin, owner: int, staff: int, club: int, db: Database
) -> None:
    """Owner and staff answer the same conversation: both replies go, each in the thread with
    who sent it; once the staff account is removed its reply says "removed account"."""
    await text(admin, KARI, "har dere åpent på søndag?")
    await admin.signed_in(STAFF)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox"))
    assert (await admin.post(f"/admin/inbox/{conversation}/reply", {"text": "Ja!"})).status == 303
    await admin.client.post("/admin/sign-out", data={"csrf_token": await admin.csrf()})
    await admin.signed_in(OWNER)
    response = await admin.post(f"/admin/inbox/{conversation}/reply", {"text": "12-16."})
    assert response.status == 303
    gateway = RecordingGateway()
    assert await sender.drain(db, gateway, utc_now) == 2
    assert sorted(sms.body for sms in gateway.sent) == ["12-16.", "Ja!"]
    page = await get(admin, f"/admin/inbox/{conversation}")
    assert STAFF in page
    assert OWNER in page
    await db.run(lambda s: admins.remove(s, club, staff))
    page = await get(admin, f"/admin/inbox/{conversation}")
    assert STAFF not in page
    assert "slettet konto" in page
    assert html.unescape(page).count("Ja!") == 1


async def test_a_reply_waiting_in_the_outbox_is_held_when_the_member_stops_first(
    admin: Admin, owner: int, db: Database
) -> None:
    """Nothing after STOP: a staff answer queued before the member texted STOP never reaches the
    gateway, though it was allowed when it was written."""
    await join(admin, KARI)
    assert await text(admin, KARI, "kan jeg bytte bursdag?")
    await admin.signed_in(OWNER)
    (conversation,) = conversation_ids(await get(admin, "/admin/inbox"))
    response = await admin.post(f"/admin/inbox/{conversation}/reply", {"text": "Ja, send den!"})
    assert response.status == 303
    assert await text(admin, KARI, "STOPP")  # the STOP's own confirmation, inline

    gateway = RecordingGateway()
    await sender.drain(db, gateway, utc_now)
    assert [sms.body for sms in gateway.sent if sms.to == KARI] == []
    held = await db.read(
        lambda session: session.execute(
            select(OutboxMessage.status, OutboxMessage.error).where(
                OutboxMessage.body == "Ja, send den!"
            )
        ).one()
    )
    assert tuple(held) == ("skipped", "no_consent")
