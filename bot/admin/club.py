"""The club's settings (owner only): one page of sections, each its own form and action, so a
bad field in one section never loses what was typed in another."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from babel.numbers import get_currency_precision
from multidict import MultiDictProxy
from sqlalchemy.orm import Session

import locales
from bot.admin.amounts import money_text, parse_money
from bot.admin.auth import ADMIN, LANGUAGE, owner_only
from bot.admin.render import (
    coupon_title,
    date_value,
    local_date,
    local_moment,
    local_today,
    page,
    path_id,
    read_date,
)
from bot.keys import DB
from flows.help import FORWARDED
from locales import LANGUAGES, text
from store.clock import utc_now
from store.clubs import apikeys, club_rules, programs
from store.errors import InvalidSetting, NotFound
from store.loyalty import cheques, coupons, offers, tiers
from store.models import ApiKey, CouponTemplate, Program

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

SETTINGS = "/admin/settings"
MAX_FIELD = 2000  # a form value longer than this is not a setting
Error = tuple[str, dict[str, Any]]  # a catalog id and its parameters
Errors = dict[str, Error]
# The numbers of each section as the form names them; money fields are typed in the club's
# currency with decimals and kept in minor units.
MESSAGES = ("marketing_per_month", "quiet_start", "quiet_end")
EARNING = ("earn_points", "points_lifetime_months", "tier_period_months")
RETENTION = ("retention_months",)  # how long message texts are kept (store.retention)
MONEY = {"messages": ("sms_price_minor",), "earning": ("earn_per_minor", "min_purchase_minor")}
QUESTION_KINDS = ("choice", "multichoice", "text")  # the kinds an owner adds from the page
AUTO_REPLY = "auto-reply"  # the section of the club's automatic reply to a text not understood
PAGE_LINK = "page-link"  # the section of the page link in the welcome and reward SMS
_T = TypeVar("_T")


class Refused(Exception):
    """A section's form with bad fields: each field's error, nothing saved."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


# --- the page ---------------------------------------------------------------------------------


@routes.get("/settings")
@owner_only
async def settings(request: web.Request) -> web.StreamResponse:
    return await _page(request, saved=request.query.get("saved"))


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    saved: str | None = None,
    section: str | None = None,
    form: Mapping[str, Any] | None = None,
    errors: Errors | None = None,
) -> web.Response:
    """The whole page; a refused section shows what was typed and each field's error."""
    admin = request[ADMIN]
    state = await request.config_dict[DB].run(_read(admin.program_id, request[LANGUAGE]))
    for key in state["keys"]:
        key["created"] = local_date(request, key["created"])
        key["revoked"] = local_date(request, key["revoked"])
        key["last_used"] = local_moment(request, key["last_used"])
    forms: dict[str, Any] = {}
    if section:
        typed = dict(form or {})
        current = state.get(section)
        if isinstance(current, Mapping):
            # A form sent without some of its fields (by hand, not a browser) shows what is
            # saved for those, rather than failing to render.
            typed = {**current, **typed}
        forms[section] = typed
    return page(
        request,
        "settings.html",
        status=status,
        section="settings",
        s=state,
        saved=saved,
        refused=section,
        forms=forms,
        errors={section: errors or {}} if section else {},
        languages=LANGUAGES,
        scopes=apikeys.SCOPES,
        question_kinds=QUESTION_KINDS,
        coupon_kinds=coupons.KINDS,
        referral_triggers=programs.REFERRAL_TRIGGERS,
        limits=programs.LIMITS,
        bonus_fields=club_rules.BONUS_FIELDS,
        # The date fields' hint: today as they write it ("07.11.2026").
        date_example=date_value(local_today(request), request[LANGUAGE]),
    )


