"""Status callbacks: signed receipts applied once to their outbox rows and members' flags."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.settings import Settings
from scheduler.gateway import OutboundSms
from store import messages
from store.clubs import programs
from store.database import Database
from store.members import consent, members
from store.models import DeliveryReceipt, Member, OutboxMessage
from store.outreach import delivery
from tests.conftest import AUTH_TOKEN, CLUB_NUMBER, PUBLIC_URL, sign
from tests.fakes.twilio_server import FakeTwilio

STATUS = "/sms/twilio/status"
T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
PHONE = "+4791234567"


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


def status_form(
    sid: str, status: str, error: str | None = None, *, from_: str = CLUB_NUMBER
) -> dict[str, str]:
    """A status callback's form as Twilio posts it."""
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "1" * 32,
        "To": PHONE,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }
    if error is not None:
        form["ErrorCode"] = error
    return form


async def post_status(
    client: TestClient, form: dict[str, str], *, signature: str | None = None
) -> Any:
    headers = {"X-Twilio-Signature": signature if signature is not None else sign_status(form)}
    return await client.post(STATUS, data=form, headers=headers)


def sign_status(form: dict[str, str]) -> str:
    return sign(PUBLIC_URL + STATUS, form)


async def callback(client: TestClient, sid: str, status: str, error: str | None = None) -> None:
    response = await post_status(client, status_form(sid, status, error))
    assert response.status == 204, await response.text()


async def new_member(db: Database, club: int, phone: str = PHONE) -> int:
    def work(session: Session) -> int:
        program = programs.get(session, club)
        assert program is not None
        return members.create(session, program, phone, status=members.ACTIVE, now=T0).id

    return await db.run(work)


async def sent_message(
    db: Database, club: int, member_id: int | None, provider_id: str | None
) -> int:
    """An outbox row as the sender leaves it: sent, with the provider's id when given."""

    def work(session: Session) -> int:
        row = messages.enqueue(
            session,
            program_id=club,
            member_id=member_id,
            kind=messages.SYSTEM,
            to_number=PHONE,
            from_number=CLUB_NUMBER,
            body="Hei!",
            segments=1,
            now=T0,
        )
        row.status = "sent"
        row.sent_at = T0
        row.provider_id = provider_id
        return row.id

    return await db.run(work)


async def give_provider_ids(db: Database, ids: dict[int, str]) -> None:
    """What the sender does after a batch: write the ids, then apply what waited for them."""

    def work(session: Session) -> None:
        for row_id, provider_id in ids.items():
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            row.provider_id = provider_id
        delivery.apply_waiting(session, list(ids.values()), T0)

    await db.run(work)


async def outbox_row(db: Database, row_id: int) -> OutboxMessage:
    row = await db.run(lambda session: session.get(OutboxMessage, row_id))
    assert row is not None
    return row


async def member_row(db: Database, member_id: int) -> Member:
    member = await db.run(lambda session: session.get(Member, member_id))
    assert member is not None
    return member


async def receipts(db: Database) -> int:
    return await db.run(
        lambda session: session.scalar(select(func.count()).select_from(DeliveryReceipt))
    )


async def error_of(response: Any) -> str:
    assert response.content_type == "application/json", await response.text()
    body = json.loads(await response.text())
    assert set(body) == {"error"}
    return body["error"]


