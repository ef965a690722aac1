"""What the API shows of a member, a coupon and the club, read inside a unit of work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import locales
from bot.api.operations import REALM, ApiError, not_found
from store.clubs.apikeys import Caller
from store.loyalty import baskets, coupons, ledger, offers, purchases, tiers
from store.members import members
from store.models import Member, Program


def timestamp(value: dt.datetime | None) -> str | None:
    """UTC, ISO 8601, to the second: 2026-11-23T09:30:00Z."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def club(session: Session, caller: Caller) -> Program:
    program = session.get(Program, caller.program_id)
    if program is None:  # the club was deleted after the key was cached
        raise ApiError(401, "the key's club no longer exists", headers={"WWW-Authenticate": REALM})
    return program


def language_of(member: Member) -> str:
    return member.language or locales.language_for_phone(member.phone or "")


def member_by_id(session: Session, caller: Caller, member_id: int, *, lock: bool = False) -> Member:
    """The club's member with this id: another club's member, or an erased one, is not found.
    `lock`: read with ledger.lock_member's lock (FOR UPDATE on PostgreSQL)."""
    query = (
        select(Member)
        .where(
            Member.id == member_id,
            Member.program_id == caller.program_id,
            Member.status != members.ERASED,
        )
        # Store functions change members with plain UPDATEs (a tier); read the row as it is.
        .execution_options(populate_existing=True)
    )
    member = session.scalar(query.with_for_update() if lock else query)
    if member is None:
        raise not_found("member", member_id)
    return member


def member_by_phone(session: Session, caller: Caller, phone: str) -> Member | None:
    return session.scalar(
        select(Member)
        .where(
            Member.phone == phone,
            Member.program_id == caller.program_id,
            Member.status != members.ERASED,
        )
        .execution_options(populate_existing=True)
    )


def joined(member: Member) -> Member:
    """The member, if they have ever joined: points are for members, not for a number that only
    asked to join (pending) or only texted STOP."""
    if member.joined_at is None:
        raise ApiError(
            409,
            f"member {member.id} has not joined the club: enrol them first",
            reason="not_joined",
        )
    return member


def member(
    session: Session,
    program: Program,
    row: Member,
    now: dt.datetime,
    cards: Sequence[purchases.Card] | None = None,
) -> dict[str, Any]:
    """The member as the API shows them; `cards`: the club's active punch cards, if the caller
    has them in memory (else read)."""
    language = language_of(row)
    standing = tiers.standing(session, program, row.id, row.tier_id, now)
    tier = None
    if standing.tier is not None:
        tier = {
            "name": tiers.name(standing.tier, language),
            "discount_percent": standing.tier.discount_percent,
            "next": tiers.name(standing.next, language) if standing.next else None,
            "points_to_next": standing.to_next,
        }
    return {
        "id": row.id,
        "phone": row.phone,
        "status": row.status,
        "first_name": row.first_name,
        "language": language,
        "joined_at": timestamp(row.joined_at),
        "balance": ledger.balance(session, row.id, now),
        "tier": tier,
        "referral_code": row.referral_code,
        "punch_cards": punch_cards(session, program, row.id, language, cards),
    }


def punch_cards(
    session: Session,
    program: Program,
    member_id: int,
    language: str,
    cards: Sequence[purchases.Card] | None = None,
) -> list[dict[str, Any]]:
    """Where the member stands on each of the club's active punch cards."""
    if cards is None:
        cards = purchases.active_cards(session, program.id)
    shown = []
    for on_card in purchases.punches(session, cards, member_id):
        card, template = on_card.card, on_card.card.template
        assert template is not None  # punches() leaves out cards that give nothing
        shown.append(
            {
                "id": card.id,
                "category": card.category,
                "every": card.every,
                "punches": on_card.count,
                "benefit": locales.benefit(
                    coupons.benefit_of(template, language),
                    language,
                    amount_minor=template.discount_minor,
                    currency=program.currency,
                ),
            }
        )
    return shown


