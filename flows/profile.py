"""Profile questions, one at a time: first name, birthday and the club's own questions.

Questions are data (store.models.ProfileQuestion); one generic step asks whichever is next.
Three flows ask them: the sign-up (FLOW), PROFIL / PROFILE, where a member goes through their
answers again with the current one shown (EDIT_FLOW), and a question the club added after the
member joined, put to them once after the reply to one of their texts (NEW_FLOW).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata

from babel.dates import get_month_names

from flows.keywords import normalize
from flows.turn import (
    ACTIVE,
    KEEP,
    Erase,
    Outcome,
    Question,
    Reply,
    SaveAnswer,
    SetBirthday,
    SetFirstName,
    SkipQuestion,
    State,
    Turn,
    reply,
)
from locales.sms import is_gsm7
from store.clubs import asking
from store.members import profile as questions_asked
from store.members.profile import age_on, too_young

FLOW = questions_asked.FLOW
EDIT_FLOW = questions_asked.EDIT_FLOW
NEW_FLOW = questions_asked.NEW_FLOW
QUESTION_FLOWS = frozenset({FLOW, EDIT_FLOW, NEW_FLOW})  # a question of the club's is open
ADDED_KINDS = frozenset(questions_asked.ADDED_KINDS)
# The texts whose reply an added question may follow (may_put): a plain answer that leaves the
# member where they were. Never STOP, HELP or START, a privacy request, a text Klubb did not
# understand (a person answers it), nor PROFIL itself, which asks every question anyway.
PUT_AFTER = frozenset({"points", "coupons", "claim", "invite", "page", "lang", "join"})
MAX_TEXT_ANSWER = 100
MAX_NAME = 40
MAX_SHOWN = 40  # PROFIL shows this much of a text answer
OLDEST_AGE = 120
FREE_TEXT_KINDS = frozenset({"first_name", "text"})
# Kinds whose question is worded by the club and asked through profile.ask.<kind>.
QUESTION_PROMPT_KINDS = ("choice", "multichoice", "text")

_NAME_PREFIXES = (
    "my name is",
    "my names",
    "i am",
    "im",
    "its",
    "name",
    "jeg heter",
    "eg heiter",
    "navnet mitt er",
    "mitt navn er",
    "navnet er",
    "jag heter",
    "mitt namn ar",
    "namnet ar",
    "heter",
)


def state_for(question: Question) -> State:
    return State(FLOW, questions_asked.step(question.id))


def current_question(turn: Turn) -> Question | None:
    if turn.member is None or turn.member.flow not in QUESTION_FLOWS or not turn.member.step:
        return None
    return next((q for q in turn.questions if questions_asked.step(q.id) == turn.member.step), None)


def first_question(turn: Turn, after: Question | None) -> Question | None:
    """The question after `after` (or the first one), in the club's order."""
    if after is None:
        return turn.questions[0] if turn.questions else None
    ids = [q.id for q in turn.questions]
    index = ids.index(after.id) + 1 if after.id in ids else len(ids)
    return turn.questions[index] if index < len(turn.questions) else None


def expects_free_text(turn: Turn) -> bool:
    question = current_question(turn)
    return question is not None and question.kind in FREE_TEXT_KINDS


def answer(turn: Turn) -> Outcome:
    """The member's answer to the current question: saved and the next asked, or asked again."""
    question = current_question(turn)
    if question is None and turn.member is not None and turn.member.flow == EDIT_FLOW:
        return Outcome.go(None, reply("profile.edit.done"))  # the question was removed
    if question is None:
        # The question was removed while the member was answering it: carry on with the first
        # question they have not answered (their name and birthday are known, if given).
        return _resume(turn)
    answered = _ANSWERS[question.kind](turn, question)
    if _skips(turn, question, answered):
        return _next(turn, question, _skip_effects(turn, question))
    return answered


