"""A gateway for trying Klubb on a laptop: each SMS becomes one JSON line in a file or the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from pathlib import Path

from scheduler.gateway import OutboundSms
from store.clock import utc_now

log = logging.getLogger("klubb.console")


class ConsoleGateway:
    def __init__(self, outbox: Path | None) -> None:
        self.outbox = outbox
        self._lock = asyncio.Lock()

    async def send(self, message: OutboundSms) -> str:
        provider_id = "CONSOLE" + uuid.uuid4().hex[:26]
        line = json.dumps(
            {
                "to": message.to,
                "from": message.from_,
                "body": message.body,
                "id": provider_id,
                "reference": message.reference,
                "at": utc_now().isoformat(timespec="seconds"),
            },
            ensure_ascii=False,
        )
        if self.outbox is None:
            log.info("%s", line)
            return provider_id
        async with self._lock:
            await asyncio.to_thread(_append, self.outbox, line)
        return provider_id

    async def close(self) -> None:
        """Nothing is held open: each line is appended to the file and the file closed."""

    async def find_sent(self, message: OutboundSms, since: dt.datetime) -> str | None:
        """The id of a line this gateway wrote for the same outbox row, if any."""
        if self.outbox is None:
            # Only the log saw it: it can't be read back, and a duplicate on a laptop's log
            # harms no one, so an unsettled row is sent again.
            return None
        async with self._lock:
            return await asyncio.to_thread(_find, self.outbox, message)


def _find(path: Path, message: OutboundSms) -> str | None:
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as file:
        for line in file:
            try:
                sent = json.loads(line)
            except ValueError:
                continue
            if sent.get("reference") == message.reference and sent.get("to") == message.to:
                return str(sent.get("id"))
    return None


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
