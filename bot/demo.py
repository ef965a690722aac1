"""The demo club that `klubb init --demo` creates: a sports shop in Oslo with three questions,
coupons, rewards for points, a punch card and a referral reward."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store import coupons, journeys
from store.models import BonusRule, Program, PunchCard

DEMO_CLUB = {
    "name": "Torshov Sport",
    "numbers": ["2020"],
    "country": "NO",
    "contact": "post@torshovsport.no",
    "privacy_url": "https://example.com/privacy",
}
# The demo club's owner account in the web admin; `klubb init --demo` prints its password once.
DEMO_ADMIN = "owner@demo.klubb"
DEMO_QUESTIONS: list[dict[str, Any]] = [
    {"key": "first_name", "kind": "first_name"},
    {"key": "birthday", "kind": "birthday"},
    {
        "key": "activities",
        "kind": "multichoice",
        "prompt": {
            "nb": "Hvilke aktiviteter liker du?",
            "sv": "Vilka aktiviteter gillar du?",
            "en": "Which activities interest you?",
        },
        "choices": [
            {"key": "running", "label": {"nb": "Løping", "sv": "Löpning", "en": "Running"}},
            {"key": "cycling", "label": {"nb": "Sykling", "sv": "Cykling", "en": "Cycling"}},
            {"key": "skiing", "label": {"nb": "Ski", "sv": "Skidor", "en": "Skiing"}},
        ],
    },
]

# The demo club's coupon templates, in the order COUPONS lists rewards.
DEMO_COUPONS: list[dict[str, Any]] = [
    {
        "key": "welcome",
        "kind": "welcome",
        "benefit": {"nb": "10% rabatt", "sv": "10% rabatt", "en": "10% off"},
        "valid_days": 60,
        "discount_percent": 10,
    },
    {
        "key": "birthday",
        "kind": "birthday",
        "benefit": {"nb": "20% på en vare", "sv": "20% på en vara", "en": "20% off one item"},
        "valid_days": 30,
        "discount_percent": 20,
    },
    {
        "key": "reward-100",
        "kind": "reward",
        "benefit": {"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"},
        "valid_days": 90,
        "points_cost": 1000,
        "discount_minor": 10000,
    },
    {
        "key": "reward-bottle",
        "kind": "reward",
        "benefit": {"nb": "en drikkeflaske", "sv": "en vattenflaska", "en": "a water bottle"},
        "valid_days": 90,
        "points_cost": 300,
    },
    {
        "key": "referral",
        "kind": "referral",
        "benefit": {"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"},
        "valid_days": 60,
        "discount_minor": 5000,
    },
    {
        "key": "free-waxing",
        "kind": "punch",
        "benefit": {
            "nb": "gratis skismøring",
            "sv": "gratis skidvallning",
            "en": "a free ski waxing",
        },
        "valid_days": 90,
    },
]


def set_up_loyalty(session: Session, program: Program) -> None:
    """Coupons, rewards, a punch card (every 5th ski service is free), extra points on the
    shop's own brand and three journeys, so every loyalty keyword has something to show."""
    made = {}
    for position, template in enumerate(DEMO_COUPONS):
        made[template["key"]] = coupons.create_template(
            session, program, **template, position=position
        )
    session.add(
        PunchCard(
            program_id=program.id,
            category="service",
            every=5,
            template_id=made["free-waxing"].id,
            active=True,
        )
    )
    session.add(BonusRule(program_id=program.id, field="brand", value="Torshov", extra_points=1))
    session.flush()
    # The journeys a shop turns on first (in the catalog's wording): a birthday greeting with
    # the birthday coupon, a reminder before points expire, and a win-back after six months.
    journeys.create(session, program, trigger="birthday", coupon="birthday", now=program.created_at)
    for trigger in ("expiring", "winback"):
        journeys.create(session, program, trigger=trigger, now=program.created_at)
