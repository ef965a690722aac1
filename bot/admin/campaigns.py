"""Campaigns (owner only): compose, preview, send or schedule, cancel, and the report; a
broadcast that repeats (a series: pause, resume, cancel) or goes some days before a sale."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import format_date as babel_format_date
from sqlalchemy import select
from sqlalchemy.orm import Session

import locales
from bot.admin import saved_replies
from bot.admin.auth import ADMIN, LANGUAGE, owner_only
from bot.admin.render import (
    coupon_title,
    date_value,
    money,
    page,
    path_id,
    read_local_time,
)
from bot.keys import DB, SETTINGS
from locales import sms
from store import reports
from store.clock import utc_now
from store.errors import Conflict, InvalidInput, NotFound
from store.loyalty import coupons
from store.models import Campaign, CouponTemplate, Member, Program, Segment
from store.outreach import campaigns, journeys, recurring, segments
from store.states import OutboxStatus
from store.text import check_text

routes = web.RouteTableDef()

LANGUAGES = locales.LANGUAGES
EVERYONE, MEMBERS, SEGMENT = "everyone", "members", "segment:"
NOW, LATER, SALE = "now", "later", "sale"
NEVER = "never"  # the form's "repeat": never, or recurring.MONTH / recurring.YEAR
# The member condition that a list of chosen members becomes (outreach.segments' `member` field).
MEMBER_FIELD = "member"
MAX_CHOSEN = 1000
# Statuses a broadcast can still be cancelled in (outreach.campaigns.cancel refuses the others).
CANCELLABLE = (campaigns.SCHEDULED, campaigns.PLANNING, campaigns.SENDING)
SERIES_CANCELLABLE = (campaigns.ACTIVE, campaigns.PAUSED)
RECIPIENTS_SHOWN = 50
MAX_AUDIENCE_BODY = 32 * 1024  # an audience of MAX_CHOSEN ids is about 20 kB
# The favourite category offer's rows of category -> coupon the form offers (the CLI and the
# store take up to campaigns.MAX_FAVOURITE_COUPONS; a form of fifty rows would help no one).
FAVOURITE_ROWS = 5

# A message shown next to a field: a catalog id and its parameters.
Message = tuple[str, dict[str, Any]]


# --- the compose form -------------------------------------------------------------------------


@dataclass
class Form:
    """The compose form as posted (or pre-filled), kept as typed so it can be shown again."""

    name: str = ""
    audience: str = EVERYONE
    members: list[int] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=lambda: dict.fromkeys(LANGUAGES, ""))
    coupon: str = ""
    control: str = "0"
    when: str = NOW
    send_at: str = ""
    # A series: repeat every month on repeat_day, or every year on repeat_date, at repeat_at.
    repeat: str = NEVER
    repeat_day: str = "1"
    repeat_date: str = ""
    repeat_at: str = "10:00"
    # "when" is SALE: days_before and hours_before the sale starting at sale_at.
    sale_at: str = ""
    days_before: str = "2"
    hours_before: str = "0"
    # The favourite category offer: on or off, and its (category, coupon key) rows as given
    # (empty ones left out); the campaign's coupon is the fallback.
    favourite: bool = False
    favourite_rows: list[tuple[str, str]] = field(default_factory=list)

    @property
    def members_value(self) -> str:
        return ",".join(str(member) for member in self.members)

    @property
    def favourite_shown(self) -> list[tuple[str, str]]:
        """The rows as the form shows them: those given, then empty ones up to FAVOURITE_ROWS."""
        return self.favourite_rows + [("", "")] * (FAVOURITE_ROWS - len(self.favourite_rows))


def _member_ids(raw: str) -> list[int] | None:
    """ "1,2,3" as ids (repeats dropped, order kept); None when it is not such a list."""
    ids: list[int] = []
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or len(part) > 18:
            return None
        if int(part) not in ids:
            ids.append(int(part))
    return ids


def _read(data: Mapping[str, Any]) -> tuple[Form, dict[str, Message]]:
    """The form from posted fields, and what is wrong with them before the store is asked."""
    errors: dict[str, Message] = {}

    def text(key: str, limit: int = 2000) -> str:
        value = data.get(key, "")
        return value[:limit] if isinstance(value, str) else ""

    form = Form(
        name=text("name", 200).strip(),
        audience=text("audience", 200) or EVERYONE,
        texts={language: text(f"text_{language}") for language in LANGUAGES},
        coupon=text("coupon", 100),
        control=text("control", 20).strip() or "0",
        when=text("when", 10) if text("when", 10) in (LATER, SALE) else NOW,
        send_at=text("send_at", 40).strip(),
        repeat=text("repeat", 10) if text("repeat", 10) in _REPEATS else NEVER,
        repeat_day=text("repeat_day", 10).strip() or "1",
        repeat_date=text("repeat_date", 10).strip(),
        repeat_at=text("repeat_at", 10).strip() or "10:00",
        sale_at=text("sale_at", 40).strip(),
        days_before=text("days_before", 10).strip() or "0",
        hours_before=text("hours_before", 10).strip() or "0",
    )
    chosen = _member_ids(text("members", 20_000))
    if chosen is None or len(chosen) > MAX_CHOSEN:
        errors["audience"] = ("admin.campaigns.error.members", {"max": MAX_CHOSEN})
        chosen = []
    form.members = chosen
    form.favourite = text("favourite", 10) == "1"
    for index in range(FAVOURITE_ROWS):
        category = " ".join(text(f"favourite_category_{index}", 200).split())
        key = text(f"favourite_coupon_{index}", 100).strip()
        if category or key:
            form.favourite_rows.append((category, key))
    errors.update(_favourite_problems(form))
    if form.audience == MEMBERS and not form.members:
        errors.setdefault("audience", ("admin.campaigns.error.no_members", {}))
    if not _is_int(form.control):
        errors["control"] = ("admin.campaigns.error.control", {"max": campaigns.MAX_CONTROL})
    if form.when == LATER and _local_time(form.send_at) is None and form.repeat == NEVER:
        errors["send_at"] = ("admin.campaigns.error.when", {})
    if form.repeat != NEVER:
        try:
            _rule(form)
        except campaigns.BadBroadcast as exc:
            errors["repeat"] = ("admin.campaigns.error." + exc.code, dict(exc.params))
    elif form.when == SALE:
        if _local_time(form.sale_at) is None:
            errors["sale_at"] = ("admin.campaigns.error.when", {})
        if not _is_int(form.days_before) or not _is_int(form.hours_before):
            errors["days_before"] = (
                "admin.campaigns.error.days_before",
                {"max": recurring.MAX_DAYS_BEFORE},
            )
    return form, errors


_REPEATS = (NEVER, recurring.MONTH, recurring.YEAR)


def _favourite_problems(form: Form) -> dict[str, Message]:
    """What is wrong with the favourite offer's rows, each under its row (favourite_N)."""
    errors: dict[str, Message] = {}
    if form.favourite_rows and not form.favourite:
        # Rows left filled with the offer unticked: not silently sent as one, nor dropped.
        errors["favourite"] = ("admin.campaigns.error.favourite_off", {})
    seen: set[str] = set()
    for index, (category, key) in enumerate(form.favourite_rows):
        where = f"favourite_{index}"
        if not category:
            errors[where] = ("admin.campaigns.error.favourite_no_category", {})
        elif len(category) > campaigns.MAX_CATEGORY or not category.isprintable():
            errors[where] = (
                "admin.campaigns.error.favourite_category",
                {"max": campaigns.MAX_CATEGORY},
            )
        elif not key:
            errors[where] = ("admin.campaigns.error.favourite_no_coupon", {"category": category})
        elif category in seen:
            errors[where] = ("admin.campaigns.error.favourite_twice", {"category": category})
        seen.add(category)
    return errors


