"""`klubb migrate`, `klubb init` (a club, or the demo club), `klubb club show|set` (the club's
SMS settings) and `klubb apikey`: a club set up."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sqlalchemy.orm import Session

from bot.cli.common import (
    NoClub,
    Usage,
    add_club_options,
    chosen_club,
    labelled,
    printed,
    run_in_club,
    run_once,
    schema_is_current,
    schema_problem,
)
from bot.cli.demo import DEMO_ADMIN, DEMO_CLUB, DEMO_QUESTIONS, fill_demo, set_up_loyalty
from bot.settings import Settings
from store import migrate
from store.clock import utc_now
from store.clubs import admins, apikeys, programs
from store.errors import InvalidSetting, NotFound, NumberTaken, StoreError
from store.members.phones import club_number
from store.models import Program


def add_setup(commands: Any) -> None:
    """`migrate` and `init` on the `klubb` parser's subcommands."""
    migrate_ = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate_.set_defaults(command=_migrate)

    init = commands.add_parser("init", help="create a club (or the demo club with --demo)")
    init.add_argument("--demo", action="store_true", help="a ready demo club with 3 questions")
    init.add_argument("--name")
    init.add_argument("--number", action="append", help="a number members text (repeatable)")
    init.add_argument("--country", help="NO, SE, DK, FI, ...")
    init.add_argument("--contact", help="e-mail or phone shown in HELP")
    init.add_argument("--privacy-url")
    cap, age = _range("marketing_per_month"), _range("min_age")
    init.add_argument("--per-month", type=int, default=2, help=f"marketing SMS cap ({cap})")
    init.add_argument("--min-age", type=int, default=13, help=f"minimum age to join ({age})")
    init.set_defaults(command=_init)


def _range(setting: str) -> str:
    """A club setting's range as --help shows it: store.clubs.programs.LIMITS is its one home."""
    low, high = programs.LIMITS[setting]
    return f"{low}-{high}"


ON_OFF = ("on", "off")


def add_club(commands: Any) -> None:
    """`club show|set` on the `klubb` parser's subcommands."""
    club = commands.add_parser("club", help="the club's SMS settings: show them, change them")
    actions = club.add_subparsers(required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the club's name, numbers and SMS settings")
    change = actions.add_parser("set", help="change a setting (each flag given is changed)")
    change.add_argument(
        "--page-link-in-sms",
        choices=ON_OFF,
        help="the member's page link in the welcome and reward SMS (off by default: the link "
        "takes about 45 characters, and a long coupon text or web address can make it 2 SMS)",
    )
    change.add_argument(
        "--retention-months",
        type=int,
        metavar="N",
        help=f"keep message texts N months ({_range('retention_months')}); older ones are "
        "emptied once a day, the counts, consent log and points stay",
    )
    for action, command in ((show, _club_show), (change, _club_set)):
        add_club_options(action)
        action.set_defaults(command=command)


def _club_show(args: argparse.Namespace, settings: Settings) -> int:
    return printed(run_in_club("club", args, settings, _settings_of))


def _club_set(args: argparse.Namespace, settings: Settings) -> int:
    if args.page_link_in_sms is None and args.retention_months is None:
        print(
            "klubb club set: nothing to change: give --page-link-in-sms on|off or "
            "--retention-months N",
            file=sys.stderr,
        )
        return 2

    def change(session: Session, program: Program) -> str:
        if args.retention_months is not None:
            try:
                programs.update_numbers(session, program, retention_months=args.retention_months)
            except programs.InvalidSettings as exc:
                raise Usage(f"--retention-months: {exc.reason}") from None
        if args.page_link_in_sms is not None:
            programs.set_page_link_in_sms(session, program, args.page_link_in_sms == "on")
        return _settings_of(session, program)

    return printed(run_in_club("club", args, settings, change))


def _settings_of(session: Session, program: Program) -> str:
    return "\n".join(
        (
            f"club {program.name!r} (id {program.id})",
            labelled("numbers", ", ".join(programs.numbers(session, program.id))),
            labelled("page link in SMS", ON_OFF[0] if program.page_link_in_sms else ON_OFF[1]),
            labelled("message texts kept", f"{program.retention_months} months"),
        )
    )


def add_apikey(commands: Any) -> None:
    """`apikey create|list|revoke` on the `klubb` parser's subcommands."""
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


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    found = asyncio.run(migrate.state(settings.database_url))
    if found.status == "unknown":
        # Alembic can't upgrade from a revision it has never seen: said as serve says it.
        print(f"klubb migrate: {schema_problem(found, settings.database_url)}", file=sys.stderr)
        return 1
    asyncio.run(migrate.upgrade(settings.database_url))
    print("klubb: database is up to date")
    return 0


# The club's settings `klubb init` takes under another flag name (the argument's dest).
_INIT_FLAGS = {"marketing_per_month": "per_month"}


def _init(args: argparse.Namespace, settings: Settings) -> int:
    problems: dict[str, str] = {}
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
        problems = programs.check_club(
            name=args.name, contact=args.contact, privacy_url=args.privacy_url, country=args.country
        )
    # The rules the admin's settings page applies, said before the database is touched, each
    # naming its flag (--per-month sets marketing_per_month), the demo's numbers too.
    problems.update(
        programs.check_numbers(marketing_per_month=args.per_month, min_age=args.min_age)
    )
    if problems:
        for field, reason in problems.items():
            dest = _INIT_FLAGS.get(field, field)
            given = getattr(args, dest)
            print(f"klubb init: --{dest.replace('_', '-')} {given!r}: {reason}", file=sys.stderr)
        return 2
    numbers = [club_number(n) for n in club["numbers"]]
    if None in numbers:
        bad = [n for n, c in zip(club["numbers"], numbers, strict=True) if c is None]
        print(f"klubb init: not a phone number or short code: {', '.join(bad)}", file=sys.stderr)
        return 2
    club["numbers"] = numbers
    if not schema_is_current(settings):
        return 1
    now = utc_now()
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
    except NumberTaken as exc:
        print(f"klubb init: --number {exc.number}: another club answers on it", file=sys.stderr)
        return 2
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
    now = utc_now()

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
    now = utc_now()

    def revoke(session: Session, program: Program) -> tuple[str, None]:
        key = apikeys.revoke(session, program.id, args.name, now)
        return (
            f"klubb: revoked API key {key.name!r}; running servers refuse it within seconds",
            None,
        )

    return _apikey(args, settings, revoke)
