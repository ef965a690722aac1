"""`klubb journey on cross_sell --category` and `klubb campaign send --favourite-coupon` (issue
17): a category's texts saved and taken out, the favourite category offer created with its
coupons per category; bad input one line naming the flag."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store.models import CouponTemplate
from store.outreach import campaigns, journeys
from tests.cli.test_campaigns import campaigns_in
from tests.cli.test_journeys import _value, journeys_in, klubb, read, url  # noqa: F401


def test_a_category_text_switches_cross_sell_on(klubb: Any, url: str) -> None:  # noqa: F811
    result = klubb(
        "journey",
        "on",
        "cross_sell",
        "--category",
        "sko",
        "--text-nb",
        "Hei {first_name}! Er du også interessert i skopuss til {category}?",
        "--set",
        "delay_days=5",
    )
    assert result.code == 0, result.err
    [journey] = journeys_in(url)
    assert journey.status == "active"
    assert journeys.category_texts(journey) == {
        "sko": {"nb": "Hei {first_name}! Er du også interessert i skopuss til {category}?"}
    }
    assert journeys.settings_of(journey)["delay_days"] == 5
    assert _value(result.out, "when").startswith("5 days after a purchase of sko, unless")
    assert "Torshov Sport: Hei Kari! Er du også interessert i skopuss til sko?" in result.out
    more = klubb("journey", "on", "cross_sell", "--category", "ski", "--text", "Smøring?")
    assert more.code == 0, more.err
    assert more.out.splitlines()[-1].endswith("is on, with texts for ski, sko")
    assert "categories=ski,sko" in _value(more.out, "settings")
    gone = klubb("journey", "off", "cross_sell", "--category", "sko")
    assert gone.code == 0, gone.err
    [journey] = journeys_in(url)
    assert list(journeys.category_texts(journey)) == ["ski"]
    assert journey.status == "active"
    again = klubb("journey", "off", "cross_sell", "--category", "sko")
    assert again.code == 1
    assert "has no texts for 'sko' (it has: ski)" in again.err


def test_bad_category_input_is_one_line_naming_the_flag(klubb: Any, url: str) -> None:  # noqa: F811
    for args, message in (
        (("welcome", "--category", "sko", "--text", "x"), "--category: only the cross_sell"),
        (("cross_sell", "--category", "sko"), "--category: give its text with --text"),
        (("cross_sell", "--category", " ", "--text", "x"), "--category: a category is 1 to 60"),
        (("cross_sell", "--category", "sko", "--text", "{gift}"), "--text: unknown placeholder"),
        (
            ("cross_sell", "--category", "sko", "--text", "x", "--set", "delay_days=91"),
            "--set delay_days: must be a whole number from 0 to 90",
        ),
    ):
        result = klubb("journey", "on", *args)
        assert result.code == 2, (args, result.out)
        assert result.err.startswith(f"klubb journey: {message}"), result.err
        assert len(result.err.splitlines()) == 1
    assert journeys_in(url) == []


def test_a_favourite_offer_with_coupons_per_category(klubb: Any, url: str) -> None:  # noqa: F811
    result = klubb(
        "campaign",
        "send",
        "--text",
        "20% på {favourite_category}: {coupon_code}",
        "--favourite-coupon",
        "sko=welcome",
        "--favourite-coupon",
        "ski=reward-100",
        "--coupon",
        "birthday",
        "--yes",
    )
    assert result.code == 0, result.err
    assert _value(result.out, "favourite category") == (
        "each member's most bought category of the last 12 months; coupons by category: "
        "sko=welcome, ski=reward-100"
    )
    [made] = campaigns_in(url)
    offer = campaigns.favourite_of(made)
    assert offer is not None
    assert sorted(offer) == ["ski", "sko"]
    templates = read(
        url, lambda s: dict(s.execute(select(CouponTemplate.id, CouponTemplate.key)).all())
    )
    assert {category: templates[i] for category, i in offer.items()} == {
        "sko": "welcome",
        "ski": "reward-100",
    }


def test_bad_favourite_input_is_one_line_naming_the_flag(klubb: Any, url: str) -> None:  # noqa: F811
    for args, message in (
        (("--favourite-coupon", "sko"), "--favourite-coupon sko: give CATEGORY=TEMPLATE_KEY"),
        (
            ("--favourite-coupon", "sko=nope"),
            "--favourite-coupon sko: the club has no active coupon template 'nope'",
        ),
        (("--text", "Hei {favorite_category}", "--favourite"), "--text: unknown placeholder"),
    ):
        text = () if "--text" in args else ("--text", "Hei {favourite_category}")
        result = klubb("campaign", "send", *text, *args, "--dry-run")
        assert result.code == 2, (args, result.out)
        assert result.err.startswith(f"klubb campaign: {message}"), result.err
        assert len(result.err.splitlines()) == 1
    assert campaigns_in(url) == []
