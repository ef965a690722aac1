"""Import bench: 100,000 CSV rows through store/imports.py, and POINTS answered meanwhile.

Klubb's run is what the admin's import does after the upload: read (decode, delimiter, header),
check every row (phone numbers through store.members.phones, dates, language, duplicates), plan them
against the club (already a member, erased) and land them a batch per transaction
(imports.BATCH rows) with a consent event each. The bare baseline, in the same process and
database, is a plain executemany of the same rows (numbers already in E.164) into the members
table, in one transaction.
Target (issue #6): 100,000 rows < 60 s on SQLite.

--latency: the admin's run as it lands today (plan, then `imports.land_batches`, one commit a
batch) inside the real app, while a second client texts POINTS through the signed webhook, one
text every 20 ms from members outside the file; the POINTS latency is printed for the check
and the landing, once for each batch size given (the file's row count as one batch is how
imports landed before issue 14: one unit of work). Target (issue 14): p99 < 100 ms on SQLite.

    .venv/bin/python tests/bench/import.py                       # SQLite in a temp dir
    .venv/bin/python tests/bench/import.py --pg postgresql://postgres@127.0.0.1:5432/klubb_bench
    .venv/bin/python tests/bench/import.py --latency --batches 100000,2000,1000,500

--pg drops and recreates the schema of the database it is given (never point it at the tests').
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.keys import DB
from bot.settings import Settings
from store import migrate
from store.clubs import programs
from store.database import Database, open_database
from store.members import imports, members
from store.models import ConsentEvent, Member, Program

TARGET_SECONDS = 60.0
P99_TARGET_MS = 100.0
POINTS_EVERY = 0.02
POINTS_MEMBERS = 50
AUTH_TOKEN = "bench-import-token"
PUBLIC_URL = "http://bench.invalid"
NAMES = ("Kari", "Ola", "Åsa", "Per", "Liv", "Nils", "Ingrid", "Björn", "Siri", "Erik")
HEADER = "Telefon;Fornavn;Språk;Fødselsdato;Samtykkedato;Kilde\r\n"


def make_csv(rows: int, seed: int) -> bytes:
    """Rows as a Nordic Excel would save them: semicolons, local number formats, a BOM."""
    rng = random.Random(seed)
    lines = [HEADER]
    for i in range(rows):
        number = 90_000_000 + i
        phone = f"{str(number)[:3]} {str(number)[3:5]} {str(number)[5:]}"
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(18_000))
        consented = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(1_500))
        language = rng.choice(("nb", "nb", "sv", "en", ""))
        lines.append(
            f"{phone};{rng.choice(NAMES)};{language};{born:%d.%m.%Y};{consented:%d.%m.%Y};"
            "papirskjema i kassen\r\n"
        )
    return ("\ufeff" + "".join(lines)).encode()


async def new_club(db: Database, name: str, number: str) -> int:
    def work(session: Session) -> int:
        program = programs.create(
            session,
            name=name,
            numbers=[number],
            country="NO",
            contact="post@example.com",
            privacy_url="https://example.com/privacy",
            now=dt.datetime.now(dt.UTC),
        )
        return program.id

    return await db.run(work)


async def klubb_import(db: Database, program_id: int, data: bytes) -> dict[str, float]:
    """The admin's run, timed phase by phase."""
    loop = asyncio.get_running_loop()
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    table = await loop.run_in_executor(None, imports.read, data)
    read = time.perf_counter()
    checked = await loop.run_in_executor(
        None,
        lambda: imports.check(
            table,
            imports.guess_mapping(table.headers),
            country="NO",
            timezone="Europe/Oslo",
            min_age=13,
            now=now,
        ),
    )
    check = time.perf_counter()

    program = await db.run(lambda s: _detached(s, program_id))

    def plan(session: Session) -> imports.Plan:
        return imports.plan(session, program, checked, mode=imports.ALL_OR_NOTHING)

    planned = await db.read(plan)
    imported, bad = await imports.land_batches(
        db, program, planned.rows, source="bench.csv", stamp=now
    )
    done = time.perf_counter()
    assert imported == len(table.rows), (planned.bad or bad)[:3]
    return {
        "read": read - started,
        "check": check - read,
        "land": done - check,
        "total": done - started,
        "rows": float(imported),
    }


async def bare_insert(db: Database, program: Program, rows: list[dict[str, Any]]) -> float:
    """The baseline: the same members by a plain executemany, one transaction."""

    def work(session: Session) -> None:
        session.connection().execute(insert(Member.__table__), rows)

    started = time.perf_counter()
    await db.run(work)
    return time.perf_counter() - started


