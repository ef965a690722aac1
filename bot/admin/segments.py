"""Segments (owner only): the builder with its live count; save, rename, delete.

The builder is a server-rendered form: conditions (field, op, value) under ALL or ANY, each
with a NOT toggle, and groups of conditions one level deep. Without JavaScript its buttons post
the form and the page comes back with the count; segments.js serialises the same form to the
filter JSON (outreach.segments) and asks /admin/api/segments/count as it changes. Every rule of a
filter is store.outreach.segments': this module only turns the form into a filter and back."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any
from urllib.parse import quote

from aiohttp import web
from babel import Locale
from babel.numbers import get_currency_precision
from multidict import MultiDictProxy
from sqlalchemy.orm import Session

from bot.admin.amounts import money_text, parse_money
from bot.admin.auth import ADMIN, LANGUAGE, owner_only
from bot.admin.render import local_date, page, path_id
from bot.keys import DB
from locales import babel_locale, text
from store.clock import utc_now
from store.clubs import apikeys, programs
from store.errors import InvalidInput, NotFound
from store.loyalty import tiers
from store.models import ProfileQuestion, Program, Segment
from store.outreach import segments

routes = web.RouteTableDef()

# Counting the list's segments on the server stops after this long; the rest are counted by
# the page's script, one request each, so a big club's list still opens at once.
LIST_BUDGET_SECONDS = 1.5
MAX_BODY = 256 * 1024  # a filter of 50 conditions of 1,000 ids is about 350 kB at most in JSON
MAX_CONDITIONS = segments.MAX_LEAVES
COUNTRIES = ("NO", "SE", "DK", "FI", "IS", "DE", "GB", "PL", "LT", "US")
RANGE = "range"  # a whole number compared with gte, lte or between
MONEY = "money"  # like RANGE, written in the currency's major unit, kept in minor units
CHOICES = "choices"  # one or more of a known list
WORDS = "words"  # one or more free texts, comma-separated
IDS = "ids"  # member ids, comma-separated
YES_NO = "yes_no"  # consent is true|false
_PREFIX = re.compile(r"^c\d{1,4}(-\d{1,4})?$")
CHECKED_ACTIONS = ("save", "count")  # the form's submits: every condition is checked


# --- the fields the builder offers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One entry of the field select: a store field (an answer is one per question)."""

    key: str  # the select's value: the store field, or "answer:<question key>"
    label: str
    kind: str
    ops: tuple[str, ...]
    choices: tuple[Choice, ...] = ()
    days: bool = False  # takes "in the last N days"
    question: str | None = None
    suggestions: tuple[str, ...] = ()  # for WORDS: values the club uses

    @property
    def store_field(self) -> str:
        return "answer" if self.question else self.key


def field_specs(session: Session, program: Program, language: str) -> dict[str, FieldSpec]:
    """The builder's fields for the club, labelled in the admin's language: the club's tiers,
    its profile questions and their choices, and the stores its tills name."""
    specs = [
        *_profile_fields(program, language),
        *(
            _answer_field(question, language)
            for question in programs.questions(session, program.id)
            # Kept on the member: age and birthday_month ask about them.
            if question.kind not in ("first_name", "birthday")
        ),
        *_tier_fields(session, program, language),
        *_activity_fields(session, program, language),
    ]
    return {spec.key: spec for spec in specs}


_RANGES = ("gte", "lte", "between")


def _profile_fields(program: Program, language: str) -> list[FieldSpec]:
    """Consent, and what the member told about themselves: language, country, age, birthday."""
    locale = Locale.parse(babel_locale(language))
    return [
        FieldSpec(
            "consent",
            text("admin.segments.field.consent", language),
            YES_NO,
            ("is",),
            (
                Choice("true", text("admin.segments.yes_consent", language)),
                Choice("false", text("admin.segments.no_consent", language)),
            ),
        ),
        FieldSpec(
            "language",
            text("admin.segments.field.language", language),
            CHOICES,
            ("in",),
            tuple(
                Choice(code, str(locale.languages.get(code, code)).capitalize())
                for code in segments.LANGUAGES
            ),
        ),
        FieldSpec(
            "country",
            text("admin.segments.field.country", language),
            CHOICES,
            ("in",),
            tuple(
                Choice(code, str(locale.territories.get(code, code)))
                for code in sorted(COUNTRIES, key=lambda c: c != program.country)
            ),
        ),
        FieldSpec("age", text("admin.segments.field.age", language), RANGE, _RANGES),
        FieldSpec(
            "birthday_month",
            text("admin.segments.field.birthday_month", language),
            CHOICES,
            ("in",),
            tuple(
                Choice(str(m), str(locale.months["stand-alone"]["wide"][m]).capitalize())
                for m in range(1, 13)
            ),
        ),
    ]


