"""Every SMS a member gets fits one GSM-7 segment (160 characters) with the worst realistic
values: a club name of 25 characters, 7-digit point balances, the longest dates and money, three
coupons and two rewards. Each message id alone, and every combined reply the router gives, on
every step, in nb, sv and en.

The combined replies are rendered as flows.conversation renders them: the parts joined by
spaces, a question asked again after HELP left out when it would not fit (locales.sms.fit_one).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

import locales
from flows import profile, router
from flows.privacy import CONFIRM_DELETE
from flows.turn import (
    ACTIVE,
    PENDING,
    STOPPED,
    Club,
    CouponView,
    Intent,
    LoyaltyView,
    MemberView,
    Outcome,
    PointsView,
    PunchView,
    Question,
    RewardView,
    State,
    Turn,
)
from locales import LANGUAGES, message_ids, render
from locales.sms import fit_one, is_gsm7, segments

CLUB_NAME = "Torshov Sport & Fritid AS"  # 25 characters: the longest the product promises
BIG = 1_234_567  # a 7-digit balance, cost or count
DAY = dt.date(2027, 9, 30)  # the longest date in every language ("30 Sept 2027" in en)
AMOUNT = 123_450  # 1 234,50: grouping and decimals
# A currency the member does not call "kr" is written by its code, the longer form.
CURRENCY = {"nb": "SEK", "sv": "NOK", "en": "NOK"}
BENEFIT = {"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"}
TIER = {"nb": "Platina", "sv": "Platina", "en": "Platinum"}
QUESTION = {
    "nb": ("Hvilke aktiviteter er du interessert i?", ("Løping", "Sykling", "Ski", "Svømming")),
    "sv": ("Vilka aktiviteter är du intresserad av?", ("Löpning", "Cykling", "Skidor", "Simning")),
    "en": ("Which activities are you interested in?", ("Running", "Cycling", "Skiing", "Swimming")),
}


def benefit(language: str) -> str:
    return locales.benefit(
        BENEFIT[language], language, amount_minor=AMOUNT, currency=CURRENCY[language]
    )


def worst(language: str) -> dict[str, Any]:
    """Every placeholder a message takes, at its longest realistic value."""
    question, labels = QUESTION[language]
    return {
        "club": CLUB_NAME,
        "contact": "medlemmer@torshovsport.no",
        "privacy_url": locales.sms_url("https://torshovsport.no/personvern"),
        "per_month": 3,
        "first_name": "Marie-Christine",
        "question": question,
        "options": " ".join(f"{i} {label}" for i, label in enumerate(labels, start=1)),
        "answer": ", ".join(labels),  # PROFIL's current answer: every choice picked
        "count": BIG,
        "max_length": profile.MAX_TEXT_ANSWER,
        "min_age": 18,
        "phone": "+46701234567",
        "birthday": dt.date(1990, 9, 30),
        "language": render("lang.name", language),
        "joined": DAY,
        "consent": render("mydata.consent.yes", language, date=DAY),
        "answers": render("mydata.answers", language, count=9),
        "date": DAY,
        "code": "WXYZ-7KQ2",
        "benefit": benefit(language),
        "tier": TIER[language],
        "next_tier": TIER[language],
        "n": 9,
        "cost": BIG,
        "balance": BIG,
        "points": BIG,
        "coupon_code": "WXYZ-7KQ2",
        "expiring_points": BIG,
        "expiry_date": DAY,
        "points_to_next": BIG,
        "reward": benefit(language),
        "points_to_reward": BIG,
        "milestone": BIG,
        "years": 99,
        "gift": benefit(language),
        "gift_code": "WXYZ-7KQ2",
        "gift_until": DAY,
        "category": "Sykkelutstyr og reservedel",  # 25: as long as the club's name
        "number": "+46701234567",
        "page": 9,
        "url": locales.sms_url("https://medlem.torshovsport.no/m/" + "x" * 22),
        "coupons": render(
            "coupons.item", language, code="WXYZ-7KQ2", benefit=benefit(language), date=DAY
        ),
        "rewards": render("coupons.reward", language, n=9, benefit=benefit(language), count=BIG),
    }


def sms_ids(language: str) -> list[str]:
    return sorted(i for i in message_ids(language) if not i.startswith(("admin.", "web.")))


def assert_one_segment(text: str, what: object) -> None:
    size = segments(text)
    assert is_gsm7(text), (what, text)
    assert size.segments == 1, (what, size.units, text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_alone_fits_one_segment(language: str) -> None:
    """Each member-facing message id, rendered with the worst values, in GSM-7 and 160."""
    for message_id in sms_ids(language):
        assert_one_segment(render(message_id, language, **worst(language)), message_id)


def test_the_worst_values_are_as_long_as_promised() -> None:
    assert len(CLUB_NAME) == 25
    assert len(str(BIG)) == 7
    assert locales.format_date(DAY, "en") == "30 Sept 2027"
    assert benefit("sv") == "1 234,50 NOK rabatt"


# --- every combined reply the router can give --------------------------------------------------

CLUB = Club(
    id=1,
    name=CLUB_NAME,
    contact="medlemmer@torshovsport.no",
    privacy_url="https://torshovsport.no/personvern",
    per_month=3,
    min_age=18,
    timezone="Europe/Oslo",
)


def questions(language: str) -> tuple[Question, ...]:
    """The demo club's questions and one of each other kind, worded at length."""
    question, labels = QUESTION[language]
    prompt = {language: question}
    choices = tuple(
        {"key": f"k{i}", "label": {language: label}} for i, label in enumerate(labels, start=1)
    )
    return (
        Question(1, "first_name", "first_name", {}),
        Question(2, "birthday", "birthday", {}),
        Question(3, "activities", "multichoice", prompt, choices),
        Question(4, "shop", "choice", prompt, choices),
        Question(5, "brand", "text", prompt),
    )


