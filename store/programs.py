"""Clubs: creating one, finding one by the number a member texted, its profile questions."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import coupons, purchases, tiers
from store.errors import InvalidSetting, NumberTaken
from store.models import CouponTemplate, ProfileQuestion, Program, ProgramNumber, Tier

# Sensible defaults per country; a club can override them.
COUNTRY_DEFAULTS = {
    "NO": ("Europe/Oslo", "NOK"),
    "SE": ("Europe/Stockholm", "SEK"),
    "DK": ("Europe/Copenhagen", "DKK"),
    "FI": ("Europe/Helsinki", "EUR"),
    "IS": ("Atlantic/Reykjavik", "ISK"),
}
QUESTION_KINDS = frozenset({"first_name", "birthday", "choice", "multichoice", "text"})


def by_number(session: Session, number: str) -> Program | None:
    """The club a number (long number or short code) reaches."""
    return session.scalar(select(Program).join(ProgramNumber).where(ProgramNumber.number == number))


def get(session: Session, program_id: int) -> Program | None:
    return session.get(Program, program_id)


def all_programs(session: Session) -> Sequence[Program]:
    return session.scalars(select(Program).order_by(Program.id)).all()


def numbers(session: Session, program_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ProgramNumber.number)
            .where(ProgramNumber.program_id == program_id)
            .order_by(ProgramNumber.id)
        )
    )


def create(
    session: Session,
    *,
    name: str,
    numbers: Sequence[str],
    country: str,
    contact: str,
    privacy_url: str,
    now: dt.datetime,
    marketing_per_month: int = 2,
    min_age: int = 13,
    timezone: str | None = None,
    currency: str | None = None,
) -> Program:
    """A new club reached through `numbers`; raises NumberTaken or InvalidSetting."""
    country = country.upper()
    default_zone, default_currency = COUNTRY_DEFAULTS.get(country, ("UTC", "EUR"))
    if not 1 <= marketing_per_month <= 3:
        raise InvalidSetting("marketing_per_month", "must be 1, 2 or 3")
    if not 13 <= min_age <= 18:
        raise InvalidSetting("min_age", "must be between 13 and 18")
    if not name.strip():
        raise InvalidSetting("name", "must not be empty")
    if not numbers:
        raise InvalidSetting("numbers", "a club needs at least one number")
    for number in numbers:
        if by_number(session, number) is not None:
            raise NumberTaken(number)
    program = Program(
        name=name.strip(),
        country=country,
        timezone=timezone or default_zone,
        currency=currency or default_currency,
        contact=contact,
        privacy_url=privacy_url,
        marketing_per_month=marketing_per_month,
        min_age=min_age,
        hash_salt=secrets.token_hex(16),
        created_at=now,
    )
    session.add(program)
    session.flush()
    session.add_all(ProgramNumber(program_id=program.id, number=n) for n in numbers)
    session.flush()
    tiers.set_ladder(session, program, tiers.DEFAULT_LADDER)
    return program


def add_question(
    session: Session,
    program: Program,
    *,
    key: str,
    kind: str,
    prompt: dict[str, str] | None = None,
    choices: list[dict[str, Any]] | None = None,
) -> ProfileQuestion:
    """Append a profile question to the club's list."""
    if kind not in QUESTION_KINDS:
        raise InvalidSetting("kind", f"must be one of {', '.join(sorted(QUESTION_KINDS))}")
    if kind in ("choice", "multichoice") and not choices:
        raise InvalidSetting("choices", "a choice question needs choices")
    if kind in ("choice", "multichoice", "text") and not prompt:
        raise InvalidSetting("prompt", "the question needs its wording")
    last = session.scalar(
        select(ProfileQuestion.position)
        .where(ProfileQuestion.program_id == program.id)
        .order_by(ProfileQuestion.position.desc())
        .limit(1)
    )
    question = ProfileQuestion(
        program_id=program.id,
        key=key,
        kind=kind,
        position=(last or 0) + 1,
        prompt=prompt,
        choices=choices,
        active=True,
    )
    session.add(question)
    session.flush()
    return question


def questions(session: Session, program_id: int) -> Sequence[ProfileQuestion]:
    """The club's active profile questions in the order they are asked."""
    return session.scalars(
        select(ProfileQuestion)
        .where(ProfileQuestion.program_id == program_id, ProfileQuestion.active.is_(True))
        .order_by(ProfileQuestion.position, ProfileQuestion.id)
    ).all()


@dataclass(frozen=True, slots=True)
class LoyaltySetup:
    """The club's ladder, its coupon templates and whether a referral earns anything."""

    ladder: list[Tier]
    templates: coupons.ClubTemplates
    rewards_referral: bool

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
        self.ttl = ttl
        self._clock = clock
        self._programs: dict[str, tuple[float, Program]] = {}
        self._questions: dict[int, tuple[float, Sequence[ProfileQuestion]]] = {}
        self._loyalty: dict[int, tuple[float, LoyaltySetup]] = {}
        self._rules: dict[int, tuple[float, purchases.ClubRules]] = {}
        self._by_id: dict[int, tuple[float, Program]] = {}

    def by_number(self, session: Session, number: str) -> Program | None:
        now = self._clock()
        cached = self._programs.get(number)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        program = by_number(session, number)
        if program is not None:
            session.expunge(program)
            self._programs[number] = (now, program)
        return program

    def questions(self, session: Session, program_id: int) -> Sequence[ProfileQuestion]:
        now = self._clock()
        cached = self._questions.get(program_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        found = questions(session, program_id)
        for question in found:
            session.expunge(question)
        self._questions[program_id] = (now, found)
        return found

    def loyalty(self, session: Session, program: Program) -> LoyaltySetup:
        now = self._clock()
        cached = self._loyalty.get(program.id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        setup = loyalty_setup(session, program)
        self._loyalty[program.id] = (now, setup)
        return setup

    def rules(self, session: Session, program_id: int) -> purchases.ClubRules:
        """What recording a purchase reads of the club (earning rules, punch cards, ladder)."""
        now = self._clock()
        cached = self._rules.get(program_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        rules = purchases.club_rules(session, program_id)
        self._rules[program_id] = (now, rules)
        return rules

    def by_id(self, session: Session, program_id: int) -> Program | None:
        """The club with this id (as an API key names it)."""
        now = self._clock()
        cached = self._by_id.get(program_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        program = get(session, program_id)
        if program is not None:
            session.expunge(program)
            self._by_id[program_id] = (now, program)
        return program
