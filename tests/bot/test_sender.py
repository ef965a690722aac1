"""The outbox sender in burst mode, with a fake gateway, and the console gateway's file."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.gateways.console import ConsoleGateway
from scheduler import sender
from scheduler.gateway import (
    GatewayError,
    InvalidNumber,
    OptedOut,
    OutboundSms,
    Throttled,
    Transient,
)
from store import messages
from store.database import Database
from store.models import OutboxMessage
from store.outreach import sending
from tests.scheduler.campaign_helpers import RecordingGateway, at

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
FROM = "2020"


class FakeGateway(RecordingGateway):
    """The campaign tests' recording gateway, with the bodies it got in order."""

    def bodies(self) -> list[str]:
        return sorted(m.body for m in self.sent)


async def enqueue(
    db: Database,
    club: int,
    to: str,
    body: str,
    *,
    now: dt.datetime = T0,
    send_after: dt.datetime | None = None,
) -> int:
    def work(session: Session) -> int:
        row = messages.enqueue(
            session,
            program_id=club,
            member_id=None,
            kind=messages.SYSTEM,
            to_number=to,
            from_number=FROM,
            body=body,
            segments=1,
            now=now,
            send_after=send_after,
        )
        return row.id

    return await db.run(work)


async def outbox(db: Database) -> dict[int, OutboxMessage]:
    def work(session: Session) -> dict[int, OutboxMessage]:
        return {row.id: row for row in session.scalars(select(OutboxMessage))}

    return await db.run(work)


