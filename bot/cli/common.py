"""What the `klubb` subcommands share: the schema check, one unit of work, choosing the club,
the errors that set the exit code, and the text layout of their answers.

Errors are one line on stderr naming the flag or filter path that is wrong: exit 2 for input
the owner can fix, 1 when the thing asked for is not there or can't be done."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.settings import Settings
from store import migrate
from store.clubs import programs
from store.database import open_database
from store.errors import NotFound
from store.loyalty import coupons
from store.members.phones import club_number
from store.models import CouponTemplate, Program


def schema_is_current(settings: Settings) -> bool:
    """True, or False after saying on stderr that `klubb migrate` is needed."""
    if asyncio.run(migrate.is_current(settings.database_url)):
        return True
    print("klubb: the database schema is not up to date: run `klubb migrate`", file=sys.stderr)
    return False


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


def add_club_options(parser: argparse.ArgumentParser) -> None:
    """--club-number or --club, for a database that holds more than one club."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--club-number", help="the club that answers on this number")
    which.add_argument("--club", type=int, metavar="ID", help="the club's id")


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
