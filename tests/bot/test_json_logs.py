"""KLUBB_LOG_FORMAT=json: one JSON object a line, each carrying the request id of the webhook or
API call it belongs to (the turn's lines in flows and the store too), the response saying it;
no full phone number and no text's body in a line at INFO or above."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.logs import JsonFormatter, RequestIdFilter
from bot.settings import Settings, SettingsError
from store.database import Database
from tests.api.conftest import Till, create_key
from tests.bot.test_not_understood import join_fully
from tests.conftest import PUBLIC_URL, Phone, sign, twilio_form

NUMBER = "+4791234567"
TILL_NUMBER = "+4798765432"
BODY = "kan jeg ta med hunden min Fido?"


class Lines(logging.Handler):
    """What a JSON log handler on the root logger writes, one parsed line each."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter())
        self.written: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.written.append(self.format(record))

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.written]

    def of(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["request_id"] == request_id]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    caplog.set_level(logging.DEBUG)
    handler = Lines()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


async def text(client: TestClient, body: str, **headers: str) -> Any:
    form = twilio_form(NUMBER, body)
    signature = sign(PUBLIC_URL + "/sms/twilio", form)
    response = await client.post(
        "/sms/twilio", data=form, headers={"X-Twilio-Signature": signature, **headers}
    )
    assert response.status == 200
    return response


async def test_one_turn_one_request_id(client: TestClient, club: int, logged: Lines) -> None:
    """The caller's X-Request-Id is kept, answered in the response, and on every line of the
    turn: the flow's reading of the text (on SQLite in the writer thread), the access line."""
    response = await text(client, "HJELP", **{"X-Request-Id": "proxy-req-0001"})
    assert response.headers["X-Request-Id"] == "proxy-req-0001"
    lines = logged.of("proxy-req-0001")
    loggers = {line["logger"] for line in lines}
    assert {"flows.conversation", "aiohttp.access"} <= loggers, logged.lines
    for line in lines:
        assert set(line) >= {"time", "level", "logger", "message", "request_id"}
        assert line["time"].endswith("+00:00")
    # Nothing logged for this request carries another id.
    assert all(line["request_id"] in (None, "proxy-req-0001") for line in logged.lines)


async def test_each_request_gets_its_own_id(client: TestClient, club: int, logged: Lines) -> None:
    """Without an X-Request-Id, or with one that is not an id, Klubb makes one (32 hex); two
    requests never share one; an API call has one too."""
    first = (await text(client, "HJELP")).headers["X-Request-Id"]
    second = (await text(client, "HJELP", **{"X-Request-Id": 'bad id "quoted"'})).headers[
        "X-Request-Id"
    ]
    assert len(first) == len(second) == 32
    assert first != second
    int(first, 16)
    api = await client.get("/api/v1/members?phone=1")
    assert len(api.headers["X-Request-Id"]) == 32
    assert logged.of(first)
    assert logged.of(second)


async def test_no_number_or_text_at_info(
    client: TestClient, club: int, db: Database, logged: Lines
) -> None:
    """A member joining and asking the shop, a till enrolling and looking a number up, a
    warning quoting a number: no line at INFO or above has a full number or the text."""
    phone = Phone(client, NUMBER)
    await join_fully(phone)
    assert await phone.text(BODY)
    till = Till(client, await create_key(db, club))
    assert (await till.enrol(TILL_NUMBER)).status == 201
    assert (await till.get("/members?phone=%2B4798765432")).status == 200
    logging.getLogger("store.outreach.delivery").warning(
        "member 7 flagged undeliverable: The 'To' number %s is not valid", NUMBER
    )
    loud = [line for line in logged.lines if line["level"] not in ("DEBUG",)]
    assert loud, "something is logged at INFO or above"
    for line in loud:
        written = json.dumps(line)
        for secret in ("91234567", "98765432", "hunden", "Fido"):
            assert secret not in written, line
    assert any("+47*****567" in line["message"] for line in loud)


def test_a_line_keeps_extra_fields_and_the_exception() -> None:
    record = logging.LogRecord("klubb.test", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
    try:
        raise ValueError("to +4791234567")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.outbox_id = 42
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed x"
    assert line["level"] == "ERROR"
    assert line["outbox_id"] == 42
    assert "ValueError: to +47*****567" in line["exception"]
    assert line["request_id"] is None


@pytest.mark.parametrize("form", ["json", "text"])
def test_klubb_log_format(form: str) -> None:
    """A process configured by bot.logs writes one JSON object a line (or the text line), with
    the number masked."""
    program = (
        f"import logging; from bot.logs import configure; configure('INFO', {form!r}); "
        "logging.getLogger('klubb.test').info('texted %s', '+4791234567')"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    (line,) = done.stderr.splitlines()
    if form == "json":
        parsed = json.loads(line)
        assert parsed["message"] == "texted +47*****567"
        assert parsed["logger"] == "klubb.test"
    else:
        assert line.endswith("INFO klubb.test: texted +47*****567")


def test_a_bad_log_format_is_named() -> None:
    with pytest.raises(SettingsError, match="KLUBB_LOG_FORMAT must be one of text, json"):
        Settings.from_env({"KLUBB_LOG_FORMAT": "xml"})
    assert Settings.from_env({"KLUBB_LOG_FORMAT": "JSON"}).log_format == "json"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/m/" + "a" * 9000, {}),  # a URL over 8 KiB (a page token's path: cut in the line)
        ("/healthz", {"X-Padding": "a" * 9000}),  # a header over 8 KiB
    ],
)
async def test_a_request_aiohttp_cant_parse_is_one_warning_line_not_a_traceback(
    client: TestClient, logged: Lines, path: str, headers: dict[str, str]
) -> None:
    """aiohttp answers 400 before any code of ours runs, and logged it at ERROR with a
    traceback: now one WARNING naming the client and what was too long."""
    response = await client.get(path, headers=headers)
    assert response.status == 400
    assert [line["level"] for line in logged.lines if line["level"] in ("ERROR", "CRITICAL")] == []
    (line,) = [line for line in logged.lines if line["logger"] == "aiohttp.server"]
    assert line["level"] == "WARNING"
    assert line["message"].startswith("bad request from 127.0.0.1 (400): ")
    assert "Got more than 8190 bytes" in line["message"]
    assert "exception" not in line
    assert "/m/aaaaaa" not in line["message"]


async def test_an_exception_of_a_handler_is_still_an_error_with_its_traceback(
    settings: Settings, aiohttp_client: Any, logged: Lines
) -> None:
    """Only what aiohttp could not parse is quieted: a bug of ours stays an ERROR."""

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = create_app(settings)
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    assert (await client.get("/broken")).status == 500
    (line,) = [line for line in logged.lines if line["logger"] == "aiohttp.server"]
    assert line["level"] == "ERROR"
    assert "RuntimeError: a bug" in line["exception"]
