"""The members pages: search, a member's page, a points adjustment, a coupon given as a gift, the
GDPR export and erasure."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session

import locales
from bot.admin.auth import ADMIN, LANGUAGE, Admin, owner_only
from bot.admin.render import coupon_title, money, page, path_id
from bot.keys import DB
from flows.conversation import last_day
from store import retention
from store.clock import utc_now
from store.clubs import programs
from store.errors import Conflict, InvalidInput, NotEnoughPoints, NotFound
from store.loyalty import coupons, ledger, purchases, tiers
from store.members import consent, member_search, members, privacy
from store.models import ConsentEvent, InboundMessage, LedgerEntry, Member, OutboxMessage, Program
from store.states import OutboxStatus

routes = web.RouteTableDef()

PAGE_SIZE = 25
MAX_PAGE = 10_000  # beyond any club's list; an OFFSET past it is a typo
# The lists of a member's page that come a page at a time, newest first, with plain links to
# older ones (a regular's whole history on one page was thousands of pixels long): the query
# parameter of each, the heading its links go to, and how many rows a page shows. The export
# has everything.
LISTS: dict[str, tuple[str, int]] = {
    "purchases_page": ("purchases", 10),
    "ledger_page": ("ledger", 20),
    "messages_page": ("texts", 20),
}
LINES_SHOWN = 3  # lines of a purchase named in its summary; the rest are counted
# The words a status, kind or channel may have: anything else is shown as stored, never a 500.
OUTBOX_STATUSES = frozenset(OutboxStatus)
DELIVERIES = frozenset({"delivered", "undelivered", "failed"})
ERASE_WORDING = "erase.admin"


# --- search ------------------------------------------------------------------------------------


@routes.get("/members")
async def search(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    query = request.query.get("q", "")[: member_search.MAX_QUERY]
    number = _page_number(request.query.get("page", "1"))

    def read(session: Session) -> tuple[member_search.Found, list[dict[str, Any]]]:
        program = _program(session, admin)
        found = member_search.search(
            session, program, query, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE
        )
        rows = [
            {"id": m.id, "name": m.first_name, "phone": m.phone, "status": m.status}
            for m in found.members
        ]
        return found, rows

    found, rows = await request.config_dict[DB].read(read)
    first = (number - 1) * PAGE_SIZE
    return page(
        request,
        "members.html",
        section="members",
        query=query,
        found=found,
        rows=rows,
        first=first + 1,
        last=first + len(rows),
        previous=number - 1 if number > 1 else None,
        next=number + 1 if first + len(rows) < found.total else None,
        erased=request.query.get("erased") == "1",
    )


def _page_number(raw: str) -> int:
    # A page that is not a number is the first page: a hand-edited URL gets a list, not an error.
    # ASCII digits only: "²" and "١٢" are digits to str.isdigit() but "²" is no int().
    ascii_digits = raw.isascii() and raw.isdigit()
    return min(int(raw), MAX_PAGE) if ascii_digits and int(raw) > 0 else 1


# --- a member's page ---------------------------------------------------------------------------


@routes.get(r"/members/{member_id:\d+}")
async def member(request: web.Request) -> web.StreamResponse:
    member_id = path_id(request, "member_id")
    asked = {name: _page_number(request.query.get(name, "1")) for name in LISTS}
    shown = await _read_member(request, member_id, asked)
    return page(
        request,
        "member.html",
        section="members",
        member=shown,
        form={"points": "", "reason": ""},
        errors={},
        error_params={},
        adjusted=request.query.get("adjusted") == "1",
    )


@routes.post(r"/members/{member_id:\d+}/adjust")
async def adjust(request: web.Request) -> web.StreamResponse:
    """Owner and staff add or take points with a reason; the ledger names the admin."""
    admin = request[ADMIN]
    member_id = path_id(request, "member_id")
    form = await request.post()
    raw_points = str(form.get("points", "")).strip()
    reason = str(form.get("reason", "")).strip()
    errors: dict[str, str] = {}
    params: dict[str, Any] = {}
    points = _points(raw_points)
    if points is None:
        errors["points"] = "admin.members.adjust.not_a_number"
    elif points == 0:
        errors["points"] = "admin.members.adjust.zero"
    if not reason:
        errors["reason"] = "admin.members.adjust.no_reason"
    elif len(reason) > ledger.MAX_REASON:
        errors["reason"] = "admin.members.adjust.too_long"
        params["max"] = ledger.MAX_REASON

    def work(session: Session) -> None:
        found = _member_of(session, admin, member_id)
        assert points is not None
        ledger.adjust(
            session,
            _program(session, admin),
            found,
            points,
            utc_now(),
            reason=reason,
            actor=admin.email,
        )

    if not errors:
        try:
            await request.config_dict[DB].run(work)
        except NotEnoughPoints as exc:
            errors["points"] = "admin.members.adjust.not_enough"
            params["balance"] = exc.balance
        except InvalidInput as exc:
            if exc.field == "points":
                errors["points"] = "admin.members.adjust.too_many"
                params["max"] = ledger.MAX_ADJUSTMENT
            else:
                errors["reason"] = "admin.members.adjust.no_reason"
        except Conflict:
            errors["points"] = "admin.members.adjust.not_joined"
    if not errors:
        raise web.HTTPSeeOther(f"/admin/members/{member_id}?adjusted=1#points")
    shown = await _read_member(request, member_id)
    return page(
        request,
        "member.html",
        status=422,
        section="members",
        member=shown,
        form={"points": raw_points[:20], "reason": reason[: ledger.MAX_REASON * 2]},
        errors=errors,
        error_params=params,
        adjusted=False,
    )


@routes.post(r"/members/{member_id:\d+}/gift")
async def gift(request: web.Request) -> web.StreamResponse:
    """Owner and staff give the member a coupon of one of the club's templates in use, as a gift
    (coupons.give, naming the admin); the gift_received journey, if on, tells the member."""
    admin = request[ADMIN]
    member_id = path_id(request, "member_id")
    form = await request.post()
    key = str(form.get("template", "")).strip()[:100]

    def work(session: Session) -> str:
        found = _member_of(session, admin, member_id)
        held = coupons.give(
            session, _program(session, admin), found.id, key, admin.email, utc_now()
        )
        return coupons.display(held.coupon.code)

    try:
        code = await request.config_dict[DB].run(work)
    except NotFound:
        error = "admin.members.gift.error.template"
    except InvalidInput:
        error = "admin.members.gift.error.member"
    else:
        raise web.HTTPSeeOther(f"/admin/members/{member_id}?{urlencode({'gifted': code})}#gift")
    shown = await _read_member(request, member_id)
    shown["gift_error"] = error
    return page(
        request,
        "member.html",
        status=422,
        section="members",
        member=shown,
        form={"points": "", "reason": ""},
        errors={},
        error_params={},
        adjusted=False,
    )


def _points(raw: str) -> int | None:
    """ "+50", "-50", "50", "1 000": whole points, or None for anything else."""
    compact = raw.replace(" ", "").replace("\u00a0", "").replace("\u2212", "-")
    sign = -1 if compact.startswith("-") else 1
    digits = compact[1:] if compact[:1] in ("+", "-") else compact
    if not digits.isdigit() or len(digits) > 12:
        return None
    return sign * int(digits)


async def _read_member(
    request: web.Request, member_id: int, pages: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Everything a member's page shows, in the admin's language, each list of LISTS at the
    page asked for (`pages`, by query parameter; else the first); 404 for a member of another
    club, an erased one or none."""
    admin = request[ADMIN]
    language = request[LANGUAGE]
    zone = zoneinfo.ZoneInfo(admin.timezone)

    def when(moment: dt.datetime | None) -> str | None:
        if moment is None:
            return None
        local = moment.astimezone(zone)
        return f"{locales.format_date(local.date(), language)} {local:%H:%M}"

    def day(moment: dt.datetime | None) -> str | None:
        return locales.format_date(moment.astimezone(zone).date(), language) if moment else None

    asked = dict.fromkeys(LISTS, 1) | dict(pages or {})
    gifted = request.query.get("gifted", "")[: coupons.CODE_LENGTH + 1] or None

    def size(name: str) -> int:
        return LISTS[name][1]

    def window(name: str) -> dict[str, int]:
        return {"offset": (asked[name] - 1) * size(name), "limit": size(name) + 1}

    def links(name: str, got: int) -> dict[str, str | None]:
        return _pages(member_id, asked, name, older=got > size(name))

    def read(session: Session) -> dict[str, Any]:
        now = utc_now()
        program = _program(session, admin)
        currency = program.currency
        found = _member_of(session, admin, member_id)
        lots = ledger.open_lots(session, found.id, now)
        standing = tiers.standing(session, program, found.id, found.tier_id, now)
        # One more than a page is read to know whether there are older ones.
        texts = privacy.texts_page(session, found, **window("messages_page"))
        bought = purchases.of_member(session, found.id, **window("purchases_page"))
        entries = ledger.history(session, found.id, **window("ledger_page"))
        cards = purchases.punches(session, purchases.active_cards(session, program.id), found.id)
        phone = found.phone or ""
        return {
            "id": found.id,
            "phone": found.phone,
            "last4": phone[-4:],
            "name": found.first_name,
            "birthday": locales.format_date(found.birthday, language) if found.birthday else None,
            "status": found.status,
            "language": found.language or locales.language_for_phone(phone),
            "language_from_number": found.language is None,
            "receipts": found.receipts,
            "joined": day(found.joined_at),
            "has_joined": found.joined_at is not None,
            "tier": tiers.name(standing.tier, language) if standing.tier else None,
            "balance": sum(points for _, points in lots),
            "expiry": _expiry(lots, zone, language),
            "answers": [
                {
                    "prompt": _in(question.prompt or {}, language) or question.key,
                    "answer": _answer_text(question.choices or [], answer.value, language),
                }
                for answer, question in privacy.answers_of(session, found)
            ],
            "ledger": [_ledger_entry(entry, when) for entry in entries[: size("ledger_page")]],
            "ledger_pages": links("ledger_page", len(entries)),
            "coupons": [
                _coupon(held, currency, language, zone, now)
                for held in reversed(privacy.coupons_of(session, found))
            ],
            "consent": [
                _consent_event(event, when)
                for event in reversed(consent.history(session, found.id))
            ],
            "punch_cards": [_punch_card(on_card, currency, language) for on_card in cards],
            "purchases": [
                _purchase(entry, currency, language, when)
                for entry in bought[: size("purchases_page")]
            ],
            "purchases_pages": links("purchases_page", len(bought)),
            "texts": [_text(m, when, program, now) for m in texts[: size("messages_page")]],
            "texts_pages": links("messages_page", len(texts)),
            # What can be given as a gift, and the code just given (shown after the redirect).
            "gift_templates": [
                (t.key, coupon_title(t, currency, language))
                for t in coupons.templates(session, program.id)
            ],
            "gifted": gifted,
            "gift_error": None,
        }

    return await request.config_dict[DB].read(read)


