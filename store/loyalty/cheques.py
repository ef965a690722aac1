"""Bonus cheques (the Swedish model): a club's automatic reward, bought with the member's points
and announced as soon as the balance covers it, once per purchase and by the hourly job.

A cheque is a CLAIM made by Klubb instead of the member: the same ledger spend (store.loyalty.
rewards.spend_on: oldest lots first, NotEnoughPoints changes nothing) and a coupon of the
template, then a service SMS (no marketing consent, not counted in the cap; held at sending if
the member texts STOP or is erased before it goes). A cheque from a purchase whose receipt goes
out (store.loyalty.receipts) is told in the receipt instead, so its code comes once.

A club normally has one cheque level (2,500 points give 50 kr). With several, each check takes
the largest the balance covers, again and again, so a member is never given two small cheques
where one large one was affordable; as a check runs on every purchase, the larger levels are
only reached by a balance that jumps past them at once (a big sale, points given by staff).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, bindparam, func, select
from sqlalchemy.orm import Session

import locales
from store import messages
from store.errors import Conflict, InvalidSetting
from store.loyalty import coupons, ledger, rewards
from store.models import (
    Coupon,
    CouponTemplate,
    LedgerEntry,
    Member,
    PointLot,
    Program,
)
from store.states import MemberStatus

# A cheque coupon's source: "cheque:<member>:<n>", n counting the member's cheques from 1.
SOURCE = "cheque:"
# The ledger entry's reason of a cheque's spend ("cheque:<template key>"), where a CLAIM
# writes "reward:<key>": the member's history tells the two apart.
REASON = "cheque:"
ANNOUNCEMENT = "cheque.issued"
# Cheques one check issues a member at most: a balance of millions against a cheque of a few
# points must not hold the writer; the next check (the hourly job) goes on.
MAX_PER_CHECK = 50
# Members per transaction in the hourly job.
CHUNK = 200

# Who can have points turned into a cheque: a member who joined, or who joined and texted STOP
# (their points are still theirs; the till and their page show the cheque, no SMS is sent).
HOLDERS = (MemberStatus.ACTIVE, MemberStatus.STOPPED)

_LOTS = PointLot.__table__
_TEMPLATES = CouponTemplate.__table__
_COUPONS = Coupon.__table__
_ENTRIES = LedgerEntry.__table__

Announce = Callable[[Member], dt.datetime]


def is_cheque(template: CouponTemplate) -> bool:
    """A template issued automatically as a bonus cheque (a reward for points, in use)."""
    return bool(
        template.automatic
        and template.active
        and template.kind == coupons.REWARD
        and template.points_cost
    )


def set_automatic(
    session: Session, program_id: int, template_id: int, *, automatic: bool
) -> CouponTemplate:
    """Make a reward a bonus cheque (issued by itself once a balance covers its cost) or a
    reward members claim by SMS again. Only a reward for points can be one: anything else is
    InvalidSetting "automatic". The members it concerns are served by the next hourly job."""
    template = coupons.template_of(session, program_id, template_id)
    if automatic and (template.kind != coupons.REWARD or not template.points_cost):
        raise InvalidSetting("automatic", "only a reward for points can be a bonus cheque")
    template.automatic = automatic
    session.flush()
    return template


def issue_due(
    session: Session,
    program: Program,
    member_id: int,
    now: dt.datetime,
    *,
    purchase_id: int | None = None,
    send_after: Announce | None = None,
    announce: bool = True,
) -> list[coupons.Held]:
    """Issue the member every bonus cheque their balance covers now, largest first, and queue
    one SMS per cheque; returns them (none in the common case, after one read).

    `purchase_id`: the sale that raised the balance (the till's answer lists the cheque).
    `send_after`: when the announcement may go (the hourly job keeps to quiet hours); now if
    None, as a cheque from a purchase is news for the member at the till.
    `announce`: False when the purchase's receipt tells the cheque instead (store.loyalty.
    receipts): the member reads its code in one SMS, not in two.

    Never twice for the same points: the member's row is locked first (ledger.lock_member, on
    PostgreSQL; SQLite's single writer serialises anyway), which every writer of the ledger
    takes, so of two purchases at once the second reads the balance after the first's cheque
    and finds nothing left to spend; and each cheque is its own ledger spend, which can't take
    points that are gone. The coupon's source "cheque:<member>:<n>" (n counted under the lock)
    is the backstop: a writer that ever skipped the lock would meet the first's coupon under
    the same source, and the check after it refuses the whole unit of work (Conflict) rather
    than keep a spend with no cheque of its own.
    """
    affordable = _affordable(session, program.id, member_id, now)
    if not affordable:
        return []
    ledger.lock_member(session, member_id)
    member = session.get(Member, member_id)
    if member is None or member.program_id != program.id or member.status not in HOLDERS:
        return []
    # Read again under the lock: what was read before it may have been spent meanwhile.
    balance = ledger.balance(session, member_id, now)
    n = _cheques_of(session, program.id, member_id)
    issued: list[coupons.Held] = []
    while len(issued) < MAX_PER_CHECK:
        level = next((t for t in affordable if (t.points_cost or 0) <= balance), None)
        if level is None:
            break
        n += 1
        held = rewards.spend_on(
            session,
            program,
            member_id,
            level,
            now,
            reason=f"{REASON}{level.key}",
            source=f"{SOURCE}{member_id}:{n}",
            purchase_id=purchase_id,
        )
        _one_cheque_per_spend(session, program.id, member_id)
        balance -= level.points_cost or 0
        issued.append(held)
    if announce and member.status == MemberStatus.ACTIVE and member.phone:
        at = send_after(member) if send_after is not None else now
        for held in issued:
            _announce(session, program, member, held, now, at)
    return issued


def candidates(
    session: Session, program_id: int, now: dt.datetime, *, after: int = 0, limit: int = CHUNK
) -> list[int]:
    """The club's members (ids above `after`, `limit` of them, in order) whose balance covers
    its cheapest bonus cheque: one statement over the open lots, grouped by member, for the
    hourly job, which catches balances raised another way than a purchase (points given by
    staff, a referral, a cheque level lowered or turned on)."""
    least = cheapest(session, program_id)
    if least is None:
        return []
    rows = session.connection().execute(
        _CANDIDATES,
        {"program_id": program_id, "now": now, "after": after, "cost": least, "limit": limit},
    )
    return [member_id for (member_id,) in rows]


def clubs_with_cheques(session: Session) -> list[int]:
    """The clubs with a bonus cheque in use."""
    return list(
        session.scalars(
            select(_TEMPLATES.c.program_id)
            .distinct()
            .where(_IS_CHEQUE)
            .order_by(_TEMPLATES.c.program_id)
        )
    )


def levels(session: Session, program_id: int) -> list[CouponTemplate]:
    """The club's bonus cheques in use, cheapest first (usually one)."""
    return list(
        session.scalars(
            select(CouponTemplate)
            .where(CouponTemplate.program_id == program_id, _IS_CHEQUE)
            .order_by(CouponTemplate.points_cost, CouponTemplate.id)
        )
    )


