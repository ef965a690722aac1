"""Journeys (owner only): each automated journey on or off, its texts, its setting, the coupon
it gives and its control group."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.orm import Session

from bot.admin.auth import ADMIN, LANGUAGE, owner_only
from bot.admin.render import coupon_title, money, page
from bot.keys import DB, SETTINGS
from locales import LANGUAGES, segments
from store.clock import utc_now
from store.clubs import programs
from store.errors import InvalidInput, NotFound
from store.loyalty import coupons
from store.models import Campaign, CouponTemplate, Program
from store.outreach import campaigns, journeys

routes = web.RouteTableDef()

# How each setting is counted, for the label beside its field.
UNITS = {
    "delay_hours": "hours",
    "lookback_days": "days",
    "days": "days",
    "within": "points",
    "threshold": "points",
    "points": "points",
    "delay_days": "days",
}
# A milestone's `at` counts what its trigger counts.
AT_UNITS = {
    journeys.MILESTONE_POINTS: "points",
    journeys.MILESTONE_PURCHASES: "purchases",
    journeys.MILESTONE_MONTHS: "months",
}
MAX_FIELD = 2000  # a form value longer than this is not a journey's text
Error = tuple[str, dict[str, Any]]  # a catalog id and its parameters


@routes.get("/journeys")
@owner_only
async def journeys_page(request: web.Request) -> web.StreamResponse:
    shown = await request.config_dict[DB].run(
        _read(request[ADMIN].program_id, request[LANGUAGE], _link_base(request))
    )
    return page(
        request,
        "journeys.html",
        section="journeys",
        journeys=shown,
        saved=request.query.get("saved"),
        max_control=campaigns.MAX_CONTROL,
    )


@routes.post(r"/journeys/{trigger:[a-z_]+}")
@owner_only
async def save_journey(request: web.Request) -> web.StreamResponse:
    trigger = request.match_info["trigger"]
    if trigger not in journeys.TRIGGERS:
        raise web.HTTPNotFound()
    form = await request.post()
    admin = request[ADMIN]
    active = form.get("active") == "on"
    texts = {language: _field(form, f"text_{language}") for language in LANGUAGES}
    # A field the form did not send leaves the journey's coupon or control group as it is;
    # the empty choice is journeys.NO_COUPON.
    coupon = _field(form, "coupon").strip() if "coupon" in form else None
    control_raw = _field(form, "control").strip()
    errors: dict[str, Error] = {}
    control: int | None = None
    if "control" in form:
        if not control_raw:
            control = 0  # nobody held out
        elif control_raw.isdigit() and len(control_raw) < 4:
            control = int(control_raw)
        else:
            errors["control"] = _control_error()
    settings: dict[str, int | None] = {}
    for key in journeys.DEFAULTS[trigger]:
        raw = _field(form, f"setting_{key}").strip()
        if not raw:
            settings[key] = None  # the trigger's default
        elif raw.isdigit() and len(raw) < 10:
            settings[key] = int(raw)
        else:
            errors[f"setting_{key}"] = _setting_error(trigger, key)
    if not errors:
        error = await request.config_dict[DB].run(
            _save(admin.program_id, trigger, active, texts, settings, coupon, control)
        )
        if error is None:
            raise web.HTTPSeeOther(f"/admin/journeys?saved={trigger}#journey-{trigger}")
        errors.update(error)
    shown = await request.config_dict[DB].run(
        _read(admin.program_id, request[LANGUAGE], _link_base(request))
    )
    for journey in shown:
        if journey["trigger"] == trigger:
            # What the owner typed stays in the form beside its error.
            journey["active"] = active
            journey["texts"] = texts
            journey["settings"] = {
                key: _field(form, f"setting_{key}") for key in journeys.DEFAULTS[trigger]
            }
            if coupon is not None:
                journey["coupon"] = coupon
            if "control" in form:
                journey["control"] = control_raw
            journey["errors"] = errors
    return page(
        request,
        "journeys.html",
        status=422,
        section="journeys",
        journeys=shown,
        saved=None,
        max_control=campaigns.MAX_CONTROL,
    )


@routes.post("/journeys/cross_sell/categories")
@owner_only
async def save_category(request: web.Request) -> web.StreamResponse:
    """Add or edit the cross-sell journey's texts for a category (the journey is set up, off,
    if the club has none)."""
    form = await request.post()
    admin = request[ADMIN]
    category = _field(form, "category")
    texts = {language: _field(form, f"text_{language}") for language in LANGUAGES}

    def work(session: Session) -> dict[str, Error] | None:
        program = programs.get(session, admin.program_id)
        assert program is not None
        try:
            journeys.set_category_text(session, program, category, texts, now=utc_now())
        except InvalidInput as exc:
            return {_category_field(exc): _category_error(exc)}
        return None

    errors = await request.config_dict[DB].run(work)
    if errors is None:
        raise web.HTTPSeeOther(f"/admin/journeys?saved={journeys.CROSS_SELL}#{CATEGORY_FORM}")
    shown = await request.config_dict[DB].run(
        _read(admin.program_id, request[LANGUAGE], _link_base(request))
    )
    for journey in shown:
        if journey["trigger"] == journeys.CROSS_SELL:
            # What the owner typed stays in the form beside its error.
            journey["new_category"] = {"name": category, "texts": texts, "errors": errors}
    return page(
        request,
        "journeys.html",
        status=422,
        section="journeys",
        journeys=shown,
        saved=None,
        max_control=campaigns.MAX_CONTROL,
    )


@routes.post("/journeys/cross_sell/categories/remove")
@owner_only
async def remove_category(request: web.Request) -> web.StreamResponse:
    """Take a category's texts out of the cross-sell journey (one already gone: nothing to do)."""
    form = await request.post()
    admin = request[ADMIN]
    category = _field(form, "category")

    def work(session: Session) -> None:
        program = programs.get(session, admin.program_id)
        assert program is not None
        # Removed in another tab already: the page shows what is left.
        with contextlib.suppress(NotFound):
            journeys.remove_category(session, program, category)

    await request.config_dict[DB].run(work)
    raise web.HTTPSeeOther(f"/admin/journeys?saved={journeys.CROSS_SELL}#{CATEGORY_FORM}")


