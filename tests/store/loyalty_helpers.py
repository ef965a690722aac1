"""Helpers shared by the loyalty store tests: fixed instants, a club with earning rules, members,
purchases and refunds in one line each."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.demo import DEMO_CLUB
from store.clubs import programs
from store.loyalty import coupons, purchases
from store.loyalty.earning import Line
from store.members import members
from store.models import Coupon, CouponTemplate, Member, Program

_PHONES = itertools.count()
_CLUB_NUMBERS = itertools.count(3000)


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A fixed instant in UTC."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


T0 = at(2026, 3, 10)


def club(session: Session, **rules: Any) -> Program:
    """A club (Oslo time, NOK) with `rules` set on it: earn_points, points_lifetime_months, ..."""
    zone = rules.pop("timezone", None)
    program = programs.create(
        session,
        **{**DEMO_CLUB, "numbers": [str(next(_CLUB_NUMBERS))]},
        timezone=zone,
        now=T0,
    )
    for name, value in rules.items():
        setattr(program, name, value)
    session.flush()
    return program


def member(
    session: Session,
    program: Program,
    *,
    now: dt.datetime = T0,
    status: str = members.ACTIVE,
    birthday: dt.date | None = None,
) -> Member:
    phone = f"+4790{next(_PHONES):06d}"
    created = members.create(session, program, phone, status=status, now=now)
    if status == members.ACTIVE:
        created.joined_at = now
    created.birthday = birthday
    session.flush()
    return created


def template(
    session: Session, program: Program, kind: str, *, valid_days: int = 30, **extra: Any
) -> CouponTemplate:
    return coupons.create_template(
        session,
        program,
        key=extra.pop("key", f"{kind}-{next(_PHONES)}"),
        kind=kind,
        benefit={"en": f"a {kind} treat", "nb": f"en {kind}-godbit"},
        valid_days=valid_days,
        **extra,
    )


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def buy(
    session: Session,
    program: Program,
    member_id: int,
    lines: Sequence[Line] | int,
    now: dt.datetime,
    *,
    transaction_id: str | None = None,
    told: dt.datetime | None = None,
) -> purchases.Recorded:
    """Record a purchase made at `now`, told by the till at `told` (then, unless given: a
    backlog tells it later); an int is one plain line of that many minor units. A transaction
    id told before with the same lines is a till's retry."""
    if isinstance(lines, int):
        lines = [Line(qty=1, amount_minor=lines)]
    transaction_id = transaction_id or f"T{next(_PHONES)}"
    return purchases.record(
        session,
        program,
        member_id,
        transaction_id=transaction_id,
        lines=list(lines),
        occurred_at=now,
        fingerprint=fingerprint(member_id, transaction_id, list(lines)),
        now=told or now,
    )


def give_back(
    session: Session,
    program: Program,
    transaction_id: str,
    now: dt.datetime,
    lines: Sequence[purchases.RefundLineIn] | None = None,
    *,
    refund_id: str | None = None,
) -> purchases.Refunded:
    """Refund a purchase, whole (`lines` None) or by lines."""
    refund_id = refund_id or f"R{next(_PHONES)}"
    return purchases.refund(
        session,
        program,
        transaction_id=transaction_id,
        refund_id=refund_id,
        lines=None if lines is None else list(lines),
        fingerprint=fingerprint(transaction_id, refund_id, lines),
        now=now,
    )


def error_of(call: Callable[[], object]) -> Exception | None:
    """What `call` raised, or None: for errors expected inside a unit of work. (A failing
    pytest.raises there would raise a BaseException, which stops SQLite's writer thread and
    hangs the test instead of failing it.)"""
    try:
        call()
    except Exception as exc:
        return exc
    return None


def coupons_of(session: Session, member_id: int) -> Sequence[Coupon]:
    """Every coupon the member holds, valid or not, oldest first (what the tests count)."""
    return session.scalars(
        select(Coupon).where(Coupon.member_id == member_id).order_by(Coupon.id)
    ).all()
