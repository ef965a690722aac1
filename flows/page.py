"""MIN SIDE / MIN SIDA / MY PAGE: one SMS with a new link to the member's own page."""

from __future__ import annotations

from flows.turn import ACTIVE, IssuePageLink, Outcome, Turn, reply

LINK = "page.link"


def page(turn: Turn) -> Outcome:
    """A new link each time (the ones sent before keep working until they expire); only an
    active member has a page."""
    if turn.member is None or turn.member.status != ACTIVE:
        return Outcome.say(reply("page.guest"))
    return Outcome.say(reply(LINK), effects=(IssuePageLink(),))
