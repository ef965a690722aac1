"""Campaigns: a broadcast to a segment, checked and estimated before it goes, then planned into
the outbox in chunks (guard rails and the control group applied in SQL, never in Python)."""

from __future__ import annotations

import datetime as dt
import functools
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, not_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

import locales
from store import states
from store.clubs import programs
from store.errors import Conflict, InvalidInput, NotFound
from store.members import consent
from store.models import (
    Campaign,
    CouponTemplate,
    Member,
    OutboxMessage,
    Program,
    Purchase,
    PurchaseLine,
    Segment,
    Tier,
)
from store.outreach import clicks, guard_rails, segments
from store.states import CampaignStatus, OutboxStatus

BROADCAST, JOURNEY = "broadcast", "journey"
SCHEDULED, PLANNING, SENDING, DONE, CANCELLED = (
    CampaignStatus.SCHEDULED,
    CampaignStatus.PLANNING,
    CampaignStatus.SENDING,
    CampaignStatus.DONE,
    CampaignStatus.CANCELLED,
)
# A broadcast's messages (and its coupons) are written while it is planned: before that, none.
NOT_SENT = (SCHEDULED, PLANNING)
ACTIVE, PAUSED = CampaignStatus.ACTIVE, CampaignStatus.PAUSED
# What a broadcast's text may say about the member; journeys add their own (outreach.journeys).
PLACEHOLDERS = frozenset({"first_name", "points", "tier", "coupon_code", "club"})
# The favourite category offer: a broadcast whose text may say each member's most bought
# category (by amount, over FAVOURITE_DAYS; a tie goes to the one bought last) and whose coupon
# may depend on it. Its settings: {"favourite": {"coupons": {category: template id}}}; the
# campaign's own coupon is the fallback (a member without purchases, or of another category).
FAVOURITE = "favourite_category"
BROADCAST_PLACEHOLDERS = PLACEHOLDERS | {FAVOURITE}
FAVOURITE_DAYS = 365
# What {favourite_category} says for a member without purchases in that time ("your favourites").
FAVOURITE_FALLBACK = "campaign.favourite.fallback"
MAX_FAVOURITE_COUPONS = 50
MAX_CATEGORY = 60  # purchase_lines.category
MAX_TEXT = 640  # four GSM-7 segments: more is a letter, not an SMS
MAX_CONTROL = 50
MAX_NAME = 80
# Members per planning commit: on SQLite a commit holds the only write lock, and a member's
# text waits behind it (PERFORMANCE.md: 5,000 rows ≈ 0.1 s).
PLAN_CHUNK = 5000
# Planned this long before its time, a broadcast is in the outbox when its moment comes.
PLAN_AHEAD = dt.timedelta(minutes=5)
# Deterministic hash of (member, campaign) for the control group: the same member is held
# out of the same campaign on every planning run, and the split is recorded on the row.
# Quadratic mod a prime, not linear: a linear hash puts neighbouring ids in runs (a campaign
# to the 24 members who joined last week held out 3 or 22 of them at 50%) and holds the same
# members out of every campaign; this one splits like a coin, independently per campaign.
_HASH_P, _HASH_SHIFT, _HASH_A, _HASH_B = 1000003, 7919, 769231, 350377

# Sample values for sizing a text before it is sent: long-ish, so estimates err on the high side.
_SAMPLE = {
    "first_name": "Kristoffer",
    "points": "12 345",
    "coupon_code": "ABCD-2345",
}

_MEMBERS = Member.__table__
_OUTBOX = OutboxMessage.__table__
_LINES = PurchaseLine.__table__
_PURCHASES = Purchase.__table__
# The columns a planner's INSERT ... SELECT writes (broadcasts here, journeys in outreach.journeys).
PLANNED_COLUMNS = [
    "program_id",
    "member_id",
    "campaign_id",
    "occasion",
    "kind",
    "status",
    "to_number",
    "from_number",
    "segments",
    "attempts",
    "created_at",
    "send_after",
]
INSERT_OUTBOX = {
    "sqlite": sqlite.insert(_OUTBOX).on_conflict_do_nothing(
        index_elements=["campaign_id", "member_id", "occasion"]
    ),
    "postgresql": postgresql.insert(_OUTBOX).on_conflict_do_nothing(
        index_elements=["campaign_id", "member_id", "occasion"]
    ),
}


class BadBroadcast(InvalidInput):
    """InvalidInput with a `code` (and its `params`) that a page words in its own language;
    `field` and `reason` stay as the CLI and the API show them."""

    def __init__(self, field: str, reason: str, code: str, **params: Any) -> None:
        super().__init__(field, reason)
        self.code = code
        self.params = params


