"""`klubb serve` (the web server and the scheduler), `klubb worker` (the scheduler alone) and
`klubb simulate` (a phone in the terminal, texting the served webhook)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import signal
import sys
import uuid
from typing import Any
from xml.etree import ElementTree

import aiohttp
from aiohttp import web
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from bot.app import create_app, opened_gateway
from bot.cli.common import run_once, schema_is_current
from bot.metrics import serving_metrics
from bot.settings import Settings, SettingsError, check_data_dir
from scheduler.jobs import running_scheduler
from store.clubs import programs
from store.database import open_database
from store.members.phones import club_number, to_e164

log = logging.getLogger("klubb")

# On SIGTERM (or Ctrl-C) `klubb serve` stops listening, then waits this long for the requests
# in flight (a member's turn takes milliseconds; each is answered, or not at all), then the
# scheduler gets jobs.FINISH_SECONDS for the sender's batch in hand: out within 30 s.
SHUTDOWN_SECONDS = 10.0


def add_serve(commands: Any) -> None:
    """`serve` on the `klubb` parser's subcommands."""
    serve = commands.add_parser("serve", help="run the web server (webhooks) and the scheduler")
    serve.set_defaults(command=_serve)


def add_worker(commands: Any) -> None:
    """`worker` on the `klubb` parser's subcommands."""
    worker = commands.add_parser(
        "worker", help="the scheduler alone (sending, campaigns, jobs), without the web server"
    )
    worker.set_defaults(command=_worker)


def add_simulate(commands: Any) -> None:
    """`simulate` on the `klubb` parser's subcommands."""
    simulate = commands.add_parser("simulate", help="text the running server from the terminal")
    simulate.add_argument("--from", dest="sender", default="+4791234567", help="your phone")
    simulate.add_argument("--to", dest="receiver", help="the club's number (default: the first)")
    simulate.add_argument("--url", help="the server (default http://127.0.0.1:KLUBB_PORT)")
    simulate.set_defaults(command=_simulate)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        # Before listening: an admin's import would otherwise fail on its first upload.
        check_data_dir(settings)
    except SettingsError as exc:
        print(f"klubb serve: {exc}", file=sys.stderr)
        return 2
    # A server or worker never migrates by itself: with several processes on one database,
    # the schema changes once, when the operator says so.
    if not schema_is_current(settings, "klubb serve: refusing to start"):
        return 1
    log.info(
        "Klubb listening on http://%s:%s (webhook %s/sms/twilio)",
        settings.host,
        settings.port,
        settings.public_url,
    )
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)
    app.on_shutdown.append(_stopping)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=None,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
    except OSError as exc:
        print(
            cant_listen("serve", settings.host, settings.port, exc, "KLUBB_PORT"), file=sys.stderr
        )
        return 1
    log.info("klubb serve: stopped")
    return 0