def _skips(turn: Turn, question: Question, answered: Outcome) -> bool:
    """SKIP to the letter skips; a typo of it ("Ski") that answers the question is an answer.
    A no ("nei takk", "no thanks") declines a question it is no answer to, as SKIP in words
    ("vil ikke si") does. At the first name either always declines: no typo is read there
    (flows.understand.FREE_TEXT_STATES), and no one is called "Nei Takk" or "Skip Pls"."""
    intent = turn.intent
    if intent is None or intent.name not in ("skip", "no"):
        return False
    if question.kind == "first_name":
        return True
    return (intent.name == "skip" and intent.exact) or answered.state is KEEP


def _skip_effects(turn: Turn, question: Question) -> tuple[SkipQuestion, ...]:
    """A club's own question skipped without an answer is remembered (never put again)."""
    unanswered = question.id not in (turn.answers or {})
    return (SkipQuestion(question.id),) if question.kind in ADDED_KINDS and unanswered else ()


def ask(question: Question, turn: Turn) -> Reply:
    """The question as a reply in the member's language (store.clubs.asking.asked: the same rule
    the till's enrolment SMS and the check of the club's wording use)."""
    message_id, params = asking.asked(
        question.kind, question.prompt, question.choices, turn.language
    )
    return reply(message_id, **params)


def prompt(turn: Turn) -> tuple[Reply, ...]:
    question = current_question(turn)
    return (ask(question, turn),) if question else ()


# --- answers by kind ---


def _first_name(turn: Turn, question: Question) -> Outcome:
    name = clean_name(turn.text)
    # "ja takk" answers no name; a yes alone is kept as typed, as "Jo" is a name as well.
    intent = turn.intent
    yes_among_words = intent is not None and intent.name == "yes" and not intent.exact
    if name is None or yes_among_words:
        return Outcome.say(reply("profile.again.first_name"))
    return _next(turn, question, (SetFirstName(name),), reply("profile.thanks", first_name=name))


def _birthday(turn: Turn, question: Question) -> Outcome:
    birthday = parse_birthday(turn.text, turn.today)
    if birthday is None:
        return Outcome.say(reply("profile.again.birthday"))
    member = turn.member
    if member is not None and member.birthday_locked and birthday != member.birthday:
        # Moved once within a year (store.members.profile.set_birthday): kept, and the walk
        # goes on, the refusal and the next question in one SMS, so the member's next text is
        # read as the next answer (the birthday coupon is no reason to move it twice).
        return _next(turn, question, (), lead=(_LOCKED,))
    if (
        member is not None
        and member.flow != FLOW
        and too_young(birthday, turn.today, turn.club.min_age)
    ):
        # A member since: a date under the minimum age is taken for a slip, not acted on.
        return Outcome.say(reply("profile.edit.too_young", min_age=turn.club.min_age))
    if too_young(birthday, turn.today, turn.club.min_age):
        return Outcome.go(
            None,
            reply("profile.too_young", min_age=turn.club.min_age),
            effects=(Erase("under_age"),),
        )
    return _next(turn, question, (SetBirthday(birthday),))


def _choice(turn: Turn, question: Question) -> Outcome:
    picked = parse_choices(turn.text, question, turn.language)
    if picked is None or len(picked) != 1:
        return Outcome.say(reply("profile.again.choice", count=len(question.choices)))
    return _next(turn, question, (SaveAnswer(question.id, picked),))


def _multichoice(turn: Turn, question: Question) -> Outcome:
    picked = parse_choices(turn.text, question, turn.language)
    if not picked:
        return Outcome.say(reply("profile.again.multichoice", count=len(question.choices)))
    return _next(turn, question, (SaveAnswer(question.id, picked),))


def _text(turn: Turn, question: Question) -> Outcome:
    text = " ".join(turn.text.split())
    if not text or len(text) > MAX_TEXT_ANSWER:
        return Outcome.say(reply("profile.again.text", max_length=MAX_TEXT_ANSWER))
    return _next(turn, question, (SaveAnswer(question.id, (text,), free_text=True),))


# The refusal of a second birthday change within a year, before the next question (one SMS
# with the longest questions tests/locales words). Optional: a club's question may be as long
# as its wording check allows (store.clubs.programs.QUESTION_LEADS, a shorter lead), and then
# the question is what must fit; the refusal is left out after the current answer is.
_LOCKED = Reply("profile.birthday.locked", optional=True)