CATEGORY_FORM = "journey-cross_sell-categories"


def _category_field(problem: InvalidInput) -> str:
    if problem.field.startswith("texts."):
        return "text_" + problem.field.removeprefix("texts.")
    return "category" if problem.field == "category" else "texts"


def _category_error(problem: InvalidInput) -> Error:
    if problem.field == "category":
        return "admin.journeys.category.error.name", {"max": journeys.MAX_CATEGORY}
    if problem.field == "texts":
        return "admin.journeys.category.error.empty", {}
    allowed = campaigns.PLACEHOLDERS | journeys.EXTRA_PLACEHOLDERS[journeys.CROSS_SELL]
    names = ", ".join("{" + name + "}" for name in sorted(allowed))
    return "admin.journeys.error.text", {"placeholders": names, "max": campaigns.MAX_TEXT}


def _save(
    program_id: int,
    trigger: str,
    active: bool,
    texts: Mapping[str, str],
    settings: Mapping[str, int | None],
    coupon: str | None,
    control: int | None,
) -> Any:
    def work(session: Session) -> dict[str, Error] | None:
        program = programs.get(session, program_id)
        assert program is not None
        try:
            # Nested: a refusal leaves nothing half-written (the journey set up, say).
            with session.begin_nested():
                journeys.update(
                    session,
                    program,
                    trigger,
                    now=utc_now(),
                    active=active,
                    texts=texts,
                    settings=settings,
                    coupon=coupon,
                    control_percent=control,
                )
        except NotFound:
            # Another club's key, or a template deactivated since the page was shown.
            return {"coupon": ("admin.journeys.error.coupon", {})}
        except InvalidInput as exc:
            return {_form_field(exc): _input_error(trigger, exc)}
        return None

    return work


def _link_base(request: web.Request) -> str:
    """Where short links are served: the samples show web addresses as members get them."""
    return request.config_dict[SETTINGS].public_url


def _read(program_id: int, language: str, link_base: str) -> Any:
    def work(session: Session) -> list[dict[str, Any]]:
        program = programs.get(session, program_id)
        assert program is not None
        have = {j.trigger: j for j in journeys.all_of(session, program_id)}
        offered = {template.id: template for template in coupons.templates(session, program_id)}
        now = utc_now()
        return [
            _shown(session, program, t, have.get(t), offered, language, now, link_base)
            for t in journeys.TRIGGERS
        ]

    return work


