"""Purchases and refunds from the till: recorded once per transaction id, earning and taking
back points line by line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.database import plain_rows
from store.errors import Conflict, InvalidInput, NotFound
from store.loyalty import baskets, cheques, coupons, ledger, marks, perks, receipts, tiers
from store.loyalty.earning import Bonus, Line, Rules, line_points, taken_back
from store.models import (
    BonusRule,
    CouponTemplate,
    Member,
    PointMultiplier,
    Program,
    PunchCard,
    Purchase,
    PurchaseLine,
    PurchaseMonth,
    Refund,
    RefundLine,
    Tier,
)

_PURCHASES = Purchase.__table__
_LINES = PurchaseLine.__table__
_REFUNDS = Refund.__table__
_REFUND_LINES = RefundLine.__table__


class Unknown:
    """A value the caller has not read (as opposed to one it read as None)."""


UNKNOWN = Unknown()


@dataclass(frozen=True, slots=True)
class Recorded:
    purchase: Purchase
    replayed: bool
    coupons: list[coupons.Held]
    balance: int
    # The basket as Klubb priced it, for a sale sent with coupon codes (None without).
    basket: baskets.Priced | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """A punch card as recording a purchase needs it."""

    id: int
    category: str  # casefolded
    every: int
    template: CouponTemplate | None


@dataclass(frozen=True, slots=True)
class ClubRules:
    """Everything about a club that recording a purchase reads: loaded once and kept for a few
    seconds by the API (store.clubs.directory.ClubDirectory), not read again for every sale."""

    multipliers: tuple[tuple[dt.date, dt.date, int], ...]
    bonuses: tuple[Bonus, ...]
    cards: tuple[Card, ...]
    ladder: list[Tier]
    # Whether the club issues bonus cheques (the hourly job catches one a sale missed while
    # this was kept).
    cheques: bool = True


def club_rules(session: Session, program_id: int) -> ClubRules:
    """The club's rules as rows detached from the session (safe to keep between sessions)."""
    multipliers = tuple(
        (m.starts_on, m.ends_on, m.multiplier)
        for m in session.scalars(
            select(PointMultiplier).where(PointMultiplier.program_id == program_id)
        )
    )
    bonuses = tuple(
        Bonus(rule.field, rule.value, rule.extra_points)
        for rule in session.scalars(select(BonusRule).where(BonusRule.program_id == program_id))
    )
    ladder = tiers.ladder(session, program_id)
    for tier in ladder:
        session.expunge(tier)
    return ClubRules(
        multipliers,
        bonuses,
        active_cards(session, program_id),
        ladder,
        cheques.cheapest(session, program_id) is not None,
    )


def active_cards(session: Session, program_id: int) -> tuple[Card, ...]:
    """The club's active punch cards, oldest first, each with its coupon template if that is
    active too (detached: safe to keep between sessions)."""
    cards = []
    for card in session.scalars(
        select(PunchCard)
        .where(PunchCard.program_id == program_id, PunchCard.active.is_(True))
        .order_by(PunchCard.id)
    ):
        template = session.get(CouponTemplate, card.template_id)
        if template is not None and template.active:
            session.expunge(template)
        else:
            template = None
        cards.append(Card(card.id, card.category.casefold(), card.every, template))
    return tuple(cards)


def rules_for(
    session: Session,
    program: Program,
    occurred_at: dt.datetime,
    rules: ClubRules | None = None,
) -> Rules:
    """The club's earning rules in force when the purchase was made."""
    rules = rules or club_rules(session, program.id)
    day = occurred_at.astimezone(ZoneInfo(program.timezone)).date()
    in_force = [m for starts, ends, m in rules.multipliers if starts <= day <= ends]
    return Rules(
        earn_points=program.earn_points,
        earn_per_minor=program.earn_per_minor,
        min_purchase_minor=program.min_purchase_minor,
        multiplier=max(in_force, default=1),
        bonuses=rules.bonuses,
    )