_ANSWERS = {
    "first_name": _first_name,
    "birthday": _birthday,
    "choice": _choice,
    "multichoice": _multichoice,
    "text": _text,
}


def _resume(turn: Turn) -> Outcome:
    member = turn.member
    known = {
        "first_name": member is not None and member.first_name is not None,
        "birthday": member is not None and member.has_birthday,
    }
    following = next((q for q in turn.questions if not known.get(q.kind, False)), None)
    if following is None:
        return Outcome.go(None, reply("profile.done"))
    return Outcome.go(state_for(following), ask(following, turn))


def _next(
    turn: Turn,
    question: Question | None,
    effects: tuple,
    *before: Reply,
    lead: tuple[Reply, ...] = (),
) -> Outcome:
    """The next question (or the end) after `question`. `before` (a thanks) is said at sign-up
    only; `lead` (a refusal) before the next question of sign-up or PROFIL alike."""
    flow = turn.member.flow if turn.member is not None else FLOW
    if flow == NEW_FLOW:
        # The one added question: a word of thanks, or that it won't be asked again.
        done = "profile.new.skipped" if _is_skip(effects) else "profile.new.thanks"
        return Outcome.go(None, reply(done), effects=effects)
    if flow == EDIT_FLOW:
        following = first_question(turn, question)
        if following is None:
            return Outcome.go(None, *lead, reply("profile.edit.done"), effects=effects)
        state = State(EDIT_FLOW, questions_asked.step(following.id))
        return Outcome.go(state, *lead, *edit_prompt_for(following, turn), effects=effects)
    following = first_question(turn, question)
    if following is None:
        return Outcome.go(None, *lead, *before, reply("profile.done"), effects=effects)
    return Outcome.go(state_for(following), *lead, *before, ask(following, turn), effects=effects)


def _is_skip(effects: tuple) -> bool:
    return any(isinstance(effect, SkipQuestion) for effect in effects)


# --- PROFIL: the questions again, each with the member's current answer ---


def edit(turn: Turn) -> Outcome:
    """PROFIL / PROFILE: the club's questions again, one at a time, each with the answer the
    member gave; an answer replaces it, SKIP keeps it."""
    member = turn.member
    if member is None or member.status != ACTIVE:
        return Outcome.say(reply("profile.edit.guest"))
    if member.flow == FLOW:
        return Outcome.say(*prompt(turn))  # still signing up: the open question again
    first = first_question(turn, after=None)
    if first is None:
        return Outcome.say(reply("profile.edit.none"))
    state = State(EDIT_FLOW, questions_asked.step(first.id))
    return Outcome.go(state, *edit_prompt_for(first, turn))


def edit_prompt(turn: Turn) -> tuple[Reply, ...]:
    """The open question of PROFIL again (after HELP or a keyword)."""
    question = current_question(turn)
    return edit_prompt_for(question, turn) if question else ()


def edit_prompt_for(question: Question, turn: Turn) -> tuple[Reply, ...]:
    """The question and, when the member has one, their current answer ("Nå: 14.03.1990.") and
    that SKIP keeps it ("HOPP OVER beholder det."), each left out (the last first) when a
    club's longest wording would otherwise make a second SMS."""
    current = current_answer(question, turn)
    asked = ask(question, turn)
    if current is None:
        return (asked,)
    return (
        asked,
        Reply("profile.edit.now", {"answer": current}, optional=True),
        Reply("profile.edit.keep", optional=True),  # the first to go when it would not fit
    )


def current_answer(question: Question, turn: Turn) -> str | dt.date | None:
    """The member's answer to a question as they read it: a name, a date (the catalog writes
    it in their language), the labels of the choices they picked, or their text."""
    member = turn.member
    if member is None:
        return None
    if question.kind == "first_name":
        return member.first_name
    if question.kind == "birthday":
        return member.birthday
    value = (turn.answers or {}).get(question.id)
    if not value:
        return None
    if question.kind in ("choice", "multichoice"):
        labels = {c["key"]: _in_language(c["label"], turn.language) for c in question.choices}
        return ", ".join(labels.get(key, key) for key in value)
    text = " ".join(value)
    # A long text answer is shown by its start: the question it follows must fit too.
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3].rstrip() + "..."


