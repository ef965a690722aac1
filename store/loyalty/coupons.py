"""Coupons: templates, issuing once per reason, the member's valid coupons, redeeming once."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.database import plain_rows, plain_write
from store.errors import Conflict, InvalidInput, InvalidSetting, NotFound
from store.loyalty import offers
from store.models import Campaign, Coupon, CouponTemplate, Member, Program, PunchCard, Purchase
from store.states import CampaignStatus, CouponState, MemberStatus

WELCOME = "welcome"
BIRTHDAY = "birthday"
CAMPAIGN = "campaign"
REWARD = "reward"
REFERRAL = "referral"
PUNCH = "punch"
KINDS = (WELCOME, BIRTHDAY, CAMPAIGN, REWARD, REFERRAL, PUNCH)
MAX_VALID_DAYS = 3660
# A gift's source ("gift:<random>:<who gave it>"): the gift_received journey finds gifts by it.
GIFT_SOURCE = "gift:"
MAX_GIVER = 60  # of the source's 80 characters, what names who gave it

# No 0/O, 1/I/L: a code read aloud at the till or typed from an SMS can't be misread.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
_NOT_CODE = re.compile(r"[\s\-_.]")

_COUPONS = Coupon.__table__
# No conflict target: a source issued before and a code drawn twice are both "nothing".
_INSERT_NEW = {
    name: module.insert(_COUPONS).on_conflict_do_nothing().returning(_COUPONS.c.id)
    for name, module in (("sqlite", sqlite), ("postgresql", postgresql))
}


def display(code: str) -> str:
    """ABCD2345 as ABCD-2345: easier to read aloud and to copy."""
    return f"{code[:4]}-{code[4:]}" if len(code) == CODE_LENGTH else code


def normalize(raw: str) -> str:
    """What a till or a member types ("abcd 2345", "ABCD-2345") as the stored code."""
    return _NOT_CODE.sub("", raw).upper()


def create_template(
    session: Session,
    program: Program,
    *,
    key: str,
    kind: str,
    benefit: Mapping[str, str],
    valid_days: int,
    discount_percent: int | None = None,
    discount_minor: int | None = None,
    points_cost: int | None = None,
    position: int = 0,
    offer: Mapping[str, Any] | None = None,
) -> CouponTemplate:
    """A new template, in use. Raises InvalidSetting naming the first bad field. `offer`:
    what the till computes (store.loyalty.offers), None for a benefit the cashier reads."""
    if kind not in KINDS:
        raise InvalidSetting("kind", f"must be one of {', '.join(KINDS)}")
    benefit = _wording(benefit)
    _check_template(kind, benefit, valid_days, discount_percent, discount_minor, points_cost)
    parsed = offers.parse(offer)
    taken = session.scalar(
        select(CouponTemplate.id).where(
            CouponTemplate.program_id == program.id, CouponTemplate.key == key
        )
    )
    if taken is not None:
        raise InvalidSetting("key", f"the club already has a coupon template {key}")
    template = CouponTemplate(
        program_id=program.id,
        key=key,
        kind=kind,
        benefit=dict(benefit),
        discount_percent=discount_percent,
        discount_minor=discount_minor,
        points_cost=points_cost,
        valid_days=valid_days,
        position=position,
        active=True,
        offer=parsed.as_json() if parsed is not None else None,
    )
    session.add(template)
    session.flush()
    return template


def edit_template(
    session: Session,
    program_id: int,
    template_id: int,
    *,
    benefit: Mapping[str, str],
    valid_days: int,
    discount_percent: int | None = None,
    discount_minor: int | None = None,
    points_cost: int | None = None,
    offer: Mapping[str, Any] | None = None,
) -> CouponTemplate:
    """What a template gives (`offer`: what the till computes, None for none), costs and how
    long its coupons last. Its key and kind stay (campaigns and issued coupons name them).
    Coupons issued before keep their validity; they are described, and priced at the till,
    with the new wording and offer. Raises NotFound, or InvalidSetting naming the first bad
    field (nothing changes then)."""
    template = template_of(session, program_id, template_id)
    benefit = _wording(benefit)
    _check_template(
        template.kind, benefit, valid_days, discount_percent, discount_minor, points_cost
    )
    parsed = offers.parse(offer)
    template.benefit = benefit
    template.offer = parsed.as_json() if parsed is not None else None
    template.valid_days = valid_days
    template.discount_percent = discount_percent
    template.discount_minor = discount_minor
    template.points_cost = points_cost
    session.flush()
    return template


class TemplateInUse(InvalidSetting):
    """A template a journey that is on (by its trigger) or a broadcast not sent yet (by its
    name) gives: it can't be retired before they stop giving it."""

    def __init__(self, *, journeys: list[str], broadcasts: list[str]) -> None:
        super().__init__("in_use", ", ".join([*journeys, *broadcasts]))
        self.journeys = journeys
        self.broadcasts = broadcasts


