"""POINTS, COUPONS, CLAIM n and INVITE: a member's points, coupons and rewards by SMS."""

from __future__ import annotations

from typing import TypeVar

import locales
from flows.turn import ACTIVE, ClaimReward, LoyaltyView, Outcome, Reply, ShowReferralCode, Turn
from flows.turn import reply as say
from locales.sms import segments

T = TypeVar("T")

# The kinds of item COUPONS lists, coupons held before rewards to claim.
COUPON, REWARD = "coupon", "reward"
# More pages than anyone texts for: a bigger number is read as the first page.
MAX_PAGES = 100


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
    """The member's coupons, then the rewards to claim, as many as one SMS holds; when more
    are left, the reply ends saying how to see them (COUPONS 2, the next page)."""
    view = _view(turn)
    if view is None:
        return Outcome.say(say("loyalty.members_only"))
    held, offered = _part(view.coupons), _part(view.rewards)
    items = [
        (COUPON, _render(turn, "coupons.item", code=c.code, benefit=c.benefit, date=c.until))
        for c in held
    ] + [
        (REWARD, _render(turn, "coupons.reward", n=r.n, benefit=r.benefit, count=r.cost))
        for r in offered
    ]
    wanted = _page_asked(turn)
    first, page = 0, 1
    while True:
        shown, replies = _page(turn, items, first, page, empty=not held)
        if page >= wanted or first + shown >= len(items):
            return Outcome.say(*replies)
        first, page = first + shown, page + 1


def _page(
    turn: Turn, items: list[tuple[str, str]], first: int, page: int, *, empty: bool
) -> tuple[int, list[Reply]]:
    """How many items from `first` fit one SMS (one at least), and the replies that list them."""

    def listing(count: int) -> list[Reply]:
        replies = _listing(items[first : first + count], page, more=first + count < len(items))
        return [say("coupons.none"), *replies] if page == 1 and empty else replies

    left = len(items) - first
    if left == 0:  # nothing to list: no coupons and no rewards
        return 0, [say("coupons.none")]
    if _fits(turn, everything := listing(left)):  # the common case: all of it, measured once
        return left, everything
    count = 1
    while count + 1 < left and _fits(turn, listing(count + 1)):
        count += 1
    return count, listing(count)


def _listing(items: list[tuple[str, str]], page: int, *, more: bool) -> list[Reply]:
    held = [text for kind, text in items if kind == COUPON]
    offered = [text for kind, text in items if kind == REWARD]
    replies = []
    if held:
        replies.append(say("coupons.list", coupons="; ".join(held)))
    if offered:
        replies.append(say("coupons.rewards", rewards="; ".join(offered)))
    if more:
        replies.append(say("coupons.more", page=page + 1))
    return replies


def _page_asked(turn: Turn) -> int:
    """The page a member asked for (COUPONS 2), 1 when none; one past the last gives the last."""
    arg = ((turn.intent.arg if turn.intent else None) or "").strip().lstrip("#")
    return int(arg) if arg.isdigit() and 0 < int(arg) < MAX_PAGES else 1


def _fits(turn: Turn, replies: list[Reply]) -> bool:
    text = " ".join(_render(turn, r.id, **r.params) for r in replies)
    return segments(text).segments == 1


def _render(turn: Turn, message_id: str, **params: object) -> str:
    return locales.render(message_id, turn.language, **params)


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
