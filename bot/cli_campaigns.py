"""`klubb segment`, `klubb campaign` and `klubb worker`: a club's broadcasts from the terminal.

Errors are one line on stderr naming the flag or filter path that is wrong: exit 2 for input
the owner can fix, 1 when the thing asked for is not there or can't be done."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

import locales
from bot.app import gateway_for
from bot.cli_common import NoClub, add_club_options, chosen_club, run_once, schema_is_current
from bot.settings import Settings
from scheduler.jobs import running_scheduler
from store import campaigns, coupons, segments
from store.database import open_database
from store.errors import Conflict, InvalidInput, NotFound
from store.models import Campaign, CouponTemplate, Program, Segment

log = logging.getLogger("klubb")

_CREATED_BY = "cli"


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


def add_commands(commands: Any) -> None:
    """`segment`, `campaign` and `worker` on the `klubb` parser's subcommands."""
    segment = commands.add_parser("segment", help="saved filters over the club's members")
    actions = segment.add_subparsers(required=True, metavar="ACTION")
    save = actions.add_parser("save", help="save a filter under a name (or replace it)")
    save.add_argument("name", metavar="NAME")
    _filter_options(save)
    save.set_defaults(command=_segment_save)
    listing = actions.add_parser("list", help="the segments, with how many members match now")
    listing.set_defaults(command=_segment_list)
    show = actions.add_parser("show", help="a segment's filter and how many members match now")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(command=_segment_show)
    count = actions.add_parser("count", help="how many members a filter matches, not saved")
    _filter_options(count)
    count.set_defaults(command=_segment_count)
    delete = actions.add_parser("delete", help="remove a segment (campaigns keep their filter)")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(command=_segment_delete)
    for action in (save, listing, show, count, delete):
        add_club_options(action)

    campaign = commands.add_parser("campaign", help="broadcasts: preview, send, follow, cancel")
    actions = campaign.add_subparsers(required=True, metavar="ACTION")
    send = actions.add_parser(
        "send", help="preview a broadcast and queue it for the running server or worker"
    )
    send.add_argument("--segment", metavar="NAME", help="a saved segment (default: everyone)")
    send.add_argument("--text", help="the message, for every language not given its own")
    for language in locales.LANGUAGES:
        send.add_argument(
            f"--text-{language}", metavar="TEXT", help=f"the message for members in {language}"
        )
    send.add_argument(
        "--at",
        metavar="TIME",
        help="when: ISO 8601, e.g. 2026-12-01T10:00 (the club's zone) or with +01:00; default now",
    )
    send.add_argument(
        "--control",
        type=int,
        default=0,
        metavar="PERCENT",
        help=f"percent of the segment held out to measure the effect (0-{campaigns.MAX_CONTROL})",
    )
    send.add_argument("--coupon", metavar="TEMPLATE_KEY", help="issue each recipient a coupon")
    send.add_argument("--name", help="the campaign's name (default: the segment and the date)")
    send.add_argument("--yes", action="store_true", help="send without asking")
    send.add_argument("--dry-run", action="store_true", help="only the preview; nothing is saved")
    send.set_defaults(command=_campaign_send)
    listing = actions.add_parser("list", help="the latest campaigns")
    listing.set_defaults(command=_campaign_list)
    show = actions.add_parser("show", help="a campaign: texts, audience, what happened")
    show.add_argument("id", type=int, metavar="ID")
    show.set_defaults(command=_campaign_show)
    cancel = actions.add_parser("cancel", help="stop a broadcast; queued messages are not sent")
    cancel.add_argument("id", type=int, metavar="ID")
    cancel.set_defaults(command=_campaign_cancel)
    for action in (send, listing, show, cancel):
        add_club_options(action)

    worker = commands.add_parser(
        "worker", help="the scheduler alone (sending, campaigns, jobs), without the web server"
    )
    worker.set_defaults(command=_worker)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--filter", metavar="JSON", help='e.g. \'{"field": "age", ...}\'')
    given.add_argument("--filter-file", type=Path, metavar="PATH", help="the filter in a file")


# --- running a command ------------------------------------------------------------------------


