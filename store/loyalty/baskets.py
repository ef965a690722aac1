"""A basket priced for the till (store.loyalty.offers.evaluate on the club's coupons and the
member's tier), and the coupons a sale applies redeemed with it, exactly once."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from store.database import plain_rows
from store.loyalty import coupons, offers
from store.loyalty.earning import Line
from store.models import Coupon, CouponTemplate, Member, Purchase, PurchaseLine, Tier
from store.states import MemberStatus

_COUPONS = Coupon.__table__
# The same conditions as coupons.redeem: of two sales using one code, exactly one changes it.
_REDEEM = (
    update(_COUPONS)
    .where(
        _COUPONS.c.id == bindparam("coupon_id"),
        _COUPONS.c.redeemed_at.is_(None),
        _COUPONS.c.valid_from <= bindparam("now"),
        _COUPONS.c.valid_until > bindparam("now"),
    )
    .values(
        redeemed_at=bindparam("now"), redeemed_by=bindparam("by"), redeemed_ref=bindparam("ref")
    )
)


@dataclass(frozen=True, slots=True)
class Step:
    """A step of the tier ladder as a basket's price reads it."""

    id: int
    position: int
    name: dict[str, Any]  # per language
    discount_percent: int


@dataclass(frozen=True, slots=True)
class Priced:
    """A basket's evaluation and the tier that gave its tier discount (None: no ladder)."""

    evaluation: offers.Evaluation
    tier: Tier | Step | None


def tier_of(ladder: Sequence[Tier], tier_id: int | None) -> Tier | None:
    """The tier a member holds: tier_id, or the ladder's first step (tiers.standing_of's rule);
    None for a club without a ladder or a buyer who is not a member."""
    if not ladder:
        return None
    return next((t for t in ladder if t.id == tier_id), ladder[0])


@dataclass(frozen=True, slots=True)
class Shopper:
    """The member a basket is priced for, with the tier they hold (tier_of's rule)."""

    id: int
    phone: str | None
    language: str | None
    joined: bool
    tier: Step | None


def quote(
    conn: Connection,
    program_id: int,
    codes: Sequence[str],
    *,
    member_id: int | None = None,
    phone: str | None = None,
) -> tuple[Shopper | None, list[offers.Given]]:
    """The club's member with this id or number and their tier (None for no such member or an
    erased one), and each code with the coupon it names (`given`): for a till's basket, one
    plain read where the codes are a few."""
    wanted = sorted({coupons.normalize(code) for code in codes})
    if member_id is not None:
        key, params = "id", {"program_id": program_id, "member_id": member_id}
    else:
        key, params = "phone", {"program_id": program_id, "phone": phone}
    if not 0 < len(wanted) <= _FIXED_CODES:
        return shopper(conn, program_id, member_id=member_id, phone=phone), given(
            conn, program_id, codes
        )
    params |= {f"c{i}": code for i, code in enumerate(wanted)}
    rows = plain_rows(conn, _QUOTES[key, len(wanted)], params)
    if not rows:
        return None, given_from(codes, [])
    return _shopper_of(rows[0]), given_from(codes, [row[_SHOPPER_WIDTH:] for row in rows])


def shopper(
    conn: Connection, program_id: int, *, member_id: int | None = None, phone: str | None = None
) -> Shopper | None:
    """The club's member with this id or number, and their tier, in one plain read; None for
    no such member or an erased one."""
    if member_id is not None:
        query, params = _SHOPPER_BY_ID, {"program_id": program_id, "member_id": member_id}
    else:
        query, params = _SHOPPER_BY_PHONE, {"program_id": program_id, "phone": phone}
    rows = plain_rows(conn, query, params)
    return _shopper_of(rows[0]) if rows else None


def _shopper_of(row: Sequence[Any]) -> Shopper:
    member, number, language, joined_at, tier_id, position, name, percent = row[:_SHOPPER_WIDTH]
    tier = None if tier_id is None else Step(tier_id, position, name, percent)
    return Shopper(member, number, language, joined_at is not None, tier)