async def one_database(url: str, rows: int, seed: int) -> dict[str, Any]:
    if not url.startswith("sqlite"):
        # The bench owns the PostgreSQL database it is given, as tests/bench/inbound.py does: its
        # schema is dropped and made anew (deleting 200,000 members afterwards takes minutes).
        from inbound import reset_postgres

        await reset_postgres(url)
    await migrate.upgrade(url)
    db = open_database(url)
    try:
        tag = str(os.getpid())[-4:]
        ours = await new_club(db, f"Bench import {tag}", f"+4759{tag}01")
        bare = await new_club(db, f"Bench bare {tag}", f"+4759{tag}02")
        data = make_csv(rows, seed)
        figures = await klubb_import(db, ours, data)

        program = await db.run(lambda s: _detached(s, bare))
        now = dt.datetime.now(dt.UTC)
        table = imports.read(data)
        checked = imports.check(
            table, imports.guess_mapping(table.headers), country="NO",
            timezone="Europe/Oslo", min_age=13, now=now,
        )  # fmt: skip
        plain = [imports.member_values(program, row, now) for row in checked.good]
        figures["bare"] = await bare_insert(db, program, plain)
        figures["events"] = float(
            await db.run(
                lambda s: s.scalar(
                    select(func.count())
                    .select_from(ConsentEvent)
                    .where(ConsentEvent.program_id == ours)
                )
            )
            or 0
        )
        return figures
    finally:
        await db.close()


def _detached(session: Session, program_id: int) -> Program:
    program = session.get(Program, program_id)
    assert program is not None
    session.expunge(program)
    return program


def report(name: str, f: dict[str, Any]) -> None:
    rows = f["rows"]
    rate = rows / f["total"]
    bare_rate = rows / f["bare"]
    verdict = "meets" if f["total"] < TARGET_SECONDS else "MISSES"
    print(f"{name}: {int(rows):,} rows, {int(f['events']):,} consent events")
    print(
        f"  klubb   {f['total']:6.2f} s  {rate:9,.0f} rows/s   "
        f"(read {f['read']:.2f} s, check {f['check']:.2f} s, land {f['land']:.2f} s)"
    )
    print(f"  bare    {f['bare']:6.2f} s  {bare_rate:9,.0f} rows/s   (executemany into members)")
    print(f"  klubb/bare {rate / bare_rate:.2f}; {verdict} the target (< {TARGET_SECONDS:.0f} s)")


# --- POINTS while an import lands --------------------------------------------------------------


def points_form(sender: str, to: str, index: int) -> dict[str, str]:
    return {
        "MessageSid": f"SMbenchimport{os.getpid()}x{index:08d}",
        "AccountSid": "AC" + "1" * 32,
        "From": sender,
        "To": to,
        "Body": "POENG",
        "NumMedia": "0",
    }


async def points_member(db: Database, program_id: int) -> list[str]:
    phones = [f"+4741{i:06d}" for i in range(POINTS_MEMBERS)]

    def work(session: Session) -> None:
        program = session.get(Program, program_id)
        assert program is not None
        for phone in phones:
            member = members.create(
                session, program, phone, status=members.ACTIVE, now=dt.datetime.now(dt.UTC)
            )
            member.joined_at = member.created_at

    await db.run(work)
    return phones


class Texter:
    """The second client: POINTS through the signed webhook, one at a time, every 20 ms."""

    def __init__(self, url: str, phones: list[str], to: str) -> None:
        self.url, self.phones, self.to = url, phones, to
        self.validator = RequestValidator(AUTH_TOKEN)
        self.sent = 0
        self.phase = "idle"
        self.latencies: dict[str, list[float]] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while not self.stopping.is_set():
                form = points_form(self.phones[self.sent % len(self.phones)], self.to, self.sent)
                self.sent += 1
                signature = self.validator.compute_signature(PUBLIC_URL + "/sms/twilio", form)
                phase = self.phase
                started = time.perf_counter()
                async with http.post(
                    self.url, data=form, headers={"X-Twilio-Signature": signature}
                ) as response:
                    body = await response.text()
                took = (time.perf_counter() - started) * 1000
                assert response.status == 200, body[:200]
                assert "poeng" in body.lower(), body[:200]
                self.latencies.setdefault(phase, []).append(took)
                await asyncio.sleep(POINTS_EVERY)