def _rule(form: Form) -> recurring.Recurrence:
    """The form's recurrence (BadBroadcast naming what is wrong with it)."""
    return recurring.recurrence(
        form.repeat, day=form.repeat_day, date=form.repeat_date, at=form.repeat_at
    )


@dataclass(frozen=True, slots=True)
class _Timing:
    """How a checked form's broadcast is timed: once (send_at in the options), repeating
    (`rule`), or before a sale (`sale`)."""

    rule: recurring.Recurrence | None = None
    sale: recurring.BeforeSale | None = None


def _timing(
    form: Form, program: Program, options: dict[str, Any], now: dt.datetime
) -> tuple[_Timing, dict[str, Message]]:
    """The form's timing, with options["send_at"] set to its first (or only) send time: a
    series' first occurrence, the sale less the days; problems under their fields."""
    if form.repeat != NEVER:
        rule = _rule(form)
        options["send_at"] = recurring.first_moment(rule, program, now)
        return _Timing(rule=rule), {}
    if form.when != SALE:
        return _Timing(), {}
    local = _local_time(form.sale_at)
    assert local is not None  # _read checked it
    try:
        sale = recurring.before_sale(
            local.replace(tzinfo=ZoneInfo(program.timezone)),
            days=int(form.days_before),
            hours=int(form.hours_before),
            now=now,
        )
    except campaigns.BadBroadcast as exc:
        where = "sale_at" if exc.field == "sale_at" else "days_before"
        return _Timing(), {where: ("admin.campaigns.error." + exc.code, dict(exc.params))}
    options["send_at"] = sale.send_at
    return _Timing(sale=sale), {}