def _run(
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


def _printed(outcome: tuple[int, Any]) -> int:
    code, out = outcome
    if code == 0 and out:
        print(out)
    return code


# --- segments ---------------------------------------------------------------------------------


def _filter_of(args: argparse.Namespace) -> Any:
    """The JSON of --filter or --filter-file, parsed (Usage naming the flag when it is not)."""
    if args.filter_file is not None:
        flag = f"--filter-file {args.filter_file}"
        try:
            raw = args.filter_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise Usage(f"{flag}: {exc.strerror or exc}") from None
    else:
        flag, raw = "--filter", args.filter
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Usage(f"{flag}: not JSON: {exc}") from None


def _filter_error(exc: InvalidInput) -> Usage:
    """A filter's InvalidInput as one line naming the path inside the filter."""
    if exc.field == "name":
        return Usage(f"NAME: {exc.reason}")
    where = "" if exc.field == "filter" else f" at {exc.field}"
    return Usage(f"the filter{where}: {exc.reason}")


def _segment_save(args: argparse.Namespace, settings: Settings) -> int:
    now = dt.datetime.now(dt.UTC)
    try:
        filter_ = _filter_of(args)
    except Usage as exc:
        print(f"klubb segment: {exc}", file=sys.stderr)
        return 2

    def save(session: Session, program: Program) -> str:
        try:
            segment = segments.save(session, program, args.name, filter_, now)
            matching = segments.count(session, program, segment.filter, now)
        except InvalidInput as exc:
            raise _filter_error(exc) from None
        return f"klubb: saved segment {segment.name!r}: {_match(matching)} now"

    return _printed(_run("segment", args, settings, save))


def _segment_list(args: argparse.Namespace, settings: Settings) -> int:
    now = dt.datetime.now(dt.UTC)

    def listing(session: Session, program: Program) -> str:
        zone = ZoneInfo(program.timezone)
        rows = [
            (
                segment.name,
                f"{segments.count(session, program, segment.filter, now):,}",
                _short(segment.updated_at, zone),
            )
            for segment in segments.all_of(session, program.id)
        ]
        if not rows:
            return f"klubb: club {program.name!r} has no segments yet: `klubb segment save`"
        return _table(("NAME", "MEMBERS", f"UPDATED ({zone.key})"), rows, right={1})

    return _printed(_run("segment", args, settings, listing))


def _segment_show(args: argparse.Namespace, settings: Settings) -> int:
    now = dt.datetime.now(dt.UTC)

    def show(session: Session, program: Program) -> str:
        segment = _segment(session, program, args.name)
        matching = segments.count(session, program, segment.filter, now)
        zone = ZoneInfo(program.timezone)
        return "\n".join(
            (
                f"segment {segment.name!r} of {program.name}, "
                f"updated {_short(segment.updated_at, zone)} ({zone.key})",
                json.dumps(segment.filter, indent=2, ensure_ascii=False),
                f"{_match(matching)} now",
            )
        )

    return _printed(_run("segment", args, settings, show))


def _segment_count(args: argparse.Namespace, settings: Settings) -> int:
    now = dt.datetime.now(dt.UTC)
    try:
        filter_ = _filter_of(args)
    except Usage as exc:
        print(f"klubb segment: {exc}", file=sys.stderr)
        return 2

    def count(session: Session, program: Program) -> str:
        try:
            return _match(segments.count(session, program, filter_, now))
        except InvalidInput as exc:
            raise _filter_error(exc) from None

    return _printed(_run("segment", args, settings, count))


def _segment_delete(args: argparse.Namespace, settings: Settings) -> int:
    def delete(session: Session, program: Program) -> str:
        segment = _segment(session, program, args.name)
        segments.delete(session, program.id, segment.name)
        return (
            f"klubb: deleted segment {segment.name!r} "
            "(campaigns made with it keep the filter they were made with)"
        )

    return _printed(_run("segment", args, settings, delete))


def _segment(session: Session, program: Program, name: str) -> Segment:
    try:
        return segments.get(session, program.id, name)
    except NotFound:
        raise Failure(f"the club has no segment named {name!r}: see `klubb segment list`") from None


# --- campaign send ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Made:
    """A broadcast as created, and its preview as the owner reads it."""

    id: int
    name: str
    recipients: int
    preview: str
    sends_from: str  # when the planner starts sending it, in the club's zone


def _campaign_send(args: argparse.Namespace, settings: Settings) -> int:
    try:
        texts = _texts(args)
        at = _parse_at(args.at)
    except Usage as exc:
        print(f"klubb campaign: {exc}", file=sys.stderr)
        return 2

    def create(session: Session, program: Program) -> _Made:
        return _create(session, program, args, texts, at, dt.datetime.now(dt.UTC))

    def run(keep: bool) -> tuple[int, _Made | None]:
        return _run("campaign", args, settings, create, keep=keep)

    if args.yes and not args.dry_run:
        code, made = run(keep=True)
        if made is None:
            return code
        print(made.preview)
        print(_queued(made))
        return 0
    # Shown before anything is saved: a campaign that exists is one the planner may send, and
    # the owner has not said yes yet.
    code, shown = run(keep=False)
    if shown is None:
        return code
    print(shown.preview)
    if args.dry_run:
        print("klubb: dry run: nothing was saved")
        return 0
    if not sys.stdin.isatty():
        print(
            "klubb campaign: not sent: stdin is not a terminal to ask on; pass --yes to send",
            file=sys.stderr,
        )
        return 2
    try:
        answer = input(f"Send to {_members(shown.recipients)}? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        print("klubb: not sent; nothing was saved")
        return 1
    code, made = run(keep=True)
    if made is None:
        return code
    print(_queued(made))
    return 0


def _queued(made: _Made) -> str:
    return (
        f"klubb: campaign {made.id} {made.name!r} queued for {_members(made.recipients)}: "
        f"the running `klubb serve` or `klubb worker` sends it from {made.sends_from}"
    )


def _texts(args: argparse.Namespace) -> dict[str, str]:
    """The text per language: its own flag, else --text."""
    texts = {
        language: text
        for language in locales.LANGUAGES
        if (text := getattr(args, f"text_{language}") or args.text) is not None
    }
    if not texts:
        flags = ", ".join(f"--text-{language}" for language in locales.LANGUAGES)
        raise Usage(f"give the message with --text (or {flags})")
    return texts


def _parse_at(raw: str | None) -> dt.datetime | None:
    """--at as a datetime: aware when it has an offset, naive (the club's zone) when not."""
    if raw is None:
        return None
    try:
        return dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise Usage(
            f"--at: {raw!r} is not an ISO 8601 time, e.g. 2026-12-01T10:00 (the club's zone) "
            "or 2026-12-01T10:00+01:00"
        ) from None


def _create(
    session: Session,
    program: Program,
    args: argparse.Namespace,
    texts: dict[str, str],
    at: dt.datetime | None,
    now: dt.datetime,
) -> _Made:
    zone = ZoneInfo(program.timezone)
    send_at = None if at is None else at if at.tzinfo is not None else at.replace(tzinfo=zone)
    name = args.name
    if name is None:
        name = f"{args.segment or 'Everyone'} {(send_at or now).astimezone(zone):%Y-%m-%d}"
    try:
        campaign = campaigns.create_broadcast(
            session,
            program,
            name=name,
            texts=texts,
            segment=args.segment,
            now=now,
            send_at=send_at,
            control_percent=args.control,
            coupon=args.coupon,
            created_by=_CREATED_BY,
        )
    except InvalidInput as exc:
        if exc.field == "send_at" and send_at is not None and send_at < now:
            # Both times in the club's zone: an owner who typed 10:00 meaning today sees why.
            past, present = _long(send_at, zone), _long(now, zone, with_zone=False)
            raise Usage(f"--at: {past} is in the past; it is now {present}") from None
        raise Usage(f"{_flag(exc.field, args)}: {exc.reason}") from None
    except NotFound as exc:
        raise Usage(_not_found(session, program, exc)) from None
    preview = campaigns.preview(session, program, campaign, now)
    return _Made(
        id=campaign.id,
        name=campaign.name,
        recipients=preview.recipients,
        preview=_describe(program, campaign, preview, args.segment, args.coupon, now),
        sends_from=_from(preview.first_send, now, zone),
    )


def _flag(field: str, args: argparse.Namespace) -> str:
    """The flag an InvalidInput from create_broadcast is about."""
    if field.startswith("texts."):
        language = field.removeprefix("texts.")
        return f"--text-{language}" if getattr(args, f"text_{language}", None) else "--text"
    return {"send_at": "--at", "control": "--control", "name": "--name", "texts": "--text"}.get(
        field, field
    )


def _not_found(session: Session, program: Program, exc: NotFound) -> str:
    if exc.what == "segment":
        return f"--segment: the club has no segment named {exc.key!r}: see `klubb segment list`"
    keys = [t.key for t in _templates(session, program)]
    offered = f" (its coupons: {', '.join(keys)})" if keys else " (it has no coupon templates)"
    return f"--coupon: the club has no active coupon template {exc.key!r}{offered}"


def _templates(session: Session, program: Program) -> list[CouponTemplate]:
    return [t for t in coupons.templates(session, program.id) if t.active]


def _describe(
    program: Program,
    campaign: Campaign,
    preview: campaigns.Preview,
    segment: str | None,
    coupon: str | None,
    now: dt.datetime,
) -> str:
    """The preview as the owner reads it before saying yes."""
    zone = ZoneInfo(program.timezone)
    audience = f"segment {segment!r}" if segment else "every member with consent"
    lines = [
        f"Campaign {campaign.name!r} of {program.name}, to {audience}",
        _pair("matching", f"{preview.matching:,}"),
        _pair("without consent", f"{preview.no_consent:,}"),
        _pair(
            "over the monthly cap",
            f"{preview.capped:,} (at most {program.marketing_per_month} a month)",
        ),
        _pair(f"held out (control {campaign.control_percent}%)", f"{preview.held_out:,}"),
        _pair("recipients", f"{preview.recipients:,}"),
    ]
    if preview.languages:
        rows = [
            (e.language, f"{e.recipients:,}", e.encoding, str(e.segments))
            for e in preview.languages
        ]
        table = _table(("LANGUAGE", "RECIPIENTS", "ENCODING", "SMS PER MESSAGE"), rows, {1, 3})
        lines += ["", *("  " + line for line in table.splitlines()), ""]
    price = locales.format_money(program.sms_price_minor, preview.currency, "en")
    lines += [
        _pair("SMS segments in all", f"{preview.sms_segments:,}"),
        _pair(
            "estimated cost",
            f"{locales.format_money(preview.cost_minor, preview.currency, 'en')} "
            f"({price} a segment)",
        ),
        _pair("goes out", _long(preview.first_send, zone)),
    ]
    asked = max(campaign.send_at or now, now)
    if preview.first_send - asked > dt.timedelta(seconds=1):
        lines.append(
            _pair(
                "",
                f"moved from {_long(asked, zone, with_zone=False)}: the club's quiet hours are "
                f"{program.quiet_start:02d}:00-{program.quiet_end:02d}:00",
            )
        )
    if coupon is not None:
        lines.append(_pair("coupon", f"{coupon}, a code of their own for each recipient"))
    return "\n".join(lines)


# --- campaign list, show, cancel -------------------------------------------------------------


def _campaign_list(args: argparse.Namespace, settings: Settings) -> int:
    def listing(session: Session, program: Program) -> str:
        zone = ZoneInfo(program.timezone)
        rows = []
        for campaign in campaigns.all_of(session, program.id):
            outcome = campaigns.outcome(session, campaign.id)
            planned = sum(outcome.by_status.values()) - outcome.by_status.get("held_out", 0)
            unplanned = campaign.status == campaigns.SCHEDULED and not outcome.by_status
            rows.append(
                (
                    str(campaign.id),
                    campaign.name,
                    campaign.status,
                    _short(campaign.send_at, zone) if campaign.send_at else "-",
                    "-" if unplanned else f"{planned:,}",
                    "-" if unplanned else f"{outcome.by_status.get('sent', 0):,}",
                )
            )
        if not rows:
            return f"klubb: club {program.name!r} has no campaigns yet: `klubb campaign send`"
        header = ("ID", "NAME", "STATUS", f"SENDS AT ({zone.key})", "PLANNED", "SENT")
        return _table(header, rows, right={0, 4, 5})

    return _printed(_run("campaign", args, settings, listing))


def _campaign_show(args: argparse.Namespace, settings: Settings) -> int:
    def show(session: Session, program: Program) -> str:
        campaign = _campaign(session, program, args.id)
        zone = ZoneInfo(program.timezone)
        segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
        template = (
            session.get(CouponTemplate, campaign.coupon_template_id)
            if campaign.coupon_template_id
            else None
        )
        if segment is not None:
            audience = f"segment {segment.name!r}"
        elif campaign.filter in (None, {"all": []}):
            audience = "every member with consent"
        else:
            audience = "a segment since deleted"
        lines = [
            f"Campaign {campaign.id} {campaign.name!r} ({campaign.kind}) of {program.name}",
            _pair("status", campaign.status),
            _pair("sends at", _long(campaign.send_at, zone) if campaign.send_at else "-"),
            _pair("to", audience),
            _pair("coupon", template.key if template else "none"),
            _pair("control", f"{campaign.control_percent}% held out"),
            _pair("created", f"{_long(campaign.created_at, zone)} by {campaign.created_by or '-'}"),
        ]
        if campaign.planned_at:
            lines.append(_pair("planned", _long(campaign.planned_at, zone)))
        if campaign.finished_at:
            lines.append(_pair("finished", _long(campaign.finished_at, zone)))
        lines.append("filter")
        lines += _indented(json.dumps(campaign.filter or {"all": []}, indent=2, ensure_ascii=False))
        lines.append("texts")
        for language, text in (campaign.texts or {}).items():
            lines += _indented(f"{language}: {text}")
        outcome = campaigns.outcome(session, campaign.id)
        counts = [
            ("queued", outcome.by_status.get("queued", 0)),
            ("sending", outcome.by_status.get("sending", 0)),
            ("sent", outcome.by_status.get("sent", 0)),
            ("delivered", outcome.delivered),
            ("undelivered", outcome.undelivered),
            ("failed", outcome.failed),
            ("held out", outcome.by_status.get("held_out", 0)),
        ]
        lines.append("outcome")
        lines += [_pair(label, f"{value:,}") for label, value in counts]
        skipped = ", ".join(
            f"{why.replace('_', ' ')} {n:,}" for why, n in sorted(outcome.skipped.items())
        )
        lines.append(_pair("skipped", f"{sum(outcome.skipped.values()):,}"))
        if skipped:
            lines[-1] += f" ({skipped})"
        return "\n".join(lines)

    return _printed(_run("campaign", args, settings, show))


def _campaign_cancel(args: argparse.Namespace, settings: Settings) -> int:
    now = dt.datetime.now(dt.UTC)

    def cancel(session: Session, program: Program) -> str:
        campaign = _campaign(session, program, args.id)
        try:
            waiting = campaigns.cancel(session, program.id, campaign.id, now)
        except Conflict as exc:
            raise Failure(f"campaign {campaign.id}: {exc.detail}") from None
        return (
            f"klubb: cancelled campaign {campaign.id} {campaign.name!r}; "
            f"{waiting:,} queued messages will not be sent"
        )

    return _printed(_run("campaign", args, settings, cancel))


def _campaign(session: Session, program: Program, campaign_id: int) -> Campaign:
    try:
        return campaigns.get(session, program.id, campaign_id)
    except NotFound:
        raise Failure(
            f"the club has no campaign {campaign_id}: see `klubb campaign list`"
        ) from None


# --- klubb worker -----------------------------------------------------------------------------


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if not schema_is_current(settings):
        return 1
    return asyncio.run(_work(settings))


async def _work(settings: Settings) -> int:
    """The scheduler of `klubb serve` without the web server, until SIGINT or SIGTERM (the
    running jobs then finish their batch in hand: see scheduler.jobs.running_scheduler)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    db = open_database(settings.database_url)
    gateway = gateway_for(settings)
    try:
        async with running_scheduler(
            db,
            gateway,
            send_rate=settings.send_rate,
            in_doubt_after=dt.timedelta(seconds=settings.in_doubt_after),
        ):
            log.info("klubb worker: sending and running jobs; Ctrl-C to stop")
            await stop.wait()
            log.info("klubb worker: stopping after the batch in hand")
        log.info("klubb worker: stopped")
    finally:
        close = getattr(gateway, "close", None)
        if close is not None:
            await close()
        await db.close()
    return 0


# --- formatting -------------------------------------------------------------------------------


def _members(n: int) -> str:
    return f"{n:,} member" + ("" if n == 1 else "s")


def _match(n: int) -> str:
    return f"{_members(n)} match" + ("es" if n == 1 else "")


def _pair(label: str, value: str) -> str:
    return f"  {label:<22}  {value}"


def _indented(text: str) -> list[str]:
    return ["    " + line for line in text.splitlines()]


def _short(moment: dt.datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def _long(moment: dt.datetime, zone: ZoneInfo, *, with_zone: bool = True) -> str:
    local = moment.astimezone(zone)
    text = f"{local:%a} {local.day} {local:%b %Y %H:%M}"
    return f"{text} ({zone.key})" if with_zone else text


def _from(moment: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> str:
    """10:00 when it is today in the club's zone, else the day too."""
    if moment.astimezone(zone).date() == now.astimezone(zone).date():
        return f"{moment.astimezone(zone):%H:%M} ({zone.key})"
    return _long(moment, zone)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to line up; the columns in `right` (numbers) aligned right."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    )
