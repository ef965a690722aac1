"""The `klubb` command: its parser, the flags every subcommand shares, and `klubb understand`.

Each subcommand lives in its module of bot/cli/: serve (serve, worker, simulate), club (migrate,
init, apikey), campaigns (segment, campaign), journeys, report, admins and backup (backup,
restore); common holds what they share."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from bot import logs
from bot.cli import admins, backup, campaigns, club, inbox, journeys, poster, report, serve
from bot.cli.common import unreachable
from bot.settings import Settings, SettingsError
from flows import understand
from locales import LANGUAGES
from store.database import shown_url
from store.errors import InvalidInput
from store.text import check_texts


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
    logs.configure(settings.log_level, settings.log_format)
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
    except Exception as exc:
        # Said here once for every command: a database that can't be reached is the
        # operator's to fix (a port, a name, a role), not a traceback to read.
        reason = unreachable(exc)
        if reason is None:
            raise
        where = shown_url(settings.database_url)
        print(f"klubb {args.topic}: can't read the database at {where}: {reason}", file=sys.stderr)
        return 1


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
    # `topic`: the command's name, for the messages said for every command (main).
    commands = parser.add_subparsers(required=True, metavar="COMMAND", dest="topic")

    # In the order `klubb --help` lists them.
    serve.add_serve(commands)
    club.add_setup(commands)
    serve.add_simulate(commands)
    _add_understand(commands)
    club.add_club(commands)
    club.add_apikey(commands)
    campaigns.add_commands(commands)
    serve.add_worker(commands)
    journeys.add_commands(commands)
    report.add_commands(commands)
    admins.add_commands(commands)
    inbox.add_commands(commands)
    poster.add_commands(commands)
    backup.add_commands(commands)
    return parser


def _add_understand(commands: Any) -> None:
    """`understand` on the `klubb` parser's subcommands."""
    understand_ = commands.add_parser(
        "understand", help="how Klubb reads a text: its intent and why (no database needed)"
    )
    understand_.add_argument("text", help="the text, as a member would send it")
    understand_.add_argument("--language", choices=LANGUAGES, help="the member's language")
    understand_.add_argument(
        "--state", choices=sorted(understand.STATES), default="none", help="the question open"
    )
    understand_.set_defaults(command=_understand)


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


if __name__ == "__main__":
    raise SystemExit(main())