async def latency_run(url: str, rows: int, seed: int, batch: int) -> dict[str, Any]:
    """One import of `rows` rows in batches of `batch`, in the app, while POINTS is texted."""
    if not url.startswith("sqlite"):
        from inbound import reset_postgres

        await reset_postgres(url)
    await migrate.upgrade(url)
    settings = Settings(
        database_url=url,
        public_url=PUBLIC_URL,
        twilio_auth_token=AUTH_TOKEN,
        run_scheduler=False,
        secret_key="b" * 40,
    )
    server = TestServer(create_app(settings))
    await server.start_server()
    try:
        db: Database = server.app[DB]
        tag = str(os.getpid())[-4:]
        number = f"+4759{tag}03"
        club = await new_club(db, f"Bench latency {tag}", number)
        texter = Texter(str(server.make_url("/sms/twilio")), await points_member(db, club), number)
        texter.phase = "warm-up"  # the first texts fill the app's caches: not counted
        sending = asyncio.create_task(texter.run())
        await asyncio.sleep(0.5)
        texter.phase = "idle"
        await asyncio.sleep(2.0)  # the idle baseline
        data = make_csv(rows, seed)
        now = dt.datetime.now(dt.UTC)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        texter.phase = "check"
        table = await loop.run_in_executor(None, imports.read, data)
        checked = await loop.run_in_executor(
            None,
            lambda: imports.check(
                table,
                imports.guess_mapping(table.headers),
                country="NO",
                timezone="Europe/Oslo",
                min_age=13,
                now=now,
            ),
        )
        program = await db.run(lambda s: _detached(s, club))

        def plan(session: Session) -> imports.Plan:
            return imports.plan(session, program, checked, mode=imports.ALL_OR_NOTHING)

        planned = await db.read(plan)
        checking = time.perf_counter() - started
        texter.phase = "land"
        landing = time.perf_counter()
        landed, bad = await imports.land_batches(
            db, program, planned.rows, source="bench.csv", stamp=now, size=batch
        )
        done = time.perf_counter()
        texter.stopping.set()
        await sending
        assert (landed, bad) == (rows, []), bad[:3]
        return {
            "batch": batch,
            "check": checking,
            "land": done - landing,
            "total": done - started,
            "latencies": texter.latencies,
        }
    finally:
        await server.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0


def report_latency(name: str, f: dict[str, Any]) -> None:
    land = f["latencies"].get("land", [])
    p99 = percentile(land, 0.99)
    verdict = "meets" if p99 < P99_TARGET_MS else "MISSES"
    print(
        f"{name}, batches of {f['batch']:,}: import {f['total']:.2f} s "
        f"(check {f['check']:.2f} s, land {f['land']:.2f} s)"
    )
    for phase in ("idle", "check", "land"):
        values = f["latencies"].get(phase, [])
        print(
            f"  POINTS while {phase:5}  n={len(values):4}  p50 {percentile(values, 0.5):6.1f}  "
            f"p95 {percentile(values, 0.95):6.1f}  p99 {percentile(values, 0.99):6.1f}  "
            f"max {max(values, default=0):7.1f} ms"
        )
    during = f["latencies"].get("check", []) + land
    print(
        f"  the whole import (check and land) n={len(during)}: p99 "
        f"{percentile(during, 0.99):.1f} ms, max {max(during, default=0):.1f} ms"
    )
    print(f"  landing p99 {p99:.1f} ms: {verdict} the target (< {P99_TARGET_MS:.0f} ms)")


def latency_main(args: argparse.Namespace) -> None:
    for batch in args.batches:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'klubb.db'}"
            report_latency("SQLite", asyncio.run(latency_run(url, args.rows, args.seed, batch)))
        if args.pg:
            report_latency(
                "PostgreSQL", asyncio.run(latency_run(args.pg, args.rows, args.seed, batch))
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--pg", metavar="URL", help="also on this PostgreSQL database")
    parser.add_argument(
        "--latency", action="store_true", help="POINTS latency during the import instead"
    )
    parser.add_argument(
        "--batches",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[imports.BATCH],
        help="rows per commit, comma-separated (with --latency)",
    )
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.latency:
        latency_main(args)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'klubb.db'}"
        report("SQLite", asyncio.run(one_database(url, args.rows, args.seed)))
    if args.pg:
        report("PostgreSQL", asyncio.run(one_database(args.pg, args.rows, args.seed)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
