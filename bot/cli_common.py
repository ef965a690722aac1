"""What the `klubb` subcommands share: the schema check, one unit of work, choosing the club."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sqlalchemy.orm import Session

from bot.settings import Settings
from store import migrate, programs
from store.database import open_database
from store.models import Program
from store.phones import club_number


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
