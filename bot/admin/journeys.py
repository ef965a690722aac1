"""Journeys (owner only): each automated journey on or off, its texts and its setting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.orm import Session

from bot.admin.auth import ADMIN, owner_only
from bot.admin.render import page
from bot.keys import DB
from locales import LANGUAGES
from store import campaigns, journeys, programs
from store.errors import InvalidInput
from store.models import Campaign, Program

routes = web.RouteTableDef()

# How each setting is counted, for the label beside its field.
UNITS = {
    "delay_hours": "hours",
    "lookback_days": "days",
    "days": "days",
    "within": "points",
    "threshold": "points",
}
MAX_FIELD = 2000  # a form value longer than this is not a journey's text
Error = tuple[str, dict[str, Any]]  # a catalog id and its parameters


@routes.get("/journeys")
@owner_only
async def journeys_page(request: web.Request) -> web.StreamResponse:
    shown = await request.config_dict[DB].run(_read(request[ADMIN].program_id))
    return page(
        request,
        "journeys.html",
        section="journeys",
        journeys=shown,
        saved=request.query.get("saved"),
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
    errors: dict[str, Error] = {}
    settings: dict[str, int | None] = {}
    for key in journeys.DEFAULTS[trigger]:
        raw = _field(form, f"setting_{key}").strip()
        if not raw:
            settings[key] = None  # the trigger's default
        elif raw.isdigit() and len(raw) < 10:
            settings[key] = int(raw)
        else:
            errors[f"setting_{key}"] = _setting_error(key)
    if not errors:
        error = await request.config_dict[DB].run(
            _save(admin.program_id, trigger, active, texts, settings)
        )
        if error is None:
            raise web.HTTPSeeOther(f"/admin/journeys?saved={trigger}#journey-{trigger}")
        errors.update(error)
    shown = await request.config_dict[DB].run(_read(admin.program_id))
    for journey in shown:
        if journey["trigger"] == trigger:
            # What the owner typed stays in the form beside its error.
            journey["active"] = active
            journey["texts"] = texts
            journey["settings"] = {
                key: _field(form, f"setting_{key}") for key in journeys.DEFAULTS[trigger]
            }
            journey["errors"] = errors
    return page(
        request, "journeys.html", status=422, section="journeys", journeys=shown, saved=None
    )


def _save(
    program_id: int,
    trigger: str,
    active: bool,
    texts: Mapping[str, str],
    settings: Mapping[str, int | None],
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
                    now=dt.datetime.now(dt.UTC),
                    active=active,
                    texts=texts,
                    settings=settings,
                )
        except InvalidInput as exc:
            return {_form_field(exc.field): _input_error(trigger, exc.field)}
        return None

    return work


def _read(program_id: int) -> Any:
    def work(session: Session) -> list[dict[str, Any]]:
        program = programs.get(session, program_id)
        assert program is not None
        have = {j.trigger: j for j in journeys.all_of(session, program_id)}
        return [_shown(session, program, t, have.get(t)) for t in journeys.TRIGGERS]

    return work


def _shown(
    session: Session, program: Program, trigger: str, journey: Campaign | None
) -> dict[str, Any]:
    coupon = journey is not None and journey.coupon_template_id is not None
    own = journeys.settings_of(journey) if journey else {}
    given = (journey.settings or {}) if journey else {}
    defaults: dict[str, str] = {}
    for key, value in journeys.DEFAULTS[trigger].items():
        if value is not None:
            defaults[key] = str(value)
        elif key == "threshold":
            probe = journey or Campaign(trigger=trigger, settings=None)
            defaults[key] = str(journeys.threshold_of(session, program, probe))
        else:
            defaults[key] = ""
    return {
        "trigger": trigger,
        "created": journey is not None,
        "active": journey is not None and journey.status == campaigns.ACTIVE,
        "texts": journeys.own_texts(journey) if journey else {},
        "catalog": {
            language: journeys.catalog_wording(trigger, language, coupon=coupon)
            for language in LANGUAGES
        },
        "placeholders": sorted(
            campaigns.PLACEHOLDERS | journeys.EXTRA_PLACEHOLDERS.get(trigger, frozenset())
        ),
        "settings": {key: str(given[key]) if key in given else "" for key in own},
        "defaults": defaults,
        "units": {key: UNITS[key] for key in journeys.DEFAULTS[trigger]},
        "errors": {},
    }


def _field(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _form_field(store_field: str) -> str:
    """The form's field an InvalidInput from journeys.update is about."""
    if store_field.startswith("texts."):
        return "text_" + store_field.removeprefix("texts.")
    if store_field.startswith("settings."):
        return "setting_" + store_field.removeprefix("settings.")
    return "form"


def _input_error(trigger: str, store_field: str) -> Error:
    if store_field.startswith("settings."):
        return _setting_error(store_field.removeprefix("settings."))
    if store_field.startswith("texts."):
        allowed = campaigns.PLACEHOLDERS | journeys.EXTRA_PLACEHOLDERS.get(trigger, frozenset())
        names = ", ".join("{" + name + "}" for name in sorted(allowed))
        return "admin.journeys.error.text", {"placeholders": names, "max": campaigns.MAX_TEXT}
    return "admin.journeys.error.other", {}


def _setting_error(key: str) -> Error:
    low, high = journeys.LIMITS[key]
    return "admin.journeys.error.setting", {"low": low, "high": high}
