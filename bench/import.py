"""Import bench: 100,000 CSV rows through store/imports.py against a bare executemany.

Klubb's run is what the admin's import does after the upload: read (decode, delimiter, header),
check every row (phone numbers through store.phones, dates, language, duplicates), check the
rows against the club (already a member, erased) and land them in one transaction with a consent
event each. The bare baseline, in the same process and database, is a plain executemany of the
same rows (numbers already in E.164) into the members table, in one transaction.
Target (issue #6): 100,000 rows < 60 s on SQLite.

    .venv/bin/python bench/import.py                       # SQLite in a temp dir
    .venv/bin/python bench/import.py --pg postgresql://postgres@127.0.0.1:5432/klubb_bench

--pg drops and recreates the schema of the database it is given (never point it at the tests').
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store import imports, migrate, programs
from store.database import Database, open_database
from store.models import ConsentEvent, Member, Program

TARGET_SECONDS = 60.0
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

    def land(session: Session) -> imports.Landed:
        program = session.get(Program, program_id)
        assert program is not None
        return imports.land(
            session, program, checked, mode=imports.ALL_OR_NOTHING, source="bench.csv", now=now
        )

    landed = await db.run(land)
    done = time.perf_counter()
    assert landed.imported == len(table.rows), landed.bad[:3]
    return {
        "read": read - started,
        "check": check - read,
        "land": done - check,
        "total": done - started,
        "rows": float(landed.imported),
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
        # The bench owns the PostgreSQL database it is given, as bench/inbound.py does: its
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--pg", metavar="URL", help="also on this PostgreSQL database")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
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
