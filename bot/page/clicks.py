"""Campaign links that count (/c/{token}): a tap redirects to the owner's address and is
counted, unless a HEAD or a link-preview fetcher's; a dead token gets the member page's 404."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web

from bot.keys import DB
from bot.page.routes import limited, not_found
from store.clock import utc_now
from store.outreach import clicks

table = web.RouteTableDef()

# Who fetches a link to draw its preview card, not to visit it: chat apps, social networks,
# search engines, link expanders (iMessage's previews say facebookexternalhit and Twitterbot;
# Signal's say WhatsApp). Matched in the lower-cased User-Agent.
_FETCHERS = (
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "whatsapp",
    "telegrambot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "googlebot",
    "google-pagerenderer",
    "googleimageproxy",
    "google-inspectiontool",
    "bingbot",
    "bingpreview",
    "applebot",
    "pinterest",
    "redditbot",
    "embedly",
    "iframely",
    "vkshare",
    "mastodon",
    "signal",
    "crawl",
    "spider",
    "preview",
    "fetcher",
    "scraper",
    "slurp",
    "headlesschrome",
)
_FETCHER = re.compile("|".join(re.escape(name) for name in _FETCHERS))
# Any other robot that says so: "bot" as a word of its own or ending a product name before its
# version ("AhrefsBot/7.0", "PetalBot;", "+bot"), not inside a phone's model ("CUBOT X19").
_BOT = re.compile(r"bot(?:[/;)+]|$)|(?:^|[\s\-_(+])bot\b")
# A browser fetching ahead of a tap (Chrome's prefetch and prerender, Firefox's X-Moz) or an
# app asking for a preview says so in one of these.
_PURPOSE_HEADERS = ("Sec-Purpose", "Purpose", "X-Purpose", "X-Moz")
_NOT_A_TAP = ("prefetch", "prerender", "preview")
# What a Location header may carry as it is: an address written with other characters goes
# percent-encoded (UTF-8), as a browser sends it.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
HEADERS = {
    "Cache-Control": "no-store",
    # The shop's site learns nothing from the link (not the token: it names one recipient).
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def is_preview_fetch(method: str, headers: Mapping[str, str]) -> bool:
    """Whether a request to a short link is not a person's tap: a HEAD, a link-preview fetcher
    or a robot by its User-Agent, or a browser's prefetch. Such requests are redirected all the
    same (previews keep working) but not counted."""
    if method != "GET":
        return True
    agent = headers.get("User-Agent", "").lower()
    if not agent or _FETCHER.search(agent) or _BOT.search(agent):
        return True
    for name in _PURPOSE_HEADERS:
        purpose = headers.get(name)
        if purpose and any(word in purpose.lower() for word in _NOT_A_TAP):
            return True
    return False


@table.get("/c/{token:.+}")  # and HEAD, which aiohttp adds for every GET
async def follow(request: web.Request) -> web.StreamResponse:
    """302 to the link's address; a person's GET is counted (one indexed lookup, one insert,
    through the writer). Unknown, malformed and expired tokens: the member page's 404."""
    if (refused := limited(request)) is not None:
        return refused
    token = request.match_info["token"]
    if len(token) > clicks.MAX_TOKEN:
        return not_found(request)
    count = not is_preview_fetch(request.method, request.headers)
    work = functools.partial(clicks.follow, token=token, now=utc_now(), count=count)
    db = request.app[DB]
    # Not counted, it only reads: beside the writer on SQLite.
    url = await (db.run(work) if count else db.read(work))
    if url is None:
        return not_found(request)
    location = url if url.isascii() else quote(url, safe=_URL_SAFE)
    return web.Response(status=302, headers={"Location": location, **HEADERS})
