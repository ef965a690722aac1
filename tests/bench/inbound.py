"""Inbound bench: signed Twilio webhooks at `klubb serve` and at a bare aiohttp handler.

The bare handler (run by this file with --bare-server PORT) parses the same form, checks the same
signature and answers the same kind of TwiML, so klubb/bare is what Klubb's own work costs.
Targets (../shared/PERFORMANCE.md): klubb/bare >= 0.25 on SQLite, p99 < 50 ms at 32 in flight.
See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import platform
import pwd
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[2]
AUTH_TOKEN = "bench-auth-token"
PUBLIC_URL = "https://klubb.example.com"
WEBHOOK = "/sms/twilio"
CLUB_NUMBER = "2020"  # the demo club's number (`klubb init --demo`)
ACCOUNT_SID = "AC" + "b" * 32
FORM = "application/x-www-form-urlencoded"
# About as long as the menu reply most of Klubb's turns give.
BARE_REPLY = "Torshov Sport: send HJELP, SPRÅK, MINE DATA, SLETT eller STOPP."

RATIO_TARGET = 0.25
P99_TARGET_MS = 50.0
TARGET_CONCURRENCY = 32

INSERT_BATCH = 5_000
# The provider ids of the texts `populate` writes as the club's history, and their replies.
HISTORY_SID = "SMhistory"
_HISTORY_TEXT_COLUMNS = [
    *("program_id", "provider_sid", "member_id", "from_number", "to_number", "body", "intent"),
    *("reply", "received_at", "not_understood"),
]
_HISTORY_REPLY_COLUMNS = [
    *("program_id", "member_id", "inbound_id", "kind", "status", "to_number", "from_number"),
    *("body", "segments", "created_at", "sent_at"),
]
READY_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

# The kinds of script and how often each is picked (a JOIN script is two texts: JOIN, then YES).
MIX: dict[str, int] = {
    "points": 30,
    "help": 12,
    "chatter": 37,
    "mydata": 2,
    "join": 8,
    "stop": 2,
}
POINTS = ("POINTS", "Poeng", "poeng?", "SALDO", "Poäng")
HELP = ("HELP", "Hjelp", "info", "HJÄLP", "help please")
CHATTER = (
    "Hei! Når åpner dere i morgen?",
    "Har dere joggesko i str 42?",
    "thanks",
    "ok",
    "Is the sale still on this weekend?",
    "Takk for sist 😊",
    "Hvor mange poeng har jeg?",
    "Hej, vad kostar skidorna?",
    "hello",
    "??",
    "Kan jeg bytte en jakke uten kvittering?",
    "Jeg kjøpte sykkel i går, fikk jeg poeng for den?",
    "lol",
    "Hvem er dette?",
    "Tusen takk for rabatten, dere er best!",
)
MYDATA = ("MYDATA", "mine data")
JOIN = ("JOIN", "Bli med", "join")
YES = ("YES", "Ja", "ja takk", "JA")
STOP = ("STOP", "Stopp", "meld meg av")


# --- the bare server (a separate process) ---------------------------------------------------------


def bare_server(port: int) -> None:
    """The reference: the same form, the same signature check, the same kind of TwiML."""
    import logging

    from aiohttp import web
    from twilio.request_validator import RequestValidator
    from twilio.twiml.messaging_response import MessagingResponse

    logging.basicConfig(level=logging.WARNING)
    public_url = os.environ.get("KLUBB_PUBLIC_URL", PUBLIC_URL).rstrip("/")
    validator = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN", AUTH_TOKEN))

    async def sms(request: web.Request) -> web.Response:
        if request.content_type != FORM:
            return web.json_response({"error": f"expected {FORM}"}, status=415)
        form = await request.post()
        params = {key: value for key, value in form.items() if isinstance(value, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        url = public_url + request.path_qs
        if not signature or not validator.validate(url, params, signature):
            return web.json_response({"error": "wrong X-Twilio-Signature"}, status=403)
        response = MessagingResponse()
        response.message(BARE_REPLY)
        return web.Response(text=str(response), content_type="application/xml")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post(WEBHOOK, sms)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# --- the workload ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    body: bytes
    headers: dict[str, str]


# The texts of one phone, sent one after another (JOIN waits for its answer before YES).
Script = tuple[Request, ...]


def member_phone(index: int) -> str:
    """The pre-populated members: four in five Norwegian mobiles, one in five Swedish."""
    if index % 5 == 4:
        return f"+4670{index:07d}"
    return f"+479{index:07d}"


def new_phone(index: int) -> str:
    """Numbers Klubb has never seen (different prefixes from the members')."""
    if index % 5 == 4:
        return f"+4673{index:07d}"
    return f"+474{index:07d}"


class Workload:
    """Signed requests built before anything is timed; every MessageSid is unique."""

    def __init__(self, members: int, seed: int) -> None:
        from twilio.request_validator import RequestValidator

        self.rng = random.Random(seed)
        self.validator = RequestValidator(AUTH_TOKEN)
        self.members = members
        # STOP comes from members nobody else texts, so the rest of the mix never turns silent.
        self.stop_pool = max(1, members // 20)
        self.next_stop = 0
        self.next_new = 0
        self.next_sid = 0
        self.kinds = list(MIX)
        self.weights = list(MIX.values())

    def scripts(self, messages: int) -> tuple[list[Script], dict[str, int]]:
        """Scripts holding exactly `messages` texts, and how many texts of each kind."""
        scripts: list[Script] = []
        counts = dict.fromkeys(MIX, 0)
        left = messages
        while left > 0:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            if kind == "join" and left < 2:
                continue
            script = self._script(kind)
            scripts.append(script)
            counts[kind] += len(script)
            left -= len(script)
        return scripts, counts

    def _script(self, kind: str) -> Script:
        pick = self.rng.choice
        if kind == "join":
            phone = new_phone(self.next_new)
            self.next_new += 1
            return (self._request(phone, pick(JOIN)), self._request(phone, pick(YES)))
        if kind == "stop":
            index = self.members - 1 - (self.next_stop % self.stop_pool)
            self.next_stop += 1
            return (self._request(member_phone(index), pick(STOP)),)
        body = pick({"points": POINTS, "help": HELP, "chatter": CHATTER, "mydata": MYDATA}[kind])
        index = self.rng.randrange(self.members - self.stop_pool)
        return (self._request(member_phone(index), body),)

    def _request(self, sender: str, body: str) -> Request:
        sid = f"SM{self.next_sid:032x}"
        self.next_sid += 1
        swedish = sender.startswith("+46")
        # The fields Twilio posts for an inbound SMS (they are all signed, and all parsed).
        form = {
            "ToCountry": "NO",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "SE" if swedish else "NO",
            "To": CLUB_NUMBER,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        signature = self.validator.compute_signature(PUBLIC_URL + WEBHOOK, form)
        return Request(
            urlencode(form).encode(), {"Content-Type": FORM, "X-Twilio-Signature": signature}
        )


# --- the database ---------------------------------------------------------------------------------


def async_url(url: str) -> Any:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    driver = "sqlite+aiosqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+asyncpg"
    return parsed.set(drivername=driver)


async def reset_postgres(url: str) -> None:
    """A clean schema: the bench owns the database it is given (created if it is missing)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    target = async_url(url)
    engine = create_async_engine(target)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        return
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "3D000":  # invalid_catalog_name
            raise
    finally:
        await engine.dispose()
    maintenance = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with maintenance.connect() as conn:
            name = target.database.replace('"', '""')
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await maintenance.dispose()


async def populate(url: str, count: int, history: int = 2) -> str:
    """`count` active members with a consent grant each and `history` texts each answered
    before the bench (a club that has been running: the texts' tables are not empty when
    PostgreSQL plans the turn's statements), in bulk; returns the server version."""
    from sqlalchemy import String, cast, false, insert, literal, select, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.models import (
        ConsentEvent,
        InboundMessage,
        Member,
        OutboxMessage,
        Program,
        ProgramNumber,
    )

    now = dt.datetime.now(dt.UTC)
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            program_id, salt = (
                await conn.execute(
                    select(Program.id, Program.hash_salt)
                    .join(ProgramNumber)
                    .where(ProgramNumber.number == CLUB_NUMBER)
                )
            ).one()
            for start in range(0, count, INSERT_BATCH):
                rows = []
                for index in range(start, min(start + INSERT_BATCH, count)):
                    phone = member_phone(index)
                    joined = now - dt.timedelta(days=index % 700, seconds=index % 86_400)
                    rows.append(
                        {
                            "program_id": program_id,
                            "phone": phone,
                            # As store.members.members.hash_phone computes it.
                            "phone_hash": hashlib.sha256(f"{salt}:{phone}".encode()).hexdigest(),
                            "status": "active",
                            "language": "en" if index % 10 == 3 else None,
                            "joined_at": joined,
                            "created_at": joined,
                            "updated_at": joined,
                        }
                    )
                await conn.execute(insert(Member.__table__), rows)
            events = ConsentEvent.__table__
            when = events.c.created_at.type
            await conn.execute(
                insert(events).from_select(
                    [
                        "program_id",
                        "member_id",
                        "purpose",
                        "action",
                        "wording_id",
                        "wording_language",
                        "wording_text",
                        "channel",
                        "evidence",
                        "created_at",
                    ],
                    select(
                        Member.program_id,
                        Member.id,
                        literal("marketing_sms"),
                        literal("grant"),
                        literal("join.confirm"),
                        literal("nb"),
                        literal("Bench: joined before the bench began."),
                        literal("import"),
                        literal("bench"),
                        literal(now, when),
                    ).where(Member.program_id == program_id),
                )
            )
            inbound, outbox = InboundMessage.__table__, OutboxMessage.__table__
            for past in range(history):
                received = literal(now - dt.timedelta(days=past + 1), inbound.c.received_at.type)
                await conn.execute(
                    insert(inbound).from_select(
                        _HISTORY_TEXT_COLUMNS,
                        select(
                            Member.program_id,
                            literal(f"{HISTORY_SID}{past}-").concat(cast(Member.id, String)),
                            Member.id,
                            Member.phone,
                            literal(CLUB_NUMBER),
                            literal("POINTS"),
                            literal("points"),
                            literal(BARE_REPLY),
                            received,
                            false(),
                        ).where(Member.program_id == program_id),
                    )
                )
            await conn.execute(
                insert(outbox).from_select(
                    _HISTORY_REPLY_COLUMNS,
                    select(
                        inbound.c.program_id,
                        inbound.c.member_id,
                        inbound.c.id,
                        literal("reply"),
                        literal("sent_inline"),
                        inbound.c.from_number,
                        inbound.c.to_number,
                        inbound.c.reply,
                        literal(1),
                        inbound.c.received_at,
                        inbound.c.received_at,
                    ).where(inbound.c.provider_sid.startswith(HISTORY_SID, autoescape=True)),
                )
            )
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
            if engine.dialect.name == "sqlite":
                version = (await conn.execute(text("SELECT sqlite_version()"))).scalar_one()
                return f"SQLite {version}"
            version = (await conn.execute(text("SHOW server_version"))).scalar_one()
            return f"PostgreSQL {version}"
    finally:
        await engine.dispose()


async def row_counts(url: str) -> dict[str, int]:
    """Rows in the tables a turn writes, the history `populate` wrote left out."""
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.models import ConsentEvent, InboundMessage, Member, OutboxMessage

    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            counts = {
                model.__tablename__: (
                    await conn.execute(select(func.count()).select_from(model))
                ).scalar_one()
                for model in (InboundMessage, OutboxMessage, Member, ConsentEvent)
            }
            past = select(func.count()).where(
                InboundMessage.provider_sid.startswith(HISTORY_SID, autoescape=True)
            )
            history = (await conn.execute(past)).scalar_one()
            counts["inbound_messages"] -= history
            counts["outbox_messages"] -= history
            return counts
    finally:
        await engine.dispose()


# --- the servers ----------------------------------------------------------------------------------


def server_env(url: str, port: int) -> dict[str, str]:
    """The environment `klubb` runs with in a bench: its database and port, the bench's Twilio
    token and public URL, no scheduler, warnings only."""
    env = {
        **os.environ,
        "KLUBB_DATABASE_URL": url,
        "KLUBB_HOST": "127.0.0.1",
        "KLUBB_PORT": str(port),
        "KLUBB_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "KLUBB_SCHEDULER": "off",
        "KLUBB_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("KLUBB_CONSOLE_OUTBOX", None)
    return env


def prepare_database(url: str, env: dict[str, str]) -> bool:
    """A fresh schema with the demo club (`klubb migrate`, `klubb init --demo`); False, with
    the reason printed, if a step failed."""
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() == "postgresql":
        asyncio.run(reset_postgres(url))
    for command in (["migrate"], ["init", "--demo"]):
        done = subprocess.run(
            [*klubb_command(), *command], cwd=REPO, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"bench: klubb {' '.join(command)} failed:\n{done.stderr}", file=sys.stderr)
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def klubb_command() -> list[str]:
    script = Path(sys.executable).with_name("klubb")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "bot.cli"]


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def problems_logged(self) -> int:
        """Lines at WARNING or above (the servers log at WARNING: anything there is news)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return sum(
            1 for line in text.splitlines() if " WARNING " in line or " ERROR " in line
        ) + text.count("Traceback")


def start_server(
    name: str, command: list[str], env: dict[str, str], port: int, tmp: Path
) -> Server:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        # Its own process group, so a wrapper (py-spy, cProfile) and its child stop together.
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(name, process, port, log)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT:.0f} s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def cpu_seconds(pid: int) -> dict[int, float] | None:
    """User + system CPU of each thread of a process so far (Linux /proc), by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def postgres_cpu_seconds() -> float | None:
    """User + system CPU so far of every process of the local `postgres` user and of the
    children they reaped (the server's backends, any other client's included: a figure for a
    quiet machine), or None."""
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended
        # With the children it reaped (cutime, cstime): a backend that ended meanwhile counts.
        total += sum(int(f) for f in fields[11:15]) / tick
    return total


# --- driving --------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    sent: int = 0
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    server_cpu: float | None = None
    loop_cpu: float | None = None  # the server's main thread (the event loop)
    postgres_cpu: float | None = None  # the local PostgreSQL server's processes
    client_cpu: float = 0.0
    warmup_ok: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def send_all(
    http: Any, url: str, scripts: list[Script], concurrency: int, into: Result
) -> None:
    """`concurrency` workers share the scripts; each sends one script's texts in order."""
    import aiohttp

    pending = iter(scripts)

    async def worker() -> None:
        for script in pending:
            for request in script:
                into.sent += 1
                began = time.perf_counter()
                try:
                    async with http.post(url, data=request.body, headers=request.headers) as resp:
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
    server: Server, warmup: list[Script], timed: list[Script], concurrency: int
) -> Result:
    import aiohttp

    url = server.url + WEBHOOK
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        warm = Result(server.name)
        await send_all(http, url, warmup, concurrency, warm)
        result = Result(server.name, warmup_ok=warm.ok)
        result.errors = warm.errors
        result.error_samples = warm.error_samples
        cpu_before = cpu_seconds(server.process.pid)
        postgres_before = postgres_cpu_seconds()
        client_before = time.process_time()
        began = time.perf_counter()
        await send_all(http, url, timed, concurrency, result)
        result.elapsed = time.perf_counter() - began
        result.client_cpu = time.process_time() - client_before
        cpu_after = cpu_seconds(server.process.pid)
        postgres_after = postgres_cpu_seconds()
        if postgres_before is not None and postgres_after is not None:
            result.postgres_cpu = postgres_after - postgres_before
        if cpu_before is not None and cpu_after is not None:
            main = server.process.pid
            result.server_cpu = sum(cpu_after.values()) - sum(
                cpu_before.get(tid, 0.0) for tid in cpu_after
            )
            result.loop_cpu = cpu_after.get(main, 0.0) - cpu_before.get(main, 0.0)
    return result


# --- the report -----------------------------------------------------------------------------------


def machine() -> str:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    import aiohttp
    import sqlalchemy

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: nproc {usable} (cpu_count {os.cpu_count()}), load {load},"
        f" Python {platform.python_version()}"
        f" ({platform.system()} {platform.machine()}), SQLAlchemy {sqlalchemy.__version__},"
        f" aiohttp {aiohttp.__version__}"
    )


def row(result: Result) -> str:
    per_msg = (
        f"{result.server_cpu / result.sent * 1e6:9.0f}"
        if result.server_cpu is not None and result.sent
        else f"{'-':>9}"
    )
    client = f"{result.client_cpu / result.sent * 1e6:9.0f}" if result.sent else f"{'-':>9}"
    return (
        f"{result.name:<7}{result.rate:>9,.0f}{result.percentile_ms(0.50):>9.1f}"
        f"{result.percentile_ms(0.90):>9.1f}{result.percentile_ms(0.99):>9.1f}"
        f"{max(result.latencies, default=0) * 1000:>9.1f}{result.errors:>8}{per_msg}{client}"
    )


def verdict(ratio: float, p99: float, kind: str, concurrency: int) -> str:
    parts = []
    if kind == "sqlite":
        parts.append(f"ratio {ratio:.3f} {'>=' if ratio >= RATIO_TARGET else '<'} {RATIO_TARGET}")
        parts[-1] += " MET" if ratio >= RATIO_TARGET else " MISSED"
    else:
        parts.append(f"ratio {ratio:.3f} (the {RATIO_TARGET} target is set for SQLite)")
    met = p99 < P99_TARGET_MS
    parts.append(f"p99 {p99:.1f} ms {'<' if met else '>='} {P99_TARGET_MS:.0f} ms")
    parts[-1] += " MET" if met else " MISSED"
    if concurrency != TARGET_CONCURRENCY:
        parts[-1] += f" (target is at {TARGET_CONCURRENCY} in flight, this ran {concurrency})"
    return "verdict: " + "; ".join(parts)


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="timed texts per server")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--members", type=int, default=100_000, help="members to pre-populate")
    parser.add_argument(
        "--history",
        type=int,
        default=2,
        help="texts each member sent before the bench (0: the texts' tables start empty)",
    )
    parser.add_argument("--warmup", type=int, default=500, help="untimed texts per server first")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temp dir; a PostgreSQL URL's schema public is "
        "DROPPED and recreated",
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--klubb-prefix",
        default="",
        help='run `klubb serve` under this, e.g. "py-spy record -r 250 -f raw -o /tmp/k.txt --"',
    )
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server is None:
        if args.messages < 1 or args.warmup < 0 or args.concurrency < 1:
            parser.error("--messages and --concurrency must be positive, --warmup not negative")
        if not 100 <= args.members < 10_000_000:
            parser.error("--members must be from 100 to 9,999,999")
        if not 0 <= args.history <= 100:
            parser.error("--history must be from 0 to 100")
    return args


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def start() -> None:
    """What a bench's main does first: Klubb importable; stopped from outside (SIGTERM, or
    SIGINT in a background job), the servers and temp files still go; the machine printed."""
    sys.path.insert(0, str(REPO))
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    print(machine())


