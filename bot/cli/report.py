"""`klubb report`: the dashboard's figures (store.reports) as tables in the terminal.

Errors follow bot/cli/common.py: one line on stderr naming the flag, exit 2 for input the
owner can fix."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

import locales
from bot.cli.common import Usage, add_club_options, columns, labelled, printed, run_in_club
from bot.settings import Settings
from store import reports
from store.clock import utc_now
from store.errors import InvalidInput
from store.models import Program

DEFAULT_DAYS = 30
_LANGUAGE = "en"


def add_commands(commands: Any) -> None:
    """`report` on the `klubb` parser's subcommands."""
    report = commands.add_parser(
        "report",
        help="members, purchases, customers and campaigns for a period (the dashboard's figures)",
    )
    report.add_argument(
        "--from",
        dest="start",
        metavar="DATE",
        help=f"first day, YYYY-MM-DD in the club's zone (default: {DEFAULT_DAYS} days up to today)",
    )
    report.add_argument(
        "--to",
        dest="end",
        metavar="DATE",
        help="first day NOT included, YYYY-MM-DD (default: tomorrow, so today is in)",
    )
    report.add_argument(
        "--by",
        choices=(reports.AUTO, *reports.GRAINS),
        default=reports.AUTO,
        help=f"count per ISO week or month (auto: weeks up to {reports.WEEKS_UP_TO_DAYS} days)",
    )
    add_club_options(report)
    report.set_defaults(command=_report)


def _report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        start, end = _day("--from", args.start), _day("--to", args.end)
    except Usage as exc:
        print(f"klubb report: {exc}", file=sys.stderr)
        return 2
    now = utc_now()

    def work(session: Session, program: Program) -> str:
        chosen = _period(program, start, end, now)
        report = reports.report(session, program, chosen, now, args.by)
        return render(report)

    return printed(run_in_club("report", args, settings, work, keep=False))


def _day(flag: str, raw: str | None) -> dt.date | None:
    if raw is None:
        return None
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise Usage(f"{flag}: {raw!r} is not a date; give YYYY-MM-DD, e.g. 2026-11-01") from None
    if not reports.in_range(day):
        # Year 1 or 9999 would overflow the period's arithmetic (a traceback, not an answer).
        raise Usage(
            f"{flag}: {day.isoformat()} is outside the days a report covers "
            f"({reports.FIRST_DAY.isoformat()} to {reports.LAST_DAY.isoformat()})"
        )
    return day


def _period(
    program: Program, start: dt.date | None, end: dt.date | None, now: dt.datetime
) -> reports.Period:
    """The period asked for: the last DEFAULT_DAYS days up to today by default, from --from up
    to today, or the DEFAULT_DAYS days before --to."""
    today = now.astimezone(ZoneInfo(program.timezone)).date()
    days = dt.timedelta(days=DEFAULT_DAYS)
    if start is None and end is None:
        return reports.last_days(program, now, DEFAULT_DAYS)
    if start is None:
        assert end is not None
        start = end - days
    if end is None:
        end = today + dt.timedelta(days=1)
        if start >= end:
            raise Usage(f"--from: {start.isoformat()} is after today ({today.isoformat()})")
    try:
        return reports.period(program, start, end)
    except InvalidInput as exc:
        raise Usage(f"--{exc.field}: {exc.reason}") from None


# --- the tables -------------------------------------------------------------------------------


def render(report: reports.Report) -> str:
    """The report as the owner reads it in a terminal, in English."""
    per = report.period
    first, last = per.start, per.last_day
    days = f"{per.days} day" + ("" if per.days == 1 else "s")
    lines = [
        f"{report.club}: {_date(first)} to {_date(last)} ({days}, {per.zone.key})",
        "",
        *_members(report.members),
        "",
        *_texts(report.inbox),
        "",
        *_purchases(report.purchases),
        "",
        *_recency(report.recency),
        "",
        *_top(report.top_customers, report.purchases.currency),
        "",
        *_campaigns(report.campaigns, report.purchases.currency, per.zone),
    ]
    return "\n".join(lines).rstrip()


