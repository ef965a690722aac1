"""Offers the till can compute: a coupon template's structured benefit, and a basket's price.

An offer is a small dict kept in `coupon_templates.offer` (None: the benefit is text for the
cashier):

    {"type": "percent", "value": 20, "scope": "categories", "items": ["Sko"],
     "min_basket_minor": 50000}
    {"type": "amount", "value": 10000, "scope": "basket", "items": [], "min_basket_minor": 0}
    {"type": "buy_n_pay_m", "buy": 3, "pay": 2, "scope": "skus", "items": ["A-1", "A-2"],
     "min_basket_minor": 0}

`evaluate` prices a basket: pure and deterministic (the same basket, codes, tier and instant
give the same answer), all in integer minor units. The rules, in the order they are applied:

1. Lines the till marks `discounted` (already on sale) get no discount from Klubb at all.
2. The member's tier discount comes first, on every other line: percent of the line, rounded
   half up per line.
3. Then the coupons whose scope is categories, brands or SKUs ("line coupons"), in the order the
   codes were given. A line takes at most one line coupon: a coupon whose lines were all taken
   by an earlier one is refused (not_combinable). Each works on what is left of its lines.
4. Then at most one basket-wide coupon, on what is left of every line: of several, the one that
   gives the most (ties: the first given); the others are refused (not_combinable).

How each kind of offer shares its discount among its lines:
- percent: each line's part is the percent of what is left of it, rounded half up per line;
- amount: never more than what is left of its lines; shared in proportion to what is left of
  each (rounded down), the øre left over going one each to the lines with the largest
  remainders (ties: the first line), so the parts add up to the amount exactly;
- buy N pay for M: of every N units in scope, the N-M cheapest are free (the cheapest units of
  the basket, by what is left per unit; ties: the first line); a line with k of its q units free
  gets k/q of what is left of it, rounded half up (all of it when k = q).
A minimum basket is the basket's total as sent, before any discount. So no line's discount is
ever more than the line or below zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from store.errors import InvalidSetting
from store.loyalty.earning import Line

PERCENT = "percent"
AMOUNT = "amount"
BUY_N_PAY_M = "buy_n_pay_m"
TYPES = (PERCENT, AMOUNT, BUY_N_PAY_M)
BASKET = "basket"
CATEGORIES = "categories"
BRANDS = "brands"
SKUS = "skus"
SCOPES = (BASKET, CATEGORIES, BRANDS, SKUS)
MAX_AMOUNT_MINOR = 10**10  # as a purchase line (bot.api.schemas.MAX_AMOUNT_MINOR)
MAX_ITEMS = 50
MAX_ITEM = 64  # a SKU's length in a purchase line; categories and brands are shorter
MAX_BUY = 100

# Why a code gives nothing, in the order they are checked.
UNKNOWN_CODE = "unknown_code"  # no coupon with this code in the club
DUPLICATE = "duplicate"  # the same code given twice: counted once
OTHER_MEMBER = "other_member"  # the coupon is another member's
REDEEMED = "redeemed"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
NO_OFFER = "no_offer"  # its benefit is text for the cashier, not something the till computes
NOT_IN_SCOPE = "not_in_scope"  # no line of the basket is one it discounts
TOO_FEW_ITEMS = "too_few_items"  # buy N pay for M with fewer than N units in scope
MIN_NOT_MET = "min_not_met"  # the basket is below the offer's minimum
NOT_COMBINABLE = "not_combinable"  # its lines took another coupon, or a second basket coupon
NO_DISCOUNT = "no_discount"  # it would take nothing off (what it covers is already free)
REASONS = (
    UNKNOWN_CODE,
    DUPLICATE,
    OTHER_MEMBER,
    REDEEMED,
    EXPIRED,
    NOT_YET_VALID,
    NO_OFFER,
    NOT_IN_SCOPE,
    TOO_FEW_ITEMS,
    MIN_NOT_MET,
    NOT_COMBINABLE,
    NO_DISCOUNT,
)


@dataclass(frozen=True, slots=True)
class Offer:
    """A validated offer: `value` is the percent or the amount (0 for buy N pay for M)."""

    type: str
    scope: str
    value: int = 0
    buy: int = 0
    pay: int = 0
    items: tuple[str, ...] = ()  # as the owner wrote them
    min_basket_minor: int = 0
    _folded: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def covers(self, line: Line) -> bool:
        """Whether the offer discounts this line (a discounted line is never covered)."""
        if line.discounted:
            return False
        if self.scope == BASKET:
            return True
        wanted = {CATEGORIES: line.category, BRANDS: line.brand, SKUS: line.sku}[self.scope]
        return wanted is not None and wanted.strip().casefold() in self._folded

    def as_json(self) -> dict[str, Any]:
        """What is stored in coupon_templates.offer."""
        stored: dict[str, Any] = {"type": self.type}
        if self.type == BUY_N_PAY_M:
            stored |= {"buy": self.buy, "pay": self.pay}
        else:
            stored["value"] = self.value
        return stored | {
            "scope": self.scope,
            "items": list(self.items),
            "min_basket_minor": self.min_basket_minor,
        }


def parse(raw: Mapping[str, Any] | None) -> Offer | None:
    """The offer of a dict as stored or as an owner sent it; None for none. Raises
    InvalidSetting naming the first bad field ("offer.value", "offer.items", ...)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidSetting("offer", "an offer is an object")
    kind = raw.get("type")
    if kind not in TYPES:
        raise InvalidSetting("offer.type", f"must be one of {', '.join(TYPES)}")
    value = buy = pay = 0
    if kind == PERCENT:
        value = _whole(raw, "value", 1, 100)
    elif kind == AMOUNT:
        value = _whole(raw, "value", 1, MAX_AMOUNT_MINOR)
    else:
        buy = _whole(raw, "buy", 2, MAX_BUY)
        pay = _whole(raw, "pay", 1, MAX_BUY)
        if pay >= buy:
            raise InvalidSetting("offer.pay", "pay for fewer than you buy")
    scope = raw.get("scope", BASKET)
    if scope not in SCOPES:
        raise InvalidSetting("offer.scope", f"must be one of {', '.join(SCOPES)}")
    items = _items(raw.get("items") or [], scope)
    minimum = _whole(raw, "min_basket_minor", 0, MAX_AMOUNT_MINOR, default=0)
    folded = frozenset(item.casefold() for item in items)
    return Offer(kind, scope, value, buy, pay, items, minimum, folded)


