"""Automated journeys: triggers evaluated by the scheduler, each message once per occasion.

A journey is a `Campaign` of kind "journey", one per (club, trigger). Planning a journey writes
outbox rows for the members its trigger selects, with the same guard rails and control group as
a broadcast (store.outreach.campaigns): one INSERT ... SELECT per trigger and chunk of members. The
occasion on each row (a birthday's year, a purchase, a tier) makes the outbox's unique
(campaign, member, occasion) key say "once": planning again, or an hour later, writes nothing
new. Each trigger looks back a few days, so a scheduler that was down catches up instead of
missing the moment.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    FromClause,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

import locales
from store import states
from store.clubs import programs
from store.errors import Conflict, InvalidInput, NotFound
from store.loyalty import coupons, ledger, tiers
from store.members import consent
from store.models import (
    Campaign,
    Coupon,
    CouponTemplate,
    LedgerEntry,
    Member,
    OutboxMessage,
    PointLot,
    Program,
    Purchase,
    PurchaseLine,
    Tier,
    UTCDateTime,
)
from store.outreach import campaigns, clicks, guard_rails
from store.states import OutboxStatus

WELCOME, BIRTHDAY, EXPIRING, BALANCE = "welcome", "birthday", "expiring", "balance"
AFTER_PURCHASE, WINBACK, NEAR_TIER, TIER_REACHED = (
    "after_purchase",
    "winback",
    "near_tier",
    "tier_reached",
)
COMING_REWARD, MEMBER_DAY, GIFT_RECEIVED = "coming_reward", "member_day", "gift_received"
CROSS_SELL = "cross_sell"
# A club has one journey per trigger (campaigns' unique (program_id, trigger)), so the three
# kinds of milestone are three triggers, each with its own `at`: one milestone of each kind.
MILESTONE_POINTS, MILESTONE_PURCHASES, MILESTONE_MONTHS = (
    "milestone_points",
    "milestone_purchases",
    "milestone_months",
)
MILESTONES = (MILESTONE_POINTS, MILESTONE_PURCHASES, MILESTONE_MONTHS)
# Also the order they are planned in: when the cap leaves room for only some of a member's
# journeys on one day, the ones tied to a moment (joining, a birthday, points about to go)
# come first, and the ones that can wait for next month last.
TRIGGERS: tuple[str, ...] = (
    WELCOME,
    BIRTHDAY,
    GIFT_RECEIVED,
    MEMBER_DAY,
    EXPIRING,
    TIER_REACHED,
    MILESTONE_POINTS,
    MILESTONE_PURCHASES,
    MILESTONE_MONTHS,
    NEAR_TIER,
    COMING_REWARD,
    BALANCE,
    CROSS_SELL,
    AFTER_PURCHASE,
    WINBACK,
)
# Each trigger's parameters (settings override them). None: worked out when planning
# (balance: the cheapest active reward's cost, else FALLBACK_THRESHOLD; near_tier: within
# NEAR_PERCENT % of the next tier's threshold).
DEFAULTS: dict[str, dict[str, int | None]] = {
    WELCOME: {"delay_hours": 24, "lookback_days": 3},
    BIRTHDAY: {},
    EXPIRING: {"days": 30},
    TIER_REACHED: {"lookback_days": 3},
    NEAR_TIER: {"within": None},
    BALANCE: {"threshold": None},
    AFTER_PURCHASE: {"days": 7, "lookback_days": 3},
    WINBACK: {"days": 180, "lookback_days": 30},
    # Within `points` of the nearest reward above the balance.
    COMING_REWARD: {"points": 100},
    # A milestone reached at most `lookback_days` ago: one switched on later is not news
    # to every member who passed it years before.
    MILESTONE_POINTS: {"at": 10_000, "lookback_days": 30},
    MILESTONE_PURCHASES: {"at": 10, "lookback_days": 30},
    MILESTONE_MONTHS: {"at": 12, "lookback_days": 7},
    MEMBER_DAY: {},
    GIFT_RECEIVED: {"lookback_days": 3},
    # `delay_days` after a purchase, catching up `lookback_days` late (switched on, it tells
    # the last week's buyers, not the year's). The owner's text per category is the setting
    # CATEGORIES, kept beside these (not a number: see _check_categories).
    CROSS_SELL: {"delay_days": 3, "lookback_days": 7},
}
# Cross-sell's texts per category: {"categories": {"sko": {"nb": "...", "en": "..."}}}.
CATEGORIES = "categories"
MAX_CATEGORIES = 50
MAX_CATEGORY = 60  # purchase_lines.category
# A made-up purchase line's category for a club without texts of its own (sample_text).
SAMPLE_CATEGORY = "journey.cross_sell.sample"
# The range each setting may take.
LIMITS: dict[str, tuple[int, int]] = {
    "delay_hours": (0, 24 * 30),
    "lookback_days": (1, 365),
    "days": (1, 730),
    "within": (1, 10_000_000),
    "threshold": (1, 10_000_000),
    "points": (1, 10_000_000),
    "at": (1, 10_000_000),
    "delay_days": (0, 90),
}
# A trigger's own range for a setting, where LIMITS' would not do: a milestone is at least 2
# (the catalog's wording counts in the plural), and months stop at a hundred years.
TRIGGER_LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    MILESTONE_POINTS: {"at": (2, 10_000_000)},
    MILESTONE_PURCHASES: {"at": (2, 100_000)},
    MILESTONE_MONTHS: {"at": (2, 1200)},
}
FALLBACK_THRESHOLD = 1000
NEAR_PERCENT = 20
# `update`'s coupon that takes the journey's coupon away (None leaves it as it is).
NO_COUPON = ""
# A made-up member for showing what a journey sends (sample_text).
SAMPLE_NAMES = {"nb": "Kari", "sv": "Karin", "en": "Kate"}
SAMPLE_POINTS = 1250
SAMPLE_EXPIRING = 350
SAMPLE_TO_NEXT = 150
SAMPLE_CODE = "ABCD-2345"
SAMPLE_YEARS = 3
SAMPLE_VALID_DAYS = 30
# The placeholders a trigger adds to a broadcast's (store.outreach.campaigns.PLACEHOLDERS).
EXTRA_PLACEHOLDERS: dict[str, frozenset[str]] = {
    EXPIRING: frozenset({"expiring_points", "expiry_date"}),
    NEAR_TIER: frozenset({"points_to_next", "next_tier"}),
    COMING_REWARD: frozenset({"reward", "points_to_reward"}),
    MILESTONE_POINTS: frozenset({"milestone"}),
    MILESTONE_PURCHASES: frozenset({"milestone"}),
    MILESTONE_MONTHS: frozenset({"milestone"}),
    MEMBER_DAY: frozenset({"years"}),
    GIFT_RECEIVED: frozenset({"gift", "gift_code", "gift_until"}),
    CROSS_SELL: frozenset({"category"}),
}
# Members per planning chunk (a transaction each when the job plans): on SQLite the chunk
# holds the only writer, and a member's text waits behind it (PERFORMANCE.md).
PLAN_CHUNK = campaigns.PLAN_CHUNK
# How far one call looks for the club's next member (in chunks) before it hands back.
SKIP_CHUNKS = 20

_MEMBERS = Member.__table__
_OUTBOX = OutboxMessage.__table__
_LOTS = PointLot.__table__
_ENTRIES = LedgerEntry.__table__
_PURCHASES = Purchase.__table__
_TIERS = Tier.__table__
_COUPONS = Coupon.__table__
_LINES = PurchaseLine.__table__
_INSTANT = UTCDateTime()


# --- setting journeys up ----------------------------------------------------------------------


def create(
    session: Session,
    program: Program,
    *,
    trigger: str,
    now: dt.datetime,
    texts: Mapping[str, str] | None = None,
    coupon: str | None = None,
    settings: Mapping[str, Any] | None = None,
    control_percent: int = 0,
    active: bool = True,
) -> Campaign:
    """The club's journey for a trigger. Without texts it speaks the catalog's wording
    (`journey.<trigger>`). Raises InvalidInput naming the field, NotFound for the coupon
    template, Conflict if the club already has a journey for the trigger."""
    if trigger not in TRIGGERS:
        raise InvalidInput("trigger", f"must be one of {', '.join(TRIGGERS)}")
    checked = (
        campaigns.check_texts(
            texts, campaigns.PLACEHOLDERS | EXTRA_PLACEHOLDERS.get(trigger, frozenset())
        )
        if texts is not None
        else None
    )
    parameters = _check_settings(trigger, settings or {})
    _check_control(control_percent)
    template = campaigns.coupon_for(session, program.id, coupon, checked)
    if _journey(session, program.id, trigger) is not None:
        raise Conflict("journey_exists", f"the club already has a {trigger} journey")
    journey = Campaign(
        program_id=program.id,
        name=trigger,
        kind=campaigns.JOURNEY,
        trigger=trigger,
        settings=parameters or None,
        texts=checked,
        filter=None,
        coupon_template_id=template.id if template else None,
        control_percent=control_percent,
        status=campaigns.ACTIVE if active else campaigns.PAUSED,
        send_at=None,
        planned_through=0,
        created_at=now,
    )
    session.add(journey)
    session.flush()
    return journey


def set_active(session: Session, program_id: int, trigger: str, active: bool) -> Campaign:
    """Resume or pause a journey. Paused, it plans nothing, and what it had planned and not
    yet sent is skipped by the sender."""
    journey = _journey(session, program_id, trigger)
    if journey is None:
        raise NotFound("journey", trigger)
    new = campaigns.ACTIVE if active else campaigns.PAUSED
    journey.status = states.move("journey", journey.status, new, what=journey.id)
    return journey


def update(
    session: Session,
    program: Program,
    trigger: str,
    *,
    now: dt.datetime,
    active: bool | None = None,
    texts: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    coupon: str | None = None,
    control_percent: int | None = None,
) -> Campaign:
    """Change the club's journey for a trigger, setting it up (off) first if it has none.

    `active` None leaves it as it is. `texts` are the club's own wording per language, and
    only what the owner wrote is kept: a language left empty (or given the catalog's wording
    as it reads now) speaks the catalog's wording when the message is written (`text_for`),
    so a later change to the catalog reaches it. `settings` replace the journey's own (a key
    left out, or None, takes the trigger's default). `coupon` None leaves the journey's coupon
    as it is, NO_COUPON takes it away, a template key gives that active template's coupon
    (the key of the template it gives already keeps it, even if deactivated since).
    `control_percent` None leaves the control group as it is.

    Raises InvalidInput naming the field (texts.<language>, settings.<key>, control, and
    texts with code coupon_needed for {coupon_code} without a coupon), NotFound for a coupon
    key the club has no active template of; nothing changes then."""
    if trigger not in TRIGGERS:
        raise InvalidInput("trigger", f"must be one of {', '.join(TRIGGERS)}")
    journey = _journey(session, program.id, trigger)
    current = _template(session, journey)
    if coupon is not None and current is not None and coupon == current.key:
        coupon = None
    parameters = (
        _check_settings(trigger, {k: v for k, v in settings.items() if v is not None})
        if settings is not None
        else None
    )
    if control_percent is not None:
        _check_control(control_percent)
    template = current
    if coupon is not None:
        template = campaigns.coupon_for(session, program.id, coupon or None, None)
    gives = template is not None
    if texts is not None:
        kept = _own_texts(trigger, texts, gives)
    elif journey is not None and gives != (current is not None):
        # Texts a former version of `update` wrote in (the catalog's wording with or without
        # the coupon's line) would read wrong once the coupon changes: only the club's own stay.
        kept = own_texts(journey) or None
    else:
        kept = journey.texts if journey is not None else None
    if template is None:
        # {coupon_code} in a text without a coupon would reach members empty.
        campaigns.coupon_for(session, program.id, None, kept)
    if journey is None:
        journey = create(session, program, trigger=trigger, now=now, active=False)
    if active is not None:
        new = campaigns.ACTIVE if active else campaigns.PAUSED
        journey.status = states.move("journey", journey.status, new, what=journey.id)
    journey.texts = kept
    journey.coupon_template_id = template.id if template is not None else None
    if parameters is not None:
        # Cross-sell's texts per category have their own form (set_category_text): settings
        # given without them leave them as they are.
        kept_categories = (journey.settings or {}).get(CATEGORIES)
        if CATEGORIES not in parameters and kept_categories:
            parameters[CATEGORIES] = kept_categories
        journey.settings = parameters or None
    if control_percent is not None:
        journey.control_percent = control_percent
    session.flush()
    return journey


def catalog_wording(trigger: str, language: str, *, coupon: bool = False) -> str:
    """The catalog's wording of a trigger's message, its placeholders unfilled (what a journey
    without a text of its own in the language sends, as the owner edits it), the coupon's line
    after it when the journey gives one."""
    fields = campaigns.PLACEHOLDERS | EXTRA_PLACEHOLDERS.get(trigger, frozenset())
    # Each placeholder given as itself: the catalog's template comes back as it is written.
    raw = {name: "{" + name + "}" for name in fields}
    text = locales.text(f"journey.{trigger}", language, **raw)
    if coupon:
        text += "\n" + locales.text("journey.coupon", language, **raw)
    return text


def own_texts(journey: Campaign) -> dict[str, str]:
    """The journey's texts that are the club's own. A text that is the catalog's wording as it
    reads now is left out: a journey saved before only the owner's texts were kept has the
    catalog's wording written into the languages left empty."""
    coupon = journey.coupon_template_id is not None
    return {
        language: str(text)
        for language, text in (journey.texts or {}).items()
        if text != catalog_wording(journey.trigger or "", language, coupon=coupon)
    }


