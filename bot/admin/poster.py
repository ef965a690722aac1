"""The join poster download (owner and staff): `/admin/poster?size=a4|a6`, the PDF that
`klubb poster` writes, for the club's first number."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from bot.admin.auth import ADMIN
from bot.keys import DB
from bot.poster import SIZES, poster_pdf
from store.clubs import poster, programs

routes = web.RouteTableDef()

POSTER = "/admin/poster"


@routes.get("/poster")
async def download(request: web.Request) -> web.StreamResponse:
    size = request.query.get("size", "a4")
    if size not in SIZES:
        raise web.HTTPBadRequest(text=f"size: {' or '.join(sorted(SIZES))}")
    program_id = request[ADMIN].program_id

    def read(session: Session) -> poster.Poster:
        program = programs.get(session, program_id)
        if program is None:
            raise web.HTTPNotFound
        try:
            return poster.poster(session, program)
        except poster.NoNumber as exc:
            raise web.HTTPConflict(text="the club has no number to text") from exc

    content = await request.config_dict[DB].read(read)
    return web.Response(
        body=poster_pdf(content, size),
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="poster-{size}.pdf"'},
    )
