"""Clubs: creating one, finding one by the number a member texted, its profile questions."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import locales
from locales.sms import is_gsm7, over_one, to_gsm7
from store.clubs import asking
from store.errors import InvalidSetting, NotFound, NumberTaken
from store.loyalty import tiers
from store.models import (
    ProfileAnswer,
    ProfileQuestion,
    Program,
    ProgramNumber,
    Segment,
)

# Sensible defaults per country; a club can override them.
COUNTRY_DEFAULTS = {
    "NO": ("Europe/Oslo", "NOK"),
    "SE": ("Europe/Stockholm", "SEK"),
    "DK": ("Europe/Copenhagen", "DKK"),
    "FI": ("Europe/Helsinki", "EUR"),
    "IS": ("Atlantic/Reykjavik", "ISK"),
}
QUESTION_KINDS = frozenset({"first_name", "birthday", "choice", "multichoice", "text"})
BUILT_IN_KINDS = frozenset({"first_name", "birthday"})  # kept on the member, asked by Klubb
REFERRAL_TRIGGERS = ("signup", "purchase")
MAX_NAME = 60  # Program.name
MAX_CONTACT = 200  # Program.contact
MAX_URL = 300  # Program.privacy_url
MAX_KEY = 40  # ProfileQuestion.key
MAX_PROMPT = 300  # a question is one SMS, more or less
MAX_CHOICES = 9  # answered with one digit
# A question asked by SMS may share its SMS with what the member is told just before it: the
# welcome after YES, naming the club (flows.join), or the thanks for a first name of this length
# (flows.profile). Each SMS is one segment, so the club's wording leaves room for either.
QUESTION_LEADS = ("join.welcome", "profile.thanks")
LONG_FIRST_NAME = "Marie-Christine"
AUTO_REPLY_CLUB = "{club}"  # the one placeholder a club's automatic reply may use
# The ranges of the club's numbers a setting may take (the cap and the minimum age to join are
# PRODUCT.md's: 13 is the GDPR consent age in Norway and Sweden). The one table: creating a
# club, changing its numbers, the CLI and the admin all ask it.
LIMITS: dict[str, tuple[int, int]] = {
    "marketing_per_month": (1, 3),
    "min_age": (13, 18),
    "quiet_start": (0, 23),
    "quiet_end": (0, 23),
    "sms_price_minor": (0, 100_000),
    "earn_points": (0, 10_000),
    "earn_per_minor": (1, 100_000_000),
    "min_purchase_minor": (0, 100_000_000),
    "points_lifetime_months": (1, 120),
    "tier_period_months": (1, 60),
    "referral_points": (0, 1_000_000),
    # How long message texts are kept (store.retention): a month at least, ten years at most.
    "retention_months": (1, 120),
}


class InvalidSettings(InvalidSetting):
    """Several settings refused at once: `problems` holds each field's reason (the first is
    the InvalidSetting's own), so a form can name every bad field, not just the first."""

    def __init__(self, problems: dict[str, str]) -> None:
        field, reason = next(iter(problems.items()))
        super().__init__(field, reason)
        self.problems = problems


