"""Bench: campaign links that count (/c/{token}) against a bare aiohttp redirect, and the
member's page (/m/{token}) on a big club.

    .venv/bin/python tests/bench/links.py [--members 100000] [--requests 20000]
        [--concurrency 32] [--links 20000] [--pages 1000] [--page-requests 2000]
        [--page-concurrency 1] [--database-url URL]

One run (tests/bench/inbound.py's machinery): a fresh database (a SQLite file in a temp dir, or
the PostgreSQL database given, its schema public DROPPED), `klubb migrate`, `klubb init --demo`
(300 demo members with purchases, points and coupons), `--members` active members with consent
in bulk, a broadcast with `--links` short links to the demo's address (one per member, as the
sender makes them: random 16-character tokens, the SHA-256 kept) and `--pages` member-page links
(the demo's members first, then the bench's). Then two servers as processes of their own on
loopback: the real app (bot.app.create_app, scheduler off; its per-address limits raised, since
every request of the bench comes from 127.0.0.1, their cost still paid) and a bare aiohttp
handler answering the same 302 with the same Location and headers, no database. From this
process, `--concurrency` in flight with a phone's User-Agent:
- redirects: `--requests` GETs of the short links at each server (after `--warmup` untimed);
  every one of Klubb's is a counted tap (one indexed lookup, one insert through the SQLite
  writer); redirects/s of each and the ratio (target >= 0.3, issue 15);
- the member page: `--page-requests` GETs of the page links at Klubb, `--page-concurrency` in
  flight (1: a member at the till); p50/p90/p99 (target p99 < 30 ms on SQLite with 1M members).
Then it checks that every redirect Klubb answered was counted once. Exits 0 on a good run (no
errors, no tap lost or counted twice), whether or not a target is met (the verdict says);
1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import inbound
from inbound import REPO, Result, Server

RATIO_TARGET = 0.3
PAGE_P99_TARGET_MS = 30.0
TARGET = "https://www.torshovsport.no/vintersalg?utm_source=sms"
# A member tapping the link in their SMS app: a phone's browser.
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
BATCH = 5_000


# --- the servers (processes of their own) -----------------------------------------------------


def bare_server(port: int) -> None:
    """The reference: a 302 to the same address with the same headers, no database."""
    import logging

    from aiohttp import web

    logging.basicConfig(level=logging.WARNING)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": TARGET, **HEADERS})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/c/{token}", redirect)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def klubb_server(port: int) -> None:
    """The real app as `klubb serve` builds it (KLUBB_* from the environment), with the page
    limits per address raised: the bench is one address asking thousands of times a minute."""
    import logging

    from aiohttp import web

    from bot.app import create_app
    from bot.page.routes import LIMIT, MISSES
    from bot.settings import Settings

    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    app[LIMIT].limit = app[MISSES].limit = 1 << 40
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# --- the data ---------------------------------------------------------------------------------


def tokens(count: int, seed: int) -> list[str]:
    """Tokens shaped as store.outreach.clicks and store.members.links make them (URL-safe)."""
    rng = random.Random(seed)
    return [base64.urlsafe_b64encode(rng.randbytes(12)).decode().rstrip("=") for _ in range(count)]


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def fill(url: str, links: list[str], pages: list[str]) -> None:
    """A broadcast with one short link per member (`links`), and page links (`pages`) for the
    first members: the demo's, with their points and coupons, then the bench's."""
    from sqlalchemy import insert, select, text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.orm import Session

    from store.models import ClickLink, Member, MemberLink, Program, ProgramNumber
    from store.outreach import campaigns

    now = dt.datetime.now(dt.UTC)
    engine = create_async_engine(inbound.async_url(url))
    try:
        async with engine.begin() as conn:
            program_id = (
                await conn.execute(
                    select(Program.id)
                    .join(ProgramNumber)
                    .where(ProgramNumber.number == inbound.CLUB_NUMBER)
                )
            ).scalar_one()

            def broadcast(sync: Any) -> int:
                with Session(bind=sync) as session:
                    program = session.get(Program, program_id)
                    assert program is not None
                    made = campaigns.create_broadcast(
                        session,
                        program,
                        name="Vintersalg",
                        texts={"nb": f"Vintersalg! Se {TARGET}"},
                        segment=None,
                        now=now,
                    )
                    session.flush()
                    return made.id

            campaign_id = await conn.run_sync(broadcast)
            members = list(
                (
                    await conn.execute(
                        select(Member.id)
                        .where(Member.program_id == program_id, Member.status == "active")
                        .order_by(Member.id)
                        .limit(max(len(links), len(pages)))
                    )
                ).scalars()
            )
            rows = [
                {
                    "program_id": program_id,
                    "campaign_id": campaign_id,
                    "message_id": None,
                    "member_id": members[index % len(members)],
                    "url": TARGET,
                    "token_hash": sha(token),
                    "created_at": now,
                    "expires_at": now + dt.timedelta(days=90),
                }
                for index, token in enumerate(links)
            ]
            for start in range(0, len(rows), BATCH):
                await conn.execute(insert(ClickLink.__table__), rows[start : start + BATCH])
            await conn.execute(
                insert(MemberLink.__table__),
                [
                    {
                        "program_id": program_id,
                        "member_id": members[index % len(members)],
                        "purpose": "page",
                        "token_hash": sha(token),
                        "created_at": now,
                        "expires_at": now + dt.timedelta(days=30),
                        "ended_at": None,
                    }
                    for index, token in enumerate(pages)
                ],
            )
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    finally:
        await engine.dispose()


async def taps_counted(url: str) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.models import LinkClick

    engine = create_async_engine(inbound.async_url(url))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(LinkClick))).scalar_one()
    finally:
        await engine.dispose()


# --- driving ----------------------------------------------------------------------------------


async def get_all(
    server: Server, paths: list[str], concurrency: int, into: Result, expect: int
) -> None:
    """GET every path, `concurrency` in flight, without following redirects."""
    import aiohttp

    pending = iter(paths)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=inbound.REQUEST_TIMEOUT)
    headers = {"User-Agent": PHONE}

    async def worker(http: aiohttp.ClientSession) -> None:
        for path in pending:
            into.sent += 1
            began = time.perf_counter()
            try:
                async with http.get(server.url + path, allow_redirects=False) as response:
                    await response.read()
                    status = response.status
                    location = response.headers.get("Location")
            except (aiohttp.ClientError, TimeoutError) as exc:
                into.errors += 1
                if len(into.error_samples) < 5:
                    into.error_samples.append(f"{type(exc).__name__}: {exc}")
                continue
            into.latencies.append(time.perf_counter() - began)
            if status == expect and (expect != 302 or location == TARGET):
                into.ok += 1
            else:
                into.errors += 1
                if len(into.error_samples) < 5:
                    into.error_samples.append(f"{status} {location} for {path}")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


def measure(
    server: Server, warmup: list[str], timed: list[str], concurrency: int, expect: int
) -> Result:
    """Warm up untimed, then time the paths; the server's CPU over the timed part."""
    warm = Result(server.name)
    asyncio.run(get_all(server, warmup, concurrency, warm, expect))
    result = Result(server.name, warmup_ok=warm.ok)
    result.errors, result.error_samples = warm.errors, warm.error_samples
    before = inbound.cpu_seconds(server.process.pid)
    client_before = time.process_time()
    began = time.perf_counter()
    asyncio.run(get_all(server, timed, concurrency, result, expect))
    result.elapsed = time.perf_counter() - began
    result.client_cpu = time.process_time() - client_before
    after = inbound.cpu_seconds(server.process.pid)
    if before is not None and after is not None:
        result.server_cpu = sum(after.values()) - sum(before.get(t, 0.0) for t in after)
    return result


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000, help="members to pre-populate")
    parser.add_argument("--requests", type=int, default=20_000, help="timed redirects a server")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed redirects first")
    parser.add_argument("--concurrency", type=int, default=32, help="redirects in flight")
    parser.add_argument("--links", type=int, default=20_000, help="short links in the database")
    parser.add_argument("--pages", type=int, default=1_000, help="member-page links")
    parser.add_argument("--page-requests", type=int, default=2_000, help="timed page GETs")
    parser.add_argument("--page-concurrency", type=int, default=1, help="page GETs in flight")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temp dir; a PostgreSQL URL's schema public is "
        "DROPPED and recreated",
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--klubb-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server is None and args.klubb_server is None:
        positive = ("requests", "concurrency", "links", "pages", "page_requests")
        if any(getattr(args, name) < 1 for name in positive) or args.page_concurrency < 1:
            parser.error(
                "--requests, --concurrency, --links, --pages, --page-requests and"
                " --page-concurrency must be positive"
            )
        if args.warmup < 0:
            parser.error("--warmup must not be negative")
        if not 100 <= args.members < 10_000_000:
            parser.error("--members must be from 100 to 9,999,999")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server is not None:
        bare_server(args.bare_server)
        return 0
    if args.klubb_server is not None:
        sys.path.insert(0, str(REPO))
        klubb_server(args.klubb_server)
        return 0
    inbound.start()
    with tempfile.TemporaryDirectory(prefix="klubb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'klubb.db'}"
        kind = inbound.database_kind(url)
        if kind is None:
            return 2
        klubb_port, bare_port = inbound.free_port(), inbound.free_port()
        # A key of its own, as production has one (else the admin warns of it at start).
        env = {**inbound.server_env(url, klubb_port), "KLUBB_SECRET_KEY": "bench-" + "k" * 32}
        began = time.perf_counter()
        if not inbound.prepare_database(url, env):
            return 2
        version = asyncio.run(inbound.populate(url, args.members))
        links = tokens(args.links, args.seed)
        pages = tokens(args.pages, args.seed + 1)
        asyncio.run(fill(url, links, pages))
        print(
            f"database: {version} ({kind}), {args.members:,} members (and the demo's 300),"
            f" {args.links:,} short links, {args.pages:,} page links,"
            f" ready in {time.perf_counter() - began:.1f} s"
        )
        rng = random.Random(args.seed)
        warmup = [f"/c/{rng.choice(links)}" for _ in range(args.warmup)]
        timed = [f"/c/{rng.choice(links)}" for _ in range(args.requests)]
        page_paths = [f"/m/{rng.choice(pages)}" for _ in range(args.page_requests)]
        print(
            f"load: {args.requests:,} redirects a server after {args.warmup:,} to warm up,"
            f" {args.concurrency} in flight; {args.page_requests:,} member pages,"
            f" {args.page_concurrency} in flight"
        )
        servers: list[Server] = []
        here = [sys.executable, str(Path(__file__).resolve())]
        try:
            servers.append(
                inbound.start_server(
                    "bare", [*here, "--bare-server", str(bare_port)], env, bare_port, tmp
                )
            )
            servers.append(
                inbound.start_server(
                    "klubb", [*here, "--klubb-server", str(klubb_port)], env, klubb_port, tmp
                )
            )
            for server in servers:
                inbound.wait_ready(server)
            bare, klubb = (
                measure(server, warmup, timed, args.concurrency, 302) for server in servers
            )
            page_warmup = page_paths[: min(100, len(page_paths))]
            page = measure(servers[1], page_warmup, page_paths, args.page_concurrency, 200)
            counted = asyncio.run(taps_counted(url))
        finally:
            for server in servers:
                inbound.stop_server(server)
        return report(bare, klubb, page, counted, servers, kind, args.members)


def report(
    bare: Result,
    klubb: Result,
    page: Result,
    counted: int,
    servers: list[Server],
    kind: str,
    members: int,
) -> int:
    """Print the figures and the verdict; 0 for a good run."""
    print()
    print(
        f"{'server':<13}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'errors':>8}{'srv µs':>9}"
    )
    for name, result in (("bare 302", bare), ("klubb /c/", klubb), ("klubb /m/", page)):
        cpu = (
            f"{result.server_cpu / result.sent * 1e6:9.0f}"
            if result.server_cpu is not None and result.sent
            else f"{'-':>9}"
        )
        print(
            f"{name:<13}{result.rate:>9,.0f}{result.percentile_ms(0.50):>9.1f}"
            f"{result.percentile_ms(0.90):>9.1f}{result.percentile_ms(0.99):>9.1f}"
            f"{max(result.latencies, default=0) * 1000:>9.1f}{result.errors:>8}{cpu}"
        )
    print("(srv µs: CPU of the server process per request, all its threads)")
    ratio = klubb.rate / bare.rate if bare.rate else 0.0
    print(f"ratio klubb/bare redirects: {ratio:.3f}")
    p99 = page.percentile_ms(0.99)
    met_ratio, met_page = ratio >= RATIO_TARGET, p99 < PAGE_P99_TARGET_MS
    scope = (
        ""
        if kind == "sqlite" and members >= 1_000_000
        else f" ({kind}, {members:,} members: the page target is set for SQLite with 1,000,000)"
    )
    print(
        f"verdict: ratio {ratio:.3f} {'>=' if met_ratio else '<'} {RATIO_TARGET}"
        f" {'MET' if met_ratio else 'MISSED'}; member page p99 {p99:.1f} ms"
        f" {'<' if met_page else '>='} {PAGE_P99_TARGET_MS:.0f} ms"
        f" {'MET' if met_page else 'MISSED'}{scope}"
    )
    answered = klubb.warmup_ok + klubb.ok
    print(f"taps counted: {counted:,} (redirects klubb answered: {answered:,})")
    failed = False
    if counted != answered:
        print("bench: the taps counted differ from the redirects answered", file=sys.stderr)
        failed = True
    for server, results in ((servers[0], (bare,)), (servers[1], (klubb, page))):
        errors = sum(result.errors for result in results)
        logged = server.problems_logged()
        if errors or logged:
            samples = [sample for result in results for sample in result.error_samples][:3]
            print(
                f"{server.name}: {errors} errors, {logged} problem lines logged; first:"
                f" {samples}\n{server.log_tail(15)}",
                file=sys.stderr,
            )
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt as stop:
        print(f"bench: interrupted ({stop}); servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
