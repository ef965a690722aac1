"""GET /metrics: scraped through the app and read with prometheus-client's own parser; the
counters a text, an API call and a drain move, with their labels; who may scrape."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.app import create_app
from bot.metrics import serving_metrics
from bot.settings import Settings, SettingsError
from scheduler import jobs, sender
from scheduler.gateway import OptedOut
from scheduler.leader import Leadership
from store.database import Database, PostgresDatabase
from tests.api.conftest import Till, create_key
from tests.bot.test_not_understood import join_fully
from tests.bot.test_sender import enqueue
from tests.conftest import PUBLIC_URL, Phone, now, raw_request, sign, twilio_form
from tests.scheduler.campaign_helpers import RecordingGateway

TOKEN = "s3cret-metrics-token-0123456789"
NUMBER = "+4791234567"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: TestClient, **headers: str) -> Samples:
    """Every sample of a scrape, by name and labels, as Prometheus's parser reads it."""
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    return read(await response.text())


def read(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(autouse=True)
def outbox_read_each_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox is read at every scrape here, not once per 10 s."""
    monkeypatch.setattr(metrics, "OUTBOX_EVERY", 0.0)


async def test_a_text_an_api_call_and_a_drain_are_counted(
    client: TestClient, club: int, db: Database
) -> None:
    """Turns by intent and outcome with their latency and the text not understood; API calls
    by operation and status; the outbox's depth before a drain and after; the gateway's
    answers by result and error code; the SQLite writer's groups. Nothing personal in it."""
    before = await scrape(client)
    phone = Phone(client, NUMBER)
    assert await phone.text("HJELP")
    await join_fully(phone)
    assert await phone.text("kan jeg ta med hunden?")

    till = Till(client, await create_key(db, club))
    assert (await till.enrol("+4791234999")).status == 201
    assert (await till.get("/members?phone=%2B4798765432")).status == 404
    a_minute_ago = now() - dt.timedelta(minutes=1)
    await enqueue(db, club, "+4790000001", "hei", now=a_minute_ago, send_after=a_minute_ago)
    await enqueue(db, club, "+4790000002", "hei", now=now())
    queued = await scrape(client)
    gateway = RecordingGateway({"+4790000002": OptedOut("unsubscribed recipient", code="21610")})
    sent = await sender.drain(db, gateway)
    after = await scrape(client)

    assert moved(before, after, "klubb_turns_total", intent="help", outcome="replied") == 1
    assert moved(before, after, "klubb_turns_total", intent="join", outcome="replied") == 1
    assert moved(before, after, "klubb_texts_not_understood_total") == 1
    assert moved(before, after, "klubb_turn_seconds_count") == 7
    assert value(after, "klubb_turn_seconds_bucket", le="+Inf") >= 7

    assert moved(before, after, "klubb_api_requests_total", operation="enrolMember", status="201")
    assert moved(before, after, "klubb_api_requests_total", operation="findMember", status="404")
    assert moved(before, after, "klubb_api_request_seconds_count", operation="enrolMember") == 1

    # The enrolment queues its confirmation now and its first question 5 s later.
    waiting = value(queued, "klubb_outbox_messages", status="queued")
    assert waiting == 4
    assert value(queued, "klubb_outbox_due_messages") == sent + 1 == 3
    assert value(queued, "klubb_outbox_messages", status="sending") == 0
    assert 60 <= value(queued, "klubb_outbox_oldest_due_seconds") < 120
    assert value(after, "klubb_outbox_messages", status="queued") == waiting - 3
    assert value(after, "klubb_outbox_due_messages") == 0
    assert value(after, "klubb_outbox_oldest_due_seconds") == 0

    assert moved(before, after, "klubb_sends_total", result="sent", error_code="") == sent
    assert moved(before, after, "klubb_sends_total", result="opted_out", error_code="21610") == 1

    if db.dialect == "sqlite":
        assert moved(before, after, "klubb_sqlite_writer_group_size_count") >= 7
        assert value(after, "klubb_sqlite_writer_queue_depth") == 0
    elif isinstance(db, PostgresDatabase):
        # The texts and the delivery receipts went to the writers of turns.
        assert moved(before, after, "klubb_pg_turns_group_size_count") >= 7
        assert value(after, "klubb_pg_turns_queue_depth") == 0
    assert value(after, "process_start_time_seconds") > 0

    body = await (await client.get("/metrics")).text()
    for personal in ("91234567", "91234999", "98765432", "90000002", "hunden", "Kari"):
        assert personal not in body


async def test_a_text_refused_or_for_no_club_is_counted_with_its_outcome(
    client: TestClient, club: int
) -> None:
    """A wrong signature is refused before any turn; a To number no club answers on is its
    own outcome."""
    before = await scrape(client)
    unsigned = await client.post("/sms/twilio", data={"From": NUMBER, "To": "2020"})
    assert unsigned.status == 403
    form = twilio_form(NUMBER, "HJELP", to="9999")
    signature = sign(PUBLIC_URL + "/sms/twilio", form)
    nobody = await client.post("/sms/twilio", data=form, headers={"X-Twilio-Signature": signature})
    assert nobody.status == 404
    after = await scrape(client)
    assert moved(before, after, "klubb_turns_total", intent="none", outcome="refused") == 1
    assert moved(before, after, "klubb_turns_total", intent="none", outcome="unknown_club") == 1


async def test_the_leader_and_the_jobs_are_counted(db: Database) -> None:
    """1 while this process leads, 0 once it lets go; a job's runs, failures and time."""
    registry = metrics.REGISTRY
    leadership = Leadership(db.url)
    assert await leadership.try_acquire()
    assert registry.get_sample_value("klubb_scheduler_leader") == 1
    await leadership.release()
    assert registry.get_sample_value("klubb_scheduler_leader") == 0

    def runs() -> tuple[float, float, float]:
        return tuple(  # type: ignore[return-value]
            registry.get_sample_value(sample, {"job": "test-job"}) or 0.0
            for sample in (
                "klubb_scheduler_job_runs_total",
                "klubb_scheduler_job_failures_total",
                "klubb_scheduler_job_seconds_count",
            )
        )

    async def works() -> int:
        return 1

    async def fails() -> int:
        raise RuntimeError("broken")

    start = runs()
    assert await jobs._timed("test-job", works)() == 1
    with pytest.raises(RuntimeError):
        await jobs._timed("test-job", fails)()
    end = runs()
    assert [b - a for a, b in zip(start, end, strict=True)] == [2, 1, 2]


class TestAccess:
    async def test_loopback_scrapes_without_a_token(self, client: TestClient) -> None:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        assert response.headers["Cache-Control"] == "no-store"

    async def test_through_a_proxy_without_a_token_is_refused(self, client: TestClient) -> None:
        """A proxy on the same host makes every client loopback: without a token, a forwarded
        request is refused, saying what to set."""
        response = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert response.status == 403
        assert "KLUBB_METRICS_TOKEN" in (await response.json())["error"]

    @pytest.fixture
    async def guarded(self, settings: Settings, aiohttp_client: Any) -> TestClient:
        return await aiohttp_client(create_app(dataclasses.replace(settings, metrics_token=TOKEN)))

    async def test_the_token_is_wanted_when_set(self, guarded: TestClient) -> None:
        """Without it or wrong: 401 naming what to send; right: the metrics, from anywhere."""
        missing = await guarded.get("/metrics")
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in (await missing.json())["error"]
        wrong = await guarded.get("/metrics", headers={"Authorization": "Bearer " + "x" * 30})
        assert wrong.status == 401
        assert (await wrong.json())["error"] == "wrong metrics token"
        right = await scrape(
            guarded, Authorization=f"Bearer {TOKEN}", **{"X-Forwarded-For": "203.0.113.9"}
        )
        assert ("klubb_texts_not_understood_total", frozenset()) in right

    @pytest.mark.parametrize(
        "token", [b"\xe9", b"\xc3\xa9" * 20, b"\xff\xfe", b"s3cret-metrics-token-012345678\xe9"]
    )
    async def test_a_token_of_bytes_that_are_not_ascii_is_a_wrong_token(
        self, guarded: TestClient, token: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Bytes that are not UTF-8 (one Latin-1 é) or not ASCII in the header: 401 like any
        wrong token, nothing logged as an error (was a 500 and a traceback)."""
        answer = await raw_request(
            guarded.host, guarded.port, "GET", b"/metrics", {"Authorization": b"Bearer " + token}
        )
        assert answer.status == 401
        assert answer.json() == {"error": "wrong metrics token"}
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

    @pytest.mark.parametrize(
        ("value", "error"),
        [
            ("short", "at least 16 characters"),
            ("has spaces in the middle of it", "without spaces"),
        ],
    )
    def test_a_bad_token_is_named(self, value: str, error: str) -> None:
        with pytest.raises(SettingsError, match="KLUBB_METRICS_TOKEN") as raised:
            Settings.from_env({"KLUBB_METRICS_TOKEN": value})
        assert error in str(raised.value)
        assert TOKEN not in repr(Settings.from_env({"KLUBB_METRICS_TOKEN": TOKEN}))


async def test_a_worker_serves_metrics_on_its_own_port(
    settings: Settings, db: Database, unused_tcp_port: int
) -> None:
    """`klubb worker` has no web server: with KLUBB_METRICS_PORT it serves /metrics alone
    there (its leadership among them), token and all; without, it listens nowhere."""
    port = unused_tcp_port
    worker = dataclasses.replace(settings, metrics_port=port, metrics_token=TOKEN)
    leadership = Leadership(db.url)
    assert await leadership.try_acquire()
    try:
        async with serving_metrics(worker, db), aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/metrics"
            async with http.get(url) as refused:
                assert refused.status == 401
            latin1 = {"Authorization": b"Bearer \xe9"}
            not_ascii = await raw_request("127.0.0.1", port, "GET", b"/metrics", latin1)
            assert not_ascii.status == 401
            assert not_ascii.json() == {"error": "wrong metrics token"}
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(url, headers=headers) as response:
                assert response.status == 200
                samples = read(await response.text())
            assert value(samples, "klubb_scheduler_leader") == 1
            assert ("klubb_outbox_messages", frozenset({("status", "queued")})) in samples
            async with http.get(f"http://127.0.0.1:{port}/healthz") as other:
                assert other.status == 404
    finally:
        await leadership.release()
    async with serving_metrics(settings, db), aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/metrics")


def test_klubb_metrics_port_is_read() -> None:
    assert Settings.from_env({"KLUBB_METRICS_PORT": "9464"}).metrics_port == 9464
    assert Settings.from_env({}).metrics_port is None
    with pytest.raises(SettingsError, match="KLUBB_METRICS_PORT must be between 1 and 65535"):
        Settings.from_env({"KLUBB_METRICS_PORT": "70000"})
