"""The `klubb` command: serve, migrate, init a club, API keys, simulate a phone in the terminal.

Campaigns, segments and `klubb worker` are in bot/cli_campaigns.py; admin accounts in
bot/cli_admin.py."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree

import aiohttp
from aiohttp import web
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from bot import cli_admin, cli_campaigns, cli_journeys, cli_report
from bot.app import create_app
from bot.cli_common import NoClub, add_club_options, chosen_club, run_once, schema_is_current
from bot.demo import DEMO_ADMIN, DEMO_CLUB, DEMO_QUESTIONS, fill_demo, set_up_loyalty
from bot.settings import Settings, SettingsError
from flows import understand
from locales import LANGUAGES
from store import admins, apikeys, migrate, programs
from store.errors import InvalidInput, InvalidSetting, NotFound, StoreError
from store.models import Program
from store.phones import club_number, to_e164
from store.text import check_texts

log = logging.getLogger("klubb")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        # Bytes that are not UTF-8 reach Python as lone surrogates: refused before any work.
        check_texts({k: v for k, v in vars(args).items() if k != "command"})
    except InvalidInput as exc:
        given = sys.argv[1:] if argv is None else list(argv)
        print(f"klubb: {_flag(parser, given, exc.field)}: {exc.reason}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"klubb: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        # Alembic tells at INFO which database it checked: noise before every command's answer.
        logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    try:
        return int(args.command(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `klubb campaign list | head`: the reader has seen enough; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _flag(parser: argparse.ArgumentParser, argv: list[str], dest: str) -> str:
    """How the command line names the argument stored as `dest` (--name, or NAME for a
    positional), in the parser and the subcommands `argv` chose."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = next((a for a in argv if a in action.choices), None)
            if chosen is not None:
                return _flag(action.choices[chosen], argv[argv.index(chosen) + 1 :], dest)
    for action in parser._actions:
        if action.dest == dest:
            return (
                action.option_strings[-1]
                if action.option_strings
                else (str(action.metavar or dest.upper()))
            )
    return dest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="klubb", description="SMS-first loyalty club.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also log what Alembic does (schema checks)"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web server (webhooks) and the scheduler")
    serve.set_defaults(command=_serve)

    migrate_ = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate_.set_defaults(command=_migrate)

    init = commands.add_parser("init", help="create a club (or the demo club with --demo)")
    init.add_argument("--demo", action="store_true", help="a ready demo club with 3 questions")
    init.add_argument("--name")
    init.add_argument("--number", action="append", help="a number members text (repeatable)")
    init.add_argument("--country", help="NO, SE, DK, FI, ...")
    init.add_argument("--contact", help="e-mail or phone shown in HELP")
    init.add_argument("--privacy-url")
    init.add_argument("--per-month", type=int, default=2, help="marketing SMS cap (1-3)")
    init.add_argument("--min-age", type=int, default=13, help="minimum age to join (13-18)")
    init.set_defaults(command=_init)

    simulate = commands.add_parser("simulate", help="text the running server from the terminal")
    simulate.add_argument("--from", dest="sender", default="+4791234567", help="your phone")
    simulate.add_argument("--to", dest="receiver", help="the club's number (default: the first)")
    simulate.add_argument("--url", help="the server (default http://127.0.0.1:KLUBB_PORT)")
    simulate.set_defaults(command=_simulate)

    understand_ = commands.add_parser(
        "understand", help="how Klubb reads a text: its intent and why (no database needed)"
    )
    understand_.add_argument("text", help="the text, as a member would send it")
    understand_.add_argument("--language", choices=LANGUAGES, help="the member's language")
    understand_.add_argument(
        "--state", choices=sorted(understand.STATES), default="none", help="the question open"
    )
    understand_.set_defaults(command=_understand)

    apikey = commands.add_parser("apikey", help="API keys for tills and web shops")
    keys = apikey.add_subparsers(required=True, metavar="ACTION")
    create = keys.add_parser("create", help="make a key; its secret is printed once")
    create.add_argument("--name", required=True, help="which till or shop: till-1, webshop")
    create.add_argument("--store", help="the store its purchases are from: oslo-1")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="extend",
        nargs="+",
        metavar="SCOPE",
        help=f"what it may do (repeatable; default all): {', '.join(apikeys.SCOPES)}",
    )
    list_ = keys.add_parser("list", help="the club's keys, revoked ones too")
    revoke = keys.add_parser("revoke", help="stop a key working (within seconds)")
    revoke.add_argument("--name", required=True)
    for action, command in (
        (create, _apikey_create),
        (list_, _apikey_list),
        (revoke, _apikey_revoke),
    ):
        add_club_options(action)
        action.set_defaults(command=command)
    cli_campaigns.add_commands(commands)
    cli_journeys.add_commands(commands)
    cli_report.add_commands(commands)
    cli_admin.add_commands(commands)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if not schema_is_current(settings):
        return 1
    log.info(
        "Klubb listening on http://%s:%s (webhook %s/sms/twilio)",
        settings.host,
        settings.port,
        settings.public_url,
    )
    try:
        web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    except OSError as exc:
        print(
            f"klubb serve: can't listen on {settings.host}:{settings.port}: {exc.strerror}"
            " (is another server running? set KLUBB_PORT)",
            file=sys.stderr,
        )
        return 1
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(migrate.upgrade(settings.database_url))
    print("klubb: database is up to date")
    return 0


