"""KVITTERING PÅ / KVITTO PÅ / RECEIPTS ON (and AV / OFF): a receipt SMS after each purchase."""

from __future__ import annotations

from flows.turn import ACTIVE, Outcome, SetReceipts, Turn, reply

ON, OFF, GUEST = "receipts.on", "receipts.off", "receipts.guest"


def on(turn: Turn) -> Outcome:
    return _set(turn, on=True)


def off(turn: Turn) -> Outcome:
    return _set(turn, on=False)


def _set(turn: Turn, *, on: bool) -> Outcome:
    """Only an active member has purchases to be told of. A stopped one never reaches this
    (flows.router answers nothing after STOP but START, JOIN, MYDATA and DELETE)."""
    if turn.member is None or turn.member.status != ACTIVE:
        return Outcome.say(reply(GUEST))
    return Outcome.say(reply(ON if on else OFF), effects=(SetReceipts(on),))
