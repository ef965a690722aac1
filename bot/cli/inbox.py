"""`klubb inbox`: the club's inbox (store.outreach.inbox) from the terminal: list, reply (typed
or a saved reply, store.outreach.templates), templates (the saved replies).

Errors follow bot/cli/common.py: one line on stderr, exit 2 for input the owner can fix, 1 when
the conversation is not there or the reply rule refuses (saying why, from the catalogs)."""

from __future__ import annotations

import argparse
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

import locales
from bot.cli.common import (
    Failure,
    Usage,
    add_club_options,
    an_id,
    columns,
    printed,
    run_in_club,
    short_time,
)
from bot.settings import Settings
from store.clock import utc_now
from store.clubs import admins
from store.errors import InvalidSetting, NotFound
from store.models import Program
from store.outreach import inbox, templates

LAST_BODY = 50  # characters of the last text a line of the list shows
TOPIC = "inbox"


def add_commands(commands: Any) -> None:
    """`inbox list|reply|templates` on the `klubb` parser's subcommands."""
    parser = commands.add_parser(
        "inbox", help="texts Klubb could not answer: list them, reply by SMS as an admin"
    )
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="conversations, the newest text first")
    listing.add_argument(
        "--open", action="store_true", help="only those not marked done (unanswered ones too)"
    )
    listing.add_argument("--search", default="", help="a part of the number or the first name")
    listing.set_defaults(command=_list)
    reply = actions.add_parser(
        "reply",
        help="queue an SMS answering a conversation (within 7 days of the number's last text)",
    )
    reply.add_argument("conversation", type=an_id, metavar="ID", help="as `klubb inbox list` shows")
    wording = reply.add_mutually_exclusive_group(required=True)
    wording.add_argument("--text", help="the reply, as the member will read it")
    wording.add_argument(
        "--template",
        metavar="NAME",
        help="a saved reply (as `klubb inbox templates` names it), filled in for the member",
    )
    reply.add_argument(
        "--as",
        dest="account",
        required=True,
        metavar="EMAIL",
        help="the club's admin account the reply is recorded as sent by",
    )
    reply.set_defaults(command=_reply)
    saved = actions.add_parser("templates", help="the saved replies staff can answer with")
    saved.set_defaults(command=_templates)
    for action in (listing, reply, saved):
        add_club_options(action)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    def listing(session: Session, program: Program) -> str:
        found = inbox.conversations(
            session, program, show="open" if args.open else "all", query=args.search, limit=200
        )
        if not found:
            return "no conversations" + (" open" if args.open else "")
        zone = ZoneInfo(program.timezone)
        rows = [
            (
                str(c.id),
                c.number,
                c.name or ("-" if c.member_id is not None else "not a member"),
                str(c.state),
                short_time(c.last_at, zone),
                _short(c.last_body),
            )
            for c in found
        ]
        return columns(("id", "number", "name", "state", "last text", "text"), rows, {0})

    return printed(run_in_club(TOPIC, args, settings, listing, keep=False))


def _reply(args: argparse.Namespace, settings: Settings) -> int:
    def send(session: Session, program: Program) -> str:
        try:
            account = admins.by_email(session, admins.normalize_email(args.account))
        except InvalidSetting as exc:
            raise Usage(f"--as: {exc.reason}") from exc
        if account is None or account.program_id != program.id:
            raise Usage(f"--as: the club has no admin account {args.account!r}")
        try:
            text = args.text if args.template is None else _filled(session, program, args)
            message = inbox.reply(
                session,
                program,
                args.conversation,
                account_id=account.id,
                text=text,
                now=utc_now(),
            )
        except NotFound as exc:
            raise Failure(f"no conversation {args.conversation} in this club") from exc
        except inbox.ReplyRefused as exc:
            why = locales.text(f"admin.inbox.refused.{exc.reason}", "en")
            raise Failure(f"not sent: {why}") from exc
        return f"queued reply {message.id} to {message.to_number} ({message.segments} SMS)"

    return printed(run_in_club(TOPIC, args, settings, send))


def _templates(args: argparse.Namespace, settings: Settings) -> int:
    def listing(session: Session, program: Program) -> str:
        found = templates.of_club(session, program)
        if not found:
            return "no saved replies (the owner makes them at /admin/templates)"
        rows = [
            (t.name, language, _short(str(text)))
            for t in found
            for language, text in sorted((t.texts or {}).items(), key=_in_order)
        ]
        return columns(("name", "language", "text"), rows, set())

    return printed(run_in_club(TOPIC, args, settings, listing, keep=False))


def _filled(session: Session, program: Program, args: argparse.Namespace) -> str:
    """The saved reply named --template, filled in for the conversation's member."""
    try:
        template = templates.by_name(session, program, args.template)
    except NotFound:
        raise Usage(f"--template: the club has no saved reply {args.template!r}") from None
    member = inbox.open_conversation(session, program, args.conversation, utc_now()).context
    return templates.fill(template, member.language, member, program.name)


def _in_order(item: tuple[str, object]) -> int:
    language = item[0]
    return locales.LANGUAGES.index(language) if language in locales.LANGUAGES else 99


def _short(body: str | None) -> str:
    text = " ".join((body or "").split())
    return text if len(text) <= LAST_BODY else text[: LAST_BODY - 3] + "..."