def _init(args: argparse.Namespace, settings: Settings) -> int:
    if args.demo:
        club: dict[str, Any] = dict(DEMO_CLUB)
        questions = DEMO_QUESTIONS
    else:
        missing = [
            flag
            for flag, value in (
                ("--name", args.name),
                ("--number", args.number),
                ("--country", args.country),
                ("--contact", args.contact),
                ("--privacy-url", args.privacy_url),
            )
            if not value
        ]
        if missing:
            print(f"klubb init: missing {', '.join(missing)} (or use --demo)", file=sys.stderr)
            return 2
        club = {
            "name": args.name,
            "numbers": args.number,
            "country": args.country,
            "contact": args.contact,
            "privacy_url": args.privacy_url,
        }
        questions = DEMO_QUESTIONS[:2]
    numbers = [club_number(n) for n in club["numbers"]]
    if None in numbers:
        bad = [n for n, c in zip(club["numbers"], numbers, strict=True) if c is None]
        print(f"klubb init: not a phone number or short code: {', '.join(bad)}", file=sys.stderr)
        return 2
    club["numbers"] = numbers
    if not schema_is_current(settings):
        return 1
    now = dt.datetime.now(dt.UTC)
    # The demo owner's password, hashed before the unit of work (argon2 is slow on purpose).
    password = admins.new_password() if args.demo else ""
    password_hash = admins.hash_password(password) if args.demo else ""

    def demo_admin(session: Session, program: Program) -> str:
        """The demo owner account, made once: its password is printed only when it is made."""
        if admins.by_email(session, DEMO_ADMIN) is not None:
            return ""
        admins.create(
            session,
            program.id,
            email=DEMO_ADMIN,
            password_hash=password_hash,
            role=admins.OWNER,
            now=now,
        )
        return (
            f"\nklubb: the web admin is at {settings.public_url}/admin: sign in as {DEMO_ADMIN} "
            f"with the password {password} (shown only this once)"
        )

    def create(session: Session) -> str:
        existing = programs.by_number(session, numbers[0] or "")
        if existing is not None and args.demo:
            return (
                f"klubb: the demo club {existing.name!r} already answers on {numbers[0]}"
                + demo_admin(session, existing)
            )
        program = programs.create(
            session,
            **club,
            marketing_per_month=args.per_month,
            min_age=args.min_age,
            now=now,
        )
        for question in questions:
            programs.add_question(session, program, **question)
        made = f"klubb: created club {program.name!r} (id {program.id}) on {', '.join(numbers)}"
        if args.demo:
            set_up_loyalty(session, program)
            filled = fill_demo(session, program, now)
            made += (
                f"\nklubb: the demo club has {filled.members} members, {filled.purchases} "
                "purchases and a finished campaign"
            )
            made += demo_admin(session, program)
        return made

    try:
        print(asyncio.run(run_once(settings.database_url, create)))
    except StoreError as exc:
        print(f"klubb init: {exc}", file=sys.stderr)
        return 1
    return 0


