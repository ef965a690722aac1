"""The outbox sender: settles rows in doubt, claims due rows, and hands them to the gateway a few
at a time, each group checked once more right before it goes (a STOP since the claim wins), at a
pace that adapts to the gateway's 429s; each answer is recorded at its own time."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

from scheduler import metrics
from scheduler.gateway import (
    Gateway,
    GatewayError,
    InDoubt,
    InvalidNumber,
    OptedOut,
    OutboundSms,
    Rejected,
    Throttled,
    Unauthorized,
)
from store.clock import Clock, utc_now
from store.database import Database
from store.outage import Outage, reason, unreachable
from store.outreach import campaigns, sending

log = logging.getLogger(__name__)

BATCH = 500
IN_FLIGHT = 64
DEFAULT_RATE = 100.0  # a short code's messages per second
# Rows checked at hand-off in one query. Small, so the check is read a moment before each
# message goes (not when a batch was claimed), and so a group needs half the slots at most:
# one answer that hangs holds one slot, never the others. (16 cost a sixth of the pace on
# SQLite in tests/bench/campaign.py: a check is a writer transaction.)
GROUP = 32
# When paced, a group is what the pace hands over in this long: the check is at most this old.
TICK = 0.05
# A claim holds what the pace sends in this long (a few seconds of work, never a batch that
# would outlive KLUBB_IN_DOUBT_AFTER and be settled by another sender while still in hand).
CLAIM_SECONDS = 10.0
# A backstop behind the gateway's own timeouts: an answer not back by then leaves the row in
# doubt (settled by asking the gateway, never sent twice), and its slot goes to the next.
ANSWER_TIMEOUT = 10.0
# With nothing due and answers still out, look for rows come due this often.
CLAIM_AGAIN = 1.0
# Answers are recorded a transaction per this many, or this often, whichever comes first.
RECORD_AT = 500
RECORD_EVERY = 0.25
MIN_RATE = 1.0
# The gateway refused the account (Unauthorized): nothing is handed to it for this long, then
# one group tries again. Credentials are fixed by a restart, which starts a new pace anyway;
# the pause only keeps the outbox from being thrown at a gateway that refuses every message.
ACCOUNT_PAUSE = 60.0
# A running sender beats this often; another settles the rows it claimed once it has missed
# three beats (sending.GONE), instead of waiting KLUBB_IN_DOUBT_AFTER.
BEAT_SECONDS = sending.GONE.total_seconds() / 3


class Pacer:
    """The pace of one gateway: hand-offs spaced to at most `rate` a second, adapted by AIMD.

    Additive increase: every answer that is not a 429 adds to the pace, a twentieth of its
    ceiling (the configured rate) over a second's answers. Unbounded, the pace begins at the
    first 429 after a whole second, from the fastest second seen, and its ceiling follows.
    Multiplicative decrease: every 429 takes 1/(2n) of the pace, n being a second's answers at
    this pace, so a second in which a share s of the answers are 429s loses s/2 of it (DCTCP's
    rule). One 429 among 180 costs 0.3 %; a steady 5 % leaves the pace at its ceiling or just
    under it; a gateway that refuses what is above its limit brings the pace down to about
    that limit within seconds. Never below one a second."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = rate
        self.rate = rate
        self.window = window
        self._clock = clock
        self._next = clock()
        self._began = self._last = self._next
        self._answers = 0
        self._peak = 0.0
        self._paused_until = -math.inf

    def pause(self, seconds: float) -> None:
        """Hand nothing to this gateway for `seconds` (it refused the account)."""
        self._paused_until = self._clock() + seconds

    @property
    def paused(self) -> bool:
        return self._clock() < self._paused_until

    async def wait(self) -> None:
        now = self._clock()
        if self._next > now:
            await asyncio.sleep(self._next - now)
            now = self._clock()
        # Time lost meanwhile (a group's check, a claim) is made up, a TICK's worth at most:
        # the pace is kept over a second, and no burst is bigger than a group.
        self._next = max(self._next, now - TICK) + 1.0 / self.rate

    def answered(self, throttled: bool = False) -> None:
        """Count one answer of the gateway, a 429 (`throttled`) or not, and adapt the pace."""
        now = self._clock()
        if now - self._last > self.window:
            # Idle since the last answer: the pace seen starts again from here.
            self._began, self._answers = now, 0
        self._last = now
        self._answers += 1
        if throttled:
            if not math.isfinite(self.rate):
                if not self._peak:
                    return  # no whole second of answers yet: no pace to slow down from
                self.rate = self._peak
            self.rate = max(MIN_RATE, self.rate * (1 - 1 / (2 * max(1.0, self.rate * self.window))))
        elif math.isfinite(self.rate):
            ceiling, step = self.limit, self.limit / 20
            if not math.isfinite(ceiling):
                # Unbounded (benches, tests): a little above the fastest second seen, which
                # rises as the pace does; climbing to it fast, since the first second's pace
                # (connections opening, the first claim) is below what the gateway takes.
                ceiling = max(self._peak, MIN_RATE) * 1.25
                step = ceiling / 5
            step = max(step, MIN_RATE)
            self.rate = min(ceiling, self.rate + step / max(1.0, self.rate * self.window))
        elapsed = now - self._began
        if elapsed >= self.window:
            self._peak = max(self._peak, self._answers / elapsed)
            self._began, self._answers = now, 0