def _whole(
    raw: Mapping[str, Any], name: str, low: int, high: int, default: int | None = None
) -> int:
    value = raw.get(name, default)
    # bool is an int in Python, never a number an owner meant.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidSetting(f"offer.{name}", f"must be a whole number from {low} to {high}")
    return value


def _items(raw: Any, scope: str) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or not all(isinstance(item, str) for item in raw):
        raise InvalidSetting("offer.items", "a list of names")
    items: list[str] = []
    for item in raw:
        cleaned = item.strip()
        if not cleaned:
            continue
        if len(cleaned) > MAX_ITEM:
            raise InvalidSetting("offer.items", f"each at most {MAX_ITEM} characters")
        if cleaned.casefold() not in {seen.casefold() for seen in items}:
            items.append(cleaned)
    if scope == BASKET and items:
        raise InvalidSetting("offer.items", "a basket-wide offer names no items")
    if scope != BASKET and not items:
        raise InvalidSetting("offer.items", f"name the {scope} it applies to")
    if len(items) > MAX_ITEMS:
        raise InvalidSetting("offer.items", f"at most {MAX_ITEMS}")
    return tuple(items)


# --- evaluating a basket ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issued:
    """An issued coupon as a basket's price reads it (a Coupon row's fields)."""

    id: int
    member_id: int
    code: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    redeemed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Terms:
    """A coupon template as a basket's price and the till's answer read it. `rule` is its
    offer parsed: None for none, or for one stored before a rule got stricter (the till can't
    compute it, the cashier still can)."""

    id: int
    key: str
    kind: str
    benefit: dict[str, Any]  # per language
    discount_minor: int | None
    offer: dict[str, Any] | None
    rule: Offer | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        try:
            rule = parse(self.offer)
        except InvalidSetting:
            rule = None
        object.__setattr__(self, "rule", rule)


@dataclass(frozen=True, slots=True)
class Given:
    """A code as the till sent it, and the coupon it names (None: not a code of the club)."""

    code: str
    coupon: Issued | None = None
    template: Terms | None = None


