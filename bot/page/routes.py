"""The member page's routes: the page, its data as JSON, leaving and deleting (POSTs with a form
token tied to the link), a 404 that gives no hint, and a limit per client address."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

import locales
from bot.client_address import client_address
from bot.forms import FormUnreadable, posted_form
from bot.keys import CLUBS, DB
from bot.page import html
from bot.page.view import member_language, page_view
from bot.security import same_secret
from store.clock import utc_now
from store.members import consent, links, privacy
from store.models import Member, Program

table = web.RouteTableDef()
PAGE_KEYS = web.AppKey("member_page_form_key", bytes)
ACTIONS = ("leave", "delete", "erase")
HTML = "text/html"


class AddressLimit:
    """At most `limit` events per client address in `window` seconds, kept in the process (an
    address is one process's in practice; behind a proxy not in KLUBB_TRUSTED_PROXIES, the
    proxy's address is every client's: see MISSES and LIMIT for why that still serves members;
    bot.client_address says whose address counts)."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_addresses = max_addresses
        self._seen: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def allow(self, address: str) -> bool:
        """Count one event, unless the address is already at the limit: False then."""
        times = self._recent(address)
        if len(times) >= self.limit:
            return False
        times.append(self.clock())
        return True

    def full(self, address: str) -> bool:
        """At the limit now (nothing is counted)."""
        return len(self._recent(address)) >= self.limit

    def _recent(self, address: str) -> collections.deque[float]:
        times = self._seen.pop(address, None) or collections.deque()
        while times and times[0] <= self.clock() - self.window:
            times.popleft()
        self._seen[address] = times  # most recent last: the oldest address is dropped first
        if len(self._seen) > self.max_addresses:
            self._seen.popitem(last=False)
        return times


# A scanner trying tokens finds nothing: after MISSES tokens that open no page in a minute,
# every /m/ request from its address gets 429 for the rest of the minute, whether its next
# guess exists or not. Members behind one proxy rarely miss, so they are not held up by it.
MISSES = web.AppKey("member_page_misses", AddressLimit)
MISSES_A_MINUTE = 20
# And any address at most this many /m/ requests a minute, found or not.
LIMIT = web.AppKey("member_page_limit", AddressLimit)
REQUESTS_A_MINUTE = 300


def form_key(secret_key: str | None) -> bytes:
    """The key form tokens are made with: from KLUBB_SECRET_KEY, else one of this process's
    own (set the secret key when several processes serve pages, as the admin needs too)."""
    seed = secret_key if secret_key is not None else secrets.token_urlsafe(32)
    return hashlib.sha256(b"klubb member page forms:" + seed.encode()).digest()


def form_token(key: bytes, link_id: int, action: str) -> str:
    """A form's token: tied to one link and one action, so a page of another site can't post
    a leave or a delete (it would need the token, which only the page carries)."""
    return hmac.new(key, f"{link_id}:{action}".encode(), hashlib.sha256).hexdigest()


@table.get("/m/{token}")
async def show(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    if (refused := limited(request)) is not None:
        return refused
    now = utc_now()
    clubs = request.app[CLUBS]

    def read(session: Session) -> tuple[Any, Any]:
        link = links.resolve(session, token, now)
        if link is None:
            return None, None
        return link, page_view(session, link, clubs, now)

    link, view = await request.app[DB].run(read)
    if link is None or view is None:
        return not_found(request)
    key = request.app[PAGE_KEYS]
    forms = {action: form_token(key, link.link_id, action) for action in ("leave", "delete")}
    return _html(html.page(view, token, forms))


@table.get("/m/{token}/data.json")
async def data(request: web.Request) -> web.StreamResponse:
    """Everything the club holds about the member (GDPR art. 15 and 20), as the admin's
    export gives it, to download."""
    token = request.match_info["token"]
    if (refused := limited(request)) is not None:
        return refused
    now = utc_now()

    def read(session: Session) -> dict[str, Any] | None:
        link = links.resolve(session, token, now)
        if link is None:
            return None
        program = session.get(Program, link.program_id)
        member = session.get(Member, link.member_id)
        if program is None or member is None:
            return None
        return privacy.export(session, program, member, now)

    record = await request.app[DB].run(read)
    if record is None:
        return not_found(request)
    return web.Response(
        text=json.dumps(record, ensure_ascii=False, indent=2),
        content_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="my-data.json"',
            # Not the page's policy: JSON runs and loads nothing (bot.security's default).
            "Referrer-Policy": html.HEADERS["Referrer-Policy"],
            "X-Robots-Tag": html.HEADERS["X-Robots-Tag"],
        },
    )


