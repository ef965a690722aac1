"""`GET /healthz` (the process is alive) and `GET /readyz` (it can do its work), for a load
balancer or an orchestrator: no auth, nothing personal, never cached (bot.security)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from sqlalchemy.orm import Session

from bot.keys import DB, SETTINGS
from store import migrate
from store.outage import Outage

log = logging.getLogger(__name__)

# The scheduler this process runs, set by bot.app while it runs (absent when it is off).
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
# What the last /readyz found not ready: a change is logged once, not every probe.
_LAST_NOT_READY = web.AppKey("readiness_last_not_ready", list[str])
# The database as the probes found it: an outage said once, as the scheduler's jobs say it.
_DATABASE = web.AppKey("readiness_database", Outage)
# A probe answers within this even when the database hangs (a probe times out at ~1-10 s).
READY_SECONDS = 3.0


def add_health(app: web.Application) -> None:
    """The two routes, on the main application."""
    app[_LAST_NOT_READY] = []
    app[_DATABASE] = Outage(log, "readiness")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def healthz(request: web.Request) -> web.Response:
    """Alive: the event loop answers. Nothing else is asked (no database), so a database
    outage never gets a healthy process restarted."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers, its schema is this Klubb's newest, and the scheduler runs
    (or was turned off with KLUBB_SCHEDULER=off). 503 naming each check that is not."""
    app = request.app
    database, migrations = await _database_and_schema(app)
    scheduler = _scheduler(app)
    checks = {"database": database, "migrations": migrations, "scheduler": scheduler}
    # Migrations "not checked" (the database did not answer) are the database's failure.
    good = {
        "database": {"ok"},
        "migrations": {"current", "not checked"},
        "scheduler": {"running", "off"},
    }
    not_ready = [name for name, value in checks.items() if value not in good[name]]
    if not_ready != app[_LAST_NOT_READY]:
        if not_ready:
            log.warning("not ready: %s", ", ".join(f"{n} {checks[n]}" for n in not_ready))
        else:
            log.info("ready again")
        app[_LAST_NOT_READY][:] = not_ready
    if not_ready:
        return web.json_response(
            {"status": "not ready", "not_ready": not_ready, **checks}, status=503
        )
    return web.json_response({"status": "ready", **checks})


async def _database_and_schema(app: web.Application) -> tuple[str, str]:
    """("ok", the schema's status) in one read; ("unreachable", "not checked") when the
    database does not answer in READY_SECONDS."""

    def read(session: Session) -> migrate.SchemaState:
        return migrate.state_on(session.connection())

    try:
        async with asyncio.timeout(READY_SECONDS):
            found = await app[DB].read(read)
    except Exception as exc:
        # Said in the log only: the answer is public, and an error can name a host or a file.
        slow = isinstance(exc, TimeoutError)
        app[_DATABASE].failed(exc, f"no answer in {READY_SECONDS:g} s" if slow else None)
        return "unreachable", "not checked"
    app[_DATABASE].answered()
    return "ok", found.status


def _scheduler(app: web.Application) -> str:
    """off (KLUBB_SCHEDULER=off: `klubb worker` processes do the jobs), running, or not
    running (expected, but stopped, paused or never started)."""
    if not app[SETTINGS].run_scheduler:
        return "off"
    scheduler: Any = app.get(SCHEDULER)
    if scheduler is not None and scheduler.state == STATE_RUNNING:
        return "running"
    return "not running"
