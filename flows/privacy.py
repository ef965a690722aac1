"""MYDATA (a summary of what the club holds) and DELETE (erasure, after a confirmation)."""

from __future__ import annotations

from flows.turn import Erase, Outcome, State, Turn, reply

CONFIRM_DELETE = State("privacy", "confirm_delete")
# Replies whose parameters come from the store when the turn is recorded.
SUMMARY = "mydata.summary"


def mydata(turn: Turn) -> Outcome:
    if turn.member is None:
        return Outcome.say(reply("mydata.guest"))
    return Outcome.say(reply(SUMMARY))


def delete(turn: Turn) -> Outcome:
    if turn.member is None:
        return Outcome.say(reply("mydata.guest"))
    return Outcome.go(CONFIRM_DELETE, reply("delete.ask"))


def confirm_delete(turn: Turn) -> Outcome:
    if turn.intent is not None and turn.intent.name in ("yes", "delete"):
        return Outcome.go(None, reply("delete.done"), effects=(Erase("member_request"),))
    return Outcome.go(None, reply("delete.kept"))