def _is_int(raw: str) -> bool:
    try:
        int(raw)
    except ValueError:
        return False
    return True


def _local_time(raw: str) -> dt.datetime | None:
    """The time to send at as typed ("01.12.2026 10:00", or ISO), naive: the club's time."""
    return read_local_time(raw)


def _options(form: Form, zone: ZoneInfo) -> dict[str, Any]:
    """create_broadcast's options for a form whose own checks passed."""
    segment: str | None = None
    chosen: dict[str, Any] | None = None
    if form.audience.startswith(SEGMENT):
        segment = form.audience.removeprefix(SEGMENT)
    elif form.audience == MEMBERS:
        chosen = {"field": MEMBER_FIELD, "op": "in", "value": form.members}
    send_at = None
    local = _local_time(form.send_at) if form.when == LATER else None
    if local is not None:
        send_at = local.replace(tzinfo=zone)
    return {
        "name": form.name,
        "texts": {language: text for language, text in form.texts.items() if text.strip()},
        "segment": segment,
        "filter": chosen,
        "coupon": form.coupon or None,
        "control_percent": int(form.control),
        "send_at": send_at,
        "favourite": form.favourite,
        "favourite_coupons": dict(form.favourite_rows) if form.favourite else None,
    }


def _field_of(problem: InvalidInput | NotFound) -> tuple[str, Message]:
    """Where a store problem shows on the form, and how it reads there."""
    if isinstance(problem, NotFound):
        if problem.what == "segment":
            return "audience", ("admin.campaigns.error.unknown_segment", {})
        return "coupon", ("admin.campaigns.error.unknown_coupon", {})
    code = getattr(problem, "code", "other")
    params = dict(getattr(problem, "params", {}))
    message = ("admin.campaigns.error." + code, params)
    if code == "coupon_needed":
        return "coupon", message
    if code in ("favourite_many", "favourite_category", "favourite_coupon"):
        # favourite_coupons.<category> for one row: _store_problems finds the row.
        return problem.field, message
    if code in ("filter", "both"):
        return "audience", message
    if problem.field.startswith("texts."):
        return "text_" + problem.field.removeprefix("texts."), message
    if problem.field in ("name", "control", "send_at", "texts"):
        return problem.field, message
    return "texts", ("admin.campaigns.error.other", {})


def _store_problems(
    session: Session, program: Program, options: dict[str, Any], now: dt.datetime
) -> dict[str, Message]:
    errors: dict[str, Message] = {}
    rows = list(options.get("favourite_coupons") or {})
    for problem in campaigns.problems(session, program, now=now, **options):
        where, message = _field_of(problem)
        if where.startswith("favourite_coupons"):
            category = where.removeprefix("favourite_coupons").removeprefix(".")
            where = f"favourite_{rows.index(category)}" if category in rows else "favourite"
        errors.setdefault(where, message)
    return errors


@dataclass(frozen=True, slots=True)
class _Choices:
    """What the form offers: the club's segments and coupons, and the counter's data."""

    segments: list[str]
    coupons: list[tuple[str, str]]  # key, what it gives in the admin's language
    counter: dict[str, Any]
    chosen: list[str]  # the names (or numbers) of the chosen members
    reach: segments.Reach | None  # the audience chosen, counted now (None: nobody to count)
    saved_texts: list[dict[str, Any]]  # the club's broadcast texts (saved_replies.for_broadcast)
    categories: list[str]  # the club's purchase-line categories (the favourite offer's rows)


def _choices(session: Session, program: Program, language: str, form: Form) -> _Choices:
    offered = [
        (template.key, coupon_title(template, program.currency, language))
        for template in coupons.templates(session, program.id)
    ]
    return _Choices(
        segments=[segment.name for segment in segments.all_of(session, program.id)],
        coupons=offered,
        counter=_counter_data(session, program),
        chosen=_chosen_names(session, program.id, form.members),
        reach=_reach(session, program, form.audience, form.members),
        saved_texts=saved_replies.for_broadcast(session, program),
        categories=journeys.club_categories(session, program.id),
    )


