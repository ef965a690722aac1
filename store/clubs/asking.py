"""A club's profile questions as a member reads them: the wording in their language, and the
message a question of each kind is asked with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def in_language(texts: object, language: str) -> str:
    """The club's wording (a question or a choice's label, per language) for a member of this
    language: theirs, else English, else the first the club wrote."""
    if isinstance(texts, str):
        return texts
    if isinstance(texts, Mapping) and texts:
        return texts.get(language) or texts.get("en") or next(iter(texts.values()))
    return ""


def wording_language(texts: object, language: str) -> str | None:
    """Which of the club's languages in_language takes for a member of this language."""
    if not isinstance(texts, Mapping) or not texts:
        return None
    if texts.get(language):
        return language
    return "en" if texts.get("en") else next(iter(texts))


def asked(
    kind: str,
    prompt: Mapping[str, str] | None,
    choices: Sequence[Mapping[str, Any]] | None,
    language: str,
) -> tuple[str, dict[str, str]]:
    """The message id and its values that ask a question of this kind in the language: one
    rule for the SMS conversation (flows.profile), the till's enrolment and the check of the
    club's wording (store.clubs.programs)."""
    if kind in ("first_name", "birthday"):
        return f"profile.ask.{kind}", {}
    question = in_language(prompt, language)
    if kind in ("choice", "multichoice"):
        options = " ".join(
            f"{i} {in_language(choice['label'], language)}"
            for i, choice in enumerate(choices or (), start=1)
        )
        return f"profile.ask.{kind}", {"question": question, "options": options}
    return "profile.ask.text", {"question": question}