def check_texts(texts: Mapping[str, str], allowed: frozenset[str] = PLACEHOLDERS) -> dict[str, str]:
    """The texts per language, checked: known languages, not empty, not too long, and only
    placeholders the renderer knows (a typo like {frist_name} would reach members raw)."""
    if not texts:
        raise BadBroadcast("texts", "give the message in at least one language", "no_text")
    checked: dict[str, str] = {}
    for language, text in texts.items():
        where = f"texts.{language}"
        if language not in locales.LANGUAGES:
            raise BadBroadcast(
                where, f"language must be one of {', '.join(locales.LANGUAGES)}", "language"
            )
        text = text.strip()
        if not text:
            raise BadBroadcast(where, "must not be empty", "empty")
        if len(text) > MAX_TEXT:
            raise BadBroadcast(where, f"at most {MAX_TEXT} characters", "too_long", max=MAX_TEXT)
        try:
            parsed = [
                (field, spec, conversion)
                for _, field, spec, conversion in string.Formatter().parse(text)
                if field is not None
            ]
        except ValueError as exc:
            raise BadBroadcast(
                where, f"a brace is not closed or not doubled ({exc})", "brace"
            ) from None
        fields = [field for field, _, _ in parsed if field]
        unknown = sorted({f for f in fields if f not in allowed})
        # "{}" (no name), a format spec ("{points:>9}") or a conversion ("{first_name!r}") would
        # reach members broken, or fail at sending: only a bare known name is a placeholder.
        odd = any(not field or spec or conversion for field, spec, conversion in parsed)
        if unknown or odd:
            names = ", ".join("{" + name + "}" for name in sorted(allowed))
            raise BadBroadcast(
                where,
                f"unknown placeholder {', '.join(unknown) or 'format'}; use {names}",
                "placeholder",
                wrong=", ".join("{" + name + "}" for name in unknown) or "{…:…}",
                allowed=names,
            )
        checked[language] = text
    return checked


@dataclass(frozen=True, slots=True)
class _Checked:
    name: str
    texts: dict[str, str]
    segment: Segment | None
    filter: dict[str, Any]
    template: CouponTemplate | None
    favourite: dict[str, Any] | None  # the settings' "favourite", when it is one


def problems(
    session: Session,
    program: Program,
    *,
    name: str,
    texts: Mapping[str, str],
    segment: str | None,
    now: dt.datetime,
    send_at: dt.datetime | None = None,
    control_percent: int = 0,
    coupon: str | None = None,
    filter: Mapping[str, Any] | None = None,
    favourite: bool = False,
    favourite_coupons: Mapping[str, str] | None = None,
) -> list[InvalidInput | NotFound]:
    """Every rule a broadcast's options break, in the order create_broadcast checks them
    (empty when it would accept them): a form shows each next to its field at once."""
    return _check(
        session,
        program,
        name=name,
        texts=texts,
        segment=segment,
        now=now,
        send_at=send_at,
        control_percent=control_percent,
        coupon=coupon,
        filter=filter,
        favourite=favourite,
        favourite_coupons=favourite_coupons,
    )[1]