async def _freeze_startup_objects(app: web.Application) -> None:
    """What start-up made (modules, the schema, compiled statements) lives as long as the
    process: kept out of the collector's sweeps, whose full passes otherwise walk all of it in
    the middle of a request (the tail of tests/bench/baskets.py's latencies). A request makes
    thousands of objects, nearly all freed as it ends: the youngest generation is swept every
    50,000 instead of every 700 (a few sweeps a request; 2-4 % of a basket's CPU)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def _stopping(app: web.Application) -> None:
    """Said when a shutdown begins: no new connection is taken from here on."""
    log.info("klubb serve: stopping: answering the texts in flight, then the sender's batch")


# --- klubb worker -----------------------------------------------------------------------------


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if not schema_is_current(settings, "klubb worker: refusing to start"):
        return 1
    return asyncio.run(_work(settings))


async def _work(settings: Settings) -> int:
    """The scheduler of `klubb serve` without the web server, until SIGINT or SIGTERM (the
    running jobs then finish their batch in hand: see scheduler.jobs.running_scheduler)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        if stop.is_set():
            # A second signal: the operator won't wait for the batch in hand. Its rows stay
            # claimed and in doubt; the next sender settles them (never sent twice).
            log.warning("klubb worker: stopped at once, without finishing the batch in hand")
            os._exit(1)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, signalled)
    db = open_database(settings.database_url)
    try:
        async with contextlib.AsyncExitStack() as running:
            # GET /metrics first: a port already taken is said before any job has begun.
            try:
                await running.enter_async_context(serving_metrics(settings, db))
            except OSError as exc:
                print(
                    cant_listen(
                        "worker", settings.host, settings.metrics_port, exc, "KLUBB_METRICS_PORT"
                    ),
                    file=sys.stderr,
                )
                return 1
            gateway = await running.enter_async_context(opened_gateway(settings))
            await running.enter_async_context(
                running_scheduler(
                    db,
                    gateway,
                    send_rate=settings.send_rate,
                    in_doubt_after=dt.timedelta(seconds=settings.in_doubt_after),
                    link_base=settings.public_url,
                )
            )
            log.info("klubb worker: sending and running jobs; Ctrl-C to stop")
            await stop.wait()
            log.info("klubb worker: stopping after the batch in hand")
        log.info("klubb worker: stopped")
    finally:
        await db.close()
    return 0


def cant_listen(command: str, host: str, port: int | None, exc: OSError, variable: str) -> str:
    """What `klubb serve` or `klubb worker` says when its port can't be had: one line, naming
    the variable that moves it."""
    return (
        f"klubb {command}: can't listen on {host}:{port}: {exc.strerror or exc}"
        f" (is another `klubb {command}` running? set {variable})"
    )


# --- klubb simulate ---------------------------------------------------------------------------


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    sender = to_e164(args.sender)
    if sender is None:
        print(f"klubb simulate: --from {args.sender!r} is not a phone number", file=sys.stderr)
        return 2
    receiver = args.receiver and club_number(args.receiver)
    if receiver is None:
        # The club's number is read from the database: one never migrated says so, no traceback.
        if not schema_is_current(settings):
            return 1
        receiver = asyncio.run(run_once(settings.database_url, _first_number))
        if receiver is None:
            print("klubb simulate: no club yet: run `klubb init --demo`", file=sys.stderr)
            return 1
    base = (args.url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    return asyncio.run(_chat(settings, base, sender, receiver))


def _first_number(session: Session) -> str | None:
    for program in programs.all_programs(session):
        for number in programs.numbers(session, program.id):
            return number
    return None


async def _chat(settings: Settings, base: str, sender: str, receiver: str) -> int:
    """Each line typed goes through the real webhook path, signed like Twilio signs it."""
    validator = RequestValidator(settings.twilio_auth_token)
    signed_url = settings.public_url + "/sms/twilio"
    interactive = sys.stdin.isatty()
    print(f"Texting {receiver} from {sender}. Type a message; Ctrl-D to quit.")
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return 0
            body = line.rstrip("\n")
            if not interactive:
                print(f"> {body}")
            form = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": "AC" + "0" * 32,
                "From": sender,
                "To": receiver,
                "Body": body,
                "NumMedia": "0",
            }
            headers = {"X-Twilio-Signature": validator.compute_signature(signed_url, form)}
            try:
                async with http.post(base + "/sms/twilio", data=form, headers=headers) as resp:
                    text = await resp.text()
                    status = resp.status
            except aiohttp.ClientError as exc:
                print(f"klubb simulate: can't reach {base}: {exc}", file=sys.stderr)
                return 1
            if status != 200:
                print(f"! {status}: {text}")
                continue
            # Our own server's TwiML, parsed only to print it.
            document = ElementTree.fromstring(text)  # noqa: S314
            replies = [m.text or "" for m in document.iter("Message")]
            for reply in replies:
                print(f"< {reply}")
            if not replies:
                print("  (no reply)")
