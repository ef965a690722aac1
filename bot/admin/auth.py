"""Who is asking: the admin's session, its CSRF token, roles, and the language pages speak.

A signed-in session is a row on the server (store.clubs.admins.start_session); the encrypted cookie
holds its random token and the CSRF token, so ending the row (sign-out, "sign out everywhere", a
new password, a removed account, its idle or absolute expiry) ends every copy of the cookie.

Deny by default: every route of the admin needs a signed-in account unless its handler is
marked `public`, so a page added later can't forget to check."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp_session import Session, get_session
from multidict import MultiDict
from sqlalchemy.orm import Session as DbSession
from yarl import URL

from bot.forms import posted_form
from bot.keys import DB
from bot.security import PAGE_HEADERS, same_secret
from locales import DEFAULT_LANGUAGE, LANGUAGES, normalize_language
from store.clock import utc_now
from store.clubs import admins
from store.errors import InvalidInput
from store.text import REASON, check_text, is_text, text_only

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SIGN_IN = "/admin/sign-in"
# What a signed-in session's cookie holds: the token of its row (store.clubs.admins.start_session).
SESSION_KEY = "session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The language of a club's admin follows its country; elsewhere the browser's choice.
COUNTRY_LANGUAGES = {"NO": "nb", "SE": "sv"}
# The headers every page gets (bot.security adds them to every response as it is sent); here
# for a response that spreads them itself.
SECURITY_HEADERS = PAGE_HEADERS


class CsrfRefused(web.HTTPForbidden):
    """A form or action without the session's CSRF token: refused before its handler runs."""


class NotText(web.HTTPUnprocessableEntity):
    """A form field that is not text by store.text's rule (a control character): refused before
    its handler runs, naming the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(text=f"{field}: {reason}")
        self.field = field


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


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
# The signed-in session's token: what sign-out and a password change end or keep.
TOKEN = web.RequestKey("admin_session_token", str)
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


async def read_form(request: web.Request) -> None:
    """Read (and keep, for the handler's `request.post()`) a posted form, or refuse it before
    its handler runs: bot.forms.FormUnreadable (400) for bytes that can't be decoded, NotText
    for a field that is not text."""
    form = await posted_form(request)
    # Every field by the one rule for text (store.text), whichever handler reads it next.
    for name, value in form.items():
        if isinstance(value, str):
            try:
                check_text(name, value)
            except InvalidInput as exc:
                raise NotText(exc.field, exc.reason) from None


def check_query(request: web.Request) -> None:
    """Every parameter of the query by the same rule as a form's fields, before any handler
    reads one (a NUL, which PostgreSQL refuses in a search or a segment's name, was a 500).
    A page asked for with one is sent to the same query without what is not text, as a
    hand-edited URL gets a page, not an error; an action is refused (NotText) naming it."""
    query = request.query
    wrong = next((name for name, value in query.items() if not is_text(name + value)), None)
    if wrong is None:
        return
    if request.method not in SAFE_METHODS:
        raise NotText(text_only(wrong), REASON)
    cleaned = MultiDict((text_only(name), text_only(value)) for name, value in query.items())
    raise web.HTTPSeeOther(str(request.rel_url.with_query(cleaned)))


def _streams(request: web.Request) -> bool:
    # An upload sent by script (multipart with the CSRF header) is read by its handler as a
    # stream, part by part; reading it here would leave the handler nothing.
    return (
        request.content_type == "multipart/form-data"
        and CSRF_HEADER in request.headers
        and hasattr(request.match_info.handler, "admin_upload_limit")
    )


async def csrf_ok(request: web.Request, session: Session) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str):
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in FORMS:
        form = await posted_form(request)  # read_form's already, for a form to check
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given is not None and same_secret(given, expected)


def signed_in(session: Session, token: str) -> None:
    """Make the cookie's session the signed-in one whose token store.clubs.admins gave."""
    session[SESSION_KEY] = token


def _load(token: str, now: dt.datetime) -> Callable[[DbSession], admins.Signed | None]:
    def load(session: DbSession) -> admins.Signed | None:
        return admins.signed_in(session, token, now)

    return load


async def _signed(request: web.Request, token: str) -> Admin | None:
    """The session's account, or None if its row has ended. Every admin request reads it, with
    one lookup beside the writer (Database.read); its last request is written at most every
    store.clubs.admins.SEEN_EVERY, so most requests never wait for the writer."""
    db = request.config_dict[DB]
    now = utc_now()
    found = await db.read(_load(token, now))
    if found is None:
        return None
    if now - found.last_seen_at >= admins.SEEN_EVERY:
        await db.run(lambda session: admins.seen(session, token, now))
    return Admin(
        account_id=found.account_id,
        email=found.email,
        role=found.role,
        program_id=found.program_id,
        club=found.club,
        country=found.country,
        timezone=found.timezone,
    )


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
        # A file that is not there: the 404 of any missing page (aiohttp's own is an empty
        # application/octet-stream a browser or proxy may keep).
        if request.match_info.get("filename", "") not in _assets(route.resource):
            raise web.HTTPNotFound()
        return await handler(request)
    session = await get_session(request)
    admin: Admin | None = None
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        admin = await _signed(request, token)
        if admin is None:  # signed out, expired, or its account's password or account is gone
            session.clear()
    request[LANGUAGE] = language_for(request, admin)
    if admin is not None and isinstance(token, str):
        request[ADMIN] = admin
        request[TOKEN] = token
    elif not getattr(request.match_info.handler, "admin_public", False):
        if is_action(request):
            # The app's JSON error answer: {"error": "sign in first"}.
            raise web.HTTPUnauthorized(text="sign in first")
        raise web.HTTPSeeOther(sign_in_url(request))
    # Known before the check, so even the refusal's page has a sign-out form that works.
    request[CSRF] = csrf_token(session)
    check_query(request)
    unsafe = request.method not in SAFE_METHODS
    if unsafe and request.content_type in FORMS and not _streams(request):
        await read_form(request)
    if unsafe and not await csrf_ok(request, session):
        raise CsrfRefused(text="missing or wrong CSRF token")
    return await handler(request)


def _assets(resource: web.StaticResource) -> frozenset[str]:
    """The files a static route serves, as their URL names them (the package's own: read once)."""
    return _files(Path(resource.get_info()["directory"]))


@functools.cache
def _files(directory: Path) -> frozenset[str]:
    return frozenset(
        path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()
    )


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
            return render(request, exc)

    return admin_errors
