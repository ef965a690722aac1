"""Turn bench: the SQLite writer's work per inbound text, in process (no HTTP, no event loop).

tests/bench/inbound.py measures the whole service, and on a shared machine its rates move with
whatever else runs. This bench isolates what the writer thread does for one text: it prepares
the same database (the demo club and --members active members), builds the same mix of texts
(inbound.Workload with the same seed) and runs them through flows.conversation.handle_text as
the SQLite writer does, --group texts in one transaction. It prints the writer's CPU µs per
text by kind (median of --rounds, each round on a fresh copy of the database); with --profile,
the functions under the turn with their calls per text, which do not move with the machine's
load. Old code against new: run this same file with PYTHONPATH=<a git worktree of the old
commit>; for instruction counts, run it under `valgrind --tool=callgrind` with two --texts
values and take the difference (startup and warm-up cancel out):

    .venv/bin/python tests/bench/turns.py --prepare /tmp/turns.db          # once, ~10 s
    .venv/bin/python tests/bench/turns.py --database /tmp/turns.db --rounds 5
    .venv/bin/python tests/bench/turns.py --database /tmp/turns.db --profile flows,store
    PYTHONPATH=/tmp/old .venv/bin/python tests/bench/turns.py --database /tmp/turns.db
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import functools
import importlib
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import inbound
from inbound import CHATTER, HELP, JOIN, MYDATA, POINTS, STOP, YES

KINDS = {
    **dict.fromkeys(POINTS, "points"),
    **dict.fromkeys(HELP, "help"),
    **dict.fromkeys(CHATTER, "chatter"),
    **dict.fromkeys(MYDATA, "mydata"),
    **dict.fromkeys(JOIN, "join"),
    **dict.fromkeys(YES, "yes"),
    **dict.fromkeys(STOP, "stop"),
}


def prepare(path: Path, members: int) -> None:
    """`klubb migrate`, `klubb init --demo` and the members, as tests/bench/inbound.py does,
    with the code on sys.path (an old worktree's through PYTHONPATH)."""
    url = f"sqlite+aiosqlite:///{path}"
    env = inbound.server_env(url, inbound.free_port())
    # bot.cli.main since bot/cli became a package; a worktree from before has bot/cli.py.
    cli = importlib.import_module("bot.cli")
    module = "bot.cli.main" if hasattr(cli, "__path__") else "bot.cli"
    code = code_root()  # `python -m` puts its working directory first on sys.path
    for command in (["migrate"], ["init", "--demo"]):
        done = subprocess.run(
            [sys.executable, "-m", module, *command], cwd=code, env=env, capture_output=True
        )
        if done.returncode:
            raise SystemExit(f"klubb {command[0]} failed:\n{done.stderr.decode()}")
    print(asyncio.run(inbound.populate(url, members)), f"{members:,} members in {path}")


def code_root() -> Path:
    """The tree the code under test is imported from (this repository, or PYTHONPATH's)."""
    return Path(importlib.import_module("flows").__file__ or "").resolve().parents[1]


def texts(members: int, count: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, sender, body) of inbound.Workload's scripts, in order (YES right after JOIN)."""
    scripts, _ = inbound.Workload(members, seed).scripts(count)
    out = []
    for script in scripts:
        for request in script:
            form = {k: v[0] for k, v in parse_qs(request.body.decode(), True).items()}
            out.append((KINDS[form["Body"]], form["From"], form["Body"]))
    return out


def directory() -> Any:
    """The webhook's club cache, from wherever this version of bot.app takes it."""
    app = importlib.import_module("bot.app")
    return app.ClubDirectory()


def run(
    path: Path, items: list[tuple[str, str, str]], group: int, warmup: int, profile: Any = None
) -> tuple[dict[str, list[float]], list[float]]:
    """Run the texts as the writer does; CPU seconds per text by kind, and per group commit."""
    from sqlalchemy.orm import Session

    from flows.conversation import InboundText, handle_text
    from store.database import sync_sqlite_engine

    engine = sync_sqlite_engine(f"sqlite:///{path}")
    clubs = directory()
    per_kind: dict[str, list[float]] = {}
    commits: list[float] = []
    clock = time.thread_time
    try:
        for start in range(0, len(items), group):
            with Session(engine, expire_on_commit=False) as session:
                session.begin()
                for n, (kind, sender, body) in enumerate(items[start : start + group], start):
                    text = InboundText(
                        provider_sid=f"SM{n:032x}",
                        from_number=sender,
                        to_number=inbound.CLUB_NUMBER,
                        body=body,
                        received_at=dt.datetime.now(dt.UTC),
                    )
                    turn: Callable[[], Any] = functools.partial(
                        handle_text, session, text=text, clubs=clubs
                    )
                    measured = profile is not None and n >= warmup
                    began = clock()
                    if measured:
                        profile.runcall(turn)
                    else:
                        turn()
                    if n >= warmup:
                        per_kind.setdefault(kind, []).append(clock() - began)
                began = clock()
                session.commit()
                if start >= warmup:
                    commits.append(clock() - began)
    finally:
        engine.dispose()
    return per_kind, commits


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, metavar="FILE", help="only make the database")
    parser.add_argument("--database", type=Path, metavar="FILE", help="a --prepare'd file")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--texts", type=int, default=3_000, help="texts a round, after warm-up")
    parser.add_argument("--warmup", type=int, default=300, help="texts first, not counted")
    parser.add_argument("--group", type=int, default=16, help="texts a transaction")
    parser.add_argument("--rounds", type=int, default=3, help="each on a fresh copy")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--profile",
        metavar="PREFIXES",
        help="one round under cProfile; list the functions whose file is under these "
        "comma-separated directories (flows,store), with calls and cumulative µs per text",
    )
    parser.add_argument("--top", type=int, default=40, help="functions --profile lists")
    parser.add_argument("--dump", type=Path, metavar="FILE", help="--profile's stats, for pstats")
    return parser.parse_args(argv)


