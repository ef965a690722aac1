"""API keys as `Authorization: Bearer …`: verified keys are kept in memory for a few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

from store.clubs.apikeys import Caller

SCHEME = "bearer"
MAX_SECRET = 100  # a key is 47 characters; anything far longer is not one


class KeyCache:
    """Keys verified in the last `ttl` seconds, so a busy till's requests are not each a hash
    and a query. A key revoked elsewhere (the CLI) stops working within `ttl` seconds; a key
    that fails is never remembered, so a new key works at once. Used from the event loop only.
    """

    def __init__(
        self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic, size: int = 1024
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._size = size
        self._callers: dict[str, tuple[float, Caller]] = {}

    def get(self, secret: str) -> Caller | None:
        cached = self._callers.get(secret)
        if cached is None:
            return None
        if self._clock() - cached[0] >= self.ttl:
            del self._callers[secret]
            return None
        return cached[1]

    def put(self, secret: str, caller: Caller) -> None:
        if len(self._callers) >= self._size:
            # Many keys at once is rare: forgetting them all is simpler than an LRU, and safe.
            self._callers.clear()
        self._callers[secret] = (self._clock(), caller)


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
