"""HELP, and the short menu for a text that asks for nothing Klubb knows."""

from __future__ import annotations

from flows.turn import ACTIVE, Outcome, Turn, reply


def help_(turn: Turn) -> Outcome:
    member_id = "help.member" if _is_member(turn) else "help.guest"
    return Outcome.say(reply(member_id))


def menu(turn: Turn) -> Outcome:
    return Outcome.say(reply("menu.member" if _is_member(turn) else "menu.guest"))


def _is_member(turn: Turn) -> bool:
    return turn.member is not None and turn.member.status == ACTIVE
