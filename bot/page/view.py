"""What a member's page shows, read in one unit of work from the store: the club, the member's
points, tier, next expiry, valid coupons and punch cards, in the member's language."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

import locales
from store.loyalty import coupons, perks, purchases, tiers
from store.members.links import Resolved
from store.models import CouponTemplate, Member, Program


class Directory(Protocol):
    """The app's club directory (bot.keys.CLUBS): the club's ladder, templates and cards."""

    def loyalty(self, session: Session, program: Program) -> Any: ...


@dataclass(frozen=True, slots=True)
class CouponLine:
    code: str  # as the till keys it: ABCD2345
    shown: str  # as a member reads it: ABCD-2345
    benefit: str
    until: dt.date


@dataclass(frozen=True, slots=True)
class PunchLine:
    benefit: str
    count: int
    every: int


@dataclass(frozen=True, slots=True)
class PageView:
    language: str
    club: str
    first_name: str | None
    balance: int
    tier: str | None
    next_tier: str | None
    to_next: int
    qualifying: int
    next_threshold: int | None
    expiry_points: int
    expiry_date: dt.date | None
    coupons: tuple[CouponLine, ...]
    punches: tuple[PunchLine, ...]
    link_until: dt.date


def member_language(member: Member) -> str:
    """The language the member reads: their own, else their number's."""
    if member.language:
        return locales.normalize_language(member.language)
    return locales.language_for_phone(member.phone or "")


def page_view(
    session: Session, link: Resolved, clubs: Directory, now: dt.datetime
) -> PageView | None:
    """The page of the link's member (None if the member or club is gone)."""
    program = session.get(Program, link.program_id)
    member = session.get(Member, link.member_id)
    if program is None or member is None:
        return None
    language = member_language(member)
    zone = ZoneInfo(program.timezone)
    setup = clubs.loyalty(session, program)
    summary = perks.summary(session, program, member.id, member.tier_id, now, setup.ladder)
    standing, expiry = summary.standing, summary.expiry
    valid = [
        CouponLine(
            code=held.code,
            shown=coupons.display(held.code),
            benefit=_benefit(setup.templates.by_id[held.template_id], language, program),
            until=_last_day(held.valid_until, zone),
        )
        for held in coupons.valid_codes(session, member.id, now)
        if held.template_id in setup.templates.by_id
    ]
    punches = []
    for punch in purchases.punches(session, setup.cards, member.id):
        if punch.card.template is not None:
            benefit = _benefit(punch.card.template, language, program)
            punches.append(PunchLine(benefit, punch.count, punch.card.every))
    return PageView(
        language=language,
        club=program.name,
        first_name=member.first_name,
        balance=summary.balance,
        tier=tiers.name(standing.tier, language) if standing.tier else None,
        next_tier=tiers.name(standing.next, language) if standing.next else None,
        to_next=standing.to_next,
        qualifying=standing.qualifying,
        next_threshold=standing.next.threshold if standing.next else None,
        expiry_points=expiry.points if expiry else 0,
        expiry_date=_last_day(expiry.at, zone) if expiry else None,
        coupons=tuple(valid),
        punches=tuple(punches),
        link_until=_last_day(link.expires_at, zone),
    )


def _benefit(template: CouponTemplate, language: str, program: Program) -> str:
    text = coupons.benefit_of(template, language)
    return locales.benefit(
        text, language, amount_minor=template.discount_minor, currency=program.currency
    )


def _last_day(instant: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The last local day something ending at `instant` (exclusive) can be used."""
    return (instant - dt.timedelta(microseconds=1)).astimezone(zone).date()