def create_broadcast(
    session: Session,
    program: Program,
    *,
    name: str,
    texts: Mapping[str, str],
    segment: str | None,
    now: dt.datetime,
    send_at: dt.datetime | None = None,
    control_percent: int = 0,
    coupon: str | None = None,
    created_by: str | None = None,
    filter: Mapping[str, Any] | None = None,
    favourite: bool = False,
    favourite_coupons: Mapping[str, str] | None = None,
) -> Campaign:
    """A broadcast scheduled for `send_at` (now when None) to a saved segment, or to the
    members a `filter` selects (everyone with consent when neither is given). Raises the first
    of `problems`: InvalidInput naming the field, or NotFound for the segment or coupon
    template.

    The favourite category offer: `favourite`, `favourite_coupons` ({category: template key})
    or a text with {favourite_category} makes it one. Each recipient's {favourite_category} is
    their most bought category when the message is written, and their coupon the template
    mapped to it, else `coupon` (the fallback; none without it)."""
    checked, found = _check(
        session,
        program,
        name=name,
        texts=texts,
        segment=segment,
        now=now,
        send_at=send_at,
        control_percent=control_percent,
        coupon=coupon,
        filter=filter,
        favourite=favourite,
        favourite_coupons=favourite_coupons,
    )
    if checked is None:
        raise found[0]
    campaign = Campaign(
        program_id=program.id,
        name=checked.name,
        kind=BROADCAST,
        texts=checked.texts,
        settings={"favourite": checked.favourite} if checked.favourite is not None else None,
        segment_id=checked.segment.id if checked.segment else None,
        filter=checked.filter,
        coupon_template_id=checked.template.id if checked.template else None,
        control_percent=control_percent,
        status=SCHEDULED,
        send_at=send_at or now,
        planned_through=0,
        created_by=created_by,
        created_at=now,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _check(
    session: Session,
    program: Program,
    *,
    name: str,
    texts: Mapping[str, str],
    segment: str | None,
    now: dt.datetime,
    send_at: dt.datetime | None,
    control_percent: int,
    coupon: str | None,
    filter: Mapping[str, Any] | None,
    favourite: bool = False,
    favourite_coupons: Mapping[str, str] | None = None,
) -> tuple[_Checked | None, list[InvalidInput | NotFound]]:
    found: list[InvalidInput | NotFound] = []
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        found.append(BadBroadcast("name", f"must be 1 to {MAX_NAME} characters", "name"))
    checked: dict[str, str] = {}
    if not texts:
        try:
            check_texts(texts)
        except InvalidInput as exc:
            found.append(exc)
    # One language at a time, so a form can say what is wrong with each of them.
    for language, text in texts.items():
        try:
            checked |= check_texts({language: text}, BROADCAST_PLACEHOLDERS)
        except InvalidInput as exc:
            found.append(exc)
    if not 0 <= control_percent <= MAX_CONTROL:
        found.append(
            BadBroadcast(
                "control",
                f"must be between 0 and {MAX_CONTROL} percent",
                "control",
                max=MAX_CONTROL,
            )
        )
    if send_at is not None and send_at.tzinfo is None:
        found.append(
            BadBroadcast("send_at", "needs a time zone (e.g. 2026-12-01T10:00+01:00)", "zone")
        )
    elif send_at is not None and send_at < now - dt.timedelta(minutes=1):
        found.append(BadBroadcast("send_at", "is in the past", "past"))
    saved: Segment | None = None
    chosen: dict[str, Any] = {"all": []}
    if segment is not None and filter is not None:
        found.append(BadBroadcast("segment", "give a segment or a filter, not both", "both"))
    elif segment is not None:
        try:
            saved = segments.get(session, program.id, segment)
            chosen = dict(saved.filter)
        except NotFound as exc:
            found.append(exc)
    elif filter is not None:
        try:
            chosen = segments.validate(filter)
        except InvalidInput as exc:
            found.append(BadBroadcast(exc.field, exc.reason, "filter"))
    template: CouponTemplate | None = None
    try:
        template = coupon_for(session, program.id, coupon, checked or texts)
    except NotFound as exc:
        found.append(exc)
    except InvalidInput as exc:
        found.append(exc)
    offer: dict[str, Any] | None = None
    if favourite or favourite_coupons or any("{" + FAVOURITE + "}" in t for t in texts.values()):
        offer = {"coupons": _favourite_coupons(session, program.id, favourite_coupons or {}, found)}
    if found:
        return None, found
    return _Checked(name, checked, saved, chosen, template, offer), []


def _favourite_coupons(
    session: Session,
    program_id: int,
    given: Mapping[str, str],
    found: list[InvalidInput | NotFound],
) -> dict[str, int]:
    """{category: template key} as {category: template id}, each problem added to `found`."""
    if len(given) > MAX_FAVOURITE_COUPONS:
        found.append(
            BadBroadcast(
                "favourite_coupons",
                f"at most {MAX_FAVOURITE_COUPONS} categories",
                "favourite_many",
                max=MAX_FAVOURITE_COUPONS,
            )
        )
        return {}
    ids: dict[str, int] = {}
    for category, key in given.items():
        name = category.strip() if isinstance(category, str) else ""
        if not name or len(name) > MAX_CATEGORY or not name.isprintable():
            found.append(
                BadBroadcast(
                    "favourite_coupons",
                    f"a category is 1 to {MAX_CATEGORY} characters",
                    "favourite_category",
                    max=MAX_CATEGORY,
                )
            )
            continue
        try:
            template = coupon_for(session, program_id, str(key), None)
        except NotFound:
            found.append(
                BadBroadcast(
                    f"favourite_coupons.{name}",
                    f"the club has no active coupon template {key!r}",
                    "favourite_coupon",
                    category=name,
                    key=str(key),
                )
            )
            continue
        assert template is not None
        ids[name] = template.id
    return ids


def favourite_of(campaign: Campaign) -> dict[str, int] | None:
    """A favourite category offer's {category: coupon template id}; None for another broadcast
    (or a journey)."""
    if campaign.kind != BROADCAST:
        return None
    offer = (campaign.settings or {}).get("favourite")
    if not isinstance(offer, Mapping):
        return None
    return {str(category): int(i) for category, i in (offer.get("coupons") or {}).items()}


def favourites(session: Session, member_ids: Sequence[int], now: dt.datetime) -> dict[int, str]:
    """Each member's favourite category: the most bought by amount over the last FAVOURITE_DAYS
    (a tie: the one bought last, then the first by name), in one statement for a batch. A
    member without purchases of a category in that time is not in the answer."""
    if not member_ids:
        return {}
    since = now - dt.timedelta(days=FAVOURITE_DAYS)
    # The lines from the (member_id, category) index, each with its purchase's time.
    totals = session.execute(
        select(
            _LINES.c.member_id,
            _LINES.c.category,
            func.sum(_LINES.c.amount_minor),
            func.max(_PURCHASES.c.occurred_at),
        )
        .select_from(_LINES.join(_PURCHASES, _PURCHASES.c.id == _LINES.c.purchase_id))
        .where(
            _LINES.c.member_id.in_(sorted(set(member_ids))),
            _LINES.c.category.is_not(None),
            _PURCHASES.c.occurred_at > literal(since, _PURCHASES.c.occurred_at.type),
            _PURCHASES.c.occurred_at <= literal(now, _PURCHASES.c.occurred_at.type),
        )
        .group_by(_LINES.c.member_id, _LINES.c.category)
    ).all()
    found: dict[int, str] = {}
    # Highest amount, then the latest purchase, then the name: the first of each member wins.
    ordered = sorted(totals, key=lambda t: (t[0], -int(t[2] or 0), -_timestamp(t[3]), str(t[1])))
    for member_id, category, _, _ in ordered:
        found.setdefault(member_id, category)
    return found


def _timestamp(moment: dt.datetime | None) -> float:
    if moment is None:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def favourite_word(language: str) -> str:
    """{favourite_category} for a member without purchases: "your favourites"."""
    return locales.text(FAVOURITE_FALLBACK, language)


def longest_category(session: Session, program: Program, campaign: Campaign) -> str:
    """The longest category name a favourite offer could say (its mapping's, the club's purchase
    lines', the fallback word's is compared by the caller): what sizes its preview."""
    offered = list(favourite_of(campaign) or {})
    found = session.scalar(
        select(_LINES.c.category)
        .where(_LINES.c.program_id == program.id, _LINES.c.category.is_not(None))
        .group_by(_LINES.c.category)
        .order_by(func.length(_LINES.c.category).desc(), _LINES.c.category)
        .limit(1)
    )
    return max([*offered, *([found] if found else [])], key=len, default="")


@dataclass(frozen=True, slots=True)
class Draft:
    """A broadcast as it would be if created now: its preview and, per language of its texts,
    the text a sample member would get (placeholders filled, the opt-out line added)."""

    preview: Preview
    samples: dict[str, str]


def try_broadcast(
    session: Session, program: Program, *, now: dt.datetime, link_base: str = "", **options: Any
) -> Draft:
    """What create_broadcast(**options) would do, previewed inside a savepoint that is then
    rolled back: nothing is saved. Raises as create_broadcast does. (The control group drawn
    for a draft is an estimate: the campaign made later has another id, so another draw.)
    `link_base`: where short links are served (the app's public URL; see `preview`)."""
    savepoint = session.begin_nested()
    try:
        campaign = create_broadcast(session, program, now=now, **options)
        shown = preview(session, program, campaign, now, link_base)
        samples = {
            language: sample_text(session, program, campaign, language, link_base)
            for language in campaign.texts or {}
        }
    finally:
        savepoint.rollback()
    return Draft(shown, samples)


def coupon_for(
    session: Session, program_id: int, key: str | None, texts: Mapping[str, str] | None
) -> CouponTemplate | None:
    """The active coupon template a campaign issues (NotFound for an unknown key), checked
    against its texts: {coupon_code} without a coupon would reach members empty."""
    template: CouponTemplate | None = None
    if key is not None:
        template = session.scalar(
            select(CouponTemplate).where(
                CouponTemplate.program_id == program_id,
                CouponTemplate.key == key,
                CouponTemplate.active.is_(True),
            )
        )
        if template is None:
            raise NotFound("coupon template", key)
    if template is None and any("{coupon_code}" in text for text in (texts or {}).values()):
        raise BadBroadcast(
            "texts", "{coupon_code} needs a coupon to issue (--coupon KEY)", "coupon_needed"
        )
    return template


def get(session: Session, program_id: int, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.program_id != program_id:
        raise NotFound("campaign", str(campaign_id))
    return campaign


def all_of(
    session: Session, program_id: int, limit: int = 50, kind: str = BROADCAST
) -> list[Campaign]:
    """The club's latest campaigns of a kind (broadcasts; journeys are listed by their own)."""
    return list(
        session.scalars(
            select(Campaign)
            .where(Campaign.program_id == program_id, Campaign.kind == kind)
            .order_by(Campaign.id.desc())
            .limit(limit)
        )
    )


def cancel(session: Session, program_id: int, campaign_id: int, now: dt.datetime) -> int:
    """Stop a broadcast: nothing more is planned, and its queued messages are skipped.
    Returns how many were still waiting. A message already handed to the gateway has gone."""
    campaign = get(session, program_id, campaign_id)
    if campaign.kind != BROADCAST:
        raise Conflict("not_a_broadcast", "pause a journey instead of cancelling it")
    if campaign.status in (DONE, CANCELLED):
        raise Conflict(f"campaign_{campaign.status}", f"the campaign is already {campaign.status}")
    if campaign.recurrence:
        # A series (outreach.recurring) sends nothing itself: cancelled, it makes no more
        # occurrences, and the one made but not yet planned goes with it.
        campaign.status = states.move("series", campaign.status, CANCELLED, what=campaign.id)
        campaign.finished_at = now
        session.execute(
            update(Campaign)
            .where(Campaign.parent_id == campaign.id, Campaign.status == SCHEDULED)
            .values(status=CANCELLED, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        return 0
    campaign.status = states.move("broadcast", campaign.status, CANCELLED, what=campaign.id)
    campaign.finished_at = now
    waiting = session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.campaign_id == campaign_id, _OUTBOX.c.status == OutboxStatus.QUEUED)
        .values(status=OutboxStatus.SKIPPED, error="cancelled")
    )
    return int(waiting.rowcount or 0)


# --- before sending: who, how many segments, what it costs ---------------------------------


@dataclass(frozen=True, slots=True)
class LanguageEstimate:
    language: str
    recipients: int
    encoding: str
    segments: int  # per message, with sample values for the placeholders


@dataclass(frozen=True, slots=True)
class Preview:
    """What a broadcast would do if planned now."""

    matching: int  # in the segment (any consent)
    recipients: int  # after every guard rail and the control group
    held_out: int  # the control group
    capped: int  # left out by the cap
    no_consent: int  # in the segment without consent (or unreachable)
    languages: list[LanguageEstimate]
    sms_segments: int
    cost_minor: int
    currency: str
    first_send: dt.datetime  # send_at, or the end of quiet hours it falls in (club's zone)


def preview(
    session: Session, program: Program, campaign: Campaign, now: dt.datetime, link_base: str = ""
) -> Preview:
    """Recipients after the guard rails, SMS segments per language and the estimated cost.
    With `link_base` (the app's public URL) the owner's web addresses are sized as the short
    links the sender puts in their place (store.outreach.clicks); without, as written."""
    moment = _first_send(program, campaign, now)
    dialect = session.get_bind().dialect.name
    segments.without_jit(session)
    # One read of the segment's members, every figure a sum beside the others (three reads
    # took 2.0 s for a million members), the club's members as segments.count finds them.
    members_of, in_segment = segments.compile_joined(
        campaign.filter or {"all": []},
        program_id=program.id,
        zone=program.timezone,
        now=now,
        dialect=dialect,
    )
    texts = campaign.texts or {}
    # Each member's fate as one code, so the cap's set appears (and is built) once: 0 no
    # consent or no number, 1 capped, 2 a recipient, 3 held out as the control group.
    fate = case(
        (not_(consent.may_receive()), 0),
        (not_(guard_rails.under_cap(program, moment)), 1),
        (control_hash(campaign.id) < campaign.control_percent, 3),
        else_=2,
    )
    # With the text the member would get: one of the texts' languages (0, 1, ...) or none of
    # them (len(texts): they get the fallback text). One small number per member.
    width = len(texts) + 1
    own_text = (
        case(
            {language: number for number, language in enumerate(texts)},
            value=_language_column(program),
            else_=len(texts),
        )
        if texts
        else literal(0)
    )
    member = (
        select((fate * width + own_text).label("code"))
        .select_from(members_of)
        .where(segments.in_club(program.id, dialect), in_segment)
        # A fence (OFFSET 0): SQLite and PostgreSQL would otherwise write the code's CASEs
        # into each count below, and build the cap's set once for each.
        .offset(0)
        .subquery("member")
    )
    # Counts beside each other in one pass, not a GROUP BY (language, fate): SQLite sorted
    # every member for that (1.0 s of CPU at a million, 0.6 s this way).
    code = member.c.code
    recipients_at = [2 * width + number for number in range(width)]
    held_at = [3 * width + number for number in range(width)]
    figures = session.execute(
        select(
            func.count(),
            func.count().filter(code < width),
            func.count().filter(code < 2 * width),
            *(func.count().filter(code == at) for at in recipients_at + held_at),
        ).select_from(member)
    ).one()
    matching, no_consent, unreachable = figures[:3]
    receiving = figures[3 : 3 + width]
    holding = figures[3 + width :]
    by_language: dict[str, int] = {}
    for lang, (members_receiving, members_held) in zip(
        [*texts, ""], zip(receiving, holding, strict=True), strict=True
    ):
        if members_receiving or members_held:
            used = text_language(texts, lang)
            by_language[used] = by_language.get(used, 0) + members_receiving
    held = sum(holding)
    estimates = []
    total_segments = 0
    for lang, recipients in sorted(by_language.items()):
        sample = sample_text(session, program, campaign, lang, link_base)
        size = locales.segments(sample)
        estimates.append(LanguageEstimate(lang, recipients, size.encoding, size.segments))
        total_segments += recipients * size.segments
    return Preview(
        matching=matching,
        recipients=sum(receiving),
        held_out=held,
        capped=unreachable - no_consent,
        no_consent=no_consent,
        languages=estimates,
        sms_segments=total_segments,
        cost_minor=total_segments * program.sms_price_minor,
        currency=program.currency,
        first_send=moment,
    )


def text_language(texts: Mapping[str, Any], member_language: str) -> str:
    """Which of the campaign's texts a member gets: their own language, else English, else the
    club's first text (an owner who wrote only Norwegian still reaches everyone)."""
    if member_language in texts:
        return member_language
    if locales.DEFAULT_LANGUAGE in texts:
        return locales.DEFAULT_LANGUAGE
    return next(iter(texts))


def sample_text(
    session: Session, program: Program, campaign: Campaign, language: str, link_base: str = ""
) -> str:
    """The text as a member would get it, with long sample values, the club's name (as a
    placeholder and before the text), the longest tier name, the owner's addresses as short
    links on `link_base` (when given) and the opt-out footer: what sizes the estimate."""
    texts = campaign.texts or {}
    template = texts[text_language(texts, language)]
    values = sample_values(session, program, language)
    if favourite_of(campaign) is not None:
        values[FAVOURITE] = max(
            values[FAVOURITE], longest_category(session, program, campaign), key=len
        )
    text = compose(template.format_map(values), language, program.name)
    return clicks.sample(text, link_base, clicks.owned_urls(texts))


def sample_values(session: Session, program: Program, language: str) -> dict[str, str]:
    """The placeholders' sample values in a language: long-ish, so sizes err on the high side."""
    ladder = session.scalars(select(Tier).where(Tier.program_id == program.id)).all()
    tier_names = [str(t.name.get(language) or next(iter(t.name.values()))) for t in ladder]
    return {
        **_SAMPLE,
        "club": program.name,
        "tier": max(tier_names, key=len, default=""),
        FAVOURITE: favourite_word(language),
    }


def compose(text: str, language: str, club: str) -> str:
    """A marketing SMS as sent: the club's name first, the text, and the opt-out line the law
    asks for in every one (PRODUCT.md, "Privacy and consent"). Broadcasts and journeys alike
    come through here, and so do their previews, sizes and costs."""
    return locales.to_gsm7(signed(text, club) + "\n" + footer(language))


def signed(text: str, club: str) -> str:
    """The text with "{club}: " before it, unless the owner began it with the club's name
    already (in any case, then a colon, a dash, a space or nothing: "TORSHOV SPORT - Sale!").
    A short code or a number shared by several clubs names no sender: the text must."""
    name = club.strip()
    head = text.lstrip()
    if not name:
        return text
    if (
        head[: len(name)].casefold() == name.casefold()
        and not head[len(name) : len(name) + 1].isalnum()
    ):
        return text
    return f"{name}: {text}"


@functools.lru_cache(maxsize=8)
def footer(language: str) -> str:
    """The opt-out line every marketing SMS ends with, in a language."""
    return locales.render("campaign.stop_footer", language)


# --- planning: the outbox rows, in chunks -----------------------------------------------------


def due_for_planning(session: Session, now: dt.datetime) -> list[int]:
    """Broadcasts whose time has (nearly) come and that are not fully planned yet."""
    return list(
        session.scalars(
            select(Campaign.id)
            .where(
                Campaign.kind == BROADCAST,
                Campaign.status.in_((SCHEDULED, PLANNING)),
                Campaign.send_at <= now + PLAN_AHEAD,
            )
            .order_by(Campaign.send_at, Campaign.id)
        )
    )


@dataclass(frozen=True, slots=True)
class Planned:
    rows: int  # outbox rows written by this chunk (recipients and held out)
    done: bool  # every member has been considered


def plan_chunk(
    session: Session, campaign_id: int, now: dt.datetime, chunk: int = PLAN_CHUNK
) -> Planned:
    """Plan the next `chunk` members (by id) of a broadcast: one INSERT ... SELECT with the
    segment, the guard rails and the control group in its WHERE, idempotent on the outbox's
    (campaign, member, occasion) key. Call until `done`; each call is its own transaction."""
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None or campaign.status not in (SCHEDULED, PLANNING):
        return Planned(0, True)
    program = session.get(Program, campaign.program_id)
    assert program is not None
    if campaign.status == SCHEDULED:
        campaign.status = states.move("broadcast", SCHEDULED, PLANNING, what=campaign.id)
    low = campaign.planned_through
    # Chunks are id ranges: the newest id is a lookup on the primary key, while counting off
    # the club's next 5,000 ids would read them. (With several clubs a chunk holds fewer of
    # this club's members; it stays one range scan.)
    newest = session.scalar(select(func.max(_MEMBERS.c.id))) or 0
    if low >= newest:
        campaign.status = states.move("broadcast", campaign.status, SENDING, what=campaign.id)
        campaign.planned_at = now
        return Planned(0, True)
    high = min(low + chunk, newest)
    written = _plan_range(session, program, campaign, low, high, now)
    campaign.planned_through = high
    return Planned(written, False)


def _plan_range(
    session: Session,
    program: Program,
    campaign: Campaign,
    low: int,
    high: int,
    now: dt.datetime,
) -> int:
    moment = _first_send(program, campaign, now)
    sender = programs.numbers(session, program.id)[0]
    status = case(
        (control_hash(campaign.id) < campaign.control_percent, OutboxStatus.HELD_OUT),
        else_=OutboxStatus.QUEUED,
    )
    chosen = select(
        _MEMBERS.c.program_id,
        _MEMBERS.c.id,
        literal(campaign.id),
        literal(""),
        literal(guard_rails.MARKETING),
        status,
        _MEMBERS.c.phone,
        literal(sender),
        literal(0),
        literal(0),
        literal(now, OutboxMessage.created_at.type),
        literal(moment, OutboxMessage.send_after.type),
    ).where(
        # `+ 0`: the chunk's id range must drive the scan. Offered program_id, SQLite's planner
        # walks the club's whole (program_id, phone) index for every chunk instead.
        (_MEMBERS.c.program_id + 0) == program.id,
        _segment_clause(program, campaign, now, session, id_range=(low, high)),
        consent.may_receive(),
        guard_rails.under_cap(program, moment, per_member=True),
    )
    insert = INSERT_OUTBOX[session.get_bind().dialect.name].from_select(PLANNED_COLUMNS, chosen)
    return int(session.execute(insert).rowcount or 0)


def finished() -> ColumnElement[bool]:
    """The broadcasts planned whose rows have all left the queue: done, once marked so. The
    sender's idle check asks this too (a read), so an idle tick writes nothing."""
    waiting = (
        select(_OUTBOX.c.id)
        .where(
            _OUTBOX.c.campaign_id == Campaign.id,
            _OUTBOX.c.status.in_((OutboxStatus.QUEUED, OutboxStatus.SENDING)),
        )
        .exists()
    )
    return and_(Campaign.kind == BROADCAST, Campaign.status == SENDING, ~waiting)


states.require("broadcast", (SENDING, DONE))  # finish_sent's WHERE (finished()) holds SENDING
states.require("outbox", (OutboxStatus.QUEUED, OutboxStatus.SKIPPED))  # cancel's bulk UPDATE
states.require("broadcast", (SCHEDULED, CANCELLED))  # cancel's, of a series' next occurrence


def finish_sent(session: Session, now: dt.datetime) -> int:
    """Mark broadcasts done once planned and nothing of theirs waits to be sent."""
    done = session.execute(
        update(Campaign)
        .where(finished())
        .values(status=DONE, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount or 0)


# --- what happened ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """A campaign's rows by status, and delivery as the carrier reported it."""

    by_status: dict[str, int]
    delivered: int
    undelivered: int
    failed: int
    skipped: dict[str, int]  # why, when a guard rail held a message back at sending


def outcome(session: Session, campaign_id: int) -> Outcome:
    statuses = dict(
        session.execute(
            select(_OUTBOX.c.status, func.count())
            .where(_OUTBOX.c.campaign_id == campaign_id)
            .group_by(_OUTBOX.c.status)
        ).all()
    )
    delivery = dict(
        session.execute(
            select(_OUTBOX.c.delivery, func.count())
            .where(_OUTBOX.c.campaign_id == campaign_id, _OUTBOX.c.delivery.is_not(None))
            .group_by(_OUTBOX.c.delivery)
        ).all()
    )
    skipped = dict(
        session.execute(
            select(_OUTBOX.c.error, func.count())
            .where(_OUTBOX.c.campaign_id == campaign_id, _OUTBOX.c.status == OutboxStatus.SKIPPED)
            .group_by(_OUTBOX.c.error)
        ).all()
    )
    return Outcome(
        by_status={str(k): int(v) for k, v in statuses.items()},
        delivered=int(delivery.get("delivered", 0)),
        undelivered=int(delivery.get("undelivered", 0)),
        failed=int(delivery.get("failed", 0)) + int(statuses.get(OutboxStatus.FAILED, 0)),
        skipped={str(k or "?"): int(v) for k, v in skipped.items()},
    )


def tallies(session: Session, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Each campaign's outbox rows by status, in one query (a list of campaigns shows them)."""
    found: dict[int, dict[str, int]] = {campaign_id: {} for campaign_id in campaign_ids}
    if not campaign_ids:
        return found
    for campaign_id, status, n in session.execute(
        select(_OUTBOX.c.campaign_id, _OUTBOX.c.status, func.count())
        .where(_OUTBOX.c.campaign_id.in_(list(campaign_ids)))
        .group_by(_OUTBOX.c.campaign_id, _OUTBOX.c.status)
    ):
        found[campaign_id][str(status)] = int(n)
    return found


@dataclass(frozen=True, slots=True)
class Recipient:
    """A member a campaign planned a message for (or held out), as its outbox row says."""

    member_id: int | None
    first_name: str | None
    phone: str | None
    status: str
    delivery: str | None
    sent_at: dt.datetime | None


def recipients(
    session: Session, program_id: int, campaign_id: int, limit: int = 50
) -> list[Recipient]:
    """The first `limit` members of a campaign's outbox rows, in the order they were planned."""
    rows = session.execute(
        select(
            _OUTBOX.c.member_id,
            _MEMBERS.c.first_name,
            _OUTBOX.c.to_number,
            _OUTBOX.c.status,
            _OUTBOX.c.delivery,
            _OUTBOX.c.sent_at,
        )
        .select_from(_OUTBOX.outerjoin(_MEMBERS, _MEMBERS.c.id == _OUTBOX.c.member_id))
        .where(_OUTBOX.c.campaign_id == campaign_id, _OUTBOX.c.program_id == program_id)
        .order_by(_OUTBOX.c.id)
        .limit(limit)
    )
    return [Recipient(*row) for row in rows]


# --- helpers ----------------------------------------------------------------------------------


def _segment_clause(
    program: Program,
    campaign: Campaign,
    now: dt.datetime,
    session: Session,
    id_range: tuple[int, int] | None = None,
) -> ColumnElement[bool]:
    return segments.compile_filter(
        campaign.filter or {"all": []},
        program_id=program.id,
        zone=program.timezone,
        now=now,
        dialect=session.get_bind().dialect.name,
        id_range=id_range,
    )


def control_hash(campaign_id: int) -> ColumnElement[int]:
    """0-99 for each member of a campaign; the control group is those below its percent."""
    h = (_MEMBERS.c.id + campaign_id * _HASH_SHIFT) % _HASH_P
    return (((h * h) % _HASH_P * _HASH_A + h * _HASH_B) % _HASH_P) % 100


def _language_column(program: Program) -> ColumnElement[str]:
    """The member's language, or the one their number suggests (as the conversation does)."""
    guess = case(
        *(
            (_MEMBERS.c.phone.like(f"{prefix}%"), language)
            for prefix, language in locales.PREFIX_LANGUAGES
        ),
        else_=locales.DEFAULT_LANGUAGE,
    )
    return func.coalesce(_MEMBERS.c.language, guess)


def _first_send(program: Program, campaign: Campaign, now: dt.datetime) -> dt.datetime:
    moment = max(campaign.send_at or now, now)
    return guard_rails.first_moment(
        moment, ZoneInfo(program.timezone), program.quiet_start, program.quiet_end
    )