class QuestionTooLong(InvalidSettings):
    """A question whose wording, asked by SMS, would not fit one segment: `language` is the
    wording's, `over` how many characters too long it is (in its longest language). On the
    prompt of a question being written, or on the club's name (`question`: the key of the
    question that a new name would push over)."""

    def __init__(self, language: str, over: int, question: str | None = None) -> None:
        if question is None:
            field, why = "prompt", f"{over} characters too long for one SMS as asked"
        else:
            field, why = "name", f"the question {question} would be {over} characters too long"
        super().__init__({field: f"{why} ({language} wording)"})
        self.language = language
        self.over = over
        self.question = question


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
    name, contact, privacy_url = name.strip(), contact.strip(), privacy_url.strip()
    country = country.strip().upper()
    problems = {
        **check_club(name=name, contact=contact, privacy_url=privacy_url, country=country),
        **check_numbers(marketing_per_month=marketing_per_month, min_age=min_age),
    }
    if problems:
        raise InvalidSettings(problems)
    default_zone, default_currency = COUNTRY_DEFAULTS[country]
    if not numbers:
        raise InvalidSetting("numbers", "a club needs at least one number")
    for number in numbers:
        if by_number(session, number) is not None:
            raise NumberTaken(number)
    program = Program(
        name=name,
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
    kind: str,
    key: str | None = None,
    prompt: Mapping[str, str] | None = None,
    choices: list[dict[str, Any]] | None = None,
) -> ProfileQuestion:
    """Append a profile question to the club's list. Without a key, one is made from the
    wording ("Favourite sport?" gives favourite_sport), unique in the club."""
    prompt, choices = _check_question(kind, prompt, choices)
    _check_fits(program.name, kind, prompt, choices)
    taken = set(
        session.scalars(select(ProfileQuestion.key).where(ProfileQuestion.program_id == program.id))
    )
    if key is None:
        key = _unique(_slug(_first(prompt) if prompt else kind) or "question", taken)
    elif not key.strip() or len(key) > MAX_KEY:
        raise InvalidSetting("key", f"1 to {MAX_KEY} characters")
    elif key in taken:
        raise InvalidSetting("key", f"the club already has a question {key}")
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


def edit_question(
    session: Session,
    program_id: int,
    question_id: int,
    *,
    prompt: Mapping[str, str] | None,
    choices: list[dict[str, Any]] | None = None,
) -> ProfileQuestion:
    """New wording (and choices, for a choice question) for one of the club's questions; its
    key and kind stay, so the answers already given keep their meaning."""
    question = _question(session, program_id, question_id)
    wording, choices = _check_question(question.kind, prompt, choices)
    program = session.get(Program, program_id)
    assert program is not None  # the question is the club's
    _check_fits(program.name, question.kind, wording, choices)
    question.prompt, question.choices = wording, choices
    session.flush()
    return question


def move_question(session: Session, program_id: int, question_id: int, step: int) -> None:
    """Ask a question one place earlier (step -1) or later (+1); at either end nothing moves."""
    question = _question(session, program_id, question_id)
    order = list(questions(session, program_id))
    index = order.index(question)
    other = index + (1 if step > 0 else -1)
    if not 0 <= other < len(order):
        return
    order[index], order[other] = order[other], order[index]
    # Numbered afresh: positions may repeat or have gaps in older data.
    for position, each in enumerate(order, start=1):
        each.position = position
    session.flush()


@dataclass(frozen=True, slots=True)
class QuestionUse:
    """What removing a question touches: how many members answered it, and the saved segments
    that filter on its answers."""

    answers: int
    segments: list[str]


def question_use(session: Session, program_id: int, question_id: int) -> QuestionUse:
    """How one of the club's questions is used (NotFound for another club's or a removed one)."""
    question = _question(session, program_id, question_id)
    answers = session.scalar(
        select(func.count())
        .select_from(ProfileAnswer)
        .where(ProfileAnswer.question_id == question.id)
    )
    segments = [
        name
        for name, filter_ in session.execute(
            select(Segment.name, Segment.filter)
            .where(Segment.program_id == program_id)
            .order_by(Segment.name)
        )
        if _filters_on(filter_, question.key)
    ]
    return QuestionUse(answers or 0, segments)


def remove_question(session: Session, program_id: int, question_id: int) -> None:
    """Stop asking a question: it leaves the club's list (the row stays, inactive, so an
    answer arriving for it still has its question). A member in the middle of answering it is
    asked the club's questions again from the first (flows.profile). The answers given stay
    with the members (their page, their data export, until they are erased).

    Refused (InvalidSettings) for the first name and birthday, which the club's greetings,
    birthday coupons and minimum age rely on, and while a saved segment filters on the
    answers (the segment would go on using answers to a question no one is asked)."""
    question = _question(session, program_id, question_id)
    if question.kind in BUILT_IN_KINDS:
        raise InvalidSettings({"kind": "the first name and birthday questions stay"})
    used = question_use(session, program_id, question_id).segments
    if used:
        raise InvalidSettings({"segments": f"used by the segments {', '.join(used)}"})
    question.active = False
    session.flush()


