"""Several servers bench: signed webhooks at one `klubb serve`, then spread over two, on PostgreSQL.

The same workload as inbound.py (POINTS, HELP, chatter, MYDATA, JOIN then YES, STOP over
pre-populated members), `--concurrency` (32) in flight from one client, every request to the
next server in turn. Prints texts/s, p50/p99 and two/one. On one machine the servers, the
client and PostgreSQL share its cores: see README "Benchmarks" for what that means here.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import inbound
from inbound import REQUEST_TIMEOUT, WEBHOOK, Result, Script, Server

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/klubb_bench_multiprocess"


async def send_spread(
    http: Any, servers: list[Server], scripts: list[Script], concurrency: int, into: Result
) -> None:
    """inbound.send_all, each request to the next server in turn (a load balancer's round
    robin): a JOIN and its YES may well reach different servers."""
    import aiohttp

    pending = iter(scripts)
    targets = itertools.cycle([server.url + WEBHOOK for server in servers])

    async def worker() -> None:
        for script in pending:
            for request in script:
                into.sent += 1
                began = time.perf_counter()
                try:
                    async with http.post(
                        next(targets), data=request.body, headers=request.headers
                    ) as resp:
                        payload = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    into.errors += 1
                    if len(into.error_samples) < 5:
                        into.error_samples.append(f"{type(exc).__name__}: {exc}")
                    continue
                into.latencies.append(time.perf_counter() - began)
                if status == 200 and payload.startswith(b"<?xml"):
                    into.ok += 1
                else:
                    into.errors += 1
                    if len(into.error_samples) < 5:
                        into.error_samples.append(f"{status}: {payload[:200]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(
    name: str, servers: list[Server], warmup: list[Script], timed: list[Script], concurrency: int
) -> Result:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        warm = Result(name)
        await send_spread(http, servers, warmup, concurrency, warm)
        result = Result(name, warmup_ok=warm.ok)
        result.errors = warm.errors
        result.error_samples = warm.error_samples
        before = [inbound.cpu_seconds(s.process.pid) for s in servers]
        client_before = time.process_time()
        began = time.perf_counter()
        await send_spread(http, servers, timed, concurrency, result)
        result.elapsed = time.perf_counter() - began
        result.client_cpu = time.process_time() - client_before
        after = [inbound.cpu_seconds(s.process.pid) for s in servers]
        if all(x is not None for x in (*before, *after)):
            result.server_cpu = sum(
                sum(a.values()) - sum(b.get(tid, 0.0) for tid in a)
                for b, a in zip(before, after, strict=True)
            )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6_000, help="timed texts per pass")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--members", type=int, default=20_000, help="members to pre-populate")
    parser.add_argument("--warmup", type=int, default=500, help="untimed texts per pass first")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_URL,
        help="PostgreSQL; its schema public is DROPPED and recreated (created if missing)",
    )
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.warmup < 0 or args.concurrency < 1:
        parser.error("--messages and --concurrency must be positive, --warmup not negative")
    if not 100 <= args.members < 10_000_000:
        parser.error("--members must be from 100 to 9,999,999")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inbound.start()
    if inbound.database_kind(args.database_url) != "postgresql":
        print("bench: several servers share one PostgreSQL database: give its URL", file=sys.stderr)
        return 2
    url = args.database_url
    with tempfile.TemporaryDirectory(prefix="klubb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        began = time.perf_counter()
        if not inbound.prepare_database(url, inbound.server_env(url, inbound.free_port())):
            return 2
        version = asyncio.run(inbound.populate(url, args.members))
        print(
            f"database: {version}, {args.members:,} active members with consent,"
            f" ready in {time.perf_counter() - began:.1f} s"
        )
        # One workload for both passes: every MessageSid and every new number is unique.
        workload = inbound.Workload(args.members, args.seed)
        passes = []
        for name, count in (("1 server", 1), ("2 servers", 2)):
            warmup = workload.scripts(args.warmup)[0] if args.warmup else []
            passes.append((name, count, warmup, workload.scripts(args.messages)[0]))
        print(
            f"load: {args.messages:,} signed POSTs per pass after {args.warmup:,} to warm up,"
            f" {args.concurrency} in flight, round robin over the servers; scheduler off"
        )
        results: list[Result] = []
        all_servers: list[Server] = []
        try:
            for name, count, warmup, timed in passes:
                servers = []
                for n in range(count):
                    port = inbound.free_port()
                    command = [*inbound.klubb_command(), "serve"]
                    # A key of its own: no warning about one made per process in the log.
                    env = {**inbound.server_env(url, port), "KLUBB_SECRET_KEY": "b" * 32}
                    label = f"klubb{n + 1}-of-{count}"
                    servers.append(inbound.start_server(label, command, env, port, tmp))
                all_servers += servers
                for server in servers:
                    inbound.wait_ready(server)
                results.append(asyncio.run(measure(name, servers, warmup, timed, args.concurrency)))
                for server in servers:
                    inbound.stop_server(server)
            counts_after = asyncio.run(inbound.row_counts(url))
        finally:
            for server in all_servers:
                inbound.stop_server(server)
        return 1 if report(results, all_servers, counts_after) else 0


def report(results: list[Result], servers: list[Server], counts_after: dict[str, int]) -> bool:
    """Print the figures; whether anything failed (errors, lost or doubled texts)."""
    print()
    print(
        f"{'servers':<10}{'texts/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
        f"{'srv µs':>9}{'cli µs':>9}"
    )
    for result in results:
        server_us = (
            f"{result.server_cpu / result.sent * 1e6:9.0f}"
            if result.server_cpu is not None and result.sent
            else f"{'-':>9}"
        )
        print(
            f"{result.name:<10}{result.rate:>9,.0f}{result.percentile_ms(0.50):>9.1f}"
            f"{result.percentile_ms(0.99):>9.1f}{max(result.latencies, default=0) * 1000:>9.1f}"
            f"{result.errors:>8}{server_us}{result.client_cpu / result.sent * 1e6:9.0f}"
        )
    print("(srv µs: CPU per text of the Klubb servers together; PostgreSQL's is not counted)")
    one, two = results
    print(f"two servers / one: {two.rate / one.rate if one.rate else 0.0:.2f}")
    expected = sum(r.warmup_ok + r.ok for r in results)
    stored = counts_after["inbound_messages"]
    print(f"stored {stored:,} inbound texts (answered 200: {expected:,})")
    failed = stored != expected
    if failed:
        print("bench: stored inbound texts differ from the texts answered", file=sys.stderr)
    for result in results:
        if result.errors:
            print(f"{result.name}: {result.errors} errors: {result.error_samples[:3]}")
            failed = True
    for server in servers:
        if server.problems_logged():
            print(f"{server.name} logged problems:\n{server.log_tail(30)}", file=sys.stderr)
    return failed


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt as stop:
        print(f"bench: interrupted ({stop}); servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