def _reach(
    session: Session, program: Program, audience: str, chosen: list[int]
) -> segments.Reach | None:
    """Who the form's audience selects now and who of them a broadcast could reach (the
    store's count, with consent and the cap); None for a segment gone or no one chosen."""
    if audience.startswith(SEGMENT):
        try:
            filter = dict(segments.get(session, program.id, audience.removeprefix(SEGMENT)).filter)
        except NotFound:
            return None
    elif audience == MEMBERS:
        if not chosen:
            return None
        filter = {"field": MEMBER_FIELD, "op": "in", "value": chosen[:MAX_CHOSEN]}
    else:
        filter = {"all": []}
    return segments.reach(session, program, filter, utc_now())


def reach_texts(reach: segments.Reach | None, language: str) -> list[str]:
    """The audience's count as the form shows it beside its picker (and its script, from the
    API): in the audience, who can get it now, and who has had their month's messages."""
    if reach is None:
        return []
    shown = [
        locales.text(
            "admin.campaigns.reach",
            language,
            count=reach.matching,
            reachable=reach.under_cap,
        )
    ]
    if reach.reachable > reach.under_cap:
        shown.append(
            locales.text(
                "admin.campaigns.reach.capped", language, count=reach.reachable - reach.under_cap
            )
        )
    return shown


def _chosen_names(session: Session, program_id: int, ids: list[int]) -> list[str]:
    if not ids:
        return []
    found = session.execute(
        select(Member.id, Member.first_name, Member.phone)
        .where(Member.program_id == program_id, Member.id.in_(ids[:MAX_CHOSEN]))
        .order_by(Member.id)
    )
    return [first_name or phone or f"#{member_id}" for member_id, first_name, phone in found]


def _counter_data(session: Session, program: Program) -> dict[str, Any]:
    """What campaigns.js needs to size a text as the server does: the GSM-7 alphabet and its
    extension, the typographic replacements outreach.campaigns.compose makes (locales.sms), the
    sample values of each language, the club's name it puts first and the opt-out line."""
    return {
        "basic": "".join(sorted(sms.GSM7_BASIC)),
        "extension": "".join(sorted(sms.GSM7_EXTENSION)),
        "replace": _replacements(),
        "expand": {chr(code): text for code, text in sms.REPLACE_MANY.items()},
        "samples": {
            language: campaigns.sample_values(session, program, language) for language in LANGUAGES
        },
        "footers": {language: campaigns.footer(language) for language in LANGUAGES},
        "club": program.name,
    }


@functools.cache
def _replacements() -> dict[str, str]:
    # locales.sms keeps the table private; the page gets it as data rather than a second copy.
    return {chr(code): text or "" for code, text in sms.REPLACE_ONE.items()}


async def _program(request: web.Request, work: Any) -> Any:
    admin = request[ADMIN]

    def run(session: Session) -> Any:
        program = session.get(Program, admin.program_id)
        assert program is not None
        return work(session, program)

    return await request.config_dict[DB].run(run)


async def _show_form(
    request: web.Request, form: Form, errors: dict[str, Message], status: int = 200
) -> web.Response:
    language = request[LANGUAGE]
    choices = await _program(request, lambda s, p: _choices(s, p, language, form))
    return page(
        request,
        "campaign_form.html",
        status=status,
        section="campaigns",
        form=form,
        errors=errors,
        choices=choices,
        counter_json=json.dumps(choices.counter, ensure_ascii=False),
        reach=reach_texts(choices.reach, language),
        languages=LANGUAGES,
        placeholders=sorted(campaigns.BROADCAST_PLACEHOLDERS),
        max_control=campaigns.MAX_CONTROL,
        zone=request[ADMIN].timezone,
        # An example in the field's own format: tomorrow at ten.
        example=_example_time(request, language),
    )


def _example_time(request: web.Request, language: str) -> str:
    tomorrow = utc_now().astimezone(ZoneInfo(request[ADMIN].timezone)).date() + dt.timedelta(days=1)
    return f"{date_value(tomorrow, language)} 10:00"


# --- pages ------------------------------------------------------------------------------------


