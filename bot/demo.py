"""The demo club that `klubb init --demo` creates: a sports shop in Oslo with three questions."""

from __future__ import annotations

from typing import Any

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
