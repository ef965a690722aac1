"""HELP, and the reply to a text Klubb could not understand: what the member can text."""

from __future__ import annotations

from dataclasses import replace

from flows.turn import ACTIVE, Outcome, Turn, reply


def help_(turn: Turn) -> Outcome:
    member_id = "help.member" if _is_member(turn) else "help.guest"
    return Outcome.say(reply(member_id))


def menu(turn: Turn) -> Outcome:
    """The router's answer when it can't tell what the text asks: one SMS saying what the
    member can text, and the text marked as not understood (the dashboard counts them)."""
    answer = Outcome.say(reply("unknown.member" if _is_member(turn) else "unknown.guest"))
    return replace(answer, not_understood=True)


def choices() -> Outcome:
    """What a number that is not a member can text (after LANG, say): nothing misunderstood."""
    return Outcome.say(reply("menu.guest"))


def _is_member(turn: Turn) -> bool:
    return turn.member is not None and turn.member.status == ACTIVE
