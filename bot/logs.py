"""Klubb's log lines: plain text or one JSON object a line (KLUBB_LOG_FORMAT), each carrying the
request id of the webhook or API call it belongs to, with phone numbers masked."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from store.reports import mask

# The request being answered, set per request by `request_ids`. A context variable, so every
# line logged while the request is answered carries it: in the handler, in flows and the store
# during the turn (store.database runs a unit in its caller's context, on SQLite's writer thread
# too), and aiohttp's access line.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "klubb_request_id", default=None
)
HEADER = "X-Request-Id"
# An incoming X-Request-Id (a proxy's, a till's) is kept if it looks like an id: anything else
# (long, spaces, quotes) could forge or flood a log line, and gets one of ours instead.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# An E.164 number (+ and 7 to 15 digits) anywhere in a line: a gateway's error text can quote
# one ("The 'To' number +4791234567 is not valid"). Masked like the admin masks them.
_PHONE = re.compile(r"(?:\+|%2[Bb])[1-9][0-9]{6,14}\b")
# The API's GET /members?phone=...: in aiohttp's access line, however the number is written.
_PHONE_PARAM = re.compile(r"([?&]phone=)([^&\s\"]+)")
# The member page's and a campaign link's token open a member's data or count a tap: aiohttp's
# access line would hold them in full.
_TOKEN_PATH = re.compile(r"(/[mc]/)[A-Za-z0-9_-]{6,}")
# LogRecord's own attributes: anything else on a record came as `extra=` and goes in the JSON.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def configure(level: str, form: str = "text") -> None:
    """The root logger's one handler on stderr, as KLUBB_LOG_LEVEL and KLUBB_LOG_FORMAT say.
    Like logging.basicConfig, nothing changes if the root logger has a handler already (a test
    run's capture)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if form == "json" else MaskingFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class BadRequestFilter(logging.Filter):
    """aiohttp.server logs a request it could not parse (a URL or a header line over 8 KiB, a
    byte no header may hold) at ERROR with a traceback, though it answers 400 and no code of
    ours ran: here it is one WARNING line naming the client and what was wrong. Any other
    record (a handler's own exception among them) passes as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "bad request from %s (%d): %r"
            record.args = (peer, exc.code, exc.message[:200])
            record.exc_info, record.exc_text = None, None
        return True


_BAD_REQUESTS = BadRequestFilter()


def quiet_bad_requests() -> None:
    """BadRequestFilter on aiohttp's server logger, once however often it is called: by each
    application that serves (`klubb serve`'s, the worker's metrics)."""
    logging.getLogger("aiohttp.server").addFilter(_BAD_REQUESTS)


class MaskingFormatter(logging.Formatter):
    """The plain-text format, phone numbers and page tokens masked."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, request_id, the
    record's `extra=` fields, and the exception's traceback if any; phone numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, int | float | bool) else scrub(str(value))
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = scrub(record.exc_text)
        if record.stack_info:
            line["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def scrub(text: str) -> str:
    """`text` with every E.164 number masked and page and link tokens cut."""
    if "phone=" in text:
        text = _PHONE_PARAM.sub(lambda found: found.group(1) + _masked(found.group(2)), text)
    if "+" in text or "%2" in text:
        text = _PHONE.sub(lambda found: _masked(found.group()), text)
    if "/m/" in text or "/c/" in text:
        text = _TOKEN_PATH.sub(r"\1…", text)
    return text


def _masked(number: str) -> str:
    return mask(number) or ""


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's id in REQUEST_ID while it is answered: the caller's X-Request-Id if sane,
    else a new one. aiohttp answers each request in a task of its own, so the id ends with it."""
    given = request.headers.get(HEADER, "")
    REQUEST_ID.set(given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex)
    return await handler(request)


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """The on_response_prepare hook: every answer says its request id (errors raised, streamed
    answers and files too), so a caller can quote it and the log be searched for it."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        response.headers.setdefault(HEADER, request_id)
