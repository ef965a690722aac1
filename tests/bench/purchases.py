"""Purchases bench: POST /api/v1/purchases from tills at `klubb serve` and at a bare handler.

The bare handler (run by this file with --bare-server PORT) reads the same JSON, checks a bearer
key and answers 201 with a small JSON body, so klubb/bare is what recording a purchase costs:
validation, the member lookup, earning rules, lines, the ledger, punch cards and the commit.
Target (issue #3): >= 500 purchases/s on SQLite in one process, 32 in flight.
See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import inbound
from inbound import (
    REPO,
    Result,
    Server,
    free_port,
    klubb_command,
    machine,
    member_phone,
    start_server,
    stop_server,
    wait_ready,
)

PATH = "/api/v1/purchases"
TARGET_RATE = 500.0
REQUEST_TIMEOUT = 30.0
CATEGORIES = ("shoes", "clothing", "service", "bikes", "ski", "accessories")
BRANDS = ("Torshov", "Bergans", "Asics", "Fischer", "Norrøna", None)


# --- the bare server (a separate process) ---------------------------------------------------------


def bare_server(port: int, key: str) -> None:
    """The reference: the same body parsed, the same header checked, a 201 with JSON."""
    import hmac
    import logging

    from aiohttp import web

    logging.basicConfig(level=logging.WARNING)
    expected = f"Bearer {key}"

    async def purchase(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("lines"), list):
            return web.json_response({"error": "lines", "field": "lines"}, status=422)
        total = sum(int(line.get("amount_minor", 0)) for line in body["lines"])
        return web.json_response(
            {"transaction_id": body.get("transaction_id"), "points": total // 100}, status=201
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(PATH, purchase)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# --- the workload ---------------------------------------------------------------------------------


def bodies(count: int, members: int, seed: int, prefix: str) -> list[bytes]:
    """Purchases of 1-4 lines from random members, every transaction id unique."""
    rng = random.Random(seed)
    found = []
    for i in range(count):
        lines = []
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            line: dict[str, Any] = {
                "sku": f"SKU-{rng.randrange(5000):05d}",
                "category": rng.choice(CATEGORIES),
                "qty": rng.choice((1, 1, 1, 2, 3)),
                "amount_minor": rng.randrange(2_000, 150_000),
            }
            brand = rng.choice(BRANDS)
            if brand:
                line["brand"] = brand
            if rng.random() < 0.1:
                line["discounted"] = True
            lines.append(line)
        body = {
            "transaction_id": f"{prefix}-{i:08d}",
            "phone": member_phone(rng.randrange(members)),
            "lines": lines,
        }
        found.append(json.dumps(body).encode())
    return found


async def drive(server: Server, key: str, payloads: list[bytes], concurrency: int, into: Result):
    import aiohttp

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    pending = iter(payloads)
    url = server.url + PATH

    async def worker(http: aiohttp.ClientSession) -> None:
        for payload in pending:
            into.sent += 1
            began = time.perf_counter()
            try:
                async with http.post(url, data=payload, headers=headers) as response:
                    answer = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                into.errors += 1
                if len(into.error_samples) < 5:
                    into.error_samples.append(f"{type(exc).__name__}: {exc}")
                continue
            into.latencies.append(time.perf_counter() - began)
            if status == 201:
                into.ok += 1
            else:
                into.errors += 1
                if len(into.error_samples) < 5:
                    into.error_samples.append(f"{status}: {answer[:200]!r}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


async def measure(
    server: Server, key: str, warmup: list[bytes], timed: list[bytes], concurrency: int
) -> Result:
    await drive(server, key, warmup, concurrency, Result(server.name))
    result = Result(server.name)
    before = inbound.cpu_seconds(server.process.pid)
    began = time.perf_counter()
    await drive(server, key, timed, concurrency, result)
    result.elapsed = time.perf_counter() - began
    after = inbound.cpu_seconds(server.process.pid)
    if before is not None and after is not None:
        result.server_cpu = sum(after.values()) - sum(before.get(t, 0.0) for t in after)
    return result


# --- the database ---------------------------------------------------------------------------------


async def make_key(url: str) -> str:
    """An API key for the demo club, made through the store as `klubb apikey create` does."""
    from store.clubs import apikeys, programs
    from store.database import open_database

    db = open_database(url)
    try:

        def work(session: Any) -> str:
            program = programs.by_number(session, inbound.CLUB_NUMBER)
            _, secret = apikeys.create(
                session, program.id, name="bench-till", now=dt.datetime.now(dt.UTC)
            )
            return secret

        return await db.run(work)
    finally:
        await db.close()


async def check(url: str) -> dict[str, int]:
    """Rows recorded, and the ledger against the purchases' own points (the whole database:
    the caller subtracts what was there before the bench)."""
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.models import LedgerEntry, PointLot, Purchase, PurchaseLine

    engine = create_async_engine(inbound.async_url(url))
    try:
        async with engine.connect() as conn:

            async def one(query: Any) -> int:
                return int((await conn.execute(query)).scalar_one() or 0)

            return {
                "purchases": await one(select(func.count()).select_from(Purchase)),
                "lines": await one(select(func.count()).select_from(PurchaseLine)),
                "purchase points": await one(select(func.sum(Purchase.points))),
                "ledger points": await one(select(func.sum(LedgerEntry.points))),
                "lot points": await one(select(func.sum(PointLot.remaining))),
            }
    finally:
        await engine.dispose()


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=100_000, help="timed purchases")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--members", type=int, default=20_000, help="members to pre-populate")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed purchases first")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temp dir; a PostgreSQL URL's schema public is "
        "DROPPED and recreated",
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--skip-bare", action="store_true", help="measure Klubb only")
    parser.add_argument(
        "--klubb-prefix",
        default="",
        help='run `klubb serve` under this, e.g. "py-spy record -r 200 -f raw -o /tmp/k.txt --"',
    )
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "KEY"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server is not None:
        bare_server(int(args.bare_server[0]), args.bare_server[1])
        return 0
    sys.path.insert(0, str(REPO))

    signal.signal(signal.SIGTERM, inbound._interrupted)
    print(machine())
    with tempfile.TemporaryDirectory(prefix="klubb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'klubb.db'}"
        port, bare_port = free_port(), free_port()
        env = inbound.server_env(url, port)
        began = time.perf_counter()
        if not inbound.prepare_database(url, env):
            return 2
        version = asyncio.run(inbound.populate(url, args.members))
        key = asyncio.run(make_key(url))
        print(
            f"database: {version}, {args.members:,} members, demo club's earning rules, punch card"
            f" and bonus brand; ready in {time.perf_counter() - began:.1f} s"
        )
        # What `klubb init --demo` already recorded: the checks count only the bench's own.
        before = asyncio.run(check(url))
        warmup = bodies(args.warmup, args.members, args.seed, "W")
        timed = bodies(args.purchases, args.members, args.seed + 1, "T")
        print(
            f"load: {args.purchases:,} purchases (1-4 lines) after {args.warmup:,} to warm up,"
            f" {args.concurrency} in flight"
        )
        servers: list[Server] = []
        results: list[Result] = []
        try:
            if not args.skip_bare:
                bare = [sys.executable, str(Path(__file__).resolve()), "--bare-server"]
                servers.append(
                    start_server("bare", [*bare, str(bare_port), key], env, bare_port, tmp)
                )
            prefix = shlex.split(args.klubb_prefix)
            servers.append(
                start_server("klubb", [*prefix, *klubb_command(), "serve"], env, port, tmp)
            )
            for server in servers:
                wait_ready(server)
            for server in servers:
                results.append(asyncio.run(measure(server, key, warmup, timed, args.concurrency)))
        finally:
            for server in servers:
                stop_server(server)
        after = asyncio.run(check(url))
        counts = {name: after[name] - before[name] for name in after}
        return report(results, servers, counts, args.warmup)


def report(results: list[Result], servers: list[Server], counts: dict[str, int], warm: int) -> int:
    print()
    print(f"{'server':<7}{'per s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'µs':>8}")
    for r in results:
        cpu = f"{r.server_cpu / r.sent * 1e6:8.0f}" if r.server_cpu and r.sent else f"{'-':>8}"
        print(
            f"{r.name:<7}{r.rate:>9,.0f}{r.percentile_ms(0.5):>9.1f}{r.percentile_ms(0.9):>9.1f}"
            f"{r.percentile_ms(0.99):>9.1f}{r.errors:>8}{cpu}"
        )
    print("(µs: the server process's CPU per purchase)")
    klubb = results[-1]
    if len(results) == 2:
        print(f"ratio klubb/bare: {klubb.rate / results[0].rate:.3f}")
    met = klubb.rate >= TARGET_RATE
    print(
        f"verdict: {klubb.rate:,.0f} purchases/s {'>=' if met else '<'} {TARGET_RATE:.0f}"
        f" {'MET' if met else 'MISSED'}"
    )
    print("recorded by the bench: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    failed = False
    if counts["purchases"] != klubb.ok + warm:
        print("bench: purchases recorded differ from the 201s answered", file=sys.stderr)
        failed = True
    if not counts["purchase points"] == counts["ledger points"] == counts["lot points"]:
        print("bench: the ledger does not add up to the purchases' points", file=sys.stderr)
        failed = True
    for server, result in zip(servers, results, strict=True):
        if result.errors:
            print(
                f"{server.name}: {result.errors} errors; first: {result.error_samples[:3]}\n"
                f"{server.log_tail(15)}",
                file=sys.stderr,
            )
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