@routes.get("/campaigns")
@owner_only
async def list_campaigns(request: web.Request) -> web.StreamResponse:
    zone = ZoneInfo(request[ADMIN].timezone)
    language = request[LANGUAGE]

    def read(session: Session, program: Program) -> list[dict[str, Any]]:
        listed = campaigns.all_of(session, program.id)
        counts = campaigns.tallies(session, [c.id for c in listed])
        made = recurring.latest_made(session, [c.id for c in listed if c.recurrence])
        now = utc_now()
        rows = []
        for campaign in listed:
            tally = counts[campaign.id]
            planned = sum(tally.values()) - tally.get(OutboxStatus.HELD_OUT, 0)
            rule = recurring.series_of(campaign)
            rows.append(
                {
                    "id": campaign.id,
                    "name": campaign.name,
                    "status": campaign.status,
                    "when": _moment(campaign.send_at, zone, language),
                    "planned": planned if tally else None,
                    "sent": tally.get(OutboxStatus.SENT, 0),
                    # A series: its rule and its next occurrence (sends nothing itself).
                    "rule": rule_text(rule, language) if rule else None,
                    "next": _moment(
                        recurring.next_moment(campaign, zone, now, made.get(campaign.id)),
                        zone,
                        language,
                    ),
                }
            )
        return rows

    rows = await _program(request, read)
    return page(request, "campaigns.html", section="campaigns", campaigns=rows)


@routes.get("/campaigns/new")
@owner_only
async def new_campaign(request: web.Request) -> web.StreamResponse:
    """The compose form; ?members=1,2,3 starts it for chosen members, ?segment=NAME for a
    saved segment."""
    form = Form()
    errors: dict[str, Message] = {}
    if "members" in request.query:
        chosen = _member_ids(request.query["members"])
        if chosen is None or not chosen or len(chosen) > MAX_CHOSEN:
            errors["audience"] = ("admin.campaigns.error.members", {"max": MAX_CHOSEN})
        else:
            form.members, form.audience = chosen, MEMBERS
    elif request.query.get("segment"):
        form.audience = SEGMENT + request.query["segment"]
    await _use_saved_text(request, form, request.query.get("template"))
    return await _show_form(request, form, errors, 422 if errors else 200)


@routes.post("/campaigns/edit")
@owner_only
async def edit_campaign(request: web.Request) -> web.StreamResponse:
    """Back from the preview to the form, with everything as it was typed; or the form again
    with a saved broadcast text in its texts ("Use", without a script: `pick`)."""
    data = await request.post()
    form, errors = _read(data)
    if data.get("pick"):
        wanted = data.get("template")
        await _use_saved_text(request, form, wanted if isinstance(wanted, str) else None)
    return await _show_form(request, form, errors)


async def _use_saved_text(request: web.Request, form: Form, wanted: str | None) -> None:
    """The form's texts replaced by the club's saved broadcast text `wanted` (an id; none, or
    one that is not the club's, leaves them as they are)."""
    if not wanted or not wanted.isdigit():
        return
    saved = await _program(request, lambda s, p: saved_replies.for_broadcast(s, p))
    chosen = next((t for t in saved if str(t["id"]) == wanted), None)
    if chosen is not None:
        form.texts = {language: chosen["texts"].get(language, "") for language in LANGUAGES}


@routes.post("/campaigns/preview")
@owner_only
async def preview_campaign(request: web.Request) -> web.StreamResponse:
    """What the campaign would do: recipients after each guard rail, its texts as a sample
    member gets them, SMS segments and cost. Nothing is saved."""
    form, errors = _read(await request.post())
    if errors:
        return await _show_form(request, form, errors, 422)
    admin = request[ADMIN]
    zone = ZoneInfo(admin.timezone)
    options = _options(form, zone)
    now = utc_now()

    def work(session: Session, program: Program) -> dict[str, Any]:
        timing, problems = _timing(form, program, options, now)
        problems = problems or _store_problems(session, program, options, now)
        if problems:
            return {"errors": problems}
        draft = campaigns.try_broadcast(
            session, program, now=now, link_base=request.config_dict[SETTINGS].public_url, **options
        )
        return {
            "draft": draft,
            "price_minor": program.sms_price_minor,
            "cap": program.marketing_per_month,
            "quiet": (program.quiet_start, program.quiet_end),
            "segment": options["segment"],
            "coupon": _coupon_label(session, program, options["coupon"], request[LANGUAGE]),
            "timing": timing,
            # The favourite offer: which coupon goes with which category.
            "favourite": [
                (category, _coupon_label(session, program, key, request[LANGUAGE]))
                for category, key in (options["favourite_coupons"] or {}).items()
            ],
        }

    found = await _program(request, work)
    if "errors" in found:
        return await _show_form(request, form, found["errors"], 422)
    return _show_preview(request, form, found, options, now)


