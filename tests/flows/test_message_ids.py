"""Every message id the conversation can say exists in every catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import locales
from flows.profile import QUESTION_PROMPT_KINDS

FLOWS = Path(__file__).parents[2] / "flows"
ID = re.compile(
    r"""["']((?:join|profile|help|stop|start|lang|mydata|delete|menu|unknown|error|points|coupons|claim|invite|loyalty)\.[a-z_.]+)["']"""
)


def used_ids() -> set[str]:
    found = {match for path in FLOWS.glob("*.py") for match in ID.findall(path.read_text())}
    found |= {f"profile.ask.{kind}" for kind in QUESTION_PROMPT_KINDS}
    found |= {"error.try_again"}  # said by the webhook when a turn fails
    return found


def test_the_scan_finds_the_conversation() -> None:
    """The scan sees the ids of the main moments (so an empty scan can't pass)."""
    assert {"join.confirm", "stop.confirmed", "profile.done", "unknown.guest"} <= used_ids()


@pytest.mark.parametrize("language", locales.LANGUAGES)
def test_every_used_id_is_in_the_catalog(language: str) -> None:
    """A flow never names a message that a catalog lacks."""
    missing = used_ids() - locales.message_ids(language)
    assert not missing, f"{language} catalog lacks {sorted(missing)}"