def _expiry(
    lots: list[tuple[dt.datetime, int]], zone: zoneinfo.ZoneInfo, language: str
) -> dict[str, Any] | None:
    """The points that expire first, and the last day they can be spent (None: no points)."""
    if not lots:
        return None
    ends, points = lots[0]
    return {"points": points, "on": locales.format_date(last_day(ends, zone), language)}


def _ledger_entry(
    entry: LedgerEntry, when: Callable[[dt.datetime | None], str | None]
) -> dict[str, Any]:
    return {
        "at": when(entry.created_at),
        "kind": entry.kind if entry.kind in ledger.KINDS else None,
        "raw_kind": entry.kind,
        "points": entry.points,
        "reason": entry.reason,
        "actor": entry.actor,
    }


def _coupon(
    held: coupons.Held, currency: str, language: str, zone: zoneinfo.ZoneInfo, now: dt.datetime
) -> dict[str, Any]:
    return {
        "code": coupons.display(held.coupon.code),
        "benefit": locales.benefit(
            coupons.benefit_of(held.template, language),
            language,
            amount_minor=held.template.discount_minor,
            currency=currency,
        ),
        "state": coupons.state(held.coupon, now),
        "until": locales.format_date(last_day(held.coupon.valid_until, zone), language),
    }


def _consent_event(
    event: ConsentEvent, when: Callable[[dt.datetime | None], str | None]
) -> dict[str, Any]:
    return {
        "at": when(event.created_at),
        "action": event.action if event.action in (consent.GRANT, consent.WITHDRAW) else None,
        "raw_action": event.action,
        "channel": event.channel if event.channel in consent.CHANNELS else None,
        "raw_channel": event.channel,
        "wording": event.wording_text,
        "evidence": event.evidence,
    }


