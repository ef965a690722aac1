"""The scheduler's Prometheus metrics: the gateway's answers, job runs, and the leadership."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from scheduler.gateway import GatewayError
from store.metrics import REGISTRY

SENDS = Counter(
    "klubb_sends",
    "The gateway's answers to messages handed to it, by result and the gateway's error code",
    ["result", "error_code"],
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "klubb_scheduler_job_runs",
    "Runs of a scheduler job that did its work (a job led elsewhere is not counted)",
    ["job"],
    registry=REGISTRY,
)
JOB_FAILURES = Counter(
    "klubb_scheduler_job_failures",
    "Runs of a scheduler job that raised",
    ["job"],
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "klubb_scheduler_job_seconds",
    "How long a scheduler job's run took",
    ["job"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300, 900),
    registry=REGISTRY,
)
LEADER = Gauge(
    "klubb_scheduler_leader",
    "1 while this process leads the scheduler (plans broadcasts, runs journeys and the daily "
    "jobs), else 0",
    registry=REGISTRY,
)

# An error code is the gateway's own number (Twilio's 21610, 30007...): a few hundred at most.
# Anything else it might say is not a label, so nothing a gateway writes can grow the series.
_MAX_CODE = 10


def count_send(result: str, error: GatewayError | None = None) -> None:
    """One answer of the gateway: `result` is sent, opted_out, invalid_number, rejected,
    unauthorized, throttled, retry, in_doubt or timeout."""
    code = ""
    if error is not None and error.code is not None:
        text = str(error.code)
        code = text if text.isdigit() and len(text) <= _MAX_CODE else "other"
    SENDS.labels(result, code).inc()