_EARLIER = select(_PURCHASES.c.id, _PURCHASES.c.fingerprint).where(
    _PURCHASES.c.program_id == bindparam("program_id"),
    _PURCHASES.c.transaction_id == bindparam("transaction_id"),
)
_INSERT_PURCHASE = {
    dialect: module.insert(_PURCHASES)
    .on_conflict_do_nothing(index_elements=["program_id", "transaction_id"])
    .returning(_PURCHASES.c.id)
    for dialect, module in (("sqlite", sqlite), ("postgresql", postgresql))
}
_INSERT_LINES = insert(_LINES)
_MEMBERS = Member.__table__


def _purchases_on_member() -> Any:
    """The member's last purchase and the one before it, moved by a sale at `at`: later than
    the last, it is the last and the last the one before; else, later than the one before (or
    at the same instant as the last: a second purchase then), it is the one before. A purchase
    told late (a till's backlog) moves neither back. Both read the row as it was. And one more
    purchase counted, its `total` added to the member's."""
    last, previous = _MEMBERS.c.last_purchase_at, _MEMBERS.c.previous_purchase_at
    at = bindparam("at", type_=last.type)
    later = or_(last.is_(None), last < at)
    return (
        update(_MEMBERS)
        .where(_MEMBERS.c.id == bindparam("member"))
        .values(
            last_purchase_at=case((later, at), else_=last),
            previous_purchase_at=case(
                (last.is_(None), previous),
                (last < at, last),
                (or_(previous.is_(None), previous < at), at),
                else_=previous,
            ),
            purchase_count=_MEMBERS.c.purchase_count + 1,
            purchase_total_minor=_MEMBERS.c.purchase_total_minor + bindparam("total"),
        )
    )


_ON_MEMBER = _purchases_on_member()

_MONTHS = PurchaseMonth.__table__


def _add_to_month(module: Any) -> Any:
    # One statement, whether the member's month has a row yet or not: two tills recording for
    # the same member at once both count (PostgreSQL takes the row's lock on the conflict).
    # It returns the month's purchases so far, which nothing reads: a statement with rows is
    # what store.database.plain_rows runs (on SQLite on the driver's cursor, 27 -> 8 µs).
    statement = module.insert(_MONTHS)
    return statement.on_conflict_do_update(
        index_elements=[
            _MONTHS.c.program_id,
            _MONTHS.c.month_start,
            _MONTHS.c.month_end,
            _MONTHS.c.member_id,
        ],
        set_={
            "purchases": _MONTHS.c.purchases + statement.excluded.purchases,
            "revenue_minor": _MONTHS.c.revenue_minor + statement.excluded.revenue_minor,
        },
    ).returning(_MONTHS.c.purchases)


_ADD_TO_MONTH = {"sqlite": _add_to_month(sqlite), "postgresql": _add_to_month(postgresql)}


def month_of(moment: dt.datetime, zone: ZoneInfo) -> tuple[int, int]:
    """The month of `zone` that holds `moment`: its first instant and the next month's (local
    midnights), in whole seconds since 1970, as purchase_months keys them (the same cut as
    store.reports' months, and as migration 0012 filled them)."""
    first = moment.astimezone(zone).date().replace(day=1)
    following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return _seconds(first, zone), _seconds(following, zone)


def _seconds(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp())


def count_months(session: Session, program: Program) -> int:
    """Count the club's purchase_months anew from its purchases, a month of its zone at a
    time (a range of the (program_id, occurred_at) index each), as migration 0012 did for the
    purchases before it: for purchases written without `record` (the benches' bulk fills) or a
    club whose zone changed. Returns the rows written."""
    zone = ZoneInfo(program.timezone)
    session.execute(delete(_MONTHS).where(_MONTHS.c.program_id == program.id))
    first, last = session.execute(
        select(func.min(_PURCHASES.c.occurred_at), func.max(_PURCHASES.c.occurred_at)).where(
            _PURCHASES.c.program_id == program.id
        )
    ).one()
    if first is None:
        return 0
    written = 0
    day, end = first.astimezone(zone).date().replace(day=1), last.astimezone(zone).date()
    while day <= end:
        following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        since, until = (dt.datetime.combine(d, dt.time(0), tzinfo=zone) for d in (day, following))
        bought = (
            select(
                literal(program.id),
                literal(int(since.timestamp()), BigInteger),
                literal(int(until.timestamp()), BigInteger),
                _PURCHASES.c.member_id,
                func.count(),
                func.sum(_PURCHASES.c.total_minor),
            )
            .where(
                _PURCHASES.c.program_id == program.id,
                _PURCHASES.c.occurred_at >= since.astimezone(dt.UTC),
                _PURCHASES.c.occurred_at < until.astimezone(dt.UTC),
            )
            .group_by(_PURCHASES.c.member_id)
        )
        columns = ["program_id", "month_start", "month_end", "member_id"]
        written += session.execute(
            insert(_MONTHS).from_select([*columns, "purchases", "revenue_minor"], bought)
        ).rowcount
        day = following
    return written


