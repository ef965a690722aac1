"""The admin's own pages: sign in and out, the dashboard and its figures (store.reports)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp_session import get_session, new_session
from babel import dates as babel_dates
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit
from markupsafe import Markup
from sqlalchemy.orm import Session

from bot.admin import auth, charts
from bot.admin.auth import (
    ADMIN,
    LANGUAGE,
    TOKEN,
    csrf_token,
    public,
    signed_in,
)
from bot.admin.render import date_value, page, read_date
from bot.admin.render import money as page_money
from bot.client_address import client_address
from bot.keys import DB
from locales import babel_locale, format_date, format_number, text
from store import reports
from store.clock import utc_now
from store.clubs import admins, programs
from store.errors import InvalidInput
from store.members import members
from store.models import Program

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
DASHBOARD = "/admin/"
NEWEST_MEMBERS = 10
MAX_FIELD = 1024  # an email or password longer than this is not one
DEFAULT_DAYS = 30
_DAY = dt.timedelta(days=1)
QUICK_DAYS = (7, 30, 90, 365)  # the quick choices: a week, a month, a quarter, a year


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a page of the admin, never another site."""
    if (
        target
        and target.startswith("/admin/")
        and not target.startswith(("//", "/admin/sign-"))
        and "\\" not in target
        and "//" not in target
    ):
        return target
    return DASHBOARD


@routes.get("/sign-in")
@public
async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if ADMIN in request:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return page(request, "sign_in.html", next=_safe_next(request.query.get("next")), email="")