def _answer_field(question: ProfileQuestion, language: str) -> FieldSpec:
    """The answers to one of the club's profile questions: chosen, or answered at all."""
    prompt = question.prompt or {}
    label = str(prompt.get(language) or prompt.get("en") or question.key)
    choices = tuple(
        Choice(str(c["key"]), str((c.get("label") or {}).get(language) or c["key"]))
        for c in question.choices or ()
    )
    return FieldSpec(
        f"answer:{question.key}",
        text("admin.segments.field.answer", language, question=label),
        CHOICES,
        ("answered",) if question.kind == "text" else ("in", "answered"),
        choices,
        question=question.key,
    )


def _tier_fields(session: Session, program: Program, language: str) -> list[FieldSpec]:
    """The tier field, for a club that has a ladder of tiers."""
    ladder = tiers.ladder(session, program.id)
    if not ladder:
        return []
    return [
        FieldSpec(
            "tier",
            text("admin.segments.field.tier", language),
            CHOICES,
            ("in",),
            tuple(Choice(str(tier.position), tiers.name(tier, language)) for tier in ladder),
        )
    ]


def _activity_fields(session: Session, program: Program, language: str) -> list[FieldSpec]:
    """What members did: where and what they bought, their points, when they joined."""

    def t(message_id: str, **params: object) -> str:
        return text(message_id, language, **params)

    stores = sorted({k.store for k in apikeys.of_club(session, program.id) if k.store})
    return [
        FieldSpec(
            "store", t("admin.segments.field.store"), WORDS, ("in",), suggestions=tuple(stores)
        ),
        FieldSpec("points", t("admin.segments.field.points"), RANGE, _RANGES),
        FieldSpec(
            "purchase_count", t("admin.segments.field.purchase_count"), RANGE, _RANGES, days=True
        ),
        FieldSpec(
            "purchase_amount",
            t("admin.segments.field.purchase_amount", currency=program.currency),
            MONEY,
            _RANGES,
            days=True,
        ),
        FieldSpec(
            "days_since_purchase", t("admin.segments.field.days_since_purchase"), RANGE, _RANGES
        ),
        FieldSpec("category", t("admin.segments.field.category"), WORDS, ("in",), days=True),
        FieldSpec("joined_days", t("admin.segments.field.joined_days"), RANGE, _RANGES),
        FieldSpec("member", t("admin.segments.field.member"), IDS, ("in",)),
    ]


# --- the form ---------------------------------------------------------------------------------


@dataclass
class Condition:
    """One row of the builder as the form shows it (values as typed)."""

    prefix: str
    field: str = "consent"
    op: str = "is"
    values: list[str] = default(default_factory=list)  # CHOICES, YES_NO: the ones ticked
    value: str = ""  # RANGE/MONEY (low, or the one bound), WORDS/IDS: comma-separated
    high: str = ""  # between's upper bound
    days: str = ""
    negate: bool = False
    error: str | None = None  # a catalog id
    detail: str | None = None  # the store's words, when it refused the filter

    @property
    def untouched(self) -> bool:
        """Nothing chosen or typed in it yet (as a condition just added is)."""
        return not (self.values or self.value.strip() or self.high.strip() or self.days.strip())


@dataclass
class Group:
    prefix: str
    mode: str = "any"
    negate: bool = False
    conditions: list[Condition] = default(default_factory=list)
    error: str | None = None
    detail: str | None = None


@dataclass
class Builder:
    """The whole form: what it shows, the filter it means, and where each part came from."""

    mode: str = "all"
    items: list[Condition | Group] = default(default_factory=list)
    name: str = ""
    name_error: str | None = None
    name_detail: str | None = None
    form_error: str | None = None
    form_detail: str | None = None

    def rows(self) -> list[Condition | Group]:
        found: list[Condition | Group] = []
        for item in self.items:
            found.append(item)
            if isinstance(item, Group):
                found.extend(item.conditions)
        return found

    def next_prefix(self, group: Group | None = None) -> str:
        if group is None:
            used = [int(i.prefix[1:]) for i in self.items]
            return f"c{max(used, default=-1) + 1}"
        inner = [int(c.prefix.split("-")[1]) for c in group.conditions]
        return f"{group.prefix}-{max(inner, default=-1) + 1}"


