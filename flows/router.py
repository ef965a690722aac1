"""The conversation as data: global keywords first, then the member's flow, then the menu."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from flows import help as help_flow
from flows import join, language, optout, page, privacy, profile, receipts, rewards
from flows.join import CONSENT
from flows.turn import KEEP, STOPPED, Outcome, Reply, Turn

Step = Callable[[Turn], Outcome]


@dataclass(frozen=True)
class FlowStep:
    """A step: how it answers, and how it asks again after an interruption (None: it can't be
    interrupted; any text is its answer)."""

    handle: Step
    prompt: Callable[[Turn], tuple[Reply, ...]] | None


# Matched first, whatever step the member is on (RapidPro #519: STOP must never be swallowed).
GLOBAL: dict[str, Step] = {
    "stop": optout.stop,
    "help": help_flow.help_,
    "start": join.start,
}

# Keywords when the member is not in a flow, or interrupting one when texted to the letter.
KEYWORDS: dict[str, Step] = {
    "join": join.join,
    "lang": language.change,
    "mydata": privacy.mydata,
    "delete": privacy.delete,
    "points": rewards.points,
    "coupons": rewards.coupons,
    "claim": rewards.claim,
    "invite": rewards.invite,
    "page": page.page,
    "receipts_on": receipts.on,
    "receipts_off": receipts.off,
    "profile": profile.edit,
}

# The parts of a LoyaltyView a keyword can ask for.
POINTS, COUPONS, REWARDS = "points", "coupons", "rewards"
# The keywords whose answer needs the member's points and coupons (loaded only for these), and
# the parts each answers from: only those are read (see flows.turn.LoyaltyView).
LOYALTY: dict[str, frozenset[str]] = {
    "points": frozenset({POINTS}),
    "coupons": frozenset({COUPONS, REWARDS}),
    "claim": frozenset({POINTS, REWARDS}),
    "invite": frozenset(),
}

# A member who texted STOP hears nothing more, except these (a new consent, or a privacy
# request, which GDPR says must be answered).
WHILE_STOPPED: dict[str, Step] = {
    "start": join.start,
    "join": join.join,
    "mydata": privacy.mydata,
    "delete": privacy.delete,
}

FLOWS: dict[str, dict[str, FlowStep]] = {
    "join": {"consent": FlowStep(join.consent, join.prompt)},
    "privacy": {"confirm_delete": FlowStep(privacy.confirm_delete, None)},
}


# What flows.understand is told about the question open, by profile question kind.
_ANSWER_STATES = {
    "first_name": "awaiting_name",
    "birthday": "awaiting_birthday",
    "text": "awaiting_text",
    "choice": "profile_answer",
    "multichoice": "profile_answer",
}


def reading_state(turn: Turn) -> str:
    """The state a text is read in (flows.understand.STATES): which question is open."""
    member = turn.member
    if member is None or member.flow is None:
        return "none"
    if (member.flow, member.step) == (CONSENT.flow, CONSENT.step):
        return "consent"
    if (member.flow, member.step) == (privacy.CONFIRM_DELETE.flow, privacy.CONFIRM_DELETE.step):
        return "confirm_delete"
    question = profile.current_question(turn)
    if question is not None:
        return _ANSWER_STATES.get(question.kind, "profile_answer")
    return "none"


def step_of(turn: Turn) -> FlowStep | None:
    member = turn.member
    if member is None or member.flow is None or member.step is None:
        return None
    if member.flow == profile.FLOW:
        return FlowStep(profile.answer, profile.prompt)
    if member.flow == profile.EDIT_FLOW:
        return FlowStep(profile.answer, profile.edit_prompt)
    if member.flow == profile.NEW_FLOW:
        return FlowStep(profile.answer, profile.prompt)  # routed by _added_question
    return FLOWS.get(member.flow, {}).get(member.step)


def route(turn: Turn) -> Outcome:
    """What the text means for this member now."""
    intent = turn.intent.name if turn.intent else None
    member = turn.member
    step = step_of(turn)
    if member is not None and member.status == STOPPED:
        if intent in ("start", "join"):
            return WHILE_STOPPED[intent](turn)
        if step is not None and step.prompt is None:
            return step.handle(turn)
        handler = WHILE_STOPPED.get(intent or "")
        return handler(turn) if handler else Outcome.silence()
    if intent in GLOBAL:
        return _then_resume(GLOBAL[intent](turn), step, turn)
    if member is not None and member.flow == profile.NEW_FLOW:
        return _added_question(turn, intent)
    if step is not None:
        if intent not in KEYWORDS or step.prompt is None:
            return step.handle(turn)
        if turn.intent is not None and turn.intent.exact:
            return _then_resume(KEYWORDS[intent](turn), step, turn)
        # A sentence that asks for something ("hvor mange poeng har jeg?") is answered when it
        # is no answer to the question open ("Ski" answers which sport, it asks for nothing).
        answered = step.handle(turn)
        if answered.state is KEEP and not answered.effects:
            return _then_resume(KEYWORDS[intent](turn), step, turn)
        return answered
    handler = KEYWORDS.get(intent or "", help_flow.menu)
    return handler(turn)


def _added_question(turn: Turn, intent: str | None) -> Outcome:
    """The text after a question the club added was put (flows.profile.put): its answer, or,
    when it is none (a keyword to the letter, a question of the member's own), read as any
    text between flows: the added question was asked once and is not asked again."""
    keyword = intent in KEYWORDS and turn.intent is not None and turn.intent.exact
    answered = None if keyword else profile.answer_added(turn)
    if answered is not None:
        return answered
    assert turn.member is not None
    between = replace(turn, member=replace(turn.member, flow=None, step=None, data={}))
    outcome = KEYWORDS.get(intent or "", help_flow.menu)(between)
    return outcome if outcome.state is not KEEP else replace(outcome, state=None)


def _then_resume(outcome: Outcome, step: FlowStep | None, turn: Turn) -> Outcome:
    """After a keyword that left the member where they were, ask the pending question again,
    unless the answer and the question together would not fit one SMS: the question is then
    left out (optional), and the member's next text still answers it."""
    if outcome.state is not KEEP or step is None or step.prompt is None:
        return outcome
    resumed = _in_language(turn, outcome.language)
    again = tuple(replace(question, optional=True) for question in step.prompt(resumed))
    return replace(outcome, replies=outcome.replies + again)


def _in_language(turn: Turn, language: str | None) -> Turn:
    if language is None or language == turn.language:
        return turn
    return replace(turn, language=language)
