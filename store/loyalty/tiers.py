"""Tiers: the club's ladder, reached by points earned within the qualification period and kept
until the next qualification check fails."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from store.errors import InvalidSetting
from store.loyalty import ledger
from store.models import Member, Program, Tier

# Bronze 5% / Silver 10% / Gold 15% (PRODUCT.md): a new club starts with this ladder.
DEFAULT_LADDER: tuple[tuple[Mapping[str, str], int, int], ...] = (
    ({"en": "Bronze", "nb": "Bronse", "sv": "Brons"}, 0, 5),
    ({"en": "Silver", "nb": "Sølv", "sv": "Silver"}, 2000, 10),
    ({"en": "Gold", "nb": "Gull", "sv": "Guld"}, 5000, 15),
)

_MEMBERS = Member.__table__


def set_ladder(
    session: Session,
    program: Program,
    steps: Sequence[tuple[Mapping[str, str], int, int]],
    benefits: Sequence[Mapping[str, str] | None] | None = None,
) -> list[Tier]:
    """Replace the club's ladder: (name per language, threshold, discount %) from the bottom."""
    _check_steps(steps)
    session.execute(
        update(Member).where(Member.program_id == program.id).values(tier_id=None, tier_until=None)
    )
    for old in ladder(session, program.id):
        session.delete(old)
    session.flush()
    tiers = [
        Tier(
            program_id=program.id,
            position=i,
            name=dict(name),
            threshold=threshold,
            discount_percent=discount,
            benefit=dict(benefits[i]) if benefits and benefits[i] else None,
        )
        for i, (name, threshold, discount) in enumerate(steps)
    ]
    session.add_all(tiers)
    session.flush()
    return tiers


def edit_ladder(
    session: Session, program: Program, steps: Sequence[tuple[Mapping[str, str], int, int]]
) -> list[Tier]:
    """Change the club's ladder as an owner edits it. With as many tiers as before, each is
    changed in place (names, thresholds, discounts) and members keep the tier they hold until
    its review; with more or fewer, the ladder is replaced (set_ladder: members climb again
    from the points they earn)."""
    _check_steps(steps)
    current = ladder(session, program.id)
    if len(current) != len(steps):
        return set_ladder(session, program, steps)
    for tier, (names, threshold, discount) in zip(current, steps, strict=True):
        tier.name, tier.threshold, tier.discount_percent = dict(names), threshold, discount
    session.flush()
    return current


def _check_steps(steps: Sequence[tuple[Mapping[str, str], int, int]]) -> None:
    thresholds = [threshold for _, threshold, _ in steps]
    if not steps or thresholds[0] != 0:
        raise InvalidSetting("tiers", "the first tier starts at 0 points")
    if any(b <= a for a, b in itertools.pairwise(thresholds)):
        raise InvalidSetting("tiers", "each tier needs more points than the one below")
    if any(not 0 <= discount <= 100 for _, _, discount in steps):
        raise InvalidSetting("tiers", "a discount is between 0 and 100 %")
    if any(not any(str(n).strip() for n in names.values()) for names, _, _ in steps):
        raise InvalidSetting("tiers", "each tier needs a name")


def ladder(session: Session, program_id: int) -> list[Tier]:
    return list(
        session.scalars(select(Tier).where(Tier.program_id == program_id).order_by(Tier.position))
    )


class Named(Protocol):
    """A tier as something that has a name per language (a Tier, or baskets.Step)."""

    @property
    def name(self) -> Mapping[str, Any]: ...


def name(tier: Tier | Named, language: str) -> str:
    texts: Mapping[str, Any] = tier.name
    return str(texts.get(language) or texts.get("en") or next(iter(texts.values()), ""))


def qualification_start(program: Program, now: dt.datetime) -> dt.datetime:
    zone = ZoneInfo(program.timezone)
    today = now.astimezone(zone).date()
    start = months_back(today, program.tier_period_months)
    return dt.datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(dt.UTC)