def set_template_active(
    session: Session, program_id: int, template_id: int, *, active: bool
) -> CouponTemplate:
    """Retire a template (no new coupons of it: no welcome, birthday or referral coupon of it,
    no reward to claim) or bring it back. Never deleted: issued coupons refer to it and stay
    valid. A template an active punch card gives can't be retired (InvalidSetting "active"):
    the card would punch on and give nothing; nor one a journey that is on or a broadcast not
    sent yet gives (TemplateInUse, naming them): their texts promise a code."""
    template = template_of(session, program_id, template_id)
    if not active:
        card = session.scalar(
            select(PunchCard.id).where(
                PunchCard.template_id == template.id, PunchCard.active.is_(True)
            )
        )
        if card is not None:
            raise InvalidSetting("active", "an active punch card gives this coupon")
        # A journey's and a broadcast's lifecycles share no status (store.states): an active
        # campaign is a journey that is on, a scheduled or planning one a broadcast not sent yet.
        users = session.execute(
            select(Campaign.status, Campaign.name)
            .where(
                Campaign.coupon_template_id == template.id,
                Campaign.status.in_(
                    (CampaignStatus.ACTIVE, CampaignStatus.SCHEDULED, CampaignStatus.PLANNING)
                ),
            )
            .order_by(Campaign.id)
        ).all()
        if users:
            raise TemplateInUse(
                journeys=[name for status, name in users if status == CampaignStatus.ACTIVE],
                broadcasts=[name for status, name in users if status != CampaignStatus.ACTIVE],
            )
    template.active = active
    session.flush()
    return template


def template_of(session: Session, program_id: int, template_id: int) -> CouponTemplate:
    """One of the club's templates (in use or retired); another club's is NotFound."""
    template = session.get(CouponTemplate, template_id)
    if template is None or template.program_id != program_id:
        raise NotFound("coupon_template", str(template_id))
    return template


def _wording(benefit: Mapping[str, str]) -> dict[str, str]:
    """The benefit per language, the languages left empty left out."""
    return {lang: text.strip() for lang, text in benefit.items() if text.strip()}


def _check_template(
    kind: str,
    benefit: Mapping[str, str],
    valid_days: int,
    discount_percent: int | None,
    discount_minor: int | None,
    points_cost: int | None,
) -> None:
    if kind == REWARD and (points_cost is None or points_cost <= 0):
        raise InvalidSetting("points_cost", "a reward costs a positive number of points")
    if kind != REWARD and points_cost is not None:
        raise InvalidSetting("points_cost", "only a reward costs points")
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise InvalidSetting("valid_days", f"must be between 1 and {MAX_VALID_DAYS}")
    if discount_percent is not None and not 1 <= discount_percent <= 100:
        raise InvalidSetting("discount_percent", "must be between 1 and 100")
    if discount_minor is not None and discount_minor <= 0:
        raise InvalidSetting("discount_minor", "must be a positive amount")
    if not benefit:
        raise InvalidSetting("benefit", "say what the coupon gives, per language")
    if discount_minor is None and any("{amount}" in text for text in benefit.values()):
        raise InvalidSetting("benefit", "{amount} needs the coupon's discount_minor")


def templates(
    session: Session, program_id: int, kind: str | None = None, *, retired: bool = False
) -> list[CouponTemplate]:
    """The club's templates in use (with `retired`, the retired ones too), in their order."""
    query = select(CouponTemplate).where(CouponTemplate.program_id == program_id)
    if not retired:
        query = query.where(CouponTemplate.active.is_(True))
    if kind is not None:
        query = query.where(CouponTemplate.kind == kind)
    return list(
        session.scalars(
            query.order_by(CouponTemplate.position, CouponTemplate.points_cost, CouponTemplate.id)
        )
    )


def template_for(session: Session, program_id: int, kind: str) -> CouponTemplate | None:
    """The club's coupon of a kind (welcome, birthday, referral): the first active one."""
    found = templates(session, program_id, kind)
    return found[0] if found else None


def rewards(session: Session, program_id: int) -> list[CouponTemplate]:
    """The rewards a member can claim with points, numbered from 1 in this order (CLAIM n)."""
    return templates(session, program_id, REWARD)