def loyalty(language: str) -> LoyaltyView:
    """Three coupons, two rewards, a 7-digit balance with a tier, an expiry and a punch card."""
    return LoyaltyView(
        points=PointsView(
            balance=BIG,
            tier=TIER[language],
            next_tier=TIER[language],
            to_next=BIG,
            expiry_points=BIG,
            expiry_date=DAY,
            punch=PunchView(9, 10, benefit(language)),
        ),
        coupons=tuple(CouponView(f"WXY{i}-7KQ2", benefit(language), DAY) for i in range(3)),
        rewards=tuple(RewardView(i, i, benefit(language), BIG) for i in (1, 2)),
        referral_reward="purchase",
    )


def members(language: str) -> Iterator[MemberView | None]:
    """A stranger, and a number on every step of every flow, in every status."""

    def view(status: str, state: State | None = None, joined: bool = True) -> MemberView:
        return MemberView(
            status=status,
            language=language,
            first_name="Marie-Christine",
            flow=state.flow if state else None,
            step=state.step if state else None,
            data=dict(state.data) if state else {},
            joined=joined,
        )

    yield None
    yield view(PENDING, State("join", "consent"), joined=False)
    yield view(ACTIVE)
    yield view(ACTIVE, CONFIRM_DELETE)
    for question in questions(language):
        yield view(ACTIVE, profile.state_for(question))
    yield view(STOPPED)
    yield view(STOPPED, joined=False)


TEXTS = ("", "Marie-Christine", "30.09.1990", "01.01.2020", "1", "1 3", "hva?", "x" * 120)
INTENTS = (
    None,
    Intent("join"),
    Intent("join", "KARI7A"),
    Intent("yes"),
    Intent("no"),
    Intent("stop"),
    Intent("start"),
    Intent("help"),
    Intent("points"),
    Intent("coupons"),
    Intent("coupons", "2"),
    Intent("coupons", "3"),
    Intent("claim"),
    Intent("claim", "1"),
    Intent("claim", "2"),
    Intent("claim", "9"),
    Intent("invite"),
    Intent("lang"),
    Intent("lang", "sv"),
    Intent("lang", "en"),
    Intent("lang", "nb"),
    Intent("mydata"),
    Intent("delete"),
    Intent("skip"),
    Intent("page"),
)


