"""The demo club that `klubb init --demo` creates: a sports shop in Oslo with three questions,
coupons, rewards for points, a punch card and a referral reward."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store import coupons
from store.models import BonusRule, Program, PunchCard

DEMO_CLUB = {
    "name": "Torshov Sport",
    "numbers": ["2020"],
    "country": "NO",
    "contact": "post@torshovsport.no",
    "privacy_url": "https://example.com/privacy",
}
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

# (key, kind, benefit per language, valid days, points cost)
DEMO_COUPONS: list[tuple[str, str, dict[str, str], int, int | None]] = [
    ("welcome", "welcome", {"nb": "10% rabatt", "sv": "10% rabatt", "en": "10% off"}, 60, None),
    (
        "birthday",
        "birthday",
        {"nb": "20% på en vare", "sv": "20% på en vara", "en": "20% off one item"},
        30,
        None,
    ),
    (
        "reward-100",
        "reward",
        {"nb": "100 kr rabatt", "sv": "100 kr rabatt", "en": "100 kr off"},
        90,
        1000,
    ),
    (
        "reward-bottle",
        "reward",
        {"nb": "en drikkeflaske", "sv": "en vattenflaska", "en": "a water bottle"},
        90,
        300,
    ),
    (
        "referral",
        "referral",
        {"nb": "50 kr rabatt", "sv": "50 kr rabatt", "en": "50 kr off"},
        60,
        None,
    ),
    (
        "free-waxing",
        "punch",
        {"nb": "gratis skismøring", "sv": "gratis skidvallning", "en": "a free ski waxing"},
        90,
        None,
    ),
]


def set_up_loyalty(session: Session, program: Program) -> None:
    """Coupons, rewards, a punch card (every 5th ski service is free) and extra points on the
    shop's own brand, so every loyalty keyword has something to show."""
    made = {}
    for position, (key, kind, benefit, days, cost) in enumerate(DEMO_COUPONS):
        made[key] = coupons.create_template(
            session,
            program,
            key=key,
            kind=kind,
            benefit=benefit,
            valid_days=days,
            points_cost=cost,
            position=position,
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