def _apikey(args: argparse.Namespace, settings: Settings, work: Any) -> int:
    """Run `work(session, program)` for the chosen club and print what it returns: (for stdout,
    for stderr or None). Errors are one line, and exit 1 or 2."""
    if not schema_is_current(settings):
        return 1

    def run(session: Session) -> Any:
        return work(session, chosen_club(session, args))

    try:
        out, note = asyncio.run(run_once(settings.database_url, run))
    except NoClub as exc:
        print(f"klubb apikey: {exc}", file=sys.stderr)
        return 2
    except InvalidSetting as exc:
        flag = "--scope" if exc.field == "scopes" else f"--{exc.field}"
        print(f"klubb apikey: {flag}: {exc.reason}", file=sys.stderr)
        return 2
    except NotFound as exc:
        print(f"klubb apikey: the club has no active key named {exc.key!r}", file=sys.stderr)
        return 1
    if note:
        print(note, file=sys.stderr)
    print(out)
    return 0


def _apikey_create(args: argparse.Namespace, settings: Settings) -> int:
    now = dt.datetime.now(dt.UTC)

    def create(session: Session, program: Program) -> tuple[str, str]:
        key, secret = apikeys.create(
            session,
            program.id,
            name=args.name,
            store=args.store,
            scopes=args.scopes or apikeys.SCOPES,
            now=now,
        )
        note = (
            f"klubb: API key {key.name!r} for club {program.name!r} (id {program.id}), "
            f"scopes {' '.join(key.scopes)}. Keep the secret now: it is shown only this once."
        )
        # Only the secret goes to stdout, so `KEY=$(klubb apikey create ...)` holds just it.
        return secret, note

    return _apikey(args, settings, create)


def _apikey_list(args: argparse.Namespace, settings: Settings) -> int:
    def listing(session: Session, program: Program) -> tuple[str, None]:
        rows = [
            "\t".join(
                (
                    key.name,
                    key.store or "-",
                    f"klubb_{key.prefix}_...",
                    f"created {key.created_at:%Y-%m-%d %H:%M}Z",
                    f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active",
                    " ".join(key.scopes),
                )
            )
            for key in apikeys.of_club(session, program.id)
        ]
        return "\n".join(rows) if rows else f"klubb: club {program.name!r} has no API keys", None

    return _apikey(args, settings, listing)


def _apikey_revoke(args: argparse.Namespace, settings: Settings) -> int:
    now = dt.datetime.now(dt.UTC)

    def revoke(session: Session, program: Program) -> tuple[str, None]:
        key = apikeys.revoke(session, program.id, args.name, now)
        return (
            f"klubb: revoked API key {key.name!r}; running servers refuse it within seconds",
            None,
        )

    return _apikey(args, settings, revoke)


def _understand(args: argparse.Namespace, settings: Settings) -> int:
    reading = understand.understand(args.text, state=args.state)
    intent = reading.intent
    name = "not understood" if intent is None else intent.name
    print(f"intent:   {name}" + (f" {intent.arg}" if intent and intent.arg else ""))
    print(f"reason:   {reading.why}")
    print(f"written:  {reading.language or '-'}")
    # The member's chosen language wins; else a first text's language; else the number's.
    answer = args.language or reading.language
    print(f"answer:   {answer or '- (the number country language)'}")
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    sender = to_e164(args.sender)
    if sender is None:
        print(f"klubb simulate: --from {args.sender!r} is not a phone number", file=sys.stderr)
        return 2
    receiver = args.receiver and club_number(args.receiver)
    if receiver is None:
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


if __name__ == "__main__":
    raise SystemExit(main())