def _members(figures: reports.MemberFigures) -> list[str]:
    share = figures.consent_share
    lines = [
        "Members now",
        labelled("members", f"{figures.members:,}"),
        labelled(
            "consent share",
            "-"
            if share is None
            else f"{share:.1%} ({figures.members:,} of {figures.known:,} numbers known)",
        ),
        labelled("left (STOP)", f"{figures.left:,}"),
        labelled("STOP, never joined", f"{figures.stopped_never_joined:,}"),
        labelled("not confirmed yet", f"{figures.pending:,}"),
        labelled("erased", f"{figures.erased:,}"),
        "",
        f"New members: {figures.new:,} joined in the period",
    ]
    rows = [
        (n.slice.label, *_span(n.slice), f"{n.joined:,}", f"{n.still_members:,}")
        for n in figures.new_by_slice
    ]
    lines += _indent(columns((_grain(rows), "FROM", "TO", "JOINED", "STILL MEMBERS"), rows, {3, 4}))
    if figures.new_by_store:
        stores = [
            (n.store or "(no store)", f"{n.joined:,}", f"{n.still_members:,}")
            for n in figures.new_by_store
        ]
        lines += ["", *_indent(columns(("STORE", "JOINED", "STILL MEMBERS"), stores, {1, 2}))]
    return lines


def _texts(figures: reports.InboxFigures) -> list[str]:
    """The period's texts and the inbox, as the dashboard counts them."""
    return [
        "Texts in the period",
        labelled("received", f"{figures.received:,}"),
        labelled("not understood", f"{figures.not_understood:,} (Klubb could not answer them)"),
        labelled(
            "answered by staff",
            f"{figures.answered:,} conversation" + ("" if figures.answered == 1 else "s"),
        ),
        labelled(
            "median time to answer",
            "-"
            if figures.median_wait is None
            else f"{wait_text(figures.median_wait)} (of {figures.replies:,} "
            + ("answer)" if figures.replies == 1 else "answers)"),
        ),
    ]


def wait_text(wait: dt.timedelta) -> str:
    """A time to answer to the minute: "25 min", "3 h 5 min", or "2 d 4 h" past two days."""
    minutes = round(wait.total_seconds() / 60)
    hours, minute = divmod(minutes, 60)
    if hours >= 48:
        days, hour = divmod(round(minutes / 60), 24)
        return f"{days} d {hour} h" if hour else f"{days} d"
    if hours:
        return f"{hours} h {minute} min" if minute else f"{hours} h"
    return f"{minute} min"


def _purchases(figures: reports.PurchaseFigures) -> list[str]:
    money = report_money(figures.currency)
    average, each = figures.average_minor, figures.per_buyer_minor
    lines = [
        "Purchases by members",
        labelled("purchases", f"{figures.purchases:,}"),
        labelled("revenue", money(figures.revenue_minor) + " (refunds not deducted)"),
        labelled("average purchase", "-" if average is None else money(average)),
        labelled(
            "members who bought",
            f"{figures.buyers:,}" + ("" if each is None else f" ({money(each)} each)"),
        ),
        labelled("refunds", f"{figures.refunds:,} ({money(figures.refunded_minor)})"),
        labelled("non-members", "not known: the till sends Klubb only members' purchases,"),
        labelled("", "so the members' share of sales and a non-member's average purchase"),
        labelled("", "can't be shown"),
        "",
    ]
    rows = [
        (
            s.slice.label,
            *_span(s.slice),
            f"{s.purchases:,}",
            money(s.revenue_minor),
            f"{s.buyers:,}",
        )
        for s in figures.by_slice
    ]
    lines += _indent(
        columns((_grain(rows), "FROM", "TO", "PURCHASES", "REVENUE", "BUYERS"), rows, {3, 4, 5})
    )
    return lines


def _recency(buckets: Sequence[reports.Recency]) -> list[str]:
    total = sum(b.members for b in buckets)
    rows = [
        (b.label, f"{b.members:,}", f"{b.members / total:.1%}" if total else "-") for b in buckets
    ]
    return [
        "Days since the last purchase (members now)",
        *_indent(columns(("DAYS", "MEMBERS", "SHARE"), rows, {1, 2})),
    ]


