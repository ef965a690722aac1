"""STOP and its synonyms: marketing ends at once, confirmed once, then silence."""

from __future__ import annotations

from flows.turn import Outcome, Turn, WithdrawConsent, reply


def stop(turn: Turn) -> Outcome:
    """Stop from anyone, member or not, whatever step they are on."""
    reason = turn.intent.name if turn.intent else "stop"
    return Outcome.go(None, reply("stop.confirmed"), effects=(WithdrawConsent(reason),))