def _read(program_id: int, language: str) -> Callable[[Session], dict[str, Any]]:
    def work(session: Session) -> dict[str, Any]:
        program = _program(session, program_id)
        precision = get_currency_precision(program.currency)
        ladder = tiers.ladder(session, program_id)
        templates = coupons.templates(session, program_id, retired=True)
        by_id = {t.id: t for t in templates}
        return {
            "club": {
                "name": program.name,
                "contact": program.contact,
                "privacy_url": program.privacy_url,
            },
            "facts": {
                "numbers": programs.numbers(session, program_id),
                "country": program.country,
                "timezone": program.timezone,
                "currency": program.currency,
            },
            "messages": {
                "marketing_per_month": str(program.marketing_per_month),
                "quiet_start": str(program.quiet_start),
                "quiet_end": str(program.quiet_end),
                "sms_price_minor": money_text(program.sms_price_minor, precision, language),
            },
            AUTO_REPLY: {
                f"auto_reply_{lang}": str((program.auto_reply or {}).get(lang, ""))
                for lang in LANGUAGES
            },
            PAGE_LINK: {"page_link_in_sms": "on" if program.page_link_in_sms else ""},
            # What a language left empty sends: the catalog's, with the club's name.
            "auto_reply_defaults": {
                lang: locales.render(FORWARDED, lang, **programs.sms_values(program))
                for lang in LANGUAGES
            },
            "earning": {
                "earn_points": str(program.earn_points),
                "earn_per_minor": money_text(program.earn_per_minor, precision, language),
                "min_purchase_minor": money_text(program.min_purchase_minor, precision, language),
                "points_lifetime_months": str(program.points_lifetime_months),
                "tier_period_months": str(program.tier_period_months),
            },
            "retention": {"retention_months": str(program.retention_months)},
            "referral": {
                "referral_trigger": program.referral_trigger,
                "referral_points": str(program.referral_points),
            },
            "tiers": [
                {
                    **{f"name_{lang}": str(t.name.get(lang, "")) for lang in LANGUAGES},
                    "threshold": str(t.threshold),
                    "discount": str(t.discount_percent),
                }
                for t in ladder
            ],
            "templates": [_template(t, program.currency, language) for t in templates],
            "punch_templates": [
                {"id": t.id, "key": t.key, "title": coupon_title(t, program.currency, language)}
                for t in templates
                if t.kind == coupons.PUNCH and t.active
            ],
            "cards": [
                {
                    "id": c.id,
                    "category": c.category,
                    "every": str(c.every),
                    "template_id": str(c.template_id),
                    "active": c.active,
                    "coupon": coupon_title(by_id[c.template_id], program.currency, language)
                    if c.template_id in by_id
                    else "",
                    "coupon_retired": c.template_id in by_id and not by_id[c.template_id].active,
                }
                for c in club_rules.punch_cards(session, program_id)
            ],
            "bonuses": [
                {
                    "id": b.id,
                    "field": b.field,
                    "value": b.value,
                    "extra_points": str(b.extra_points),
                    "points": b.extra_points,
                }
                for b in club_rules.bonus_rules(session, program_id)
            ],
            # What one earning unit is ("1,00 NOK"): bonus points are given per unit.
            "per": f"{money_text(program.earn_per_minor, precision, language)} {program.currency}",
            "multipliers": [
                {
                    "id": m.id,
                    "name": m.name,
                    "starts_on": date_value(m.starts_on, language),
                    "ends_on": date_value(m.ends_on, language),
                    "multiplier": str(m.multiplier),
                    "first": m.starts_on,
                    "last": m.ends_on,
                }
                for m in club_rules.multipliers(session, program_id)
            ],
            "questions": [_question(q) for q in programs.questions(session, program_id)],
            "keys": [_key(k) for k in reversed(apikeys.of_club(session, program_id))],
        }

    return work


def _template(t: CouponTemplate, currency: str, language: str) -> dict[str, Any]:
    precision = get_currency_precision(currency)
    amount = money_text(t.discount_minor, precision, language) if t.discount_minor else ""
    return {
        "id": t.id,
        "key": t.key,
        "title": coupon_title(t, currency, language),
        "kind": t.kind,
        "active": t.active,
        "benefit": {lang: str(t.benefit.get(lang, "")) for lang in LANGUAGES},
        "amount": amount,
        "percent": t.discount_percent,
        "points_cost": t.points_cost,
        "valid_days": t.valid_days,
        # The offer the till computes, in the words a member reads ("20 % off shoes, from 500 kr").
        "offer": offer_text(t.offer, currency, language),
        # A bonus cheque: issued by itself when a balance covers its cost (store.loyalty.cheques).
        "automatic": t.automatic and t.kind == coupons.REWARD,
        # As its edit form shows it.
        "form": {
            **{f"benefit_{lang}": str(t.benefit.get(lang, "")) for lang in LANGUAGES},
            "amount": amount,
            "discount_percent": str(t.discount_percent or ""),
            "points_cost": str(t.points_cost or ""),
            "valid_days": str(t.valid_days),
            **_offer_form(t.offer, precision, language),
        },
    }


def _question(q: Any) -> dict[str, Any]:
    choices = q.choices or []
    return {
        "id": q.id,
        "key": q.key,
        "kind": q.kind,
        "built_in": q.kind in programs.BUILT_IN_KINDS,
        "prompt": {lang: str((q.prompt or {}).get(lang, "")) for lang in LANGUAGES},
        "choices": {
            lang: "\n".join(str(c.get("label", {}).get(lang, "")) for c in choices)
            for lang in LANGUAGES
        },
    }


def _key(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "store": k.store or "",
        "prefix": k.prefix,
        "scopes": list(k.scopes),
        "created": k.created_at,
        "revoked": k.revoked_at,
        "last_used": k.last_used_at,
    }


# --- club, messages, earning, referral --------------------------------------------------------