class TestDrain:
    async def test_queued_rows_are_sent_once_and_marked_sent(self, db, club) -> None:
        """Each due row reaches the gateway once, and is marked sent with the provider's id."""
        ids = [await enqueue(db, club, f"+4791{i:06d}", f"hei {i}") for i in range(5)]
        gateway = FakeGateway()

        assert await sender.drain(db, gateway, at(T0)) == 5

        assert gateway.bodies() == [f"hei {i}" for i in range(5)]
        by_reference = {int(m.reference): m for m in gateway.sent}
        assert set(by_reference) == set(ids)
        rows = await outbox(db)
        provider_ids = set()
        for row_id in ids:
            row = rows[row_id]
            sms = by_reference[row_id]
            assert (sms.to, sms.from_, sms.body) == (row.to_number, FROM, row.body)
            assert row.status == sending.SENT
            assert row.provider_id is not None
            assert row.provider_id.startswith("SMfake")
            assert row.sent_at == T0
            assert row.error is None
            provider_ids.add(row.provider_id)
        assert len(provider_ids) == 5

    async def test_draining_twice_sends_nothing_twice(self, db, club) -> None:
        """A second burst finds nothing due and sends nothing (the job is idempotent)."""
        for i in range(3):
            await enqueue(db, club, f"+4791{i:06d}", f"hei {i}")
        gateway = FakeGateway()
        assert await sender.drain(db, gateway, at(T0)) == 3
        assert await sender.drain(db, gateway, at(T0 + dt.timedelta(minutes=5))) == 0
        assert len(gateway.sent) == 3

    async def test_two_senders_at_once_send_each_row_once(self, db, club) -> None:
        """Two bursts running together claim disjoint rows: no SMS goes out twice."""
        for i in range(40):
            await enqueue(db, club, f"+4791{i:06d}", f"hei {i:02d}")
        gateway = FakeGateway()
        counts = await asyncio.gather(
            sender.drain(db, gateway, at(T0), batch=7),
            sender.drain(db, gateway, at(T0), batch=7),
        )
        assert sum(counts) == 40
        assert gateway.bodies() == [f"hei {i:02d}" for i in range(40)]

    async def test_more_rows_than_a_batch_are_all_sent_in_one_burst(self, db, club) -> None:
        """A burst keeps claiming batches until nothing is due."""
        for i in range(7):
            await enqueue(db, club, f"+4791{i:06d}", f"hei {i}")
        gateway = FakeGateway()
        assert await sender.drain(db, gateway, at(T0), batch=3) == 7
        assert len(gateway.sent) == 7
        assert {row.status for row in (await outbox(db)).values()} == {sending.SENT}

    async def test_a_row_due_later_waits_for_its_time(self, db, club) -> None:
        """A row whose send_after is in the future is not sent until the clock reaches it."""
        later = T0 + dt.timedelta(hours=2)
        row_id = await enqueue(db, club, "+4791000001", "i morgen", send_after=later)
        gateway = FakeGateway()

        assert await sender.drain(db, gateway, at(later - dt.timedelta(seconds=1))) == 0
        assert gateway.sent == []
        assert (await outbox(db))[row_id].status == sending.QUEUED

        assert await sender.drain(db, gateway, at(later)) == 1
        assert [m.body for m in gateway.sent] == ["i morgen"]

    async def test_the_clock_may_be_in_any_zone(self, db, club) -> None:
        """Due-ness compares instants: a clock in Oslo's zone means the same moment as in UTC."""
        due = T0 + dt.timedelta(minutes=10)
        await enqueue(db, club, "+4791000001", "snart", send_after=due)
        oslo = ZoneInfo("Europe/Oslo")
        gateway = FakeGateway()
        before = (due - dt.timedelta(minutes=1)).astimezone(oslo)
        assert await sender.drain(db, gateway, at(before)) == 0
        assert await sender.drain(db, gateway, at(due.astimezone(oslo))) == 1

    @pytest.mark.parametrize("error_type", [OptedOut, InvalidNumber])
    async def test_a_permanent_refusal_fails_the_row_for_good(self, db, club, error_type) -> None:
        """Opted out or invalid: the row is failed with the error recorded and never retried."""
        bad = await enqueue(db, club, "+4791000666", "til en som sa stopp")
        good = await enqueue(db, club, "+4791000001", "til en annen")
        gateway = FakeGateway({"+4791000666": error_type("refused by carrier", code="21610")})

        assert await sender.drain(db, gateway, at(T0)) == 1
        rows = await outbox(db)
        assert rows[bad].status == sending.FAILED
        assert rows[bad].error is not None
        assert error_type.__name__ in rows[bad].error
        assert "21610" in rows[bad].error
        assert rows[bad].provider_id is None
        assert rows[bad].sent_at is None
        assert rows[good].status == sending.SENT

        gateway.errors.clear()
        assert await sender.drain(db, gateway, at(T0 + dt.timedelta(days=1))) == 0
        assert [m.body for m in gateway.sent] == ["til en annen"]

    @pytest.mark.parametrize(("error_type", "wait"), [(Throttled, 5), (Transient, 30)])
    async def test_a_passing_refusal_requeues_the_row_for_a_while(
        self, db, club, error_type, wait
    ) -> None:
        """Throttled (5 s) or transient (30 s the first time): back to queued, sent on retry."""
        row_id = await enqueue(db, club, "+4791000001", "prøv igjen")
        gateway = FakeGateway({"+4791000001": error_type("429 Too Many Requests")})

        assert await sender.drain(db, gateway, at(T0)) == 0
        row = (await outbox(db))[row_id]
        assert row.status == sending.QUEUED
        assert row.send_after == T0 + dt.timedelta(seconds=wait)
        assert row.error is not None
        assert "429" in row.error

        gateway.errors.clear()
        assert await sender.drain(db, gateway, at(T0 + dt.timedelta(seconds=wait - 1))) == 0
        assert gateway.sent == []
        assert await sender.drain(db, gateway, at(T0 + dt.timedelta(seconds=wait))) == 1
        row = (await outbox(db))[row_id]
        assert row.status == sending.SENT
        assert row.provider_id == "SMfake000001"
        assert [m.body for m in gateway.sent] == ["prøv igjen"]

    @pytest.mark.parametrize(
        ("retry_after", "wait"),
        [(7.0, 7), (86_400.0, 600), (float("inf"), 5), (float("nan"), 5), (0.0, 5), (-3.0, 5)],
    )
    async def test_a_gateways_retry_after_holds_the_row_within_bounds(
        self, db, club, retry_after, wait
    ) -> None:
        """A throttled row waits the gateway's Retry-After, at most ten minutes (a gateway that
        says a day, or infinity, must not stop the club's messages, nor break the sender);
        one that is no number of seconds ahead is the default 5 s."""
        row_id = await enqueue(db, club, "+4791000001", "vent litt")
        gateway = FakeGateway({"+4791000001": Throttled("429", retry_after=retry_after)})

        assert await sender.drain(db, gateway, at(T0)) == 0
        row = (await outbox(db))[row_id]
        assert row.status == sending.QUEUED
        assert row.send_after == T0 + dt.timedelta(seconds=wait)

    async def test_an_unexpected_error_for_one_row_keeps_the_others_sent(self, db, club) -> None:
        """A gateway bug on one row does not lose the record of the rows it did send."""
        for i in range(3):
            await enqueue(db, club, f"+4791{i:06d}", f"hei {i}")
        gateway = FakeGateway({"+4791000001": RuntimeError("gateway bug")})
        # Whether drain re-raises is not the point; what it records of the others is.
        with contextlib.suppress(RuntimeError):
            await sender.drain(db, gateway, at(T0))
        assert len(gateway.sent) == 2
        sent = {m.to for m in gateway.sent}
        rows = await outbox(db)
        assert {row.to_number for row in rows.values() if row.status == sending.SENT} == sent
        in_doubt = [row.to_number for row in rows.values() if row.status == sending.SENDING]
        assert in_doubt == ["+4791000001"]

    def test_gateway_errors_are_typed(self) -> None:
        """Every error the sender handles derives from GatewayError and carries the code."""
        for error_type in (OptedOut, InvalidNumber, Throttled, Transient):
            error = error_type("no", code="30007")
            assert isinstance(error, GatewayError)
            assert error.code == "30007"


