"""Who is asking: the admin's session, its CSRF token, roles, and the language pages speak.

Deny by default: every route of the admin needs a signed-in account unless its handler is
marked `public`, so a page added later can't forget to check."""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp_session import Session, get_session
from sqlalchemy.orm import Session as DbSession
from yarl import URL

from bot.keys import DB
from locales import DEFAULT_LANGUAGE, LANGUAGES, normalize_language
from store import admins, programs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SIGN_IN = "/admin/sign-in"
# What a signed-in session holds: the account's id and the fingerprint of its password hash
# when it signed in (store.admins.fingerprint), so a new password ends the other sessions.
SESSION_ACCOUNT = "account"
SESSION_FINGERPRINT = "fingerprint"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The language of a club's admin follows its country; elsewhere the browser's choice.
COUNTRY_LANGUAGES = {"NO": "nb", "SE": "sv"}
# Pages can show members' personal data: never cached, never framed, nothing from elsewhere.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


class CsrfRefused(web.HTTPForbidden):
    """A form or action without the session's CSRF token: refused before its handler runs."""


@dataclass(frozen=True, slots=True)
class Admin:
    """The signed-in account and its club, read once per request."""

    account_id: int
    email: str
    role: str
    program_id: int
    club: str
    country: str
    timezone: str

    @property
    def is_owner(self) -> bool:
        return self.role == admins.OWNER


ADMIN = web.RequestKey("admin", Admin)
LANGUAGE = web.RequestKey("admin_language", str)
CSRF = web.RequestKey("admin_csrf", str)


def public(handler: Handler) -> Handler:
    """Mark a handler that needs no account (the sign-in page): every other one does."""
    handler.admin_public = True  # type: ignore[attr-defined]
    return handler


def owner_only(handler: Handler) -> Handler:
    """An action a staff account may not take: 403 for staff, whatever the request."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        if not request[ADMIN].is_owner:
            raise web.HTTPForbidden(text="owner only")
        return await handler(request)

    return checked


def upload(max_bytes: int) -> Callable[[Handler], Handler]:
    """Mark a handler that takes a file: its request body may be up to max_bytes (the app's
    own limit is small), for the upload with JavaScript and the plain form without."""

    def mark(handler: Handler) -> Handler:
        handler.admin_upload_limit = max_bytes  # type: ignore[attr-defined]
        return handler

    return mark


@web.middleware
async def upload_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Raise the body limit for an `upload` handler. First of the admin's middlewares, so the
    session and the CSRF check (which reads a plain form's fields) see the same request."""
    limit = getattr(request.match_info.handler, "admin_upload_limit", None)
    if not isinstance(limit, int):
        return await handler(request)
    larger = request.clone(client_max_size=limit)
    try:
        return await handler(larger)
    finally:
        # aiohttp closes the temporary files of a form it read only for the request it made.
        larger._finish()


def is_action(request: web.Request) -> bool:
    """Actions answer 401 JSON without a session; pages redirect to sign-in."""
    return request.method not in SAFE_METHODS or request.path.startswith("/admin/api/")


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/admin/api/") or "text/html" not in request.headers.get(
        "Accept", ""
    )


def csrf_token(session: Session) -> str:
    """The session's CSRF token, made on first use; every form of the session carries it."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def csrf_ok(request: web.Request, session: Session) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str):
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def signed_in(session: Session, account_id: int, fingerprint: str) -> None:
    """Make the session the account's, as its password is now (by its fingerprint)."""
    session[SESSION_ACCOUNT] = account_id
    session[SESSION_FINGERPRINT] = fingerprint


def _load(account_id: int, fingerprint: object) -> Callable[[DbSession], Admin | None]:
    def load(session: DbSession) -> Admin | None:
        account = admins.get(session, account_id)
        # A session from before the account's password changed (elsewhere, or by `klubb admin
        # password`) is signed out. So is one without a fingerprint: sessions made before
        # sessions carried one; their owners sign in again once.
        if account is None or not admins.same_fingerprint(account, fingerprint):
            return None
        program = programs.get(session, account.program_id)
        if program is None:
            return None
        return Admin(
            account_id=account.id,
            email=account.email,
            role=account.role,
            program_id=program.id,
            club=program.name,
            country=program.country,
            timezone=program.timezone,
        )

    return load


def accepted_language(header: str) -> str:
    """The first of nb, sv, en that an Accept-Language header prefers; en if none."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        code = tag.strip().lower().replace("_", "-").split("-")[0]
        if code in ("no", "nn"):
            code = "nb"
        if code in LANGUAGES and quality > 0:
            ranked.append((-quality, position, code))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def language_for(request: web.Request, admin: Admin | None) -> str:
    if admin is not None and admin.country in COUNTRY_LANGUAGES:
        return COUNTRY_LANGUAGES[admin.country]
    return normalize_language(accepted_language(request.headers.get("Accept-Language", "")))


def sign_in_url(request: web.Request) -> str:
    if request.path in ("/admin/", "/admin"):
        return SIGN_IN
    return str(URL(SIGN_IN).with_query(next=request.path_qs))


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Session, account, CSRF and language for every admin request, before its handler."""
    route = request.match_info.route
    if isinstance(route.resource, web.StaticResource):
        return await handler(request)
    session = await get_session(request)
    admin: Admin | None = None
    account_id = session.get(SESSION_ACCOUNT)
    if isinstance(account_id, int):
        load = _load(account_id, session.get(SESSION_FINGERPRINT))
        # Beside the writer (Database.read): every admin request reads its account.
        admin = await request.config_dict[DB].read(load)
        if admin is None:  # the account (or its club, or its password) is gone: so is the session
            session.clear()
    request[LANGUAGE] = language_for(request, admin)
    if admin is not None:
        request[ADMIN] = admin
    elif not getattr(request.match_info.handler, "admin_public", False):
        if is_action(request):
            # The app's JSON error answer: {"error": "sign in first"}.
            raise web.HTTPUnauthorized(text="sign in first")
        raise web.HTTPSeeOther(sign_in_url(request))
    # Known before the check, so even the refusal's page has a sign-out form that works.
    request[CSRF] = csrf_token(session)
    if request.method not in SAFE_METHODS and not await csrf_ok(request, session):
        raise CsrfRefused(text="missing or wrong CSRF token")
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def errors(render: Callable[[web.Request, web.HTTPException], web.StreamResponse]) -> Any:
    """A middleware turning the admin's 4xx into its own page (or JSON for the API and for
    clients that don't ask for HTML) rather than the app's JSON answer."""

    @web.middleware
    async def admin_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 401 or wants_json(request):
                raise
            response = render(request, exc)
            response.headers.update(SECURITY_HEADERS)
            return response

    return admin_errors
