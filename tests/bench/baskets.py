"""Baskets bench: POST /api/v1/baskets/evaluate from tills at `klubb serve` and at a bare handler.

Every basket is a member's (by phone, so the tier discount applies) with 1-4 lines and two or
three coupon codes: the member's category coupon and basket coupon, now and then an unknown
code. The bare handler (run by this file with --bare-server PORT KEY) reads the same JSON,
checks the bearer key and answers 200 with a basket of zero discounts, so klubb/bare is what
pricing costs: validation, the member and their tier, the coupons, evaluation.
Target (issue 17): p99 under 20 ms at 32 in flight, on SQLite. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
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
from purchases import BRANDS, CATEGORIES, make_key

PATH = "/api/v1/baskets/evaluate"
TARGET_P99_MS = 20.0
REQUEST_TIMEOUT = 30.0


# --- the bare server (a separate process) ---------------------------------------------------------


def bare_server(port: int, key: str) -> None:
    """The reference: the same body parsed, the same header checked, a 200 with a basket."""
    import hmac
    import logging

    from aiohttp import web

    logging.basicConfig(level=logging.WARNING)
    expected = f"Bearer {key}"

    async def evaluate(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("lines"), list):
            return web.json_response({"error": "lines", "field": "lines"}, status=422)
        lines = [
            {"line": n, "amount_minor": int(line.get("amount_minor", 0)), "discount_minor": 0}
            for n, line in enumerate(body["lines"], start=1)
        ]
        total = sum(line["amount_minor"] for line in lines)
        return web.json_response(
            {"total_minor": total, "to_pay_minor": total, "lines": lines, "applied": []}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(PATH, evaluate)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# --- the database ---------------------------------------------------------------------------------


async def seed_coupons(url: str, holders: int) -> dict[int, list[str]]:
    """Two coupon templates with offers (20 % off shoes from 500 kr; 100 kr off a basket) and a
    coupon of each for the first `holders` members: their codes by member index."""
    from sqlalchemy import select

    from store.clubs import programs
    from store.database import open_database
    from store.loyalty import coupons
    from store.models import Member

    db = open_database(url)
    now = dt.datetime.now(dt.UTC)
    try:

        def work(session: Any) -> dict[int, list[str]]:
            program = programs.by_number(session, inbound.CLUB_NUMBER)
            made = [
                coupons.create_template(
                    session,
                    program,
                    key=key,
                    kind=coupons.CAMPAIGN,
                    benefit={"en": text},
                    valid_days=365,
                    offer=offer,
                )
                for key, text, offer in (
                    (
                        "bench-shoes",
                        "20 % off shoes",
                        {
                            "type": "percent",
                            "value": 20,
                            "scope": "categories",
                            "items": ["shoes", "ski"],
                            "min_basket_minor": 50_000,
                        },
                    ),
                    ("bench-100", "100 kr off", {"type": "amount", "value": 10_000}),
                )
            ]
            phones = {member_phone(i): i for i in range(holders)}
            rows = session.execute(
                select(Member.id, Member.phone).where(Member.phone.in_(list(phones)))
            ).all()
            codes: dict[int, list[str]] = {}
            for member_id, phone in rows:
                index = phones[phone]
                for template in made:
                    held = coupons.issue(
                        session,
                        program.id,
                        member_id,
                        template,
                        f"bench:{template.key}:{index}",
                        now,
                    )
                    codes.setdefault(index, []).append(coupons.display(held.code))
            return codes

        return await db.run(work)
    finally:
        await db.close()


# --- the workload ---------------------------------------------------------------------------------


def bodies(count: int, codes: dict[int, list[str]], seed: int) -> list[bytes]:
    """Baskets of 1-4 lines from coupon holders, each with their codes (1 in 10 an unknown one
    too)."""
    rng = random.Random(seed)
    holders = sorted(codes)
    found = []
    for _ in range(count):
        index = rng.choice(holders)
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
        sent = list(codes[index])
        if rng.random() < 0.1:
            sent.append("ZZZZ-9999")
        body = {"phone": member_phone(index), "lines": lines, "coupon_codes": sent}
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
            if status == 200:
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


async def redeemed(url: str) -> int:
    """Coupons redeemed: evaluating must redeem none."""
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.models import Coupon

    engine = create_async_engine(inbound.async_url(url))
    try:
        async with engine.connect() as conn:
            query = select(func.count()).where(Coupon.redeemed_at.is_not(None))
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baskets", type=int, default=20_000, help="timed evaluations")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--members", type=int, default=20_000, help="members to pre-populate")
    parser.add_argument("--holders", type=int, default=2_000, help="members given two coupons")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed evaluations first")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temp dir; a PostgreSQL URL's schema public is "
        "DROPPED and recreated",
    )
    parser.add_argument("--seed", type=int, default=1717)
    parser.add_argument("--skip-bare", action="store_true", help="measure Klubb only")
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
        codes = asyncio.run(seed_coupons(url, min(args.holders, args.members)))
        print(
            f"database: {version}, {args.members:,} members, {len(codes):,} of them with a "
            f"category and a basket coupon; ready in {time.perf_counter() - began:.1f} s"
        )
        warmup = bodies(args.warmup, codes, args.seed)
        timed = bodies(args.baskets, codes, args.seed + 1)
        print(
            f"load: {args.baskets:,} baskets (1-4 lines, 2-3 codes) after {args.warmup:,} to "
            f"warm up, {args.concurrency} in flight"
        )
        servers: list[Server] = []
        results: list[Result] = []
        try:
            if not args.skip_bare:
                bare = [sys.executable, str(Path(__file__).resolve()), "--bare-server"]
                servers.append(
                    start_server("bare", [*bare, str(bare_port), key], env, bare_port, tmp)
                )
            servers.append(start_server("klubb", [*klubb_command(), "serve"], env, port, tmp))
            for server in servers:
                wait_ready(server)
            for server in servers:
                results.append(asyncio.run(measure(server, key, warmup, timed, args.concurrency)))
        finally:
            for server in servers:
                stop_server(server)
        return report(results, servers, asyncio.run(redeemed(url)))


def report(results: list[Result], servers: list[Server], redeemed: int) -> int:
    print()
    print(f"{'server':<7}{'per s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'µs':>8}")
    for r in results:
        cpu = f"{r.server_cpu / r.sent * 1e6:8.0f}" if r.server_cpu and r.sent else f"{'-':>8}"
        print(
            f"{r.name:<7}{r.rate:>9,.0f}{r.percentile_ms(0.5):>9.1f}{r.percentile_ms(0.9):>9.1f}"
            f"{r.percentile_ms(0.99):>9.1f}{r.errors:>8}{cpu}"
        )
    print("(µs: the server process's CPU per basket)")
    klubb = results[-1]
    if len(results) == 2:
        bare = results[0]
        print(
            f"ratio klubb/bare: {klubb.rate / bare.rate:.3f} in baskets/s, "
            f"{klubb.percentile_ms(0.99) / bare.percentile_ms(0.99):.1f}x the p99"
        )
    p99 = klubb.percentile_ms(0.99)
    met = p99 < TARGET_P99_MS
    print(
        f"verdict: p99 {p99:.1f} ms {'<' if met else '>='} {TARGET_P99_MS:.0f} ms"
        f" {'MET' if met else 'MISSED'}"
    )
    failed = False
    if redeemed:
        print(f"bench: evaluating redeemed {redeemed} coupons", file=sys.stderr)
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