@routes.post("/settings/club")
@owner_only
async def save_club(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {f: _field(form, f) for f in ("name", "contact", "privacy_url")}

    def work(session: Session) -> None:
        program = _program(session, request[ADMIN].program_id)
        try:
            programs.update_club(session, program, **values)
        except programs.QuestionTooLong as exc:
            over = {"over": exc.over, "question": exc.question}
            raise Refused({"name": ("admin.settings.error.name.question", over)}) from None
        except programs.NameTooLongForAutoReply as exc:
            # Named by the language whose automatic reply would no longer fit.
            reply = ("admin.settings.error.name.auto_reply." + exc.language, {"over": exc.over})
            raise Refused({"name": reply}) from None
        except programs.InvalidSettings as exc:
            raise Refused(_club_errors(exc.problems)) from None

    return await _save(request, "club", form, work)


@routes.post("/settings/messages")
@owner_only
async def save_messages(request: web.Request) -> web.StreamResponse:
    return await _save_numbers(request, "messages", MESSAGES)


@routes.post("/settings/auto-reply")
@owner_only
async def save_auto_reply(request: web.Request) -> web.StreamResponse:
    """The club's own reply to a member's text not understood, per language (empty: the
    catalog's)."""
    form = await request.post()
    texts = {lang: _field(form, f"auto_reply_{lang}") for lang in LANGUAGES}

    def work(session: Session) -> None:
        program = _program(session, request[ADMIN].program_id)
        try:
            programs.set_auto_reply(session, program, texts)
        except programs.AutoReplyRefused as exc:
            raise Refused(
                {
                    f"auto_reply_{lang}": ("admin.settings.error.auto_reply.sms", {"over": over})
                    if over
                    else ("admin.settings.error.auto_reply.placeholder", {})
                    for lang, over in exc.over.items()
                }
            ) from None

    return await _save(request, AUTO_REPLY, form, work)


@routes.post("/settings/page-link")
@owner_only
async def save_page_link(request: web.Request) -> web.StreamResponse:
    """Whether the welcome and reward SMS carry the member's page link: a checkbox, so "on"
    or nothing ("off" is read too, for a form sent by hand)."""
    form = await request.post()
    value = _field(form, "page_link_in_sms").strip().lower()

    def work(session: Session) -> None:
        if value not in ("", "on", "off"):
            raise Refused({"page_link_in_sms": ("admin.settings.page_link.error", {})})
        program = _program(session, request[ADMIN].program_id)
        programs.set_page_link_in_sms(session, program, value == "on")

    return await _save(request, PAGE_LINK, form, work)


@routes.post("/settings/earning")
@owner_only
async def save_earning(request: web.Request) -> web.StreamResponse:
    return await _save_numbers(request, "earning", EARNING)


async def _save_numbers(
    request: web.Request, section: str, whole: tuple[str, ...]
) -> web.StreamResponse:
    """A section of the club's numbers: whole numbers and amounts of money, every field read
    (each bad one named), then the store checks the ranges."""
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        program = _program(session, program_id)
        precision = get_currency_precision(program.currency)
        values, errors = _numbers(form, whole, MONEY.get(section, ()), precision)
        # The numbers that read are checked too: every bad field named at once.
        errors |= _range_errors(programs.check_numbers(**values), precision)
        if errors:
            raise Refused(errors)
        programs.update_numbers(session, program, **values)

    return await _save(request, section, form, work)


@routes.post("/settings/retention")
@owner_only
async def save_retention(request: web.Request) -> web.StreamResponse:
    return await _save_numbers(request, "retention", RETENTION)


@routes.post("/settings/referral")
@owner_only
async def save_referral(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        program = _program(session, program_id)
        values, errors = _numbers(form, ("referral_points",), (), 0)
        if errors:
            raise Refused(errors)
        try:
            programs.set_referral(
                session,
                program,
                trigger=_field(form, "referral_trigger"),
                points=values["referral_points"],
            )
        except programs.InvalidSettings as exc:
            raise Refused(_range_errors(exc.problems, 0)) from None

    return await _save(request, "referral", form, work)


# --- tiers, coupon templates ------------------------------------------------------------------


@routes.post("/settings/tiers")
@owner_only
async def save_tiers(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    program_id = request[ADMIN].program_id
    rows = _tier_rows(form)

    def work(session: Session) -> None:
        program = _program(session, program_id)
        errors: Errors = {}
        steps = []
        for n, row in enumerate(rows):
            names = {lang: row[f"name_{lang}"].strip() for lang in LANGUAGES}
            if not any(row.values()):
                continue  # the empty row left empty
            if not any(names.values()):
                errors[f"tier{n}_name_nb"] = ("admin.settings.error.tier_name", {})
            threshold, discount = _whole(row["threshold"]), _whole(row["discount"])
            if threshold is None:
                errors[f"tier{n}_threshold"] = ("admin.settings.error.whole", {})
            if discount is None:
                errors[f"tier{n}_discount"] = ("admin.settings.error.whole", {})
            steps.append(({k: v for k, v in names.items() if v}, threshold or 0, discount or 0))
        if errors:
            raise Refused(errors)
        try:
            tiers.edit_ladder(session, program, steps)
        except InvalidSetting as exc:
            raise Refused({"tiers": ("admin.settings.error.ladder", {})}) from exc

    return await _save(request, "tiers", {"rows": rows}, work)


@routes.post("/settings/coupons")
@owner_only
async def add_coupon(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        program = _program(session, program_id)
        values, errors = _coupon_form(form, get_currency_precision(program.currency))
        key = _field(form, "key").strip()
        if not key or len(key) > programs.MAX_KEY:
            errors["key"] = ("admin.settings.error.coupon_key", {"max": programs.MAX_KEY})
        if errors:
            raise Refused(errors)
        try:
            coupons.create_template(
                session,
                program,
                key=key,
                kind=_field(form, "kind"),
                **values,
                position=len(coupons.templates(session, program_id, retired=True)),
            )
        except InvalidSetting as exc:
            raise Refused(_coupon_error(exc)) from None

    return await _save(request, "coupons", form, work)


@routes.post(r"/settings/coupons/{template_id:\d+}")
@owner_only
async def edit_coupon(request: web.Request) -> web.StreamResponse:
    """What a coupon gives, costs and how long it lasts (its short name and kind stay)."""
    template_id = path_id(request, "template_id")
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        program = _program(session, program_id)
        _found(coupons.template_of, session, program_id, template_id)
        values, errors = _coupon_form(form, get_currency_precision(program.currency))
        if errors:
            raise Refused(errors)
        try:
            coupons.edit_template(session, program_id, template_id, **values)
        except InvalidSetting as exc:
            raise Refused(_coupon_error(exc)) from None

    return await _save(request, f"coupon-{template_id}", form, work)


@routes.post(r"/settings/coupons/{template_id:\d+}/active")
@owner_only
async def retire_coupon(request: web.Request) -> web.StreamResponse:
    """Retire a coupon (active=off: none issued or claimed from now on) or bring it back."""
    template_id = path_id(request, "template_id")
    form = await request.post()
    program_id = request[ADMIN].program_id
    active = _field(form, "active") == "on"

    def work(session: Session) -> None:
        try:
            coupons.set_template_active(session, program_id, template_id, active=active)
        except NotFound:
            raise web.HTTPNotFound() from None
        except InvalidSetting as exc:
            params = {}
            if isinstance(exc, coupons.TemplateInUse):
                language = request[LANGUAGE]
                journeys = [
                    text("admin.journeys.trigger." + trigger, language) for trigger in exc.journeys
                ]
                params["names"] = ", ".join([*journeys, *exc.broadcasts])
            error = ("admin.settings.error.coupon." + exc.field, params)
            raise Refused({"active": error}) from None

    # Refused, the error shows beside the button; the coupon's edit form keeps its values.
    section = f"coupon-{template_id}"
    return await _save(request, f"{section}-active", form, work, saved=section)


@routes.post(r"/settings/coupons/{template_id:\d+}/automatic")
@owner_only
async def automatic_coupon(request: web.Request) -> web.StreamResponse:
    """Make a reward a bonus cheque (automatic=on: issued by itself when a balance covers it,
    store.loyalty.cheques) or a reward members claim again (off)."""
    template_id = path_id(request, "template_id")
    form = await request.post()
    program_id = request[ADMIN].program_id
    value = _field(form, "automatic").strip().lower()

    def work(session: Session) -> None:
        if value not in ("on", "off"):
            raise Refused({"automatic": ("admin.settings.error.coupon.automatic_value", {})})
        try:
            cheques.set_automatic(session, program_id, template_id, automatic=value == "on")
        except NotFound:
            raise web.HTTPNotFound() from None
        except InvalidSetting:
            raise Refused({"automatic": ("admin.settings.error.coupon.automatic", {})}) from None

    section = f"coupon-{template_id}"
    return await _save(request, f"{section}-automatic", form, work, saved=section)


def _coupon_form(form: MultiDictProxy[Any], precision: int) -> tuple[dict[str, Any], Errors]:
    """A coupon form's benefit and numbers as the store takes them, and each unreadable one."""
    errors: Errors = {}
    benefit = {lang: _field(form, f"benefit_{lang}") for lang in LANGUAGES}
    amount_raw = _field(form, "amount").strip()
    amount = parse_money(amount_raw, precision) if amount_raw else None
    if amount_raw and amount is None:
        errors["amount"] = _money_error(precision)
    optional: dict[str, int | None] = {}
    for name in ("discount_percent", "points_cost", "valid_days"):
        raw = _field(form, name).strip()
        optional[name] = _whole(raw) if raw else None
        if raw and optional[name] is None:
            errors[name] = ("admin.settings.error.whole", {})
    values = {
        "benefit": benefit,
        "valid_days": optional["valid_days"] or 0,
        "discount_percent": optional["discount_percent"],
        "discount_minor": amount,
        "points_cost": optional["points_cost"],
        "offer": _offer_values(form, precision, errors),
    }
    return values, errors


# --- a coupon's offer (store.loyalty.offers) ------------------------------------------------


# Each offer's wording, by kind and scope (spelt out: the catalog test finds ids in the code).
_OFFER_WORDS = {
    ("percent", "basket"): "admin.settings.coupons.offer.percent.basket",
    ("percent", "items"): "admin.settings.coupons.offer.percent.items",
    ("amount", "basket"): "admin.settings.coupons.offer.amount.basket",
    ("amount", "items"): "admin.settings.coupons.offer.amount.items",
    ("buy", "basket"): "admin.settings.coupons.offer.buy.basket",
    ("buy", "items"): "admin.settings.coupons.offer.buy.items",
}


def offer_text(raw: Mapping[str, Any] | None, currency: str, language: str) -> str:
    """The offer as a member reads it: "20 % off shoes, from 500 kr"; "" for none."""
    try:
        offer = offers.parse(raw)
    except InvalidSetting:
        return ""
    if offer is None:
        return ""
    items = "/".join(offer.items)
    if offer.scope == offers.SKUS:
        items = text("admin.settings.coupons.offer.skus", language, items=items)
    where = "basket" if offer.scope == offers.BASKET else "items"
    kind = {offers.PERCENT: "percent", offers.AMOUNT: "amount"}.get(offer.type, "buy")
    said = text(
        _OFFER_WORDS[kind, where],
        language,
        value=offer.value,
        amount=locales.sms_money(offer.value, currency, language) if kind == "amount" else "",
        buy=offer.buy,
        pay=offer.pay,
        items=items,
    )
    if offer.min_basket_minor:
        amount = locales.sms_money(offer.min_basket_minor, currency, language)
        said = text("admin.settings.coupons.offer.min", language, offer=said, amount=amount)
    return said


def _offer_form(raw: Mapping[str, Any] | None, precision: int, language: str) -> dict[str, str]:
    """A saved offer as its form fields show it."""
    try:
        offer = offers.parse(raw)
    except InvalidSetting:
        offer = None  # stored before a rule got stricter: shown empty, the owner sets it again
    if offer is None:
        return {"offer_type": "", "offer_scope": offers.BASKET}
    value = str(offer.value) if offer.type == offers.PERCENT else ""
    if offer.type == offers.AMOUNT:
        value = money_text(offer.value, precision, language)
    return {
        "offer_type": offer.type,
        "offer_value": value,
        "offer_buy": str(offer.buy or ""),
        "offer_pay": str(offer.pay or ""),
        "offer_scope": offer.scope,
        "offer_items": ", ".join(offer.items),
        "offer_min": money_text(offer.min_basket_minor, precision, language)
        if offer.min_basket_minor
        else "",
    }


def _offer_values(form: MultiDictProxy[Any], precision: int, errors: Errors) -> Any:
    """The form's offer as store.loyalty.offers.parse takes it (None: none), each unreadable
    number added to `errors`; the store names what breaks a rule."""
    kind = _field(form, "offer_type").strip()
    if not kind:
        return None
    raw: dict[str, Any] = {
        "type": kind,
        "scope": _field(form, "offer_scope").strip() or offers.BASKET,
        "items": _field(form, "offer_items").replace("\n", ",").split(","),
    }
    typed = _field(form, "offer_value").strip()
    if kind == offers.AMOUNT:
        raw["value"] = parse_money(typed, precision) if typed else None
        if typed and raw["value"] is None:
            errors["offer_value"] = _money_error(precision)
    elif kind == offers.PERCENT:
        raw["value"] = _whole(typed) if typed else None
        if typed and raw["value"] is None:
            errors["offer_value"] = ("admin.settings.error.whole", {})
    for name in ("buy", "pay") if kind == offers.BUY_N_PAY_M else ():
        typed = _field(form, f"offer_{name}").strip()
        raw[name] = _whole(typed) if typed else None
        if typed and raw[name] is None:
            errors[f"offer_{name}"] = ("admin.settings.error.whole", {})
    typed = _field(form, "offer_min").strip()
    raw["min_basket_minor"] = parse_money(typed, precision) if typed else 0
    if typed and raw["min_basket_minor"] is None:
        errors["offer_min"] = _money_error(precision)
    return raw


def _coupon_error(exc: InvalidSetting) -> Errors:
    if exc.field.startswith("offer"):
        # offer.value -> the form's offer_value (the minimum is typed as offer_min).
        name = {"offer.min_basket_minor": "offer_min"}.get(exc.field, exc.field.replace(".", "_"))
        return {name: ("admin.settings.error.coupon." + exc.field, {})}
    field = {"discount_minor": "amount"}.get(exc.field, exc.field)
    # The benefit's error names the {amount} placeholder itself.
    params = {"amount": "{amount}"} if exc.field == "benefit" else {}
    return {field: ("admin.settings.error.coupon." + exc.field, params)}


# --- punch cards, bonus rules, point multipliers ----------------------------------------------


@routes.post("/settings/punch-cards")
@owner_only
async def add_card(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        program = _program(session, program_id)
        try:
            club_rules.add_punch_card(session, program, **_card_values(form))
        except programs.InvalidSettings as exc:
            raise Refused(_rule_errors(exc.problems, form)) from None

    return await _save(request, "card-new", form, work, saved="punch-cards")


@routes.post(r"/settings/punch-cards/{card_id:\d+}")
@owner_only
async def edit_card(request: web.Request) -> web.StreamResponse:
    card_id = path_id(request, "card_id")
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        try:
            club_rules.edit_punch_card(session, program_id, card_id, **_card_values(form))
        except NotFound:
            raise web.HTTPNotFound() from None
        except programs.InvalidSettings as exc:
            raise Refused(_rule_errors(exc.problems, form)) from None

    return await _save(request, f"card-{card_id}", form, work)


@routes.post(r"/settings/punch-cards/{card_id:\d+}/active")
@owner_only
async def switch_card(request: web.Request) -> web.StreamResponse:
    """Turn a punch card off (active=off) or on: never deleted, coupons and purchases name it."""
    card_id = path_id(request, "card_id")
    form = await request.post()
    program_id = request[ADMIN].program_id
    active = _field(form, "active") == "on"

    def work(session: Session) -> None:
        try:
            club_rules.set_punch_card_active(session, program_id, card_id, active=active)
        except NotFound:
            raise web.HTTPNotFound() from None
        except programs.InvalidSettings:
            raise Refused({"active": ("admin.settings.cards.coupon_retired", {})}) from None

    # Refused, the error shows beside the button; the card's edit form keeps its values.
    section = f"card-{card_id}"
    return await _save(request, f"{section}-active", form, work, saved=section)


@dataclass(frozen=True, slots=True)
class _RuleKind:
    """Bonus rules and multiplier periods: a list on the page, each row with an edit and a
    remove form, and a form to add one; the store's functions for the three."""

    path: str  # under /admin/settings/, and the section's anchor
    form: str  # the forms' ids: "<form>-new", "<form>-<id>"
    values: Callable[[MultiDictProxy[Any]], dict[str, Any]]
    add: Callable[..., Any]
    edit: Callable[..., Any]
    remove: Callable[..., Any]


def _rule_routes(kind: _RuleKind) -> None:
    async def add(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        program_id = request[ADMIN].program_id

        def work(session: Session) -> None:
            program = _program(session, program_id)
            try:
                kind.add(session, program, **kind.values(form))
            except programs.InvalidSettings as exc:
                raise Refused(_rule_errors(exc.problems, form)) from None

        return await _save(request, f"{kind.form}-new", form, work, saved=kind.path)

    async def edit(request: web.Request) -> web.StreamResponse:
        row_id = path_id(request, "row_id")
        form = await request.post()
        program_id = request[ADMIN].program_id

        def work(session: Session) -> None:
            try:
                _found(kind.edit, session, program_id, row_id, **kind.values(form))
            except programs.InvalidSettings as exc:
                raise Refused(_rule_errors(exc.problems, form)) from None

        return await _save(request, f"{kind.form}-{row_id}", form, work)

    async def remove(request: web.Request) -> web.StreamResponse:
        row_id = path_id(request, "row_id")
        form = await request.post()
        program_id = request[ADMIN].program_id

        def work(session: Session) -> None:
            _found(kind.remove, session, program_id, row_id)

        return await _save(request, kind.path, form, work)

    routes.post(f"/settings/{kind.path}")(owner_only(add))
    routes.post(rf"/settings/{kind.path}/{{row_id:\d+}}")(owner_only(edit))
    routes.post(rf"/settings/{kind.path}/{{row_id:\d+}}/remove")(owner_only(remove))


def _card_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    return {
        "category": _field(form, "category"),
        "every": _whole(_field(form, "every")),
        "template_id": _whole(_field(form, "template_id")),
    }


def _bonus_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    return {
        "field": _field(form, "field"),
        "value": _field(form, "value"),
        "extra_points": _whole(_field(form, "extra_points")),
    }


def _multiplier_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """A period's fields; its days as a date picker sends them (ISO) or as the club's
    locale writes them (24.12.2026), parsed like the member import's dates."""
    return {
        "name": _field(form, "name"),
        "starts_on": read_date(_field(form, "starts_on")),
        "ends_on": read_date(_field(form, "ends_on")),
        "multiplier": _whole(_field(form, "multiplier")),
    }


_rule_routes(
    _RuleKind(
        "bonus-rules",
        "bonus",
        _bonus_values,
        club_rules.add_bonus_rule,
        club_rules.edit_bonus_rule,
        club_rules.remove_bonus_rule,
    )
)
_rule_routes(
    _RuleKind(
        "multipliers",
        "multiplier",
        _multiplier_values,
        club_rules.add_multiplier,
        club_rules.edit_multiplier,
        club_rules.remove_multiplier,
    )
)


# Each rule field's error (the numbers' come from club_rules.LIMITS).
RULE_ERRORS: dict[str, Error] = {
    "category": ("admin.settings.error.card.category", {"max": club_rules.MAX_TEXT}),
    "template_id": ("admin.settings.error.card.coupon", {}),
    "field": ("admin.settings.error.bonus.field", {}),
    "value": ("admin.settings.error.bonus.value", {"max": club_rules.MAX_TEXT}),
    "name": ("admin.settings.error.multiplier.name", {"max": club_rules.MAX_TEXT}),
    "starts_on": ("admin.settings.error.date", {}),
}


def _rule_errors(problems: Mapping[str, str], form: MultiDictProxy[Any]) -> Errors:
    errors: Errors = {}
    for field in problems:
        if field in club_rules.LIMITS:
            low, high = club_rules.LIMITS[field]
            errors[field] = ("admin.settings.error.range", {"low": low, "high": high})
        elif field == "ends_on" and read_date(_field(form, "ends_on")) is not None:
            errors[field] = ("admin.settings.error.multiplier.order", {})
        elif field == "ends_on":
            errors[field] = ("admin.settings.error.date", {})
        else:
            errors[field] = RULE_ERRORS.get(field, ("admin.settings.error.other", {}))
    return errors


# --- profile questions ------------------------------------------------------------------------


@routes.post("/settings/questions")
@owner_only
async def add_question(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        program = _program(session, program_id)
        kind = _field(form, "kind")
        if kind not in QUESTION_KINDS:
            raise Refused({"kind": ("admin.settings.error.question.kind", {})})
        prompt = {lang: _field(form, f"prompt_{lang}") for lang in LANGUAGES}
        choices = programs.choices_from_labels(_labels(form)) if kind != "text" else None
        try:
            programs.add_question(session, program, kind=kind, prompt=prompt, choices=choices)
        except InvalidSetting as exc:
            raise Refused(_question_error(exc)) from None

    return await _save(request, "question-new", form, work)


@routes.post(r"/settings/questions/{question_id:\d+}")
@owner_only
async def edit_question(request: web.Request) -> web.StreamResponse:
    question_id = path_id(request, "question_id")
    form = await request.post()
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        found = _club_question(session, program_id, question_id)
        prompt = {lang: _field(form, f"prompt_{lang}") for lang in LANGUAGES}
        choices = (
            programs.choices_from_labels(_labels(form), found.choices)
            if found.kind in ("choice", "multichoice")
            else None
        )
        try:
            programs.edit_question(session, program_id, question_id, prompt=prompt, choices=choices)
        except InvalidSetting as exc:
            raise Refused(_question_error(exc)) from None

    return await _save(request, f"question-{question_id}", form, work)


@routes.post(r"/settings/questions/{question_id:\d+}/move")
@owner_only
async def move_question(request: web.Request) -> web.StreamResponse:
    question_id = path_id(request, "question_id")
    form = await request.post()
    step = -1 if form.get("direction") == "up" else 1
    program_id = request[ADMIN].program_id

    def work(session: Session) -> None:
        _club_question(session, program_id, question_id)
        programs.move_question(session, program_id, question_id, step)

    return await _save(request, "questions", form, work)


@routes.get(r"/settings/questions/{question_id:\d+}/remove")
@owner_only
async def confirm_remove_question(request: web.Request) -> web.StreamResponse:
    """What removing a question means (how many answered it, what stops it), before it is."""
    question_id = path_id(request, "question_id")
    program_id = request[ADMIN].program_id
    return await _removal_page(request, program_id, question_id)


@routes.post(r"/settings/questions/{question_id:\d+}/remove")
@owner_only
async def remove_question(request: web.Request) -> web.StreamResponse:
    question_id = path_id(request, "question_id")
    admin = request[ADMIN]

    def work(session: Session) -> None:
        try:
            programs.remove_question(session, admin.program_id, question_id)
        except NotFound:
            raise web.HTTPNotFound() from None

    try:
        await request.config_dict[DB].run(work)
    except programs.InvalidSettings:
        # Only a request the confirmation page didn't offer gets here: it says why.
        return await _removal_page(request, admin.program_id, question_id, status=422)
    log.info("admin %s removed profile question %s", admin.account_id, question_id)
    raise web.HTTPSeeOther(f"{SETTINGS}?saved=questions#questions")


async def _removal_page(
    request: web.Request, program_id: int, question_id: int, status: int = 200
) -> web.Response:
    def work(session: Session) -> dict[str, Any]:
        question = _club_question(session, program_id, question_id)
        use = programs.question_use(session, program_id, question_id)
        return {**_question(question), "answers": use.answers, "segments": use.segments}

    question = await request.config_dict[DB].run(work)
    return page(
        request,
        "settings_question_remove.html",
        status=status,
        section="settings",
        q=question,
    )


# --- API keys ---------------------------------------------------------------------------------


@routes.post("/settings/api-keys")
@owner_only
async def create_key(request: web.Request) -> web.StreamResponse:
    """A new key: its secret is shown on this response and never again (only a hash is kept)."""
    form = await request.post()
    admin = request[ADMIN]
    name, store = _field(form, "name"), _field(form, "store")
    scopes = [s for s in form.getall("scopes", []) if isinstance(s, str)]

    def work(session: Session) -> tuple[str, str]:
        try:
            key, secret = apikeys.create(
                session,
                admin.program_id,
                name=name,
                store=store or None,
                scopes=scopes,
                now=utc_now(),
            )
        except InvalidSetting as exc:
            raise Refused({exc.field: ("admin.settings.error.apikey." + exc.field, {})}) from None
        return key.name, secret

    try:
        name, secret = await request.config_dict[DB].run(work)
    except Refused as exc:
        return await _page(
            request,
            status=422,
            section="api-keys",
            form={"name": name, "store": store, "scopes": scopes},
            errors=exc.errors,
        )
    # The key's name, never its secret: logs outlive the page.
    log.info("admin %s created API key %r", admin.account_id, name)
    return page(request, "settings_key.html", section="settings", name=name, secret=secret)


@routes.get(r"/settings/api-keys/{key_id:\d+}/revoke")
@owner_only
async def confirm_revoke(request: web.Request) -> web.StreamResponse:
    key_id = path_id(request, "key_id")
    program_id = request[ADMIN].program_id

    def work(session: Session) -> dict[str, Any] | None:
        key = session.get(ApiKey, key_id)
        if key is None or key.program_id != program_id:
            return None
        return _key(key)

    key = await request.config_dict[DB].run(work)
    if key is None:
        raise web.HTTPNotFound()
    return page(request, "settings_revoke.html", section="settings", key=key)


@routes.post(r"/settings/api-keys/{key_id:\d+}/revoke")
@owner_only
async def revoke_key(request: web.Request) -> web.StreamResponse:
    key_id = path_id(request, "key_id")
    admin = request[ADMIN]

    def work(session: Session) -> None:
        try:
            apikeys.revoke_id(session, admin.program_id, key_id, utc_now())
        except NotFound:
            raise web.HTTPNotFound() from None

    await request.config_dict[DB].run(work)
    log.info("admin %s revoked API key %s", admin.account_id, key_id)
    raise web.HTTPSeeOther(f"{SETTINGS}?saved=api-keys#api-keys")


# --- helpers ----------------------------------------------------------------------------------


async def _save(
    request: web.Request,
    section: str,
    form: Mapping[str, Any],
    work: Callable[[Session], None],
    *,
    saved: str | None = None,
) -> web.StreamResponse:
    """Run a section's change; refused, the page again with the errors and what was typed
    (nothing written: a unit of work that raises is rolled back). Done, back to the page at
    the part that changed (`saved`, else the section), which says so."""
    try:
        await request.config_dict[DB].run(work)
    except Refused as exc:
        typed = {k: v for k, v in form.items() if k != "csrf_token" and isinstance(v, str)}
        if "rows" in form:
            typed["rows"] = form["rows"]
        return await _page(request, status=422, section=section, form=typed, errors=exc.errors)
    saved = saved or section
    anchor = saved if not saved.startswith("question") else "questions"
    raise web.HTTPSeeOther(f"{SETTINGS}?saved={saved}#{anchor}")


def _program(session: Session, program_id: int) -> Program:
    program = programs.get(session, program_id)
    if program is None:
        raise web.HTTPNotFound()
    return program


def _found(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """A store call on one of the club's rows; another club's (or none) is 404."""
    try:
        return call(*args, **kwargs)
    except NotFound:
        raise web.HTTPNotFound() from None


def _club_question(session: Session, program_id: int, question_id: int) -> Any:
    found = next((q for q in programs.questions(session, program_id) if q.id == question_id), None)
    if found is None:
        raise web.HTTPNotFound()
    return found


def _field(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _labels(form: MultiDictProxy[Any]) -> dict[str, list[str]]:
    """The choices typed per language, one a line."""
    return {lang: _field(form, f"choices_{lang}").splitlines() for lang in LANGUAGES}


def _tier_rows(form: MultiDictProxy[Any]) -> list[dict[str, str]]:
    count = _whole(_field(form, "rows")) or 0
    fields = [f"name_{lang}" for lang in LANGUAGES] + ["threshold", "discount"]
    return [{f: _field(form, f"tier{n}_{f}") for f in fields} for n in range(min(count, 20))]


def _whole(raw: str) -> int | None:
    raw = raw.strip()
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    return int(raw) if raw.isdecimal() and len(raw) < 10 else None


def _numbers(
    form: MultiDictProxy[Any], whole: tuple[str, ...], money: tuple[str, ...], precision: int
) -> tuple[dict[str, int], Errors]:
    values: dict[str, int] = {}
    errors: Errors = {}
    for name in whole:
        value = _whole(_field(form, name))
        if value is None:
            errors[name] = ("admin.settings.error.whole", {})
        else:
            values[name] = value
    for name in money:
        amount = parse_money(_field(form, name), precision)
        if amount is None:
            errors[name] = _money_error(precision)
        else:
            values[name] = amount
    return values, errors


def _money_error(precision: int) -> Error:
    return "admin.settings.error.money", {"decimals": precision}


def _club_errors(problems: Mapping[str, str]) -> Errors:
    ids = {
        "name": "admin.settings.error.name",
        "contact": "admin.settings.error.contact",
        "privacy_url": "admin.settings.error.privacy_url",
    }
    return {field: (ids.get(field, "admin.settings.error.other"), {}) for field in problems}


def _range_errors(problems: Mapping[str, str], precision: int) -> Errors:
    """Each number out of its range, said in the form's own terms (money as money)."""
    errors: Errors = {}
    for field in problems:
        if field not in programs.LIMITS:
            errors[field] = ("admin.settings.error.other", {})
            continue
        low, high = programs.LIMITS[field]
        if field.endswith("_minor"):
            unit = 10**precision
            errors[field] = (
                "admin.settings.error.money_range",
                {"low": low // unit, "high": high // unit},
            )
        else:
            errors[field] = ("admin.settings.error.range", {"low": low, "high": high})
    return errors


def _question_error(exc: InvalidSetting) -> Errors:
    if isinstance(exc, programs.QuestionTooLong):
        # Beside the wording that is too long, with by how much.
        return {f"prompt_{exc.language}": ("admin.settings.error.question.sms", {"over": exc.over})}
    field = exc.field if exc.field in ("prompt", "choices") else "kind"
    target = {"prompt": "prompt_nb", "choices": "choices_nb"}.get(field, field)
    return {target: ("admin.settings.error.question." + field, {})}
