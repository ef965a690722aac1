"""Bench: the inbox's list, its unanswered count and one thread on a big club (SQLite).

    .venv/bin/python tests/bench/inbox.py [--members 1000000] [--messages 5000000]
        [--not-understood 0.05] [--numbers 0.05]

Fills a SQLite file (schema from the models) with a club of `--members` members and
`--messages` inbound texts from them, a share `--not-understood` of them not understood and sent
by a share `--numbers` of the members (the ones who write to the shop), then times, best of 5:
the first page of open conversations (store.outreach.inbox.conversations), the unanswered count
(inbox.unanswered), what every admin page pays for it (UnansweredCounts.count while nothing
moved it: its marks only) and the busiest conversation opened (thread, context, the reply
rule). Target (issue 16): list and thread each under 200 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.cli.demo import DEMO_CLUB
from store.clubs import programs
from store.members.members import hash_phone
from store.models import Base, InboundMessage, Member
from store.outreach import inbox

TARGET_MS = 200.0
NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
CHUNK = 50_000


def fill(session: Session, members: int, messages: int, share: float, writers: float) -> int:
    program = programs.create(session, **DEMO_CLUB, now=NOW)
    session.flush()
    rng = random.Random(16)
    phones = [f"+4790{i:06d}" for i in range(members)]
    for start in range(0, members, CHUNK):
        session.execute(
            insert(Member),
            [
                {
                    "program_id": program.id,
                    "phone": phone,
                    "phone_hash": hash_phone(program, phone),
                    "status": "active",
                    "first_name": f"Navn{index}",
                    "created_at": NOW,
                    "updated_at": NOW,
                    "joined_at": NOW,
                }
                for index, phone in enumerate(phones[start : start + CHUNK], start)
            ],
        )
    writing = phones[: max(1, int(members * writers))]
    for start in range(0, messages, CHUNK):
        rows = []
        for index in range(start, min(messages, start + CHUNK)):
            lost = rng.random() < share
            rows.append(
                {
                    "program_id": program.id,
                    "provider_sid": f"SM{index}",
                    "member_id": None,
                    "from_number": rng.choice(writing) if lost else rng.choice(phones),
                    "to_number": "2020",
                    "body": "har dere åpent på søndag?" if lost else "POENG",
                    "intent": None if lost else "points",
                    "reply": None,
                    "received_at": NOW - dt.timedelta(minutes=messages - index),
                    "not_understood": lost,
                }
            )
        session.execute(insert(InboundMessage), rows)
    return program.id


def best(work, times: int = 5) -> float:  # type: ignore[no-untyped-def]
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        spent.append((time.perf_counter() - started) * 1000)
    return min(spent)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--not-understood", type=float, default=0.05)
    parser.add_argument("--numbers", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{folder}/inbox.db")
        Base.metadata.create_all(engine)
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            program_id = fill(
                session, args.members, args.messages, args.not_understood, args.numbers
            )
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        with Session(engine) as session:
            program = programs.get(session, program_id)
            assert program is not None
            found = inbox.conversations(session, program)
            print(f"conversations: {len(found)} on the first page")
            listing = best(lambda: inbox.conversations(session, program))
            count = best(lambda: inbox.unanswered(session, program))
            # What a page view pays (bot.admin.inbox.navigation): the marks, the count kept.
            counts = inbox.UnansweredCounts()
            counts.count(session, program)
            kept = best(lambda: counts.count(session, program))
            first = found[0].id
            thread = best(lambda: inbox.open_conversation(session, program, first, NOW))
    for name, ms in (
        ("list", listing),
        ("unanswered", count),
        ("kept count", kept),
        ("thread", thread),
    ):
        print(f"{name:<11} {ms:8.1f} ms  (target {TARGET_MS:.0f})")
    return 0 if max(listing, thread) <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