def record(
    session: Session,
    program: Program,
    member_id: int,
    *,
    transaction_id: str,
    lines: Sequence[Line],
    occurred_at: dt.datetime,
    fingerprint: str,
    now: dt.datetime,
    store: str | None = None,
    actor: str | None = None,
    tier_id: int | Unknown | None = UNKNOWN,
    rules: ClubRules | None = None,
    codes: Sequence[str] | None = None,
    locked: bool = False,
    receipt_to: receipts.Recipient | Unknown | None = UNKNOWN,
) -> Recorded:
    """Record a purchase and the points it earns; the same transaction id again returns what
    was recorded (a till retrying), or Conflict if it came with different contents.

    `tier_id` (the member's tier, if the caller has read it), `rules` (from the API's cache),
    `locked` (the caller read the member's row with ledger's lock: FOR UPDATE on PostgreSQL)
    and `receipt_to` (receipts.recipient_of that row) spare a read each: recording sales is
    the hot path of the API.

    `codes` (even none) means Klubb prices the sale: the lines are as the till rang them up,
    the member's tier discount and the coupons that apply (store.loyalty.offers) are taken off
    and the lines recorded at what was paid; the coupons are redeemed with the sale, once."""
    _check_lines(lines)
    if not locked:
        ledger.lock_member(session, member_id)
    rules = rules or club_rules(session, program.id)
    basket = None
    if codes is not None:
        if isinstance(tier_id, Unknown):
            tier_id = perks.tier_id_of(session, member_id)
        # A retry is answered before anything is redeemed (the member's lock keeps a second
        # attempt of the same sale waiting until the first has committed).
        if _recorded_before(session, program, transaction_id):
            return _again(session, program, transaction_id, fingerprint, now, lines, codes, rules)
        basket = baskets.settle(
            session,
            program.id,
            lines,
            codes,
            member_id=member_id,
            tier=baskets.tier_of(rules.ladder, tier_id),
            now=now,
            by=actor,
            ref=transaction_id,
        )
        lines = basket.evaluation.paid(lines)
    points = line_points(lines, rules_for(session, program, occurred_at, rules))
    earned = sum(points)
    values = {
        "program_id": program.id,
        "member_id": member_id,
        "transaction_id": transaction_id,
        "store": store,
        "currency": program.currency,
        "total_minor": sum(line.amount_minor for line in lines),
        "points": earned,
        "fingerprint": fingerprint,
        "occurred_at": occurred_at,
        "created_at": now,
    }
    conn = session.connection()
    # The transaction id's unique key decides whether this is a new sale: a till retrying finds
    # it taken (no lookup before every sale).
    purchase_id = conn.execute(_INSERT_PURCHASE[conn.dialect.name], values).scalar()
    if purchase_id is None:
        if basket is not None:  # looked for above, under the member's lock: never here
            raise Conflict("transaction_id_reused", f"transaction {transaction_id} was taken")
        return _again(session, program, transaction_id, fingerprint, now)
    conn.execute(
        _ON_MEMBER, {"member": member_id, "at": occurred_at, "total": values["total_minor"]}
    )
    month_start, month_end = month_of(occurred_at, ZoneInfo(program.timezone))
    plain_rows(
        conn,
        _ADD_TO_MONTH[conn.dialect.name],
        {
            "program_id": program.id,
            "month_start": month_start,
            "month_end": month_end,
            "member_id": member_id,
            "purchases": 1,
            "revenue_minor": values["total_minor"],
        },
    )
    _insert_lines(session, program, member_id, purchase_id, lines, points)
    bought = [(marks.STORE, store), *((marks.CATEGORY, line.category) for line in lines)]
    marks.mark(conn, program.id, member_id, bought, occurred_at)
    if earned > 0:
        ledger.credit(
            session,
            program,
            member_id,
            earned,
            ledger.EARN,
            now,
            purchase_id=purchase_id,
            actor=actor,
        )
        held = perks.tier_id_of(session, member_id) if isinstance(tier_id, Unknown) else tier_id
        tiers.promote(session, program, member_id, held, now, rules.ladder)
    issued = _punch(session, program, member_id, purchase_id, lines, now, rules.cards)
    if program.referral_trigger == perks.ON_PURCHASE:
        # Both, never one instead of the other: a sale that fills a punch card also rewards
        # the referral (`issued or reward(...)` would skip the reward).
        rewarded = perks.reward_referral(session, program, member_id, now, purchase_id=purchase_id)
        issued = issued or rewarded
    # The receipt's reader (read under the member's lock, so it holds for this sale).
    to = receipts.recipient(session, member_id) if isinstance(receipt_to, Unknown) else receipt_to
    # Bonus cheques: the points this sale earned may take the balance past the club's cheque
    # (one read when it does not; a sale that earned nothing moved no balance; none in a club
    # without cheques). A receipt going out tells the cheque, in place of its announcement.
    if (
        earned > 0
        and rules.cheques
        and cheques.issue_due(
            session, program, member_id, now, purchase_id=purchase_id, announce=to is None
        )
    ):
        issued = True
    # Built from what was written, not read back: the caller only reads it.
    purchase = Purchase(id=purchase_id, **values)
    recorded = Recorded(
        purchase,
        False,
        coupons.issued_by_purchase(session, purchase_id) if issued else [],
        ledger.balance(session, member_id, now),
        basket,
    )
    if to is not None:
        _queue_receipt(session, program, to, recorded, lines, rules.cards, now)
    return recorded


