"""`klubb admin create|list|password|remove`: accounts of the web admin; a password is typed,
never a flag.

Errors follow bot/cli/common.py: one line on stderr naming what is wrong, exit 2 for input
the owner can fix, 1 when it can't be done (the email already has an account, or none)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.cli.common import (
    Failure,
    Usage,
    add_club_options,
    columns,
    printed,
    run_in_club,
    run_once,
    schema_is_current,
    short_time,
)
from bot.settings import Settings
from store.clock import utc_now
from store.clubs import admins, programs
from store.errors import InvalidSetting, NotFound
from store.models import AdminAccount, Program


def add_commands(commands: Any) -> None:
    """`admin create|list|password|remove` on the `klubb` parser's subcommands."""
    admin = commands.add_parser("admin", help="accounts of the web admin at /admin")
    actions = admin.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="an account for one club; the password is asked for (or read from stdin)",
    )
    create.add_argument("--email", required=True, help="what the person signs in with")
    create.add_argument(
        "--role",
        choices=admins.ROLES,
        default=admins.OWNER,
        help="owner: everything; staff: members and adjustments only (default owner)",
    )
    add_club_options(create)
    create.set_defaults(command=_create)
    listing = actions.add_parser("list", help="the club's accounts: email, role, when made")
    add_club_options(listing)
    listing.set_defaults(command=_list)
    password = actions.add_parser(
        "password",
        help="a new password for an account, asked for (or read from stdin); "
        "its signed-in sessions end",
    )
    password.add_argument("--email", required=True, help="the account's email")
    password.set_defaults(command=_password)
    remove = actions.add_parser(
        "remove", help="remove an account (not the club's last owner); its sessions end"
    )
    remove.add_argument("--email", required=True, help="the account's email")
    remove.set_defaults(command=_remove)


def read_password(stdin: TextIO) -> str:
    """Typed twice at a terminal without echo; else the first line of stdin (a pipe or a file),
    so a script can set it without putting it in the command line or the shell's history."""
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise Usage("the two passwords differ")
        return first
    return stdin.readline().rstrip("\r\n")


def _password_hash() -> str | None:
    """The password read from the terminal or stdin, hashed here, before any unit of work
    (argon2 is slow on purpose); None, said on stderr, when it can't be used."""
    try:
        return admins.hash_password(read_password(sys.stdin))
    except Usage as exc:
        print(f"klubb admin: {exc}", file=sys.stderr)
    except InvalidSetting as exc:
        print(f"klubb admin: the password must have {exc.reason}", file=sys.stderr)
    return None


def _create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        email = admins.normalize_email(args.email)
    except InvalidSetting as exc:
        print(f"klubb admin: --email: {exc.reason}", file=sys.stderr)
        return 2
    password_hash = _password_hash()
    if password_hash is None:
        return 2

    def create(session: Session, program: Program) -> str:
        try:
            account = admins.create(
                session,
                program.id,
                email=email,
                password_hash=password_hash,
                role=args.role,
                now=utc_now(),
            )
        except InvalidSetting as exc:
            raise Failure(exc.reason) from None
        return (
            f"klubb: admin account {account.email} ({account.role}) for club {program.name!r} "
            f"(id {program.id}); sign in at {settings.public_url}/admin"
        )

    return printed(run_in_club("admin", args, settings, create))


def _list(args: argparse.Namespace, settings: Settings) -> int:
    def listing(session: Session, program: Program) -> str:
        zone = ZoneInfo(program.timezone)
        # What an account is, never its hash.
        rows = [
            (
                account.email,
                account.role,
                short_time(account.created_at, zone),
                short_time(account.last_sign_in_at, zone) if account.last_sign_in_at else "never",
            )
            for account in admins.of_club(session, program.id)
        ]
        if not rows:
            return f"klubb: club {program.name!r} has no admin accounts yet: `klubb admin create`"
        return columns(
            ("EMAIL", "ROLE", f"CREATED ({zone.key})", "LAST SIGN-IN"), rows, right=set()
        )

    return printed(run_in_club("admin", args, settings, listing, keep=False))


def _password(args: argparse.Namespace, settings: Settings) -> int:
    """The new password is asked for only once the account is known to exist."""
    email = _email(args)
    if email is None:
        return 2
    if not schema_is_current(settings):
        return 1
    code = _on_account(settings, email, lambda session, account: "")
    if code != 0:
        return code
    password_hash = _password_hash()
    if password_hash is None:
        return 2

    def change(session: Session, account: AdminAccount) -> str:
        admins.set_password(session, account.id, password_hash)
        return (
            f"klubb: new password for admin account {account.email} ({account.role}) of club "
            f"{_club_name(session, account)!r}; its signed-in sessions have ended"
        )

    return _on_account(settings, email, change)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    email = _email(args)
    if email is None:
        return 2
    if not schema_is_current(settings):
        return 1

    def remove(session: Session, account: AdminAccount) -> str:
        club = _club_name(session, account)
        admins.remove(session, account.program_id, account.id)
        return (
            f"klubb: removed admin account {account.email} ({account.role}) of club {club!r}; "
            "its signed-in sessions have ended"
        )

    return _on_account(settings, email, remove)


def _email(args: argparse.Namespace) -> str | None:
    """--email as stored, or None once stderr says what is wrong with it."""
    try:
        return admins.normalize_email(args.email)
    except InvalidSetting as exc:
        print(f"klubb admin: --email: {exc.reason}", file=sys.stderr)
        return None


def _on_account(
    settings: Settings, email: str, work: Callable[[Session, AdminAccount], str]
) -> int:
    """`work(session, account)` in one transaction for the account with this email (whatever
    its club: an email has one account), and its answer printed; 1 once stderr says there is
    no such account, or that it is the club's last owner."""

    def run(session: Session) -> str:
        account = admins.by_email(session, email)
        if account is None:
            raise NotFound("admin account", email)
        return work(session, account)

    try:
        out = asyncio.run(run_once(settings.database_url, run))
    except NotFound:
        print(f"klubb admin: no admin account has the email {email}", file=sys.stderr)
        return 1
    except admins.LastOwner as exc:
        print(f"klubb admin: {exc.reason}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


def _club_name(session: Session, account: AdminAccount) -> str:
    program = programs.get(session, account.program_id)
    return program.name if program is not None else str(account.program_id)
