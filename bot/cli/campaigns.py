"""`klubb segment` and `klubb campaign`: a club's broadcasts from the terminal."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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
    labelled,
    missing,
    printed,
    run_in_club,
    short_time,
)
from bot.cli.report import report_money, uplift_text
from bot.settings import Settings
from store import reports
from store.clock import utc_now
from store.errors import Conflict, InvalidInput, NotFound
from store.models import Campaign, CouponTemplate, Program, Segment
from store.outreach import campaigns, recurring, segments
from store.states import OutboxStatus

_CREATED_BY = "cli"


def add_commands(commands: Any) -> None:
    """`segment` and `campaign` on the `klubb` parser's subcommands."""
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
        help="when: ISO 8601, e.g. 2026-12-01T10:00 (the club's zone) or with +01:00; default "
        "now. With --every: the time of day, e.g. 10:00",
    )
    send.add_argument(
        "--every",
        choices=(recurring.MONTH, recurring.YEAR),
        help="repeat: every month on --day, or every year on --date (each time a campaign of "
        "its own, made a few minutes before)",
    )
    send.add_argument("--day", metavar="N", help="with --every month: 1-28, or last")
    send.add_argument("--date", metavar="MM-DD", help="with --every year: e.g. 12-01")
    send.add_argument(
        "--before-sale",
        metavar="TIME",
        help="send --days-before (and --hours-before) a sale starting at TIME (ISO 8601)",
    )
    send.add_argument("--days-before", type=int, default=0, metavar="N")
    send.add_argument("--hours-before", type=int, default=0, metavar="N")
    send.add_argument(
        "--control",
        type=int,
        default=0,
        metavar="PERCENT",
        help=f"percent of the segment held out to measure the effect (0-{campaigns.MAX_CONTROL})",
    )
    send.add_argument(
        "--coupon",
        metavar="TEMPLATE_KEY",
        help="issue each recipient a coupon (with --favourite-coupon: to those of no category "
        "given one)",
    )
    send.add_argument(
        "--favourite",
        action="store_true",
        help="a favourite category offer: {favourite_category} in the text is each member's "
        "most bought category of the last 12 months (a text using it makes it one anyway)",
    )
    send.add_argument(
        "--favourite-coupon",
        dest="favourite_coupons",
        action="append",
        default=[],
        metavar="CATEGORY=TEMPLATE_KEY",
        help="with a favourite offer: the coupon for members whose favourite is CATEGORY "
        "(repeatable; the others get --coupon, or none)",
    )
    send.add_argument("--name", help="the campaign's name (default: the segment and the date)")
    send.add_argument("--yes", action="store_true", help="send without asking")
    send.add_argument("--dry-run", action="store_true", help="only the preview; nothing is saved")
    send.set_defaults(command=_campaign_send)
    listing = actions.add_parser("list", help="the latest campaigns")
    listing.set_defaults(command=_campaign_list)
    show = actions.add_parser("show", help="a campaign: texts, audience, what happened")
    show.add_argument("id", type=an_id, metavar="ID")
    show.set_defaults(command=_campaign_show)
    cancel = actions.add_parser("cancel", help="stop a broadcast; queued messages are not sent")
    cancel.add_argument("id", type=an_id, metavar="ID")
    cancel.set_defaults(command=_campaign_cancel)
    for action in (send, listing, show, cancel):
        add_club_options(action)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--filter", metavar="JSON", help='e.g. \'{"field": "age", ...}\'')
    given.add_argument("--filter-file", type=Path, metavar="PATH", help="the filter in a file")


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
    now = utc_now()
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

    return printed(run_in_club("segment", args, settings, save))