def issue(
    session: Session,
    program_id: int,
    member_id: int,
    template: CouponTemplate,
    source: str,
    now: dt.datetime,
    *,
    purchase_id: int | None = None,
) -> Coupon:
    """Issue a coupon for a reason (`source`); the same reason again returns the first one.

    One statement in the common case (a member's YES issues the welcome coupon on the SQLite
    writer's hot path): the insert itself tells a new reason from one seen before, as the
    club's unique keys on source and on code refuse it (ON CONFLICT DO NOTHING); nothing came
    back and the source is not there means the random code was taken, so another is drawn."""
    conn = session.connection()
    while True:
        values = {
            "program_id": program_id,
            "member_id": member_id,
            "template_id": template.id,
            "code": "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH)),
            "source": source,
            "purchase_id": purchase_id,
            "issued_at": now,
            "valid_from": now,
            "valid_until": now + dt.timedelta(days=template.valid_days),
            "redeemed_at": None,
            "redeemed_by": None,
            "redeemed_ref": None,
        }
        written, _ = plain_write(conn, _INSERT_NEW[conn.dialect.name], values)
        if written:
            # Built from what was written, not read back (a turn issues and shows it).
            return Coupon(id=written[0][0], **values)
        existing = plain_rows(conn, _BY_SOURCE, {"program_id": program_id, "source": source})
        if existing:
            found = session.get(Coupon, existing[0][0])
            assert found is not None
            return found


def give(
    session: Session,
    program: Program,
    member_id: int,
    template: str,
    by: str,
    now: dt.datetime,
) -> Held:
    """Give a member a coupon of the club's template (by its key) as a gift from staff or a
    till: a coupon of its own each time, its source naming who gave it (GIFT_SOURCE, which the
    gift_received journey announces). Raises NotFound for a member or template key the club
    has not (a retired template gives nothing), InvalidInput "member" for a number that has
    not joined or was erased."""
    member = session.get(Member, member_id)
    if member is None or member.program_id != program.id:
        raise NotFound("member", str(member_id))
    if member.status not in (MemberStatus.ACTIVE, MemberStatus.STOPPED):
        raise InvalidInput("member", f"a {member.status} member can't be given a coupon")
    found = session.scalar(
        select(CouponTemplate).where(
            CouponTemplate.program_id == program.id,
            CouponTemplate.key == template,
            CouponTemplate.active.is_(True),
        )
    )
    if found is None:
        raise NotFound("coupon_template", template)
    source = f"{GIFT_SOURCE}{secrets.token_hex(6)}:{by.strip()[:MAX_GIVER]}"
    return Held(issue(session, program.id, member_id, found, source, now), found)


def given_by(coupon: Coupon) -> str | None:
    """Who gave a coupon as a gift (give's `by`), None for one not given as a gift."""
    if not coupon.source.startswith(GIFT_SOURCE):
        return None
    return coupon.source.removeprefix(GIFT_SOURCE).partition(":")[2]


_BY_SOURCE = select(_COUPONS.c.id).where(
    _COUPONS.c.program_id == bindparam("program_id"), _COUPONS.c.source == bindparam("source")
)


@dataclass(frozen=True, slots=True)
class ClubTemplates:
    """A club's coupon templates, kept in memory by store.clubs.directory.ClubDirectory."""

    by_id: dict[int, CouponTemplate]
    first_of_kind: dict[str, CouponTemplate]  # the active template used for welcome, birthday...
    rewards: list[CouponTemplate]  # numbered from 1 in this order (CLAIM n)


def club_templates(session: Session, program_id: int) -> ClubTemplates:
    """Every template of the club, detached from the session."""
    rows = list(
        session.scalars(
            select(CouponTemplate)
            .where(CouponTemplate.program_id == program_id)
            .order_by(CouponTemplate.position, CouponTemplate.points_cost, CouponTemplate.id)
        )
    )
    for row in rows:
        session.expunge(row)
    first: dict[str, CouponTemplate] = {}
    for row in rows:
        if row.active:
            first.setdefault(row.kind, row)
    rewards = [row for row in rows if row.active and row.kind == REWARD]
    return ClubTemplates({row.id: row for row in rows}, first, rewards)


@dataclass(frozen=True, slots=True)
class Valid:
    """A valid coupon as a reply lists it."""

    code: str
    valid_until: dt.datetime
    template_id: int


def valid_codes(session: Session, member_id: int, now: dt.datetime) -> list[Valid]:
    """The member's coupons that can be used now, soonest to end first (one plain read)."""
    rows = session.connection().execute(_VALID, {"member_id": member_id, "now": now})
    return [Valid(code, until, template_id) for code, until, template_id in rows]