def _show_preview(
    request: web.Request,
    form: Form,
    found: dict[str, Any],
    options: dict[str, Any],
    now: dt.datetime,
) -> web.Response:
    language = request[LANGUAGE]
    zone = ZoneInfo(request[ADMIN].timezone)
    draft: campaigns.Draft = found["draft"]
    shown = draft.preview
    asked = max(options["send_at"] or now, now)
    sizes = [
        {"language": lang, "text": text, "size": locales.segments(text)}
        for lang, text in draft.samples.items()
    ]
    cash = functools.partial(money, currency=shown.currency, language=language)
    return page(
        request,
        "campaign_preview.html",
        section="campaigns",
        form=form,
        preview=shown,
        samples=sizes,
        languages=LANGUAGES,
        cost=cash(shown.cost_minor),
        price=cash(found["price_minor"]),
        cap=found["cap"],
        quiet_start=f"{found['quiet'][0]:02d}:00",
        quiet_end=f"{found['quiet'][1]:02d}:00",
        goes_out=_moment(shown.first_send, zone, language),
        moved=shown.first_send - asked > dt.timedelta(seconds=1),
        asked=_moment(asked, zone, language),
        later=options["send_at"] is not None,
        segment=found["segment"],
        coupon=found["coupon"],
        zone=zone.key,
        timed=_timed_text(found["timing"], zone, language),
        favourite=found["favourite"],
    )


def _coupon_label(session: Session, program: Program, key: str | None, language: str) -> str | None:
    if key is None:
        return None
    for template in coupons.templates(session, program.id):
        if template.key == key:
            return coupon_title(template, program.currency, language)
    return key


@routes.post("/campaigns")
@owner_only
async def create_campaign(request: web.Request) -> web.StreamResponse:
    """Create the campaign the preview showed: the scheduler plans and sends it at its time."""
    form, errors = _read(await request.post())
    if errors:
        return await _show_form(request, form, errors, 422)
    admin = request[ADMIN]
    options = _options(form, ZoneInfo(admin.timezone))
    now = utc_now()

    def work(session: Session, program: Program) -> int | dict[str, Message]:
        timing, problems = _timing(form, program, options, now)
        problems = problems or _store_problems(session, program, options, now)
        if problems:
            return problems
        made_by = admin.email[:60]
        if timing.rule is not None:
            campaign = recurring.create_series(
                session, program, rule=timing.rule, now=now, created_by=made_by, **options
            )
        elif timing.sale is not None:
            del options["send_at"]
            campaign = recurring.create_before_sale(
                session, program, timed=timing.sale, now=now, created_by=made_by, **options
            )
        else:
            campaign = campaigns.create_broadcast(
                session, program, now=now, created_by=made_by, **options
            )
        return campaign.id

    made = await _program(request, work)
    if isinstance(made, dict):
        return await _show_form(request, form, made, 422)
    raise web.HTTPSeeOther(f"/admin/campaigns/{made}")


@routes.post("/api/campaigns/audience")
@owner_only
async def audience_api(request: web.Request) -> web.StreamResponse:
    """The compose form's audience counted now: {"audience": "everyone" | "segment:NAME" |
    "members", "members": "1,2,3"} in JSON gives {"matching", "reachable", "under_cap",
    "texts"}; an audience that can't be counted is 422 naming it."""
    try:
        body = json.loads(await request.content.read(MAX_AUDIENCE_BODY + 1))
    except (ValueError, RecursionError):
        return web.json_response({"error": "the body must be JSON"}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("audience", EVERYONE), str):
        return web.json_response({"error": "audience must be text", "path": "audience"}, status=422)
    audience = body.get("audience", EVERYONE)[:200]
    try:
        check_text("audience", audience)
    except InvalidInput as refused:
        return web.json_response({"error": refused.reason, "path": "audience"}, status=422)
    chosen = _member_ids(str(body.get("members", ""))[:20_000])
    if chosen is None or len(chosen) > MAX_CHOSEN:
        return web.json_response({"error": "members must be ids", "path": "members"}, status=422)
    language = request[LANGUAGE]
    reach = await request.config_dict[DB].read(
        lambda session: _reach(
            session,
            _club(session, request[ADMIN].program_id),
            audience,
            chosen,
        )
    )
    if reach is None:
        return web.json_response({"error": "no such audience", "path": "audience"}, status=422)
    return web.json_response(
        {
            "matching": reach.matching,
            "reachable": reach.reachable,
            "under_cap": reach.under_cap,
            "texts": reach_texts(reach, language),
        }
    )


def _club(session: Session, program_id: int) -> Program:
    program = session.get(Program, program_id)
    assert program is not None  # the guard read the admin's club for this request
    return program


