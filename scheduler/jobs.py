"""APScheduler inside `klubb serve` or alone in `klubb worker`: the jobs, started and stopped.

Any number of processes send (the outbox is claimed row by row); only the leader plans
broadcasts, evaluates journeys and runs the loyalty jobs (scheduler.leader)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler import cheques, daily, journeys, metrics, sender
from scheduler.gateway import Gateway
from scheduler.leader import Leadership
from store import reports
from store.clock import Clock, utc_now
from store.database import Database
from store.outage import Outage, unreachable
from store.outreach import campaigns, recurring, sending

log = logging.getLogger(__name__)

SEND_EVERY_SECONDS = 1
PLAN_EVERY_SECONDS = 15
JOURNEYS_EVERY_MINUTES = 15
LOYALTY_EVERY_HOURS = 1
CHEQUES_EVERY_HOURS = 1
RETENTION_EVERY_HOURS = 24  # data retention: its cut moves a day at a time
# How long a shutdown waits for running jobs (a sender's batch in hand, a planning chunk).
FINISH_SECONDS = 15


async def plan_broadcasts(
    db: Database, now: Clock = utc_now, stop: asyncio.Event | None = None
) -> int:
    """Plan every broadcast whose time has come, a chunk of members per transaction (so a
    member's text never waits long behind it). Returns the outbox rows written. Once `stop`
    is set it returns between chunks; the next run goes on where this one stopped. First, each
    recurring broadcast's occurrence now due is made a broadcast of its own (outreach.recurring)."""
    made = await db.run(functools.partial(recurring.make_due, now=now()))
    if made:
        log.info("recurring broadcasts: occurrences %s made", made)
    written = 0
    for campaign_id in await db.run(functools.partial(campaigns.due_for_planning, now=now())):
        while stop is None or not stop.is_set():
            step = await db.run(
                functools.partial(campaigns.plan_chunk, campaign_id=campaign_id, now=now())
            )
            written += step.rows
            if step.done:
                log.info("campaign %s planned", campaign_id)
                break
    return written


async def store_campaign_results(db: Database, now: Clock = utc_now) -> int:
    """Count again the results of every sent broadcast that can still change, one campaign per
    transaction, and keep them for the dashboard. Returns how many were counted."""
    due = await db.run(lambda session: reports.unsettled_results(session, now()))
    for campaign_id in due:
        await db.run(functools.partial(reports.store_results, campaign_id=campaign_id, now=now()))
    return len(due)


def _led(leadership: Leadership, job: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """The job, run only while this process holds the leadership (tried again each time)."""

    @functools.wraps(job)
    async def run(*args: Any, **kwargs: Any) -> Any:
        if not await leadership.try_acquire():
            return None
        return await job(*args, **kwargs)

    return run


@contextlib.asynccontextmanager
async def running_scheduler(
    db: Database,
    gateway: Gateway,
    *,
    send_rate: float = sender.DEFAULT_RATE,
    in_doubt_after: dt.timedelta = sending.STALE,
    link_base: str = "",
) -> AsyncIterator[AsyncIOScheduler]:
    # APScheduler logs every run at INFO: the sender runs every second, which would bury the
    # log. And it logs each job added at start ("Adding job tentatively"): noise in every serve.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
    # The sender's run lasts a whole burst (a broadcast: minutes), and each second's tick met
    # meanwhile was logged as a WARNING "skipped: maximum number of running instances": one a
    # second in every process while anything is sent (tests/cli/test_multiprocess.py saw them).
    # That skip is the design, not a problem; the other jobs' skips are still logged.
    logging.getLogger("apscheduler.scheduler").addFilter(_sender_tick_while_sending)
    scheduler = AsyncIOScheduler(timezone="UTC")
    leadership = Leadership(db.url)
    stop = asyncio.Event()
    running: set[asyncio.Task[Any]] = set()
    pacer = sender.Pacer(send_rate)
    # Beating before the first claim: the rows this process claims carry its id.
    heartbeat = sender.Heartbeat(db)
    await heartbeat.start()
    soon = utc_now() + dt.timedelta(seconds=2)
    every = {"max_instances": 1, "coalesce": True}
    scheduler.add_job(
        _tracked(running, _timed("outbox-sender", sender.drain)),
        "interval",
        seconds=SEND_EVERY_SECONDS,
        id="outbox-sender",
        kwargs={
            "db": db,
            "gateway": gateway,
            "pacer": pacer,
            "stale": in_doubt_after,
            "stop": stop,
            # The app's public URL: campaign links go out as short links on it.
            "link_base": link_base,
            "heartbeat": heartbeat,
        },
        **every,
    )
    scheduler.add_job(
        _tracked(running, _led(leadership, _timed("campaign-planner", plan_broadcasts))),
        "interval",
        seconds=PLAN_EVERY_SECONDS,
        args=(db,),
        kwargs={"stop": stop},
        id="campaign-planner",
        next_run_time=soon,
        **every,
    )

    def led(name: str, job: Any, first_in: int, **interval: int) -> None:
        """A job only the leader runs, every `interval`, first `first_in` seconds from now."""
        scheduler.add_job(
            _tracked(running, _led(leadership, _timed(name, job))),
            "interval",
            **interval,
            args=(db,),
            id=name,
            next_run_time=soon + dt.timedelta(seconds=first_in),
            **every,
        )

    led("journeys", journeys.run, 20, minutes=JOURNEYS_EVERY_MINUTES)
    led("loyalty-daily", daily.run_daily, 30, hours=LOYALTY_EVERY_HOURS)
    # Bonus cheques for balances raised other than by a purchase (a purchase checks its own).
    led("bonus-cheques", cheques.run, 35, hours=CHEQUES_EVERY_HOURS)
    led("data-retention", daily.empty_old_texts, 50, hours=RETENTION_EVERY_HOURS)
    led("campaign-results", store_campaign_results, 40, minutes=reports.RESULTS_EVERY_MINUTES)
    scheduler.start()
    try:
        yield scheduler
    finally:
        # Shutting APScheduler down cancels the jobs it is running, and a send cancelled
        # between the gateway and the database is left in doubt: no new runs, the sender is
        # told to stop after the message in hand, and the running jobs get a while to finish.
        scheduler.pause()
        stop.set()
        if running:
            await asyncio.wait(set(running), timeout=FINISH_SECONDS)
        scheduler.shutdown(wait=False)
        # Stopped cleanly: the heartbeat goes, so what this sender might have left in doubt
        # (an answer that never came) is settled by the next sender at once.
        await heartbeat.stop()
        await leadership.release()


def _sender_tick_while_sending(record: logging.LogRecord) -> bool:
    """False for APScheduler's "skipped: maximum number of running instances" of the sender's
    job (its run is still draining); True for every other record. Added once per logger
    however often a scheduler starts (logging keeps a filter once)."""
    job = record.args[0] if isinstance(record.args, tuple) and record.args else None
    skipped = "maximum number of running instances" in str(record.msg)
    return not (skipped and getattr(job, "id", None) == "outbox-sender")


def _tracked(
    running: set[asyncio.Task[Any]], job: Callable[..., Awaitable[Any]]
) -> Callable[..., Any]:
    """The job, its task kept in `running` while it runs (so a shutdown can wait for it)."""

    @functools.wraps(job)
    async def run(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            return await job(*args, **kwargs)
        finally:
            running.discard(task)

    return run


def _timed(name: str, job: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """The job, its runs, failures and duration counted under `name` (its APScheduler id).
    Inside `_led`: a run another process leads is no run here.

    A run that fails because the database is out of reach is counted, said once an outage
    (store.outage) and not raised: APScheduler would log each as an ERROR with its traceback,
    every second for the sender, in every process, for as long as the outage lasts. Any other
    failure is raised, and APScheduler logs it with its traceback."""
    outage = Outage(log, f"scheduler job {name}")

    @functools.wraps(job)
    async def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await job(*args, **kwargs)
        except Exception as exc:  # a cancelled run (a shutdown) is no failure
            metrics.JOB_FAILURES.labels(name).inc()
            if not unreachable(exc):
                raise
            outage.failed(exc)
            return None
        finally:
            metrics.JOB_RUNS.labels(name).inc()
            metrics.JOB_SECONDS.labels(name).observe(time.perf_counter() - started)
        outage.answered()
        return result

    return run
