"""The member's own page (/m/{token}): reached by the link MIN SIDE texts back, no account; and
campaign links that count (/c/{token}), behind the same limits and 404."""

from __future__ import annotations

from aiohttp import web

from bot.page import clicks
from bot.page.routes import (
    LIMIT,
    MISSES,
    MISSES_A_MINUTE,
    PAGE_KEYS,
    REQUESTS_A_MINUTE,
    AddressLimit,
    form_key,
    table,
)
from bot.settings import Settings


def add_member_page(app: web.Application, settings: Settings) -> None:
    app[PAGE_KEYS] = form_key(settings.secret_key)
    app[MISSES] = AddressLimit(MISSES_A_MINUTE)
    app[LIMIT] = AddressLimit(REQUESTS_A_MINUTE)
    app.add_routes(table)
    app.add_routes(clicks.table)