class TestApplied:
    async def test_a_delivered_callback_marks_the_row_delivered(self, client, db, club) -> None:
        """sent, then delivered: the row is delivered, with the time; both receipts kept."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, sid)

        await callback(client, sid, "sent")
        assert (await outbox_row(db, row_id)).delivery is None
        await callback(client, sid, "delivered")

        row = await outbox_row(db, row_id)
        assert row.delivery == "delivered"
        assert row.delivered_at is not None
        assert row.delivery_error is None
        assert row.status == "sent"
        assert await receipts(db) == 2

    async def test_an_undelivered_callback_keeps_the_error_code(self, client, db, club) -> None:
        """undelivered with ErrorCode 30003: the row says so, the member has one failure."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, sid)

        await callback(client, sid, "undelivered", "30003")

        row = await outbox_row(db, row_id)
        assert (row.delivery, row.delivery_error) == ("undelivered", "30003")
        person = await member_row(db, member)
        assert person.delivery_failures == 1
        assert person.undeliverable_at is None

    async def test_the_same_callback_twice_counts_once(self, client, db, club) -> None:
        """Twilio retried the callback: one receipt, one failure counted."""
        member = await new_member(db, club)
        sid = new_sid()
        await sent_message(db, club, member, sid)

        await callback(client, sid, "undelivered", "30003")
        await callback(client, sid, "undelivered", "30003")

        assert await receipts(db) == 1
        assert (await member_row(db, member)).delivery_failures == 1

    async def test_failed_after_undelivered_counts_no_more(self, client, db, club) -> None:
        """Two failure statuses of one message are one failure of the member."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, sid)

        await callback(client, sid, "undelivered", "30003")
        await callback(client, sid, "failed", "30008")

        assert (await outbox_row(db, row_id)).delivery == "undelivered"
        assert (await member_row(db, member)).delivery_failures == 1

    async def test_a_late_status_never_moves_a_delivered_row_back(self, client, db, club) -> None:
        """sent or undelivered arriving after delivered change nothing."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, sid)

        await callback(client, sid, "delivered")
        await callback(client, sid, "sent")
        await callback(client, sid, "undelivered", "30003")

        row = await outbox_row(db, row_id)
        assert row.delivery == "delivered"
        assert row.delivery_error is None
        assert (await member_row(db, member)).delivery_failures == 0

    async def test_delivered_may_correct_an_undelivered(self, client, db, club) -> None:
        """The carrier corrects itself: delivered after undelivered wins, failures reset."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, sid)

        await callback(client, sid, "undelivered", "30003")
        await callback(client, sid, "delivered")

        row = await outbox_row(db, row_id)
        assert (row.delivery, row.delivery_error) == ("delivered", None)
        assert (await member_row(db, member)).delivery_failures == 0

    @pytest.mark.parametrize("status", ["read", "canceled", "partially_delivered", "scheduled"])
    async def test_a_status_klubb_does_not_know_is_acknowledged_and_changes_nothing(
        self, client, db, club, status: str
    ) -> None:
        """Twilio's newer statuses (one longer than any Klubb keeps) are answered 204, so
        Twilio logs no error, and leave the row and the member as they were."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, sid)
        await callback(client, sid, status, "30003")
        row = await outbox_row(db, row_id)
        assert (row.status, row.delivery, row.delivery_error) == ("sent", None, None)
        person = await member_row(db, member)
        assert (person.delivery_failures, person.undeliverable_at) == (0, None)

    async def test_a_receipt_for_no_row_is_kept_and_harms_nothing(self, client, db, club) -> None:
        """A callback for a message Klubb doesn't know (yet): kept, 204, nothing else."""
        await callback(client, new_sid(), "delivered")
        assert await receipts(db) == 1