@routes.get(r"/campaigns/{id:\d+}")
@owner_only
async def show_campaign(request: web.Request) -> web.StreamResponse:
    campaign_id = path_id(request, "id")
    language = request[LANGUAGE]
    zone = ZoneInfo(request[ADMIN].timezone)
    now = utc_now()
    found = await _program(request, lambda s, p: _campaign_view(s, p, campaign_id, now, language))
    if found is None:
        raise web.HTTPNotFound()
    campaign: Campaign = found["campaign"]
    cancelled = request.query.get("cancelled", "")
    return page(
        request,
        "campaign.html",
        section="campaigns",
        campaign=campaign,
        when=_moment(campaign.send_at, zone, language),
        created=_moment(campaign.created_at, zone, language),
        finished=_moment(campaign.finished_at, zone, language),
        cancellable=_cancellable(campaign),
        cancelled=int(cancelled) if cancelled.isdigit() else None,
        recipients=[
            {
                "name": r.first_name or "–",
                "phone": r.phone or "–",
                "member_id": r.member_id,
                "status": r.status,
                "delivery": r.delivery,
            }
            for r in found["recipients"]
        ],
        **{key: value for key, value in found.items() if key not in ("campaign", "recipients")},
        money=functools.partial(money, currency=found["currency"], language=language),
        window_ends=_moment(found["result"].window_ends, zone, language)
        if found["result"]
        else None,
    )


def _campaign_view(
    session: Session, program: Program, campaign_id: int, now: dt.datetime, language: str
) -> dict[str, Any] | None:
    try:
        campaign = campaigns.get(session, program.id, campaign_id)
    except NotFound:
        return None
    if campaign.kind != campaigns.BROADCAST:
        return None
    segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
    template = (
        session.get(CouponTemplate, campaign.coupon_template_id)
        if campaign.coupon_template_id
        else None
    )
    result = None
    if campaign.send_at is not None:
        day = campaign.send_at.astimezone(ZoneInfo(program.timezone)).date()
        per = reports.period(program, day, day + dt.timedelta(days=1))
        result = next(
            (
                r
                for r in reports.campaign_results(session, program, per, now)
                if r.id == campaign.id
            ),
            None,
        )
    zone = ZoneInfo(program.timezone)
    rule = recurring.series_of(campaign)
    made = recurring.occurrences(session, campaign.id) if rule else []
    parent = session.get(Campaign, campaign.parent_id) if campaign.parent_id else None
    sale = recurring.sale_of(campaign)
    return {
        "campaign": campaign,
        # A series: its rule, its next occurrence and those made; an occurrence: its series.
        "rule": rule_text(rule, language) if rule else None,
        "next": _moment(
            recurring.next_moment(campaign, zone, now, made[0].occurrence if made else None),
            zone,
            language,
        ),
        "occurrences": [
            {
                "id": c.id,
                "status": c.status,
                "when": _moment(c.send_at, zone, language),
            }
            for c in made
        ],
        "series": {"id": parent.id, "name": parent.name} if parent is not None else None,
        "sale": sale_text(sale, zone, language) if sale else None,
        "audience": _audience(campaign, segment),
        "segment": segment.name if segment else None,
        "chosen": _chosen_count(campaign),
        "coupon": coupon_title(template, program.currency, language) if template else None,
        "outcome": campaigns.outcome(session, campaign.id),
        "result": result,
        "recipients": campaigns.recipients(session, program.id, campaign.id, RECIPIENTS_SHOWN),
        "currency": program.currency,
        "texts": [
            (lang, campaign.texts[lang]) for lang in LANGUAGES if lang in (campaign.texts or {})
        ],
    }


def _audience(campaign: Campaign, segment: Segment | None) -> str:
    if segment is not None:
        return "segment"
    if campaign.filter in (None, {"all": []}):
        return "everyone"
    if _chosen_count(campaign) is not None:
        return "members"
    return "deleted"


def _chosen_count(campaign: Campaign) -> int | None:
    leaf = campaign.filter or {}
    if leaf.get("field") == MEMBER_FIELD and isinstance(leaf.get("value"), list):
        return len(leaf["value"])
    return None


@routes.get(r"/campaigns/{id:\d+}/cancel")
@owner_only
async def confirm_cancel(request: web.Request) -> web.StreamResponse:
    campaign_id = path_id(request, "id")

    def read(session: Session, program: Program) -> Campaign | None:
        try:
            return campaigns.get(session, program.id, campaign_id)
        except NotFound:
            return None

    campaign = await _program(request, read)
    if campaign is None or campaign.kind != campaigns.BROADCAST:
        raise web.HTTPNotFound()
    if not _cancellable(campaign):
        raise web.HTTPSeeOther(f"/admin/campaigns/{campaign_id}")
    return page(request, "campaign_cancel.html", section="campaigns", campaign=campaign)