def category_texts(journey: Campaign | None) -> dict[str, dict[str, str]]:
    """Cross-sell's texts per category (the owner's), each per language."""
    found = ((journey.settings or {}) if journey is not None else {}).get(CATEGORIES) or {}
    return {str(category): dict(texts) for category, texts in found.items()}


def set_category_text(
    session: Session,
    program: Program,
    category: str,
    texts: Mapping[str, str],
    *,
    now: dt.datetime,
) -> Campaign:
    """Add or replace the cross-sell journey's texts for a category (the languages left empty
    speak the journey's own text, else the catalog's wording), setting the journey up (off)
    first if the club has none. Raises InvalidInput naming the field (category, texts,
    texts.<language>); nothing changes then."""
    name = _check_category(category)
    given = {language: text for language, text in texts.items() if text and text.strip()}
    if not given:
        raise InvalidInput("texts", "give the category's text in at least one language")
    checked = campaigns.check_texts(given, campaigns.PLACEHOLDERS | EXTRA_PLACEHOLDERS[CROSS_SELL])
    journey = _journey(session, program.id, CROSS_SELL)
    current = category_texts(journey)
    if name not in current and len(current) >= MAX_CATEGORIES:
        raise InvalidInput("category", f"at most {MAX_CATEGORIES} categories have texts")
    if journey is None:
        journey = create(session, program, trigger=CROSS_SELL, now=now, active=False)
    # A new dict: the JSON column sees a change only when it is given another value.
    journey.settings = {**(journey.settings or {}), CATEGORIES: {**current, name: checked}}
    session.flush()
    return journey