_MEMBERS = Member.__table__
_TIERS = Tier.__table__
_HELD, _FIRST = _TIERS.alias("held"), _TIERS.alias("first")
# tier_of in SQL: the member's tier if it is a step of the club's ladder, else the first step.
_STEP = func.coalesce(
    select(_HELD.c.id)
    .where(_HELD.c.id == _MEMBERS.c.tier_id, _HELD.c.program_id == _MEMBERS.c.program_id)
    .scalar_subquery(),
    select(_FIRST.c.id)
    .where(_FIRST.c.program_id == _MEMBERS.c.program_id)
    .order_by(_FIRST.c.position)
    .limit(1)
    .scalar_subquery(),
)
_SHOPPER_COLUMNS = (
    _MEMBERS.c.id,
    _MEMBERS.c.phone,
    _MEMBERS.c.language,
    _MEMBERS.c.joined_at,
    _TIERS.c.id,
    _TIERS.c.position,
    _TIERS.c.name,
    _TIERS.c.discount_percent,
)
_SHOPPER_WIDTH = len(_SHOPPER_COLUMNS)
_SHOPPER_FROM = _MEMBERS.outerjoin(_TIERS, _TIERS.c.id == _STEP)
_THE_MEMBER = (
    _MEMBERS.c.program_id == bindparam("program_id"),
    _MEMBERS.c.status != MemberStatus.ERASED,
)
_SHOPPER = select(*_SHOPPER_COLUMNS).select_from(_SHOPPER_FROM).where(*_THE_MEMBER)
_SHOPPER_BY_ID = _SHOPPER.where(_MEMBERS.c.id == bindparam("member_id"))
_SHOPPER_BY_PHONE = _SHOPPER.where(_MEMBERS.c.phone == bindparam("phone"))


def given(conn: Connection, program_id: int, codes: Sequence[str]) -> list[offers.Given]:
    """Each code as sent, with the club's coupon it names: one plain read for all of them (the
    rows as they are now, whatever a Session around the connection holds)."""
    wanted = sorted({coupons.normalize(code) for code in codes})
    rows = _given_rows(conn, program_id, wanted) if wanted else []
    return given_from(codes, rows)


