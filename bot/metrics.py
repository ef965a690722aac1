"""`GET /metrics` in Prometheus's text format, and the web edge's own metrics: turns and API calls.

The registry is the process's (store.metrics); the scheduler and the store count into it too.
Counting is a counter's inc and a histogram's observe (about a microsecond each): nothing is
read from the database per request. The outbox's depth is read when scraped, at most once per
OUTBOX_EVERY seconds. Access: with KLUBB_METRICS_TOKEN set, a bearer token (401 without it);
unset, loopback only (403 from elsewhere, or through a proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from bot import logs
from bot.api.auth import bearer_secret
from bot.keys import DB, SETTINGS
from bot.security import same_secret, security_headers
from bot.settings import Settings
from flows.conversation import TurnResult
from store.clock import utc_now
from store.database import Database
from store.metrics import REGISTRY, outbox_depth

log = logging.getLogger(__name__)

PATH = "/metrics"
# A scrape every 15 s reads the outbox at most every 10 s; a read waits this long at most.
OUTBOX_EVERY = 10.0
OUTBOX_SECONDS = 3.0
REALM = 'Bearer realm="klubb-metrics"'
# A proxy in front says who it forwards for: through one, "loopback" would be anyone.
_FORWARDED = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

TURNS = Counter(
    "klubb_turns",
    "Inbound texts answered by the webhook, by what they were read as (intent; none: nothing "
    "or not a turn) and the outcome: replied, silent, replayed, unknown_club, refused (a bad "
    "request, a wrong signature) or failed",
    ["intent", "outcome"],
    registry=REGISTRY,
)
TURN_SECONDS = Histogram(
    "klubb_turn_seconds",
    "Time from a text's webhook call arriving to its TwiML answer",
    buckets=_LATENCY,
    registry=REGISTRY,
)
NOT_UNDERSTOOD = Counter(
    "klubb_texts_not_understood",
    "Texts Klubb could not tell the meaning of (they reach the inbox)",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "klubb_api_requests",
    "Calls of the REST API (/api/v1), by operation (its operationId) and HTTP status",
    ["operation", "status"],
    registry=REGISTRY,
)
API_SECONDS = Histogram(
    "klubb_api_request_seconds",
    "Time to answer a call of the REST API, by operation",
    ["operation"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
OUTBOX = Gauge(
    "klubb_outbox_messages",
    "Outbox rows still to go, by status (queued, sending), read when scraped",
    ["status"],
    registry=REGISTRY,
)
OUTBOX_DUE = Gauge(
    "klubb_outbox_due_messages",
    "Queued outbox rows whose time to send has come",
    registry=REGISTRY,
)
OUTBOX_OLDEST_DUE = Gauge(
    "klubb_outbox_oldest_due_seconds",
    "How long the oldest due queued row has waited past its time (0: none waiting)",
    registry=REGISTRY,
)
# The process's CPU, memory, open files and start time (process_*), as every exporter has.
ProcessCollector(registry=REGISTRY)


@dataclasses.dataclass
class _Outbox:
    """The last outbox reading and when it was made; one reading at a time."""

    at: float = -OUTBOX_EVERY
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


_OUTBOX = web.AppKey("metrics_outbox", _Outbox)


def add_metrics(app: web.Application) -> None:
    """The route, on the main application."""
    app[_OUTBOX] = _Outbox()
    app.router.add_get(PATH, metrics)


@contextlib.asynccontextmanager
async def serving_metrics(settings: Settings, db: Database) -> AsyncIterator[None]:
    """GET /metrics alone on KLUBB_HOST:KLUBB_METRICS_PORT while inside, for `klubb worker`
    (no web server otherwise: its sends, jobs and leadership would go unseen). The same
    access rules as `klubb serve`'s. Nothing when KLUBB_METRICS_PORT is not set."""
    if settings.metrics_port is None:
        yield
        return
    app = web.Application(middlewares=[logs.request_ids])
    logs.quiet_bad_requests()
    app.on_response_prepare.append(security_headers(settings.public_url))
    app[SETTINGS] = settings
    app[DB] = db
    add_metrics(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.metrics_port).start()
        yield
    finally:
        await runner.cleanup()


async def metrics(request: web.Request) -> web.Response:
    """Every metric of this process, the outbox's read again if it is due (OUTBOX_EVERY)."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    await _read_outbox(request.app)
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def count_turn(outcome: str, started: float, result: TurnResult | None = None) -> None:
    """One webhook text answered; `started` is its time.perf_counter() on arrival."""
    TURN_SECONDS.observe(time.perf_counter() - started)
    intent = "none"
    if result is not None:
        intent = result.intent or "none"
        if result.not_understood:
            NOT_UNDERSTOOD.inc()
    TURNS.labels(intent, outcome).inc()


def outcome_of(result: TurnResult) -> str:
    if result.replayed:
        return "replayed"
    return "replied" if result.reply else "silent"


def count_api(operation: str, status: int, started: float) -> None:
    """One API call answered; `started` is its time.perf_counter() on arrival."""
    API_SECONDS.labels(operation).observe(time.perf_counter() - started)
    API_REQUESTS.labels(operation, str(status)).inc()


def _refusal(request: web.Request) -> web.Response | None:
    """None when the caller may scrape; else the answer naming why not."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        given = bearer_secret(request.headers.get("Authorization"))
        if given is not None and same_secret(given, token):
            return None
        error = "send the metrics token as Authorization: Bearer <KLUBB_METRICS_TOKEN>"
        if given is not None:
            error = "wrong metrics token"
        return web.json_response({"error": error}, status=401, headers={"WWW-Authenticate": REALM})
    if _loopback(request.remote) and not any(h in request.headers for h in _FORWARDED):
        return None
    return web.json_response(
        {
            "error": "/metrics answers only on loopback (127.0.0.1, ::1) when "
            "KLUBB_METRICS_TOKEN is not set; set it to scrape from elsewhere or through a proxy"
        },
        status=403,
    )


def _loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


async def _read_outbox(app: web.Application) -> None:
    """The outbox gauges, read again if OUTBOX_EVERY has passed; a database that does not
    answer leaves them out of the scrape (absent, not stale) and is logged."""
    cache = app[_OUTBOX]
    async with cache.lock:
        if time.monotonic() - cache.at < OUTBOX_EVERY:
            return
        try:
            async with asyncio.timeout(OUTBOX_SECONDS):
                depth = await app[DB].read(functools.partial(outbox_depth, now=utc_now()))
        except Exception as exc:
            log.warning("metrics: could not read the outbox: %s", type(exc).__name__)
            OUTBOX.clear()
            for gauge in (OUTBOX_DUE, OUTBOX_OLDEST_DUE):
                gauge.set(float("nan"))
            return
        cache.at = time.monotonic()
        for status, count in depth.by_status.items():
            OUTBOX.labels(status).set(count)
        OUTBOX_DUE.set(depth.due)
        OUTBOX_OLDEST_DUE.set(depth.oldest_due_seconds)
