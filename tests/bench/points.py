"""Points bench: the POINTS reply for members with a 10,000-entry ledger against short ledgers.

Starts `klubb serve` (as tests/bench/inbound.py does) on a database where a few members have three
years of ledger (earns with their lots and purchases, reward claims that spent the oldest lots,
refunds, expiries) and a few have about ten entries, then sends them signed POINTS texts, one
at a time and 8 in flight, checks every reply's balance and prints the latency of each. Target
(the loyalty issue): POINTS p99 < 20 ms regardless of ledger length. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import hashlib
import inspect
import math
import random
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import inbound
from inbound import CLUB_NUMBER, REPO, Result, Server

P99_TARGET_MS = 20.0
LONG_ENTRIES = 10_000
SHORT_ENTRIES = 10
HISTORY_DAYS = 3 * 365
INSERT_BATCH = 5_000
BODIES = ("POENG", "points", "POINTS", "Poeng", "poeng?", "SALDO")

# The mix of a member's activity: a reward claim now and then (when the balance covers it), a
# campaign bonus or a returned purchase rarely, purchases otherwise; expiries follow from the
# lots' ends.
P_SPEND = 0.08
P_BONUS = 0.01
P_REFUND = 0.01
PURCHASE_MEDIAN_KR = 250.0
PURCHASE_SIGMA = 0.8


def long_phone(index: int) -> str:
    return f"+4791{index:06d}"


def short_phone(index: int) -> str:
    return f"+4792{index:06d}"


def other_phone(index: int) -> str:
    return f"+4793{index:06d}"


# --- the histories (simulated in Python, then bulk-inserted) --------------------------------------


@dataclass(slots=True, eq=False)
class Lot:
    points: int
    remaining: int
    expires_at: dt.datetime
    entry: Entry | None = None


@dataclass(slots=True, eq=False)
class Entry:
    at: dt.datetime
    kind: str
    points: int
    lot: Lot | None = None  # the lot a credit opened
    closes: Lot | None = None  # the lot an expire entry closed
    reason: str | None = None
    actor: str | None = None
    total_minor: int = 0  # an earn's purchase
    returns: Entry | None = None  # a refund: the earn entry of the purchase returned
    id: int = 0
    purchase_id: int | None = None
    refund_id: int | None = None


@dataclass(slots=True)
class Claim:
    at: dt.datetime
    template_id: int
    valid_days: int
    redeemed_at: dt.datetime | None


@dataclass
class History:
    entries: list[Entry]
    claims: list[Claim]
    balance: int
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def lots(self) -> list[Lot]:
        return [entry.lot for entry in self.entries if entry.lot is not None]


@dataclass(frozen=True, slots=True)
class Club:
    id: int
    salt: str
    currency: str
    lot_end: Any  # earned_at -> when the lot ends (store.loyalty.ledger.lot_end for this club)
    rewards: tuple[tuple[int, str, int, int], ...]  # (template id, key, cost, valid days)
    welcome: tuple[int, int] | None  # (template id, valid days)
    top_tier: int | None


def simulate(
    club: Club, seed: int, events: int, start: dt.datetime, now: dt.datetime, pad: int = 0
) -> History:
    """`events` purchases, claims, bonuses and refunds at random instants from `start` to `now`,
    then `pad` small bonuses just before `now`; every lot past its end by `now` expired (the daily
    job has run). Spends, refunds and expiries take from the oldest lots first, as loyalty.ledger
    does (a refund takes what is left when the points were spent)."""
    rng = random.Random(seed)
    span = (now - start).total_seconds() - 3600
    times = sorted(start + dt.timedelta(seconds=span * rng.random()) for _ in range(events))
    last = times[-1] if times else start
    step = (now - dt.timedelta(minutes=5) - last) / (pad + 1)
    times += [last + step * (i + 1) for i in range(pad)]
    entries: list[Entry] = []
    claims: list[Claim] = []
    open_lots: collections.deque[Lot] = collections.deque()
    purchases: list[Entry] = []  # not yet returned
    balance = 0

    def settle(instant: dt.datetime) -> None:
        nonlocal balance
        while open_lots and open_lots[0].expires_at <= instant:
            lot = open_lots.popleft()
            # Dated when the lot ended, as store.loyalty.ledger._expire writes it.
            entries.append(Entry(lot.expires_at, "expire", -lot.remaining, closes=lot))
            balance -= lot.remaining
            lot.remaining = 0

    def credit(at: dt.datetime, kind: str, points: int, **extra: Any) -> None:
        nonlocal balance
        lot = Lot(points, points, club.lot_end(at))
        entry = Entry(at, kind, points, lot=lot, **extra)
        lot.entry = entry
        entries.append(entry)
        open_lots.append(lot)
        balance += points

    def debit(points: int) -> None:
        nonlocal balance
        left = points
        while left:
            lot = open_lots[0]
            take = min(left, lot.remaining)
            lot.remaining -= take
            left -= take
            if lot.remaining == 0:
                open_lots.popleft()
        balance -= points

    for n, at in enumerate(times):
        settle(at)
        draw = rng.random()
        if n >= events:
            credit(at, "bonus", rng.randrange(10, 60), reason="campaign", actor="bench")
            continue
        if draw < P_SPEND and club.rewards:
            template_id, key, cost, valid_days = rng.choice(club.rewards)
            if balance >= cost:
                debit(cost)
                entries.append(Entry(at, "spend", -cost, reason=f"reward:{key}", actor="sms"))
                used = at + dt.timedelta(days=valid_days * rng.random())
                redeemed = used if rng.random() < 0.7 and used < now else None
                claims.append(Claim(at, template_id, valid_days, redeemed))
                continue
        if draw < P_SPEND + P_BONUS:
            credit(at, "bonus", rng.randrange(50, 250), reason="campaign", actor="bench")
            continue
        if draw < P_SPEND + P_BONUS + P_REFUND and purchases:
            returned = purchases.pop(rng.randrange(max(0, len(purchases) - 20), len(purchases)))
            taken = min(returned.points, balance)
            debit(taken)
            entries.append(Entry(at, "refund", -taken, returns=returned, actor="till"))
            continue
        kr = rng.lognormvariate(math.log(PURCHASE_MEDIAN_KR), PURCHASE_SIGMA)
        total_minor = max(100, int(kr * 100))
        credit(at, "earn", total_minor // 100, total_minor=total_minor)
        purchases.append(entries[-1])
    settle(now)
    history = History(entries, claims, balance)
    history.kinds.update(entry.kind for entry in entries)
    return history


def history_of(club: Club, seed: int, target: int, start: dt.datetime, now: dt.datetime) -> History:
    """A history of exactly `target` entries: fewer events until the expiries they bring fit,
    the last few entries made up by small recent bonuses."""
    events = target
    for _ in range(60):
        found = simulate(club, seed, events, start, now)
        count = len(found.entries)
        if count <= target:
            return simulate(club, seed, events, start, now, pad=target - count)
        if events == 1:
            return found  # one purchase and its expiry: a short history can't be shorter
        events = max(1, min(events - 1, round(events * target / count)))
    raise RuntimeError(f"no history of {target} entries")


# --- populating the database ----------------------------------------------------------------------


@dataclass
class Populated:
    version: str
    long: list[tuple[int, str, History]]  # (member id, phone, history)
    short: list[tuple[int, str, History]]
    others: int
    rows: dict[str, int]


async def read_club(conn: Any) -> Club:
    from sqlalchemy import select

    from store.loyalty import ledger
    from store.models import CouponTemplate, Program, ProgramNumber, Tier

    program = (
        await conn.execute(
            select(
                Program.id,
                Program.hash_salt,
                Program.currency,
                Program.timezone,
                Program.points_lifetime_months,
            )
            .join(ProgramNumber)
            .where(ProgramNumber.number == CLUB_NUMBER)
        )
    ).one()
    shape = SimpleNamespace(
        timezone=program.timezone, points_lifetime_months=program.points_lifetime_months
    )
    templates = (
        await conn.execute(
            select(
                CouponTemplate.id,
                CouponTemplate.key,
                CouponTemplate.kind,
                CouponTemplate.points_cost,
                CouponTemplate.valid_days,
            )
            .where(CouponTemplate.program_id == program.id, CouponTemplate.active.is_(True))
            .order_by(CouponTemplate.position)
        )
    ).all()
    top = (
        await conn.execute(
            select(Tier.id)
            .where(Tier.program_id == program.id)
            .order_by(Tier.position.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    welcome = next(((t.id, t.valid_days) for t in templates if t.kind == "welcome"), None)
    return Club(
        id=program.id,
        salt=program.hash_salt,
        currency=program.currency,
        lot_end=lambda at: ledger.lot_end(shape, at),  # type: ignore[arg-type]
        rewards=tuple(
            (t.id, t.key, t.points_cost, t.valid_days) for t in templates if t.kind == "reward"
        ),
        welcome=welcome,
        top_tier=top,
    )


async def populate(
    url: str, pairs: int, others: int, seed: int, extra_sql: list[str] | None = None
) -> Populated:
    """`pairs` long and `pairs` short members and `others` members with a few entries each, with
    their ledger entries, lots, purchases, coupons and consent; then the invariant is checked,
    `extra_sql` run (an index to try) and the database analysed."""
    from sqlalchemy import func, select, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.models import (
        ConsentEvent,
        Coupon,
        LedgerEntry,
        Member,
        PointLot,
        Purchase,
        Refund,
    )

    now = dt.datetime.now(dt.UTC)
    rng = random.Random(seed)
    engine = create_async_engine(inbound.async_url(url))
    try:
        async with engine.begin() as conn:
            club = await read_club(conn)
            # (phone, history, joined, tier) per member; histories are made before the ids.
            plan: list[tuple[str, History, dt.datetime, str]] = []
            begin = now - dt.timedelta(days=HISTORY_DAYS)
            for i in range(pairs):
                joined = begin - dt.timedelta(days=rng.randrange(1, 30))
                found = history_of(club, seed * 1000 + i, LONG_ENTRIES, begin, now)
                plan.append((long_phone(i), found, joined, "long"))
            for i in range(pairs):
                joined = begin - dt.timedelta(days=rng.randrange(1, 30))
                found = history_of(club, seed * 1000 + 500 + i, SHORT_ENTRIES, begin, now)
                plan.append((short_phone(i), found, joined, "short"))
            for i in range(others):
                start = now - dt.timedelta(days=rng.uniform(20, HISTORY_DAYS))
                target = rng.randint(1, 15)
                found = history_of(club, seed * 1_000_000 + 10_000 + i, target, start, now)
                plan.append((other_phone(i), found, start - dt.timedelta(days=1), "other"))

            member_rows = []
            for phone, _found, joined, group in plan:
                member_rows.append(
                    {
                        "program_id": club.id,
                        "phone": phone,
                        "phone_hash": hashlib.sha256(f"{club.salt}:{phone}".encode()).hexdigest(),
                        "status": "active",
                        "language": None,
                        "joined_at": joined,
                        "created_at": joined,
                        "updated_at": joined,
                        "tier_id": club.top_tier if group == "long" else None,
                        "tier_until": (now + dt.timedelta(days=200)).date()
                        if group == "long" and club.top_tier
                        else None,
                    }
                )
            await insert_batches(conn, Member.__table__, member_rows)
            ids = dict(
                (
                    await conn.execute(
                        select(Member.phone, Member.id).where(Member.program_id == club.id)
                    )
                ).all()
            )

            # Every member's entries in one timeline, numbered in time order as they would
            # have been written: a long member's rows lie scattered among everyone else's.
            timeline = sorted(
                (
                    (entry.at, order, ids[phone], entry)
                    for order, (phone, found, _, _) in enumerate(plan)
                    for entry in found.entries
                ),
                key=lambda item: (item[0], item[1]),
            )
            base = {}
            for model in (LedgerEntry, Purchase, Coupon, Refund):
                top = (await conn.execute(select(func.max(model.id)))).scalar_one()
                base[model.__tablename__] = (top or 0) + 1
            entry_id = base["ledger_entries"]
            purchase_id = base["purchases"]
            refund_id = base["refunds"]
            purchases = []
            refunds = []
            for at, _, member_id, entry in timeline:
                entry.id = entry_id
                entry_id += 1
                if entry.kind == "earn":
                    entry.purchase_id = purchase_id
                    purchases.append(
                        {
                            "id": purchase_id,
                            "program_id": club.id,
                            "member_id": member_id,
                            "transaction_id": f"bench-{purchase_id:09d}",
                            "store": "Torshov",
                            "currency": club.currency,
                            "total_minor": entry.total_minor,
                            "points": entry.points,
                            "fingerprint": f"{rng.getrandbits(256):064x}",
                            "occurred_at": at,
                            "created_at": at,
                        }
                    )
                    purchase_id += 1
                elif entry.returns is not None:
                    bought = entry.returns
                    entry.purchase_id, entry.refund_id = bought.purchase_id, refund_id
                    refunds.append(
                        {
                            "id": refund_id,
                            "program_id": club.id,
                            "purchase_id": bought.purchase_id,
                            "refund_id": f"bench-r{refund_id:09d}",
                            "amount_minor": bought.total_minor,
                            "points": bought.points,
                            "points_taken": -entry.points,
                            "fingerprint": f"{rng.getrandbits(256):064x}",
                            "created_at": at,
                        }
                    )
                    refund_id += 1
            await insert_batches(conn, Purchase.__table__, purchases)
            await insert_batches(conn, Refund.__table__, refunds)

            coupons = coupon_rows(club, plan, ids, base["coupons"], now, rng)
            await insert_batches(conn, Coupon.__table__, coupons)

            # Where the ledger keeps what an entry counts towards a tier, it is filled in too.
            tiered = "tier_points" in LedgerEntry.__table__.c
            entries = []
            lots = []
            for at, _, member_id, entry in timeline:
                entries.append(
                    {
                        "id": entry.id,
                        "program_id": club.id,
                        "member_id": member_id,
                        "kind": entry.kind,
                        "points": entry.points,
                        "purchase_id": entry.purchase_id,
                        "refund_id": entry.refund_id,
                        "coupon_id": None,
                        "lot_id": entry.closes.entry.id
                        if entry.closes is not None and entry.closes.entry is not None
                        else None,
                        "reason": entry.reason,
                        "actor": entry.actor,
                        "expires_at": entry.lot.expires_at if entry.lot is not None else None,
                        "created_at": at,
                    }
                )
                if tiered:
                    entries[-1]["tier_points"] = tier_points(entry)
                if entry.lot is not None:
                    lots.append(
                        {
                            "entry_id": entry.id,
                            "program_id": club.id,
                            "member_id": member_id,
                            "points": entry.lot.points,
                            "remaining": entry.lot.remaining,
                            "expires_at": entry.lot.expires_at,
                        }
                    )
            await insert_batches(conn, LedgerEntry.__table__, entries)
            await insert_batches(conn, PointLot.__table__, lots)

            consent = [
                {
                    "program_id": club.id,
                    "member_id": ids[phone],
                    "purpose": "marketing_sms",
                    "action": "grant",
                    "wording_id": "join.confirm",
                    "wording_language": "nb",
                    "wording_text": "Bench: joined before the bench began.",
                    "channel": "import",
                    "evidence": "bench",
                    "created_at": joined,
                }
                for phone, _, joined, _ in plan
            ]
            await insert_batches(conn, ConsentEvent.__table__, consent)

            if engine.dialect.name == "postgresql":
                # Ids given explicitly: move the sequences past them.
                for table in ("ledger_entries", "purchases", "coupons", "refunds"):
                    await conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                            f" (SELECT max(id) FROM {table}))"
                        )
                    )

            await check_invariant(conn, plan, ids)
            for statement in extra_sql or ():
                await conn.execute(text(statement))
            rows = {
                model.__tablename__: (
                    await conn.execute(select(func.count()).select_from(model))
                ).scalar_one()
                for model in (Member, LedgerEntry, PointLot, Purchase, Refund, Coupon)
            }

        if engine.dialect.name == "postgresql":
            # A database in service has been vacuumed (visibility map set) and analysed.
            async with engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.execute(text("VACUUM ANALYZE"))
                version = (await auto.execute(text("SHOW server_version"))).scalar_one()
                version = f"PostgreSQL {version}"
        else:
            async with engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
                await conn.commit()
                version = (await conn.execute(text("SELECT sqlite_version()"))).scalar_one()
                version = f"SQLite {version}"
    finally:
        await engine.dispose()

    def members(group: str) -> list[tuple[int, str, History]]:
        return [(ids[phone], phone, found) for phone, found, _, g in plan if g == group]

    return Populated(version, members("long"), members("short"), others, rows)


def tier_points(entry: Entry) -> int:
    """What an entry counts towards a tier, as ledger.credit and purchases.refund write it: an
    earn its points, a refund minus what the returned purchase earned, anything else 0."""
    if entry.kind == "earn":
        return entry.points
    if entry.returns is not None:
        return -entry.returns.points
    return 0


def coupon_rows(
    club: Club,
    plan: list[tuple[str, History, dt.datetime, str]],
    ids: dict[str, int],
    first_id: int,
    now: dt.datetime,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """A welcome coupon per member (at joining) and one per reward claimed, numbered in time
    order, with unique codes."""
    from store.loyalty.coupons import ALPHABET, CODE_LENGTH

    issued: list[tuple[dt.datetime, int, int, int, str, dt.datetime | None]] = []
    for phone, found, joined, _ in plan:
        member_id = ids[phone]
        if club.welcome is not None:
            template_id, days = club.welcome
            used = joined + dt.timedelta(days=days * rng.random())
            redeemed = used if rng.random() < 0.5 and used < now else None
            issued.append((joined, member_id, template_id, days, f"welcome:{member_id}", redeemed))
        for claim in found.claims:
            source = f"reward:{claim.template_id}:{member_id}:{rng.getrandbits(48):012x}"
            issued.append(
                (
                    claim.at,
                    member_id,
                    claim.template_id,
                    claim.valid_days,
                    source,
                    claim.redeemed_at,
                )
            )
    issued.sort(key=lambda item: item[0])
    codes: set[str] = set()
    rows = []
    for n, (at, member_id, template_id, days, source, redeemed) in enumerate(issued):
        code = ""
        while not code or code in codes:
            code = "".join(rng.choice(ALPHABET) for _ in range(CODE_LENGTH))
        codes.add(code)
        rows.append(
            {
                "id": first_id + n,
                "program_id": club.id,
                "member_id": member_id,
                "template_id": template_id,
                "code": code,
                "source": source,
                "purchase_id": None,
                "issued_at": at,
                "valid_from": at,
                "valid_until": at + dt.timedelta(days=days),
                "redeemed_at": redeemed,
                "redeemed_by": "bench" if redeemed else None,
                "redeemed_ref": None,
            }
        )
    return rows


async def insert_batches(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import insert

    for start in range(0, len(rows), INSERT_BATCH):
        await conn.execute(insert(table), rows[start : start + INSERT_BATCH])


async def check_invariant(
    conn: Any, plan: list[tuple[str, History, dt.datetime, str]], ids: dict[str, int]
) -> None:
    """SUM(entries.points) == SUM(lots.remaining) for every member, and the balance each bench
    member will be told is what its history left."""
    from sqlalchemy import func, select

    from store.models import LedgerEntry, PointLot

    entries = dict(
        (
            await conn.execute(
                select(LedgerEntry.member_id, func.sum(LedgerEntry.points)).group_by(
                    LedgerEntry.member_id
                )
            )
        ).all()
    )
    lots = dict(
        (
            await conn.execute(
                select(PointLot.member_id, func.sum(PointLot.remaining)).group_by(
                    PointLot.member_id
                )
            )
        ).all()
    )
    counts = dict(
        (
            await conn.execute(
                select(LedgerEntry.member_id, func.count()).group_by(LedgerEntry.member_id)
            )
        ).all()
    )
    if entries != lots:
        wrong = [m for m in entries.keys() | lots.keys() if entries.get(m) != lots.get(m)]
        raise AssertionError(f"SUM(entries) != SUM(lots) for {len(wrong)} members: {wrong[:5]}")
    for phone, found, _, _ in plan:
        member_id = ids[phone]
        assert int(entries.get(member_id, 0)) == found.balance, phone
        assert counts.get(member_id, 0) == len(found.entries), phone


# --- the load -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    request: inbound.Request
    group: str  # long or short
    expected: str  # the balance as the reply must show it


def texts(
    populated: Populated, count: int, workload: inbound.Workload, rng: random.Random
) -> list[Text]:
    """`count` POINTS texts from long members and `count` from short, alternating."""
    import locales

    made = []
    for n in range(count):
        for group, members in (("long", populated.long), ("short", populated.short)):
            _member_id, phone, found = members[n % len(members)]
            body = rng.choice(BODIES)
            # The signed form tests/bench/inbound.py posts (the 19 fields Twilio sends).
            request = workload._request(phone, body)
            made.append(Text(request, group, f"{locales.format_number(found.balance, 'nb')} poeng"))
    return made


# The first right reply each group got, to show.
SAMPLES: dict[str, str] = {}


def reply_of(payload: bytes) -> str:
    root = ET.fromstring(payload)
    return "".join(message.text or "" for message in root.iter("Message"))


async def drive(server: Server, load: list[Text], concurrency: int) -> dict[str, Result]:
    import aiohttp

    url = server.url + inbound.WEBHOOK
    results = {group: Result(group) for group in ("long", "short")}
    pending = iter(load)

    async def worker(http: aiohttp.ClientSession) -> None:
        for text in pending:
            into = results[text.group]
            into.sent += 1
            began = time.perf_counter()
            try:
                async with http.post(
                    url, data=text.request.body, headers=text.request.headers
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                into.errors += 1
                if len(into.error_samples) < 5:
                    into.error_samples.append(f"{type(exc).__name__}: {exc}")
                continue
            into.latencies.append(time.perf_counter() - began)
            try:
                reply = reply_of(payload) if status == 200 else ""
            except ET.ParseError:
                reply = ""
            if text.expected in reply:
                into.ok += 1
                SAMPLES.setdefault(text.group, reply)
            else:
                into.errors += 1
                if len(into.error_samples) < 5:
                    into.error_samples.append(
                        f"{status}: wanted {text.expected!r}, got {payload[:300]!r}"
                    )

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=inbound.REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    for result in results.values():
        result.elapsed = elapsed
    return results


# --- where a POINTS turn's time goes: its statements, one by one ----------------------------------


WHOLE = "whole: state_by_phone + conversation._loyalty"


async def statement_costs(
    url: str, members: dict[str, tuple[int, str]], repeats: int, explain: bool
) -> list[tuple[str, dict[str, float], list[str]]]:
    """Run one POINTS turn's reads (state_by_phone and conversation._loyalty) for each member
    through Klubb's own Database and record the SQL they send; then time each statement alone
    and the whole reads, the members taking turns (so a change in the machine's load touches
    both alike): (statement, median µs per member, the long member's plan)."""
    from sqlalchemy import event

    from flows import conversation
    from store.clubs import directory
    from store.database import open_database
    from store.members import members as store_members

    db = open_database(url)
    # As the webhook does: the club (and what the turn caches of it) from its directory.
    clubs = directory.ClubDirectory()
    with_clubs = "clubs" in inspect.signature(conversation._loyalty).parameters
    engine = db.engine.sync_engine if hasattr(db.engine, "sync_engine") else db.engine
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    def turn(session: Any, phone: str) -> None:
        program = clubs.by_number(session, CLUB_NUMBER)
        now = dt.datetime.now(dt.UTC)
        state = store_members.state_by_phone(session, program.id, phone, lock=True)
        extra = (clubs,) if with_clubs else ()
        conversation._loyalty(session, program, state, "nb", now, *extra)

    order: list[str] = []
    statements: dict[str, list[tuple[str, str, Any]]] = {}
    try:
        for group, (_member_id, phone) in members.items():
            await db.run(lambda session, phone=phone: turn(session, phone))  # fills the caches
            captured.clear()
            event.listen(engine, "before_cursor_execute", capture)
            try:
                await db.run(lambda session, phone=phone: turn(session, phone))
            finally:
                event.remove(engine, "before_cursor_execute", capture)
            seen: collections.Counter[str] = collections.Counter()
            statements[group] = []
            for statement, params in captured:
                if not statement.lstrip().upper().startswith("SELECT"):
                    continue  # BEGIN IMMEDIATE and the like: the transaction, not a read
                seen[statement] += 1
                key = f"{label(statement)}#{seen[statement]}"
                statements[group].append((key, statement, params))
                if key not in order:
                    order.append(key)
        order.append(WHOLE)

        def time_all(session: Any) -> tuple[dict[str, dict[str, list[float]]], dict[str, Any]]:
            conn = session.connection()
            costs: dict[str, dict[str, list[float]]] = {}
            for _ in range(repeats):
                for group, (_member_id, phone) in members.items():
                    for key, statement, params in statements[group]:
                        began = time.perf_counter()
                        conn.exec_driver_sql(statement, params).fetchall()
                        elapsed = time.perf_counter() - began
                        costs.setdefault(key, {}).setdefault(group, []).append(elapsed)
                    began = time.perf_counter()
                    turn(session, phone)
                    elapsed = time.perf_counter() - began
                    costs.setdefault(WHOLE, {}).setdefault(group, []).append(elapsed)
            plans: dict[str, Any] = {}
            if explain and "long" in statements:
                prefix = (
                    "EXPLAIN QUERY PLAN "
                    if conn.dialect.name == "sqlite"
                    else "EXPLAIN (ANALYZE, BUFFERS) "
                )
                for key, statement, params in statements["long"]:
                    rows = conn.exec_driver_sql(prefix + statement, params).fetchall()
                    plans[key] = [str(row[-1]) for row in rows]
            return costs, plans

        costs, plans = await db.run(time_all)
    finally:
        await db.close()
    return [
        (
            key,
            {group: sorted(s)[len(s) // 2] * 1e6 for group, s in costs.get(key, {}).items()},
            plans.get(key, []),
        )
        for key in order
    ]


def label(statement: str) -> str:
    """A short name for a statement: what it selects and from where."""
    flat = " ".join(statement.split())
    head, _, rest = flat.partition(" FROM ")
    tables = rest.split(" WHERE ")[0]
    what = head.removeprefix("SELECT ")
    if len(what) > 44:
        what = what[:41] + "..."
    return f"{what} FROM {tables}"[:96]


# --- the report -----------------------------------------------------------------------------------


def row(phase: str, result: Result) -> str:
    return (
        f"{phase:<16}{result.name:<7}{result.sent:>7,}{result.percentile_ms(0.50):>9.1f}"
        f"{result.percentile_ms(0.90):>9.1f}{result.percentile_ms(0.99):>9.1f}"
        f"{max(result.latencies, default=0) * 1000:>9.1f}{result.errors:>8}"
    )


def describe(found: list[tuple[int, str, History]]) -> str:
    histories = [h for _, _, h in found]
    kinds: collections.Counter[str] = collections.Counter()
    for history in histories:
        kinds.update(history.kinds)
    n = len(histories)
    entries = sum(len(h.entries) for h in histories) / n
    lots = [h.lots for h in histories]
    open_lots = sum(sum(1 for lot in ls if lot.remaining > 0) for ls in lots) / n
    claims = sum(len(h.claims) for h in histories) / n
    mix = ", ".join(
        f"{kind} {kinds[kind] / n:,.0f}" for kind in ("earn", "spend", "expire", "refund", "bonus")
    )
    balances = ", ".join(f"{h.balance:,}" for h in histories)
    return (
        f"{entries:,.0f} entries ({mix}), {sum(map(len, lots)) / n:,.0f} lots of which"
        f" {open_lots:,.0f} open, {claims:,.0f} reward coupons; balances {balances}"
    )


def verdict(results: dict[str, Result], phase: str) -> str:
    long, short = results["long"], results["short"]
    if long.errors or short.errors:
        return f"{phase}: no verdict, {long.errors + short.errors} errors"
    long_p99, short_p99 = long.percentile_ms(0.99), short.percentile_ms(0.99)
    met = long_p99 < P99_TARGET_MS and short_p99 < P99_TARGET_MS
    ratio = long_p99 / short_p99 if short_p99 else float("nan")
    return (
        f"{phase}: long p99 {long_p99:.1f} ms, short p99 {short_p99:.1f} ms,"
        f" long/short {ratio:.2f}; p99 < {P99_TARGET_MS:.0f} ms {'MET' if met else 'MISSED'}"
    )


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--texts", type=int, default=2_000, help="timed POINTS texts per ledger length per phase"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="in flight in the mixed phase")
    parser.add_argument("--warmup", type=int, default=200, help="untimed texts first")
    parser.add_argument(
        "--pairs", type=int, default=4, help="members with a long ledger (and as many short)"
    )
    parser.add_argument(
        "--others", type=int, default=2_000, help="other members, with 1 to 15 entries each"
    )
    parser.add_argument(
        "--sql",
        action="append",
        default=[],
        metavar="STATEMENT",
        help="run after populating, before ANALYZE (repeatable): to try an index",
    )
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temp dir; a PostgreSQL URL's schema public is "
        "DROPPED and recreated",
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--repeats", type=int, default=200, help="runs of each statement in the breakdown"
    )
    parser.add_argument("--explain", action="store_true", help="print the long member's plans")
    parser.add_argument(
        "--klubb-prefix",
        default="",
        help='run `klubb serve` under this, e.g. "py-spy record -r 250 -f raw -o /tmp/k.txt --"',
    )
    args = parser.parse_args(argv)
    if args.texts < 1 or args.concurrency < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("--texts, --concurrency and --repeats must be positive, --warmup not negative")
    if not 1 <= args.pairs <= 1000 or not 0 <= args.others < 1_000_000:
        parser.error("--pairs must be from 1 to 1,000, --others from 0 to 999,999")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inbound.start()
    print(f"code: {code_version()}")
    with tempfile.TemporaryDirectory(prefix="klubb-points-") as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'klubb.db'}"
        kind = inbound.database_kind(url)
        if kind is None:
            return 2
        port = inbound.free_port()
        env = inbound.server_env(url, port)
        began = time.perf_counter()
        if not inbound.prepare_database(url, env):
            return 2
        populated = asyncio.run(populate(url, args.pairs, args.others, args.seed, args.sql))
        rows = ", ".join(f"{table} {n:,}" for table, n in populated.rows.items())
        ready = time.perf_counter() - began
        print(f"database: {populated.version} ({kind}), ready in {ready:.1f} s")
        print(f"  rows: {rows}")
        print(f"  long members ({args.pairs}): {describe(populated.long)}")
        print(f"  short members ({args.pairs}): {describe(populated.short)}")
        print(f"  other members: {args.others:,}, 1 to 15 entries each")
        for statement in args.sql:
            print(f"  then: {statement}")

        rng = random.Random(args.seed)
        workload = inbound.Workload(100, args.seed)
        warmup = texts(populated, (args.warmup + 1) // 2, workload, rng)
        sequential = texts(populated, args.texts, workload, rng)
        mixed = texts(populated, args.texts, workload, rng)
        rng.shuffle(mixed)
        print(
            f"load: {args.texts:,} POINTS texts from long members and {args.texts:,} from short"
            f" per phase, after {len(warmup):,} to warm up; one at a time (alternating), then"
            f" {args.concurrency} in flight (shuffled); bodies {', '.join(BODIES)}"
        )

        prefix = shlex.split(args.klubb_prefix)
        server = inbound.start_server(
            "klubb", [*prefix, *inbound.klubb_command(), "serve"], env, port, tmp
        )
        try:
            inbound.wait_ready(server)
            asyncio.run(drive(server, warmup, 1))
            phases = {
                "one at a time": asyncio.run(drive(server, sequential, 1)),
                f"{args.concurrency} in flight": asyncio.run(
                    drive(server, mixed, args.concurrency)
                ),
            }
        finally:
            inbound.stop_server(server)

        print()
        print(
            f"{'phase':<16}{'member':<7}{'texts':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}{'errors':>8}"
        )
        for phase, results in phases.items():
            for result in results.values():
                print(row(phase, result))
        for phase, results in phases.items():
            total = sum(r.sent for r in results.values())
            elapsed = next(iter(results.values())).elapsed
            print(f"  {phase}: {total / elapsed:,.0f} texts/s")
        for group, reply in sorted(SAMPLES.items()):
            print(f"  a {group} member's reply: {reply}")
        print("verdict (target: POINTS p99 < 20 ms regardless of ledger length):")
        for phase, results in phases.items():
            print("  " + verdict(results, phase))

        members = {
            "short": populated.short[0][:2],
            "long": populated.long[0][:2],
        }
        breakdown = asyncio.run(statement_costs(url, members, args.repeats, args.explain))
        print()
        print(
            f"one POINTS turn's reads, each statement alone through klubb's Database"
            f" (median of {args.repeats}, µs):"
        )
        print(f"{'short':>9}{'long':>9}  statement")
        for key, medians, plan in breakdown:
            short = f"{medians['short']:9,.0f}" if "short" in medians else f"{'-':>9}"
            long = f"{medians['long']:9,.0f}" if "long" in medians else f"{'-':>9}"
            print(f"{short}{long}  {key}")
            for line in plan:
                print(f"{'':20}| {line}")

        failed = False
        for phase, results in phases.items():
            for result in results.values():
                if result.errors:
                    failed = True
                    print(
                        f"{phase} {result.name}: {result.errors} errors; first:"
                        f" {result.error_samples[:3]}",
                        file=sys.stderr,
                    )
        logged = server.problems_logged()
        if logged:
            print(f"klubb logged {logged} problem lines:\n{server.log_tail(15)}", file=sys.stderr)
        return 1 if failed else 0


def code_version() -> str:
    """The commit, and whether the working tree differs from it (the figures are of the tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' with uncommitted changes' if dirty else ''}"


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt as stop:
        print(f"bench: interrupted ({stop}); server stopped", file=sys.stderr)
        raise SystemExit(130) from None
