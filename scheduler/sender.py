"""The outbox sender: claims due rows in batches, hands them to the gateway, records the result."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from scheduler.gateway import Gateway, GatewayError, InvalidNumber, OptedOut, OutboundSms
from store import messages
from store.database import Database

log = logging.getLogger(__name__)

BATCH = 200
IN_FLIGHT = 32
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def drain(db: Database, gateway: Gateway, now: Clock = utc_now, batch: int = BATCH) -> int:
    """Send everything due now, then return how many were sent (burst mode)."""
    sent = 0
    while True:
        claimed = await db.run(functools.partial(_claim, moment=now(), batch=batch))
        if not claimed:
            return sent
        limit = asyncio.Semaphore(IN_FLIGHT)
        answers = await asyncio.gather(*(_send(gateway, sms, limit) for sms in claimed))
        results = [answer for answer in answers if answer is not None]
        await db.run(functools.partial(messages.finish, outcomes=results, now=now()))
        sent += sum(1 for _, status, _, _ in results if status == messages.SENT)
        if len(claimed) < batch:
            return sent


def _claim(session: Session, moment: dt.datetime, batch: int) -> list[OutboundSms]:
    return [
        OutboundSms(row.to_number or "", row.from_number, row.body or "", str(row.id))
        for row in messages.claim_due(session, moment, batch)
    ]


async def _send(
    gateway: Gateway, sms: OutboundSms, limit: asyncio.Semaphore
) -> tuple[int, str, str | None, str | None] | None:
    row_id = int(sms.reference)
    async with limit:
        try:
            provider_id = await gateway.send(sms)
        except (OptedOut, InvalidNumber) as exc:
            return row_id, messages.FAILED, None, f"{type(exc).__name__}: {exc.code or exc}"
        except GatewayError as exc:
            # Throttled or transient: back to the queue for the next round.
            log.warning("gateway refused outbox row %s for now: %s", row_id, exc)
            return row_id, messages.QUEUED, None, str(exc)
        except Exception:
            # Not a typed answer: the SMS may or may not have gone. The row stays in 'sending'
            # (in doubt) and is never sent again blindly; the others' results are still kept.
            log.exception("gateway failed unexpectedly on outbox row %s", row_id)
            return None
    return row_id, messages.SENT, provider_id, None
