"""What a flow step gets (a Turn) and what it gives back (an Outcome): plain data, no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flows.keywords import Intent
from store.states import MemberStatus

# The member statuses a step asks about: the store's, not a copy.
PENDING = MemberStatus.PENDING
ACTIVE = MemberStatus.ACTIVE
STOPPED = MemberStatus.STOPPED


@dataclass(frozen=True, slots=True)
class Club:
    """The club settings a step may need."""

    id: int
    name: str
    contact: str
    privacy_url: str
    per_month: int
    min_age: int
    timezone: str


@dataclass(frozen=True, slots=True)
class Question:
    """A profile question: kind is first_name, birthday, choice, multichoice or text."""

    id: int
    key: str
    kind: str
    prompt: Mapping[str, str]
    choices: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class MemberView:
    """The member's state as the step sees it."""

    status: str
    language: str | None
    first_name: str | None
    flow: str | None
    step: str | None
    data: Mapping[str, Any]
    joined: bool  # has ever been a member (a number that only texted STOP has not)
    has_birthday: bool = False
    birthday: dt.date | None = None  # read for PROFIL, which shows it
    # Changed within a year (store.members.profile.may_change_birthday): it can't move again.
    birthday_locked: bool = False


@dataclass(frozen=True, slots=True)
class CouponView:
    code: str  # as shown: ABCD-2345
    benefit: str  # in the member's language
    until: dt.date  # the last day it can be used, in the club's time zone


@dataclass(frozen=True, slots=True)
class RewardView:
    """A reward to claim with points; `n` is the number the member texts (CLAIM n)."""

    n: int
    template_id: int
    benefit: str
    cost: int


@dataclass(frozen=True, slots=True)
class PunchView:
    """A punch card as POINTS shows it: `count` of `every` towards `benefit`."""

    count: int
    every: int
    benefit: str  # the card's coupon, as the member reads it


@dataclass(frozen=True, slots=True)
class PointsView:
    """A member's balance, tier, next expiry and punch card."""

    balance: int
    tier: str | None  # None: the club has no ladder
    next_tier: str | None
    to_next: int
    expiry_points: int
    expiry_date: dt.date | None
    punch: PunchView | None = None  # the card nearest to full, once it has a punch


@dataclass(frozen=True, slots=True)
class LoyaltyView:
    """A member's points, coupons and rewards, loaded for the texts that ask about them.

    Only the parts the keyword answers from are loaded (flows.router.LOYALTY says which); the
    others are None. POINTS is a third of all texts, and its coupons and rewards (a read, and
    money formatted per reward) cost more than its own answer."""

    points: PointsView | None
    coupons: tuple[CouponView, ...] | None
    rewards: tuple[RewardView, ...] | None
    referral_reward: str | None  # when a referral is rewarded (signup, purchase); None: never


@dataclass(frozen=True, slots=True)
class Turn:
    """One inbound text and everything a step needs to decide what it means."""

    text: str
    intent: Intent | None
    member: MemberView | None
    club: Club
    language: str
    today: dt.date
    questions: tuple[Question, ...] = ()
    loyalty: LoyaltyView | None = None
    why: str = ""  # why the text was read as `intent` (flows.understand), for the debug log
    written_in: str | None = None  # the language the text is clearly written in, if any
    # The member's answers by question id, read for PROFIL (shown as the current answer).
    answers: Mapping[int, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One sentence of the answer: a catalog message id and its parameters."""

    id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # Said only if the whole answer still fits one SMS (a question asked again after HELP).
    optional: bool = False


def reply(message_id: str, **params: Any) -> Reply:
    return Reply(message_id, params)


@dataclass(frozen=True, slots=True)
class State:
    """Where the member is in a conversation: a flow, a step and the step's data."""

    flow: str
    step: str
    data: Mapping[str, Any] = field(default_factory=dict)


# --- Effects: what a step wants recorded; flows.conversation applies them in order. ---


@dataclass(frozen=True, slots=True)
class RequestJoin:
    """Create the member as pending (asked to confirm), or make a stopped member pending."""

    referral_code: str | None = None


@dataclass(frozen=True, slots=True)
class GrantConsent:
    """Marketing consent given, in answer to the wording of `wording_id`."""

    wording_id: str


@dataclass(frozen=True, slots=True)
class WithdrawConsent:
    """STOP: marketing ends at once and nothing more is sent (a record is made if need be)."""

    reason: str


@dataclass(frozen=True, slots=True)
class SetFirstName:
    name: str | None


@dataclass(frozen=True, slots=True)
class SetBirthday:
    birthday: dt.date | None


@dataclass(frozen=True, slots=True)
class SaveAnswer:
    question_id: int
    value: tuple[str, ...]  # the choice keys picked, or the text written
    free_text: bool = False


@dataclass(frozen=True, slots=True)
class SkipQuestion:
    """The member skipped a question they had not answered: never put to them again."""

    question_id: int


@dataclass(frozen=True, slots=True)
class SetLanguage:
    language: str


@dataclass(frozen=True, slots=True)
class Erase:
    """Remove personal data, keeping a salted hash of the number so it stays suppressed."""

    reason: str


@dataclass(frozen=True, slots=True)
class DiscardPending:
    """A number that asked to join and then said no: forgotten, nothing of it kept, unless it
    has a past here (a former member, a STOP), which stays, stopped (members.discard)."""


@dataclass(frozen=True, slots=True)
class ClaimReward:
    """Spend the reward's points and issue its coupon; the reply gets code, date and count."""

    template_id: int
    cost: int


@dataclass(frozen=True, slots=True)
class ShowReferralCode:
    """The member's referral code (made the first time it is asked for) as the reply's `code`."""


@dataclass(frozen=True, slots=True)
class IssuePageLink:
    """A new link to the member's own page (store.members.links) as the reply's `url`."""


@dataclass(frozen=True, slots=True)
class SetReceipts:
    """Receipts by SMS after each purchase on or off (store.loyalty.receipts.set_receipts)."""

    on: bool


Effect = (
    RequestJoin
    | GrantConsent
    | WithdrawConsent
    | SetFirstName
    | SetBirthday
    | SaveAnswer
    | SkipQuestion
    | SetLanguage
    | Erase
    | DiscardPending
    | ClaimReward
    | ShowReferralCode
    | IssuePageLink
    | SetReceipts
)


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()  # the member stays where they are in their flow


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step decided: replies, the next state (KEEP, None to clear, or a State), effects."""

    replies: tuple[Reply, ...] = ()
    state: State | Any | None = KEEP
    effects: tuple[Effect, ...] = ()
    language: str | None = None  # the language to answer in, when the step changed it
    # Klubb could not tell what the text asked (the inbound row is marked for the admin).
    not_understood: bool = False

    @classmethod
    def say(cls, *replies: Reply, effects: tuple[Effect, ...] = ()) -> Outcome:
        return cls(tuple(replies), KEEP, effects)

    @classmethod
    def go(cls, state: State | None, *replies: Reply, effects: tuple[Effect, ...] = ()) -> Outcome:
        return cls(tuple(replies), state, effects)

    @classmethod
    def silence(cls, effects: tuple[Effect, ...] = ()) -> Outcome:
        return cls((), KEEP, effects)