@dataclass(frozen=True, slots=True)
class LinePrice:
    amount_minor: int  # as sent
    tier_minor: int
    coupon_minor: int
    codes: tuple[str, ...]  # the coupons (stored codes) that took something off it

    @property
    def discount_minor(self) -> int:
        return self.tier_minor + self.coupon_minor

    @property
    def to_pay_minor(self) -> int:
        return self.amount_minor - self.discount_minor


@dataclass(frozen=True, slots=True)
class Applied:
    given: Given
    discount_minor: int
    lines: tuple[int, ...]  # 0-based: the lines it took something off

    @property
    def coupon(self) -> Issued:
        assert self.given.coupon is not None
        return self.given.coupon


@dataclass(frozen=True, slots=True)
class Refused:
    given: Given
    reason: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    lines: tuple[LinePrice, ...]
    tier_percent: int
    applied: tuple[Applied, ...]  # in the order given
    refused: tuple[Refused, ...]  # in the order given

    @property
    def total_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)

    @property
    def tier_minor(self) -> int:
        return sum(line.tier_minor for line in self.lines)

    @property
    def discount_minor(self) -> int:
        return sum(line.discount_minor for line in self.lines)

    @property
    def to_pay_minor(self) -> int:
        return self.total_minor - self.discount_minor

    def paid(self, lines: Sequence[Line]) -> list[Line]:
        """The lines at what the member pays for them (what a purchase records)."""
        return [
            Line(
                qty=line.qty,
                amount_minor=price.to_pay_minor,
                category=line.category,
                brand=line.brand,
                discounted=line.discounted,
                sku=line.sku,
            )
            for line, price in zip(lines, self.lines, strict=True)
        ]


def evaluate(
    lines: Sequence[Line],
    given: Sequence[Given],
    *,
    tier_percent: int,
    member_id: int | None,
    now: dt.datetime,
    redeemed_here: Collection[int] = (),
) -> Evaluation:
    """Each line's discount, the coupons that apply and a reason for each that doesn't (the
    rules are in the module's docstring). `member_id`: the buyer, whose coupons alone apply
    (None: any code's holder). `redeemed_here`: coupon ids redeemed by the very sale being
    answered again, counted as not redeemed (a till's retry gets the first answer)."""
    n = len(lines)
    tier = [
        0 if line.discounted else _half_up(line.amount_minor * tier_percent, 100) for line in lines
    ]
    left = [line.amount_minor - t for line, t in zip(lines, tier, strict=True)]
    coupon = [0] * n
    codes: list[list[str]] = [[] for _ in range(n)]
    taken = [False] * n
    basket_total = sum(line.amount_minor for line in lines)
    outcome: dict[int, Applied | Refused] = {}
    basket_coupons: list[tuple[int, Given, Offer, list[int]]] = []
    seen: set[int] = set()

    for index, item in enumerate(given):
        offer, reason = _usable(item, member_id, now, redeemed_here, seen)
        if offer is None:
            outcome[index] = Refused(item, reason)
            continue
        in_scope = [i for i in range(n) if offer.covers(lines[i])]
        reason = _fits(offer, lines, in_scope, basket_total)
        if reason:
            outcome[index] = Refused(item, reason)
            continue
        if offer.scope == BASKET:
            basket_coupons.append((index, item, offer, in_scope))
            continue
        free = [i for i in in_scope if not taken[i]]
        if not free or _fits(offer, lines, free, basket_total):
            outcome[index] = Refused(item, NOT_COMBINABLE)
            continue
        shares = _shares(offer, lines, left, free)
        if not any(shares.values()):
            outcome[index] = Refused(item, NO_DISCOUNT)
            continue
        for i in free:
            taken[i] = True
        outcome[index] = _apply(item, shares, left, coupon, codes)

    best: tuple[int, int, dict[int, int]] | None = None  # (discount, index, shares)
    for index, _item, offer, in_scope in basket_coupons:
        shares = _shares(offer, lines, left, in_scope)
        total = sum(shares.values())
        if total > 0 and (best is None or total > best[0]):
            best = (total, index, shares)
    for index, item, _offer, _in_scope in basket_coupons:
        if best is not None and index == best[1]:
            outcome[index] = _apply(item, best[2], left, coupon, codes)
        else:
            outcome[index] = Refused(item, NOT_COMBINABLE if best is not None else NO_DISCOUNT)

    priced = tuple(
        LinePrice(line.amount_minor, tier[i], coupon[i], tuple(codes[i]))
        for i, line in enumerate(lines)
    )
    ordered = [outcome[i] for i in range(len(given))]
    return Evaluation(
        priced,
        tier_percent,
        tuple(o for o in ordered if isinstance(o, Applied)),
        tuple(o for o in ordered if isinstance(o, Refused)),
    )


