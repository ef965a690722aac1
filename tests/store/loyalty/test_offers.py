"""Offers and basket evaluation as pure functions: the rules table, each refusal, and the
properties that hold for any basket (no database)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.errors import InvalidSetting
from store.loyalty import offers
from store.loyalty.earning import Line

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
MEMBER = 7
_IDS = itertools.count(1)


def coupon(
    offer: dict[str, Any] | None,
    *,
    member_id: int = MEMBER,
    redeemed: bool = False,
    valid_from: dt.datetime = NOW - dt.timedelta(days=1),
    valid_until: dt.datetime = NOW + dt.timedelta(days=1),
) -> offers.Given:
    """A code given at the till, naming a coupon with this offer."""
    n = next(_IDS)
    template = offers.Terms(
        id=n, key=f"t{n}", kind="campaign", benefit={"en": "-"}, discount_minor=None, offer=offer
    )
    held = offers.Issued(
        id=n,
        member_id=member_id,
        code=f"CODE{n:04d}",
        valid_from=valid_from,
        valid_until=valid_until,
        redeemed_at=NOW - dt.timedelta(hours=1) if redeemed else None,
    )
    return offers.Given(held.code, held, template)


def offer(kind: str = "percent", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": kind, "scope": "basket", "items": [], "min_basket_minor": 0}
    if kind == "buy_n_pay_m":
        base |= {"buy": 3, "pay": 2}
    else:
        base["value"] = 20 if kind == "percent" else 5000
    return base | fields


def evaluate(lines: list[Line], *codes: offers.Given, tier: int = 0) -> offers.Evaluation:
    return offers.evaluate(lines, list(codes), tier_percent=tier, member_id=MEMBER, now=NOW)


SHOES = Line(qty=1, amount_minor=60_000, category="Sko", brand="Asics", sku="A-1")
SOCKS = Line(qty=3, amount_minor=15_000, category="Sokker", brand="Bergans", sku="S-9")
SALE = Line(qty=1, amount_minor=10_000, category="Sko", discounted=True)


class TestOffer:
    """An offer is validated when saved, each bad field named."""

    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            ({"type": "gift"}, "offer.type"),
            (offer(value=0), "offer.value"),
            (offer(value=101), "offer.value"),
            (offer(value="20"), "offer.value"),
            (offer(value=True), "offer.value"),
            (offer("amount", value=-5), "offer.value"),
            (offer("buy_n_pay_m", buy=1), "offer.buy"),
            (offer("buy_n_pay_m", buy=3, pay=3), "offer.pay"),
            (offer(scope="aisles"), "offer.scope"),
            (offer(scope="categories"), "offer.items"),
            (offer(scope="categories", items=["  "]), "offer.items"),
            (offer(items=["Sko"]), "offer.items"),
            (offer(scope="skus", items=["x" * 65]), "offer.items"),
            (offer(scope="skus", items="A-1"), "offer.items"),
            (offer(min_basket_minor=-1), "offer.min_basket_minor"),
        ],
    )
    def test_a_bad_field_is_named(self, raw: dict[str, Any], field: str) -> None:
        with pytest.raises(InvalidSetting) as refused:
            offers.parse(raw)
        assert refused.value.field == field

    def test_stored_canonical(self) -> None:
        parsed = offers.parse(offer(scope="categories", items=[" Sko ", "sko", "Sokker"]))
        assert parsed is not None
        assert parsed.as_json() == {
            "type": "percent",
            "value": 20,
            "scope": "categories",
            "items": ["Sko", "Sokker"],
            "min_basket_minor": 0,
        }
        assert offers.parse(parsed.as_json()) == parsed
        assert offers.parse(None) is None


class TestRules:
    """Each rule of the module's docstring, with the figures a till would see."""

    def test_percent_off_a_category_rounds_half_up_per_line(self) -> None:
        line = Line(qty=1, amount_minor=12_345, category="sko")
        result = evaluate([line, SOCKS], coupon(offer(scope="categories", items=["SKO"])))
        assert [p.coupon_minor for p in result.lines] == [2469, 0]  # 2469.0
        result = evaluate(
            [Line(qty=1, amount_minor=2_5, category="sko")],
            coupon(offer(scope="categories", items=["sko"], value=10)),
        )
        assert result.lines[0].coupon_minor == 3  # 2.5 rounds up

    def test_tier_first_then_coupons_on_what_is_left(self) -> None:
        result = evaluate([SHOES], coupon(offer(value=10)), tier=10)
        assert result.lines[0].tier_minor == 6_000
        assert result.lines[0].coupon_minor == 5_400
        assert result.to_pay_minor == 48_600

    def test_discounted_lines_get_nothing(self) -> None:
        result = evaluate([SALE, SHOES], coupon(offer()), tier=10)
        assert result.lines[0].discount_minor == 0
        assert result.lines[1].discount_minor > 0

    def test_amount_is_shared_in_proportion_and_adds_up(self) -> None:
        lines = [
            Line(qty=1, amount_minor=100),
            Line(qty=1, amount_minor=100),
            Line(qty=1, amount_minor=100),
        ]
        result = evaluate(lines, coupon(offer("amount", value=200)))
        assert [p.coupon_minor for p in result.lines] == [67, 67, 66]
        assert result.discount_minor == 200

    def test_amount_never_more_than_the_lines(self) -> None:
        result = evaluate([SOCKS], coupon(offer("amount", value=99_999)))
        assert result.discount_minor == SOCKS.amount_minor
        assert result.applied[0].discount_minor == SOCKS.amount_minor

    def test_three_for_two_frees_the_cheapest_unit(self) -> None:
        cheap = Line(qty=1, amount_minor=5_000, sku="A")
        dear = Line(qty=2, amount_minor=20_000, sku="B")
        three_for_two = coupon(offer("buy_n_pay_m", scope="skus", items=["A", "B"]))
        result = evaluate([dear, cheap], three_for_two)
        assert [p.coupon_minor for p in result.lines] == [0, 5_000]

    def test_three_for_two_on_one_line_of_six(self) -> None:
        result = evaluate(
            [Line(qty=6, amount_minor=6_000, sku="A")],
            coupon(offer("buy_n_pay_m", scope="skus", items=["a"])),
        )
        assert result.lines[0].coupon_minor == 2_000

    def test_one_line_coupon_per_line(self) -> None:
        first = coupon(offer(scope="brands", items=["asics"]))
        second = coupon(offer(scope="categories", items=["sko"], value=50))
        result = evaluate([SHOES], first, second)
        assert [a.given for a in result.applied] == [first]
        assert [(r.given, r.reason) for r in result.refused] == [(second, offers.NOT_COMBINABLE)]

    def test_one_basket_coupon_the_one_giving_most(self) -> None:
        small, big = coupon(offer(value=10)), coupon(offer("amount", value=20_000))
        result = evaluate([SHOES], small, big)
        assert [a.given for a in result.applied] == [big]
        assert [(r.given, r.reason) for r in result.refused] == [(small, offers.NOT_COMBINABLE)]

    def test_a_basket_coupon_after_a_line_coupon(self) -> None:
        line = coupon(offer(scope="categories", items=["sko"], value=50))
        basket = coupon(offer(value=10))
        result = evaluate([SHOES, SOCKS], line, basket)
        assert [p.coupon_minor for p in result.lines] == [30_000 + 3_000, 1_500]
        assert result.lines[0].codes == (line.code, basket.code)


