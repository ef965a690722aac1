"""The earning rules as a pure function: points per line, and what a refund of a line takes back."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from store.loyalty.earning import Bonus, Line, Rules, line_points, taken_back

ONE_PER_KRONE = Rules(earn_points=1, earn_per_minor=100)


def test_points_per_unit_are_rounded_down() -> None:
    """1 point per 100 minor units: 123.45 kr earns 123 points, 0.99 kr earns none."""
    assert line_points([Line(qty=1, amount_minor=12345)], ONE_PER_KRONE) == [123]
    assert line_points([Line(qty=1, amount_minor=99)], ONE_PER_KRONE) == [0]


def test_the_club_sets_points_and_unit() -> None:
    """3 points per 50 minor units: 1000 minor units earn 60."""
    rules = Rules(earn_points=3, earn_per_minor=50)
    assert line_points([Line(qty=2, amount_minor=1000)], rules) == [60]


def test_the_purchase_total_is_floored_once_and_shared_by_largest_remainder() -> None:
    """Three lines of 0.50 kr earn 1 point together (floor of 1.5), not 0 each; the point goes
    to the first of the lines closest to their next point."""
    lines = [
        Line(qty=1, amount_minor=50),
        Line(qty=1, amount_minor=60),
        Line(qty=1, amount_minor=40),
    ]
    assert line_points(lines, ONE_PER_KRONE) == [0, 1, 0]
    assert sum(line_points(lines, ONE_PER_KRONE)) == 1


def test_discounted_lines_earn_nothing_and_never_get_a_leftover_point() -> None:
    lines = [
        Line(qty=1, amount_minor=150),
        Line(qty=1, amount_minor=5000, discounted=True),
        Line(qty=1, amount_minor=150),
    ]
    assert line_points(lines, ONE_PER_KRONE) == [2, 0, 1]


def test_below_the_minimum_purchase_nothing_is_earned() -> None:
    rules = Rules(earn_points=1, earn_per_minor=100, min_purchase_minor=10000)
    assert line_points([Line(qty=1, amount_minor=9999)], rules) == [0]
    assert line_points([Line(qty=1, amount_minor=10000)], rules) == [100]
    # The minimum is on the whole purchase, not on each line.
    two = [Line(qty=1, amount_minor=6000), Line(qty=1, amount_minor=4000)]
    assert line_points(two, rules) == [60, 40]


def test_an_empty_or_free_purchase_earns_nothing() -> None:
    assert line_points([], ONE_PER_KRONE) == []
    assert line_points([Line(qty=1, amount_minor=0)], ONE_PER_KRONE) == [0]


def test_a_multiplier_multiplies_the_base_points() -> None:
    double = Rules(earn_points=1, earn_per_minor=100, multiplier=2)
    triple = Rules(earn_points=2, earn_per_minor=100, multiplier=3)
    assert line_points([Line(qty=1, amount_minor=1000)], double) == [20]
    assert line_points([Line(qty=1, amount_minor=1000)], triple) == [60]


def test_bonus_points_for_a_category_or_brand_ignore_case() -> None:
    """2 extra points per krone on shoes, 1 on the brand Aasnes; both may add to one line."""
    rules = Rules(
        earn_points=1,
        earn_per_minor=100,
        bonuses=(Bonus("category", "Sko", 2), Bonus("brand", "AASNES", 1)),
    )
    lines = [
        Line(qty=1, amount_minor=1000, category="SKO"),
        Line(qty=1, amount_minor=1000, brand="aasnes"),
        Line(qty=1, amount_minor=1000, category="sko", brand="Aasnes"),
        Line(qty=1, amount_minor=1000, category="Klær", brand="Other"),
    ]
    assert line_points(lines, rules) == [30, 20, 40, 10]


def test_a_bonus_matches_letters_beyond_ascii_in_any_case() -> None:
    rules = Rules(earn_points=1, earn_per_minor=100, bonuses=(Bonus("category", "ØL", 1),))
    assert line_points([Line(qty=1, amount_minor=1000, category="øl")], rules) == [20]


def test_a_bonus_does_not_apply_to_a_discounted_line() -> None:
    rules = Rules(earn_points=1, earn_per_minor=100, bonuses=(Bonus("category", "sko", 5),))
    line = Line(qty=1, amount_minor=1000, category="sko", discounted=True)
    assert line_points([line], rules) == [0]


def test_a_whole_refund_takes_back_the_line_in_one_step() -> None:
    assert taken_back(points=37, amount=1000, refunded_before=0, refunded_now=1000) == 37


def test_partial_refunds_add_up_to_exactly_the_line() -> None:
    """10 points on 1000 minor units refunded a third at a time: 3, 3 and then the rest, 4."""
    steps = [333, 333, 334]
    before, taken = 0, []
    for amount in steps:
        taken.append(taken_back(10, 1000, before, amount))
        before += amount
    assert taken == [3, 3, 4]


LINES = st.lists(
    st.builds(
        Line,
        qty=st.integers(1, 5),
        amount_minor=st.integers(0, 100_000),
        category=st.sampled_from([None, "sko", "SKO", "klær"]),
        brand=st.sampled_from([None, "Aasnes"]),
        discounted=st.booleans(),
    ),
    min_size=1,
    max_size=8,
)
RULES = st.builds(
    Rules,
    earn_points=st.integers(1, 5),
    earn_per_minor=st.integers(1, 500),
    min_purchase_minor=st.integers(0, 50_000),
    multiplier=st.integers(1, 3),
    bonuses=st.sampled_from([(), (Bonus("category", "Sko", 2),), (Bonus("brand", "aasnes", 1),)]),
)


@settings(max_examples=200, deadline=None)
@given(LINES, RULES)
def test_line_points_share_out_the_purchase_exactly(lines: list[Line], rules: Rules) -> None:
    """For any lines and rules: the lines' points add up to the floor of the purchase's exact
    points; each line gets its own floor or one more; discounted lines get nothing."""
    points = line_points(lines, rules)
    unit = rules.earn_per_minor
    assert len(points) == len(lines)
    if sum(line.amount_minor for line in lines) < max(rules.min_purchase_minor, 1):
        assert points == [0] * len(lines)
        return
    exact = []
    for line in lines:
        rate = rules.earn_points * rules.multiplier
        for bonus in rules.bonuses:
            value = line.category if bonus.field == "category" else line.brand
            if value is not None and value.casefold() == bonus.value.casefold():
                rate += bonus.extra_points
        exact.append(0 if line.discounted else line.amount_minor * rate)
    assert sum(points) == sum(exact) // unit
    for line_exact, line_got, line in zip(exact, points, lines, strict=True):
        assert line_exact // unit <= line_got <= line_exact // unit + 1
        if line.discounted:
            assert line_got == 0


@settings(max_examples=200, deadline=None)
@given(
    points=st.integers(0, 10_000),
    amount=st.integers(1, 100_000),
    cuts=st.lists(st.floats(0, 1), max_size=6),
)
def test_any_split_of_a_refund_takes_back_exactly_the_line(
    points: int, amount: int, cuts: list[float]
) -> None:
    """However a line is refunded in parts, each part takes back 0 or more points, never more
    than the line earned, and the parts add up to exactly what it earned."""
    marks = sorted({0, amount, *(int(c * amount) for c in cuts)})
    taken = [
        taken_back(points, amount, before, after - before)
        for before, after in itertools.pairwise(marks)
    ]
    assert all(t >= 0 for t in taken)
    assert sum(taken) == points
