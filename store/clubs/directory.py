"""The clubs every inbound text and API call reads, kept in memory for a few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from store.cache import TtlCache
from store.clubs import programs
from store.loyalty import coupons, purchases, tiers
from store.models import CouponTemplate, ProfileQuestion, Program, Tier


@dataclass(frozen=True, slots=True)
class LoyaltySetup:
    """The club's ladder, its coupon templates, whether a referral earns anything and its
    active punch cards."""

    ladder: list[Tier]
    templates: coupons.ClubTemplates
    rewards_referral: bool
    cards: tuple[purchases.Card, ...] = ()

    @property
    def rewards(self) -> list[CouponTemplate]:
        return self.templates.rewards


def loyalty_setup(session: Session, program: Program) -> LoyaltySetup:
    """Read fresh and detached from the session (safe to keep between sessions)."""
    ladder = tiers.ladder(session, program.id)
    for tier in ladder:
        session.expunge(tier)
    templates = coupons.club_templates(session, program.id)
    return LoyaltySetup(
        ladder=ladder,
        templates=templates,
        rewards_referral=program.referral_points > 0 or coupons.REFERRAL in templates.first_of_kind,
        cards=purchases.active_cards(session, program.id),
    )


class ClubDirectory:
    """Clubs by number, and their profile questions, kept in memory for a few seconds.

    Every inbound text starts by finding its club; settings change rarely, so the lookup is
    served from memory and a change made elsewhere (the CLI, the admin) is seen within
    `ttl` seconds. A number that reaches no club is never remembered, so a new club answers at
    once. One directory belongs to one Database and is used only from its unit-of-work thread.
    The Program rows it hands out are detached copies: read them, never add them to a session.
    """

    def __init__(self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._programs: TtlCache[str, Program] = TtlCache(ttl, clock)
        self._by_id: TtlCache[int, Program] = TtlCache(ttl, clock)
        self._questions: TtlCache[int, Sequence[ProfileQuestion]] = TtlCache(ttl, clock)
        self._loyalty: TtlCache[int, LoyaltySetup] = TtlCache(ttl, clock)
        self._rules: TtlCache[int, purchases.ClubRules] = TtlCache(ttl, clock)
        self._caches = (self._programs, self._by_id, self._questions, self._loyalty, self._rules)

    @property
    def ttl(self) -> float:
        """How many seconds a change made elsewhere may go unseen (settable: 0 reads afresh)."""
        return self._programs.max_age

    @ttl.setter
    def ttl(self, seconds: float) -> None:
        for cache in self._caches:
            cache.max_age = seconds

    def by_number(self, session: Session, number: str) -> Program | None:
        program = self._programs.get(number)
        if program is None:
            program = programs.by_number(session, number)
            if program is not None:
                session.expunge(program)
                self._programs.put(number, program)
        return program

    def by_id(self, session: Session, program_id: int) -> Program | None:
        """The club with this id (as an API key names it)."""
        program = self._by_id.get(program_id)
        if program is None:
            program = programs.get(session, program_id)
            if program is not None:
                session.expunge(program)
                self._by_id.put(program_id, program)
        return program

    def questions(self, session: Session, program_id: int) -> Sequence[ProfileQuestion]:
        found = self._questions.get(program_id)
        if found is None:
            found = programs.questions(session, program_id)
            for question in found:
                session.expunge(question)
            self._questions.put(program_id, found)
        return found

    def loyalty(self, session: Session, program: Program) -> LoyaltySetup:
        setup = self._loyalty.get(program.id)
        if setup is None:
            setup = loyalty_setup(session, program)
            self._loyalty.put(program.id, setup)
        return setup

    def rules(self, session: Session, program_id: int) -> purchases.ClubRules:
        """What recording a purchase reads of the club (earning rules, punch cards, ladder)."""
        rules = self._rules.get(program_id)
        if rules is None:
            rules = purchases.club_rules(session, program_id)
            self._rules.put(program_id, rules)
        return rules
