"""`klubb understand TEXT [--language] [--state]`: the intent and why, with no database."""

from __future__ import annotations

import pytest

from bot.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    assert main(["understand", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


@pytest.mark.parametrize(
    ("argv", "intent", "why"),
    [
        (("jeg vil ikke være med lenger",), "stop", "ikke vaere med"),
        (("Avslutt", "--state", "awaiting_name"), "stop", "avslutt"),
        (("Kari", "--state", "awaiting_name"), "not understood", "no cue"),
        (("ikke slutt å sende meg tilbud",), "coupons", "tilbud"),
        (("ja takk!", "--state", "consent"), "yes", "yes"),
        (("hent 2",), "claim 2", "keyword claim"),
        (("no more coupons?",), "coupons", "coupons"),
    ],
)
def test_prints_the_intent_and_the_reason(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], intent: str, why: str
) -> None:
    out = run(capsys, *argv)
    assert out["intent"] == intent
    assert why in out["reason"]


def test_the_language_written_in_and_the_one_answered_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run(capsys, "jag vill gå med i klubben")
    assert (out["written"], out["answer"]) == ("sv", "sv")
    out = run(capsys, "jag vill gå med i klubben", "--language", "nb")
    assert out["answer"] == "nb"


def test_an_unknown_state_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["understand", "hei", "--state", "waiting"])
    assert "invalid choice: 'waiting'" in capsys.readouterr().err
