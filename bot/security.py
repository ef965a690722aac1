"""The security headers of every answer Klubb gives: pages, redirects, static files, JSON, the
API, the webhooks and every error, added in one place as each response is sent; and the one way
a secret someone sent is compared with ours."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

# Never framed, never sniffed, no referrer to another site: on every answer.
COMMON = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# The admin's pages load only their own files (scripts, styles) and post only to themselves.
PAGE_POLICY = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
# Anything else (JSON, TwiML, CSV, a file) runs nothing and loads nothing if opened as a page.
NOTHING_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Pages and data can show members' personal data: never kept by a browser or a proxy.
NOT_CACHED = "no-store"
# A year, once a browser has reached Klubb over https; no subdomains (not Klubb's to decide).
HSTS = "max-age=31536000"

# What the admin's own responses built before this existed still spread into their headers
# (a streamed CSV export): the same values as added here.
PAGE_HEADERS = {
    "Cache-Control": NOT_CACHED,
    **COMMON,
    "Content-Security-Policy": PAGE_POLICY,
}

Hook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def security_headers(public_url: str) -> Hook:
    """The on_response_prepare hook: it runs for every response as its headers go out, so
    redirects and errors raised anywhere (404, 401, 400, aiohttp's own 405 and 500), streamed
    answers and static files all carry the headers. A header a handler set itself is kept."""
    https = urlsplit(public_url).scheme == "https"

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        for name, value in COMMON.items():
            headers.setdefault(name, value)
        html = response.content_type == "text/html"
        headers.setdefault("Content-Security-Policy", PAGE_POLICY if html else NOTHING_POLICY)
        # Static files (the admin's CSS and scripts) hold nothing personal: cached as usual.
        if not isinstance(response, web.FileResponse):
            headers.setdefault("Cache-Control", NOT_CACHED)
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)

    return add


def same_secret(given: str, expected: str) -> bool:
    """Whether a secret someone sent (a bearer token, a CSRF or form token) is ours, in constant
    time. As bytes: hmac.compare_digest refuses a str with a non-ASCII character (TypeError),
    and a header's bytes that were not UTF-8 come as lone surrogates, which UTF-8 can't encode
    strictly; surrogatepass writes any of them, so whatever was sent is merely not ours."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