def _punch_card(on_card: purchases.Punches, currency: str, language: str) -> dict[str, Any]:
    card = on_card.card
    return {
        "count": on_card.count,
        "every": card.every,
        "category": card.category,
        "benefit": coupon_title(card.template, currency, language)
        if card.template is not None
        else "",
    }


def _text(
    message: InboundMessage | OutboxMessage,
    when: Callable[[dt.datetime | None], str | None],
    program: Program,
    now: dt.datetime,
) -> dict[str, Any]:
    # A text emptied by data retention says so, with the club's months (None: it has a body,
    # or never had one).
    if isinstance(message, InboundMessage):
        gone = message.body is None and retention.removed(program, now, message.received_at, None)
        return {
            "at": when(message.received_at),
            "direction": "in",
            "text": message.body,
            "removed": program.retention_months if gone else None,
            "status": "received",
            "delivery": None,
        }
    gone = message.body is None and retention.removed(
        program, now, message.created_at, message.status
    )
    return {
        "at": when(message.sent_at or message.created_at),
        "direction": "out",
        "text": message.body,
        "removed": program.retention_months if gone else None,
        "status": message.status if message.status in OUTBOX_STATUSES else None,
        "raw_status": message.status,
        "delivery": message.delivery if message.delivery in DELIVERIES else None,
    }


