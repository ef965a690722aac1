"""What the `klubb` subcommands share: the schema check, one unit of work, choosing the club,
the errors that set the exit code, and the text layout of their answers.

Errors are one line on stderr naming the flag or filter path that is wrong: exit 2 for input
the owner can fix, 1 when the thing asked for is not there or can't be done."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.settings import Settings
from store import migrate
from store.clubs import programs
from store.database import open_database, shown_url
from store.errors import NotFound
from store.loyalty import coupons
from store.members.phones import club_number
from store.models import CouponTemplate, Program


def schema_is_current(settings: Settings, prefix: str = "klubb") -> bool:
    """True when the database's schema is this Klubb's newest; else False after saying on
    stderr, after `prefix`, what is wrong and what to run. A database that can't be reached
    raises: `unreachable` reads it, and `klubb`'s dispatch says it (bot.cli.main)."""
    found = asyncio.run(migrate.state(settings.database_url))
    if found.status == "current":
        return True
    print(f"{prefix}: {schema_problem(found, settings.database_url)}", file=sys.stderr)
    return False


def schema_problem(found: migrate.SchemaState, url: str) -> str:
    """What is wrong with a schema that is not this Klubb's newest, and what to run."""
    where = f"the database at {shown_url(url)}"
    status = found.status
    if status == "missing":
        return (
            f"the SQLite file {found.missing_file} does not exist: run `klubb migrate` first, "
            "which creates it"
        )
    if status == "empty":
        return f"{where} has no schema yet: run `klubb migrate` first"
    if status == "behind":
        return (
            f"{where} is at migration {found.found}, behind this Klubb's {found.head}: "
            "run `klubb migrate` first"
        )
    return (
        f"{where} is at migration {found.found}, which this Klubb (newest {found.head}) does "
        "not know: a newer Klubb migrated it; upgrade Klubb, then run `klubb migrate`"
    )


def unreachable(exc: BaseException) -> str | None:
    """Why the database could not be reached or opened, in the server's (or the OS's) words,
    when that is what `exc` says; else None (a failure of the command itself, whose traceback
    tells more). A command's first statement meets it (the schema check), so every command
    says it alike: a closed port, a host not found, a database or role that does not exist,
    a SQLite file that can't be opened."""
    if isinstance(exc, DBAPIError):
        # SQLAlchemy keeps the statement that failed; none: it failed while connecting.
        if exc.statement is not None:
            return None
        said = str(exc.orig or exc).strip().splitlines()
        return said[0] if said else type(exc.orig).__name__
    # asyncpg's own, which SQLAlchemy passes on as they are.
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: is the database server running, on that host and port?"
    if isinstance(exc, socket.gaierror):
        return f"no such host ({exc.strerror})"
    if isinstance(exc, ConnectionResetError):
        return "the server closed the connection"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return None


async def run_once(url: str, work: Any) -> Any:
    """`work(session)` in one transaction on a database opened (and closed) for it alone."""
    db = open_database(url)
    try:
        return await db.run(work)
    finally:
        await db.close()


class NoClub(Exception):
    """The command names no club it can act on; the message says why."""


class Usage(Exception):
    """Input the owner can correct (a flag, a filter): exit 2."""


class Failure(Exception):
    """What was asked for is not there or can't be done now: exit 1."""


class _Rollback(Exception):
    """Raised out of a unit of work to undo it while keeping what it computed (a dry run)."""

    def __init__(self, result: Any) -> None:
        super().__init__("rolled back")
        self.result = result


Work = Callable[[Session, Program], Any]

# The largest id there is: a BIGINT's (SQLite's INTEGER holds as much). A larger number given
# as an id overflowed in the driver, with a traceback.
MAX_ID = 2**63 - 1


def an_id(text: str) -> int:
    """argparse's type for an id given on the command line (--club ID, a campaign's ID): a
    whole number from 1 to MAX_ID, else argparse's usage error naming the argument (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (a whole number)") from None
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"{text} is not an id (ids run from 1 to {MAX_ID})")
    return value


def add_club_options(parser: argparse.ArgumentParser) -> None:
    """--club-number or --club, for a database that holds more than one club."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--club-number", help="the club that answers on this number")
    which.add_argument("--club", type=an_id, metavar="ID", help="the club's id")


def chosen_club(session: Session, args: argparse.Namespace) -> Program:
    """The club named by --club or --club-number, else the only one there is."""
    if args.club is not None:
        program = programs.get(session, args.club)
        if program is None:
            raise NoClub(f"no club with id {args.club}")
        return program
    if args.club_number is not None:
        program = club_by_number(session, args.club_number)
        if program is None:
            raise NoClub(f"no club answers on {args.club_number}")
        return program
    clubs = programs.all_programs(session)
    if not clubs:
        raise NoClub("no club yet: run `klubb init`")
    if len(clubs) > 1:
        raise NoClub("there are several clubs: name one with --club-number or --club")
    return clubs[0]


def club_by_number(session: Session, written: str) -> Program | None:
    """The club that answers on a number written as an owner would (as the API reads phone
    numbers): international with or without "+" or 00, or national in the club's country."""
    number = club_number(written)
    program = programs.by_number(session, number) if number else None
    if program is not None:
        return program
    # "55 00 00 00" means something only in a country: each club's own.
    for candidate in programs.all_programs(session):
        local = club_number(written, candidate.country)
        if local is not None and local in programs.numbers(session, candidate.id):
            return candidate
    return None


# --- running a command ------------------------------------------------------------------------


def run_in_club(
    topic: str, args: argparse.Namespace, settings: Settings, work: Work, *, keep: bool = True
) -> tuple[int, Any]:
    """`work(session, club)` in one transaction, undone unless `keep`: (0, what it returned),
    or (1 or 2, None) once the error is on stderr."""
    if not schema_is_current(settings):
        return 1, None

    def run(session: Session) -> Any:
        out = work(session, chosen_club(session, args))
        if not keep:
            raise _Rollback(out)
        return out

    try:
        return 0, asyncio.run(run_once(settings.database_url, run))
    except _Rollback as undone:
        return 0, undone.result
    except (NoClub, Usage) as exc:
        print(f"klubb {topic}: {exc}", file=sys.stderr)
        return 2, None
    except Failure as exc:
        print(f"klubb {topic}: {exc}", file=sys.stderr)
        return 1, None


def printed(outcome: tuple[int, Any]) -> int:
    """The exit code of `run_in_club`'s outcome, after printing what it returned."""
    code, out = outcome
    if code == 0 and out:
        print(out)
    return code


def missing(session: Session, program: Program, exc: NotFound) -> str:
    """A --segment or --coupon that names nothing, and what the club has instead."""
    if exc.what == "segment":
        return f"--segment: the club has no segment named {exc.key!r}: see `klubb segment list`"
    keys = [t.key for t in _templates(session, program)]
    offered = f" (its coupons: {', '.join(keys)})" if keys else " (it has no coupon templates)"
    return f"--coupon: the club has no active coupon template {exc.key!r}{offered}"


def _templates(session: Session, program: Program) -> list[CouponTemplate]:
    return [t for t in coupons.templates(session, program.id) if t.active]


# --- formatting -------------------------------------------------------------------------------


def labelled(label: str, value: str) -> str:
    """One line of a label and its value, the values lined up."""
    return f"  {label:<22}  {value}"


def short_time(moment: dt.datetime, zone: ZoneInfo) -> str:
    """The moment in the club's zone, to the minute."""
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def columns(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to line up; the columns in `right` (numbers) aligned right."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    )
