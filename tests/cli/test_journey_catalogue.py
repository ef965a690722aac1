"""`klubb journey list|on` with the catalogue's later journeys (issue 17): listed with their
defaults, switched on with their settings, shown as a member gets them; bad settings named."""

from __future__ import annotations

from typing import Any

from tests.cli.test_journeys import RUNS, _value, journeys_in, klubb, listed, url  # noqa: F401

LATER = (
    "gift_received",
    "member_day",
    "milestone_points",
    "milestone_purchases",
    "milestone_months",
    "coming_reward",
)


def test_listed_with_their_defaults(klubb: Any) -> None:  # noqa: F811
    rows = listed(klubb)
    for trigger in LATER:
        assert rows[trigger][:2] == ["-", "-"], trigger
    assert rows["coming_reward"][2] == "points=100"
    assert rows["milestone_points"][2] == "at=10000 lookback_days=30"
    assert rows["milestone_purchases"][2] == "at=10 lookback_days=30"
    assert rows["milestone_months"][2] == "at=12 lookback_days=7"
    assert rows["member_day"][2] == "-"
    assert rows["gift_received"][2] == "lookback_days=3"


def test_on_with_a_setting_shows_when_and_what_it_sends(klubb: Any, url: str) -> None:  # noqa: F811
    result = klubb("journey", "on", "milestone_months", "--set", "at=24")
    assert result.code == 0, result.err
    [journey] = journeys_in(url)
    assert (journey.trigger, journey.settings) == ("milestone_months", {"at": 24})
    out = result.out
    assert _value(out, "when") == (
        "when a member has been a member for 24 months, once per member (catching up to 7 days"
        " late)"
    )
    assert "    Torshov Sport: Hei Kari! Du har vært medlem i Torshov Sport i 24 måneder." in out
    assert out.splitlines()[-1] == (
        f"klubb: milestone_months journey on (set up now, id {journey.id}): {RUNS}"
    )


def test_the_reward_coming_names_the_clubs_cheapest_reward(klubb: Any) -> None:  # noqa: F811
    result = klubb("journey", "on", "coming_reward")
    assert result.code == 0, result.err
    assert _value(result.out, "when") == (
        "when a member is within 100 points of the nearest reward above their balance, once"
        " per reward (again after points are spent)"
    )
    assert "Bare 150 poeng til, så kan du hente " in result.out
    gift = klubb("journey", "on", "gift_received")
    assert gift.code == 0, gift.err
    assert "har gitt deg en gave: " in gift.out
    assert "Kode ABCD-2345, gjelder t.o.m. " in gift.out


def test_bad_settings_are_one_line_naming_them(klubb: Any, url: str) -> None:  # noqa: F811
    for args, message in (
        (("--set", "at=1"), "klubb journey: --set at: must be a whole number from 2 to 1200"),
        (("--set", "days=3"), "klubb journey: --set days: not a setting of milestone_months"),
    ):
        result = klubb("journey", "on", "milestone_months", *args)
        assert result.code == 2
        assert result.err.startswith(message), result.err
        assert len(result.err.splitlines()) == 1
    assert journeys_in(url) == []