class TestConsoleGateway:
    async def test_each_sms_is_one_json_line_in_the_file(self, tmp_path: Path) -> None:
        """Every send appends one JSON line with to, from and body, and returns its id."""
        path = tmp_path / "sms.jsonl"
        gateway = ConsoleGateway(path)
        first = await gateway.send(OutboundSms("+4791234567", "2020", "Hei Kari! Ærlig talt", "7"))
        second = await gateway.send(OutboundSms("+46701234567", "2020", "Hej då", "8"))

        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 2
        records = [json.loads(line) for line in lines]
        assert [(r["to"], r["from"], r["body"]) for r in records] == [
            ("+4791234567", "2020", "Hei Kari! Ærlig talt"),
            ("+46701234567", "2020", "Hej då"),
        ]
        assert [r["id"] for r in records] == [first, second]
        assert first != second
        assert "Ærlig" in lines[0]  # written as text, not \u escapes

    async def test_concurrent_sends_write_whole_lines(self, tmp_path: Path) -> None:
        """Many sends at once give as many complete lines, none interleaved."""
        path = tmp_path / "sms.jsonl"
        gateway = ConsoleGateway(path)
        await asyncio.gather(
            *(
                gateway.send(OutboundSms(f"+4791{i:06d}", "2020", "x" * 500, str(i)))
                for i in range(50)
            )
        )
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert sorted(r["reference"] for r in records) == sorted(str(i) for i in range(50))

    async def test_drain_through_the_console_gateway_records_its_ids(
        self, db, club, tmp_path: Path
    ) -> None:
        """The sender with the console gateway writes the SMS to the file and keeps its id."""
        path = tmp_path / "sms.jsonl"
        row_id = await enqueue(db, club, "+4791234567", "Velkommen!")
        assert await sender.drain(db, ConsoleGateway(path), at(T0)) == 1
        (record,) = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert (record["to"], record["from"], record["body"]) == ("+4791234567", FROM, "Velkommen!")
        assert record["reference"] == str(row_id)
        assert (await outbox(db))[row_id].provider_id == record["id"]
