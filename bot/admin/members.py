"""The members pages: search, a member's page."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.admin.auth import ADMIN
from bot.admin.render import local_date, page, path_id
from bot.keys import DB
from store import members

routes = web.RouteTableDef()


@routes.get(r"/members/{member_id:\d+}")
async def member(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    member_id = path_id(request, "member_id")

    def read(session: Session) -> dict[str, Any] | None:
        found = members.in_club(session, admin.program_id, member_id)
        if found is None:
            return None
        return {
            "id": found.id,
            "phone": found.phone,
            "name": found.first_name,
            "status": found.status,
            "language": found.language,
            "joined": found.joined_at,
        }

    shown = await request.config_dict[DB].run(read)
    if shown is None:
        raise web.HTTPNotFound()
    shown["joined"] = local_date(request, shown["joined"])
    return page(request, "member.html", section="members", member=shown)
