"""APScheduler inside `klubb serve`: the jobs and how they are started and stopped."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler import loyalty, sender
from scheduler.gateway import Gateway
from store.database import Database

# APScheduler logs every run at INFO: the sender runs every second, which would bury the log.
logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)

SEND_EVERY_SECONDS = 1
LOYALTY_EVERY_HOURS = 1


@contextlib.asynccontextmanager
async def running_scheduler(db: Database, gateway: Gateway) -> AsyncIterator[AsyncIOScheduler]:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        sender.drain,
        "interval",
        seconds=SEND_EVERY_SECONDS,
        args=(db, gateway),
        id="outbox-sender",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        loyalty.run_daily,
        "interval",
        hours=LOYALTY_EVERY_HOURS,
        args=(db,),
        id="loyalty-daily",
        max_instances=1,
        coalesce=True,
        next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30),
    )
    scheduler.start()
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
