"""What every admin page shares: rendering a template in the admin's language, the error page,
and reading an id from the URL."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.admin.auth import ADMIN, CSRF, LANGUAGE, CsrfRefused, FormUnreadable
from locales import format_date, format_money, format_number, text
from store import coupons
from store.models import CouponTemplate

MAX_ID = 2**63 - 1  # beyond any id; PostgreSQL would refuse the parameter


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
    """What a coupon of the template gives, as a member reads it ("100,00 kr rabatt"), else
    its key: the settings page, the campaign form and the journeys page all name it so."""
    wording = coupons.benefit_of(template, language)
    if not wording:
        return template.key
    if template.discount_minor is None:
        return wording
    return wording.replace("{amount}", money(template.discount_minor, currency, language))


def render_text(language: str, message_id: str, **params: object) -> str:
    return text(message_id, language, **params)


def error_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    if isinstance(exc, CsrfRefused):
        message = "admin.error.csrf"
    elif isinstance(exc, FormUnreadable):
        message = "admin.error.unreadable"
    else:
        message = {
            403: "admin.error.forbidden",
            404: "admin.error.not_found",
            413: "admin.error.too_large",
        }.get(exc.status, "admin.error.other")
    return page(request, "error.html", status=exc.status, message=message)


def path_id(request: web.Request, name: str) -> int:
    """An id from the URL (its route matches digits only); 404 for one no row can have."""
    value = int(request.match_info[name])
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
