"""Saved texts the owner words once per language: replies staff pick to answer the inbox, and
broadcast texts the campaign form fills its texts from.

A template is a MessageTemplate row of purpose "reply" or "broadcast": a name unique in the
club among its purpose's and a text per language (nb, sv, en; at least one). Its placeholders
are checked when it is saved, so a typo never reaches a member raw; `fill` writes a reply for
one member, in their language, as the staff reply will send it.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import locales
from store.clubs import programs
from store.errors import InvalidInput, NotFound
from store.models import MessageTemplate, Program
from store.outreach import campaigns, inbox
from store.outreach.sending import tidy

REPLY, BROADCAST = "reply", "broadcast"
PURPOSES = (REPLY, BROADCAST)
# What a saved reply may say about the member: what the inbox's context of a number knows; a
# broadcast's, what a campaign's text may say (its coupon's code among them, and the favourite
# category offer's {favourite_category}: a broadcast using it becomes one).
PLACEHOLDERS: dict[str, frozenset[str]] = {
    REPLY: frozenset({"first_name", "club", "points", "tier"}),
    BROADCAST: campaigns.BROADCAST_PLACEHOLDERS,
}
MAX_NAME = 80  # the column's size
MAX_TEXT = campaigns.MAX_TEXT  # as a campaign's text: four GSM-7 segments, a letter beyond
# Long-ish values to size a text before a member fills it: a filled reply must still be one
# that the inbox's rule lets go (inbox.MAX_SEGMENTS), whoever it is for.
_SAMPLE = {"first_name": "Kristoffer", "points": "12 345"}
_LONG_TIER = 40  # tier names have no limit of their own: a long one


class BadTemplate(InvalidInput):
    """One rule a template breaks: `field` is "name", "texts" or "texts.<language>"; `code`
    (with `params`) is what a page words in its own language; `reason` is for the CLI."""

    def __init__(self, field: str, reason: str, code: str, **params: Any) -> None:
        super().__init__(field, reason)
        self.code = code
        self.params = params


class TemplateRefused(InvalidInput):
    """A template not saved: every rule it breaks (`problems`), the first one as its own
    field and reason."""

    def __init__(self, problems: Sequence[BadTemplate]) -> None:
        first = problems[0]
        super().__init__(first.field, "; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = list(problems)


def of_club(session: Session, program: Program, purpose: str = REPLY) -> list[MessageTemplate]:
    """The club's templates of the purpose, by name."""
    found = session.scalars(
        select(MessageTemplate).where(
            MessageTemplate.program_id == program.id, MessageTemplate.purpose == purpose
        )
    ).all()
    return sorted(found, key=lambda t: (t.name.casefold(), t.id))


def get(
    session: Session, program: Program, template_id: int, purpose: str = REPLY
) -> MessageTemplate:
    """The club's template with this id; NotFound for another club's or none."""
    template = session.get(MessageTemplate, template_id)
    if template is None or template.program_id != program.id or template.purpose != purpose:
        raise NotFound("template", str(template_id))
    return template


def by_name(session: Session, program: Program, name: str, purpose: str = REPLY) -> MessageTemplate:
    """The club's template of this name (case aside); NotFound when it has none."""
    wanted = _clean_name(name).casefold()
    for template in of_club(session, program, purpose):
        if template.name.casefold() == wanted:
            return template
    raise NotFound("template", name)


def save(
    session: Session,
    program: Program,
    *,
    name: str,
    texts: Mapping[str, str],
    now: dt.datetime,
    template_id: int | None = None,
    purpose: str = REPLY,
) -> MessageTemplate:
    """Create a template, or change the club's template `template_id` (NotFound if it has
    none). A language left blank has no text. Raises TemplateRefused naming every rule
    broken (the name's, then each language's); nothing changes then."""
    existing = None if template_id is None else get(session, program, template_id, purpose)
    clean = _clean_name(name)
    found = check(texts, purpose, club=program.name)
    problems = [*_name_problems(session, program, clean, purpose, existing), *found.problems]
    if problems:
        raise TemplateRefused(problems)
    template = existing or MessageTemplate(program_id=program.id, purpose=purpose, created_at=now)
    template.name, template.texts, template.updated_at = clean, found.texts, now
    if existing is None:
        session.add(template)
    session.flush()
    return template


def delete(session: Session, program: Program, template_id: int, purpose: str = REPLY) -> str:
    """Remove the club's template (NotFound if it has none); its name, to say what went."""
    template = get(session, program, template_id, purpose)
    session.delete(template)
    session.flush()
    return template.name