class FormError(Exception):
    """A condition the form can't turn into a filter (a value that is not a number, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read_form(form: MultiDictProxy[Any], specs: Mapping[str, FieldSpec]) -> Builder:
    """The builder as posted: conditions and groups in the order of the page."""
    builder = Builder(mode=_mode(form.get("mode"), "all"), name=str(form.get("name", ""))[:200])
    groups: dict[str, Group] = {}
    seen: set[str] = set()
    for key in form:
        if not key.endswith(".kind"):
            continue
        prefix = key[: -len(".kind")]
        if prefix in seen or not _PREFIX.match(prefix):
            continue
        seen.add(prefix)
        negate = form.get(f"{prefix}.not") == "1"
        if form.get(key) == "group" and "-" not in prefix:
            group = Group(prefix, _mode(form.get(f"{prefix}.mode"), "any"), negate)
            groups[prefix] = group
            builder.items.append(group)
            continue
        condition = _read_condition(form, prefix, specs, negate)
        parent = prefix.split("-")[0] if "-" in prefix else None
        if parent is None:
            builder.items.append(condition)
        elif parent in groups:
            groups[parent].conditions.append(condition)
    return builder


def _mode(value: Any, default: str) -> str:
    return value if value in ("all", "any") else default


def _read_condition(
    form: MultiDictProxy[Any], prefix: str, specs: Mapping[str, FieldSpec], negate: bool
) -> Condition:
    chosen = str(form.get(f"{prefix}.field", ""))
    spec = specs.get(chosen) or next(iter(specs.values()))
    op = str(form.get(f"{prefix}.op", ""))
    # The inputs were drawn for the field the page showed: after a change of field (without
    # the script) they are the old field's, and the condition starts blank.
    shown = form.get(f"{prefix}.shown")
    same = shown is None or shown == spec.key
    condition = Condition(
        prefix=prefix,
        field=spec.key,
        op=op if op in spec.ops and same else spec.ops[0],
        negate=negate,
    )
    if same:
        condition.values = [str(v)[:100] for v in form.getall(f"{prefix}.value", [])][:200]
        condition.value = str(form.get(f"{prefix}.value", ""))[:20_000]
        condition.high = str(form.get(f"{prefix}.high", ""))[:40]
        condition.days = str(form.get(f"{prefix}.days", ""))[:40]
    return condition


def blank(spec: FieldSpec, prefix: str = "__P__") -> Condition:
    return Condition(prefix=prefix, field=spec.key, op=spec.ops[0])


@dataclass
class Meaning:
    """The filter a builder means, and the form part each path of it came from."""

    filter: dict[str, Any]
    places: dict[str, Condition | Group]


def to_filter(builder: Builder, specs: Mapping[str, FieldSpec], currency: str) -> Meaning:
    """The filter JSON of the form (as segments.js builds it); FormError on the first
    condition that can't be read, marked on it."""
    places: dict[str, Condition | Group] = {}
    children: list[dict[str, Any]] = []
    for item in builder.items:
        path = f"{builder.mode}[{len(children)}]"
        if isinstance(item, Group):
            inner: list[dict[str, Any]] = []
            places[path] = item
            base = f"{path}.not" if item.negate else path
            for condition in item.conditions:
                at = f"{base}.{item.mode}[{len(inner)}]"
                inner.append(_leaf_of(condition, at, specs, currency, places))
            node: dict[str, Any] = {item.mode: inner}
            children.append({"not": node} if item.negate else node)
        else:
            children.append(_leaf_of(item, path, specs, currency, places))
    return Meaning({builder.mode: children}, places)


def _leaf_of(
    condition: Condition,
    path: str,
    specs: Mapping[str, FieldSpec],
    currency: str,
    places: dict[str, Condition | Group],
) -> dict[str, Any]:
    places[path] = condition
    if condition.negate:
        places[f"{path}.not"] = condition
    spec = specs[condition.field]
    try:
        leaf = _leaf_value(condition, spec, currency)
    except FormError as exc:
        condition.error = exc.message
        raise
    return {"not": leaf} if condition.negate else leaf


