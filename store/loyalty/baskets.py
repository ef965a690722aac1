"""A basket priced for the till (store.loyalty.offers.evaluate on the club's coupons and the
member's tier), and the coupons a sale applies redeemed with it, exactly once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from store.loyalty import coupons, offers
from store.loyalty.earning import Line
from store.models import Coupon, CouponTemplate, Purchase, PurchaseLine, Tier

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
class Priced:
    """A basket's evaluation and the tier that gave its tier discount (None: no ladder)."""

    evaluation: offers.Evaluation
    tier: Tier | None


def tier_of(ladder: Sequence[Tier], tier_id: int | None) -> Tier | None:
    """The tier a member holds: tier_id, or the ladder's first step (tiers.standing_of's rule);
    None for a club without a ladder or a buyer who is not a member."""
    if not ladder:
        return None
    return next((t for t in ladder if t.id == tier_id), ladder[0])


def given(session: Session, program_id: int, codes: Sequence[str]) -> list[offers.Given]:
    """Each code as sent, with the club's coupon it names: one plain read for all of them (the
    rows as they are now, whatever the session holds; the objects are detached copies)."""
    wanted = sorted({coupons.normalize(code) for code in codes})
    found: dict[str, tuple[Coupon, CouponTemplate]] = {}
    if wanted:
        rows = session.connection().execute(_GIVEN, {"program_id": program_id, "codes": wanted})
        for row in rows.mappings():
            coupon = Coupon(**{name: row[name] for name in _COUPON_FIELDS})
            template = CouponTemplate(
                id=row["template_id"], **{name: row[name] for name in _TEMPLATE_FIELDS}
            )
            found[coupon.code] = (coupon, template)
    out = []
    for code in codes:
        hit = found.get(coupons.normalize(code))
        out.append(offers.Given(code, *hit) if hit else offers.Given(code))
    return out


_COUPON_FIELDS = (
    "id",
    "program_id",
    "member_id",
    "template_id",
    "code",
    "valid_from",
    "valid_until",
    "redeemed_at",
)
_TEMPLATE_FIELDS = ("key", "kind", "benefit", "discount_minor", "offer")
_TEMPLATES = CouponTemplate.__table__
_GIVEN = (
    select(
        *(_COUPONS.c[name] for name in _COUPON_FIELDS), *(_TEMPLATES.c[n] for n in _TEMPLATE_FIELDS)
    )
    .join(_TEMPLATES, _TEMPLATES.c.id == _COUPONS.c.template_id)
    .where(
        _COUPONS.c.program_id == bindparam("program_id"),
        _COUPONS.c.code.in_(bindparam("codes", expanding=True)),
    )
)
_TIERS = Tier.__table__
_LADDER = (
    select(_TIERS.c.id, _TIERS.c.position, _TIERS.c.name, _TIERS.c.discount_percent)
    .where(_TIERS.c.program_id == bindparam("program_id"))
    .order_by(_TIERS.c.position)
)


def tier_read(session: Session, program_id: int, tier_id: int | None) -> Tier | None:
    """tier_of on the ladder read as plain rows (a detached Tier with the id, position, name
    and discount): one statement, for the API's basket pricing."""
    rows = session.connection().execute(_LADDER, {"program_id": program_id}).mappings().all()
    if not rows:
        return None
    # As tier_of: the member's tier, else the first step; only that one is made an object.
    row = next((row for row in rows if row["id"] == tier_id), rows[0])
    return Tier(**row)


def price(
    session: Session,
    program_id: int,
    lines: Sequence[Line],
    codes: Sequence[str],
    *,
    member_id: int | None,
    tier: Tier | None,
    now: dt.datetime,
    redeemed_here: Collection[int] = (),
) -> Priced:
    """The basket's evaluation: nothing is redeemed."""
    evaluation = offers.evaluate(
        lines,
        given(session, program_id, codes),
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
            session,
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
            session,
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