async def drain(
    db: Database,
    gateway: Gateway,
    now: Clock = utc_now,
    batch: int = BATCH,
    pacer: Pacer | None = None,
    stale: dt.timedelta = sending.STALE,
    stop: asyncio.Event | None = None,
    *,
    link_base: str = "",
    heartbeat: Heartbeat | None = None,
) -> int:
    """Send everything due now, then return how many were sent (burst mode). Up to IN_FLIGHT
    messages are in flight at once, with no barrier between claims: one slow answer holds its
    own slot only. Once `stop` is set, no new message is handed over: what is in flight is
    answered and recorded, what was not handed over goes back to the queue, and the drain
    returns, so a shutdown leaves nothing in doubt that needn't be. With nothing to do, a tick
    only reads. `link_base`: the app's public URL, on which the owner's web addresses in a
    campaign's text go out as short links (sending.claim); empty, they go as written.
    `heartbeat`: this process's sender, beating (Heartbeat): the rows it claims are its own,
    settled at once by another sender should it stop beating; and the rows of a sender that
    stopped are settled now, not after `stale`."""
    me = heartbeat.id if heartbeat is not None else None
    pacer = pacer or Pacer(float("inf"))
    if pacer.paused:
        # The gateway refused the account a moment ago: not even the rows in doubt can be
        # asked about. Nothing is claimed, so nothing is failed or left in doubt meanwhile.
        return 0
    # Most ticks find nothing to do: one read says so, and no write transaction is begun (on
    # SQLite a write would queue behind the members' turns and hold them up in turn).
    if not await db.read(functools.partial(sending.work_waiting, now=now(), stale=stale, me=me)):
        return 0
    await settle_in_doubt(db, gateway, now, stale, me=me)
    burst = _Burst(db, gateway, now, pacer, stop)
    try:
        while not burst.halted:
            limit = _claim_size(pacer, batch, stale)
            claimed = await db.run(
                functools.partial(
                    sending.claim, now=now(), limit=limit, link_base=link_base, sender=me
                )
            )
            if claimed:
                await burst.hand_over(claimed)
            elif not await burst.answers_pending(CLAIM_AGAIN):
                break
            # Answers still out (one may hang until its timeout): what came due meanwhile (a
            # throttled row's retry) goes now, not once the last of them is back.
    finally:
        await burst.finish()
    if not burst.stopping:
        await db.run(functools.partial(campaigns.finish_sent, now=now()))
    return burst.sent


def _claim_size(pacer: Pacer, batch: int, stale: dt.timedelta) -> int:
    if not math.isfinite(pacer.rate):
        return batch
    seconds = min(CLAIM_SECONDS, stale.total_seconds() / 4)
    return max(1, min(batch, max(GROUP, int(pacer.rate * seconds))))


def _group_size(pacer: Pacer) -> int:
    if not math.isfinite(pacer.rate):
        return GROUP
    return max(1, min(GROUP, int(pacer.rate * TICK)))