def outcomes(language: str) -> Iterator[tuple[str, Outcome]]:
    for who, intent, text in itertools.product(members(language), INTENTS, TEXTS):
        parts = router.LOYALTY.get(intent.name) if intent else None
        turn = Turn(
            text=text,
            intent=intent,
            member=who,
            club=CLUB,
            language=language,
            today=dt.date(2026, 12, 6),
            questions=questions(language),
            loyalty=loyalty(language) if parts is not None and who is not None else None,
        )
        outcome = router.route(turn)
        state = f"{who.status} {who.flow}/{who.step}" if who else "stranger"
        yield f"{state}, {intent}, {text!r}", outcome


def rendered(outcome: Outcome, language: str, **overrides: Any) -> list[str]:
    """The reply as flows.conversation renders it; the end of sign-up in both its forms (with
    and without the welcome coupon)."""
    language = outcome.language or language
    params = worst(language) | overrides
    forms = []
    for done in ("profile.done", "profile.done.coupon"):
        parts = [
            (
                render(
                    done if reply.id == "profile.done" else reply.id,
                    language,
                    **params | dict(reply.params),
                ),
                reply.optional,
            )
            for reply in outcome.replies
        ]
        forms.append(fit_one(parts))
    return forms


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_combined_reply_fits_one_segment(language: str) -> None:
    """Every step of every flow, answered with every intent and kinds of free text: whatever
    the router says is one GSM-7 segment."""
    seen = 0
    for what, outcome in outcomes(language):
        if not outcome.replies:
            continue
        for text in rendered(outcome, language):
            assert_one_segment(text, what)
            seen += 1
    assert seen > 1000  # the product above reached the router's answers


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_mid_profile_keeps_the_question_when_it_fits(language: str) -> None:
    """HELP at the first-name question from a club with a short name and contact: the help,
    then the question again (both fit)."""
    who = next(m for m in members(language) if m and m.step == "q1")
    turn = Turn("HELP", Intent("help"), who, CLUB, language, DAY, questions(language))
    [text, _] = rendered(router.route(turn), language, club="Kafé Kari", contact="kari@kafe.no")
    assert text.endswith(render("profile.ask.first_name", language))
    assert_one_segment(text, "help")


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_mid_profile_drops_a_question_that_would_overflow(language: str) -> None:
    """HELP at the club's long multiple-choice question: the help alone, in one SMS; the
    member's next text still answers the question."""
    who = next(m for m in members(language) if m and m.step == "q3")
    turn = Turn("HELP", Intent("help"), who, CLUB, language, DAY, questions(language))
    outcome = router.route(turn)
    [text, _] = rendered(outcome, language)
    assert text == render("help.member", language, **worst(language))
    assert outcome.state is router.KEEP


@pytest.mark.parametrize("language", LANGUAGES)
def test_coupons_list_what_fits_and_say_how_to_see_the_rest(language: str) -> None:
    """Three coupons and two rewards take pages; each but the last says how to see the next,
    and every coupon and reward is on one of them."""
    who = next(m for m in members(language) if m and m.status == ACTIVE and m.flow is None)
    pages = []
    for page in range(1, 6):
        turn = Turn(
            "", Intent("coupons", str(page)), who, CLUB, language, DAY, loyalty=loyalty(language)
        )
        [text, _] = rendered(router.route(turn), language)
        assert_one_segment(text, page)
        pages.append(text)
        more = render("coupons.more", language, page=page + 1)
        if not text.endswith(more):
            break
    everything = " ".join(pages)
    for i in range(3):
        assert f"WXY{i}-7KQ2" in everything
    for n in (1, 2):
        assert render("coupons.reward", language, n=n, benefit=benefit(language), count=BIG) in (
            everything
        )
    assert len(pages) > 1