def report_profile(profile: cProfile.Profile, prefixes: list[str], counted: int, top: int) -> None:
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = os.path.relpath(file, Path.cwd()) if file.startswith("/") else file
        if any(f"/{p}/" in f"/{where}" for p in prefixes):
            rows.append((cumulative, calls, f"{where}:{line}({name})"))
    rows.sort(reverse=True)
    print(f"{'cum µs/text':>11} {'calls/text':>10}  function (profiled: slower than unprofiled)")
    for cumulative, calls, name in rows[:top]:
        print(f"{cumulative / counted * 1e6:11.1f} {calls / counted:10.2f}  {name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        prepare(args.prepare, args.members)
        return 0
    print(inbound.machine())
    print(f"code: {code_root()}")
    items = texts(args.members, args.warmup + args.texts, args.seed)
    with tempfile.TemporaryDirectory(prefix="klubb-turns-") as tmp_name:
        tmp = Path(tmp_name)
        source = args.database
        if source is None:
            source = tmp / "prepared.db"
            prepare(source, args.members)
        rounds: list[tuple[dict[str, list[float]], list[float]]] = []
        profile = cProfile.Profile() if args.profile else None
        for _ in range(1 if profile else args.rounds):
            copy = tmp / "round.db"
            shutil.copyfile(source, copy)
            rounds.append(run(copy, items, args.group, args.warmup, profile))
            copy.unlink()
            for suffix in ("-wal", "-shm"):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)
    counted = len(items) - args.warmup
    kinds = sorted({k for per_kind, _ in rounds for k in per_kind})
    print(f"{counted:,} texts a round after {args.warmup} warm-up, groups of {args.group}")
    print("writer CPU µs per text (median of rounds; each round's mean per kind):")
    header = "".join(f"{k:>9}" for k in kinds)
    print(f"{'':8}{header}{'commit':>9}{'all':>9}")
    means = {
        k: statistics.median(statistics.fmean(r[0][k]) for r in rounds if k in r[0]) for k in kinds
    }
    commit = statistics.median(sum(c) / counted for _, c in rounds)
    total = statistics.median(
        (sum(sum(v) for v in per_kind.values()) + sum(c)) / counted for per_kind, c in rounds
    )
    counts = {k: len(rounds[0][0].get(k, ())) for k in kinds}
    print(f"{'texts':8}" + "".join(f"{counts[k]:9,}" for k in kinds))
    print(f"{'µs':8}" + "".join(f"{means[k] * 1e6:9.0f}" for k in kinds), end="")
    print(f"{commit * 1e6:9.0f}{total * 1e6:9.0f}")
    if profile is not None:
        if args.dump:
            profile.dump_stats(args.dump)
        report_profile(profile, args.profile.split(","), counted, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