def _segment_list(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()

    def listing(session: Session, program: Program) -> str:
        zone = ZoneInfo(program.timezone)
        rows = [
            (
                segment.name,
                f"{segments.count(session, program, segment.filter, now):,}",
                short_time(segment.updated_at, zone),
            )
            for segment in segments.all_of(session, program.id)
        ]
        if not rows:
            return f"klubb: club {program.name!r} has no segments yet: `klubb segment save`"
        return columns(("NAME", "MEMBERS", f"UPDATED ({zone.key})"), rows, right={1})

    return printed(run_in_club("segment", args, settings, listing))


def _segment_show(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()

    def show(session: Session, program: Program) -> str:
        segment = _segment(session, program, args.name)
        matching = segments.count(session, program, segment.filter, now)
        zone = ZoneInfo(program.timezone)
        return "\n".join(
            (
                f"segment {segment.name!r} of {program.name}, "
                f"updated {short_time(segment.updated_at, zone)} ({zone.key})",
                json.dumps(segment.filter, indent=2, ensure_ascii=False),
                f"{_match(matching)} now",
            )
        )

    return printed(run_in_club("segment", args, settings, show))


def _segment_count(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()
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

    return printed(run_in_club("segment", args, settings, count))


def _segment_delete(args: argparse.Namespace, settings: Settings) -> int:
    def delete(session: Session, program: Program) -> str:
        segment = _segment(session, program, args.name)
        segments.delete(session, program.id, segment.name)
        return (
            f"klubb: deleted segment {segment.name!r} "
            "(campaigns made with it keep the filter they were made with)"
        )

    return printed(run_in_club("segment", args, settings, delete))


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
        if args.every is not None and args.before_sale is not None:
            raise Usage("--every and --before-sale don't go together")
        at = None if args.every is not None else _parse_at(args.at)
        if args.before_sale is not None:
            if args.at is not None:
                raise Usage("--at and --before-sale don't go together")
            at = _parse_at(args.before_sale, "--before-sale")
        args.favourite_map = _favourite_coupons(args.favourite_coupons)
    except Usage as exc:
        print(f"klubb campaign: {exc}", file=sys.stderr)
        return 2

    def create(session: Session, program: Program) -> _Made:
        return _create(session, program, args, texts, at, utc_now(), settings.public_url)

    def run(keep: bool) -> tuple[int, _Made | None]:
        return run_in_club("campaign", args, settings, create, keep=keep)

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


def _favourite_coupons(pairs: list[str]) -> dict[str, str]:
    """--favourite-coupon CATEGORY=KEY ... as {category: key}."""
    given: dict[str, str] = {}
    for pair in pairs:
        category, equals, key = pair.rpartition("=")
        if not equals or not category.strip() or not key.strip():
            raise Usage(f"--favourite-coupon {pair}: give CATEGORY=TEMPLATE_KEY, e.g. sko=SKO20")
        given[category.strip()] = key.strip()
    return given


def _parse_at(raw: str | None, flag: str = "--at") -> dt.datetime | None:
    """--at as a datetime: aware when it has an offset, naive (the club's zone) when not."""
    if raw is None:
        return None
    try:
        return dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise Usage(
            f"{flag}: {raw!r} is not an ISO 8601 time, e.g. 2026-12-01T10:00 (the club's zone) "
            "or 2026-12-01T10:00+01:00"
        ) from None


def _timed(
    args: argparse.Namespace, at: dt.datetime | None, now: dt.datetime
) -> tuple[recurring.Recurrence | None, recurring.BeforeSale | None]:
    """--every's recurrence, or --before-sale's timing (Usage naming the flag when wrong)."""
    try:
        if args.every is not None:
            rule = recurring.recurrence(
                args.every, day=args.day, date=args.date, at=args.at or "10:00"
            )
            return rule, None
        if args.before_sale is not None and at is not None:
            return None, recurring.before_sale(
                at, days=args.days_before, hours=args.hours_before, now=now
            )
    except InvalidInput as exc:
        flag = {"sale_at": "--before-sale", "at": "--at"}.get(exc.field, f"--{exc.field}")
        raise Usage(f"{flag.replace('_', '-')}: {exc.reason}") from None
    return None, None


def _create(
    session: Session,
    program: Program,
    args: argparse.Namespace,
    texts: dict[str, str],
    at: dt.datetime | None,
    now: dt.datetime,
    link_base: str,
) -> _Made:
    zone = ZoneInfo(program.timezone)
    send_at = None if at is None else at if at.tzinfo is not None else at.replace(tzinfo=zone)
    rule, sale = _timed(args, send_at, now)
    if rule is not None:
        send_at = recurring.first_moment(rule, program, now)
    name = args.name
    if name is None:
        name = f"{args.segment or 'Everyone'} {(send_at or now).astimezone(zone):%Y-%m-%d}"
    options: dict[str, Any] = {
        "name": name,
        "texts": texts,
        "segment": args.segment,
        "control_percent": args.control,
        "coupon": args.coupon,
        "created_by": _CREATED_BY,
        "favourite": args.favourite,
        "favourite_coupons": args.favourite_map,
    }
    try:
        if rule is not None:
            campaign = recurring.create_series(session, program, rule=rule, now=now, **options)
        elif sale is not None:
            campaign = recurring.create_before_sale(
                session, program, timed=sale, now=now, **options
            )
        else:
            campaign = campaigns.create_broadcast(
                session, program, now=now, send_at=send_at, **options
            )
    except InvalidInput as exc:
        if exc.field == "send_at" and send_at is not None and send_at < now:
            # Both times in the club's zone: an owner who typed 10:00 meaning today sees why.
            past, present = _long(send_at, zone), _long(now, zone, with_zone=False)
            raise Usage(f"--at: {past} is in the past; it is now {present}") from None
        raise Usage(f"{_flag(exc.field, args)}: {exc.reason}") from None
    except NotFound as exc:
        raise Usage(missing(session, program, exc)) from None
    # A series is previewed as its first occurrence will be (it has no send_at of its own);
    # its time is put back before the transaction ends.
    campaign.send_at = send_at if rule is not None else campaign.send_at
    preview = campaigns.preview(session, program, campaign, now, link_base)
    shown = _describe(
        program, campaign, preview, args.segment, args.coupon, now, args.favourite_map
    )
    if rule is not None:
        campaign.send_at = None
        shown += "\n" + labelled("repeats", f"{_rule_text(rule)}; the first is the one above")
    elif sale is not None:
        shown += "\n" + labelled("before the sale", _sale_text(sale, zone))
    return _Made(
        id=campaign.id,
        name=campaign.name,
        recipients=preview.recipients,
        preview=shown,
        sends_from=_from(preview.first_send, now, zone),
    )


def _rule_text(rule: recurring.Recurrence) -> str:
    """ "every month on day 15 at 10:00", as `klubb campaign` says it."""
    at = f"{rule.at:%H:%M}"
    if rule.every == recurring.YEAR:
        return f"every year on {dt.date(2024, rule.month or 1, int(rule.day)):%d %b} at {at}"
    if rule.day == recurring.LAST:
        return f"every month on the last day at {at}"
    return f"every month on day {rule.day} at {at}"


def _sale_text(sale: recurring.BeforeSale, zone: ZoneInfo) -> str:
    return f"{sale.days} days {sale.hours} hours before the sale on " + _long(
        sale.sale_starts_at, zone
    )


def _flag(field: str, args: argparse.Namespace) -> str:
    """The flag an InvalidInput from create_broadcast is about."""
    if field.startswith("texts."):
        language = field.removeprefix("texts.")
        return f"--text-{language}" if getattr(args, f"text_{language}", None) else "--text"
    if field.startswith("favourite_coupons"):
        category = field.removeprefix("favourite_coupons").removeprefix(".")
        return f"--favourite-coupon {category}=".rstrip("=") if category else "--favourite-coupon"
    return {"send_at": "--at", "control": "--control", "name": "--name", "texts": "--text"}.get(
        field, field
    )


def _describe(
    program: Program,
    campaign: Campaign,
    preview: campaigns.Preview,
    segment: str | None,
    coupon: str | None,
    now: dt.datetime,
    favourite_keys: Mapping[str, str] | None = None,
) -> str:
    """The preview as the owner reads it before saying yes."""
    favourite_keys = favourite_keys or {}
    zone = ZoneInfo(program.timezone)
    audience = f"segment {segment!r}" if segment else "every member with consent"
    lines = [
        f"Campaign {campaign.name!r} of {program.name}, to {audience}",
        labelled("matching", f"{preview.matching:,}"),
        labelled("without consent", f"{preview.no_consent:,}"),
        labelled(
            "over the monthly cap",
            f"{preview.capped:,} (at most {program.marketing_per_month} a month)",
        ),
        labelled(f"held out (control {campaign.control_percent}%)", f"{preview.held_out:,}"),
        labelled("recipients", f"{preview.recipients:,}"),
    ]
    if preview.languages:
        rows = [
            (e.language, f"{e.recipients:,}", e.encoding, str(e.segments))
            for e in preview.languages
        ]
        table = columns(("LANGUAGE", "RECIPIENTS", "ENCODING", "SMS PER MESSAGE"), rows, {1, 3})
        lines += ["", *("  " + line for line in table.splitlines()), ""]
    price = locales.format_money(program.sms_price_minor, preview.currency, "en")
    lines += [
        labelled("SMS segments in all", f"{preview.sms_segments:,}"),
        labelled(
            "estimated cost",
            f"{locales.format_money(preview.cost_minor, preview.currency, 'en')} "
            f"({price} a segment)",
        ),
        labelled("goes out", _long(preview.first_send, zone)),
    ]
    asked = max(campaign.send_at or now, now)
    if preview.first_send - asked > dt.timedelta(seconds=1):
        lines.append(
            labelled(
                "",
                f"moved from {_long(asked, zone, with_zone=False)}: the club's quiet hours are "
                f"{program.quiet_start:02d}:00-{program.quiet_end:02d}:00",
            )
        )
    if coupon is not None:
        lines.append(labelled("coupon", f"{coupon}, a code of their own for each recipient"))
    offer = campaigns.favourite_of(campaign)
    if offer is not None:
        lines.append(
            labelled(
                "favourite category",
                "each member's most bought category of the last 12 months"
                + (
                    "; coupons by category: "
                    + ", ".join(f"{category}={key}" for category, key in favourite_keys.items())
                    if favourite_keys
                    else ""
                ),
            )
        )
    return "\n".join(lines)


# --- campaign list, show, cancel -------------------------------------------------------------


def _campaign_list(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()

    def listing(session: Session, program: Program) -> str:
        zone = ZoneInfo(program.timezone)
        rows = []
        listed = campaigns.all_of(session, program.id)
        made = recurring.latest_made(session, [c.id for c in listed if c.recurrence])
        for campaign in listed:
            outcome = campaigns.outcome(session, campaign.id)
            planned = sum(outcome.by_status.values()) - outcome.by_status.get(
                OutboxStatus.HELD_OUT, 0
            )
            unplanned = campaign.status == campaigns.SCHEDULED and not outcome.by_status
            when = short_time(campaign.send_at, zone) if campaign.send_at else "-"
            rule = recurring.series_of(campaign)
            if rule is not None:  # a series: its rule and its next occurrence
                upcoming = recurring.next_moment(campaign, zone, now, made.get(campaign.id))
                when = _rule_text(rule) + (
                    f", next {short_time(upcoming, zone)}" if upcoming else ""
                )
            rows.append(
                (
                    str(campaign.id),
                    campaign.name,
                    "series " + campaign.status if rule else campaign.status,
                    when,
                    "-" if unplanned else f"{planned:,}",
                    "-" if unplanned else f"{outcome.by_status.get(OutboxStatus.SENT, 0):,}",
                )
            )
        if not rows:
            return f"klubb: club {program.name!r} has no campaigns yet: `klubb campaign send`"
        header = ("ID", "NAME", "STATUS", f"SENDS AT ({zone.key})", "PLANNED", "SENT")
        return columns(header, rows, right={0, 4, 5})

    return printed(run_in_club("campaign", args, settings, listing))


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
            labelled("status", campaign.status),
            labelled("sends at", _long(campaign.send_at, zone) if campaign.send_at else "-"),
            labelled("to", audience),
            labelled("coupon", template.key if template else "none"),
            labelled("control", f"{campaign.control_percent}% held out"),
            labelled(
                "created", f"{_long(campaign.created_at, zone)} by {campaign.created_by or '-'}"
            ),
        ]
        if campaign.planned_at:
            lines.append(labelled("planned", _long(campaign.planned_at, zone)))
        if campaign.finished_at:
            lines.append(labelled("finished", _long(campaign.finished_at, zone)))
        lines.append("filter")
        lines += _indented(json.dumps(campaign.filter or {"all": []}, indent=2, ensure_ascii=False))
        lines.append("texts")
        for language, text in (campaign.texts or {}).items():
            lines += _indented(f"{language}: {text}")
        outcome = campaigns.outcome(session, campaign.id)
        counts = [
            ("queued", outcome.by_status.get(OutboxStatus.QUEUED, 0)),
            ("sending", outcome.by_status.get(OutboxStatus.SENDING, 0)),
            ("sent", outcome.by_status.get(OutboxStatus.SENT, 0)),
            ("delivered", outcome.delivered),
            ("undelivered", outcome.undelivered),
            ("failed", outcome.failed),
            ("held out", outcome.by_status.get(OutboxStatus.HELD_OUT, 0)),
        ]
        lines.append("outcome")
        lines += [labelled(label, f"{value:,}") for label, value in counts]
        skipped = ", ".join(
            f"{why.replace('_', ' ')} {n:,}" for why, n in sorted(outcome.skipped.items())
        )
        lines.append(labelled("skipped", f"{sum(outcome.skipped.values()):,}"))
        if skipped:
            lines[-1] += f" ({skipped})"
        result = reports.result_of(session, program, campaign.id, utc_now())
        if result is not None and result.window_ends is not None:
            lines += _results(result, program.currency, zone)
        return "\n".join(lines)

    return printed(run_in_club("campaign", args, settings, show))


def _results(result: reports.CampaignResult, currency: str, zone: ZoneInfo) -> list[str]:
    """What a sent broadcast did: each side's purchases, the uplift, and taps on its links."""
    money = report_money(currency)
    lines = [f"results (purchases in the {reports.REVENUE_DAYS} days after sending)"]
    for label, group in (("recipients", result.recipients), ("control", result.control)):
        lines.append(
            labelled(
                label,
                f"{group.members:,} members, {group.buyers:,} bought, {money(group.revenue_minor)}",
            )
        )
    lines.append(labelled("vs control", uplift_text(result, money, zone)))
    if result.has_links:
        taps = result.clicked
        rate = "-" if result.click_rate is None else f"{result.click_rate:.1%}"
        lines += [
            labelled("link taps", f"{taps.clicks:,}"),
            labelled("tapped", f"{taps.clickers:,} recipients ({rate} of sent)"),
            labelled(
                f"then, {reports.CLICK_DAYS} days",
                f"{taps.purchases:,} purchases by {taps.buyers:,} members, "
                f"{money(taps.revenue_minor)}",
            ),
        ]
    return lines


def _campaign_cancel(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()

    def cancel(session: Session, program: Program) -> str:
        campaign = _campaign(session, program, args.id)
        try:
            waiting = campaigns.cancel(session, program.id, campaign.id, now)
        except Conflict as exc:
            raise Failure(f"campaign {campaign.id}: {exc.detail}") from None
        if campaign.recurrence:
            return (
                f"klubb: cancelled series {campaign.id} {campaign.name!r}; no more occurrences "
                "(one already being sent goes on: `klubb campaign cancel` it too)"
            )
        return (
            f"klubb: cancelled campaign {campaign.id} {campaign.name!r}; "
            f"{waiting:,} queued messages will not be sent"
        )

    return printed(run_in_club("campaign", args, settings, cancel))


def _campaign(session: Session, program: Program, campaign_id: int) -> Campaign:
    try:
        return campaigns.get(session, program.id, campaign_id)
    except NotFound:
        raise Failure(
            f"the club has no campaign {campaign_id}: see `klubb campaign list`"
        ) from None


# --- formatting -------------------------------------------------------------------------------


def _members(n: int) -> str:
    return f"{n:,} member" + ("" if n == 1 else "s")


def _match(n: int) -> str:
    return f"{_members(n)} match" + ("es" if n == 1 else "")


def _indented(text: str) -> list[str]:
    return ["    " + line for line in text.splitlines()]


def _long(moment: dt.datetime, zone: ZoneInfo, *, with_zone: bool = True) -> str:
    local = moment.astimezone(zone)
    text = f"{local:%a} {local.day} {local:%b %Y %H:%M}"
    return f"{text} ({zone.key})" if with_zone else text


def _from(moment: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> str:
    """10:00 when it is today in the club's zone, else the day too."""
    if moment.astimezone(zone).date() == now.astimezone(zone).date():
        return f"{moment.astimezone(zone):%H:%M} ({zone.key})"
    return _long(moment, zone)
