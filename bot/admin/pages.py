"""The admin's own pages: sign in and out, the dashboard and its figures."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiohttp import web
from aiohttp_session import get_session, new_session
from sqlalchemy.orm import Session

from bot.admin.auth import (
    ADMIN,
    csrf_token,
    public,
)
from bot.admin.render import page
from bot.keys import DB
from store import admins, members

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
DASHBOARD = "/admin/"
NEWEST_MEMBERS = 10
MAX_FIELD = 1024  # an email or password longer than this is not one


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a page of the admin, never another site."""
    if (
        target
        and target.startswith("/admin/")
        and not target.startswith(("//", "/admin/sign-"))
        and "\\" not in target
        and "//" not in target
    ):
        return target
    return DASHBOARD


@routes.get("/sign-in")
@public
async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if ADMIN in request:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return page(request, "sign_in.html", next=_safe_next(request.query.get("next")), email="")


@routes.post("/sign-in")
@public
async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", ""))[:MAX_FIELD]
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    result = await admins.verify(
        request.config_dict[DB],
        email,
        password,
        address=request.remote or "unknown",
        now=dt.datetime.now(dt.UTC),
    )
    if result.outcome is admins.Outcome.SIGNED_IN and result.account_id is not None:
        # A new session (and CSRF token) at sign-in: one planted before it is worth nothing.
        session = await new_session(request)
        session["account"] = result.account_id
        csrf_token(session)
        log.info("admin sign-in: account %s", result.account_id)
        raise web.HTTPSeeOther(target)
    if result.outcome is admins.Outcome.REFUSED:
        error, status = "admin.sign_in.refused", 429
    else:
        error, status = "admin.sign_in.wrong", 401
    log.info("admin sign-in failed (%s) from %s", result.outcome.value, request.remote)
    return page(
        request,
        "sign_in.html",
        status=status,
        next=target,
        email=email,
        error=error,
        minutes=int(admins.WINDOW.total_seconds() // 60),
    )


@routes.post("/sign-out")
async def sign_out(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/admin/sign-in")


@routes.get("/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]

    def read(session: Session) -> tuple[dict[str, int], list[dict[str, Any]]]:
        counts = members.count_by_status(session, admin.program_id)
        newest = [
            {"id": m.id, "name": m.first_name, "phone": m.phone, "status": m.status}
            for m in members.newest(session, admin.program_id, NEWEST_MEMBERS)
        ]
        return counts, newest

    counts, newest = await request.config_dict[DB].run(read)
    return page(request, "dashboard.html", section="dashboard", counts=counts, newest=newest)


@routes.get("/api/summary")
async def summary(request: web.Request) -> web.StreamResponse:
    """The dashboard's figures as JSON, for the pages' scripts."""
    admin = request[ADMIN]
    counts = await request.config_dict[DB].run(
        lambda session: members.count_by_status(session, admin.program_id)
    )
    return web.json_response({"club": admin.club, "members": counts})