@routes.post(r"/campaigns/{id:\d+}/cancel")
@owner_only
async def cancel_campaign(request: web.Request) -> web.StreamResponse:
    """Cancel a broadcast: nothing more is planned and its queued messages are not sent."""
    campaign_id = path_id(request, "id")
    now = utc_now()

    def work(session: Session, program: Program) -> int | str | None:
        try:
            campaign = campaigns.get(session, program.id, campaign_id)
            if campaign.kind != campaigns.BROADCAST:
                return None
            return campaigns.cancel(session, program.id, campaign_id, now)
        except NotFound:
            return None
        except Conflict as exc:
            return exc.reason

    outcome = await _program(request, work)
    if outcome is None:
        raise web.HTTPNotFound()
    if isinstance(outcome, str):  # done or cancelled already: the page says which
        raise web.HTTPSeeOther(f"/admin/campaigns/{campaign_id}")
    raise web.HTTPSeeOther(f"/admin/campaigns/{campaign_id}?cancelled={outcome}")


@routes.post(r"/campaigns/{id:\d+}/pause")
@owner_only
async def pause_series(request: web.Request) -> web.StreamResponse:
    """Pause a series: no occurrence is made until it is resumed."""
    return await _move_series(request, recurring.pause)


@routes.post(r"/campaigns/{id:\d+}/resume")
@owner_only
async def resume_series(request: web.Request) -> web.StreamResponse:
    """Resume a paused series: occurrences from its next date on."""
    return await _move_series(request, recurring.resume)


async def _move_series(request: web.Request, move: Any) -> web.StreamResponse:
    campaign_id = path_id(request, "id")

    def work(session: Session, program: Program) -> bool:
        try:
            move(session, program.id, campaign_id)
        except NotFound:
            return False
        except Conflict:
            return True  # not a series, or cancelled: the page says what it is
        return True

    if not await _program(request, work):
        raise web.HTTPNotFound()
    raise web.HTTPSeeOther(f"/admin/campaigns/{campaign_id}")


def _cancellable(campaign: Campaign) -> bool:
    return campaign.status in (SERIES_CANCELLABLE if campaign.recurrence else CANCELLABLE)


# --- series and sales -------------------------------------------------------------------------


def rule_text(rule: recurring.Recurrence, language: str) -> str:
    """A series' rule in the admin's words: "every month on day 15 at 10:00"."""
    at = f"{rule.at:%H:%M}"
    if rule.every == recurring.YEAR:
        assert rule.month is not None
        day = dt.date(2024, rule.month, int(rule.day))  # a leap year: 29 Feb is a day too
        shown = babel_format_date(day, "d MMMM", locale=locales.babel_locale(language))
        return locales.text("admin.campaigns.repeat.year", language, date=shown, at=at)
    if rule.day == recurring.LAST:
        return locales.text("admin.campaigns.repeat.month_last", language, at=at)
    return locales.text("admin.campaigns.repeat.month", language, day=rule.day, at=at)


def sale_text(sale: recurring.BeforeSale, zone: ZoneInfo, language: str) -> str:
    """ "2 days before the sale on 20 Dec 2027 09:00" in the admin's words."""
    moment = _moment(sale.sale_starts_at, zone, language)
    if sale.hours and sale.days:
        return locales.text(
            "admin.campaigns.sale.before_both",
            language,
            days=sale.days,
            hours=sale.hours,
            moment=moment,
        )
    if sale.hours:
        return locales.text(
            "admin.campaigns.sale.before_hours", language, count=sale.hours, moment=moment
        )
    return locales.text("admin.campaigns.sale.before", language, count=sale.days, moment=moment)


def _timed_text(timing: _Timing, zone: ZoneInfo, language: str) -> str | None:
    if timing.rule is not None:
        return locales.text(
            "admin.campaigns.repeat.preview", language, rule=rule_text(timing.rule, language)
        )
    if timing.sale is not None:
        return sale_text(timing.sale, zone, language)
    return None


# --- helpers ----------------------------------------------------------------------------------


def _moment(moment: dt.datetime | None, zone: ZoneInfo, language: str) -> str | None:
    """A moment in the club's zone: its date as the language writes it, and the time."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite gives naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(zone)
    return f"{locales.format_date(local.date(), language)} {local:%H:%M}"