def months_back(day: dt.date, months: int) -> dt.date:
    """The same day `months` earlier (later, if negative), or that month's last day."""
    index = day.year * 12 + day.month - 1 - months
    year, month = index // 12, index % 12 + 1
    last = (ledger.add_months(dt.date(year, month, 1), 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


@dataclass(frozen=True, slots=True)
class Standing:
    tier: Tier | None  # None: the club has no ladder
    next: Tier | None
    to_next: int  # points still to earn for the next tier (0 at the top)
    qualifying: int


def standing(
    session: Session,
    program: Program,
    member_id: int,
    tier_id: int | None,
    now: dt.datetime,
    steps: list[Tier] | None = None,
) -> Standing:
    """The member's tier, the next one and the points still needed for it."""
    steps = steps if steps is not None else ladder(session, program.id)
    if not steps:
        return Standing(None, None, 0, 0)
    qualifying = ledger.earned_since(session, member_id, qualification_start(program, now))
    return standing_of(steps, tier_id, qualifying)


def standing_of(steps: list[Tier], tier_id: int | None, qualifying: int) -> Standing:
    """The standing from the points earned in the qualification period, read by the caller."""
    if not steps:
        return Standing(None, None, 0, 0)
    held = next((t for t in steps if t.id == tier_id), steps[0])
    earned = _reached(steps, qualifying)
    current = earned if earned.position > held.position else held
    above = [t for t in steps if t.position > current.position]
    nxt = above[0] if above else None
    return Standing(current, nxt, max(0, nxt.threshold - qualifying) if nxt else 0, qualifying)


def _reached(steps: list[Tier], qualifying: int) -> Tier:
    return [t for t in steps if t.threshold <= qualifying][-1]


def promote(
    session: Session,
    program: Program,
    member_id: int,
    tier_id: int | None,
    now: dt.datetime,
    steps: list[Tier] | None = None,
) -> Tier | None:
    """After earning: move the member up if they reached a higher tier (never down: that is
    the review's job). Returns the new tier, or None if it did not change."""
    steps = steps if steps is not None else ladder(session, program.id)
    if not steps or (tier_id is not None and tier_id == steps[-1].id):
        return None  # no ladder, or already at the top: nothing to read
    now_standing = standing(session, program, member_id, tier_id, now, steps)
    tier = now_standing.tier
    if tier is None or tier.id == tier_id or tier.position == 0:
        return None
    _hold(session, program, member_id, tier, now)
    return tier


def _hold(session: Session, program: Program, member_id: int, tier: Tier, now: dt.datetime) -> None:
    today = now.astimezone(ZoneInfo(program.timezone)).date()
    until = months_back(today, -program.tier_period_months) if tier.position > 0 else None
    tier_id = tier.id if tier.position > 0 else None
    session.connection().execute(
        _HOLD, {"member_id": member_id, "tier_id": tier_id, "tier_until": until}
    )


# Built once: a statement made anew each sale that moves a tier costs the event loop its cache
# key (tests/bench/purchases.py on PostgreSQL: 6 % of the loop's time in `_hold`).
_HOLD = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id == bindparam("member_id"))
    .values(tier_id=bindparam("tier_id"), tier_until=bindparam("tier_until"))
)


def review_due(session: Session, now: dt.datetime, limit: int = 1000) -> int:
    """The daily check: members whose tier has run its period keep it if they qualify again,
    else drop to the tier their points earn. Returns how many were checked.

    `tier_until` is a date in the club's time zone: it has passed when the club's today has
    reached it (no time zone is more than a day ahead of UTC, so that is at most UTC's today
    and tomorrow; those not yet due where the club is wait for a later run)."""
    latest = now.date() + dt.timedelta(days=1)
    due = session.execute(
        select(Member.id, Member.program_id, Member.tier_until)
        .where(Member.tier_until.is_not(None), Member.tier_until <= latest)
        .order_by(Member.tier_until, Member.id)
        .limit(limit)
    ).all()
    programs: dict[int, Program] = {}
    checked = 0
    for member_id, program_id, until in due:
        program = programs.get(program_id) or session.get(Program, program_id)
        assert program is not None
        programs[program_id] = program
        if until > now.astimezone(ZoneInfo(program.timezone)).date():
            continue
        steps = ladder(session, program_id)
        qualifying = ledger.earned_since(session, member_id, qualification_start(program, now))
        _hold(session, program, member_id, _reached(steps, qualifying), now)
        checked += 1
    return checked