def _leaf_value(condition: Condition, spec: FieldSpec, currency: str) -> dict[str, Any]:
    leaf: dict[str, Any] = {"field": spec.store_field, "op": condition.op}
    if spec.question:
        leaf["question"] = spec.question
    op = condition.op
    if op == "answered" or spec.kind == YES_NO:
        if condition.values[:1] not in (["true"], ["false"]):
            raise FormError("admin.segments.error.choose")
        leaf["value"] = condition.values[0] == "true"
    elif spec.kind == CHOICES:
        if not condition.values:
            raise FormError("admin.segments.error.choose")
        numeric = spec.key in ("birthday_month", "tier")
        leaf["value"] = [_whole(v) if numeric else v for v in condition.values if v]
    elif spec.kind in (WORDS, IDS):
        words = [w.strip() for w in condition.value.split(",") if w.strip()]
        if not words:
            raise FormError("admin.segments.error.words")
        leaf["value"] = [_whole(w) for w in words] if spec.kind == IDS else words
    else:
        decimals = get_currency_precision(currency) if spec.kind == MONEY else None
        low = _number(condition.value, decimals)
        if op == "between":
            high = _number(condition.high, decimals)
            if low > high:
                raise FormError("admin.segments.error.order")
            leaf["value"] = [low, high]
        else:
            leaf["value"] = low
    if spec.days and condition.days.strip():
        leaf["days"] = _whole(condition.days)
    return leaf


def _whole(value: str) -> int:
    value = value.strip().replace(" ", "").replace("\u00a0", "")
    if not re.fullmatch(r"-?\d{1,19}", value):
        raise FormError("admin.segments.error.number")
    return int(value)


def _number(value: str, decimals: int | None) -> int:
    """A whole number (decimals None), or an amount in major units ("149,50") as minor units."""
    if decimals is None:
        return _whole(value)
    amount = parse_money(value, decimals)
    if amount is None:
        raise FormError("admin.segments.error.number")
    return amount


def mark(builder: Builder, meaning: Meaning, refused: InvalidInput) -> None:
    """Put the store's refusal next to the part of the form it names: the one whose path is
    the longest start of the refusal's path."""
    path = refused.field
    within = [at for at in meaning.places if path == at or path.startswith((f"{at}.", f"{at}["))]
    if not within:
        builder.form_error, builder.form_detail = "admin.segments.error.filter", refused.reason
        return
    place = meaning.places[max(within, key=len)]
    place.error, place.detail = "admin.segments.error.filter", refused.reason


def from_filter(
    filter: Mapping[str, Any], specs: Mapping[str, FieldSpec], currency: str, language: str
) -> Builder | None:
    """The builder showing a saved filter, or None for one it can't show (made elsewhere
    with deeper nesting: the page then shows it as JSON)."""
    node: Mapping[str, Any] = filter
    if "field" in node or "not" in node:
        node = {"all": [node]}
    mode = "all" if "all" in node else "any" if "any" in node else None
    if mode is None:
        return None
    builder = Builder(mode=mode)
    for i, child in enumerate(node[mode]):
        negate, inner = _unwrap(child)
        if "field" in inner:
            condition = _condition_of(inner, f"c{i}", negate, specs, currency, language)
            if condition is None:
                return None
            builder.items.append(condition)
            continue
        group_mode = "all" if "all" in inner else "any" if "any" in inner else None
        if group_mode is None:
            return None
        group = Group(f"c{i}", group_mode, negate)
        for j, grandchild in enumerate(inner[group_mode]):
            leaf_negate, leaf = _unwrap(grandchild)
            condition = (
                _condition_of(leaf, f"c{i}-{j}", leaf_negate, specs, currency, language)
                if "field" in leaf
                else None
            )
            if condition is None:
                return None
            group.conditions.append(condition)
        builder.items.append(group)
    return builder


def _unwrap(node: Mapping[str, Any]) -> tuple[bool, Mapping[str, Any]]:
    negate = False
    while "not" in node:
        negate, node = not negate, node["not"]
    return negate, node


