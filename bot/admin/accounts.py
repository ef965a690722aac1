"""The Account page: everyone changes their own password and can sign out everywhere; owners also
see the club's accounts, add a staff account (its password shown once) and remove one after a
confirmation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp_session import get_session
from sqlalchemy.orm import Session

from bot.admin.auth import ADMIN, TOKEN, owner_only
from bot.admin.render import local_date, local_moment, page, path_id
from bot.client_address import client_address
from bot.keys import DB
from store.clock import utc_now
from store.clubs import admins
from store.errors import InvalidSetting, NotFound
from store.models import AdminAccount

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

ACCOUNT = "/admin/account"
MAX_FIELD = 2000  # beyond any email or password (store.clubs.admins has the real limits)
Error = tuple[str, dict[str, Any]]  # a catalog id and its parameters
Errors = dict[str, Error]


# --- the page ---------------------------------------------------------------------------------


@routes.get("/account")
async def account(request: web.Request) -> web.StreamResponse:
    return await _page(request, saved=request.query.get("saved"))


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    saved: str | None = None,
    refused: str | None = None,
    errors: Errors | None = None,
    email: str = "",
) -> web.Response:
    """The whole page; `refused` names the form whose fields `errors` are about. A password
    typed is never shown again, right or wrong: only the staff email is given back."""
    admin = request[ADMIN]
    now = utc_now()
    # How many browsers are signed in as this account now: one more than expected is a reason
    # to sign out everywhere.
    sessions = await request.config_dict[DB].read(
        lambda session: admins.session_count(session, admin.account_id, now)
    )
    accounts = None
    if admin.is_owner:
        rows = await request.config_dict[DB].run(_accounts(admin.program_id))
        accounts = [
            {
                **row,
                "created": local_date(request, row["created"]),
                "last_sign_in": local_moment(request, row["last_sign_in"]),
                "you": row["id"] == admin.account_id,
            }
            for row in rows
        ]
    return page(
        request,
        "account.html",
        status=status,
        section="account",
        saved=saved,
        refused=refused,
        errors={refused: errors or {}} if refused else {},
        accounts=accounts,
        email=email,
        min_password=admins.MIN_PASSWORD,
        sessions=sessions,
    )


def _accounts(program_id: int) -> Callable[[Session], list[dict[str, Any]]]:
    def work(session: Session) -> list[dict[str, Any]]:
        # The club's last owner is not offered for removal (store.clubs.admins.remove refuses it).
        return [
            _row(a) | {"removable": not admins.is_last_owner(session, a)}
            for a in admins.of_club(session, program_id)
        ]

    return work


def _row(a: AdminAccount) -> dict[str, Any]:
    # Never the hash: what a page may show of an account.
    return {
        "id": a.id,
        "email": a.email,
        "role": a.role,
        "created": a.created_at,
        "last_sign_in": a.last_sign_in_at,
    }


# --- one's own password -----------------------------------------------------------------------


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.StreamResponse:
    """The signed-in person's new password, given their current one. The current one is checked
    like a sign-in (a wrong one counts towards the same refusal); once changed, the account's
    other sessions end and this one carries on."""
    form = await request.post()
    admin = request[ADMIN]
    current, new, again = (_field(form, name) for name in ("current", "new", "again"))
    errors: Errors = {}
    if not current:
        errors["current"] = ("admin.accounts.error.current_missing", {})
    try:
        admins.check_password(new)
    except InvalidSetting:
        errors["new"] = (
            "admin.accounts.error.password_length",
            {"min": admins.MIN_PASSWORD, "max": admins.MAX_PASSWORD},
        )
    if not errors.get("new") and new != again:
        errors["again"] = ("admin.accounts.error.differ", {})
    if errors:
        return await _page(request, status=422, refused="password", errors=errors)
    try:
        result = await admins.change_password(
            request.config_dict[DB],
            admin.account_id,
            current,
            new,
            address=client_address(request) or "unknown",
            now=utc_now(),
            keep=request[TOKEN],
        )
    except NotFound:  # removed since the guard read it
        raise web.HTTPUnauthorized(text="sign in first") from None
    if result.outcome is admins.Outcome.CHANGED:
        log.info("admin %s changed their password", admin.account_id)
        raise web.HTTPSeeOther(f"{ACCOUNT}?saved=password#password")
    log.info(
        "admin %s: password change refused (%s) from %s",
        admin.account_id,
        result.outcome.value,
        client_address(request),
    )
    if result.outcome is admins.Outcome.REFUSED:
        minutes = int(admins.WINDOW.total_seconds() // 60)
        error: Error = ("admin.accounts.error.refused", {"minutes": minutes})
        status = 429
    else:
        error, status = ("admin.accounts.error.current_wrong", {}), 422
    return await _page(request, status=status, refused="password", errors={"current": error})


@routes.post("/account/sign-out-everywhere")
async def sign_out_everywhere(request: web.Request) -> web.StreamResponse:
    """End every session of the signed-in account, on every device, this one too (a phone left
    signed in somewhere, a cookie someone may have copied)."""
    admin = request[ADMIN]
    ended = await request.config_dict[DB].run(
        lambda session: admins.end_sessions(session, admin.account_id)
    )
    (await get_session(request)).invalidate()
    log.info("admin %s signed out everywhere (%s sessions)", admin.account_id, ended)
    raise web.HTTPSeeOther("/admin/sign-in")


# --- the club's accounts (owner) ---------------------------------------------------------------


@routes.post("/account/staff")
@owner_only
async def add_staff(request: web.Request) -> web.StreamResponse:
    """A staff account with a password made for it: shown on this response and never again."""
    form = await request.post()
    admin = request[ADMIN]
    email = _field(form, "email").strip()
    try:
        admins.normalize_email(email)
    except InvalidSetting:
        return await _refused_staff(request, email, "admin.accounts.error.email")
    password = admins.new_password()
    # Hashed before the unit of work: argon2 is slow on purpose.
    password_hash = await asyncio.to_thread(admins.hash_password, password)

    def work(session: Session) -> tuple[int, str]:
        made = admins.create(
            session,
            admin.program_id,
            email=email,
            password_hash=password_hash,
            role=admins.STAFF,
            now=utc_now(),
        )
        return made.id, made.email

    try:
        account_id, email = await request.config_dict[DB].run(work)
    except admins.EmailTaken:
        return await _refused_staff(request, email, "admin.accounts.error.email_taken")
    except InvalidSetting:
        return await _refused_staff(request, email, "admin.accounts.error.email")
    # The account's id, never its password: logs outlive the page.
    log.info("admin %s added staff account %s", admin.account_id, account_id)
    return page(request, "account_made.html", section="account", email=email, password=password)


async def _refused_staff(request: web.Request, email: str, error: str) -> web.Response:
    return await _page(
        request, status=422, refused="staff", errors={"email": (error, {})}, email=email
    )


@routes.get(r"/account/{account_id:\d+}/remove")
@owner_only
async def confirm_remove(request: web.Request) -> web.StreamResponse:
    shown = await request.config_dict[DB].run(_removable(request))
    return page(request, "account_remove.html", section="account", account=shown, error=None)


@routes.post(r"/account/{account_id:\d+}/remove")
@owner_only
async def remove(request: web.Request) -> web.StreamResponse:
    """Remove one of the club's accounts: its sessions end at their next request (the guard
    finds no account). The club's last owner stays (store.clubs.admins.LastOwner)."""
    account_id = path_id(request, "account_id")
    admin = request[ADMIN]

    def work(session: Session) -> None:
        try:
            admins.remove(session, admin.program_id, account_id)
        except NotFound:
            raise web.HTTPNotFound() from None

    try:
        await request.config_dict[DB].run(work)
    except admins.LastOwner:
        shown = await request.config_dict[DB].run(_removable(request))
        return page(
            request,
            "account_remove.html",
            status=409,
            section="account",
            account=shown,
            error="admin.accounts.error.last_owner",
        )
    log.info("admin %s removed admin account %s", admin.account_id, account_id)
    raise web.HTTPSeeOther(f"{ACCOUNT}?saved=removed#accounts")


def _removable(request: web.Request) -> Callable[[Session], dict[str, Any]]:
    """The account the URL names, as the confirmation shows it; 404 for another club's."""
    account_id = path_id(request, "account_id")
    admin = request[ADMIN]

    def work(session: Session) -> dict[str, Any]:
        found = admins.in_club(session, admin.program_id, account_id)
        if found is None:
            raise web.HTTPNotFound()
        return {
            **_row(found),
            "you": found.id == admin.account_id,
            "last_owner": admins.is_last_owner(session, found),
        }

    return work


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value[:MAX_FIELD] if isinstance(value, str) else ""
