"""LANG: the member chooses nb, sv or en; every later reply uses it."""

from __future__ import annotations

from flows.help import choices
from flows.keywords import language_named
from flows.turn import Outcome, SetLanguage, Turn, reply


def change(turn: Turn) -> Outcome:
    language = language_named(turn.intent.arg if turn.intent else None)
    if language is None:
        return Outcome.say(reply("lang.ask"))
    if turn.member is None:
        # A number that is not a member has no record to keep a language on: answer in it.
        answer = choices()
        return Outcome(answer.replies, answer.state, (), language)
    return Outcome((reply("lang.changed"),), effects=(SetLanguage(language),), language=language)
