"""The process's Prometheus registry, the SQLite writer's metrics, and the outbox depth query.

The registry lives here, at the lowest layer that counts anything, so the store, the scheduler
and the web edge all register into one (`GET /metrics`, bot.metrics, serves it). Metrics are
process-wide by nature (one process, one scrape target): they are made once at import, never
per app, so the many apps a test run builds never register a name twice. No label ever holds a
phone number, a text, a member or a club."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, Histogram
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from store.models import OutboxMessage
from store.states import OutboxStatus

REGISTRY = CollectorRegistry(auto_describe=True)

SQLITE_WRITER_QUEUE = Gauge(
    "klubb_sqlite_writer_queue_depth",
    "Units of work (turns, API calls, job steps) waiting for SQLite's one writer thread",
    registry=REGISTRY,
)
SQLITE_WRITER_GROUP = Histogram(
    "klubb_sqlite_writer_group_size",
    "Units of work committed together in one SQLite transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)

PG_TURNS_QUEUE = Gauge(
    "klubb_pg_turns_queue_depth",
    "Turns (texts, delivery receipts) waiting for PostgreSQL's writers of turns",
    registry=REGISTRY,
)
PG_TURNS_GROUP = Histogram(
    "klubb_pg_turns_group_size",
    "Turns committed together in one PostgreSQL transaction by a writer of turns",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)

# The outbox's rows still to go: terminal rows (sent, failed, skipped) are counted as they
# happen (klubb_sends_total), never by scanning a table that only grows.
WAITING = (OutboxStatus.QUEUED, OutboxStatus.SENDING)


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """Rows per waiting status; of the queued, how many are due and the oldest one's age."""

    by_status: dict[str, int]
    due: int
    oldest_due_seconds: float


def outbox_depth(session: Session, now: dt.datetime) -> OutboxDepth:
    """One GROUP BY over the waiting rows on the (status, send_after) index, and the oldest
    queued row's time, one seek on it. (1,000,000 queued rows: about 0.15 s on SQLite.)"""
    outbox = OutboxMessage.__table__
    rows = session.execute(
        select(outbox.c.status, func.count(), func.sum(case((outbox.c.send_after <= now, 1))))
        .where(outbox.c.status.in_([str(s) for s in WAITING]))
        .group_by(outbox.c.status)
    ).all()
    by_status = {str(s): 0 for s in WAITING}
    due = 0
    for status, count, due_rows in rows:
        by_status[status] = int(count)
        if status == OutboxStatus.QUEUED:
            due = int(due_rows or 0)
    oldest = 0.0
    if due:
        first = session.scalar(
            select(func.min(outbox.c.send_after)).where(outbox.c.status == OutboxStatus.QUEUED)
        )
        if first is not None:
            if first.tzinfo is None:  # a driver that gives it naive: stored in UTC
                first = first.replace(tzinfo=dt.UTC)
            oldest = max(0.0, (now - first).total_seconds())
    return OutboxDepth(by_status, due, oldest)
