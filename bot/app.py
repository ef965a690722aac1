"""The application factory: `create_app(settings)` builds Klubb's aiohttp app."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from twilio.request_validator import RequestValidator

from bot import logs, webhooks
from bot.admin import add_admin
from bot.api.auth import KeyCache
from bot.api.routes import add_api
from bot.gateways.console import ConsoleGateway
from bot.gateways.twilio import TwilioGateway
from bot.health import SCHEDULER, add_health
from bot.keys import API_KEYS, CLUBS, DB, GATEWAY, INBOX_COUNTS, SETTINGS, VALIDATOR
from bot.metrics import add_metrics
from bot.page import add_member_page
from bot.security import security_headers
from bot.settings import Settings, SettingsError
from scheduler.gateway import Gateway
from scheduler.jobs import running_scheduler
from store.clubs.directory import ClubDirectory
from store.database import open_database
from store.outreach.inbox import UnansweredCounts

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Twilio's webhooks are a few hundred bytes; anything far larger is not one.
MAX_REQUEST = 64 * 1024


def create_app(settings: Settings) -> web.Application:
    # The request id first, so the log lines of everything after it carry it (bot.logs).
    app = web.Application(client_max_size=MAX_REQUEST, middlewares=[logs.request_ids, json_errors])
    logs.quiet_bad_requests()
    # Every response, the admin's and its sub-application's included, as it is sent.
    app.on_response_prepare.append(security_headers(settings.public_url))
    app.on_response_prepare.append(logs.request_id_header)
    app[SETTINGS] = settings
    app[VALIDATOR] = RequestValidator(settings.twilio_auth_token)
    app[CLUBS] = ClubDirectory()
    app[API_KEYS] = KeyCache()
    app[INBOX_COUNTS] = UnansweredCounts()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_gateway)
    if settings.run_scheduler:
        app.cleanup_ctx.append(_scheduler)
    app.add_routes(webhooks.routes)
    add_api(app)
    add_admin(app, settings)
    add_member_page(app, settings)
    add_health(app)
    add_metrics(app)
    return app


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 4xx (405, 413, 404 for an unknown path) as JSON naming what was wrong,
    like every error Klubb writes itself; never a 500 page for bad input."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": _what_was_wrong(exc)},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )


def _what_was_wrong(exc: web.HTTPException) -> str:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"{exc.method} is not allowed here; use {allowed}"
    if exc.text and exc.text != f"{exc.status}: {exc.reason}":
        return exc.text
    return exc.reason


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = open_database(app[SETTINGS].database_url)
    app[DB] = db
    yield
    await db.close()


def _gateway_for(settings: Settings) -> Gateway:
    """The gateway the settings choose: the console unless KLUBB_GATEWAY is twilio. Private:
    a Twilio gateway holds an HTTP session, so it is had only through `opened_gateway`,
    which closes it."""
    if settings.gateway != "twilio":
        return ConsoleGateway(settings.console_outbox)
    if not settings.twilio_account_sid:
        raise SettingsError("TWILIO_ACCOUNT_SID must be set when KLUBB_GATEWAY is twilio")
    return TwilioGateway(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        api_url=settings.twilio_api_url,
        status_callback=settings.status_callback_url,
    )


@contextlib.asynccontextmanager
async def opened_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """The settings' gateway, closed on the way out: the one way `klubb serve` and
    `klubb worker` close theirs."""
    gateway = _gateway_for(settings)
    try:
        yield gateway
    finally:
        await gateway.close()


async def _gateway(app: web.Application) -> AsyncIterator[None]:
    # Cleanup runs in reverse: the scheduler has stopped before this closes the gateway, so
    # no send is left in flight.
    async with opened_gateway(app[SETTINGS]) as gateway:
        app[GATEWAY] = gateway
        yield


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with running_scheduler(
        app[DB],
        app[GATEWAY],
        send_rate=settings.send_rate,
        in_doubt_after=dt.timedelta(seconds=settings.in_doubt_after),
        link_base=settings.public_url,
    ) as scheduler:
        # For /readyz (bot.health): whether it is still running.
        app[SCHEDULER] = scheduler
        yield
