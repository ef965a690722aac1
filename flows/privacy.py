"""MYDATA (a summary of what the club holds) and DELETE (erasure, after a confirmation)."""

from __future__ import annotations

from flows.turn import STOPPED, Erase, Outcome, State, Turn, WithdrawConsent, reply

CONFIRM_DELETE = State("privacy", "confirm_delete")
# Replies whose parameters come from the store when the turn is recorded.
SUMMARY = "mydata.summary"


def mydata(turn: Turn) -> Outcome:
    if turn.member is None:
        return Outcome.say(reply("mydata.guest"))
    return Outcome.say(reply(SUMMARY))


def delete(turn: Turn) -> Outcome:
    """Marketing ends at once (an objection to it is absolute, GDPR art. 21), the same
    withdrawal STOP makes; the erasure itself waits for the member's YES."""
    if turn.member is None:
        return Outcome.say(reply("mydata.guest"))
    if turn.member.status == STOPPED:
        return Outcome.go(CONFIRM_DELETE, reply("delete.ask"))
    return Outcome.go(CONFIRM_DELETE, reply("delete.ask"), effects=(WithdrawConsent("delete"),))


def confirm_delete(turn: Turn) -> Outcome:
    if turn.intent is not None and turn.intent.name in ("yes", "delete"):
        return Outcome.go(None, reply("delete.done"), effects=(Erase("member_request"),))
    return Outcome.go(None, reply("delete.kept"))
