"""Joining: JOIN asks for consent (double opt-in), YES gives it, NO forgets the number; START."""

from __future__ import annotations

from flows import profile
from flows.turn import (
    ACTIVE,
    PENDING,
    STOPPED,
    DiscardPending,
    GrantConsent,
    Outcome,
    RequestJoin,
    State,
    Turn,
    reply,
)

CONSENT = State("join", "consent")
CONSENT_WORDING = "join.confirm"
RETURN_WORDING = "start.confirmed"


def join(turn: Turn) -> Outcome:
    """JOIN [referral code] from anyone: ask to confirm, unless already a member."""
    member = turn.member
    if member is not None and member.status == ACTIVE:
        return Outcome.say(reply("join.already"))
    code = turn.intent.arg.upper() if turn.intent and turn.intent.arg else None
    data = {"referral_code": code} if code else {}
    effects = () if member is not None and member.status == PENDING else (RequestJoin(code),)
    return Outcome.go(
        State(CONSENT.flow, CONSENT.step, data), reply(CONSENT_WORDING), effects=effects
    )


def start(turn: Turn) -> Outcome:
    """START: a member who stopped comes back at once (START is itself the new consent)."""
    member = turn.member
    if member is None:
        return join(turn)
    if member.status == PENDING:
        return consent(turn)
    if member.status == STOPPED and not member.joined:
        # A number that only ever texted STOP has not seen the club's terms: ask as for JOIN.
        return join(turn)
    if member.status == STOPPED:
        return Outcome.go(None, reply(RETURN_WORDING), effects=(GrantConsent(RETURN_WORDING),))
    return Outcome.say(reply("join.already"))


def consent(turn: Turn) -> Outcome:
    """The answer to the opt-in question."""
    intent = turn.intent.name if turn.intent else None
    if intent in ("yes", "start", "join"):
        first = profile.first_question(turn, after=None)
        effects = (GrantConsent(CONSENT_WORDING),)
        if first is None:
            return Outcome.go(None, reply("join.welcome"), reply("profile.done"), effects=effects)
        return Outcome.go(
            profile.state_for(first),
            reply("join.welcome"),
            profile.ask(first, turn),
            effects=effects,
        )
    if intent == "no":
        return Outcome.go(None, reply("join.declined"), effects=(DiscardPending(),))
    return Outcome.say(reply("join.confirm.again"))


def prompt(turn: Turn) -> tuple:
    return (reply("join.confirm.again"),)