def remove_category(session: Session, program: Program, category: str) -> Campaign:
    """Take a category's texts out of the cross-sell journey: its purchases are no longer
    followed. NotFound when the journey has no text for it."""
    journey = _journey(session, program.id, CROSS_SELL)
    current = category_texts(journey)
    if journey is None or category not in current:
        raise NotFound("category", category)
    del current[category]
    kept = {key: value for key, value in (journey.settings or {}).items() if key != CATEGORIES}
    if current:
        kept[CATEGORIES] = current
    journey.settings = kept or None
    session.flush()
    return journey


def club_categories(session: Session, program_id: int, limit: int = 200) -> list[str]:
    """The categories the club's purchase lines name (what the owner can write texts for),
    from the (program_id, category, member_id) index."""
    return list(
        session.scalars(
            select(_LINES.c.category)
            .where(_LINES.c.program_id == program_id, _LINES.c.category.is_not(None))
            .group_by(_LINES.c.category)
            .order_by(_LINES.c.category)
            .limit(limit)
        )
    )


def all_of(session: Session, program_id: int) -> list[Campaign]:
    """The club's journeys, in TRIGGERS order."""
    found = session.scalars(
        select(Campaign).where(
            Campaign.program_id == program_id, Campaign.kind == campaigns.JOURNEY
        )
    ).all()
    return sorted(found, key=lambda c: TRIGGERS.index(c.trigger or ""))


def settings_of(journey: Campaign) -> dict[str, Any]:
    """The journey's parameters: its own settings over its trigger's defaults."""
    return {**DEFAULTS.get(journey.trigger or "", {}), **(journey.settings or {})}


def message_id(campaign: Campaign) -> str:
    """The catalog's wording for a journey that has no text of its own in a language."""
    return f"journey.{campaign.trigger}"


def text_for(journey: Campaign, language: str, values: Mapping[str, Any]) -> str:
    """The journey's message in a member's language, placeholders filled (the club's name
    before it and the opt-out line after it are campaigns.compose's): the club's own text for
    the language, else the catalog's wording in it, with the coupon's line when the journey
    gives one. `values` holds every placeholder the trigger allows. Cross-sell speaks the
    owner's text for the purchase's category (values["category"]) first."""
    if journey.trigger == CROSS_SELL:
        for_category = category_texts(journey).get(str(values.get("category", ""))) or {}
        if for_category.get(language):
            return str(for_category[language]).format_map(values)
    own = (journey.texts or {}).get(language)
    if own:
        return str(own).format_map(values)
    return catalog_text(journey, language, values)


def sample_text(
    session: Session,
    program: Program,
    journey: Campaign,
    language: str,
    now: dt.datetime,
    link_base: str = "",
) -> str:
    """The journey's message for a made-up member in `language`, as store.outreach.sending writes it
    (`text_for`, then campaigns.compose: the club's name first, the opt-out line last): what
    the admin and `klubb journey` show, and size in SMS segments. `journey` may be one not set
    up yet (a Campaign never added). With `link_base`, the owner's web addresses as the short
    links the sender makes of them (store.outreach.clicks)."""
    ladder = tiers.ladder(session, program.id)
    upper = ladder[1] if len(ladder) > 1 else ladder[0] if ladder else None
    tier = tiers.name(upper, language) if upper is not None else ""
    points = SAMPLE_POINTS
    if journey.trigger == BALANCE:
        points = threshold_of(session, program, journey)
    days = settings_of(journey).get("days") or 0
    expires = now.astimezone(ZoneInfo(program.timezone)).date() + dt.timedelta(days=days)
    values = {
        "first_name": SAMPLE_NAMES.get(language, SAMPLE_NAMES[locales.DEFAULT_LANGUAGE]),
        "club": program.name,
        "points": locales.format_number(points, language),
        "tier": tier,
        "coupon_code": SAMPLE_CODE if journey.coupon_template_id is not None else "",
        "expiring_points": locales.format_number(SAMPLE_EXPIRING, language),
        "expiry_date": locales.format_date(expires, language),
        "points_to_next": locales.format_number(SAMPLE_TO_NEXT, language),
        "next_tier": tier,
        **_sample_extras(session, program, journey, language, now),
    }
    # Cross-sell: the category whose message is the longest (what sizes the estimate).
    values["category"] = max(
        list(category_texts(journey)) or [locales.text(SAMPLE_CATEGORY, language)],
        key=lambda category: len(text_for(journey, language, {**values, "category": category})),
    )
    text = campaigns.compose(text_for(journey, language, values), language, program.name)
    owned = clicks.owned_urls(journey.texts) | frozenset().union(
        *(clicks.owned_urls(texts) for texts in category_texts(journey).values())
    )
    return clicks.sample(text, link_base, owned)


def _sample_extras(
    session: Session, program: Program, journey: Campaign, language: str, now: dt.datetime
) -> dict[str, str]:
    """The placeholders of the catalogue's later triggers for the made-up member: the club's
    cheapest reward as the one coming, and its first coupon in use as the gift (the club's own
    words: there is no made-up benefit in every language), else left empty."""
    rewards = [t for t in coupons.rewards(session, program.id) if t.points_cost]
    offered = coupons.templates(session, program.id)
    gift = next((t for t in offered if t.kind == coupons.CAMPAIGN), offered[0] if offered else None)
    until = now.astimezone(ZoneInfo(program.timezone)).date() + dt.timedelta(
        days=gift.valid_days if gift is not None else SAMPLE_VALID_DAYS
    )
    at = settings_of(journey).get("at") or 0
    return {
        "reward": _benefit(program, rewards[0], language) if rewards else "",
        "points_to_reward": locales.format_number(SAMPLE_TO_NEXT, language),
        "milestone": locales.format_number(at, language),
        "years": locales.format_number(SAMPLE_YEARS, language),
        "gift": _benefit(program, gift, language) if gift is not None else "",
        "gift_code": SAMPLE_CODE,
        "gift_until": locales.format_date(until, language),
    }


def _benefit(program: Program, template: CouponTemplate, language: str) -> str:
    """What a coupon gives as a member reads it: its {amount} as money in the language."""
    return locales.benefit(
        coupons.benefit_of(template, language),
        language,
        amount_minor=template.discount_minor,
        currency=program.currency,
    )