_VALID = (
    select(_COUPONS.c.code, _COUPONS.c.valid_until, _COUPONS.c.template_id)
    .where(
        _COUPONS.c.member_id == bindparam("member_id"),
        _COUPONS.c.valid_until > bindparam("now"),
        _COUPONS.c.valid_from <= bindparam("now"),
        _COUPONS.c.redeemed_at.is_(None),
    )
    .order_by(_COUPONS.c.valid_until, _COUPONS.c.id)
)


@dataclass(frozen=True, slots=True)
class Held:
    """A coupon with what it gives."""

    coupon: Coupon
    template: CouponTemplate

    def benefit(self, language: str) -> str:
        return _in_language(self.template.benefit, language)


def _in_language(texts: Mapping[str, Any], language: str) -> str:
    return str(texts.get(language) or texts.get("en") or next(iter(texts.values()), ""))


def valid_for(session: Session, member_id: int, now: dt.datetime) -> list[Held]:
    """The member's coupons that can be used now, soonest to end first."""
    rows = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, Coupon.template_id == CouponTemplate.id)
        .where(
            Coupon.member_id == member_id,
            Coupon.valid_until > now,
            Coupon.valid_from <= now,
            Coupon.redeemed_at.is_(None),
        )
        .order_by(Coupon.valid_until, Coupon.id)
    ).all()
    return [Held(coupon, template) for coupon, template in rows]


def find(session: Session, program_id: int, code: str) -> Held | None:
    row = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, Coupon.template_id == CouponTemplate.id)
        .where(Coupon.program_id == program_id, Coupon.code == normalize(code))
        .execution_options(populate_existing=True)
    ).first()
    return Held(row[0], row[1]) if row else None


def state(coupon: Coupon, now: dt.datetime) -> str:
    """valid, redeemed, expired or not_yet_valid."""
    if coupon.redeemed_at is not None:
        return CouponState.REDEEMED
    if coupon.valid_until <= now:
        return CouponState.EXPIRED
    if coupon.valid_from > now:
        return CouponState.NOT_YET_VALID
    return CouponState.VALID


def redeem(
    session: Session,
    program_id: int,
    code: str,
    now: dt.datetime,
    *,
    by: str,
    ref: str | None = None,
) -> Held:
    """Redeem a coupon once. One conditional UPDATE decides: of two tills redeeming the same
    code at the same moment exactly one changes the row; the other gets Conflict."""
    normalized = normalize(code)
    changed = (
        session.connection()
        .execute(
            update(_COUPONS)
            .where(
                _COUPONS.c.program_id == program_id,
                _COUPONS.c.code == normalized,
                _COUPONS.c.redeemed_at.is_(None),
                _COUPONS.c.valid_from <= now,
                _COUPONS.c.valid_until > now,
            )
            .values(redeemed_at=now, redeemed_by=by, redeemed_ref=ref)
        )
        .rowcount
    )
    held = find(session, program_id, normalized)
    if held is None:
        raise NotFound("coupon", code)
    if changed != 1:
        why = state(held.coupon, now)
        raise Conflict(f"coupon_{why}", _REASONS.get(why, why))
    return held


_REASONS = {
    CouponState.REDEEMED: "the coupon has already been redeemed",
    CouponState.EXPIRED: "the coupon has expired",
    CouponState.NOT_YET_VALID: "the coupon is not valid yet",
}


def issued_by_purchase(session: Session, purchase_id: int) -> list[Held]:
    """The coupons a purchase issued its buyer (a punch card's free item, a referral reward).

    Not the friend's referral coupon the same purchase issued: the till shows these to the
    buyer, and the friend's code is the friend's."""
    rows = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, Coupon.template_id == CouponTemplate.id)
        .join(Purchase, Purchase.id == Coupon.purchase_id)
        .where(Coupon.purchase_id == purchase_id, Coupon.member_id == Purchase.member_id)
        .order_by(Coupon.id)
    ).all()
    return [Held(coupon, template) for coupon, template in rows]


def benefit_of(template: CouponTemplate | offers.Terms, language: str) -> str:
    """What a coupon of this template gives, in the language (else English, else any)."""
    return _in_language(template.benefit, language)


def welcome_of(session: Session, program_id: int, member_id: int) -> Held | None:
    """The member's welcome coupon while it can still be used."""
    row = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, Coupon.template_id == CouponTemplate.id)
        .where(
            Coupon.program_id == program_id,
            Coupon.source == f"welcome:{member_id}",
            Coupon.redeemed_at.is_(None),
        )
    ).first()
    return Held(row[0], row[1]) if row else None
