"""The club's extra earning rules: punch cards, bonus points on a category or brand, and
point multipliers for a period."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.clubs.programs import InvalidSettings
from store.errors import NotFound
from store.loyalty import coupons
from store.models import BonusRule, CouponTemplate, PointMultiplier, Program, PunchCard

MAX_TEXT = 60  # PunchCard.category, BonusRule.value, PointMultiplier.name
BONUS_FIELDS = ("category", "brand")
# The ranges of the rules' numbers: a card of every purchase would be no card at all, and
# beyond these a typo (500 extra points, 50x points) would give the shop away.
LIMITS: dict[str, tuple[int, int]] = {
    "every": (2, 50),
    "extra_points": (1, 1000),
    "multiplier": (2, 5),
}

_Row = TypeVar("_Row", PunchCard, BonusRule, PointMultiplier)

# A value the caller could not read (a form's "abc" for a number) is given as None and named
# like any other bad value, so every bad field of a form is reported at once. (The asserts
# after each check only tell the type checker what the check made sure of.)


# --- punch cards ------------------------------------------------------------------------------


def punch_cards(session: Session, program_id: int) -> Sequence[PunchCard]:
    """The club's punch cards, on and off, in the order they were made."""
    return session.scalars(
        select(PunchCard).where(PunchCard.program_id == program_id).order_by(PunchCard.id)
    ).all()


def add_punch_card(
    session: Session,
    program: Program,
    *,
    category: str,
    every: int | None,
    template_id: int | None,
) -> PunchCard:
    """A new card, on: every `every`th purchase with a line in `category` issues a coupon of
    the club's punch-card template `template_id`. Raises InvalidSettings naming every bad
    field; nothing changes then."""
    category = category.strip()
    _refuse(_card_problems(session, program.id, category, every, template_id))
    assert every is not None
    assert template_id is not None
    card = PunchCard(
        program_id=program.id,
        category=category,
        every=every,
        template_id=template_id,
        active=True,
    )
    session.add(card)
    session.flush()
    return card


def edit_punch_card(
    session: Session,
    program_id: int,
    card_id: int,
    *,
    category: str,
    every: int | None,
    template_id: int | None,
) -> PunchCard:
    """A card's category, count and free item. Coupons already issued stay as they are; the
    member's next punches count with the new rule."""
    card = _own(session, PunchCard, program_id, card_id, "punch_card")
    category = category.strip()
    _refuse(_card_problems(session, program_id, category, every, template_id))
    assert every is not None
    assert template_id is not None
    card.category, card.every, card.template_id = category, every, template_id
    session.flush()
    return card


def set_punch_card_active(
    session: Session, program_id: int, card_id: int, *, active: bool
) -> PunchCard:
    """Turn a card off (it gives no coupons) or on again. Never deleted: issued coupons and
    past purchases refer to it. A card whose coupon is retired is not turned on
    (InvalidSettings naming template_id): it would give nothing."""
    card = _own(session, PunchCard, program_id, card_id, "punch_card")
    if active:
        template = session.get(CouponTemplate, card.template_id)
        if template is None or not template.active:
            raise InvalidSettings({"template_id": "its coupon template is retired"})
    card.active = active
    session.flush()
    return card


def _card_problems(
    session: Session, program_id: int, category: str, every: int | None, template_id: int | None
) -> dict[str, str]:
    problems = _text_problems("category", category)
    problems |= _range_problems(every=every)
    template = session.get(CouponTemplate, template_id) if template_id is not None else None
    if (
        template is None
        or template.program_id != program_id
        or template.kind != coupons.PUNCH
        or not template.active
    ):
        problems["template_id"] = "one of the club's active punch-card coupon templates"
    return problems


# --- bonus rules ------------------------------------------------------------------------------


def bonus_rules(session: Session, program_id: int) -> Sequence[BonusRule]:
    """The club's bonus rules, categories first, then brands, by value."""
    return session.scalars(
        select(BonusRule)
        .where(BonusRule.program_id == program_id)
        .order_by(BonusRule.field.desc(), BonusRule.value, BonusRule.id)
    ).all()


def add_bonus_rule(
    session: Session, program: Program, *, field: str, value: str, extra_points: int | None
) -> BonusRule:
    """Extra points per earning unit on purchase lines whose category (or brand) is `value`
    (compared without regard to case). Raises InvalidSettings naming every bad field."""
    value = value.strip()
    _refuse(_bonus_problems(field, value, extra_points))
    assert extra_points is not None
    rule = BonusRule(program_id=program.id, field=field, value=value, extra_points=extra_points)
    session.add(rule)
    session.flush()
    return rule