# --- a question the club added, put once to a member who joined before it ---


def may_put(turn: Turn, outcome: Outcome) -> bool:
    """Whether an added question may follow the reply to this text: an active member between
    flows, a text of PUT_AFTER answered without starting a flow. Pure, so that the one query
    for the question (store.members.profile.first_unasked) is made only then."""
    member = turn.member
    return (
        member is not None
        and member.status == ACTIVE
        and member.flow is None
        and turn.intent is not None
        and turn.intent.name in PUT_AFTER
        and outcome.state is KEEP
        and bool(outcome.replies)
        and not outcome.not_understood
    )


def put(question_id: int) -> State:
    """The state an added question's answer is read in, once it followed a reply (asked as
    `ask` asks it: store.clubs.asking.asked)."""
    return State(NEW_FLOW, questions_asked.step(question_id))


def answer_added(turn: Turn) -> Outcome | None:
    """The member's next text after an added question was put: its answer (saved, thanked),
    SKIP (remembered), or None when the text is no answer: the question is dropped (it was
    asked once) and the text is read as any other."""
    question = current_question(turn)
    if question is None:
        return None
    answered = _ANSWERS[question.kind](turn, question)
    if _skips(turn, question, answered):
        return _next(turn, question, (SkipQuestion(question.id),))
    if answered.state is KEEP:
        return None
    return answered


# --- parsing ---


def clean_name(text: str) -> str | None:
    """A first name from an answer like "kari", "KARI", "Jeg heter Kari" or "Anne-Marie"."""
    # A phone's typographic apostrophe ("O’Brien", iOS's default) is the plain one: a name
    # holds it as typed, and the thanks stays GSM-7.
    words = " ".join(text.translate(_APOSTROPHES).split())
    folded = normalize(words.replace("'", ""))  # "I'm Kari" as "im kari"
    for prefix in _NAME_PREFIXES:
        if folded == prefix:
            return None
        if folded.startswith(prefix + " "):
            words = " ".join(words.split()[len(prefix.split()) :])
            break
    words = words.strip(" .,!")
    if not words or len(words) > MAX_NAME or len(words.split()) > 3:
        return None
    if not all(c.isalpha() or c in " -'." for c in words):
        return None
    if not any(unicodedata.category(c).startswith("L") for c in words):
        return None
    if words.islower() or words.isupper():
        words = " ".join(
            "-".join(_capitalised(part) for part in word.split("-")) for word in words.split()
        )
    return words


_APOSTROPHES = str.maketrans(dict.fromkeys("’‘ʼ´`", "'"))


def _capitalised(name: str) -> str:
    """ "kari" as "Kari", unless a letter would change into one GSM-7 lacks: then the name is
    kept as typed ("è" stays "è", not "È"; "FRANÇOIS" is not "FranÇois"), so a name never makes
    a reply cost UCS-2 for a letter the member did not write."""
    capitalised = name.capitalize()
    changed = (new for new, old in zip(capitalised, name, strict=False) if new != old)
    return capitalised if len(capitalised) == len(name) and is_gsm7("".join(changed)) else name


_DMY = re.compile(r"^(\d{1,2})[./\- ]+(\d{1,2})[./\- ]+(\d{2}|\d{4})$")
_YMD = re.compile(r"^(\d{4})[./\- ]+(\d{1,2})[./\- ]+(\d{1,2})$")
_DIGITS = re.compile(r"^\d{6}$|^\d{8}$")
_DAY_MONTH_NAME = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\.? *(?:of )?([a-z]+)\.? *(\d{4})$")
_MONTH_NAME_DAY = re.compile(r"^([a-z]+)\.? *(\d{1,2})(?:st|nd|rd|th)?,? *(\d{4})$")


