"""Mounting the admin: a sub-application under /admin with its session, templates and assets."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import warnings
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from bot.admin import (
    accounts,
    campaigns,
    club,
    inbox,
    journeys,
    members,
    pages,
    poster,
    saved_replies,
    segments,
    transfer,
)
from bot.admin.auth import errors, guard, upload_limits
from bot.admin.render import error_page
from bot.settings import Settings
from store.clubs import admins

log = logging.getLogger(__name__)

COOKIE = "klubb_admin"
# The cookie lives as long as a signed-in session may (store.clubs.admins.LIFETIME; its row on the
# server decides, and ends sooner when idle or signed out); the cookie's encryption carries the
# time it was written, so an older cookie is refused even if a browser keeps it.
SESSION_SECONDS = int(admins.LIFETIME.total_seconds())


def add_admin(app: web.Application, settings: Settings) -> None:
    """Mount the admin at /admin (its pages, actions and static files)."""
    # aiohttp-session and aiohttp-jinja2 keep their data on the request under string keys: their
    # code, not ours.
    warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_session")
    warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_jinja2")
    admin = web.Application(
        middlewares=[
            upload_limits,
            session_middleware(_storage(settings)),
            errors(error_page),
            guard,
        ]
    )
    aiohttp_jinja2.setup(
        admin,
        loader=jinja2.PackageLoader("bot.admin", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        # After the guard (setup appends its middleware): the inbox's count in the navigation.
        context_processors=[inbox.navigation],
    )
    for section in (pages, members, inbox, segments, campaigns, journeys, transfer, club, accounts):
        admin.add_routes(section.routes)
    admin.add_routes(poster.routes)
    admin.add_routes(saved_replies.routes)
    admin.router.add_static("/static", _static_dir(), name="static")
    # Before the sub-application, whose prefix would otherwise claim the bare /admin too.
    app.router.add_get("/admin", _to_dashboard)
    app.router.add_get("/favicon.ico", pages.favicon)
    app.add_subapp("/admin", admin)
    # The imports this process runs; after the database's own cleanup context, so that at
    # shutdown it runs first: imports end, then the database closes.
    app.cleanup_ctx.append(transfer.running_imports)


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin/")


def _static_dir() -> Path:
    # The package's own folder: every asset is served from the install, never a CDN.
    return Path(str(resources.files("bot.admin") / "static"))


def _storage(settings: Settings) -> EncryptedCookieStorage:
    return EncryptedCookieStorage(
        fernet_key(settings.secret_key),
        cookie_name=COOKIE,
        max_age=SESSION_SECONDS,
        path="/admin",
        httponly=True,
        samesite="Lax",
        # Secure when Klubb is reached over HTTPS; a laptop's http://127.0.0.1 must still work.
        secure=urlsplit(settings.public_url).scheme == "https",
    )


def fernet_key(secret_key: str | None) -> Fernet:
    """The cookie's Fernet key: derived from KLUBB_SECRET_KEY, or made for this process."""
    if secret_key is None:
        log.warning(
            "KLUBB_SECRET_KEY is not set: admin sessions use a key made for this process "
            "and end when it restarts (set it to 32+ random characters in production)"
        )
        secret_key = secrets.token_urlsafe(32)
    # Any string of 32+ characters works as the setting; Fernet wants 32 bytes in base64.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))