class TestWaiting:
    async def test_a_receipt_before_the_provider_id_is_applied_later(
        self, client, db, club
    ) -> None:
        """The callback beat the sender's commit: apply_waiting applies it when the sender
        writes the provider id."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, None)

        await callback(client, sid, "sent")
        await callback(client, sid, "undelivered", "30005")
        assert (await outbox_row(db, row_id)).delivery is None

        await give_provider_ids(db, {row_id: sid})

        row = await outbox_row(db, row_id)
        assert (row.delivery, row.delivery_error) == ("undelivered", "30005")
        assert (await member_row(db, member)).undeliverable_at == T0

    async def test_a_batch_is_applied_at_once_and_only_once(self, client, db, club) -> None:
        """Mixed receipts for a batch: each row gets its outcome; applying again does nothing
        twice."""
        people = [await new_member(db, club, f"+4791{i:06d}") for i in range(4)]
        sids = [new_sid() for _ in people]
        rows = [await sent_message(db, club, person, None) for person in people]
        await callback(client, sids[0], "delivered")
        await callback(client, sids[1], "undelivered", "30003")
        await callback(client, sids[2], "sent")
        await callback(client, sids[3], "undelivered", "30003")
        await callback(client, sids[3], "delivered")  # corrected

        ids = dict(zip(rows, sids, strict=True))
        await give_provider_ids(db, ids)
        await give_provider_ids(db, ids)

        got = [(await outbox_row(db, r)).delivery for r in rows]
        assert got == ["delivered", "undelivered", None, "delivered"]
        failures = [(await member_row(db, p)).delivery_failures for p in people]
        assert failures == [0, 1, 0, 0]

    async def test_a_callback_during_the_senders_transaction_is_not_lost(
        self, database_url: str, db: Database, club: int
    ) -> None:
        """A callback that lands after apply_waiting has looked but before the sender's commit
        waits for that commit, then finds its row: never a receipt kept and never applied."""
        sid = new_sid()
        row_id = await sent_message(db, club, None, None)
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            url = url.set(drivername="sqlite+aiosqlite")
        engine = create_async_engine(url)

        def write_ids(session: Session) -> None:
            session.execute(
                update(OutboxMessage).where(OutboxMessage.id == row_id).values(provider_id=sid)
            )
            delivery.apply_waiting(session, [sid], T0)

        async def callback_arrives() -> bool:
            async with AsyncSession(engine) as session:
                new = await session.run_sync(
                    lambda s: delivery.record_receipt(
                        s,
                        program_id=club,
                        provider_id=sid,
                        status="delivered",
                        error_code=None,
                        now=T0,
                    )
                )
                await session.commit()
                return new

        try:
            async with AsyncSession(engine) as sender:
                await sender.run_sync(write_ids)
                arriving = asyncio.create_task(callback_arrives())
                await asyncio.sleep(0.3)
                assert not arriving.done()
                await sender.commit()
            assert await arriving is True
        finally:
            await engine.dispose()
        assert (await outbox_row(db, row_id)).delivery == "delivered"

    async def test_nothing_waiting_changes_nothing(self, db, club) -> None:
        """No receipts for these ids (the usual case): the rows stay as they are."""
        row_id = await sent_message(db, club, None, None)
        await give_provider_ids(db, {row_id: new_sid()})
        assert (await outbox_row(db, row_id)).delivery is None


class TestFlags:
    async def test_three_failures_in_a_row_flag_the_member(self, client, db, club) -> None:
        """Two undelivered messages: counted, not flagged; the third flags the number."""
        member = await new_member(db, club)
        for _ in range(2):
            sid = new_sid()
            await sent_message(db, club, member, sid)
            await callback(client, sid, "undelivered", "30003")
        person = await member_row(db, member)
        assert (person.delivery_failures, person.undeliverable_at) == (2, None)

        sid = new_sid()
        await sent_message(db, club, member, sid)
        await callback(client, sid, "failed", "30008")

        person = await member_row(db, member)
        assert person.delivery_failures == 3
        assert person.undeliverable_at is not None

    async def test_a_message_the_carrier_filtered_counts_against_no_number(
        self, client, db, club
    ) -> None:
        """30007 (the carrier filtered the message's content) three times: each row keeps its
        failure and code, but the member's number is not at fault: not counted, not flagged."""
        member = await new_member(db, club)
        rows = []
        for _ in range(delivery.FAILURES_TO_FLAG):
            sid = new_sid()
            rows.append(await sent_message(db, club, member, sid))
            await callback(client, sid, "undelivered", "30007")
        for row_id in rows:
            row = await outbox_row(db, row_id)
            assert (row.delivery, row.delivery_error) == ("undelivered", "30007")
        person = await member_row(db, member)
        assert (person.delivery_failures, person.undeliverable_at) == (0, None)

    async def test_delivered_resets_the_count(self, client, db, club) -> None:
        """Two failures, one delivery, two failures: never three in a row, never flagged."""
        member = await new_member(db, club)
        for status in ("undelivered", "undelivered", "delivered", "undelivered", "undelivered"):
            sid = new_sid()
            await sent_message(db, club, member, sid)
            await callback(client, sid, status, None if status == "delivered" else "30003")
        person = await member_row(db, member)
        assert person.delivery_failures == 2
        assert person.undeliverable_at is None

    @pytest.mark.parametrize("code", ["30004", "30005", "30006"])
    async def test_a_number_that_cannot_receive_is_flagged_at_once(
        self, client, db, club, code: str
    ) -> None:
        """Blocked, unknown or a landline: flagged on the first."""
        member = await new_member(db, club)
        sid = new_sid()
        await sent_message(db, club, member, sid)

        await callback(client, sid, "undelivered", code)

        person = await member_row(db, member)
        assert person.delivery_failures == 1
        assert person.undeliverable_at is not None

    async def test_an_opt_out_at_the_carrier_withdraws_consent_and_flags_nothing(
        self, client, db, club
    ) -> None:
        """21610 in a callback (the member texted STOP to the club's number and the carrier
        took it): their marketing consent is withdrawn in the log, with the carrier's word as
        evidence, once however often it is reported; the number is not flagged and it counts
        as no failure of the number."""
        member = await new_member(db, club)
        sids = [new_sid(), new_sid()]
        for sid in sids:
            await sent_message(db, club, member, sid)
            await callback(client, sid, "undelivered", "21610")
        person = await member_row(db, member)
        assert person.status == members.STOPPED
        assert (person.delivery_failures, person.undeliverable_at) == (0, None)
        events = await db.run(lambda s: consent.history(s, member))
        withdrawn = [e for e in events if e.action == consent.WITHDRAW]
        assert len(withdrawn) == 1
        assert withdrawn[0].channel == "sms"
        assert "21610" in withdrawn[0].evidence

    async def test_flag_marks_the_member_once(self, db, club) -> None:
        """The sender flags a number the gateway refused (OptedOut, InvalidNumber): set once,
        the first time kept."""
        member = await new_member(db, club)
        later = T0 + dt.timedelta(days=1)
        assert await db.run(lambda s: delivery.flag(s, member, T0, "OptedOut: 21610")) is True
        assert await db.run(lambda s: delivery.flag(s, member, later, "again")) is False
        assert (await member_row(db, member)).undeliverable_at == T0


class TestRefused:
    async def test_a_wrong_signature_is_403_and_changes_nothing(self, client, db, club) -> None:
        """Signed with another token, for another URL, or not at all: 403, nothing kept."""
        member = await new_member(db, club)
        sid = new_sid()
        row_id = await sent_message(db, club, member, sid)
        form = status_form(sid, "undelivered", "21610")
        for signature in ("", "bm90IGEgc2lnbmF0dXJl", sign(PUBLIC_URL + "/sms/twilio", form)):
            response = await post_status(client, form, signature=signature)
            assert response.status == 403
            assert "X-Twilio-Signature" in await error_of(response)
        assert await receipts(db) == 0
        assert (await outbox_row(db, row_id)).delivery is None
        person = await member_row(db, member)
        assert (person.delivery_failures, person.undeliverable_at) == (0, None)

    async def test_a_tampered_form_is_403(self, client, db, club) -> None:
        """A form changed after signing (undelivered turned into delivered) is refused."""
        sid = new_sid()
        form = status_form(sid, "undelivered", "30003")
        signature = sign_status(form)
        form["MessageStatus"] = "delivered"
        response = await post_status(client, form, signature=signature)
        assert response.status == 403

    @pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus", "From"])
    async def test_a_missing_field_is_400_naming_it(self, client, club, missing: str) -> None:
        form = status_form(new_sid(), "delivered")
        del form[missing]
        response = await post_status(client, form)
        assert response.status == 400
        assert missing in await error_of(response)

    async def test_not_a_form_is_415(self, client, club) -> None:
        response = await client.post(STATUS, json=status_form(new_sid(), "delivered"))
        assert response.status == 415
        assert "application/x-www-form-urlencoded" in await error_of(response)

    async def test_an_unknown_from_is_404_naming_the_number(self, client, db, club) -> None:
        """A callback for a number no club sends from: 404, nothing kept."""
        response = await post_status(
            client, status_form(new_sid(), "delivered", from_="+4722000000")
        )
        assert response.status == 404
        assert "+4722000000" in await error_of(response)
        assert await receipts(db) == 0

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("MessageStatus", "d" * 41),
            ("MessageStatus", "de livered"),
            ("ErrorCode", "30003; DROP"),
            ("ErrorCode", "12345678901"),
            ("From", "not a number"),
            ("MessageSid", "SM" + "0" * 70),
            # A NUL, which PostgreSQL refuses in text, was a 500 there; a control character.
            ("MessageSid", "SM1\x00"),
            ("MessageSid", "SM\x07x"),
        ],
    )
    async def test_a_value_that_cannot_be_one_is_400_naming_the_field(
        self, client, db, club, field: str, value: str
    ) -> None:
        form = status_form(new_sid(), "delivered")
        form[field] = value
        response = await post_status(client, form)
        assert response.status == 400
        assert field in await error_of(response)
        assert await receipts(db) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestThroughTheFake:
    async def test_the_fakes_signed_callbacks_reach_the_rows(
        self, settings: Settings, db: Database, club: int, aiohttp_client: Any
    ) -> None:
        """Send through the Twilio gateway to the fake with callbacks on: its signed
        callbacks arrive at Klubb's status route and every row ends delivered, or
        undelivered with its code (a number scripted as unknown is flagged at once)."""
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        app = create_app(settings.with_(public_url=public))
        await aiohttp_client(TestServer(app, host="127.0.0.1", port=port))
        people = {f"+4791{i:06d}": await new_member(db, club, f"+4791{i:06d}") for i in range(6)}
        unknown = "+4791000005"
        async with FakeTwilio(auth_token=AUTH_TOKEN, callbacks=True) as fake:
            fake.undeliver(unknown, "30005")
            gateway = fake.gateway(status_callback=public + STATUS)
            try:
                rows = {
                    phone: await sent_message(db, club, member_id, None)
                    for phone, member_id in people.items()
                }
                sids = await asyncio.gather(
                    *(
                        gateway.send(OutboundSms(phone, CLUB_NUMBER, "Hei!", str(rows[phone])))
                        for phone in people
                    )
                )
                # Some callbacks land before the ids are written, some after.
                await give_provider_ids(db, dict(zip(rows.values(), sids, strict=True)))
                async with asyncio.timeout(10):
                    await fake.callbacks_settled()
            finally:
                await gateway.close()
        assert fake.counters.callback_failures == 0
        assert fake.counters.callbacks_sent == 12
        outcome = {phone: (await outbox_row(db, row_id)).delivery for phone, row_id in rows.items()}
        assert outcome == {
            phone: "undelivered" if phone == unknown else "delivered" for phone in people
        }
        assert (await outbox_row(db, rows[unknown])).delivery_error == "30005"
        assert (await member_row(db, people[unknown])).undeliverable_at is not None