def catalog_text(campaign: Campaign, language: str, values: Mapping[str, Any]) -> str:
    """A journey in the catalog's wording (a language without a text of its own), with the
    coupon's line after it when the journey gives one (the catalog can't know there is one)."""
    text = locales.render(message_id(campaign), language, **values)
    code = values.get("coupon_code")
    if campaign.coupon_template_id is not None and code:
        text += "\n" + locales.render("journey.coupon", language, coupon_code=code)
    return text


def coupon_source(campaign: Campaign, member_id: int, occasion: str) -> str:
    """Why a campaign's coupon was issued: once per member and occasion. A birthday journey
    shares its source with the birthday job's coupon, so a member never gets two."""
    if campaign.kind != campaigns.JOURNEY:
        return f"campaign:{campaign.id}:{member_id}"
    if campaign.trigger == BIRTHDAY:
        return f"birthday:{member_id}:{occasion}"
    return f"journey:{campaign.id}:{member_id}:{occasion}"


# --- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    """What one chunk of planning did, and where the next one starts."""

    rows: dict[str, int]  # outbox rows written per trigger (queued and held out)
    through: int  # the highest member id considered
    done: bool  # every member has been considered


def plan_chunk(
    session: Session,
    program: Program,
    now: dt.datetime,
    after: int = 0,
    chunk: int = PLAN_CHUNK,
) -> Planned:
    """Plan every active journey of the club for its next `chunk` member ids after `after`:
    one statement per trigger (near_tier: one read, then one insert). Call with `through` as
    `after` until `done`. Chunks are id ranges (as a broadcast's: outreach.campaigns.plan_chunk),
    so on SQLite the single writer is never held for long, however big the club."""
    journeys = [j for j in all_of(session, program.id) if j.status == campaigns.ACTIVE]
    senders = programs.numbers(session, program.id)
    newest = session.scalar(select(func.max(_MEMBERS.c.id))) or 0
    if not journeys or not senders or after >= newest:
        return Planned({j.trigger or "": 0 for j in journeys}, after, True)
    # The chunk starts at the club's next member, so a small club among big ones is not
    # walked through the others' ids a chunk at a time: a scan of the primary key that stops
    # at the first, and looks no further than SKIP_CHUNKS chunks in one call.
    ahead = after + SKIP_CHUNKS * chunk
    first = session.scalar(
        select(func.min(_MEMBERS.c.id)).where(
            _MEMBERS.c.id > after,
            _MEMBERS.c.id <= ahead,
            (_MEMBERS.c.program_id + 0) == program.id,
        )
    )
    if first is None:
        return Planned({j.trigger or "": 0 for j in journeys}, ahead, ahead >= newest)
    low, high = first - 1, first - 1 + chunk
    c = _Chunk(session, program, now, senders[0], low, high)
    rows = {j.trigger or "": _PLANNERS[j.trigger or ""](c, j) for j in journeys}
    return Planned(rows, high, high >= newest)


class _Chunk:
    """What every trigger's planning of one chunk needs, worked out once."""

    def __init__(
        self,
        session: Session,
        program: Program,
        now: dt.datetime,
        sender: str,
        low: int,
        high: int,
    ) -> None:
        self.session = session
        self.program = program
        self.now = now
        self.sender = sender
        self.low, self.high = low, high
        self.zone = ZoneInfo(program.timezone)
        self.today = now.astimezone(self.zone).date()
        self.dialect = session.get_bind().dialect.name
        # Planned now, a message goes at once, or when the club's quiet hours end (the sender
        # holds it again for a member whose own zone is still quiet).
        self.moment = guard_rails.first_moment(
            now, self.zone, program.quiet_start, program.quiet_end
        )
        self._members: list[ColumnElement[bool]] | None = None

    def instant(self, value: dt.datetime) -> ColumnElement[dt.datetime]:
        return literal(value, _INSTANT)

    def in_range(self, member_id: Any) -> list[ColumnElement[bool]]:
        if self.dialect == "postgresql":
            # Written into the statement, not bound: asyncpg prepares each statement, and
            # after five runs PostgreSQL may plan it once for any range; that plan read the
            # whole (program_id, status, joined_at, store) index for the status of every
            # member, each chunk (birthday: 20 s a run at 1M members, 2 s with the range in).
            return [
                member_id > literal(self.low, literal_execute=True),
                member_id <= literal(self.high, literal_execute=True),
            ]
        return [member_id > self.low, member_id <= self.high]

    def members(self) -> list[ColumnElement[bool]]:
        """The club's members of the chunk that may receive marketing, under the cap. Built
        once a chunk: every trigger's statement has the same (building SQLAlchemy expressions
        was half of a chunk's CPU; tests/bench/journeys.py)."""
        if self._members is None:
            self._members = [
                # `+ 0`: the id range must drive the scan; offered program_id, SQLite's planner
                # walks the club's whole (program_id, phone) index instead (as campaigns does).
                (_MEMBERS.c.program_id + 0) == self.program.id,
                *self.in_range(_MEMBERS.c.id),
                consent.may_receive(),
                guard_rails.under_cap(self.program, self.moment, per_member=True),
            ]
        return self._members

    def status(self, journey: Campaign) -> ColumnElement[str]:
        return _status(journey.id, journey.control_percent)

    def joined_in_club(self) -> list[ColumnElement[bool]]:
        """For a trigger whose condition is on joined_at: the club as an index can use it, on
        PostgreSQL. Offered only `program_id + 0`, its planner reads the whole (program_id,
        status, joined_at, store) index for the status and joined_at of every club, every chunk
        (176 ms a chunk at 1M members: 35 s a run; tests/bench/journeys.py --explain); with the
        club, the chunk's joiners are a short range of it. SQLite keeps to the id range."""
        return [_MEMBERS.c.program_id == self.program.id] if self.dialect == "postgresql" else []

    def insert(
        self,
        journey: Campaign,
        occasion: ColumnElement[str],
        *where: ColumnElement[bool],
        source: FromClause | None = None,
    ) -> int:
        """One INSERT ... SELECT over the chunk's `members` (joined to `source`): the trigger's
        conditions, the guard rails, the control group; a row already there stays as it is."""
        chosen = select(
            _MEMBERS.c.program_id,
            _MEMBERS.c.id,
            literal(journey.id),
            occasion,
            literal(guard_rails.MARKETING),
            self.status(journey),
            _MEMBERS.c.phone,
            literal(self.sender),
            literal(0),
            literal(0),
            self.instant(self.now),
            self.instant(self.moment),
        )
        if source is not None:
            chosen = chosen.select_from(source)
        chosen = chosen.where(*self.members(), *where)
        insert = campaigns.INSERT_OUTBOX[self.dialect].from_select(
            campaigns.PLANNED_COLUMNS, chosen
        )
        return int(self.session.execute(insert).rowcount or 0)


@functools.lru_cache(maxsize=1024)
def _status(journey_id: int, control_percent: int) -> ColumnElement[str]:
    """A row's status by the control group's hash: one expression per journey and percent, kept
    from chunk to chunk (an expression is immutable; building it is not free)."""
    held = campaigns.control_hash(journey_id) < control_percent
    return case((held, OutboxStatus.HELD_OUT), else_=OutboxStatus.QUEUED)