# --- helpers ----------------------------------------------------------------------------------

_IS_CHEQUE: ColumnElement[bool] = and_(
    _TEMPLATES.c.automatic.is_(True),
    _TEMPLATES.c.active.is_(True),
    _TEMPLATES.c.kind == coupons.REWARD,
    _TEMPLATES.c.points_cost > 0,
)
_BALANCE = (
    select(func.coalesce(func.sum(_LOTS.c.remaining), 0))
    .where(
        _LOTS.c.member_id == bindparam("member_id"),
        ledger.OPEN_LOT,
        _LOTS.c.expires_at > bindparam("now"),
    )
    .scalar_subquery()
)
# The club's cheques the balance covers, largest first: one statement, which in the common
# case (no cheque in use, or not enough points) is all a purchase pays for them.
_AFFORDABLE = (
    select(_TEMPLATES.c.id)
    .where(
        _TEMPLATES.c.program_id == bindparam("program_id"),
        _IS_CHEQUE,
        _TEMPLATES.c.points_cost <= _BALANCE,
    )
    .order_by(_TEMPLATES.c.points_cost.desc(), _TEMPLATES.c.id)
)
_CANDIDATES = (
    select(_LOTS.c.member_id)
    .where(
        _LOTS.c.program_id == bindparam("program_id"),
        _LOTS.c.member_id > bindparam("after"),
        ledger.OPEN_LOT,
        _LOTS.c.expires_at > bindparam("now"),
    )
    .group_by(_LOTS.c.member_id)
    .having(func.sum(_LOTS.c.remaining) >= bindparam("cost"))
    .order_by(_LOTS.c.member_id)
    .limit(bindparam("limit"))
)
_CHEQUES_OF = select(func.count()).where(
    _COUPONS.c.member_id == bindparam("member_id"),
    _COUPONS.c.program_id == bindparam("program_id"),
    _COUPONS.c.source.startswith(bindparam("prefix")),
)
_CHEQUE_SPENDS = select(func.count()).where(
    _ENTRIES.c.member_id == bindparam("member_id"),
    _ENTRIES.c.kind == ledger.SPEND,
    _ENTRIES.c.reason.startswith(REASON),
)


