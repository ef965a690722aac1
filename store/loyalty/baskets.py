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
    """Each code as sent, with the club's coupon it names (one read for all of them)."""
    wanted = {coupons.normalize(code) for code in codes}
    found: dict[str, tuple[Coupon, CouponTemplate]] = {}
    if wanted:
        rows = session.execute(
            select(Coupon, CouponTemplate)
            .join(CouponTemplate, Coupon.template_id == CouponTemplate.id)
            .where(Coupon.program_id == program_id, Coupon.code.in_(sorted(wanted)))
            # Redeemed by a sale a moment ago in this session: read the row as it is now.
            .execution_options(populate_existing=True)
        ).all()
        found = {coupon.code: (coupon, template) for coupon, template in rows}
    out = []
    for code in codes:
        hit = found.get(coupons.normalize(code))
        out.append(offers.Given(code, *hit) if hit else offers.Given(code))
    return out


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
