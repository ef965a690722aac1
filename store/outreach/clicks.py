"""Campaign links that count: a URL in a campaign's or journey's text goes out as a short link
per recipient, which redirects to the URL and records the tap."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, insert, select
from sqlalchemy.orm import Session

import locales
from store.models import ClickLink, LinkClick, OutboxMessage
from store.states import OutboxStatus

# Where a short link is served (bot.page): short, because every character is the member's SMS.
PATH = "/c/"
# 12 random bytes: 96 bits (the least the issue allows), 16 URL-safe characters.
TOKEN_BYTES = 12
TOKEN_CHARS = 16
# A campaign's links keep working this long; the clicks stay counted after.
LIFETIME = dt.timedelta(days=90)
MAX_TOKEN = 64
# What the owner wrote as a web address: with its scheme, or starting "www.". A bare
# "example.com" is left alone (it may be a sentence's "butikk.no" the owner doesn't want counted;
# phones link it anyway).
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'{}|\\^`\[\]]+", re.IGNORECASE)
# Punctuation after an address ends the sentence, not the address.
_TRAILING = ".,;:!?"


def urls_in(text: str) -> list[str]:
    """The web addresses in a text, in order, without the sentence's punctuation after them."""
    return [_trimmed(match.group(0)) for match in _URL.finditer(text)]


def _trimmed(url: str) -> str:
    while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url = url[:-1]
    return url


def target(url: str) -> str:
    """Where a tap goes: the address as written, with https:// before a bare "www."."""
    return url if "://" in url else f"https://{url}"


def short_url(base: str, token: str) -> str:
    """The short link as an SMS carries it (no "https://": phones link it anyway)."""
    return locales.sms_url(f"{base.rstrip('/')}{PATH}{token}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def owned_urls(texts: Mapping[str, Any] | None) -> frozenset[str]:
    """The addresses the owner wrote in a campaign's texts: only these are made short links (a
    member's first name that looks like an address is not the club's link to count)."""
    return frozenset(url for text in (texts or {}).values() for url in urls_in(str(text or "")))


def _replace(text: str, owned: Collection[str], short: Any) -> str:
    def one(match: re.Match[str]) -> str:
        whole = match.group(0)
        url = _trimmed(whole)
        if url not in owned:
            return whole
        return short(url) + whole[len(url) :]

    return _URL.sub(one, text)


def sample(text: str, base: str, owned: Collection[str] | None = None) -> str:
    """The text with each of the owner's addresses as a short link of the real length: what the
    preview shows, sizes and prices. `owned` None: every address in the text."""
    if not base:
        return text
    example = short_url(base, "x" * TOKEN_CHARS)
    return _replace(text, set(urls_in(text)) if owned is None else owned, lambda _: example)


class Shortener:
    """The short links of one batch of messages, written to the database in one statement."""

    def __init__(self, base: str, now: dt.datetime) -> None:
        self.base = base
        self.now = now
        self.rows: list[dict[str, Any]] = []

    def shorten(
        self,
        text: str,
        owned: Collection[str],
        *,
        program_id: int,
        campaign_id: int,
        message_id: int | None,
        member_id: int | None,
    ) -> str:
        """The text with each of the owner's addresses replaced by a new short link for this
        message's member (the same address twice in one text is one link)."""
        if not self.base or not owned:
            return text
        made: dict[str, str] = {}

        def short(url: str) -> str:
            if url not in made:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                self.rows.append(
                    {
                        "program_id": program_id,
                        "campaign_id": campaign_id,
                        "message_id": message_id,
                        "member_id": member_id,
                        "url": target(url),
                        "token_hash": token_hash(token),
                        "created_at": self.now,
                        "expires_at": self.now + LIFETIME,
                    }
                )
                made[url] = short_url(self.base, token)
            return made[url]

        return _replace(text, owned, short)

    def save(self, connection: Connection) -> int:
        """Insert the batch's links (one executemany); how many."""
        if self.rows:
            connection.execute(insert(_LINKS), self.rows)
        saved, self.rows = len(self.rows), []
        return saved


def forget_unsent(connection: Connection, message_ids: Sequence[int]) -> None:
    """Delete the links of messages put back in the queue unsent: the next claim writes the
    text again with links of its own, so these can never be tapped. One statement by the
    message index; a link already tapped (none should be) and a message no longer queued
    (another sender sent it meanwhile) keep theirs."""
    if message_ids:
        connection.execute(_FORGET, {"ids": list(message_ids)})


_LINKS = ClickLink.__table__
_CLICKS = LinkClick.__table__
_OUTBOX = OutboxMessage.__table__
_FORGET = delete(_LINKS).where(
    _LINKS.c.message_id.in_(bindparam("ids", expanding=True)),
    exists().where(_OUTBOX.c.id == _LINKS.c.message_id, _OUTBOX.c.status == OutboxStatus.QUEUED),
    ~exists().where(_CLICKS.c.link_id == _LINKS.c.id),
)
_FIND = select(_LINKS.c.id, _LINKS.c.url, _LINKS.c.expires_at).where(
    _LINKS.c.token_hash == bindparam("hash")
)
_COUNT = insert(_CLICKS).values(link_id=bindparam("link"), clicked_at=bindparam("at"))


def follow(session: Session, token: str, now: dt.datetime, *, count: bool) -> str | None:
    """Where a short link goes, recording the tap when `count` (a person's GET, not a preview
    fetcher or a HEAD): one indexed lookup and one insert. None for an unknown, malformed or
    expired token, alike."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        return None
    connection = session.connection()
    row = connection.execute(_FIND, {"hash": token_hash(token)}).first()
    if row is None or row.expires_at <= now:
        return None
    if count:
        connection.execute(_COUNT, {"link": row.id, "at": now})
    return str(row.url)