def _queue_receipt(
    session: Session,
    program: Program,
    to: receipts.Recipient,
    recorded: Recorded,
    lines: Sequence[Line],
    cards: Sequence[Card],
    now: dt.datetime,
) -> None:
    """The receipt SMS of a new purchase, for a member who turned receipts on
    (store.loyalty.receipts.recipient, read by the caller), never for a retried sale."""
    bought = {line.category.casefold() for line in lines if line.category}
    started = [p for p in punches(session, cards, to.member_id) if p.count]
    # The card this sale punched first (one filled by it shows as its coupon instead), else
    # the one nearest to full, as POINTS names it.
    card = min(
        started,
        key=lambda p: (p.card.category not in bought, p.card.every - p.count),
        default=None,
    )
    punch = None
    if card is not None and card.card.template is not None:
        template = card.card.template
        punch = receipts.Progress(
            card.count,
            card.card.every,
            coupons.benefit_of(template, to.language),
            template.discount_minor,
        )
    receipts.queue(
        session,
        program,
        to,
        purchase_id=recorded.purchase.id,
        points=recorded.purchase.points,
        balance=recorded.balance,
        punch=punch,
        issued=recorded.coupons,
        now=now,
    )


def _check_lines(lines: Sequence[Line]) -> None:
    """InvalidInput naming the first line a purchase can't have."""
    if not lines:
        raise InvalidInput("lines", "a purchase has at least one line")
    for i, line in enumerate(lines):
        # A negative line would earn negative points that no refund could take back exactly.
        if line.qty < 0:
            raise InvalidInput(f"lines[{i}].qty", "must not be negative")
        if line.amount_minor < 0:
            raise InvalidInput(f"lines[{i}].amount_minor", "must not be negative")


