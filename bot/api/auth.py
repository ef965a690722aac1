"""API keys as `Authorization: Bearer …`: verified keys are kept in memory for a few seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from store.cache import TtlCache
from store.clubs.apikeys import Caller

SCHEME = "bearer"
MAX_SECRET = 100  # a key is 47 characters; anything far longer is not one


class KeyCache(TtlCache[str, Caller]):
    """Keys verified in the last `ttl` seconds, so a busy till's requests are not each a hash
    and a query. A key revoked elsewhere (the CLI) stops working within `ttl` seconds; a key
    that fails is never remembered, so a new key works at once. Many keys at once is rare:
    past `size`, all are forgotten. Used from the event loop only.
    """

    def __init__(
        self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic, size: int = 1024
    ) -> None:
        super().__init__(ttl, clock, size)
        self._checking: dict[str, asyncio.Future[Caller | None]] = {}

    async def verified(
        self, secret: str, verify: Callable[[], Awaitable[Caller | None]]
    ) -> Caller | None:
        """The caller of a secret the cache doesn't hold (None: not a valid key), checked once
        however many requests ask at the same moment: when a busy till's entry expires, every
        request it has in flight misses together, and each checking for itself would queue a
        key check per request behind the SQLite writer (the tail of tests/bench/baskets.py)."""
        check = self._checking.get(secret)
        if check is None:
            check = asyncio.ensure_future(verify())
            self._checking[secret] = check
            check.add_done_callback(lambda _done: self._checking.pop(secret, None))
        # Shielded: a caller that goes away (its client hung up) doesn't cancel the others'.
        caller = await asyncio.shield(check)
        if caller is not None:
            self.put(secret, caller)
        return caller


def bearer_secret(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None if there is none."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != SCHEME:
        return None
    token = token.strip()
    if not token or len(token) > MAX_SECRET:
        return None
    return token
