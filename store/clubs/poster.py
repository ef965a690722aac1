"""The join poster's content: the words in the club's language and the QR code's SMS payload, the
one rule the admin's download and `klubb poster` both print (bot.poster draws the PDF)."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from sqlalchemy.orm import Session

import locales
from store.clubs import programs
from store.models import Program

# A club speaks its country's language (as its admin does: bot.admin.auth.COUNTRY_LANGUAGES);
# a club elsewhere, English.
CLUB_LANGUAGES = {"NO": "nb", "SE": "sv"}


class NoNumber(Exception):
    """The club has no number a member could text."""


@dataclass(frozen=True, slots=True)
class Poster:
    """What the poster says: every text already in the club's language."""

    language: str
    club: str
    number: str  # as the QR code carries it: a short code, or E.164
    keyword: str  # the join keyword as members type it in the language ("BLI MED")
    payload: str  # the QR code's content
    title: str
    join: str  # "Send BLI MED til 2020"
    scan: str
    consent: str
    privacy: str


def club_language(program: Program) -> str:
    """The language the club speaks to people who have not chosen one: its country's."""
    return CLUB_LANGUAGES.get(program.country.upper(), locales.DEFAULT_LANGUAGE)


def sms_payload(number: str, keyword: str) -> str:
    """The QR code's content: `SMSTO:<number>:<text>`, which opens the SMS app with the number
    and the text filled in. Chosen over `sms:<number>?body=<text>` because both iOS's and
    Android's cameras open SMSTO (iOS since 11, Android's camera and Lens), while the sms: URI's
    body separator differs between them (`?body=` vs `&body=`) and needs percent-encoding."""
    return f"SMSTO:{number}:{keyword}"


def poster(session: Session, program: Program, *, number: str | None = None) -> Poster:
    """The club's poster for `number` when it is one of the club's numbers, else for its first.
    Raises NoNumber when the club has none."""
    numbers = programs.numbers(session, program.id)
    if not numbers:
        raise NoNumber(program.name)
    chosen = number if number in numbers else numbers[0]
    language = club_language(program)
    keyword = locales.text("web.poster.keyword", language)
    shown = written_number(chosen)
    return Poster(
        language=language,
        club=program.name,
        number=chosen,
        keyword=keyword,
        payload=sms_payload(chosen, keyword),
        title=locales.text("web.poster.title", language, club=program.name),
        join=locales.text("web.poster.join", language, keyword=keyword, number=shown),
        scan=locales.text("web.poster.scan", language),
        consent=locales.text("web.poster.consent", language),
        privacy=locales.text(
            "web.poster.privacy", language, url=locales.sms_url(program.privacy_url)
        ),
    )


def written_number(number: str) -> str:
    """A number as a poster prints it: a short code as it is, a long number grouped as its
    country writes it internationally ("+47 55 00 00 00")."""
    if not number.startswith("+"):
        return number
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