@routes.post("/sign-in")
@public
async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", ""))[:MAX_FIELD]
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    result = await admins.verify(
        request.config_dict[DB],
        email,
        password,
        address=client_address(request) or "unknown",
        now=auth.utc_now(),
        user_agent=request.headers.get("User-Agent"),
    )
    if result.outcome is admins.Outcome.SIGNED_IN and result.token is not None:
        # A new session (and CSRF token) at sign-in: one planted before it is worth nothing.
        session = await new_session(request)
        signed_in(session, result.token)
        csrf_token(session)
        log.info("admin sign-in: account %s", result.account_id)
        raise web.HTTPSeeOther(target)
    if result.outcome is admins.Outcome.REFUSED:
        error, status = "admin.sign_in.refused", 429
    else:
        error, status = "admin.sign_in.wrong", 401
    log.info("admin sign-in failed (%s) from %s", result.outcome.value, client_address(request))
    return page(
        request,
        "sign_in.html",
        status=status,
        next=target,
        email=email,
        error=error,
        minutes=int(admins.WINDOW.total_seconds() // 60),
    )


@routes.post("/sign-out")
async def sign_out(request: web.Request) -> web.StreamResponse:
    """End the session on the server (a copy of the cookie is worth nothing after), then ask
    the browser to drop the cookie."""
    token = request[TOKEN]
    await request.config_dict[DB].run(lambda session: admins.end_session(session, token))
    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther("/admin/sign-in")


# --- the dashboard ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chosen:
    """The period the dashboard shows, and what was wrong with the one asked for (if anything):
    (catalog id, the value as given)."""

    period: reports.Period
    days: int | None  # one of QUICK_DAYS when the period is exactly one of them, ending today
    notice: tuple[str, str] | None = None
    field: str | None = None  # "from" or "to": the date that was wrong, named beside it


def choose_period(program: Program, query: Mapping[str, str], now: dt.datetime) -> Chosen:
    """The period of `?from=…&to=…` (07.11.2026 as the page's fields show dates, or ISO as its
    links write them), both days included (`klubb report --to` is the first day after).
    `from` alone runs to today, `to` alone has the DEFAULT_DAYS days up to it; nothing, or
    anything wrong, is the last DEFAULT_DAYS days, with a notice naming what was wrong (and,
    for a date that is not one or is outside the days a period may reach, reports.in_range,
    which field it was in)."""
    default = reports.last_days(program, now, DEFAULT_DAYS)
    raw_from = query.get("from", "").strip()[:MAX_FIELD]
    raw_to = query.get("to", "").strip()[:MAX_FIELD]
    if not raw_from and not raw_to:
        return Chosen(default, DEFAULT_DAYS)
    days: dict[str, dt.date] = {}
    for name, raw in (("from", raw_from), ("to", raw_to)):
        if not raw:
            continue
        day = read_date(raw)
        if day is None:
            return Chosen(default, DEFAULT_DAYS, ("admin.dashboard.bad_date", raw), name)
        if not reports.in_range(day):
            return Chosen(default, DEFAULT_DAYS, ("admin.dashboard.out_of_range", raw), name)
        days[name] = day
    today = default.last_day
    last = days.get("to", today)
    first = days.get("from", last - dt.timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        return Chosen(default, DEFAULT_DAYS, ("admin.dashboard.bad_order", f"{first} > {last}"))
    try:
        per = reports.period(program, first, last + dt.timedelta(days=1))
    except InvalidInput:
        return Chosen(default, DEFAULT_DAYS, ("admin.dashboard.too_long", f"{first} - {last}"))
    quick = per.days if per.last_day == today and per.days in QUICK_DAYS else None
    return Chosen(per, quick)


def quick_choices(today: dt.date) -> list[tuple[int, str, str]]:
    """(days, from, to) of each quick choice, every one ending today."""
    return [
        (days, (today - dt.timedelta(days=days - 1)).isoformat(), today.isoformat())
        for days in QUICK_DAYS
    ]


def _percent(value: float | None, language: str) -> str | None:
    if value is None:
        return None
    return format_percent(value, "#,##0.0 %", locale=babel_locale(language))


def _slice_label(piece: reports.Slice, grain: str, language: str) -> str:
    """Short enough to sit under a bar: "W47", or "Nov 26" as the language writes months."""
    if grain == reports.WEEK:
        return f"{text('admin.dashboard.week_short', language)}{piece.start.isocalendar()[1]}"
    return babel_dates.format_date(piece.start, "LLL yy", locale=babel_locale(language))


def wait_shown(wait: dt.timedelta | None, language: str) -> str | None:
    """A time to answer as the language writes it, to the minute: "25 min", "3 t 5 min" or
    "2 d 4 t" (days and hours past two days); None for no answer at all."""
    if wait is None:
        return None
    minutes = round(wait.total_seconds() / 60)
    hours, minute = divmod(minutes, 60)
    if hours >= 48:
        days, hour = divmod(round(minutes / 60), 24)
        parts = [(days, "duration-day"), (hour, "duration-hour")]
    elif hours:
        parts = [(hours, "duration-hour"), (minute, "duration-minute")]
    else:
        parts = [(minute, "duration-minute")]
    where = babel_locale(language)
    shown = [format_unit(n, unit, length="short", locale=where) for n, unit in parts if n]
    return " ".join(shown) or format_unit(0, "duration-minute", length="short", locale=where)


@dataclass(frozen=True, slots=True)
class _Words:
    """How the dashboard writes in one language: its texts, counts and the club's money."""

    language: str
    currency: str

    def t(self, message_id: str, **params: object) -> str:
        return text(message_id, self.language, **params)

    def money(self, minor: int | None) -> str | None:
        return None if minor is None else page_money(minor, self.currency, self.language)

    def counts(self, numbers: list[int]) -> list[str]:
        return [format_number(n, self.language) for n in numbers]

    def share(self, part: int, whole: int) -> str | None:
        """part / whole as a percent, or None when there is no whole."""
        return _percent(part / whole if whole else None, self.language)


def dashboard_view(report: reports.Report, owner: bool, language: str) -> dict[str, Any]:
    """What the template shows: the figures written for the language, and the charts. Staff
    see counts, not money (revenue, baskets, the value of a campaign): their work is looking
    up members at the till, and a shop's takings are the owner's."""
    words = _Words(language, report.purchases.currency)
    m, p = report.members, report.purchases
    labels = [_slice_label(s.slice, p.grain, language) for s in p.by_slice]
    spans = [
        f"{format_date(s.slice.start, language)} – {format_date(s.slice.end - _DAY, language)}"
        for s in p.by_slice
    ]
    per_buyer = None if not p.buyers else p.purchases / p.buyers
    campaigns = [_campaign_row(words, c) for c in report.campaigns]
    recency_labels = [
        words.t("admin.dashboard.recency." + _RECENCY_IDS[r.label]) for r in report.recency
    ]
    top = report.top_customers
    return {
        "members": m,
        "purchases": p,
        "consent_share": _percent(m.consent_share, language),
        # Owner and staff alike: a count of texts, no money in it.
        "not_understood": report.not_understood,
        "texts": report.inbox,
        "median_wait": wait_shown(report.inbox.median_wait, language),
        "revenue": words.money(p.revenue_minor),
        "average": words.money(p.average_minor),
        "per_buyer": None
        if per_buyer is None
        else format_decimal(per_buyer, "#,##0.0", locale=babel_locale(language)),
        # Members and purchases are cut into the same slices of the same period.
        "slices": [
            {
                "label": label,
                "span": span,
                "joined": new.joined,
                "still": new.still_members,
                "purchases": sales.purchases,
                "revenue": words.money(sales.revenue_minor),
            }
            for label, span, new, sales in zip(
                labels, spans, m.new_by_slice, p.by_slice, strict=True
            )
        ],
        "grain": p.grain,
        "recency": [
            (label, r.members) for label, r in zip(recency_labels, report.recency, strict=True)
        ],
        "campaigns": campaigns,
        "campaigns_counted_at": _counted_at(report, language),
        "top": [
            {
                "id": c.member_id,
                "name": c.first_name or c.phone_masked or "–",
                "phone": c.phone_masked if c.first_name else None,
                "status": c.status,
                "purchases": c.purchases,
                "revenue": words.money(c.revenue_minor),
            }
            for c in top
        ],
        "campaign_link": (
            # Ids are integers: the comma-separated list needs no escaping.
            "/admin/campaigns/new?members=" + ",".join(str(c.member_id) for c in top)
            if owner and top
            else None
        ),
        "charts": {
            "members": _members_chart(words, m, p.grain, labels, spans),
            "purchases": _purchases_chart(words, p, labels),
            "revenue": _revenue_chart(words, p, labels) if owner else None,
            "campaigns": _campaigns_chart(words, report.campaigns, campaigns, owner),
            "recency": _recency_chart(words, report, recency_labels),
        },
    }


def _members_chart(
    words: _Words, m: reports.MemberFigures, grain: str, labels: list[str], spans: list[str]
) -> Markup:
    """How many joined in each slice, and how many of those are members still."""
    t = words.t
    joined = [n.joined for n in m.new_by_slice]
    still = [n.still_members for n in m.new_by_slice]
    busiest = max(range(len(joined)), key=lambda i: joined[i]) if joined else 0
    return charts.bars(
        t("admin.dashboard.chart_members", grain=t("admin.dashboard.grain." + grain)),
        t(
            "admin.dashboard.chart_members_desc",
            count=m.new,
            most=joined[busiest] if joined else 0,
            when=spans[busiest] if spans else "",
        ),
        labels,
        [
            charts.Series(t("admin.dashboard.joined"), joined, words.counts(joined)),
            charts.Series(t("admin.dashboard.still_members"), still, words.counts(still)),
        ],
    )


def _purchases_chart(words: _Words, p: reports.PurchaseFigures, labels: list[str]) -> Markup:
    """How many purchases in each slice."""
    t = words.t
    counts = [s.purchases for s in p.by_slice]
    return charts.bars(
        t("admin.dashboard.chart_purchases", grain=t("admin.dashboard.grain." + p.grain)),
        t("admin.dashboard.chart_purchases_desc", count=p.purchases),
        labels,
        [charts.Series(t("admin.dashboard.purchases"), counts, words.counts(counts))],
    )


def _revenue_chart(words: _Words, p: reports.PurchaseFigures, labels: list[str]) -> Markup:
    """The takings of each slice (the owner's chart)."""
    t = words.t
    revenue = [s.revenue_minor for s in p.by_slice]
    return charts.bars(
        t("admin.dashboard.chart_revenue", grain=t("admin.dashboard.grain." + p.grain)),
        t("admin.dashboard.chart_revenue_desc", amount=words.money(p.revenue_minor) or ""),
        labels,
        [
            charts.Series(
                t("admin.dashboard.revenue"), revenue, [words.money(n) or "" for n in revenue]
            )
        ],
    )


def _campaign_row(words: _Words, c: reports.CampaignResult) -> dict[str, Any]:
    """A campaign's line in the results table: recipients against the group held out."""
    return {
        "id": c.id,
        "name": c.name,
        "sent": c.sent,
        "delivered": c.delivered,
        "failed": c.failed,
        "opt_outs": c.opt_outs,
        "held_out": c.held_out,
        "coupons_redeemed": c.coupons_redeemed,
        "complete": c.complete,
        "recipients": c.recipients,
        "control": c.control,
        "recipients_bought": words.share(c.recipients.buyers, c.recipients.members),
        "control_bought": words.share(c.control.buyers, c.control.members),
        "recipients_average": words.money(c.recipients.average_minor),
        "control_average": words.money(c.control.average_minor),
        "uplift": words.money(c.uplift_minor),
    }


def _counted_at(report: reports.Report, language: str) -> str | None:
    """When the oldest of the campaign figures was counted, if the scheduler stored them a
    while ago (the dashboard doesn't count them on every visit)."""
    stored = [c.counted_at for c in report.campaigns if c.counted_at < report.now]
    if not stored:
        return None
    local = min(stored).astimezone(report.period.zone)
    return f"{format_date(local.date(), language)} {local:%H:%M}"


def _campaigns_chart(
    words: _Words,
    results: list[reports.CampaignResult],
    rows: list[dict[str, Any]],
    owner: bool,
) -> Markup | None:
    """Each campaign's recipients against its control: the owner sees the average spent,
    staff the share who bought. None without campaigns."""
    if not results:
        return None
    t = words.t
    if owner:
        treated = [c.recipients.average_minor or 0 for c in results]
        held = [c.control.average_minor or 0 for c in results]
        shown = ([words.money(n) or "" for n in treated], [words.money(n) or "" for n in held])
        title = t("admin.dashboard.chart_campaigns_revenue")
    else:
        # Per mille of each group who bought: whole numbers for the bars' lengths.
        treated = [_per_mille(c.recipients) for c in results]
        held = [_per_mille(c.control) for c in results]
        shown = (
            [r["recipients_bought"] or "–" for r in rows],
            [r["control_bought"] or "–" for r in rows],
        )
        title = t("admin.dashboard.chart_campaigns_bought")
    return charts.bars(
        title,
        t("admin.dashboard.chart_campaigns_desc", count=len(results)),
        [c.name for c in results],
        [
            charts.Series(t("admin.dashboard.recipients"), treated, shown[0]),
            charts.Series(t("admin.dashboard.control"), held, shown[1]),
        ],
        horizontal=True,
    )


def _per_mille(group: reports.Group) -> int:
    return group.buyers * 1000 // group.members if group.members else 0


def _recency_chart(words: _Words, report: reports.Report, labels: list[str]) -> Markup:
    """Members by how long ago they last bought."""
    t = words.t
    counts = [r.members for r in report.recency]
    return charts.bars(
        t("admin.dashboard.chart_recency"),
        t("admin.dashboard.chart_recency_desc", count=report.members.members),
        # Short under the bars ("31-90"); the table below names them in full.
        [
            r.label if r.label != reports.NEVER else label
            for r, label in zip(report.recency, labels, strict=True)
        ],
        [charts.Series(t("admin.dashboard.members"), counts, words.counts(counts))],
    )


# The labels of store.reports.RECENCY and NEVER as catalog ids.
_RECENCY_IDS = {
    "0-30": "0_30",
    "31-90": "31_90",
    "91-180": "91_180",
    "181-365": "181_365",
    ">365": "over_365",
    reports.NEVER: "never",
}


def _read_report(program_id: int, query: Mapping[str, str], now: dt.datetime) -> Any:
    def read(session: Session) -> tuple[Chosen, reports.Report, list[dict[str, Any]]]:
        program = programs.get(session, program_id)
        assert program is not None  # the guard read the admin's club for this request
        chosen = choose_period(program, query, now)
        report = reports.report(session, program, chosen.period, now, stored=reports.RESULTS_FRESH)
        newest = [
            {"id": m.id, "name": m.first_name, "phone": m.phone, "status": m.status}
            for m in members.newest(session, program_id, NEWEST_MEMBERS)
        ]
        return chosen, report, newest

    return read


@routes.get("/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    language = request[LANGUAGE]
    now = utc_now()
    # Beside the writer (Database.read): a report never holds up a member's text.
    chosen, report, newest = await request.config_dict[DB].read(
        _read_report(admin.program_id, request.query, now)
    )
    today = now.astimezone(chosen.period.zone).date()
    per = chosen.period
    return page(
        request,
        "dashboard.html",
        section="dashboard",
        view=dashboard_view(report, admin.is_owner, language),
        chosen=chosen,
        first=per.start.isoformat(),
        last=per.last_day.isoformat(),
        # What the fields show: the club's format, or what was typed where it was wrong.
        typed={
            "from": date_value(per.start, language),
            "to": date_value(per.last_day, language),
        }
        | ({chosen.field: chosen.notice[1]} if chosen.field and chosen.notice else {}),
        example=date_value(today, language),
        first_shown=format_date(per.start, language),
        last_shown=format_date(per.last_day, language),
        quick=quick_choices(today),
        today=today.isoformat(),
        newest=newest,
        counted_every=reports.RESULTS_EVERY_MINUTES,
    )


async def favicon(request: web.Request) -> web.StreamResponse:
    """/favicon.ico, which browsers and crawlers ask for at the site's root: the admin's icon
    (its pages name the SVG one; this is for whatever asks without reading a page)."""
    return web.FileResponse(
        Path(str(resources.files("bot.admin") / "static" / "favicon.ico")),
        headers={"Content-Type": "image/x-icon", "Cache-Control": "public, max-age=86400"},
    )


@routes.get("/api/summary")
async def summary(request: web.Request) -> web.StreamResponse:
    """The dashboard's figures as JSON, for the pages' scripts."""
    admin = request[ADMIN]
    counts = await request.config_dict[DB].run(
        lambda session: members.count_by_status(session, admin.program_id)
    )
    return web.json_response({"club": admin.club, "members": counts})