def _insert_lines(
    session: Session,
    program: Program,
    member_id: int,
    purchase_id: int,
    lines: Sequence[Line],
    points: Sequence[int],
) -> None:
    """The purchase's lines, numbered from 1, each with the points it earned."""
    session.connection().execute(
        _INSERT_LINES,
        [
            {
                "program_id": program.id,
                "purchase_id": purchase_id,
                "member_id": member_id,
                "line_no": i,
                "sku": line.sku,
                "category": line.category,
                "brand": line.brand,
                "qty": line.qty,
                "amount_minor": line.amount_minor,
                "discounted": line.discounted,
                "points": line_points_,
            }
            for i, (line, line_points_) in enumerate(zip(lines, points, strict=True), start=1)
        ],
    )


def _recorded_before(session: Session, program: Program, transaction_id: str) -> bool:
    found = session.connection().execute(
        _EARLIER, {"program_id": program.id, "transaction_id": transaction_id}
    )
    return found.first() is not None


def _again(
    session: Session,
    program: Program,
    transaction_id: str,
    fingerprint: str,
    now: dt.datetime,
    lines: Sequence[Line] = (),
    codes: Sequence[str] | None = None,
    rules: ClubRules | None = None,
) -> Recorded:
    """A transaction recorded before: what was recorded, or Conflict if it differs; a sale
    Klubb priced (`codes`) with the basket as it was priced then."""
    earlier = (
        session.connection()
        .execute(_EARLIER, {"program_id": program.id, "transaction_id": transaction_id})
        .one()
    )
    if earlier.fingerprint != fingerprint:
        raise Conflict(
            "transaction_id_reused",
            f"transaction {transaction_id} was recorded with different contents",
        )
    purchase = session.get(Purchase, earlier.id)
    assert purchase is not None
    basket = None
    if codes is not None:
        ladder = rules.ladder if rules is not None else tiers.ladder(session, program.id)
        held = perks.tier_id_of(session, purchase.member_id)
        basket = baskets.replay(session, purchase, lines, codes, ladder, held)
    return Recorded(
        purchase,
        True,
        coupons.issued_by_purchase(session, purchase.id),
        ledger.balance(session, purchase.member_id, now),
        basket,
    )


def _punch(
    session: Session,
    program: Program,
    member_id: int,
    purchase_id: int,
    lines: Sequence[Line],
    now: dt.datetime,
    cards: Sequence[Card],
) -> bool:
    """A purchase with a line in a punch card's category is one punch; every Nth punch issues
    the card's free-item coupon. True if it issued one."""
    bought = {line.category.casefold() for line in lines if line.category}
    issued = False
    for card in cards:
        if card.category not in bought or card.template is None:
            continue
        punches = _punched(session, card.category, member_id)
        if punches and punches % card.every == 0:
            coupons.issue(
                session,
                program.id,
                member_id,
                card.template,
                # Keyed by the punch that filled the card, not by how many cards were filled:
                # with `every` changed, a filled card still issues a coupon of its own.
                f"punch:{card.id}:{member_id}:{punches}",
                now,
                purchase_id=purchase_id,
            )
            issued = True
    return issued


@dataclass(frozen=True, slots=True)
class Punches:
    """Where a member stands on a punch card: `count` of `card.every` (0 after a filled card)."""

    card: Card
    count: int


def punches(session: Session, cards: Sequence[Card], member_id: int) -> list[Punches]:
    """The member's punches on each card that gives a coupon (a card whose template is
    inactive gives nothing, so it shows nothing): one read for all the cards, none without
    one. Counted as `_punch` counts them when it issues the coupon (the card restarts at every
    Nth)."""
    giving = [card for card in cards if card.template is not None]
    if not giving:
        return []
    rows = session.connection().execute(_CATEGORIES_BOUGHT, {"member_id": member_id})
    bought: dict[str, set[int]] = {}
    for purchase_id, category in rows:
        bought.setdefault(category.casefold(), set()).add(purchase_id)
    return [Punches(card, len(bought.get(card.category, ())) % card.every) for card in giving]