def _filters_on(node: object, key: str) -> bool:
    """Whether a segment's filter (any nesting of all/any/not) has a condition on the answers
    to the question `key`."""
    if isinstance(node, dict):
        if node.get("field") == "answer" and node.get("question") == key:
            return True
        return any(_filters_on(child, key) for child in node.values())
    if isinstance(node, list):
        return any(_filters_on(child, key) for child in node)
    return False


def choices_from_labels(
    labels: Mapping[str, Sequence[str]], existing: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Choices from their labels per language (line n of each language is choice n). A choice
    keeps the key it had at its place, so answers already given keep their meaning; a new one
    gets a key made from its label."""
    count = max((len(lines) for lines in labels.values()), default=0)
    old_keys = [str(c.get("key")) for c in existing or []]
    taken: set[str] = set()
    made: list[dict[str, Any]] = []
    for n in range(count):
        label = {
            lang: lines[n].strip()
            for lang, lines in labels.items()
            if n < len(lines) and lines[n].strip()
        }
        if not label:
            continue
        key = old_keys[n] if n < len(old_keys) and old_keys[n] not in taken else None
        key = key or _unique(_slug(_first(label)) or "choice", taken)
        taken.add(key)
        made.append({"key": key, "label": label})
    return made


def _check_question(
    kind: str, prompt: Mapping[str, str] | None, choices: list[dict[str, Any]] | None
) -> tuple[dict[str, str] | None, list[dict[str, Any]] | None]:
    if kind not in QUESTION_KINDS:
        raise InvalidSetting("kind", f"must be one of {', '.join(sorted(QUESTION_KINDS))}")
    wording = {lang: text.strip() for lang, text in (prompt or {}).items() if text.strip()}
    if kind in ("choice", "multichoice", "text") and not wording:
        raise InvalidSetting("prompt", "the question needs its wording")
    if any(len(text) > MAX_PROMPT for text in wording.values()):
        raise InvalidSetting("prompt", f"at most {MAX_PROMPT} characters")
    if kind in ("choice", "multichoice"):
        if not choices:
            raise InvalidSetting("choices", "a choice question needs choices")
        if len(choices) > MAX_CHOICES:
            raise InvalidSetting("choices", f"at most {MAX_CHOICES} choices")
    else:
        choices = None
    return wording or None, choices


def _check_fits(
    club: str,
    kind: str,
    prompt: Mapping[str, str] | None,
    choices: Sequence[Mapping[str, Any]] | None,
) -> None:
    """Refuse (QuestionTooLong) wording that, asked by SMS in any language a member may have
    (each reads the club's wording in theirs, else English, else the first written), after the
    welcome with the club's name or the thanks for a long first name, takes more than one
    segment."""
    if kind in BUILT_IN_KINDS:
        return  # Klubb's own wording, one segment by tests/locales/test_one_segment.py
    worst: tuple[int, str] | None = None
    for language in locales.LANGUAGES:
        message_id, params = asking.asked(kind, prompt, choices, language)
        asked = locales.render(message_id, language, **params)
        leads = {"club": club, "first_name": LONG_FIRST_NAME}
        over = max(
            over_one(locales.render(lead, language, **leads) + " " + asked)
            for lead in QUESTION_LEADS
        )
        if over and (worst is None or over > worst[0]):
            worst = (over, asking.wording_language(prompt, language) or language)
    if worst is not None:
        raise QuestionTooLong(worst[1], worst[0])


def _fits(club: str, question: ProfileQuestion) -> bool:
    try:
        _check_fits(club, question.kind, question.prompt, question.choices)
    except QuestionTooLong:
        return False
    return True


def _question(session: Session, program_id: int, question_id: int) -> ProfileQuestion:
    question = session.get(ProfileQuestion, question_id)
    if question is None or question.program_id != program_id or not question.active:
        raise NotFound("question", str(question_id))
    return question


def _first(texts: Mapping[str, str]) -> str:
    return texts.get("en") or next(iter(texts.values()), "")


def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "_".join(words)[: MAX_KEY - 4].strip("_")


def _unique(key: str, taken: set[str]) -> str:
    found, n = key, 2
    while found in taken:
        found, n = f"{key}_{n}", n + 1
    return found


def questions(session: Session, program_id: int) -> Sequence[ProfileQuestion]:
    """The club's active profile questions in the order they are asked."""
    return session.scalars(
        select(ProfileQuestion)
        .where(ProfileQuestion.program_id == program_id, ProfileQuestion.active.is_(True))
        .order_by(ProfileQuestion.position, ProfileQuestion.id)
    ).all()


def sms_values(program: Program) -> dict[str, Any]:
    """The club's own placeholders, which every SMS to its members may use."""
    return {
        "club": program.name,
        "contact": program.contact,
        "privacy_url": locales.sms_url(program.privacy_url),
        "per_month": program.marketing_per_month,
    }


def update_club(
    session: Session, program: Program, *, name: str, contact: str, privacy_url: str
) -> Program:
    """The club's name, contact and privacy page (an https address: members follow it from
    an SMS). Raises InvalidSettings naming every bad field; nothing changes then."""
    name, contact, privacy_url = name.strip(), contact.strip(), privacy_url.strip()
    problems = check_club(name=name, contact=contact, privacy_url=privacy_url)
    if problems:
        raise InvalidSettings(problems)
    if name != program.name:
        # The welcome before a question names the club: a longer name leaves less room.
        for question in questions(session, program.id):
            try:
                _check_fits(name, question.kind, question.prompt, question.choices)
            except QuestionTooLong as exc:
                if _fits(program.name, question):  # else too long already: not the name's doing
                    raise QuestionTooLong(exc.language, exc.over, question.key) from None
        _check_auto_reply_fits(program, name)
    program.name, program.contact, program.privacy_url = name, contact, privacy_url
    session.flush()
    return program


def check_club(
    *, name: str, contact: str, privacy_url: str, country: str | None = None
) -> dict[str, str]:
    """What is wrong with each of the club's own fields (nothing: an empty dict): the one rule
    for a club created (`create`, `klubb init`) and changed (`update_club`, the admin's
    settings page). `country` (a new club's) must be one Klubb has defaults for."""
    name, contact, privacy_url = name.strip(), contact.strip(), privacy_url.strip()
    problems: dict[str, str] = {}
    if not name:
        problems["name"] = "must not be empty"
    elif len(name) > MAX_NAME:
        problems["name"] = f"at most {MAX_NAME} characters"
    if not contact:
        problems["contact"] = "must not be empty"
    elif len(contact) > MAX_CONTACT:
        problems["contact"] = f"at most {MAX_CONTACT} characters"
    if not _https_url(privacy_url):
        problems["privacy_url"] = f"an https:// address of at most {MAX_URL} characters"
    if country is not None and country.strip().upper() not in COUNTRY_DEFAULTS:
        # Its time zone and currency come from here: a club elsewhere would be on UTC in EUR.
        problems["country"] = f"one of {', '.join(COUNTRY_DEFAULTS)}"
    return problems


class AutoReplyRefused(InvalidSettings):
    """The club's own automatic replies refused: `over` holds, per language, how many
    characters too long for one SMS its wording is (0: a placeholder other than {club})."""

    def __init__(self, over: dict[str, int]) -> None:
        super().__init__(
            {
                f"auto_reply_{language}": f"{n} characters too long for one SMS"
                if n
                else "only the placeholder {club}"
                for language, n in over.items()
            }
        )
        self.over = over


class NameTooLongForAutoReply(InvalidSettings):
    """A new name for the club that would push its saved automatic reply in `language` over one
    SMS by `over` characters (a name with a letter outside GSM-7, such as "Łódź Café" or an
    emoji, makes the whole SMS UCS-2: 70 characters, not 160). Refused on the field "name"."""

    def __init__(self, language: str, over: int) -> None:
        why = f"the automatic reply ({language}) would be {over} characters too long for one SMS"
        super().__init__({"name": why})
        self.language = language
        self.over = over


def set_auto_reply(session: Session, program: Program, texts: Mapping[str, str]) -> Program:
    """The club's own automatic reply to a member's text not understood, per language (an
    empty one: the catalog's, unknown.forwarded). Each may name the club ({club}) and nothing
    else, and must fit one SMS with the club's name and with any GSM-7 name up to the longest
    allowed (a rename within GSM-7 never pushes it over; update_club checks any other rename).
    Raises AutoReplyRefused naming every bad language; nothing changes then."""
    kept: dict[str, str] = {}
    over: dict[str, int] = {}
    # A name of GSM-7 letters padded to the longest: its own extension characters (2 septets
    # each) stay in. A name outside GSM-7 makes every SMS naming it UCS-2 (70 characters): it
    # is checked as it is, and a GSM-7 name of the longest for a later rename.
    if is_gsm7(program.name):
        names = [program.name.ljust(MAX_NAME, "x")]
    else:
        names = [program.name, "x" * MAX_NAME]
    for language in locales.LANGUAGES:
        wording = " ".join(texts.get(language, "").split())
        if not wording:
            continue
        rest = wording.replace(AUTO_REPLY_CLUB, "")
        if "{" in rest or "}" in rest:
            over[language] = 0
            continue
        too_long = max(over_one(to_gsm7(wording.replace(AUTO_REPLY_CLUB, n))) for n in names)
        if too_long:
            over[language] = too_long
        kept[language] = wording
    if over:
        raise AutoReplyRefused(over)
    program.auto_reply = kept or None
    session.flush()
    return program


def _check_auto_reply_fits(program: Program, name: str) -> None:
    """Refuse (NameTooLongForAutoReply) a new name with which a saved automatic reply naming
    the club would no longer fit one SMS, in the language it is most over."""
    worst: tuple[int, str] | None = None
    for language, wording in sorted((program.auto_reply or {}).items()):
        if AUTO_REPLY_CLUB not in wording:
            continue
        over = over_one(to_gsm7(wording.replace(AUTO_REPLY_CLUB, name)))
        if over and (worst is None or over > worst[0]):
            worst = (over, language)
    if worst is not None:
        raise NameTooLongForAutoReply(worst[1], worst[0])


def auto_reply(program: Program, language: str) -> str | None:
    """The club's own automatic reply in the language, as sent; None: it has none there."""
    wording = (program.auto_reply or {}).get(language)
    if not wording:
        return None
    return to_gsm7(wording.replace(AUTO_REPLY_CLUB, program.name))


def update_numbers(session: Session, program: Program, **values: int) -> Program:
    """Change some of the club's numbers (the cap, the minimum age, quiet hours, the SMS price,
    the earning rules, the referral points: the keys of LIMITS). Raises InvalidSettings naming
    every value out of its range; nothing changes then."""
    problems = check_numbers(**values)
    if problems:
        raise InvalidSettings(problems)
    for field, value in values.items():
        setattr(program, field, value)
    session.flush()
    return program


def check_numbers(**values: object) -> dict[str, str]:
    """What is wrong with each of these club numbers (nothing: an empty dict)."""
    problems: dict[str, str] = {}
    for field, value in values.items():
        if field not in LIMITS:
            problems[field] = "not a setting of the club"
            continue
        low, high = LIMITS[field]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems[field] = f"a whole number from {low} to {high}"
    return problems


def set_referral(session: Session, program: Program, *, trigger: str, points: int) -> Program:
    """When a referral is rewarded (the friend joined, or first bought) and with how many points
    each (0: the referral coupon alone, if the club has one)."""
    if trigger not in REFERRAL_TRIGGERS:
        raise InvalidSettings({"referral_trigger": f"one of {', '.join(REFERRAL_TRIGGERS)}"})
    update_numbers(session, program, referral_points=points)
    program.referral_trigger = trigger
    session.flush()
    return program


def set_page_link_in_sms(session: Session, program: Program, on: bool) -> Program:
    """Whether the welcome SMS (the end of sign-up) and the reward SMS (a claimed reward) carry
    the member's page link. Off by default: the link costs about 45 characters of the SMS."""
    program.page_link_in_sms = bool(on)
    session.flush()
    return program


def _https_url(url: str) -> bool:
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and "." in (parts.hostname or "")