def parse_birthday(text: str, today: dt.date) -> dt.date | None:
    """A birth date in any common Nordic or English form, or None if it can't be one."""
    raw = " ".join(text.strip().lower().split())
    parts = _date_parts(raw, today) or _date_parts(_date_words(raw), today)
    if parts is None:
        return None
    year, month, day = parts
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return None
    if born > today or age_on(born, today) > OLDEST_AGE:
        return None
    return born


def _date_parts(raw: str, today: dt.date) -> tuple[int, int, int] | None:
    if m := _YMD.match(raw):
        return int(m[1]), int(m[2]), int(m[3])
    if m := _DMY.match(raw):
        return _full_year(m[3], today, int(m[2]), int(m[1])), int(m[2]), int(m[1])
    if _DIGITS.match(raw):
        # 19900312 is year first; 19031990 (the 19th) can't be, as 19 is no month.
        if len(raw) == 8 and raw[:2] in ("19", "20") and 1 <= int(raw[4:6]) <= 12:
            return int(raw[:4]), int(raw[4:6]), int(raw[6:])
        day, month = int(raw[:2]), int(raw[2:4])
        if len(raw) == 6 and not (1 <= day <= 31 and 1 <= month <= 12):
            # Swedish YYMMDD ("900312"): read year first only when day first can't be a date.
            day, month = int(raw[4:]), int(raw[2:4])
            return _full_year(raw[:2], today, month, day), month, day
        return _full_year(raw[4:], today, month, day), month, day
    folded = normalize(raw)
    if m := _DAY_MONTH_NAME.match(folded):
        month = _month_names().get(m[2])
        return (int(m[3]), month, int(m[1])) if month else None
    if m := _MONTH_NAME_DAY.match(folded):
        month = _month_names().get(m[1])
        return (int(m[3]), month, int(m[2])) if month else None
    return None


def _date_words(raw: str) -> str:
    """The words of a date in a sentence: "født 15.03.1990", "den 15. mars 1990 🎂" and
    "born on March 15, 1990" hold one, read as it would be alone; the other words go."""
    months = _month_names()
    words = (_EDGES.sub("", word) for word in raw.split())
    return " ".join(
        word
        for word in words
        if any(c.isdigit() for c in word) or normalize(word).replace(" ", "") in months
    )


# What stands around a word of a date: an emoji, a comma, brackets (a dot may end the day).
_EDGES = re.compile(r"^[^\w]+|[^\w.]+$")


def _full_year(digits: str, today: dt.date, month: int, day: int) -> int:
    """A two-digit year in the last hundred years: 15.05.26 on 14.05.2026 is 1926, not a
    date in the future."""
    if len(digits) == 4:
        return int(digits)
    year = 2000 + int(digits)
    return year if (year, month, day) <= (today.year, today.month, today.day) else year - 100


@functools.cache
def _month_names() -> dict[str, int]:
    names: dict[str, int] = {}
    for locale in ("nb", "sv", "en"):
        for width in ("wide", "abbreviated"):
            for number, name in get_month_names(width, locale=locale).items():
                names[normalize(name).replace(" ", "")] = number
    return names


def parse_choices(text: str, question: Question, language: str) -> tuple[str, ...] | None:
    """The choice keys an answer names, by number ("1 3", "1,3", "1 og 3") or by label."""
    words = normalize(text).split()
    if not words:
        return None
    labels = {
        normalize(_in_language(c["label"], lang)).replace(" ", ""): c["key"]
        for c in question.choices
        for lang in (language, "nb", "sv", "en")
    }
    if whole := labels.get("".join(words)):  # a label of several words: "Cross country"
        return (whole,)
    picked: list[str] = []
    for word in words:
        if word.isdigit():
            number = int(word)
            if not 1 <= number <= len(question.choices):
                return None
            key = question.choices[number - 1]["key"]
        elif word in labels:
            key = labels[word]
        elif word in ("og", "and", "och", "eller", "or"):
            continue
        else:
            return None
        if key not in picked:
            picked.append(key)
    return tuple(picked) or None


_in_language = asking.in_language