def _usable(
    item: Given,
    member_id: int | None,
    now: dt.datetime,
    redeemed_here: Collection[int],
    seen: set[int],
) -> tuple[Offer | None, str]:
    """The coupon's offer, or None and why it can't be used whatever the basket."""
    held, template = item.coupon, item.template
    if held is None or template is None:
        return None, UNKNOWN_CODE
    if held.id in seen:
        return None, DUPLICATE
    seen.add(held.id)
    if member_id is not None and held.member_id != member_id:
        return None, OTHER_MEMBER
    if held.redeemed_at is not None and held.id not in redeemed_here:
        return None, REDEEMED
    if held.valid_until <= now:
        return None, EXPIRED
    if held.valid_from > now:
        return None, NOT_YET_VALID
    if template.rule is None:
        return None, NO_OFFER
    return template.rule, ""


def _fits(offer: Offer, lines: Sequence[Line], in_scope: Sequence[int], basket_total: int) -> str:
    """Why the offer can't apply to these lines of the basket, or "" if it can."""
    if not in_scope:
        return NOT_IN_SCOPE
    if offer.type == BUY_N_PAY_M and sum(lines[i].qty for i in in_scope) < offer.buy:
        return TOO_FEW_ITEMS
    if basket_total < offer.min_basket_minor:
        return MIN_NOT_MET
    return ""


def _apply(
    item: Given,
    shares: dict[int, int],
    left: list[int],
    coupon: list[int],
    codes: list[list[str]],
) -> Applied:
    assert item.coupon is not None
    touched = []
    for i, share in sorted(shares.items()):
        if share <= 0:
            continue
        left[i] -= share
        coupon[i] += share
        codes[i].append(item.coupon.code)
        touched.append(i)
    return Applied(item, sum(shares.values()), tuple(touched))


def _shares(
    offer: Offer, lines: Sequence[Line], left: Sequence[int], at: Sequence[int]
) -> dict[int, int]:
    """What the offer takes off each of the lines `at`, never more than is left of it."""
    if offer.type == PERCENT:
        return {i: _half_up(left[i] * offer.value, 100) for i in at}
    if offer.type == AMOUNT:
        return _allocate(min(offer.value, sum(left[i] for i in at)), left, at)
    units = sum(lines[i].qty for i in at)
    free = units // offer.buy * (offer.buy - offer.pay)
    shares = dict.fromkeys(at, 0)
    # Cheapest unit first; qty is at least 1 (the API's schema) but a line of 0 is skipped.
    for i in sorted(at, key=lambda i: (Fraction(left[i], max(lines[i].qty, 1)), i)):
        qty = lines[i].qty
        if free <= 0 or qty <= 0:
            continue
        k = min(qty, free)
        free -= k
        shares[i] = left[i] if k == qty else _half_up(left[i] * k, qty)
    return shares


def _allocate(amount: int, left: Sequence[int], at: Sequence[int]) -> dict[int, int]:
    """`amount` (at most the sum left of the lines) in proportion to what is left of each,
    rounded down; the øre short go one each to the lines with the largest remainders (ties:
    the first line). Each of those has room for one more: below the whole, a line's share
    rounded down is less than what is left of it."""
    whole = sum(left[i] for i in at)
    if whole <= 0 or amount <= 0:
        return dict.fromkeys(at, 0)
    shares = {i: amount * left[i] // whole for i in at}
    rest = amount - sum(shares.values())
    for i in sorted(at, key=lambda i: (-(amount * left[i] % whole), i))[:rest]:
        shares[i] += 1
    return shares


def _half_up(numerator: int, denominator: int) -> int:
    """numerator/denominator rounded half up (both non-negative)."""
    return (2 * numerator + denominator) // (2 * denominator)