def database_kind(url: str) -> str | None:
    """sqlite or postgresql, the two a bench runs on; None (said on stderr) for any other."""
    from sqlalchemy.engine import make_url

    kind = make_url(url).get_backend_name()
    if kind not in ("sqlite", "postgresql"):
        print(f"bench: unsupported database {kind}", file=sys.stderr)
        return None
    return kind


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server is not None:
        bare_server(args.bare_server)
        return 0
    start()
    with tempfile.TemporaryDirectory(prefix="klubb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'klubb.db'}"
        kind = database_kind(url)
        if kind is None:
            return 2
        klubb_port, bare_port = free_port(), free_port()
        env = server_env(url, klubb_port)
        began = time.perf_counter()
        if not prepare_database(url, env):
            return 2
        version = asyncio.run(populate(url, args.members, args.history))
        print(
            f"database: {version} ({kind}), {args.members:,} active members with consent"
            f" and {args.history} texts each before,"
            f" ready in {time.perf_counter() - began:.1f} s"
        )

        workload = Workload(args.members, args.seed)
        warmup, _ = workload.scripts(args.warmup) if args.warmup else ([], {})
        timed, counts = workload.scripts(args.messages)
        mix = ", ".join(f"{k} {v / args.messages:.0%}" for k, v in counts.items())
        print(
            f"load: {args.messages:,} signed POSTs per server after {args.warmup:,} to warm up,"
            f" {args.concurrency} in flight; texts: {mix}"
        )

        servers: list[Server] = []
        try:
            reference = [sys.executable, str(Path(__file__).resolve()), "--bare-server"]
            servers.append(start_server("bare", [*reference, str(bare_port)], env, bare_port, tmp))
            prefix = shlex.split(args.klubb_prefix)
            servers.append(
                start_server("klubb", [*prefix, *klubb_command(), "serve"], env, klubb_port, tmp)
            )
            for server in servers:
                wait_ready(server)
            print(f"servers: bare pid {servers[0].process.pid}, klubb pid {servers[1].process.pid}")
            results = [
                asyncio.run(measure(server, warmup, timed, args.concurrency)) for server in servers
            ]
            counts_after = asyncio.run(row_counts(url))
        finally:
            for server in servers:
                stop_server(server)

        if args.klubb_prefix:
            results[1].server_cpu = results[1].loop_cpu = None  # the wrapper's, not Klubb's
        return 1 if report(results, servers, counts_after, kind, args.concurrency) else 0


def report(
    results: list[Result],
    servers: list[Server],
    counts_after: dict[str, int],
    kind: str,
    concurrency: int,
) -> bool:
    """Print the figures and the verdict; whether anything failed (errors, lost texts)."""
    bare, klubb = results
    print()
    print(
        f"{'server':<7}{'msgs/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'errors':>8}{'srv µs':>9}{'cli µs':>9}"
    )
    for result in results:
        print(row(result))
    print("(srv µs / cli µs: CPU per text of the server process / of this client)")
    if klubb.server_cpu is not None and klubb.loop_cpu is not None and klubb.sent:
        loop = klubb.loop_cpu / klubb.sent * 1e6
        other = (klubb.server_cpu - klubb.loop_cpu) / klubb.sent * 1e6
        threads = "the SQLite writer" if kind == "sqlite" else "none expected"
        print(
            f"klubb CPU per text: event loop thread {loop:,.0f} µs,"
            f" other threads ({threads}) {other:,.0f} µs"
        )
    if kind != "sqlite" and klubb.postgres_cpu is not None and klubb.sent:
        print(
            f"PostgreSQL's processes on this machine: {klubb.postgres_cpu / klubb.sent * 1e6:,.0f}"
            " µs of CPU per text (every client's: a figure for a quiet machine)"
        )
    ratio = klubb.rate / bare.rate if bare.rate else 0.0
    print(f"ratio klubb/bare: {ratio:.3f}")
    if bare.errors or klubb.errors:
        print(f"verdict: none, {bare.errors} errors from bare and {klubb.errors} from klubb")
    else:
        print(verdict(ratio, klubb.percentile_ms(0.99), kind, concurrency))

    failed = False
    expected = klubb.warmup_ok + klubb.ok
    stored = counts_after["inbound_messages"]
    print(
        f"klubb stored {stored:,} inbound texts (answered 200: {expected:,}),"
        f" {counts_after['outbox_messages']:,} outbox rows,"
        f" {counts_after['members']:,} members"
    )
    if stored != expected:
        print("bench: stored inbound texts differ from the texts answered", file=sys.stderr)
        failed = True
    for server, result in zip(servers, results, strict=True):
        logged = server.problems_logged()
        if result.errors or logged:
            print(
                f"{server.name}: {result.errors} errors, {logged} problem lines logged;"
                f" first: {result.error_samples[:3]}\n{server.log_tail(15)}",
                file=sys.stderr,
            )
        failed = failed or bool(result.errors)
    return failed


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt as stop:
        print(f"bench: interrupted ({stop}); servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
