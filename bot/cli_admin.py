"""`klubb admin create`: accounts of the web admin; the password is typed, never a flag.

Errors follow bot/cli_campaigns.py: one line on stderr naming what is wrong, exit 2 for input
the owner can fix, 1 when it can't be done (the email already has an account)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from typing import Any, TextIO

from sqlalchemy.orm import Session

from bot.cli_campaigns import Failure, Usage, _printed, _run
from bot.cli_common import add_club_options
from bot.settings import Settings
from store import admins
from store.errors import InvalidSetting
from store.models import Program


def add_commands(commands: Any) -> None:
    """`admin create` on the `klubb` parser's subcommands."""
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


def read_password(stdin: TextIO) -> str:
    """Typed twice at a terminal without echo; else the first line of stdin (a pipe or a file),
    so a script can set it without putting it in the command line or the shell's history."""
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise Usage("the two passwords differ")
        return first
    return stdin.readline().rstrip("\r\n")


def _create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        email = admins.normalize_email(args.email)
    except InvalidSetting as exc:
        print(f"klubb admin: --email: {exc.reason}", file=sys.stderr)
        return 2
    try:
        # Hashed here, before the unit of work: argon2 is slow on purpose.
        password_hash = admins.hash_password(read_password(sys.stdin))
    except Usage as exc:
        print(f"klubb admin: {exc}", file=sys.stderr)
        return 2
    except InvalidSetting as exc:
        print(f"klubb admin: the password must have {exc.reason}", file=sys.stderr)
        return 2

    def create(session: Session, program: Program) -> str:
        try:
            account = admins.create(
                session,
                program.id,
                email=email,
                password_hash=password_hash,
                role=args.role,
                now=dt.datetime.now(dt.UTC),
            )
        except InvalidSetting as exc:
            raise Failure(exc.reason) from None
        return (
            f"klubb: admin account {account.email} ({account.role}) for club {program.name!r} "
            f"(id {program.id}); sign in at {settings.public_url}/admin"
        )

    return _printed(_run("admin", args, settings, create))