def coupon(held: coupons.Held, language: str, now: dt.datetime, currency: str) -> dict[str, Any]:
    row, template = held.coupon, held.template
    return {
        "code": coupons.display(row.code),
        "state": coupons.state(row, now),
        "kind": template.kind,
        "benefit": locales.benefit(
            held.benefit(language),
            language,
            amount_minor=template.discount_minor,
            currency=currency,
        ),
        "discount_percent": template.discount_percent,
        "discount_minor": template.discount_minor,
        "member_id": row.member_id,
        "issued_at": timestamp(row.issued_at),
        "valid_from": timestamp(row.valid_from),
        "valid_until": timestamp(row.valid_until),
        "redeemed_at": timestamp(row.redeemed_at),
        "redeemed_by": row.redeemed_by,
        "redeemed_ref": row.redeemed_ref,
    }


def coupon_language(session: Session, held: coupons.Held) -> str:
    """The language of the member who holds the coupon (its benefit is shown in it)."""
    holder = session.get(Member, held.coupon.member_id)
    return language_of(holder) if holder is not None else locales.DEFAULT_LANGUAGE


# What each refusal means, for the developer reading the answer (the till shows its own words).
REFUSALS = {
    offers.UNKNOWN_CODE: "no coupon with this code in the club",
    offers.DUPLICATE: "the same coupon was given twice: it counts once",
    offers.OTHER_MEMBER: "the coupon is another member's",
    offers.REDEEMED: "the coupon has already been redeemed",
    offers.EXPIRED: "the coupon has expired",
    offers.NOT_YET_VALID: "the coupon is not valid yet",
    offers.NO_OFFER: "the coupon's benefit is for the cashier to give: the till can't compute it",
    offers.NOT_IN_SCOPE: "no line of the basket is one the coupon discounts",
    offers.TOO_FEW_ITEMS: "too few units the coupon covers for its buy N, pay for M",
    offers.MIN_NOT_MET: "the basket is below the coupon's minimum",
    offers.NOT_COMBINABLE: "another coupon already discounts its lines, or another basket-wide "
    "coupon gives more",
    offers.NO_DISCOUNT: "it would take nothing off",
}


def basket(
    priced: baskets.Priced, member_id: int | None, language: str, currency: str
) -> dict[str, Any]:
    """A priced basket as the till reads it (the Basket schema)."""
    evaluation = priced.evaluation
    tier = None
    if priced.tier is not None:
        tier = {
            "name": tiers.name(priced.tier, language),
            "discount_percent": evaluation.tier_percent,
            "discount_minor": evaluation.tier_minor,
        }
    return {
        "member_id": member_id,
        "currency": currency,
        "tier": tier,
        "total_minor": evaluation.total_minor,
        "discount_minor": evaluation.discount_minor,
        "to_pay_minor": evaluation.to_pay_minor,
        "lines": [
            {
                "line": n,
                "amount_minor": line.amount_minor,
                "tier_minor": line.tier_minor,
                "coupon_minor": line.coupon_minor,
                "discount_minor": line.discount_minor,
                "to_pay_minor": line.to_pay_minor,
                "codes": [coupons.display(code) for code in line.codes],
            }
            for n, line in enumerate(evaluation.lines, start=1)
        ],
        "applied": [_applied(applied, language, currency) for applied in evaluation.applied],
        "refused": [
            {
                "code": refused.given.code,
                "reason": refused.reason,
                "error": REFUSALS[refused.reason],
            }
            for refused in evaluation.refused
        ],
    }


def _applied(applied: offers.Applied, language: str, currency: str) -> dict[str, Any]:
    template = applied.given.template
    assert template is not None
    offer = template.rule
    assert offer is not None  # applied: it has one
    return {
        "code": coupons.display(applied.coupon.code),
        "template": template.key,
        "benefit": locales.benefit(
            coupons.benefit_of(template, language),
            language,
            amount_minor=template.discount_minor,
            currency=currency,
        ),
        "offer": offer.as_json(),
        "discount_minor": applied.discount_minor,
        "lines": [i + 1 for i in applied.lines],
    }