class TestRefusals:
    """Every code that gives nothing says why."""

    @pytest.mark.parametrize(
        ("given", "reason"),
        [
            (offers.Given("NOPE1234"), offers.UNKNOWN_CODE),
            (coupon(offer(), member_id=99), offers.OTHER_MEMBER),
            (coupon(offer(), redeemed=True), offers.REDEEMED),
            (coupon(offer(), valid_until=NOW), offers.EXPIRED),
            (coupon(offer(), valid_from=NOW + dt.timedelta(seconds=1)), offers.NOT_YET_VALID),
            (coupon(None), offers.NO_OFFER),
            (coupon(offer(scope="categories", items=["Ski"])), offers.NOT_IN_SCOPE),
            (coupon(offer(scope="categories", items=["Sko"])), offers.NOT_IN_SCOPE),  # on sale
            (coupon(offer("buy_n_pay_m")), offers.TOO_FEW_ITEMS),
            (coupon(offer(min_basket_minor=10_001)), offers.MIN_NOT_MET),
        ],
    )
    def test_reason(self, given: offers.Given, reason: str) -> None:
        result = evaluate(
            [SALE, Line(qty=1, amount_minor=0)] if reason != offers.NOT_IN_SCOPE else [SALE], given
        )
        assert [(r.given.code, r.reason) for r in result.refused] == [(given.code, reason)]
        assert result.discount_minor == 0

    def test_no_discount_when_nothing_is_left(self) -> None:
        result = evaluate([Line(qty=1, amount_minor=0)], coupon(offer()))
        assert [r.reason for r in result.refused] == [offers.NO_DISCOUNT]

    def test_the_same_code_twice_counts_once(self) -> None:
        once = coupon(offer())
        result = evaluate([SHOES], once, offers.Given("code-0000", once.coupon, once.template))
        assert len(result.applied) == 1
        assert [r.reason for r in result.refused] == [offers.DUPLICATE]

    def test_redeemed_by_the_sale_answered_again_counts_as_not(self) -> None:
        used = coupon(offer(), redeemed=True)
        assert used.coupon is not None
        result = offers.evaluate(
            [SHOES],
            [used],
            tier_percent=0,
            member_id=MEMBER,
            now=NOW,
            redeemed_here={used.coupon.id},
        )
        assert result.applied[0].discount_minor == 12_000