def _top(customers: Sequence[reports.Customer], currency: str) -> list[str]:
    title = f"Top {reports.TOP} customers by revenue in the period"
    if not customers:
        return [title, "  no purchases in the period"]
    money = report_money(currency)
    rows = [
        (
            str(c.member_id),
            c.first_name or "-",
            c.phone_masked or "-",
            c.status,
            f"{c.purchases:,}",
            money(c.revenue_minor),
        )
        for c in customers
    ]
    header = ("MEMBER", "NAME", "PHONE", "STATUS", "PURCHASES", "REVENUE")
    return [title, *_indent(columns(header, rows, {0, 4, 5}))]


def _campaigns(
    results: Sequence[reports.CampaignResult], currency: str, zone: ZoneInfo
) -> list[str]:
    title = "Campaigns sent in the period"
    if not results:
        return [title, "  no broadcast was sent in the period"]
    money = report_money(currency)
    rows = [
        (
            str(c.id),
            c.name,
            c.status,
            f"{c.send_at.astimezone(zone):%Y-%m-%d %H:%M}" if c.send_at else "-",
            f"{c.sent:,}",
            f"{c.delivered:,}",
            f"{c.failed + c.undelivered:,}",
            f"{c.held_out:,}",
            f"{c.opt_outs:,}",
            f"{c.coupons_redeemed:,} of {c.coupons_issued:,}" if c.coupons_issued else "-",
        )
        for c in results
    ]
    header = (
        "ID",
        "NAME",
        "STATUS",
        "SENT AT",
        "SENT",
        "DELIVERED",
        "FAILED",
        "HELD OUT",
        "OPT-OUTS",
        "COUPONS REDEEMED",
    )
    lines = [title, *_indent(columns(header, rows, {0, 4, 5, 6, 7, 8, 9}))]
    groups = []
    uplifts = []
    for c in results:
        for label, group in (("recipients", c.recipients), ("control", c.control)):
            groups.append(
                (
                    str(c.id) if label == "recipients" else "",
                    label,
                    f"{group.members:,}",
                    f"{group.buyers:,}",
                    money(group.revenue_minor),
                    "-" if group.average_minor is None else money(group.average_minor),
                    f"{group.opt_outs:,}",
                )
            )
        uplifts.append(f"  campaign {c.id}: {uplift_text(c, money, zone)}")
    header = ("ID", "GROUP", "MEMBERS", "BOUGHT", "REVENUE", "PER MEMBER", "OPT-OUTS")
    lines += [
        "",
        f"Recipients and control group: purchases in the {reports.REVENUE_DAYS} days after "
        f"sending, STOP within {reports.OPT_OUT_DAYS} days",
        *_indent(columns(header, groups, {0, 2, 3, 4, 5, 6})),
        *uplifts,
    ]
    return lines


def uplift_text(c: reports.CampaignResult, money: Any, zone: ZoneInfo) -> str:
    """A broadcast's uplift against its control group, and whether it is final, in a line."""
    if c.window_ends is None:
        return "not sent yet"
    uplift, relative = c.uplift_minor, c.uplift_relative
    if uplift is None:
        text = "no uplift without a control group" if not c.control.members else "-"
    else:
        text = "uplift " + ("+" if uplift > 0 else "") + money(uplift) + " per member"
        if relative is not None:
            text += f" ({relative:+.1%})"
    if c.complete:
        return text
    ends = c.window_ends.astimezone(zone)
    return f"{text}, so far: the {reports.REVENUE_DAYS} days end {ends:%Y-%m-%d}"


# --- formatting -------------------------------------------------------------------------------


def report_money(currency: str) -> Any:
    """Amounts in minor units as the report prints them."""
    return lambda minor: locales.format_money(minor, currency, _LANGUAGE)


def _date(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _span(s: reports.Slice) -> tuple[str, str]:
    return s.start.isoformat(), (s.end - dt.timedelta(days=1)).isoformat()


def _grain(rows: Sequence[Sequence[str]]) -> str:
    return "WEEK" if rows and "-W" in rows[0][0] else "MONTH"


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]