def _condition_of(
    leaf: Mapping[str, Any],
    prefix: str,
    negate: bool,
    specs: Mapping[str, FieldSpec],
    currency: str,
    language: str,
) -> Condition | None:
    key = f"answer:{leaf.get('question')}" if leaf["field"] == "answer" else leaf["field"]
    spec = specs.get(key)
    if spec is None or leaf["op"] not in spec.ops:
        return None
    condition = Condition(prefix=prefix, field=key, op=leaf["op"], negate=negate)
    value = leaf["value"]
    if isinstance(value, bool):
        condition.values = ["true" if value else "false"]
    elif spec.kind == CHOICES:
        condition.values = [str(v) for v in value]
    elif spec.kind in (WORDS, IDS):
        condition.value = ", ".join(str(v) for v in value)
    else:
        precision = get_currency_precision(currency)

        def shown(n: int) -> str:
            # An amount as the settings page writes it back ("149,50" in nb and sv).
            return money_text(n, precision, language) if spec.kind == MONEY else str(n)

        if leaf["op"] == "between":
            condition.value, condition.high = shown(value[0]), shown(value[1])
        else:
            condition.value = shown(value)
    if "days" in leaf:
        condition.days = str(leaf["days"])
    return condition


def apply_action(builder: Builder, action: str, specs: Mapping[str, FieldSpec]) -> None:
    """A button of the form without the script: add a condition or a group, remove one."""
    first = next(iter(specs.values()))
    rows = len([r for r in builder.rows() if isinstance(r, Condition)])
    if action == "add" and rows < MAX_CONDITIONS:
        builder.items.append(blank(first, builder.next_prefix()))
    elif action == "add_group" and rows < MAX_CONDITIONS:
        group = Group(builder.next_prefix())
        group.conditions.append(blank(first, f"{group.prefix}-0"))
        builder.items.append(group)
    elif action.startswith("add:"):
        for item in builder.items:
            if isinstance(item, Group) and item.prefix == action[4:] and rows < MAX_CONDITIONS:
                item.conditions.append(blank(first, builder.next_prefix(item)))
    elif action.startswith("remove:"):
        prefix = action[7:]
        builder.items = [i for i in builder.items if i.prefix != prefix]
        for item in builder.items:
            if isinstance(item, Group):
                item.conditions = [c for c in item.conditions if c.prefix != prefix]


# --- pages ------------------------------------------------------------------------------------


def _program(session: Session, program_id: int) -> Program:
    program = programs.get(session, program_id)
    if program is None:  # the guard loaded it for this request
        raise web.HTTPNotFound()
    return program