def edit_bonus_rule(
    session: Session,
    program_id: int,
    rule_id: int,
    *,
    field: str,
    value: str,
    extra_points: int | None,
) -> BonusRule:
    """A bonus rule changed: purchases from now on earn by it; points earned stay."""
    rule = _own(session, BonusRule, program_id, rule_id, "bonus_rule")
    value = value.strip()
    _refuse(_bonus_problems(field, value, extra_points))
    assert extra_points is not None
    rule.field, rule.value, rule.extra_points = field, value, extra_points
    session.flush()
    return rule


def remove_bonus_rule(session: Session, program_id: int, rule_id: int) -> None:
    """Deleted: a rule only shapes future earning (each purchase line keeps its points)."""
    session.delete(_own(session, BonusRule, program_id, rule_id, "bonus_rule"))
    session.flush()


def _bonus_problems(field: str, value: str, extra_points: int | None) -> dict[str, str]:
    problems: dict[str, str] = {}
    if field not in BONUS_FIELDS:
        problems["field"] = f"one of {', '.join(BONUS_FIELDS)}"
    problems |= _text_problems("value", value)
    problems |= _range_problems(extra_points=extra_points)
    return problems


# --- point multipliers ------------------------------------------------------------------------


def multipliers(session: Session, program_id: int) -> Sequence[PointMultiplier]:
    """The club's multiplier periods, the latest first."""
    return session.scalars(
        select(PointMultiplier)
        .where(PointMultiplier.program_id == program_id)
        .order_by(PointMultiplier.starts_on.desc(), PointMultiplier.id.desc())
    ).all()


def add_multiplier(
    session: Session,
    program: Program,
    *,
    name: str,
    starts_on: dt.date | None,
    ends_on: dt.date | None,
    multiplier: int | None,
) -> PointMultiplier:
    """Points times `multiplier` on purchases made from `starts_on` to `ends_on`, both days
    included, in the club's time zone (where periods overlap, the largest applies). Raises
    InvalidSettings naming every bad field."""
    name = name.strip()
    _refuse(_multiplier_problems(name, starts_on, ends_on, multiplier))
    assert starts_on is not None
    assert ends_on is not None
    assert multiplier is not None
    period = PointMultiplier(
        program_id=program.id,
        name=name,
        starts_on=starts_on,
        ends_on=ends_on,
        multiplier=multiplier,
    )
    session.add(period)
    session.flush()
    return period


def edit_multiplier(
    session: Session,
    program_id: int,
    multiplier_id: int,
    *,
    name: str,
    starts_on: dt.date | None,
    ends_on: dt.date | None,
    multiplier: int | None,
) -> PointMultiplier:
    """A period changed: purchases recorded from now on earn by it; points earned stay."""
    period = _own(session, PointMultiplier, program_id, multiplier_id, "multiplier")
    name = name.strip()
    _refuse(_multiplier_problems(name, starts_on, ends_on, multiplier))
    assert starts_on is not None
    assert ends_on is not None
    assert multiplier is not None
    period.name, period.starts_on, period.ends_on = name, starts_on, ends_on
    period.multiplier = multiplier
    session.flush()
    return period


def remove_multiplier(session: Session, program_id: int, multiplier_id: int) -> None:
    """Deleted: a period only shapes future earning."""
    session.delete(_own(session, PointMultiplier, program_id, multiplier_id, "multiplier"))
    session.flush()


def _multiplier_problems(
    name: str, starts_on: dt.date | None, ends_on: dt.date | None, multiplier: int | None
) -> dict[str, str]:
    problems = _text_problems("name", name)
    if starts_on is None:
        problems["starts_on"] = "a date"
    if ends_on is None:
        problems["ends_on"] = "a date"
    elif starts_on is not None and ends_on < starts_on:
        problems["ends_on"] = "not before starts_on"
    problems |= _range_problems(multiplier=multiplier)
    return problems


# --- helpers ----------------------------------------------------------------------------------


def _own(session: Session, model: type[_Row], program_id: int, row_id: int, what: str) -> _Row:
    """The club's own row; another club's (or none) is NotFound, whatever the id."""
    row = session.get(model, row_id)
    if row is None or row.program_id != program_id:
        raise NotFound(what, str(row_id))
    return row


def _text_problems(field: str, text: str) -> dict[str, str]:
    if not text or len(text) > MAX_TEXT:
        return {field: f"1 to {MAX_TEXT} characters"}
    return {}


def _range_problems(**values: int | None) -> dict[str, str]:
    problems: dict[str, str] = {}
    for field, value in values.items():
        low, high = LIMITS[field]
        if value is None or isinstance(value, bool) or not low <= value <= high:
            problems[field] = f"a whole number from {low} to {high}"
    return problems


def _refuse(problems: dict[str, str]) -> None:
    if problems:
        raise InvalidSettings(problems)