class _Burst:
    """One drain's messages in flight and the answers waiting to be recorded."""

    def __init__(
        self,
        db: Database,
        gateway: Gateway,
        now: Clock,
        pacer: Pacer,
        stop: asyncio.Event | None,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.now = now
        self.pacer = pacer
        self.stop = stop
        self.sent = 0
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._flying: set[asyncio.Task[None]] = set()
        self._answers: list[sending.Result] = []
        self._recorded_at = time.monotonic()
        self._recording: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def answers_pending(self, wait: float) -> bool:
        """Wait up to `wait` seconds for the answers in flight: False once none is left."""
        if not self._flying:
            return False
        await asyncio.wait(set(self._flying), timeout=wait)
        return bool(self._flying)

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    @property
    def halted(self) -> bool:
        """Nothing more is handed over: the sender is stopping, or the gateway refused the
        account (the rest of the claim goes back to the queue as it was)."""
        return self.stopping or self.pacer.paused

    async def hand_over(self, claimed: Sequence[sending.Claimed]) -> None:
        """Hand the claimed rows to the gateway a group at a time: a slot and a pace token for
        each, then the group's check, then at once to the gateway. Returns when all are handed
        over (not answered)."""
        start = 0
        while start < len(claimed):
            group = claimed[start : start + _group_size(self.pacer)]
            start += len(group)
            taken = 0
            for _ in group:
                if self.halted:
                    break
                await self._slots.acquire()
                taken += 1
                await self.pacer.wait()
            held: dict[int, str] = {}
            if not self.halted:
                # Read now, after every STOP committed so far, and not a moment before the send.
                held = await self.db.run(functools.partial(sending.held_at_hand_off, rows=group))
            if self.halted:
                for _ in range(taken):
                    self._slots.release()
                at = self.now()
                for row in (*group, *claimed[start:]):
                    self._answer(sending.Result(row.id, "unsent", at=at))
                return
            at = self.now()
            for row in group:
                why = held.get(row.id)
                if why is None:
                    task = asyncio.create_task(self._send(row))
                    self._flying.add(task)
                    task.add_done_callback(self._flying.discard)
                    continue
                self._slots.release()
                if why != sending.TAKEN_OVER:  # another sender's to record
                    self._answer(sending.Result(row.id, "skipped", error=why, at=at))

    async def _send(self, row: sending.Claimed) -> None:
        try:
            result = await _answer(self.gateway, row, self.now)
        finally:
            self._slots.release()
        self.pacer.answered(result is not None and result.outcome == "throttled")
        if result is not None and result.outcome == "unauthorized":
            self.pacer.pause(ACCOUNT_PAUSE)
        if result is not None:
            self.sent += result.outcome == "sent"
            self._answer(result)

    def _answer(self, result: sending.Result) -> None:
        self._answers.append(result)
        due = (
            len(self._answers) >= RECORD_AT or time.monotonic() - self._recorded_at >= RECORD_EVERY
        )
        if due and self._recording is None:
            self._recording = asyncio.create_task(self._record())

    async def _record(self) -> None:
        answers, self._answers = self._answers, []
        self._recorded_at = time.monotonic()
        try:
            await self.db.run(functools.partial(sending.record, results=answers, now=self.now()))
        except Exception as exc:
            # The rows stay in `sending`, so they are settled as in doubt: never sent twice.
            if unreachable(exc):
                # Once a burst at most, and the drain then fails (said once an outage).
                log.warning(
                    "could not record %d answers of the gateway: %s", len(answers), reason(exc)
                )
            else:
                log.exception("could not record %d answers of the gateway", len(answers))
            self._failure = self._failure or exc
        finally:
            self._recording = None

    async def finish(self) -> None:
        """Wait for every answer in flight (each bounded by ANSWER_TIMEOUT), record them all."""
        if self._flying:
            await asyncio.gather(*self._flying, return_exceptions=True)
        if self._recording is not None:
            await self._recording
        if self._answers:
            self._recording = asyncio.create_task(self._record())
            await self._recording
        if self._failure is not None:
            raise self._failure


async def _answer(gateway: Gateway, row: sending.Claimed, now: Clock) -> sending.Result | None:
    """What the gateway said of one row, at the time it said it; None if it may have gone."""
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            provider_id = await gateway.send(OutboundSms(row.to, row.from_, row.body, str(row.id)))
    except OptedOut as exc:
        metrics.count_send("opted_out", exc)
        # A STOP the carrier took: failed, and the member's consent withdrawn (not flagged).
        return sending.Result(row.id, "opted_out", error=_describe(exc), at=now())
    except InvalidNumber as exc:
        metrics.count_send("invalid_number", exc)
        return sending.Result(row.id, "flag", error=_describe(exc), at=now())
    except Unauthorized as exc:
        metrics.count_send("unauthorized", exc)
        # Not this message's fault: back to the queue untried (the sender pauses).
        return sending.Result(row.id, "unauthorized", error=_describe(exc), at=now())
    except Rejected as exc:
        metrics.count_send("rejected", exc)
        return sending.Result(row.id, "failed", error=_describe(exc), at=now())
    except Throttled as exc:
        metrics.count_send("throttled", exc)
        return sending.Result(
            row.id, "throttled", error=_describe(exc), retry_after=exc.retry_after, at=now()
        )
    except InDoubt as exc:
        metrics.count_send("in_doubt", exc)
        # It may have gone: the row stays in `sending`, and is settled with the gateway's
        # record before it is ever sent again.
        log.warning("outbox row %s in doubt: %s", row.id, exc)
        return None
    except GatewayError as exc:
        metrics.count_send("retry", exc)
        return sending.Result(row.id, "retry", error=_describe(exc), at=now())
    except TimeoutError:
        metrics.count_send("timeout")
        log.warning("outbox row %s in doubt: no answer in %.0f s", row.id, ANSWER_TIMEOUT)
        return None
    except Exception:
        # Not a typed answer: the SMS may or may not have gone. Left in doubt, like InDoubt;
        # the others' results are still kept.
        metrics.count_send("in_doubt")
        log.exception("gateway failed unexpectedly on outbox row %s", row.id)
        return None
    metrics.count_send("sent")
    return sending.Result(row.id, "sent", provider_id=provider_id, at=now())


def _describe(exc: GatewayError) -> str:
    return f"{type(exc).__name__}: {exc.code or ''} {exc}".strip()[:200]


async def settle_in_doubt(
    db: Database,
    gateway: Gateway,
    now: Clock = utc_now,
    stale: dt.timedelta = sending.STALE,
    *,
    me: str | None = None,
) -> int:
    """Ask the gateway about rows a dead sender left in `sending` (claimed `stale` ago, or by
    a sender that stopped beating): sent ones are marked sent, the rest go back to the queue.
    Nothing in doubt is ever sent again without asking. `me`: this sender's heartbeat id."""
    settled = 0
    while True:
        doubtful = await db.run(functools.partial(sending.in_doubt, now=now(), stale=stale, me=me))
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


class Heartbeat:
    """This process's sender, known to the others while it beats: its row in sender_heartbeats
    written every BEAT_SECONDS (on SQLite through the writer, a small write every few seconds,
    never per tick), gone when it stops cleanly. Rows it claims carry its id, so a crash is
    seen within seconds (sending.GONE) and its rows in doubt are settled then."""

    def __init__(self, db: Database, every: float = BEAT_SECONDS, now: Clock = utc_now) -> None:
        self.db = db
        self.every = every
        self.now = now
        self.id = uuid.uuid4().hex
        self.host = socket.gethostname()[:100]
        self.pid = os.getpid()
        self._task: asyncio.Task[None] | None = None
        self._outage = Outage(log, "sender heartbeat")

    async def start(self) -> None:
        """The first beat (its row written before any claim carries its id), then one every
        `every` seconds."""
        await self._beat()
        self._task = asyncio.create_task(self._beating(), name="klubb-sender-heartbeat")

    async def stop(self) -> None:
        """Stop beating and remove the row (a clean exit: nothing of this sender is left in
        hand)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.db.run(functools.partial(sending.sender_stopped, sender=self.id))
        except Exception as exc:
            # Its row then ages: the others count this sender gone after sending.GONE.
            if unreachable(exc):
                log.warning("could not remove the sender's heartbeat: %s", reason(exc))
            else:
                log.exception("could not remove the sender's heartbeat")

    async def _beat(self) -> None:
        await self.db.run(
            functools.partial(
                sending.beat, sender=self.id, host=self.host, pid=self.pid, now=self.now()
            )
        )

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self._beat()
            except Exception as exc:
                # A missed beat or two is no death; three are, and that is what they would be.
                if unreachable(exc):
                    self._outage.failed(exc)
                else:
                    log.warning("sender heartbeat missed", exc_info=True)
            else:
                self._outage.answered()
