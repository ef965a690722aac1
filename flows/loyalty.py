"""POINTS, COUPONS, CLAIM n and INVITE: a member's points, coupons and rewards by SMS."""

from __future__ import annotations

from typing import TypeVar

from flows.turn import ACTIVE, ClaimReward, LoyaltyView, Outcome, Reply, ShowReferralCode, Turn
from flows.turn import reply as say

T = TypeVar("T")

# A reply lists at most this many coupons and rewards (the rest are in the member's next ask,
# once these are used): a long list would cost the member's patience and the club's segments.
MAX_LISTED = 3


def points(turn: Turn) -> Outcome:
    loaded = _view(turn)
    if loaded is None:
        return Outcome.say(say("loyalty.members_only"))
    view = _part(loaded.points)
    if view.tier:
        parts = [say("points.balance.tier", count=view.balance, tier=view.tier)]
    else:
        parts = [say("points.balance", count=view.balance)]
    if view.next_tier:
        parts.append(say("points.next_tier", count=view.to_next, tier=view.next_tier))
    if view.expiry_date is not None:
        parts.append(say("points.expiry", count=view.expiry_points, date=view.expiry_date))
    elif view.balance == 0:
        parts.append(say("points.earn"))
    if view.punch is not None:
        punch = view.punch
        parts.append(say("points.punch", n=punch.count, count=punch.every, benefit=punch.benefit))
    return Outcome.say(*parts)


def coupons(turn: Turn) -> Outcome:
    view = _view(turn)
    if view is None:
        return Outcome.say(say("loyalty.members_only"))
    parts: list[Reply] = []
    held, offered = _part(view.coupons), _part(view.rewards)
    if held:
        items = tuple(
            say("coupons.item", code=c.code, benefit=c.benefit, date=c.until)
            for c in held[:MAX_LISTED]
        )
        parts.append(say("coupons.list", coupons=items))
    else:
        parts.append(say("coupons.none"))
    if offered:
        rewards = tuple(
            say("coupons.reward", n=r.n, benefit=r.benefit, count=r.cost)
            for r in offered[:MAX_LISTED]
        )
        parts.append(say("coupons.rewards", rewards=rewards))
    return Outcome.say(*parts)


def claim(turn: Turn) -> Outcome:
    view = _view(turn)
    if view is None:
        return Outcome.say(say("loyalty.members_only"))
    offered, balance = _part(view.rewards), _part(view.points).balance
    if not offered:
        return Outcome.say(say("claim.none"))
    arg = (turn.intent.arg if turn.intent else None) or ""
    number = arg.strip().lstrip("#").rstrip(".")
    if not number.isdigit():
        return Outcome.say(say("claim.how"))
    n = int(number)
    reward = next((r for r in offered if r.n == n), None)
    if reward is None:
        return Outcome.say(say("claim.unknown", n=n))
    if reward.cost > balance:
        return Outcome.say(
            say("claim.short", benefit=reward.benefit, cost=reward.cost, balance=balance)
        )
    return Outcome.say(
        say("claim.done", benefit=reward.benefit),
        effects=(ClaimReward(reward.template_id, reward.cost),),
    )


def invite(turn: Turn) -> Outcome:
    view = _view(turn)
    if view is None:
        return Outcome.say(say("loyalty.members_only"))
    parts = [say("invite.code")]
    if view.referral_reward:
        parts.append(say(f"invite.reward.{view.referral_reward}"))
    return Outcome.say(*parts, effects=(ShowReferralCode(),))


def _view(turn: Turn) -> LoyaltyView | None:
    member = turn.member
    if member is None or member.status != ACTIVE or turn.loyalty is None:
        return None
    return turn.loyalty


def _part(part: T | None) -> T:
    """A part of the view this keyword answers from (flows.router.LOYALTY loads it)."""
    if part is None:
        raise LookupError("flows.router.LOYALTY does not load a part this keyword reads")
    return part
