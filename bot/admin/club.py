"""The club's settings (owner only)."""

from __future__ import annotations

from aiohttp import web

from bot.admin.auth import owner_only
from bot.admin.render import page

routes = web.RouteTableDef()


@routes.get("/settings")
@owner_only
async def settings(request: web.Request) -> web.StreamResponse:
    return page(request, "settings.html", section="settings")
