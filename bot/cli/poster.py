"""`klubb poster`: the club's join poster (A4 or A6) as a PDF file, as the admin downloads it.

Errors follow bot/cli/common.py: exit 2 for a club that is not there, 1 when the file can't be
written or the club has no number to text."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from bot.cli.common import Failure, add_club_options, run_in_club
from bot.poster import SIZES, poster_pdf
from bot.settings import Settings
from store.clubs import poster
from store.members.phones import club_number
from store.models import Program

TOPIC = "poster"


def add_commands(commands: Any) -> None:
    """`poster` on the `klubb` parser's subcommands."""
    parser = commands.add_parser(
        "poster", help="the join poster as a PDF: the club's name, how to join, a QR code"
    )
    parser.add_argument("--out", required=True, type=Path, help="the PDF file to write")
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="a4", help="a4 (poster) or a6 (table card)"
    )
    add_club_options(parser)
    parser.set_defaults(command=_poster)


def _poster(args: argparse.Namespace, settings: Settings) -> int:
    def content(session: Session, program: Program) -> poster.Poster:
        try:
            # The number the owner named, when it is the club's; else the club's first.
            return poster.poster(session, program, number=_named(args, program))
        except poster.NoNumber as exc:
            raise Failure("the club has no number to text: add one first") from exc

    code, found = run_in_club(TOPIC, args, settings, content, keep=False)
    if code != 0:
        return code
    pdf = poster_pdf(found, args.size)
    try:
        args.out.write_bytes(pdf)
    except OSError as exc:
        print(f"klubb {TOPIC}: --out: {exc.strerror or exc}: {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.size.upper()}, {found.language}, {found.payload})")
    return 0


def _named(args: argparse.Namespace, program: Program) -> str | None:
    if args.club_number is None:
        return None
    return club_number(args.club_number) or club_number(args.club_number, program.country)