def _shown(
    session: Session,
    program: Program,
    trigger: str,
    journey: Campaign | None,
    offered: Mapping[int, CouponTemplate],
    language: str,
    now: dt.datetime,
    link_base: str,
) -> dict[str, Any]:
    coupon = journey is not None and journey.coupon_template_id is not None
    own = journeys.settings_of(journey) if journey else {}
    given = (journey.settings or {}) if journey else {}
    defaults: dict[str, str] = {}
    # A journey not set up yet is shown as it would be, with no options of its own (a
    # Campaign never added to the session, so nothing is written).
    probe = journey or Campaign(trigger=trigger, settings=None, texts=None, control_percent=0)
    for key, value in journeys.DEFAULTS[trigger].items():
        if value is not None:
            defaults[key] = str(value)
        elif key == "threshold":
            defaults[key] = str(journeys.threshold_of(session, program, probe))
        else:
            defaults[key] = ""
    # The club's active templates to choose from, and the journey's own even if it has been
    # deactivated since (it keeps giving it until the owner chooses another).
    choices = dict(offered)
    template = (
        session.get(CouponTemplate, journey.coupon_template_id)
        if journey is not None and journey.coupon_template_id is not None
        else None
    )
    if template is not None:
        choices.setdefault(template.id, template)
    price = program.sms_price_minor
    samples = []
    for each in LANGUAGES:
        sample = journeys.sample_text(session, program, probe, each, now, link_base)
        size = segments(sample)
        samples.append(
            {
                "language": each,
                "lines": sample.splitlines(),
                "segments": size.segments,
                "encoding": size.encoding,
                "cost": money(size.segments * price, program.currency, language),
            }
        )
    return {
        "trigger": trigger,
        "created": journey is not None,
        "active": journey is not None and journey.status == campaigns.ACTIVE,
        "texts": journeys.own_texts(journey) if journey else {},
        "catalog": {
            each: journeys.catalog_wording(trigger, each, coupon=coupon) for each in LANGUAGES
        },
        "placeholders": sorted(
            campaigns.PLACEHOLDERS | journeys.EXTRA_PLACEHOLDERS.get(trigger, frozenset())
        ),
        "settings": {key: str(given[key]) if key in given else "" for key in own},
        "defaults": defaults,
        "units": {
            key: AT_UNITS[trigger] if key == "at" else UNITS[key]
            for key in journeys.DEFAULTS[trigger]
        },
        "coupon": template.key if template is not None else "",
        "coupon_label": (
            coupon_title(template, program.currency, language) if template is not None else None
        ),
        "coupons": [(t.key, coupon_title(t, program.currency, language)) for t in choices.values()],
        "control": str(journey.control_percent) if journey is not None else "0",
        "control_percent": journey.control_percent if journey is not None else 0,
        "samples": samples,
        "errors": {},
        **(_categories(session, program, journey) if trigger == journeys.CROSS_SELL else {}),
    }


def _categories(session: Session, program: Program, journey: Campaign | None) -> dict[str, Any]:
    """Cross-sell's texts per category, and the club's categories (from its purchase lines)
    to add one for."""
    own = journeys.category_texts(journey)
    return {
        "categories": [{"name": name, "texts": own[name]} for name in sorted(own)],
        "category_choices": [
            name for name in journeys.club_categories(session, program.id) if name not in own
        ],
        "new_category": {"name": "", "texts": {}, "errors": {}},
    }


def _field(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _form_field(problem: InvalidInput) -> str:
    """The form's field an InvalidInput from journeys.update is about."""
    store_field = problem.field
    if isinstance(problem, campaigns.BadBroadcast) and problem.code == "coupon_needed":
        return "coupon"
    if store_field.startswith("texts."):
        return "text_" + store_field.removeprefix("texts.")
    if store_field.startswith("settings."):
        return "setting_" + store_field.removeprefix("settings.")
    if store_field == "control":
        return "control"
    return "form"


def _input_error(trigger: str, problem: InvalidInput) -> Error:
    store_field = problem.field
    if isinstance(problem, campaigns.BadBroadcast) and problem.code == "coupon_needed":
        return "admin.journeys.error.coupon_needed", {}
    if store_field.startswith("settings."):
        return _setting_error(trigger, store_field.removeprefix("settings."))
    if store_field.startswith("texts."):
        allowed = campaigns.PLACEHOLDERS | journeys.EXTRA_PLACEHOLDERS.get(trigger, frozenset())
        names = ", ".join("{" + name + "}" for name in sorted(allowed))
        return "admin.journeys.error.text", {"placeholders": names, "max": campaigns.MAX_TEXT}
    if store_field == "control":
        return _control_error()
    return "admin.journeys.error.other", {}


def _setting_error(trigger: str, key: str) -> Error:
    low, high = journeys.limits(trigger, key)
    return "admin.journeys.error.setting", {"low": low, "high": high}


def _control_error() -> Error:
    return "admin.journeys.error.control", {"max": campaigns.MAX_CONTROL}
