"""What every admin page shares: rendering a template in the admin's language, the error page,
and reading an id from the URL."""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.admin.auth import ADMIN, CSRF, LANGUAGE, CsrfRefused, NotText
from bot.forms import FormUnreadable
from locales import benefit, format_date, format_money, format_number, sms_money, text
from store.clock import utc_now
from store.loyalty import coupons
from store.members import imports
from store.models import CouponTemplate

MAX_ID = 2**63 - 1  # beyond any id; PostgreSQL would refuse the parameter
# How a date field shows its date: as the language writes dates in numbers ("07.11.2026" in
# nb; sv writes ISO). A browser's own date picker would show its locale's order instead
# (11/07/2026 in a US browser), so the admin's date fields are text in this format.
DATE_FIELD = {"nb": "%d.%m.%Y", "sv": "%Y-%m-%d", "en": "%d.%m.%Y"}
_CLOCK = re.compile(r"^(\d{1,2})[:.](\d{2})$")


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A template rendered in the request's language, with what every page's layout needs."""
    language = request.get(LANGUAGE, "en")
    base = {
        "t": functools.partial(render_text, language),
        "number": lambda n: format_number(n, language),
        "language": language,
        "admin": request.get(ADMIN),
        "csrf_token": request.get(CSRF, ""),
        "section": None,
    }
    return aiohttp_jinja2.render_template(template, request, base | context, status=status)


def money(minor: int, currency: str, language: str) -> str:
    """An amount as a page shows it ("13 246,00 kr"): spaces no-break, so it never wraps.
    (format_money writes it for an SMS, where a no-break space would cost UCS-2.)"""
    return format_money(minor, currency, language).replace(" ", "\u00a0")


def coupon_title(template: CouponTemplate, currency: str, language: str) -> str:
    """What a coupon of the template gives, word for word as the member reads it in an SMS
    ("100 kr rabatt": locales.benefit), else its key: the settings page, the campaign form, the
    journeys page and the member page all name it so. Only the amount's spaces are no-break,
    so it never wraps."""
    wording = coupons.benefit_of(template, language)
    if not wording:
        return template.key
    title = benefit(wording, language, amount_minor=template.discount_minor, currency=currency)
    if template.discount_minor is None:
        return title
    amount = sms_money(template.discount_minor, currency, language)
    return title.replace(amount, amount.replace(" ", "\u00a0"))


def render_text(language: str, message_id: str, /, **params: object) -> str:
    return text(message_id, language, **params)


def error_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    params: dict[str, str] = {}
    if isinstance(exc, CsrfRefused):
        message = "admin.error.csrf"
    elif isinstance(exc, FormUnreadable):
        message = "admin.error.unreadable"
    elif isinstance(exc, NotText):
        message, params = "admin.error.not_text", {"field": exc.field}
    else:
        message = {
            403: "admin.error.forbidden",
            404: "admin.error.not_found",
            413: "admin.error.too_large",
        }.get(exc.status, "admin.error.other")
    return page(request, "error.html", status=exc.status, message=message, params=params)


def path_id(request: web.Request, name: str) -> int:
    """An id from the URL; 404 for one no row can have. Its route's \\d+ matches any script's
    digits ("١", "１", which int() reads as 1: another address for the same row) and any
    length (int() refuses more than 4,300 digits: a 500), so ASCII digits within MAX_ID's 19
    are read and anything else is no row."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_ID))):
        raise web.HTTPNotFound()
    value = int(raw)
    if value > MAX_ID:
        raise web.HTTPNotFound()
    return value


def local_moment(request: web.Request, moment: dt.datetime | None) -> str | None:
    """A moment as a date and time in the club's zone ("23.11.2026 14:05")."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite gives naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(zoneinfo.ZoneInfo(request[ADMIN].timezone))
    return f"{format_date(local.date(), request[LANGUAGE])} {local:%H:%M}"


def local_date(request: web.Request, moment: dt.datetime | None) -> str | None:
    """A moment as a date in the club's zone and the admin's language ("23.11.2026")."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite gives naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(zoneinfo.ZoneInfo(request[ADMIN].timezone)).date()
    return format_date(local, request[LANGUAGE])


def local_today(request: web.Request) -> dt.date:
    """Today in the club's zone."""
    return utc_now().astimezone(zoneinfo.ZoneInfo(request[ADMIN].timezone)).date()


def date_value(day: dt.date | None, language: str) -> str:
    """A date as the admin's date fields show it and take it back ("07.11.2026")."""
    if day is None:
        return ""
    return day.strftime(DATE_FIELD.get(language, DATE_FIELD["en"]))


def read_date(raw: str) -> dt.date | None:
    """A date typed in a date field: the club's format ("07.11.2026"), ISO ("2026-11-07", what
    links and older forms send) or 07/11/2026, day first; None for anything else."""
    return imports.parse_date(raw.strip()[:40])


def read_local_time(raw: str) -> dt.datetime | None:
    """A date and a time typed in one field ("07.11.2026 10:00", "2026-11-07T10:00"): naive,
    the club's own time; None for anything else (or a time with an offset)."""
    text = raw.strip()[:40]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is not None:
        return moment if moment.tzinfo is None else None
    day_part, _, clock_part = text.replace(" kl. ", " ").replace(" kl ", " ").partition(" ")
    day = read_date(day_part)
    clock = _CLOCK.match(clock_part.strip())
    if day is None or clock is None:
        return None
    hour, minute = int(clock[1]), int(clock[2])
    if hour > 23 or minute > 59:
        return None
    return dt.datetime.combine(day, dt.time(hour, minute))
