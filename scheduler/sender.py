"""The outbox sender: settles rows in doubt, then claims due rows in batches, hands them to the
gateway at the configured pace, and records what it said."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable

from scheduler.gateway import (
    Gateway,
    GatewayError,
    InDoubt,
    InvalidNumber,
    OptedOut,
    OutboundSms,
    Rejected,
    Throttled,
)
from store import campaigns, sending
from store.database import Database

log = logging.getLogger(__name__)

BATCH = 500
IN_FLIGHT = 64
DEFAULT_RATE = 100.0  # a short code's messages per second
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Pacer:
    """Spaces sends to at most `rate` a second; throttling halves the pace and pauses, and
    the pace recovers a little with every batch that goes through unthrottled."""

    def __init__(self, rate: float = DEFAULT_RATE) -> None:
        self.limit = rate
        self.rate = rate
        self._next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
            now = time.monotonic()
        self._next = max(self._next, now) + 1.0 / self.rate

    def throttled(self, pause: float) -> None:
        self.rate = max(self.rate / 2, 1.0)
        self._next = max(self._next, time.monotonic() + pause)

    def went_well(self) -> None:
        self.rate = min(self.rate * 1.25, self.limit)


async def drain(
    db: Database,
    gateway: Gateway,
    now: Clock = utc_now,
    batch: int = BATCH,
    pacer: Pacer | None = None,
    stale: dt.timedelta = sending.STALE,
    stop: asyncio.Event | None = None,
) -> int:
    """Send everything due now, then return how many were sent (burst mode). Once `stop` is
    set, no new message is handed over: the batch in hand is recorded (what was not sent goes
    back to the queue) and the drain returns, so a shutdown leaves nothing in doubt."""
    pacer = pacer or Pacer(float("inf"))
    sent = 0
    await settle_in_doubt(db, gateway, now, stale)
    while True:
        claimed = await db.run(functools.partial(sending.claim, now=now(), limit=batch))
        if claimed:
            results = await _send_all(gateway, claimed, pacer, stop)
            await db.run(functools.partial(sending.record, results=results, now=now()))
            sent += sum(1 for r in results if r.outcome == "sent")
        if stop is not None and stop.is_set():
            return sent
        if len(claimed) < batch:
            await db.run(functools.partial(campaigns.finish_sent, now=now()))
            return sent


async def _send_all(
    gateway: Gateway, claimed: list[sending.Claimed], pacer: Pacer, stop: asyncio.Event | None
) -> list[sending.Result]:
    limit = asyncio.Semaphore(IN_FLIGHT)
    tasks = []
    unsent: list[sending.Result] = []
    for row in claimed:
        if stop is not None and stop.is_set():
            unsent.append(sending.Result(row.id, "unsent"))
            continue
        await pacer.wait()
        await limit.acquire()
        tasks.append(asyncio.create_task(_send(gateway, row, limit)))
    answers = await asyncio.gather(*tasks)
    throttles = [a for a in answers if a is not None and a.outcome == "throttled"]
    if throttles:
        pacer.throttled(max(a.retry_after or 1.0 for a in throttles))
    else:
        pacer.went_well()
    return [a for a in answers if a is not None] + unsent


async def _send(
    gateway: Gateway, row: sending.Claimed, limit: asyncio.Semaphore
) -> sending.Result | None:
    try:
        provider_id = await gateway.send(OutboundSms(row.to, row.from_, row.body, str(row.id)))
    except (OptedOut, InvalidNumber) as exc:
        return sending.Result(row.id, "flag", error=_describe(exc))
    except Rejected as exc:
        return sending.Result(row.id, "failed", error=_describe(exc))
    except Throttled as exc:
        return sending.Result(
            row.id, "throttled", error=_describe(exc), retry_after=exc.retry_after
        )
    except InDoubt as exc:
        # It may have gone: the row stays in `sending`, and is settled with the gateway's
        # record before it is ever sent again.
        log.warning("outbox row %s in doubt: %s", row.id, exc)
        return None
    except GatewayError as exc:
        return sending.Result(row.id, "retry", error=_describe(exc))
    except Exception:
        # Not a typed answer: the SMS may or may not have gone. Left in doubt, like InDoubt;
        # the others' results are still kept.
        log.exception("gateway failed unexpectedly on outbox row %s", row.id)
        return None
    finally:
        limit.release()
    return sending.Result(row.id, "sent", provider_id=provider_id)


def _describe(exc: GatewayError) -> str:
    return f"{type(exc).__name__}: {exc.code or ''} {exc}".strip()[:200]


async def settle_in_doubt(
    db: Database, gateway: Gateway, now: Clock = utc_now, stale: dt.timedelta = sending.STALE
) -> int:
    """Ask the gateway about rows a dead sender left in `sending`: sent ones are marked sent,
    the rest go back to the queue. Nothing in doubt is ever sent again without asking."""
    settled = 0
    while True:
        doubtful = await db.run(functools.partial(sending.in_doubt, now=now(), stale=stale))
        if not doubtful:
            return settled
        found: list[tuple[int, str | None]] = []
        for item in doubtful:
            row = item.claimed
            sms = OutboundSms(row.to, row.from_, row.body, str(row.id))
            try:
                provider_id = await gateway.find_sent(
                    sms, item.claimed_at - dt.timedelta(minutes=1)
                )
            except GatewayError as exc:
                # The gateway can't say now: the row waits in doubt for the next round.
                log.warning("could not settle outbox row %s yet: %s", row.id, exc)
                continue
            found.append((row.id, provider_id))
        await db.run(functools.partial(sending.settle, found=found, now=now()))
        settled += len(found)
        if len(found) < len(doubtful):
            return settled