def _affordable(
    session: Session, program_id: int, member_id: int, now: dt.datetime
) -> list[CouponTemplate]:
    # Core, not an ORM select: on the purchase path this read usually finds nothing, and an
    # ORM query costs several times the lookup itself.
    found = session.connection().execute(
        _AFFORDABLE, {"program_id": program_id, "member_id": member_id, "now": now}
    )
    templates = [session.get(CouponTemplate, template_id) for (template_id,) in found]
    return [t for t in templates if t is not None]


def cheapest(session: Session, program_id: int) -> int | None:
    """The fewest points a cheque of the club costs; None for a club without cheques."""
    return session.scalar(
        select(func.min(_TEMPLATES.c.points_cost)).where(
            _TEMPLATES.c.program_id == program_id, _IS_CHEQUE
        )
    )


def _cheques_of(session: Session, program_id: int, member_id: int) -> int:
    prefix = f"{SOURCE}{member_id}:"
    found = session.connection().execute(
        _CHEQUES_OF, {"member_id": member_id, "program_id": program_id, "prefix": prefix}
    )
    return int(found.scalar_one())


def _one_cheque_per_spend(session: Session, program_id: int, member_id: int) -> None:
    """Conflict unless the member has exactly one cheque coupon per cheque spend (the backstop
    of issue_due's lock: see there)."""
    spends = int(
        session.connection().execute(_CHEQUE_SPENDS, {"member_id": member_id}).scalar_one()
    )
    if spends != _cheques_of(session, program_id, member_id):
        raise Conflict("cheque_raced", f"member {member_id}'s cheque was issued concurrently")


def _announce(
    session: Session,
    program: Program,
    member: Member,
    held: coupons.Held,
    now: dt.datetime,
    at: dt.datetime,
) -> None:
    """The cheque's SMS, in the outbox as a service message (once per cheque)."""
    language = member.language or locales.language_for_phone(member.phone or "")
    template = held.template
    zone = ZoneInfo(program.timezone)
    text = locales.render(
        ANNOUNCEMENT,
        language,
        club=program.name,
        points=template.points_cost or 0,
        benefit=locales.benefit(
            coupons.benefit_of(template, language),
            language,
            amount_minor=template.discount_minor,
            currency=program.currency,
        ),
        code=coupons.display(held.coupon.code),
        # The last day it can be used, in the club's zone (as the coupon lists show it).
        date=(held.coupon.valid_until - dt.timedelta(microseconds=1)).astimezone(zone).date(),
    )
    number = messages.first_number(session, program.id)
    if number is None or member.phone is None:
        return
    messages.enqueue(
        session,
        program_id=program.id,
        member_id=member.id,
        kind=messages.SYSTEM,
        to_number=member.phone,
        from_number=number,
        body=text,
        segments=locales.segments(text).segments,
        now=now,
        dedupe_key=f"cheque:{held.coupon.id}",
        send_after=max(at, now),
    )