def _welcome(c: _Chunk, journey: Campaign) -> int:
    """Joined at least `delay_hours` ago (and not more than `lookback_days` before that)."""
    settings = settings_of(journey)
    latest = c.now - dt.timedelta(hours=settings["delay_hours"])
    earliest = latest - dt.timedelta(days=settings["lookback_days"])
    joined = _MEMBERS.c.joined_at
    return c.insert(
        journey,
        literal(""),
        *c.joined_in_club(),
        joined.is_not(None),
        joined <= c.instant(latest),
        joined > c.instant(earliest),
    )


def _birthday(c: _Chunk, journey: Campaign) -> int:
    """Birthday today where the club is; 29 February on the 28th in other years."""
    days = [c.today.strftime("%m-%d")]
    if (c.today.month, c.today.day) == (2, 28) and not _leap(c.today.year):
        days.append("02-29")
    if c.dialect == "sqlite":
        month_day = func.strftime("%m-%d", _MEMBERS.c.birthday)
    else:
        month_day = func.to_char(_MEMBERS.c.birthday, "MM-DD")
    return c.insert(
        journey,
        literal(str(c.today.year)),
        _MEMBERS.c.birthday.is_not(None),
        month_day.in_(days),
    )


def _expiring(c: _Chunk, journey: Campaign) -> int:
    """Points in open lots ending within `days`; the occasion is the last day of the soonest."""
    horizon = c.now + dt.timedelta(days=settings_of(journey)["days"])
    # No program_id: it is not in the covering index of open lots, which the chunk's member
    # range reads; the members' side keeps to the club.
    soonest = (
        select(_LOTS.c.member_id, func.min(_LOTS.c.expires_at).label("ends"))
        .where(
            *c.in_range(_LOTS.c.member_id),
            ledger.OPEN_LOT,
            _LOTS.c.expires_at > c.instant(c.now),
            _LOTS.c.expires_at <= c.instant(horizon),
        )
        .group_by(_LOTS.c.member_id)
        .subquery()
    )
    # The occasion is a date in the club's zone, which SQLite can't compute from an instant:
    # a CASE over the local midnights in the window (a lot ending at midnight was usable
    # through the day before, as expiry_day says).
    last_day = expiry_day(horizon, c.zone)
    day = expiry_day(c.now, c.zone)
    branches = []
    while day < last_day:
        midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), c.zone)
        branches.append((soonest.c.ends <= c.instant(midnight), day.isoformat()))
        day += dt.timedelta(days=1)
    occasion = case(*branches, else_=last_day.isoformat()) if branches else literal(day.isoformat())
    return c.insert(
        journey,
        occasion,
        source=_MEMBERS.join(soonest, soonest.c.member_id == _MEMBERS.c.id),
    )


def _balance(c: _Chunk, journey: Campaign) -> int:
    """A balance of at least `threshold`: once per crossing. The occasion counts the member's
    spends, so after a reward is claimed, being above the threshold again is news again."""
    threshold = threshold_of(c.session, c.program, journey)
    # store.loyalty.ledger.held: the balance from the member's row (open_points; their lots only
    # for the few with a lot ended and not yet settled).
    spends = (
        select(func.count())
        .where(_ENTRIES.c.member_id == _MEMBERS.c.id, _ENTRIES.c.kind == ledger.SPEND)
        .scalar_subquery()
    )
    occasion = literal(f"{threshold}:", String) + cast(spends, String)
    return c.insert(journey, occasion, ledger.held(c.instant(c.now)) >= max(threshold, 1))


def _after_purchase(c: _Chunk, journey: Campaign) -> int:
    """The latest purchase was `days` ago (within the lookback), none since."""
    return _last_purchase(c, journey)


def _winback(c: _Chunk, journey: Campaign) -> int:
    """The last purchase was at least `days` ago (within the lookback), none since."""
    return _last_purchase(c, journey)


def _last_purchase(c: _Chunk, journey: Campaign) -> int:
    settings = settings_of(journey)
    cut = c.now - dt.timedelta(days=settings["days"])
    earliest = cut - dt.timedelta(days=settings["lookback_days"])
    bought = _PURCHASES
    later = _PURCHASES.alias("later")
    since = (
        select(later.c.id)
        .where(
            later.c.member_id == bought.c.member_id,
            or_(
                later.c.occurred_at > bought.c.occurred_at,
                and_(later.c.occurred_at == bought.c.occurred_at, later.c.id > bought.c.id),
            ),
        )
        .exists()
    )
    # The chunk's purchases from the (member_id, occurred_at) index, each checked for a later
    # one from the same index: no grouping, and not the club's whole window every chunk.
    return c.insert(
        journey,
        cast(bought.c.id, String),
        *c.in_range(bought.c.member_id),
        bought.c.occurred_at <= c.instant(cut),
        bought.c.occurred_at > c.instant(earliest),
        ~since,
        source=_MEMBERS.join(bought, bought.c.member_id == _MEMBERS.c.id),
    )


def _tier_reached(c: _Chunk, journey: Campaign) -> int:
    """A tier above the lowest rung, held since at most `lookback_days` ago: once per tier.

    Not told of a tier after being told of a higher one (dropping from Gold to Silver is no
    news to congratulate), nor of a tier held since before the journey existed (`tier_until`
    is set a period ahead whenever a tier is given or kept, so it dates the holding)."""
    since = c.today - dt.timedelta(days=settings_of(journey)["lookback_days"])
    held_since = tiers.months_back(since, -c.program.tier_period_months)
    higher = _TIERS.alias("higher")
    told_higher = (
        select(_OUTBOX.c.id)
        .where(
            _OUTBOX.c.campaign_id == journey.id,
            _OUTBOX.c.member_id == _MEMBERS.c.id,
            _OUTBOX.c.occasion.in_(
                select(cast(higher.c.id, String))
                .where(higher.c.program_id == c.program.id, higher.c.position > _TIERS.c.position)
                # The member's tier two levels out: without this it would be read as a FROM
                # of its own (every tier), not the one the member holds.
                .correlate(_TIERS)
            ),
        )
        .exists()
    )
    return c.insert(
        journey,
        cast(_MEMBERS.c.tier_id, String),
        _TIERS.c.position > 0,
        _MEMBERS.c.tier_until >= held_since,
        ~told_higher,
        source=_MEMBERS.join(_TIERS, _TIERS.c.id == _MEMBERS.c.tier_id),
    )