class Checked:
    """The texts kept (blank languages dropped, each stripped) and the rules they break."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.problems: list[BadTemplate] = []


def check(texts: Mapping[str, str], purpose: str = REPLY, *, club: str = "") -> Checked:
    """The texts per language, checked: a known language, at most MAX_TEXT characters, only
    the purpose's placeholders (no stray brace, format spec or conversion), and, for a reply,
    filled with long values (the club's name at its longest) no more SMS than a staff reply
    may be (a broadcast's length is its own rule, as a campaign's text's)."""
    checked = Checked()
    allowed = PLACEHOLDERS.get(purpose)
    if allowed is None:
        checked.problems.append(BadTemplate("purpose", f"unknown purpose {purpose!r}", "purpose"))
        return checked
    for language, raw in texts.items():
        text = raw.strip()
        if not text:
            continue
        where = f"texts.{language}"
        if language not in locales.LANGUAGES:
            checked.problems.append(
                BadTemplate(
                    where, f"language must be one of {', '.join(locales.LANGUAGES)}", "language"
                )
            )
            continue
        problem = _text_problem(where, language, text, allowed, club, sized=purpose == REPLY)
        if problem is not None:
            checked.problems.append(problem)
        else:
            checked.texts[language] = text
    if not checked.texts and not checked.problems:
        checked.problems.append(
            BadTemplate("texts", "give the text in at least one language", "no_text")
        )
    return checked


def text_language(texts: Mapping[str, Any], language: str) -> str:
    """Which text a member reads: their language, else English, else the first written in
    nb, sv, en order (a JSON column on PostgreSQL keeps no key order)."""
    if language in texts:
        return language
    if locales.DEFAULT_LANGUAGE in texts:
        return locales.DEFAULT_LANGUAGE
    return next((lang for lang in locales.LANGUAGES if lang in texts), next(iter(texts)))


def fill(template: MessageTemplate, language: str, member: inbox.Context, club: str) -> str:
    """The template as `member` reads it: the text in `language` (else English, else the
    first), placeholders filled from what the inbox knows of them; an empty one (no first
    name yet, not a member) leaves no gap ("Hi , welcome" reads "Hi, welcome")."""
    texts = template.texts or {}
    chosen = text_language(texts, language)
    points = "" if member.points is None else locales.format_number(member.points, chosen)
    values = {
        "first_name": member.name or "",
        "club": club,
        "points": points,
        "tier": member.tier or "",
    }
    return tidy(str(texts[chosen]).format_map(values))


# --- helpers ----------------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    return " ".join(name.split())


def _name_problems(
    session: Session,
    program: Program,
    name: str,
    purpose: str,
    existing: MessageTemplate | None,
) -> list[BadTemplate]:
    if not name:
        return [BadTemplate("name", "must not be empty", "name_empty")]
    if len(name) > MAX_NAME:
        return [
            BadTemplate("name", f"at most {MAX_NAME} characters", "name_too_long", max=MAX_NAME)
        ]
    # Unique whatever the case: `klubb inbox reply --template` finds a name case aside. Folded
    # in Python: SQLite's lower() leaves Å as it is (a club has a handful of templates).
    wanted = name.casefold()
    same = next(
        (
            t.id
            for t in of_club(session, program, purpose)
            if t.name.casefold() == wanted and (existing is None or t.id != existing.id)
        ),
        None,
    )
    if same is not None:
        return [BadTemplate("name", f"the club has a template named {name!r}", "name_taken")]
    return []


def _text_problem(
    where: str, language: str, text: str, allowed: frozenset[str], club: str, *, sized: bool
) -> BadTemplate | None:
    """The first rule one language's text breaks, or None."""
    if len(text) > MAX_TEXT:
        return BadTemplate(
            where, f"at most {MAX_TEXT} characters", "too_long", language=language, max=MAX_TEXT
        )
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        # A single { or } (an unclosed placeholder, or a brace meant as text: write {{ or }}).
        stray = _stray_brace(text)
        return BadTemplate(
            where,
            f"a brace is not closed or not doubled at {stray!r} (write {{{{ or }}}} for one)",
            "brace",
            language=language,
            placeholder=stray,
        )
    names = ", ".join("{" + name + "}" for name in sorted(allowed))
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in allowed or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            return BadTemplate(
                where,
                f"unknown placeholder {shown}; use {names}",
                "placeholder",
                language=language,
                placeholder=shown,
                allowed=names,
            )
    if not sized:
        return None
    longest = club.ljust(programs.MAX_NAME, "x")
    sample = {**_SAMPLE, "club": longest, "tier": "x" * _LONG_TIER}
    size = locales.segments(locales.to_gsm7(text.format_map(sample)))
    if size.segments > inbox.MAX_SEGMENTS:
        return BadTemplate(
            where,
            f"filled for a member, {size.segments} SMS: at most {inbox.MAX_SEGMENTS}",
            "too_many_sms",
            language=language,
            segments=size.segments,
            max=inbox.MAX_SEGMENTS,
        )
    return None


def _stray_brace(text: str) -> str:
    """The text from the first brace that is neither doubled nor part of a closed
    placeholder (a few characters of it: what a page quotes)."""
    at = 0
    while at < len(text):
        pair = text[at : at + 2]
        if pair in ("{{", "}}"):
            at += 2
            continue
        if text[at] == "}":
            break
        if text[at] == "{":
            end = text.find("}", at)
            if end < 0:
                break
            at = end + 1
            continue
        at += 1
    return text[at : at + 12] if at < len(text) else text[-12:]
