"""The application factory: `create_app(settings)` builds Klubb's aiohttp app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from bot import webhooks
from bot.gateways.console import ConsoleGateway
from bot.keys import DB, GATEWAY, SETTINGS, VALIDATOR
from bot.settings import Settings
from scheduler.jobs import running_scheduler
from store.database import open_database

log = logging.getLogger(__name__)

# Twilio's webhooks are a few hundred bytes; anything far larger is not one.
MAX_REQUEST = 64 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST)
    app[SETTINGS] = settings
    app[VALIDATOR] = RequestValidator(settings.twilio_auth_token)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_gateway)
    if settings.run_scheduler:
        app.cleanup_ctx.append(_scheduler)
    app.add_routes(webhooks.routes)
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(request: web.Request) -> web.Response:
    """Alive, and the database answers."""
    try:
        await request.app[DB].run(lambda session: session.execute(text("SELECT 1")).scalar())
    except Exception:
        log.exception("health check: database did not answer")
        return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = open_database(app[SETTINGS].database_url)
    app[DB] = db
    yield
    await db.close()


async def _gateway(app: web.Application) -> AsyncIterator[None]:
    app[GATEWAY] = ConsoleGateway(app[SETTINGS].console_outbox)
    yield


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    async with running_scheduler(app[DB], app[GATEWAY]):
        yield