@table.post("/m/{token}/leave")
async def leave(request: web.Request) -> web.StreamResponse:
    """Leaving: STOP's rule and log entry (store.members.consent.withdraw); the page's links
    end with it."""
    return await _act(request, "leave")


@table.post("/m/{token}/delete")
async def delete(request: web.Request) -> web.StreamResponse:
    """The first step of deleting: a page that asks to confirm (nothing is changed yet)."""
    return await _act(request, "delete")


@table.post("/m/{token}/delete/confirm")
async def erase(request: web.Request) -> web.StreamResponse:
    """Deleting, confirmed: the same erasure as DELETE by SMS (store.members.privacy.erase)."""
    return await _act(request, "erase")


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    token = request.match_info["token"]
    if (refused := limited(request)) is not None:
        return refused
    try:
        form = await posted_form(request)
    except FormUnreadable:
        return unreadable(request)
    sent = form.get("form")
    now = utc_now()
    key = request.app[PAGE_KEYS]

    def work(session: Session) -> tuple[str, str, str] | None:
        """(outcome, language, club), or None for a link that opens nothing."""
        link = links.resolve(session, token, now)
        if link is None:
            return None
        program = session.get(Program, link.program_id)
        member = session.get(Member, link.member_id)
        if program is None or member is None:
            return None
        language = member_language(member)
        expected = form_token(key, link.link_id, action)
        if not isinstance(sent, str) or not same_secret(sent, expected):
            return "refused", language, program.name
        if action == "delete":
            return form_token(key, link.link_id, "erase"), language, program.name
        evidence = f"member_link:{link.link_id}"
        if action == "leave":
            consent.withdraw(
                session,
                member,
                wording_id="page.leave",
                wording_language=language,
                wording_text=locales.text("web.page.leave.text", language, club=program.name),
                channel="page",
                evidence=evidence,
                now=now,
            )
            return "left", language, program.name
        privacy.erase(
            session,
            member,
            now,
            wording_id="erase.member_request",
            wording_language=language,
            wording_text=locales.text("web.page.delete.confirm", language, club=program.name),
            channel="page",
            evidence=evidence,
        )
        return "deleted", language, program.name

    done = await request.app[DB].run(work)
    if done is None:
        return not_found(request)
    outcome, language, club = done
    if outcome == "refused":
        page = html.message(language, "web.page.title", "web.page.refused", club=club)
        return _html(page, status=403)
    if outcome == "left":
        return _html(html.message(language, "web.page.title", "web.page.left", club=club))
    if outcome == "deleted":
        return _html(html.message(language, "web.page.title", "web.page.deleted", club=club))
    return _html(html.confirm_delete(language, club, token, outcome))


def not_found(request: web.Request) -> web.Response:
    """Unknown, expired, ended, another purpose's or an erased member's token: one page, the
    same for all, in the language the browser asks for."""
    request.app[MISSES].allow(client_address(request) or "?")
    language = _browser_language(request)
    page = html.message(language, "web.page.not_found.title", "web.page.not_found.text")
    return _html(page, status=404)


def unreadable(request: web.Request) -> web.Response:
    """A 400 page for a form whose bytes can't be read (bot.forms), in the browser's language:
    nothing is done, whatever the link."""
    language = _browser_language(request)
    page = html.message(language, "web.page.unreadable.title", "web.page.unreadable.text")
    return _html(page, status=400)


def limited(request: web.Request) -> web.Response | None:
    """A 429 page for an address past its limits (see MISSES and LIMIT), else None (the
    request counted)."""
    address = client_address(request) or "?"
    if not request.app[MISSES].full(address) and request.app[LIMIT].allow(address):
        return None
    language = _browser_language(request)
    page = html.message(language, "web.page.busy.title", "web.page.busy.text")
    response = _html(page, status=429)
    response.headers["Retry-After"] = str(int(request.app[LIMIT].window))
    return response


def _browser_language(request: web.Request) -> str:
    """The first of nb, sv, en the browser's Accept-Language names, else en."""
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().lower()
        if code:
            normalized = locales.normalize_language(code)
            if normalized != locales.DEFAULT_LANGUAGE or code.startswith("en"):
                return normalized
    return locales.DEFAULT_LANGUAGE


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type=HTML, headers=html.HEADERS)