def _punched(session: Session, wanted: str, member_id: int) -> int:
    """The member's purchases with a line in the category `wanted` (casefolded).

    Compared in Python: SQLite's lower() (and PostgreSQL's in the C locale) folds only ASCII,
    so "ØL" would never meet "øl" in SQL."""
    rows = session.connection().execute(_CATEGORIES_BOUGHT, {"member_id": member_id})
    return len({purchase_id for purchase_id, category in rows if category.casefold() == wanted})


_CATEGORIES_BOUGHT = (
    select(_LINES.c.purchase_id, _LINES.c.category)
    .where(_LINES.c.member_id == bindparam("member_id"), _LINES.c.category.is_not(None))
    .distinct()
)


@dataclass(frozen=True, slots=True)
class Bought:
    """A purchase as the member's page lists it: its lines and refunds, oldest first."""

    purchase: Purchase
    lines: list[PurchaseLine]
    refunds: list[Refund]


def of_member(session: Session, member_id: int, *, offset: int, limit: int) -> list[Bought]:
    """The member's purchases, newest made first (ties: newest recorded), `limit` of them from
    `offset`: three reads however many are shown."""
    found = session.scalars(
        select(Purchase)
        .where(Purchase.member_id == member_id)
        .order_by(Purchase.occurred_at.desc(), Purchase.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    if not found:
        return []
    ids = [purchase.id for purchase in found]
    lines: dict[int, list[PurchaseLine]] = {}
    for line in session.scalars(
        select(PurchaseLine)
        .where(PurchaseLine.purchase_id.in_(ids))
        .order_by(PurchaseLine.purchase_id, PurchaseLine.line_no)
    ):
        lines.setdefault(line.purchase_id, []).append(line)
    refunds: dict[int, list[Refund]] = {}
    for row in session.scalars(
        select(Refund).where(Refund.purchase_id.in_(ids)).order_by(Refund.created_at, Refund.id)
    ):
        refunds.setdefault(row.purchase_id, []).append(row)
    return [Bought(p, lines.get(p.id, []), refunds.get(p.id, [])) for p in found]


@dataclass(frozen=True, slots=True)
class RefundLineIn:
    line_no: int
    qty: int | None = None
    amount_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Refunded:
    refund: Refund
    replayed: bool
    balance: int


def refund(
    session: Session,
    program: Program,
    *,
    transaction_id: str,
    refund_id: str,
    lines: Sequence[RefundLineIn] | None,
    fingerprint: str,
    now: dt.datetime,
    actor: str | None = None,
) -> Refunded:
    """Refund a purchase, whole (`lines` None) or in part, taking back exactly the points the
    refunded part earned. If the member has spent them, the balance goes to zero, never below,
    and `points_taken` says how many came back."""
    purchase = session.scalar(
        select(Purchase).where(
            Purchase.program_id == program.id, Purchase.transaction_id == transaction_id
        )
    )
    if purchase is None:
        raise NotFound("purchase", transaction_id)
    earlier = session.scalar(
        select(Refund).where(Refund.program_id == program.id, Refund.refund_id == refund_id)
    )
    if earlier is not None:
        if earlier.fingerprint != fingerprint or earlier.purchase_id != purchase.id:
            raise Conflict(
                "refund_id_reused", f"refund {refund_id} was recorded with different contents"
            )
        return Refunded(earlier, True, ledger.balance(session, purchase.member_id, now))
    ledger.lock_member(session, purchase.member_id)
    bought = {
        line.line_no: line
        for line in session.scalars(
            select(PurchaseLine).where(PurchaseLine.purchase_id == purchase.id)
        )
    }
    before = _refunded_so_far(session, [line.id for line in bought.values()])
    plan = _plan(bought, before, lines)
    if not plan:
        raise Conflict("already_refunded", f"transaction {transaction_id} is already refunded")
    points = sum(p for _, _, _, p in plan)
    row_id = _insert_refund(session, purchase, refund_id, plan, fingerprint, now)
    taken = 0
    if points > 0:
        taken = ledger.debit(
            session,
            program.id,
            purchase.member_id,
            points,
            ledger.REFUND,
            now,
            partial=True,
            purchase_id=purchase.id,
            refund_id=row_id,
            actor=actor,
            tier_points=-points,
        )
    session.connection().execute(
        _REFUNDS.update().where(_REFUNDS.c.id == row_id).values(points_taken=taken)
    )
    row = session.get(Refund, row_id)
    assert row is not None
    return Refunded(row, False, ledger.balance(session, purchase.member_id, now))


def _insert_refund(
    session: Session,
    purchase: Purchase,
    refund_id: str,
    plan: Sequence[tuple[PurchaseLine, int, int, int]],
    fingerprint: str,
    now: dt.datetime,
) -> int:
    """The refund and its lines (line, quantity, amount, points) as planned: the refund's row
    id. Its points_taken is 0 until the ledger says how many came back."""
    conn = session.connection()
    row_id: int = conn.execute(
        insert(_REFUNDS).returning(_REFUNDS.c.id),
        {
            "program_id": purchase.program_id,
            "purchase_id": purchase.id,
            "refund_id": refund_id,
            "amount_minor": sum(amount for _, _, amount, _ in plan),
            "points": sum(p for _, _, _, p in plan),
            "points_taken": 0,
            "fingerprint": fingerprint,
            "created_at": now,
        },
    ).scalar_one()
    conn.execute(
        insert(_REFUND_LINES),
        [
            {"refund_id": row_id, "line_id": line.id, "qty": qty, "amount_minor": a, "points": p}
            for line, qty, a, p in plan
        ],
    )
    return row_id


def _refunded_so_far(session: Session, line_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per purchase line: (quantity, amount) refunded before."""
    rows = session.execute(
        select(RefundLine.line_id, func.sum(RefundLine.qty), func.sum(RefundLine.amount_minor))
        .where(RefundLine.line_id.in_(line_ids))
        .group_by(RefundLine.line_id)
    ).all()
    return {line_id: (int(qty), int(amount)) for line_id, qty, amount in rows}


def _plan(
    bought: dict[int, PurchaseLine],
    before: dict[int, tuple[int, int]],
    lines: Sequence[RefundLineIn] | None,
) -> list[tuple[PurchaseLine, int, int, int]]:
    """(line, qty, amount, points) for each line the refund returns."""
    wanted = lines if lines is not None else [RefundLineIn(n) for n in sorted(bought)]
    plan = []
    seen: set[int] = set()
    for i, item in enumerate(wanted):
        field = f"lines[{i}]"
        line = bought.get(item.line_no)
        if line is None:
            raise InvalidInput(f"{field}.line", f"the purchase has no line {item.line_no}")
        if item.line_no in seen:
            raise InvalidInput(f"{field}.line", f"line {item.line_no} is named twice")
        seen.add(item.line_no)
        qty_before, amount_before = before.get(line.id, (0, 0))
        qty_left, amount_left = line.qty - qty_before, line.amount_minor - amount_before
        if (item.qty is not None and item.qty < 0) or (
            item.amount_minor is not None and item.amount_minor < 0
        ):
            raise InvalidInput(field, "a refund returns a quantity or amount of 0 or more")
        if item.amount_minor is not None:
            amount, qty = item.amount_minor, item.qty or 0
            if qty > qty_left:
                raise InvalidInput(
                    f"{field}.qty", f"only {qty_left} of line {line.line_no} are left to refund"
                )
            if amount > amount_left:
                raise InvalidInput(
                    f"{field}.amount_minor", f"only {amount_left} of line {line.line_no} is left"
                )
        elif item.qty is not None:
            qty = item.qty
            if qty > qty_left:
                raise InvalidInput(
                    f"{field}.qty", f"only {qty_left} of line {line.line_no} are left to refund"
                )
            # The last units refunded take whatever amount is left, so the whole adds up; never
            # more than is left (an earlier refund by amount may have returned part of it).
            share = line.amount_minor * qty // line.qty
            amount = amount_left if qty == qty_left else min(share, amount_left)
        else:
            qty, amount = qty_left, amount_left
        if qty == 0 and amount == 0:
            if lines is not None:
                raise InvalidInput(field, f"nothing of line {line.line_no} is left to refund")
            continue
        plan.append(
            (line, qty, amount, taken_back(line.points, line.amount_minor, amount_before, amount))
        )
    return plan