# --- properties ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["sko", "Sko", "sokker", "ski", None])
LINE = st.builds(
    Line,
    qty=st.integers(1, 7),
    amount_minor=st.one_of(st.integers(0, 50), st.integers(0, 2_000_000)),
    category=NAMES,
    brand=NAMES,
    discounted=st.booleans(),
    sku=NAMES,
)
OFFER = st.one_of(
    st.builds(
        lambda value, scope, items, minimum: offer(
            value=value,
            scope=scope,
            items=items if scope != "basket" else [],
            min_basket_minor=minimum,
        ),
        st.integers(1, 100),
        st.sampled_from(offers.SCOPES),
        st.lists(st.sampled_from(["sko", "ski", "sokker"]), min_size=1, max_size=2),
        st.integers(0, 100_000),
    ),
    st.builds(
        lambda value, scope, items: offer(
            "amount", value=value, scope=scope, items=items if scope != "basket" else []
        ),
        st.integers(1, 3_000_000),
        st.sampled_from(offers.SCOPES),
        st.lists(st.sampled_from(["sko", "ski"]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda buy, pay, scope, items: offer(
            "buy_n_pay_m",
            buy=buy,
            pay=min(pay, buy - 1),
            scope=scope,
            items=items if scope != "basket" else [],
        ),
        st.integers(2, 5),
        st.integers(1, 4),
        st.sampled_from(offers.SCOPES),
        st.lists(st.sampled_from(["sko", "ski"]), min_size=1, max_size=2),
    ),
)
CODE = st.one_of(
    st.builds(coupon, OFFER),
    st.builds(lambda o: coupon(o, redeemed=True), OFFER),
    st.just(offers.Given("UNKNOWN1")),
)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(LINE, min_size=1, max_size=8),
    codes=st.lists(CODE, max_size=5),
    tier=st.integers(0, 100),
)
def test_any_basket(lines: list[Line], codes: list[offers.Given], tier: int) -> None:
    """For any basket: no line's discount is negative or more than the line, a discounted line
    gets none, the applied coupons' discounts and the tier's add up to the lines', every code is
    either applied or refused, and the same basket evaluated twice gives the same answer."""
    result = evaluate(lines, *codes, tier=tier)
    for line, price in zip(lines, result.lines, strict=True):
        assert price.tier_minor >= 0
        assert price.coupon_minor >= 0
        assert price.discount_minor <= line.amount_minor
        if line.discounted:
            assert price.discount_minor == 0
    coupon_total = sum(p.coupon_minor for p in result.lines)
    assert sum(a.discount_minor for a in result.applied) == coupon_total
    assert all(a.discount_minor > 0 for a in result.applied)
    assert len(result.applied) + len(result.refused) == len(codes)
    assert result.to_pay_minor == sum(line.amount_minor for line in lines) - result.discount_minor
    assert evaluate(lines, *codes, tier=tier) == result
    assert evaluate(list(lines), *list(codes), tier=tier) == result