def _purchase(
    entry: purchases.Bought,
    currency: str,
    language: str,
    when: Callable[[dt.datetime | None], str | None],
) -> dict[str, Any]:
    bought = entry.purchase
    return {
        "at": when(bought.occurred_at),
        "store": bought.store,
        "total": money(bought.total_minor, bought.currency or currency, language),
        "points": bought.points,
        "lines": [
            {"qty": line.qty, "name": line.sku or line.category or ""}
            for line in entry.lines[:LINES_SHOWN]
        ],
        "more_lines": max(len(entry.lines) - LINES_SHOWN, 0),
        "refunds": [
            {
                "at": when(refund.created_at),
                "amount": money(refund.amount_minor, bought.currency or currency, language),
                "points": refund.points_taken,
            }
            for refund in entry.refunds
        ],
    }


def _pages(
    member_id: int, pages: Mapping[str, int], name: str, *, older: bool
) -> dict[str, str | None]:
    """Links to the newer and older page of one list, keeping the other lists' pages."""
    number = pages[name]

    def link(page_number: int) -> str:
        query = {**pages, name: page_number}
        # In LISTS' order, so a list's link is the same whichever list it was made for.
        shown = {key: query[key] for key in LISTS if query[key] > 1}
        where = f"/admin/members/{member_id}{'?' + urlencode(shown) if shown else ''}"
        return f"{where}#{LISTS[name][0]}"

    return {
        "newer": link(number - 1) if number > 1 else None,
        "older": link(number + 1) if older else None,
    }


def _in(texts: dict[str, Any], language: str) -> str:
    return str(texts.get(language) or texts.get("en") or next(iter(texts.values()), ""))


def _answer_text(choices: list[Any], value: list[Any], language: str) -> str:
    """An answer as the admin reads it: a choice's label in the admin's language, else as given."""
    labels = {
        str(choice.get("key")): _in(choice.get("label") or {}, language)
        for choice in choices
        if isinstance(choice, dict)
    }
    return ", ".join(labels.get(str(v)) or str(v) for v in value)


# --- the GDPR export ---------------------------------------------------------------------------


@routes.get(r"/members/{member_id:\d+}/export.json")
@owner_only
async def export(request: web.Request) -> web.StreamResponse:
    """Everything held about the member, as a JSON download (GDPR art. 15 and 20)."""
    admin = request[ADMIN]
    member_id = path_id(request, "member_id")

    def read(session: Session) -> dict[str, Any]:
        found = _member_of(session, admin, member_id)
        return privacy.export(session, _program(session, admin), found, utc_now())

    data = await request.config_dict[DB].run(read)
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, indent=2).encode(),
        content_type="application/json",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="member-{member_id}.json"'},
    )


# --- erasure -----------------------------------------------------------------------------------


@routes.get(r"/members/{member_id:\d+}/erase")
@owner_only
async def erase_page(request: web.Request) -> web.StreamResponse:
    member_id = path_id(request, "member_id")
    shown = await _read_member(request, member_id)
    return page(request, "member_erase.html", section="members", member=shown, error=None)


@routes.post(r"/members/{member_id:\d+}/erase")
@owner_only
async def erase(request: web.Request) -> web.StreamResponse:
    """Erase the member once the owner has typed the last four digits of the number."""
    admin = request[ADMIN]
    language = request[LANGUAGE]
    member_id = path_id(request, "member_id")
    form = await request.post()
    typed = "".join(str(form.get("confirm", "")).split())

    def work(session: Session) -> bool:
        found = _member_of(session, admin, member_id)
        if not found.phone or typed != found.phone[-4:]:
            return False
        privacy.erase(
            session,
            found,
            utc_now(),
            wording_id=ERASE_WORDING,
            wording_language=language,
            wording_text=locales.text("admin.members.erase.logged", language),
            channel="admin",
            evidence=f"admin {admin.email}"[:200],
        )
        return True

    if await request.config_dict[DB].run(work):
        raise web.HTTPSeeOther("/admin/members?erased=1")
    shown = await _read_member(request, member_id)
    error = "admin.members.erase.empty" if not typed else "admin.members.erase.mismatch"
    return page(
        request, "member_erase.html", status=422, section="members", member=shown, error=error
    )


# --- shared ------------------------------------------------------------------------------------


def _program(session: Session, admin: Admin) -> Program:
    program = programs.get(session, admin.program_id)
    if program is None:  # the club went while the page was asked for
        raise web.HTTPNotFound()
    return program


def _member_of(session: Session, admin: Admin, member_id: int) -> Member:
    """The club's member with this id; 404 for another club's, an erased one or none."""
    found = members.in_club(session, admin.program_id, member_id)
    if found is None or found.status == members.ERASED:
        raise web.HTTPNotFound()
    return found
