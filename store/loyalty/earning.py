"""Earning rules as a pure function: the points each line of a purchase earns.

The points of a purchase are floor(sum of the lines' exact points); that total is shared out
to the lines by largest remainder, so the lines' points add up to the purchase's exactly and a
refund of a line can take back exactly what that line earned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Line:
    qty: int
    amount_minor: int
    category: str | None = None
    brand: str | None = None
    discounted: bool = False
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class Bonus:
    """Extra points per earning unit on lines whose `field` (category or brand) is `value`."""

    field: str
    value: str
    extra_points: int


@dataclass(frozen=True, slots=True)
class Rules:
    earn_points: int  # points ...
    earn_per_minor: int  # ... per this many minor units
    min_purchase_minor: int = 0
    multiplier: int = 1  # the period multiplier in force when the purchase was made
    bonuses: tuple[Bonus, ...] = ()


def line_points(lines: Sequence[Line], rules: Rules) -> list[int]:
    """Points per line: nothing on discounted lines, nothing below the minimum purchase."""
    total_amount = sum(line.amount_minor for line in lines)
    if not lines or total_amount < max(rules.min_purchase_minor, 1):
        return [0] * len(lines)
    unit = rules.earn_per_minor
    exact = [line.amount_minor * _rate(line, rules) if not line.discounted else 0 for line in lines]
    total = sum(exact) // unit
    points = [value // unit for value in exact]
    leftover = total - sum(points)
    # The lines closest to their next point get the points the floors left over.
    by_remainder = sorted(range(len(lines)), key=lambda i: (-(exact[i] % unit), i))
    for i in by_remainder[:leftover]:
        points[i] += 1
    return points


def _rate(line: Line, rules: Rules) -> int:
    rate = rules.earn_points * rules.multiplier
    for bonus in rules.bonuses:
        value = line.category if bonus.field == "category" else line.brand
        if value is not None and value.casefold() == bonus.value.casefold():
            rate += bonus.extra_points
    return max(rate, 0)


def taken_back(points: int, amount: int, refunded_before: int, refunded_now: int) -> int:
    """The points a refund of `refunded_now` (after `refunded_before`) of a line takes back.

    Counted cumulatively, so any sequence of partial refunds that returns the whole line takes
    back exactly its points, never one more or less."""
    if amount <= 0:
        return points if refunded_before == 0 else 0
    after = points * min(refunded_before + refunded_now, amount) // amount
    before = points * min(refunded_before, amount) // amount
    return after - before