def _near_tier(c: _Chunk, journey: Campaign) -> int:
    """At most `within` points from the next tier: once per next tier and period.

    The standing needs the ladder (the tier held, the one the points reach, the next one), so
    the chunk's candidates are read in SQL, with the guard rails and the control group, decided
    here and written with one executemany. The period is the calendar one of the club's
    length (the year, for 12 months) holding today: the qualification window itself rolls
    daily, and an occasion named after its start would tell the member again every day."""
    steps = tiers.ladder(c.session, c.program.id)
    if len(steps) < 2:
        return 0
    within = settings_of(journey)["within"]
    reach = {t.id: within or t.threshold * NEAR_PERCENT // 100 for t in steps[1:]}
    since = tiers.qualification_start(c.program, c.now)
    period = _period_start(c.today, c.program.tier_period_months).isoformat()
    # As tiers.standing: the points earned in the qualification window, from the covering
    # (member_id, created_at, tier_points) index; only members who could be close are read:
    # near a tier is within its reach below its threshold, so the points lie in one of these
    # bands (the rest were read and thrown away in Python: a third of the trigger's CPU).
    points = func.sum(_ENTRIES.c.tier_points)
    bands = [
        and_(points >= max(t.threshold - reach[t.id], 1), points < t.threshold) for t in steps[1:]
    ]
    earned = (
        select(_ENTRIES.c.member_id, points.label("points"))
        .where(*c.in_range(_ENTRIES.c.member_id), _ENTRIES.c.created_at >= c.instant(since))
        .group_by(_ENTRIES.c.member_id)
        .having(or_(*bands))
        .subquery()
    )
    candidates = c.session.execute(
        select(
            _MEMBERS.c.id, _MEMBERS.c.tier_id, _MEMBERS.c.phone, c.status(journey), earned.c.points
        )
        .select_from(_MEMBERS.join(earned, earned.c.member_id == _MEMBERS.c.id))
        .where(*c.members())
    ).all()
    rows = []
    for member_id, tier_id, phone, status, earned_points in candidates:
        points = int(earned_points)
        upcoming = _next_tier(steps, tier_id, points)
        if upcoming is None or not 0 < upcoming.threshold - points <= reach[upcoming.id]:
            continue
        rows.append(
            {
                "program_id": c.program.id,
                "member_id": member_id,
                "campaign_id": journey.id,
                "occasion": f"{upcoming.id}:{period}",
                "kind": guard_rails.MARKETING,
                "status": status,
                "to_number": phone,
                "from_number": c.sender,
                "segments": 0,
                "attempts": 0,
                "created_at": c.now,
                "send_after": c.moment,
            }
        )
    if not rows:
        return 0
    # RETURNING counts what was new (a row already planned is left alone, and not counted).
    insert = campaigns.INSERT_OUTBOX[c.dialect].returning(_OUTBOX.c.id)
    return len(c.session.execute(insert, rows).all())


def _coming_reward(c: _Chunk, journey: Campaign) -> int:
    """Within `points` of the nearest reward above the balance: once per reward and crossing.

    The occasion is the reward and the member's count of spends (as the balance journey's):
    a member hovering near a reward for weeks is told once, not daily or every 90 days; once
    they claim something, nearing a reward again is news again. The club's rewards are few,
    so each is a band of balances ([the cheaper reward's cost or its cost less `points`, its
    cost)), read with the balances of the chunk in one statement."""
    within = settings_of(journey)["points"]
    costs: dict[int, int] = {}
    for template in coupons.rewards(c.session, c.program.id):
        if template.points_cost:
            # Two rewards of one cost: the first in the club's order (CLAIM n) is named.
            costs.setdefault(template.points_cost, template.id)
    if not costs:
        return 0
    bands = []
    below = 0
    for cost in sorted(costs):
        bands.append((max(below, cost - within), cost, costs[cost]))
        below = cost
    # store.loyalty.ledger.held: the balance from the member's row.
    balance = ledger.held(c.instant(c.now))
    in_band = [(and_(balance >= low, balance < high), str(i)) for low, high, i in bands]
    reward = case(*in_band)
    spends = (
        select(func.count())
        .where(_ENTRIES.c.member_id == _MEMBERS.c.id, _ENTRIES.c.kind == ledger.SPEND)
        .scalar_subquery()
    )
    return c.insert(
        journey,
        reward + literal(":", String) + cast(spends, String),
        balance > 0,  # a band may start at 0: none for a member without points
        or_(*(band for band, _ in in_band)),
    )


def _milestone_points(c: _Chunk, journey: Campaign) -> int:
    """Points earned in all (purchases less refunds: the ledger's tier_points) reached `at`
    within `lookback_days`: once per member and milestone."""
    settings = settings_of(journey)
    at = settings["at"]
    since = c.now - dt.timedelta(days=settings["lookback_days"])
    points = _ENTRIES.c.tier_points
    before = case((_ENTRIES.c.created_at < c.instant(since), points), else_=0)
    # From the covering (member_id, created_at, tier_points) index, the chunk's members only.
    reached = (
        select(_ENTRIES.c.member_id)
        .where(*c.in_range(_ENTRIES.c.member_id))
        .group_by(_ENTRIES.c.member_id)
        .having(func.sum(points) >= at, func.sum(before) < at)
        .subquery()
    )
    return c.insert(
        journey,
        literal(str(at), String),
        source=_MEMBERS.join(reached, reached.c.member_id == _MEMBERS.c.id),
    )


def _milestone_purchases(c: _Chunk, journey: Campaign) -> int:
    """The `at`th purchase (refunded or not: each was a visit) made within `lookback_days`:
    once per member and milestone."""
    settings = settings_of(journey)
    at = settings["at"]
    since = c.now - dt.timedelta(days=settings["lookback_days"])
    before = case((_PURCHASES.c.occurred_at <= c.instant(since), 1), else_=0)
    # From the (member_id, occurred_at) index, the chunk's members only.
    reached = (
        select(_PURCHASES.c.member_id)
        .where(*c.in_range(_PURCHASES.c.member_id))
        .group_by(_PURCHASES.c.member_id)
        .having(func.count() >= at, func.sum(before) < at)
        .subquery()
    )
    return c.insert(
        journey,
        literal(str(at), String),
        source=_MEMBERS.join(reached, reached.c.member_id == _MEMBERS.c.id),
    )


def _milestone_months(c: _Chunk, journey: Campaign) -> int:
    """A member for `at` months (the day of joining, `at` months on, in the club's zone, the
    month's last day when it has no such day) within `lookback_days`: once per member and
    milestone. The days of joining that reach it are a range of instants, so no date is
    computed in SQL (SQLite has no time zones)."""
    settings = settings_of(journey)
    at = settings["at"]
    latest = tiers.months_back(c.today, at)
    earliest = tiers.months_back(c.today - dt.timedelta(days=settings["lookback_days"]), at)
    joined = _MEMBERS.c.joined_at
    return c.insert(
        journey,
        literal(str(at), String),
        *c.joined_in_club(),
        joined.is_not(None),
        joined >= c.instant(_midnight(earliest + dt.timedelta(days=1), c.zone)),
        joined < c.instant(_midnight(latest + dt.timedelta(days=1), c.zone)),
    )


def _member_day(c: _Chunk, journey: Campaign) -> int:
    """Joined on this day of the year (in the club's zone) in an earlier year: once a year.

    29 February's joiners on the 28th in other years, as birthdays. Each earlier year's day
    is a range of instants (joined_at is an instant; SQLite has no time zones), from the
    year of the chunk's first joining on."""
    joined = _MEMBERS.c.joined_at
    first = c.session.scalar(
        select(func.min(joined)).where(
            (_MEMBERS.c.program_id + 0) == c.program.id, *c.in_range(_MEMBERS.c.id)
        )
    )
    if first is None:
        return 0
    leap_day = (c.today.month, c.today.day) == (2, 28) and not _leap(c.today.year)
    days = []
    for year in range(first.astimezone(c.zone).year, c.today.year):
        if (c.today.month, c.today.day) == (2, 29) and not _leap(year):
            continue  # the 28th was their day this year, and they were greeted then
        days.append(c.today.replace(year=year))
        if leap_day and _leap(year):
            days.append(dt.date(year, 2, 29))
    ranges = [
        and_(
            joined >= c.instant(_midnight(day, c.zone)),
            joined < c.instant(_midnight(day + dt.timedelta(days=1), c.zone)),
        )
        for day in days
    ]
    if not ranges:
        return 0
    return c.insert(journey, literal(str(c.today.year), String), *c.joined_in_club(), or_(*ranges))


def _gift_received(c: _Chunk, journey: Campaign) -> int:
    """A coupon staff or the API gave as a gift (coupons.give), given within `lookback_days`
    and still to be used: once per coupon."""
    since = c.now - dt.timedelta(days=settings_of(journey)["lookback_days"])
    gifts = _COUPONS
    return c.insert(
        journey,
        cast(gifts.c.id, String),
        *c.in_range(gifts.c.member_id),
        gifts.c.source.startswith(coupons.GIFT_SOURCE),
        gifts.c.issued_at > c.instant(since),
        gifts.c.issued_at <= c.instant(c.now),
        gifts.c.redeemed_at.is_(None),
        gifts.c.valid_until > c.instant(c.now),
        source=_MEMBERS.join(gifts, gifts.c.member_id == _MEMBERS.c.id),
    )


def _cross_sell(c: _Chunk, journey: Campaign) -> int:
    """A purchase made `delay_days` ago (catching up `lookback_days`) with a line of a category
    the owner has a text for and the member has not bought again since: once per purchase."""
    categories = sorted(category_texts(journey))
    if not categories:
        return 0
    settings = settings_of(journey)
    cut = c.now - dt.timedelta(days=settings["delay_days"])
    earliest = cut - dt.timedelta(days=settings["lookback_days"])
    bought = _PURCHASES
    line = _LINES.alias("line")
    # Its lines from the (purchase_id, line_no) key, each checked for the category bought again
    # from the (member_id, category) index.
    offered = (
        select(line.c.id)
        .where(
            line.c.purchase_id == bought.c.id,
            line.c.category.in_(categories),
            ~_bought_again(line, bought),
        )
        .correlate(bought)
        .exists()
    )
    return c.insert(
        journey,
        cast(bought.c.id, String),
        *c.in_range(bought.c.member_id),
        bought.c.occurred_at <= c.instant(cut),
        bought.c.occurred_at > c.instant(earliest),
        offered,
        source=_MEMBERS.join(bought, bought.c.member_id == _MEMBERS.c.id),
    )


def cross_sell_categories(
    session: Session, journey: Campaign, purchase_ids: Collection[int]
) -> dict[int, str]:
    """The category each purchase's cross-sell message is about, in one statement for a batch:
    of its lines' categories the owner has a text for and the member has not bought again
    since, the one with the highest amount (then the first by name). A purchase with none left
    is not in the answer (bought again since planning: the sender skips its message)."""
    categories = sorted(category_texts(journey))
    if not categories or not purchase_ids:
        return {}
    bought = _PURCHASES
    line = _LINES.alias("line")
    amounts = session.execute(
        select(line.c.purchase_id, line.c.category, func.sum(line.c.amount_minor))
        .select_from(line.join(bought, bought.c.id == line.c.purchase_id))
        .where(
            line.c.purchase_id.in_(sorted(purchase_ids)),
            line.c.category.in_(categories),
            ~_bought_again(line, bought),
        )
        .group_by(line.c.purchase_id, line.c.category)
    ).all()
    chosen: dict[int, str] = {}
    # The highest amount first, then the name: the first of each purchase is its category.
    for purchase_id, category, _ in sorted(amounts, key=lambda a: (a[0], -int(a[2] or 0), a[1])):
        chosen.setdefault(purchase_id, category)
    return chosen


def _bought_again(line: FromClause, bought: FromClause) -> ColumnElement[bool]:
    """The member bought the line's category again in a purchase after `bought`."""
    again = _LINES.alias("again")
    later = _PURCHASES.alias("later")
    return (
        select(again.c.id)
        .select_from(again.join(later, later.c.id == again.c.purchase_id))
        .where(
            again.c.member_id == line.c.member_id,
            again.c.category == line.c.category,
            or_(
                later.c.occurred_at > bought.c.occurred_at,
                and_(later.c.occurred_at == bought.c.occurred_at, later.c.id > bought.c.id),
            ),
        )
        # Two levels in from `bought` and one from `line`: named, or read as FROMs of its own.
        .correlate(line, bought)
        .exists()
    )


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The instant a local day starts."""
    return dt.datetime.combine(day, dt.time(), zone)


_PLANNERS: dict[str, Callable[[_Chunk, Campaign], int]] = {
    WELCOME: _welcome,
    BIRTHDAY: _birthday,
    EXPIRING: _expiring,
    TIER_REACHED: _tier_reached,
    NEAR_TIER: _near_tier,
    BALANCE: _balance,
    AFTER_PURCHASE: _after_purchase,
    WINBACK: _winback,
    COMING_REWARD: _coming_reward,
    MILESTONE_POINTS: _milestone_points,
    MILESTONE_PURCHASES: _milestone_purchases,
    MILESTONE_MONTHS: _milestone_months,
    MEMBER_DAY: _member_day,
    GIFT_RECEIVED: _gift_received,
    CROSS_SELL: _cross_sell,
}


# --- writing a member's message ---------------------------------------------------------------


def values(
    session: Session,
    program: Program,
    campaign: Campaign,
    row: Any,
    language: str,
    now: dt.datetime,
) -> dict[str, str]:
    """The placeholders the journey's trigger adds, for the member as they are now, formatted
    for the language. `row` is the outbox row (member_id and occasion are read). Cross-sell's
    {category} is not here: the sender reads a batch's at once (cross_sell_categories)."""
    member_id: int = row["member_id"]
    occasion: str = row["occasion"] or ""
    if campaign.trigger == EXPIRING:
        zone = ZoneInfo(program.timezone)
        lots = ledger.open_lots(session, member_id, now)
        # The lots the member was told about: those ending on the occasion's day (spending
        # since may have emptied them, or a sooner lot may have been added).
        day = dt.date.fromisoformat(occasion)
        points = sum(n for at, n in lots if expiry_day(at, zone) == day)
        return {
            "expiring_points": locales.format_number(points, language),
            "expiry_date": locales.format_date(day, language),
        }
    if campaign.trigger == NEAR_TIER:
        upcoming = _tier(session, occasion.split(":", 1)[0])
        if upcoming is None:
            return {"points_to_next": "", "next_tier": ""}
        qualifying = ledger.earned_since(
            session, member_id, tiers.qualification_start(program, now)
        )
        return {
            "points_to_next": locales.format_number(
                max(0, upcoming.threshold - qualifying), language
            ),
            "next_tier": tiers.name(upcoming, language),
        }
    if campaign.trigger == TIER_REACHED:
        # The tier the message was planned for, even if a review has moved the member since.
        reached = _tier(session, occasion)
        return {"tier": tiers.name(reached, language)} if reached is not None else {}
    if campaign.trigger == COMING_REWARD:
        reward = _template_of(session, program, occasion.split(":", 1)[0])
        if reward is None or not reward.points_cost:
            return {"reward": "", "points_to_reward": ""}
        # As the member stands now: a purchase since planning brings the reward closer.
        to_go = max(0, reward.points_cost - ledger.balance(session, member_id, now))
        return {
            "reward": _benefit(program, reward, language),
            "points_to_reward": locales.format_number(to_go, language),
        }
    if campaign.trigger in MILESTONES:
        at = int(occasion) if occasion.isdigit() else None
        return {"milestone": locales.format_number(at, language) if at is not None else ""}
    if campaign.trigger == MEMBER_DAY:
        member = session.get(Member, member_id)
        if member is None or member.joined_at is None or not occasion.isdigit():
            return {"years": ""}
        joined = member.joined_at.astimezone(ZoneInfo(program.timezone)).year
        return {"years": locales.format_number(int(occasion) - joined, language)}
    if campaign.trigger == GIFT_RECEIVED:
        gift = session.get(Coupon, int(occasion)) if occasion.isdigit() else None
        template = session.get(CouponTemplate, gift.template_id) if gift is not None else None
        if gift is None or template is None or gift.member_id != member_id:
            return {"gift": "", "gift_code": "", "gift_until": ""}
        return {
            "gift": _benefit(program, template, language),
            "gift_code": coupons.display(gift.code),
            "gift_until": locales.format_date(
                expiry_day(gift.valid_until, ZoneInfo(program.timezone)), language
            ),
        }
    return {}


def threshold_of(session: Session, program: Program, journey: Campaign) -> int:
    """The balance journey's threshold: its setting, else the cheapest active reward's cost
    (the balance that can buy something), else FALLBACK_THRESHOLD."""
    setting = settings_of(journey).get("threshold")
    if setting:
        return int(setting)
    costs = [t.points_cost for t in coupons.rewards(session, program.id) if t.points_cost]
    return min(costs, default=FALLBACK_THRESHOLD)


def expiry_day(instant: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The last local day points ending at `instant` (exclusive) can be used: as POINTS
    shows it (flows.conversation.last_day)."""
    return (instant - dt.timedelta(microseconds=1)).astimezone(zone).date()


# --- helpers ----------------------------------------------------------------------------------


def _journey(session: Session, program_id: int, trigger: str) -> Campaign | None:
    return session.scalar(
        select(Campaign).where(
            Campaign.program_id == program_id,
            Campaign.kind == campaigns.JOURNEY,
            Campaign.trigger == trigger,
        )
    )


def _own_texts(trigger: str, texts: Mapping[str, str], coupon: bool) -> dict[str, str] | None:
    """The texts `update` stores: the languages the owner wrote, checked, less any that is the
    catalog's wording as it reads now (kept, it would stay frozen if the catalog changed);
    None when that leaves none."""
    given = {language: text for language, text in texts.items() if text.strip()}
    if not given:
        return None
    checked = campaigns.check_texts(
        given, campaigns.PLACEHOLDERS | EXTRA_PLACEHOLDERS.get(trigger, frozenset())
    )
    own = {
        language: text
        for language, text in checked.items()
        if text != catalog_wording(trigger, language, coupon=coupon)
    }
    return own or None


def _check_control(control_percent: int) -> None:
    if (
        isinstance(control_percent, bool)
        or not isinstance(control_percent, int)
        or not 0 <= control_percent <= campaigns.MAX_CONTROL
    ):
        raise InvalidInput("control", f"must be between 0 and {campaigns.MAX_CONTROL} percent")


def _template(session: Session, journey: Campaign | None) -> CouponTemplate | None:
    if journey is None or journey.coupon_template_id is None:
        return None
    return session.get(CouponTemplate, journey.coupon_template_id)


def _check_settings(trigger: str, given: Mapping[str, Any]) -> dict[str, Any]:
    allowed = DEFAULTS[trigger]
    checked: dict[str, Any] = {}
    for key, value in given.items():
        if trigger == CROSS_SELL and key == CATEGORIES:
            checked[key] = _check_categories(value)
            continue
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise InvalidInput(f"settings.{key}", f"not a setting of {trigger} (use {names})")
        low, high = limits(trigger, key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"settings.{key}", f"must be a whole number from {low} to {high}")
        checked[key] = value
    return checked


def _check_categories(given: Any) -> dict[str, dict[str, str]]:
    """Cross-sell's {category: {language: text}}, each name and text checked."""
    if not isinstance(given, Mapping):
        raise InvalidInput("settings.categories", "give {category: {language: text}}")
    if len(given) > MAX_CATEGORIES:
        raise InvalidInput("settings.categories", f"at most {MAX_CATEGORIES} categories")
    checked: dict[str, dict[str, str]] = {}
    allowed = campaigns.PLACEHOLDERS | EXTRA_PLACEHOLDERS[CROSS_SELL]
    for category, texts in given.items():
        name = _check_category(category)
        if not isinstance(texts, Mapping) or not all(
            isinstance(t, str) and t.strip() for t in texts.values()
        ):
            raise InvalidInput(f"settings.categories.{name}", "give {language: text}")
        checked[name] = campaigns.check_texts(texts, allowed)
    return checked


def _check_category(category: Any) -> str:
    name = category.strip() if isinstance(category, str) else ""
    if not name or len(name) > MAX_CATEGORY or not name.isprintable():
        raise InvalidInput("category", f"a category is 1 to {MAX_CATEGORY} characters")
    return name


def limits(trigger: str, key: str) -> tuple[int, int]:
    """The range a setting of a trigger may take."""
    return TRIGGER_LIMITS.get(trigger, {}).get(key) or LIMITS[key]


def _next_tier(steps: list[Tier], tier_id: int | None, qualifying: int) -> Tier | None:
    """The tier above the member's standing (as tiers.standing: the higher of the tier held
    and the one the qualifying points reach)."""
    held = next((t for t in steps if t.id == tier_id), steps[0])
    reached = [t for t in steps if t.threshold <= qualifying][-1]
    current = max(held, reached, key=lambda t: t.position)
    return next((t for t in steps if t.position > current.position), None)


def _template_of(session: Session, program: Program, template_id: str) -> CouponTemplate | None:
    """One of the club's templates by its id as an occasion holds it (None if not there)."""
    found = session.get(CouponTemplate, int(template_id)) if template_id.isdigit() else None
    return found if found is not None and found.program_id == program.id else None


def _tier(session: Session, tier_id: str) -> Tier | None:
    return session.get(Tier, int(tier_id)) if tier_id.isdigit() else None


def _period_start(today: dt.date, months: int) -> dt.date:
    """The first day of the calendar period of `months` months holding `today` (periods start
    in January: 12 months is the year, 6 a half-year)."""
    index = today.year * 12 + today.month - 1
    start = index - index % months if months > 0 else index
    return dt.date(start // 12, start % 12 + 1, 1)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
