"""Receipts by SMS: a service message after each purchase, for a member who turned them on.

A receipt is not marketing: it needs no marketing consent and does not count toward the cap
(it is queued as a `system` row, which the cap never counts), but it never goes to a number
that texted STOP, was erased or is flagged undeliverable, and the sender holds one queued
before a STOP (store.outreach.sending). It lives in loyalty, the store's lowest layer, because
recording a purchase (store.loyalty.purchases.record) queues it.

A bonus cheque the purchase issued is told in the receipt (its points, code, benefit and last
day), and the cheque's own announcement is then not sent (store.loyalty.cheques.issue_due's
`announce`): the member reads its code once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

import locales
from store import messages
from store.loyalty import coupons
from store.loyalty.cheques import SOURCE as CHEQUE_SOURCE
from store.models import Member, Program
from store.states import MemberStatus

# One receipt per purchase, however often the hook runs: the outbox's unique dedupe key.
KEY = "receipt:{purchase_id}"
EARNED, THANKS, COUPON = "receipt.earned", "receipt.thanks", "receipt.coupon"
CHEQUE = "receipt.cheque"  # a bonus cheque, where its announcement would have said it
PUNCH = "points.punch"  # the same "4 av 5 til …" POINTS says

_MEMBERS = Member.__table__
# The columns recipient_of reads.
RECIPIENT_COLUMNS = ("id", "phone", "language", "status", "undeliverable_at", "receipts")
_WANTS = select(*(_MEMBERS.c[column] for column in RECIPIENT_COLUMNS)).where(
    _MEMBERS.c.id == bindparam("member_id")
)


def set_receipts(session: Session, member: Member, on: bool, now: dt.datetime) -> None:
    """Receipts on or off for the member (the one rule: any member with a number may choose;
    whether one is sent is decided per purchase, by `recipient`)."""
    if member.receipts != on:
        member.receipts = on
        member.updated_at = now


@dataclass(frozen=True, slots=True)
class Recipient:
    """A member a receipt goes to: their number and the language to write in."""

    member_id: int
    phone: str
    language: str


def recipient(session: Session, member_id: int) -> Recipient | None:
    """The member, if a receipt goes to them (`recipient_of`). One read by primary key."""
    row = session.connection().execute(_WANTS, {"member_id": member_id}).first()
    return None if row is None else recipient_of(row._mapping)


def recipient_of(member: Mapping[str, Any]) -> Recipient | None:
    """The member of a row of the members table, if a receipt goes to them: receipts on,
    active (not pending, stopped or erased) and a number the carrier has not flagged."""
    phone = member["phone"]
    if (
        not member["receipts"]
        or member["status"] != MemberStatus.ACTIVE
        or phone is None
        or member["undeliverable_at"] is not None
    ):
        return None
    return Recipient(member["id"], phone, member["language"] or locales.language_for_phone(phone))


@dataclass(frozen=True, slots=True)
class Progress:
    """A punch card's standing after the purchase: `count` of `every` towards its coupon."""

    count: int
    every: int
    benefit: str  # the card's coupon benefit, raw (its {amount} not yet written as money)
    amount_minor: int | None


def text(
    program: Program,
    language: str,
    *,
    points: int,
    balance: int,
    punch: Progress | None,
    issued: Sequence[coupons.Held],
) -> str:
    """The receipt: points earned (or thanks, if none), the balance, the punch card and each
    coupon the purchase issued (a bonus cheque with the points it took), in the member's
    language."""
    zone = ZoneInfo(program.timezone)
    values = {"club": program.name, "balance": balance}
    if points > 0:
        parts = [locales.render(EARNED, language, count=points, **values)]
    else:
        parts = [locales.render(THANKS, language, **values)]
    if punch is not None:
        benefit = locales.benefit(
            punch.benefit, language, amount_minor=punch.amount_minor, currency=program.currency
        )
        parts.append(
            locales.render(PUNCH, language, n=punch.count, count=punch.every, benefit=benefit)
        )
    for held in issued:
        benefit = locales.benefit(
            held.benefit(language),
            language,
            amount_minor=held.template.discount_minor,
            currency=program.currency,
        )
        # The last day it can be used, in the club's zone (valid_until is exclusive).
        until = (held.coupon.valid_until - dt.timedelta(microseconds=1)).astimezone(zone).date()
        told = {"code": coupons.display(held.coupon.code), "benefit": benefit, "date": until}
        message = COUPON
        if _is_cheque(held):
            message, told["points"] = CHEQUE, held.template.points_cost or 0
        parts.append(locales.render(message, language, **told))
    return " ".join(parts)


def queue(
    session: Session,
    program: Program,
    to: Recipient,
    *,
    purchase_id: int,
    points: int,
    balance: int,
    punch: Progress | None,
    issued: Sequence[coupons.Held],
    now: dt.datetime,
) -> None:
    """Queue the purchase's receipt, once (keyed by the purchase), sent right away."""
    body = text(program, to.language, points=points, balance=balance, punch=punch, issued=issued)
    sender = messages.first_number(session, program.id)
    if sender is None:
        return  # a club with no number reaches no one
    messages.enqueue(
        session,
        program_id=program.id,
        member_id=to.member_id,
        kind=messages.SYSTEM,
        to_number=to.phone,
        from_number=sender,
        body=body,
        segments=locales.segments(body).segments,
        now=now,
        dedupe_key=KEY.format(purchase_id=purchase_id),
    )


def _is_cheque(held: coupons.Held) -> bool:
    """A coupon issued as a bonus cheque (store.loyalty.cheques.SOURCE)."""
    return held.coupon.source.startswith(CHEQUE_SOURCE)