@routes.get("/segments")
@owner_only
async def segment_list(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    now = utc_now()

    def read(session: Session) -> list[dict[str, Any]]:
        program = _program(session, admin.program_id)
        shown: list[dict[str, Any]] = []
        started = time.monotonic()
        for segment in segments.all_of(session, admin.program_id):
            counted: int | None = None
            if time.monotonic() - started < LIST_BUDGET_SECONDS:
                counted = segments.count(session, program, segment.filter, now)
            shown.append(
                {
                    "id": segment.id,
                    "name": segment.name,
                    "count": counted,
                    "updated": segment.updated_at,
                    "campaigns": len(segments.campaigns_using(session, segment)),
                }
            )
        return shown

    listed = await request.config_dict[DB].read(read)
    for row in listed:
        row["updated"] = local_date(request, row["updated"])
    return page(
        request,
        "segments.html",
        section="segments",
        segments=listed,
        done=request.query.get("done", "") if request.query.get("done") in _DONE else "",
        done_name=request.query.get("name", "")[: segments.MAX_NAME],
    )


_DONE = ("saved", "renamed", "deleted")


@routes.get("/segments/new")
@owner_only
async def new_segment(request: web.Request) -> web.StreamResponse:
    return await _show_builder(request, None, None)


@routes.get(r"/segments/{segment_id:\d+}/edit")
@owner_only
async def edit_segment(request: web.Request) -> web.StreamResponse:
    return await _show_builder(request, path_id(request, "segment_id"), None)


@routes.post("/segments/new")
@owner_only
async def post_new_segment(request: web.Request) -> web.StreamResponse:
    return await _show_builder(request, None, await request.post())


@routes.post(r"/segments/{segment_id:\d+}/edit")
@owner_only
async def post_edit_segment(request: web.Request) -> web.StreamResponse:
    return await _show_builder(request, path_id(request, "segment_id"), await request.post())


async def _show_builder(
    request: web.Request, segment_id: int | None, form: MultiDictProxy[Any] | None
) -> web.StreamResponse:
    """The builder: a new segment or a saved one, as saved (GET) or as posted (an action
    of the form: count, save, add or remove a condition)."""
    admin = request[ADMIN]
    language = request[LANGUAGE]
    now = utc_now()
    action = str(form.get("action", "count")) if form is not None else "count"

    def work(session: Session) -> dict[str, Any]:
        program = _program(session, admin.program_id)
        specs = field_specs(session, program, language)
        saved: Segment | None = None
        if segment_id is not None:
            try:
                saved = segments.get_by_id(session, admin.program_id, segment_id)
            except NotFound:
                raise web.HTTPNotFound() from None
        builder, raw = _builder_for(form, action, saved, specs, program.currency, language)
        result: dict[str, Any] = {
            "builder": builder,
            "specs": specs,
            "raw": raw,
            "scale": 10 ** get_currency_precision(program.currency),
        }
        result["saved"] = {"id": saved.id, "name": saved.name} if saved is not None else None
        result["count"] = None
        if raw is not None and saved is not None:
            result["count"] = segments.count(session, program, saved.filter, now)
            return result
        try:
            meaning = to_filter(builder, specs, program.currency)
        except FormError:
            if action not in CHECKED_ACTIONS:
                # Adding or removing a condition checks none that is still untouched: one
                # just added is not in error before anything was chosen in it.
                for row in builder.rows():
                    if isinstance(row, Condition) and row.untouched:
                        row.error = None
            return result
        try:
            normal = segments.check(session, admin.program_id, meaning.filter)
        except InvalidInput as refused:
            mark(builder, meaning, refused)
            return result
        result["count"] = segments.count(session, program, normal, now)
        if action == "save":
            result["saved_as"] = _save(session, program, saved, builder, normal, now)
        return result

    shown = await request.config_dict[DB].run(work)
    if shown.get("saved_as"):
        raise web.HTTPSeeOther(f"/admin/segments?done=saved&name={_quote(shown['saved_as'])}")
    builder: Builder = shown["builder"]
    failed = any(r.error for r in builder.rows()) or builder.form_error or builder.name_error
    status = 422 if form is not None and failed and action in CHECKED_ACTIONS else 200
    return page(
        request,
        "segment_builder.html",
        status=status,
        section="segments",
        builder=builder,
        specs=shown["specs"],
        raw=shown["raw"],
        saved=shown["saved"],
        count=shown["count"],
        scale=shown["scale"],
        blank=blank,
        blank_group=lambda prefix, spec: Group(prefix, conditions=[blank(spec, f"{prefix}-0")]),
    )


def _builder_for(
    form: MultiDictProxy[Any] | None,
    action: str,
    saved: Segment | None,
    specs: dict[str, FieldSpec],
    currency: str,
    language: str,
) -> tuple[Builder, str | None]:
    """The builder as posted (the form's action applied), as saved, or new; with the saved
    filter as JSON when the builder can't show it (the raw view), else None."""
    if form is not None:
        builder = read_form(form, specs)
        apply_action(builder, action, specs)
        return builder, None
    if saved is None:
        return Builder(), None
    shown = from_filter(saved.filter, specs, currency, language)
    raw = None if shown is not None else json.dumps(saved.filter, indent=2, ensure_ascii=False)
    builder = shown or Builder()
    builder.name = saved.name
    return builder, raw


def _save(
    session: Session,
    program: Program,
    saved: Segment | None,
    builder: Builder,
    normal: dict[str, Any],
    now: dt.datetime,
) -> str | None:
    """Save the builder's filter under its name (a new name is unique in the club; an edited
    segment may be renamed as it is saved); the name saved, or None with the error marked."""
    name = builder.name.strip()
    if _taken(session, program.id, name, saved.id if saved else None):
        builder.name_error = "admin.segments.error.name_taken"
        return None
    try:
        if saved is not None and name != saved.name:
            segments.rename(session, program.id, saved.name, name)
        segment = segments.save(session, program, name, normal, now)
    except InvalidInput as refused:
        builder.name_error, builder.name_detail = "admin.segments.error.name", refused.reason
        return None
    return segment.name


def _taken(session: Session, program_id: int, name: str, own: int | None) -> bool:
    """Another segment of the club has the name (names are unique per club)."""
    if not name:
        return False
    try:
        other = segments.get(session, program_id, name)
    except NotFound:
        return False
    return other.id != own


def _quote(name: str) -> str:
    return quote(name, safe="")


async def _segment_of(request: web.Request) -> dict[str, Any]:
    admin = request[ADMIN]
    segment_id = path_id(request, "segment_id")

    def read(session: Session) -> dict[str, Any]:
        try:
            segment = segments.get_by_id(session, admin.program_id, segment_id)
        except NotFound:
            raise web.HTTPNotFound() from None
        return {
            "id": segment.id,
            "name": segment.name,
            "campaigns": [
                {"id": c.id, "name": c.name, "send_at": c.send_at}
                for c in segments.campaigns_using(session, segment)
            ],
        }

    return await request.config_dict[DB].run(read)


@routes.get(r"/segments/{segment_id:\d+}/rename")
@owner_only
async def rename_page(request: web.Request) -> web.StreamResponse:
    segment = await _segment_of(request)
    return page(
        request,
        "segment_rename.html",
        section="segments",
        segment=segment,
        name=segment["name"],
        error=None,
        detail=None,
    )


@routes.post(r"/segments/{segment_id:\d+}/rename")
@owner_only
async def rename(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    segment = await _segment_of(request)
    form = await request.post()
    name = str(form.get("name", ""))[:200]

    def work(session: Session) -> str:
        if _taken(session, admin.program_id, name.strip(), segment["id"]):
            raise InvalidInput("name", "taken")
        return segments.rename(session, admin.program_id, segment["name"], name).name

    try:
        renamed = await request.config_dict[DB].run(work)
    except InvalidInput as refused:
        taken = refused.reason == "taken"
        return page(
            request,
            "segment_rename.html",
            status=422,
            section="segments",
            segment=segment,
            name=name,
            error="admin.segments.error.name_taken" if taken else "admin.segments.error.name",
            detail=None if taken else refused.reason,
        )
    raise web.HTTPSeeOther(f"/admin/segments?done=renamed&name={_quote(renamed)}")


@routes.get(r"/segments/{segment_id:\d+}/delete")
@owner_only
async def delete_page(request: web.Request) -> web.StreamResponse:
    segment = await _segment_of(request)
    for campaign in segment["campaigns"]:
        campaign["send_at"] = local_date(request, campaign["send_at"])
    return page(request, "segment_delete.html", section="segments", segment=segment)


@routes.post(r"/segments/{segment_id:\d+}/delete")
@owner_only
async def delete(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    segment = await _segment_of(request)
    await request.config_dict[DB].run(
        lambda session: segments.delete(session, admin.program_id, segment["name"])
    )
    raise web.HTTPSeeOther(f"/admin/segments?done=deleted&name={_quote(segment['name'])}")


# --- the API the pages' script asks -----------------------------------------------------------


@routes.post("/api/segments/count")
@owner_only
async def count_api(request: web.Request) -> web.StreamResponse:
    """How many members a filter (the body, as JSON) selects now: {"count": n}; a filter the
    store refuses gets 422 {"error": why, "path": where}."""
    admin = request[ADMIN]
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response({"error": "the filter is too long"}, status=413)
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return web.json_response({"error": "the filter is too long"}, status=413)
    try:
        filter = json.loads(body)
    except (ValueError, RecursionError):
        # UnicodeDecodeError is a ValueError; a body nested past Python's stack is refused too.
        return web.json_response({"error": "the body must be a filter in JSON"}, status=400)
    now = utc_now()

    def work(session: Session) -> int:
        program = _program(session, admin.program_id)
        return segments.count(session, program, segments.check(session, program.id, filter), now)

    try:
        counted = await request.config_dict[DB].read(work)
    except InvalidInput as refused:
        return web.json_response({"error": refused.reason, "path": refused.field}, status=422)
    return _counted(request, counted)


@routes.get(r"/api/segments/{segment_id:\d+}/count")
@owner_only
async def saved_count_api(request: web.Request) -> web.StreamResponse:
    """How many members a saved segment selects now (the list's counts a big club leaves to
    the script)."""
    admin = request[ADMIN]
    segment_id = path_id(request, "segment_id")
    now = utc_now()

    def work(session: Session) -> int:
        program = _program(session, admin.program_id)
        try:
            segment = segments.get_by_id(session, admin.program_id, segment_id)
        except NotFound:
            raise web.HTTPNotFound(text="no such segment") from None
        return segments.count(session, program, segment.filter, now)

    return _counted(request, await request.config_dict[DB].read(work))


def _counted(request: web.Request, counted: int) -> web.Response:
    """{"count": n, "text": "n members"}: the text in the page's language, for its script."""
    words = text("admin.segments.count", request[LANGUAGE], count=counted)
    return web.json_response({"count": counted, "text": words})
