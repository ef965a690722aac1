"""HELP, and the reply to a text Klubb could not understand: passed on, or what to text."""

from __future__ import annotations

from dataclasses import replace

from flows.turn import ACTIVE, Outcome, Turn, reply


def help_(turn: Turn) -> Outcome:
    member_id = "help.member" if _is_member(turn) else "help.guest"
    return Outcome.say(reply(member_id))


FORWARDED = "unknown.forwarded"  # the club may word it per language (flows.conversation)


def menu(turn: Turn) -> Outcome:
    """The router's answer when it can't tell what the text asks, the text marked as not
    understood (it reaches the club's inbox; the dashboard counts them). A member who wrote
    to a person (a sentence: two words or more) is told a person will answer; a single word
    (most often a keyword mistyped) gets what the member can text. A number that is not a
    member is told how to join."""
    if not _is_member(turn):
        message_id = "unknown.guest"
    elif _is_sentence(turn.text):
        message_id = FORWARDED
    else:
        message_id = "unknown.member"
    return replace(Outcome.say(reply(message_id)), not_understood=True)


def choices() -> Outcome:
    """What a number that is not a member can text (after LANG, say): nothing misunderstood."""
    return Outcome.say(reply("menu.guest"))


def _is_member(turn: Turn) -> bool:
    return turn.member is not None and turn.member.status == ACTIVE


def _is_sentence(text: str) -> bool:
    """Two words or more with letters in them: "har dere åpent?" is, "poeng1" and "12 3" not."""
    return sum(any(c.isalpha() for c in word) for word in text.split()) >= 2
