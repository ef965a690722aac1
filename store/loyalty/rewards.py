"""Claiming a reward with points: the points are spent and the reward's coupon issued together."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from store.errors import InvalidInput, NotFound
from store.loyalty import coupons, ledger
from store.models import CouponTemplate, Program


@dataclass(frozen=True, slots=True)
class Claimed:
    held: coupons.Held
    balance: int


def claim(
    session: Session,
    program: Program,
    member_id: int,
    template_id: int,
    now: dt.datetime,
    *,
    actor: str | None = None,
) -> Claimed:
    """Spend the reward's cost and issue its coupon, or raise NotEnoughPoints and change nothing
    (the points are taken before the coupon exists)."""
    template = session.get(CouponTemplate, template_id)
    if template is None or template.program_id != program.id or not template.active:
        raise NotFound("reward", str(template_id))
    if template.kind != coupons.REWARD or not template.points_cost:
        raise InvalidInput("reward", "this coupon is not a reward for points")
    held = spend_on(session, program, member_id, template, now, actor=actor)
    return Claimed(held, ledger.balance(session, member_id, now))


def spend_on(
    session: Session,
    program: Program,
    member_id: int,
    template: CouponTemplate,
    now: dt.datetime,
    *,
    actor: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    purchase_id: int | None = None,
) -> coupons.Held:
    """Spend a reward's cost through the ledger (oldest lots first) and issue its coupon: the
    one path a CLAIM and a bonus cheque (store.loyalty.cheques) share. Raises NotEnoughPoints
    and changes nothing (the points are taken before the coupon exists). `source` names the
    coupon's reason (a claim's is unique by a random part); `reason` the ledger entry's."""
    assert template.points_cost
    ledger.lock_member(session, member_id)
    ledger.debit(
        session,
        program.id,
        member_id,
        template.points_cost,
        ledger.SPEND,
        now,
        reason=reason or f"reward:{template.key}",
        actor=actor,
    )
    # Each claim is its own coupon: the source only has to be unique.
    source = source or f"reward:{template.id}:{member_id}:{secrets.token_hex(6)}"
    coupon = coupons.issue(
        session, program.id, member_id, template, source, now, purchase_id=purchase_id
    )
    return coupons.Held(coupon, template)