def given_from(codes: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[offers.Given]:
    """The codes with the coupons of rows of _GIVEN_COLUMNS (a row of NULLs: none)."""
    found: dict[str, tuple[offers.Issued, offers.Terms]] = {}
    for row in rows:
        if row[0] is not None:
            coupon = offers.Issued(*row[:6])
            found[coupon.code] = (coupon, _terms(*row[6:]))
    out = []
    for code in codes:
        hit = found.get(coupons.normalize(code))
        out.append(offers.Given(code, *hit) if hit else offers.Given(code))
    return out


@functools.lru_cache(maxsize=1024)
def _terms(
    template_id: int,
    key: str,
    kind: str,
    benefit: str,
    discount_minor: int | None,
    offer: str | None,
) -> offers.Terms:
    # A till names the same few templates all day: each is decoded and its offer parsed once
    # (the stored JSON is the key, so a template the owner edits is read anew).
    return offers.Terms(
        template_id,
        key,
        kind,
        json.loads(benefit),
        discount_minor,
        None if offer is None else json.loads(offer),
    )


_COUPONS_FIELDS = ("id", "member_id", "code", "valid_from", "valid_until", "redeemed_at")
_TEMPLATES = CouponTemplate.__table__
_GIVEN_COLUMNS = (
    *(_COUPONS.c[name] for name in _COUPONS_FIELDS),
    _TEMPLATES.c.id,
    _TEMPLATES.c.key,
    _TEMPLATES.c.kind,
    # As stored: _terms decodes each template's once.
    cast(_TEMPLATES.c.benefit, Text),
    _TEMPLATES.c.discount_minor,
    cast(_TEMPLATES.c.offer, Text),
)


def _given_select(codes: ColumnElement[bool]) -> Select[Any]:
    return (
        select(*_GIVEN_COLUMNS)
        .join(_TEMPLATES, _TEMPLATES.c.id == _COUPONS.c.template_id)
        .where(_COUPONS.c.program_id == bindparam("program_id"), codes)
    )


# A statement for each count of codes a till sends (a few): each is compiled once, where an
# expanding IN is rendered again for every basket.
_FIXED_CODES = 4
_GIVEN_FIXED = {
    count: _given_select(_COUPONS.c.code.in_([bindparam(f"c{i}") for i in range(count)]))
    for count in range(1, _FIXED_CODES + 1)
}
_GIVEN_ANY = _given_select(_COUPONS.c.code.in_(bindparam("codes", expanding=True)))


# quote's statements: the member (by id or by phone) and their tier, with each of up to
# _FIXED_CODES codes' coupon (a row per coupon found; one row of NULLs for none).
_BY = {
    "id": _MEMBERS.c.id == bindparam("member_id"),
    "phone": _MEMBERS.c.phone == bindparam("phone"),
}
_QUOTES = {
    (by, count): select(*_SHOPPER_COLUMNS, *_GIVEN_COLUMNS)
    .select_from(
        _SHOPPER_FROM.outerjoin(
            _COUPONS.join(_TEMPLATES, _TEMPLATES.c.id == _COUPONS.c.template_id),
            and_(
                _COUPONS.c.program_id == _MEMBERS.c.program_id,
                _COUPONS.c.code.in_([bindparam(f"c{i}") for i in range(count)]),
            ),
        )
    )
    .where(*_THE_MEMBER, member)
    for by, member in _BY.items()
    for count in range(1, _FIXED_CODES + 1)
}


def _given_rows(conn: Connection, program_id: int, codes: list[str]) -> Sequence[Sequence[Any]]:
    if len(codes) > _FIXED_CODES:
        return conn.execute(_GIVEN_ANY, {"program_id": program_id, "codes": codes}).all()
    params: dict[str, Any] = {f"c{i}": code for i, code in enumerate(codes)}
    params["program_id"] = program_id
    return plain_rows(conn, _GIVEN_FIXED[len(codes)], params)


def price(
    conn: Connection,
    program_id: int,
    lines: Sequence[Line],
    codes: Sequence[str],
    *,
    member_id: int | None,
    tier: Tier | Step | None,
    now: dt.datetime,
    redeemed_here: Collection[int] = (),
) -> Priced:
    """The basket's evaluation: nothing is redeemed."""
    return priced(
        lines,
        given(conn, program_id, codes),
        member_id=member_id,
        tier=tier,
        now=now,
        redeemed_here=redeemed_here,
    )


def priced(
    lines: Sequence[Line],
    codes: Sequence[offers.Given],
    *,
    member_id: int | None,
    tier: Tier | Step | None,
    now: dt.datetime,
    redeemed_here: Collection[int] = (),
) -> Priced:
    """`price` on codes already read (`quote`)."""
    evaluation = offers.evaluate(
        lines,
        codes,
        tier_percent=tier.discount_percent if tier is not None else 0,
        member_id=member_id,
        now=now,
        redeemed_here=redeemed_here,
    )
    return Priced(evaluation, tier)


def settle(
    session: Session,
    program_id: int,
    lines: Sequence[Line],
    codes: Sequence[str],
    *,
    member_id: int,
    tier: Tier | None,
    now: dt.datetime,
    by: str | None,
    ref: str,
) -> Priced:
    """Price the basket and redeem the coupons that apply, in the caller's transaction.

    A code another till redeemed a moment ago (the conditional UPDATE changes nothing here) is
    then refused as redeemed and the basket priced again without it; the sale is still
    recorded. Priced again, the coupons this sale redeemed count as its own (redeemed_here);
    one that no longer applies is put back and one that now does is redeemed, until what is
    redeemed is exactly what the answer lists. Each round only loses codes to other sales, so
    this ends."""
    mine: set[int] = set()
    conn = session.connection()
    while True:
        priced = price(
            conn,
            program_id,
            lines,
            codes,
            member_id=member_id,
            tier=tier,
            now=now,
            redeemed_here=mine,
        )
        wanted = {applied.coupon.id for applied in priced.evaluation.applied}
        dropped = mine - wanted
        if dropped:
            conn.execute(
                update(_COUPONS)
                .where(_COUPONS.c.id.in_(sorted(dropped)))
                .values(redeemed_at=None, redeemed_by=None, redeemed_ref=None)
            )
            mine -= dropped
        for coupon_id in sorted(wanted - mine):
            changed = conn.execute(
                _REDEEM, {"coupon_id": coupon_id, "now": now, "by": by, "ref": ref}
            ).rowcount
            if changed == 1:
                mine.add(coupon_id)
        if mine == wanted:
            return priced


def _redeemed_by_sale(session: Session, program_id: int, ref: str, at: dt.datetime) -> list[int]:
    """The coupons redeemed with the sale `ref` at its instant `at`."""
    return list(
        session.scalars(
            select(Coupon.id).where(
                Coupon.program_id == program_id,
                Coupon.redeemed_ref == ref,
                Coupon.redeemed_at == at,
            )
        )
    )


def replay(
    session: Session,
    purchase: Purchase,
    lines: Sequence[Line],
    codes: Sequence[str],
    ladder: Sequence[Tier],
    tier_id: int | None,
) -> Priced:
    """The answer a sale priced by Klubb got the first time, for a till sending it again.

    Priced as of the sale's instant, its own coupons counted as not yet redeemed. The tier may
    have moved since (this very sale can promote the member), so the tier is the one whose
    prices are the lines as recorded: the member's tier now, else each step of the ladder."""
    mine = _redeemed_by_sale(
        session, purchase.program_id, purchase.transaction_id, purchase.created_at
    )
    recorded = list(
        session.scalars(
            select(PurchaseLine.amount_minor)
            .where(PurchaseLine.purchase_id == purchase.id)
            .order_by(PurchaseLine.line_no)
        )
    )
    held = tier_of(ladder, tier_id)
    candidates = [held, *ladder] if ladder else [None]
    first: Priced | None = None
    for tier in candidates:
        priced = price(
            session.connection(),
            purchase.program_id,
            lines,
            codes,
            member_id=purchase.member_id,
            tier=tier,
            now=purchase.created_at,
            redeemed_here=mine,
        )
        first = first or priced
        if [line.to_pay_minor for line in priced.evaluation.lines] == recorded:
            return priced
    assert first is not None
    return first
